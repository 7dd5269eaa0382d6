"""`postoffice import maildir` of the folder trees mail programs write (issue 18), and import's
de-duplication by fingerprint.

mbsync writes its trees itself, from a postoffice IMAP account; the offlineimap, Dovecot and
mbsync-Legacy layouts are built file by file as those programs lay them out. Each import is a
real CLI run on the running server's data directory.
"""
from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_run import po
from live_server import PASSWORD, LiveServer
from postoffice.store.interface import NewMessage

SOURCE = "source@example.test"
TARGET = "target@example.test"
FOLDERS = {"INBOX": 3, "Archive": 2, "Archive/2024": 2, "Sent": 1}


def message(folder: str, n: int) -> bytes:
    return (f"From: a@remote.example\r\nTo: {SOURCE}\r\nSubject: {folder} {n}\r\n"
            f"Date: Mon, 1 Jan 2024 00:00:0{n} +0000\r\nMessage-ID: <{folder.replace('/', '.')}.{n}@x>\r\n"
            f"\r\nbody of {folder} {n}\r\n").encode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user(SOURCE)
    live.add_user(TARGET)
    yield live
    live.stop()


def fill_source(server: LiveServer) -> None:
    services = server.services
    assert services is not None

    async def go() -> None:
        account = await services.directory.get_user(SOURCE)
        assert account is not None
        for folder, count in FOLDERS.items():
            box = await services.store.get_mailbox(account.id, folder)
            if box is None:
                box = await services.store.create_mailbox(account.id, folder, subscribed=True)
            for n in range(count):
                raw = message(folder, n)
                await services.store.append_messages(box.id, [NewMessage(await services.store.put_blob(raw), raw=raw)])

    server.call(go())


def mailbox_counts(server: LiveServer, address: str) -> dict[str, int]:
    services = server.services
    assert services is not None

    async def go() -> dict[str, int]:
        account = await services.directory.get_user(address)
        assert account is not None
        return {b.name: (await services.store.mailbox_status(b.id)).messages
                for b in await services.store.list_mailboxes(account.id)
                if (await services.store.mailbox_status(b.id)).messages}

    return server.call(go())


def import_json(server: LiveServer, fmt: str, path: Path, into: str = TARGET) -> dict[str, object]:
    out = po("import", fmt, str(path), "--into", into, "--json", data=server.data_dir).stdout
    return json.loads(out.strip().splitlines()[-1])["done"]  # type: ignore[no-any-return]


