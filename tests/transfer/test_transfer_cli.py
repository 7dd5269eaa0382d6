"""`postoffice export` and `import` with hostile names, repeated exports and odd sources (issue 12).

Real CLI runs on a real data directory. Mailbox names that IMAP CREATE refuses (`..` levels,
empty levels, control characters) are put into the store directly, as a store written by an
older version or filled by an import from another server would hold them.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_run import po
from postoffice.store.sqlite.store import SqliteStore
from postoffice.transfer.importer import Importer
from postoffice.transfer.maildir import read_maildir
from postoffice.transfer.mbox import read_mbox
from postoffice.transfer.source import SourceMessage

PASSWORD = "a long enough password"
USER = "alice@example.org"
FORMATS = ("mbox", "maildir")
# Every kind of level a path could misread, and names that only an escaping keeps apart.
HOSTILE_NAMES = [
    "../../../ESCAPED",
    "..",
    ".",
    "a/../../b",
    "/lead",
    "a//b",
    "trail/",
    ".hidden",
    "Sub.Dot",
    "50%",
    "%",
    "ctl\x01nul\x00x",
    "back\\slash",
    "\\",
    "x",
    "x.mbox",
    "x.mbox/y",
]


def message(n: int) -> bytes:
    return (f"From: a@example.net\r\nTo: {USER}\r\nSubject: message {n}\r\n"
            f"Message-ID: <{n}@example.net>\r\n\r\nbody {n}\r\n").encode()


def write_mbox(path: Path, numbers: list[int]) -> Path:
    with open(path, "wb") as f:
        for n in numbers:
            f.write(b"From a@example.net Mon Jan  1 00:00:00 2024\n" + message(n).replace(b"\r\n", b"\n") + b"\n")
    return path


def put(data: Path, boxes: dict[str, list[int]], *, allow_duplicates: bool = False) -> None:
    """Deliver `message(n)` for each n into each mailbox, through the store (no CLI start-up per
    mailbox: these tests are about export)."""

    async def go() -> None:
        store = SqliteStore(data / "store.sqlite3", data / "blobs")
        try:
            account = await store.get_account(USER)
            assert account is not None
            messages = [SourceMessage(message(n), frozenset(), None, name, f"{name}/{n}")
                        for name, numbers in boxes.items() for n in numbers]
            await Importer(store, account, workers=1, allow_duplicates=allow_duplicates).run(messages)
        finally:
            await store.close()

    asyncio.run(go())


def rename_in_store(data: Path, old: str, new: str) -> None:
    """What an older store may hold: the name written to the table, past today's checks."""
    conn = sqlite3.connect(data / "store.sqlite3")
    with conn:
        assert conn.execute("UPDATE mailboxes SET name = ? WHERE name = ?", (new, old)).rowcount == 1
    conn.close()


def export(data: Path, dest: Path, fmt: str) -> dict[str, object]:
    """The --json summary of an export, without the mailboxes that had nothing new."""
    out = json.loads(po("export", USER, str(dest), "--format", fmt, "--json", data=data).stdout)
    return {"written": {k: v for k, v in out["written"].items() if v}, "already_present": out["already_present"]}


def files_below(root: Path) -> set[Path]:
    return {Path(d, f) for d, dirs, files in os.walk(root) for f in [*files, *dirs]}


def exported_folders(fmt: str, dest: Path) -> dict[str, list[bytes]]:
    read = read_mbox if fmt == "mbox" else read_maildir
    found: dict[str, list[bytes]] = {}
    for m in read(dest):
        found.setdefault(m.folder, []).append(m.raw)
    return {name: sorted(raws) for name, raws in found.items() if raws}


def new_data_dir(path: Path) -> Path:
    po("init", "--domain", "example.org", "--hostname", "mail.example.org", data=path)
    po("user", "add", USER, "--password-stdin", data=path, stdin=PASSWORD)
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return new_data_dir(tmp_path / "data")


@pytest.fixture(scope="module")
def refusing_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory for the imports that must be refused (they leave it as it was)."""
    return new_data_dir(tmp_path_factory.mktemp("refusing") / "data")


def one_sentence(result: subprocess.CompletedProcess[str], path: Path | None = None, *needles: str) -> None:
    """Exit status 1 and one sentence on stderr that names `path` and says each of `needles`."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    err = " ".join(result.stderr.split())
    assert "Traceback" not in err and len(result.stderr.strip().splitlines()) <= 3, result.stderr
    if path is not None:
        assert str(path) in err, err
        err = err.replace(str(path), "PATH")  # the words must not come from the path itself
    for needle in needles:
        assert needle in err, err