def run_mbsync(tmp_path: Path, port: int, store_lines: str) -> Path:
    mail = tmp_path / "Mail"
    mail.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(f"""
IMAPAccount po
Host 127.0.0.1
Port {port}
User {SOURCE}
Pass "{PASSWORD}"
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account po

MaildirStore local
{store_lines.format(mail=mail)}

Channel mail
Far :remote:
Near :local:
Patterns *
Create Near
Sync Pull
SyncState *
""")
    result = subprocess.run(["mbsync", "-c", str(config), "-a"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return mail


@pytest.mark.peer("mbsync", package="isync")
@pytest.mark.parametrize("layout", [
    "Path {mail}/\nInbox {mail}/INBOX\nSubFolders Verbatim",  # the root itself is no Maildir
    "Inbox {mail}\nSubFolders Maildir++",  # Dovecot's default layout
    "Path {mail}/\nInbox {mail}/INBOX\nSubFolders Legacy",  # Folder/.Sub
], ids=["verbatim", "maildir++", "legacy"])
def test_import_of_a_tree_mbsync_wrote_gives_every_folder(server: LiveServer, tmp_path: Path, layout: str) -> None:
    fill_source(server)
    mail = run_mbsync(tmp_path, server.ports["imap"], layout)
    done = import_json(server, "maildir", mail)
    assert done["stored"] == sum(FOLDERS.values()) and done["duplicates"] == 0
    assert mailbox_counts(server, TARGET) == FOLDERS
    # The same tree again stores nothing.
    again = import_json(server, "maildir", mail)
    assert again["stored"] == 0 and again["duplicates"] == sum(FOLDERS.values())


def write_folder(folder: Path, raws: list[bytes], *, info: str = ":2,S") -> None:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i, raw in enumerate(raws):
        (folder / "cur" / f"17000000{i:02d}.M{i}P1.host{info}").write_bytes(raw.replace(b"\r\n", b"\n"))


def build(layout: str, root: Path) -> None:
    """The tree `layout` writes for FOLDERS."""
    dirs = {
        # offlineimap: one plain directory per folder, INBOX among them, the root holds no mail.
        "offlineimap": {"INBOX": "INBOX", "Archive": "Archive", "Archive/2024": "Archive/2024", "Sent": "Sent"},
        # Dovecot Maildir++ (its default): the root is INBOX, folders are dot-directories.
        "dovecot-maildir++": {"INBOX": ".", "Archive": ".Archive", "Archive/2024": ".Archive.2024", "Sent": ".Sent"},
        # Dovecot LAYOUT=fs: the root is INBOX, folders nest as directories.
        "dovecot-fs": {"INBOX": ".", "Archive": "Archive", "Archive/2024": "Archive/2024", "Sent": "Sent"},
    }[layout]
    for folder, count in FOLDERS.items():
        path = root / dirs[folder]
        write_folder(path, [message(folder, n) for n in range(count)])
        if dirs[folder].startswith(".") and dirs[folder] != ".":
            (path / "maildirfolder").touch()
    (root / "dovecot-uidlist").write_text("3 V1 N1\n")  # control files are not folders


@pytest.mark.parametrize("layout", ["offlineimap", "dovecot-maildir++", "dovecot-fs"])
def test_import_of_offlineimap_and_dovecot_trees_gives_every_folder(server: LiveServer, tmp_path: Path, layout: str) -> None:
    build(layout, tmp_path / "tree")
    done = import_json(server, "maildir", tmp_path / "tree")
    assert done["stored"] == sum(FOLDERS.values())
    assert mailbox_counts(server, TARGET) == FOLDERS


def pop3_client_mbox(path: Path, raws: list[bytes]) -> Path:
    """An mbox as a POP3 client keeps it: its own Received and X-UIDL fields on top, Status
    fields, LF line ends and `>From ` quoting."""
    with open(path, "wb") as f:
        for i, raw in enumerate(raws):
            lf = raw.replace(b"\r\n", b"\n")
            head, _, body = lf.partition(b"\n\n")
            f.write(b"From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n"
                    b"Received: from pop.example by laptop (fetchmail-6.4) with POP3 id " + str(i).encode() + b"\n"
                    b"\tfor <me@laptop>; Mon, 01 Jan 2024 00:00:00 +0000\n"
                    b"X-UIDL: " + str(1000 + i).encode() + b"\n"
                    + head + b"\nStatus: RO\n\n" + body.replace(b"\nFrom ", b"\n>From ") + b"\n")
    return path


def test_reimporting_a_pop3_clients_mbox_of_mail_already_there_stores_nothing_twice(server: LiveServer, tmp_path: Path) -> None:
    raws = [message("INBOX", n) for n in range(3)]
    raws.append(b"From: b@remote.example\r\nSubject: quoting\r\nMessage-ID: <q@x>\r\n\r\nline\r\nFrom here on\r\n")
    write_folder(tmp_path / "md", raws)
    assert import_json(server, "maildir", tmp_path / "md")["stored"] == 4
    mbox = pop3_client_mbox(tmp_path / "pop3.mbox", raws)
    again = import_json(server, "mbox", mbox)
    assert again["stored"] == 0 and again["duplicates"] == 4
    assert mailbox_counts(server, TARGET) == {"INBOX": 4}


def test_import_keeps_true_duplicates_of_the_source_as_a_multiset(server: LiveServer, tmp_path: Path) -> None:
    """The mailbox holds A once; the file holds A three times, B twice and C (no Message-ID) twice:
    the mailbox ends with the file's multiset, A three times, not once, nor four times."""
    a = message("INBOX", 1)
    b = message("INBOX", 2)
    c = b"From: c@remote.example\r\nSubject: no id\r\n\r\nsame body\r\n"
    write_folder(tmp_path / "first", [a])
    import_json(server, "maildir", tmp_path / "first")
    write_folder(tmp_path / "second", [a, b, a, c, b, a, c])
    done = import_json(server, "maildir", tmp_path / "second")
    assert done["stored"] == 6 and done["duplicates"] == 1
    held = Counter(server.messages(TARGET))
    assert held == Counter({a: 3, b: 2, c: 2})