# -- names never become paths --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_of_a_dotdot_mailbox_name_stays_in_the_destination(data: Path, tmp_path: Path, fmt: str) -> None:
    """The issue's reproduction: `CREATE "../../../ESCAPED"`, then an admin's export."""
    put(data, {"Escaping": [1]})
    rename_in_store(data, "Escaping", "../../../ESCAPED")
    dest = tmp_path / "one" / "two" / "three" / "dest"
    po("export", USER, str(dest), "--format", fmt, data=data)
    assert [p.name for p in tmp_path.rglob("*ESCAPED*") if dest not in p.parents] == []
    assert exported_folders(fmt, dest) == {"../../../ESCAPED": [message(1)]}


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_escapes_hostile_mailbox_names_in_every_format(data: Path, tmp_path: Path, fmt: str) -> None:
    put(data, {f"box{i}": [i] for i in range(len(HOSTILE_NAMES))})
    for i, name in enumerate(HOSTILE_NAMES):
        rename_in_store(data, f"box{i}", name)
    dest = tmp_path / "one" / "two" / "three" / "dest"
    before = files_below(tmp_path)
    po("export", USER, str(dest), "--format", fmt, data=data)
    created = files_below(tmp_path) - before
    outside = {p for p in created
               if dest not in p.parents and p != dest and p not in dest.parents and (tmp_path / "data") not in p.parents}
    assert outside == set()
    assert not (tmp_path / "ESCAPED.mbox").exists() and not (tmp_path / "one" / "ESCAPED.mbox").exists()
    # No component is hidden (mbox) or anything but a dot-folder in the root (Maildir++).
    for path in created:
        part = path.relative_to(dest).parts if dest in path.parents else ()
        if fmt == "mbox":
            assert all(p not in ("", ".", "..") and not p.startswith(".") for p in part), path
        elif part and part[0] not in ("cur", "new", "tmp"):
            assert part[0].startswith(".") and part[0] not in (".", ".."), path
    # Reading the export back gives every name exactly, each with its own message.
    expected = {name: [message(i)] for i, name in enumerate(HOSTILE_NAMES)}
    assert exported_folders(fmt, dest) == expected


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_tree_imports_back_with_the_same_mailbox_names(data: Path, tmp_path: Path, fmt: str) -> None:
    names = ["Sub.Dot", "with space", "x", "x.mbox", "x.mbox/y", "Archive/2024", "back\\slash"]
    put(data, {name: [i] for i, name in enumerate(names)})
    dest = tmp_path / "dest"
    po("export", USER, str(dest), "--format", fmt, data=data)
    po("user", "add", "bob@example.org", "--password-stdin", data=data, stdin=PASSWORD)
    po("import", fmt, str(dest), "--into", "bob@example.org", data=data)
    conn = sqlite3.connect(data / "store.sqlite3")
    rows = conn.execute(
        "SELECT m.name, count(x.uid) FROM mailboxes m JOIN accounts a ON a.id = m.account_id"
        " LEFT JOIN messages x ON x.mailbox_id = m.id WHERE a.address = 'bob@example.org'"
        " GROUP BY m.name"
    ).fetchall()
    conn.close()
    assert {name: n for name, n in rows if n} == dict.fromkeys(names, 1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_refuses_a_link_in_the_destination_that_leads_outside(data: Path, tmp_path: Path, fmt: str) -> None:
    put(data, {"Archive/2024": [1]})
    dest, elsewhere = tmp_path / "dest", tmp_path / "elsewhere"
    dest.mkdir()
    elsewhere.mkdir()
    (dest / ("Archive" if fmt == "mbox" else ".Archive.2024")).symlink_to(elsewhere)
    result = po("export", USER, str(dest), "--format", fmt, data=data, check=False)
    one_sentence(result, None, "outside the destination")
    assert list(elsewhere.iterdir()) == []


# -- exporting twice adds only what is missing ----------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_second_export_to_the_same_destination_adds_only_new_messages(data: Path, tmp_path: Path, fmt: str) -> None:
    put(data, {"INBOX": [1, 2], "Archive": [3]})
    put(data, {"Archive": [3]}, allow_duplicates=True)  # a real second copy
    dest = tmp_path / "dest"

    for _ in range(2):  # the reproduction: the same command twice
        po("export", USER, str(dest), "--format", fmt, data=data)
    expected = {"INBOX": [message(1), message(2)], "Archive": [message(3)] * 2}
    assert exported_folders(fmt, dest) == expected
    assert export(data, dest, fmt) == {"written": {}, "already_present": 4}
    assert exported_folders(fmt, dest) == expected

    put(data, {"INBOX": [4]})
    assert export(data, dest, fmt) == {"written": {"INBOX": 1}, "already_present": 4}
    expected["INBOX"] = [message(1), message(2), message(4)]
    assert exported_folders(fmt, dest) == expected


def test_second_export_recognises_files_without_our_hash_in_their_name(data: Path, tmp_path: Path) -> None:
    """A Maildir exported by an older version (or holding the same mail from elsewhere)."""
    put(data, {"INBOX": [1, 2]})
    dest = tmp_path / "dest"
    po("export", USER, str(dest), "--format", "maildir", data=data)
    for path in (dest / "cur").iterdir():
        path.rename(path.with_name(path.name.split(",H=")[0] + ":2," + path.name.split(":2,")[1]))
    assert all(",H=" not in p.name for p in (dest / "cur").iterdir())
    assert export(data, dest, "maildir") == {"written": {}, "already_present": 2}
    assert len(list((dest / "cur").iterdir())) == 2


def test_export_of_one_mailbox_to_an_existing_mbox_file_appends_only_new(data: Path, tmp_path: Path) -> None:
    put(data, {"Archive": [1]})
    out = tmp_path / "archive.mbox"
    po("export", USER, str(out), "--mailbox", "Archive", data=data)
    put(data, {"Archive": [2]})
    po("export", USER, str(out), "--mailbox", "Archive", data=data)
    assert [m.raw for m in read_mbox(out)] == [message(1), message(2)]
    # A file that is not an mbox is never appended to.
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    result = po("export", USER, str(notes), "--mailbox", "Archive", data=data, check=False)
    one_sentence(result, notes, "is not an mbox file")
    assert notes.read_text() == "my notes\n"


# -- import answers at once for what is not mail ---------------------------------------------------


@pytest.fixture
def odd_files(tmp_path: Path) -> Iterator[dict[str, Path]]:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(sock_path))
    try:
        yield {"fifo": fifo, "socket": sock_path, "device": Path("/dev/null")}
    finally:
        sock.close()


@pytest.mark.parametrize("fmt", ["mbox", "maildir", "eml"])
@pytest.mark.parametrize(("kind", "words"), [("fifo", "named pipe"), ("socket", "socket"), ("device", "device")])
def test_import_of_a_fifo_socket_or_device_answers_at_once(
    refusing_data: Path, odd_files: dict[str, Path], fmt: str, kind: str, words: str
) -> None:
    # Today's mbox import of a FIFO blocks in open() forever: the timeout turns that into a failure.
    result = po("import", fmt, str(odd_files[kind]), "--into", USER, data=refusing_data, check=False, timeout=30)
    one_sentence(result, odd_files[kind], words)


def test_import_of_an_mbox_folder_holding_a_fifo_answers_at_once(refusing_data: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    write_mbox(tree / "INBOX.mbox", [1])
    os.mkfifo(tree / "Later.mbox")
    result = po("import", "mbox", str(tree), "--into", USER, data=refusing_data, check=False, timeout=30)
    one_sentence(result, tree / "Later.mbox", "named pipe")


def test_import_of_an_empty_mbox_says_so(refusing_data: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mbox"
    empty.touch()
    result = po("import", "mbox", str(empty), "--into", USER, data=refusing_data)
    assert "holds no messages" in result.stdout


def test_import_of_an_empty_eml_file_is_refused(refusing_data: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.eml"
    empty.touch()
    one_sentence(po("import", "eml", str(empty), "--into", USER, data=refusing_data, check=False), empty, "is empty")
    conn = sqlite3.connect(refusing_data / "store.sqlite3")
    assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)
    conn.close()


@pytest.mark.parametrize(
    ("fmt", "make", "words"),
    [
        ("maildir", lambda p: p.mkdir(), "is not a Maildir"),
        ("maildir", lambda p: p.write_text("x"), "is a file, not a Maildir folder"),
        ("mbox", lambda p: p.mkdir(), "no .mbox files"),
        ("mbox", lambda p: p.write_text("hello\n"), "is not an mbox file"),
    ],
)
def test_import_of_the_wrong_kind_of_path_is_one_sentence(refusing_data: Path, tmp_path: Path, fmt: str, make: object,
                                                          words: str) -> None:
    path = tmp_path / "source"
    make(path)  # type: ignore[operator]
    one_sentence(po("import", fmt, str(path), "--into", USER, data=refusing_data, check=False), path, words)


@pytest.mark.parametrize("fmt", ["mbox", "maildir", "eml"])
def test_import_of_an_unreadable_source_is_one_sentence(refusing_data: Path, tmp_path: Path, fmt: str) -> None:
    source = tmp_path / "source"
    if fmt == "maildir":
        for sub in ("cur", "new", "tmp"):
            (source / sub).mkdir(parents=True)
        inner = source / "cur"
    else:
        source.mkdir()
        inner = write_mbox(source / ("a.mbox" if fmt == "mbox" else "a.eml"), [1])
    try:
        # The source itself: the command line refuses it before reading.
        source.chmod(0)
        top = po("import", fmt, str(source), "--into", USER, data=refusing_data, check=False, timeout=60,
                 honour_file_modes=True)
        assert top.returncode != 0 and "Traceback" not in top.stderr and "not readable" in top.stderr
        # Something inside it.
        source.chmod(stat.S_IRWXU)
        inner.chmod(0)
        result = po("import", fmt, str(source), "--into", USER, data=refusing_data, check=False, timeout=60,
                    honour_file_modes=True)
    finally:
        source.chmod(stat.S_IRWXU)
        inner.chmod(stat.S_IRWXU)
    one_sentence(result, inner, "cannot be read")


def test_non_ascii_folder_names_of_a_dovecot_maildir_import_and_export_as_dovecot_keeps_them(
        data: Path, tmp_path: Path) -> None:
    """Dovecot and Courier keep Maildir++ folder names in modified UTF-7. Old code imported
    `.Entw&APw-rfe` as the mailbox "Entw&APw-rfe" (IMAP clients then showed that text), and
    exported "Entwürfe" as `.Entwürfe`, which is no valid folder name to Dovecot."""
    dovecot = tmp_path / "Maildir"
    folders = {".Entw&APw-rfe": "Entwürfe", ".Gel&APY-scht": "Gelöscht", ".R&-D.Q1": "R&D/Q1"}
    for n, folder in enumerate(["", *folders]):
        for sub in ("cur", "new", "tmp"):
            (dovecot / folder / sub).mkdir(parents=True, exist_ok=True)
        (dovecot / folder / "cur" / f"1700000000.M{n}P1.host:2,S").write_bytes(message(n))
    po("import", "maildir", str(dovecot), "--into", USER, data=data)
    conn = sqlite3.connect(data / "store.sqlite3")
    names = {row[0] for row in conn.execute("SELECT name FROM mailboxes")}
    conn.close()
    assert set(folders.values()) <= names
    dest = tmp_path / "export"
    po("export", USER, str(dest), "--format", "maildir", data=data)
    assert set(folders) <= {p.name for p in dest.iterdir()}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_folder_an_export_creates_is_made_durable_in_its_parent(
        data: Path, tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writers fsync a file and its own folder; a folder created on the way (DEST's parents,
    DEST, `Archive/` of an mbox tree) must have its own entry fsynced too, or a power cut after
    "export done" can take the folder and the files in it. Old code fsynced none of them."""
    import postoffice.durable
    import postoffice.transfer.maildir
    from postoffice.transfer.exporter import export_mailboxes

    put(data, {"Archive/2024": [1]})
    synced: list[Path] = []
    real = postoffice.durable.fsync_dir
    for module in (postoffice.durable, postoffice.transfer.maildir):
        monkeypatch.setattr(module, "fsync_dir", lambda path: (synced.append(Path(path)), real(path)))
    dest = tmp_path / "new" / "dest"

    async def go() -> None:
        store = SqliteStore(data / "store.sqlite3", data / "blobs")
        try:
            account = await store.get_account(USER)
            assert account is not None
            await export_mailboxes(store, account, fmt, dest)
        finally:
            await store.close()

    asyncio.run(go())
    created = [tmp_path / "new", dest] + ([dest / "Archive"] if fmt == "mbox" else [])
    assert all(folder.parent in synced for folder in created), (created, synced)


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_below_a_file_is_one_sentence(data: Path, tmp_path: Path, fmt: str) -> None:
    (tmp_path / "plain-file").write_bytes(b"")
    dest = tmp_path / "plain-file" / "dest"
    one_sentence(po("export", USER, str(dest), "--format", fmt, data=data, check=False), tmp_path / "plain-file")
