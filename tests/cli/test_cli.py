"""The CLI contract (DESIGN §5), driven as a user would: the real `postoffice` command."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from cli_run import po
from postoffice.store.sqlite.store import SqliteStore

PASSWORD = "a long enough password"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    po("init", "--domain", "example.org", "--hostname", "mail.example.org", data=d)
    return d


def test_init_creates_everything_and_a_second_init_changes_nothing(data: Path) -> None:
    for name in ("postoffice.toml", "store.sqlite3", "tls/cert.pem", "tls/key.pem", "keys/example.org.mail.pem"):
        assert (data / name).exists(), name
    before = (data / "postoffice.toml").read_bytes(), (data / "tls/cert.pem").read_bytes()
    again = po("init", "--domain", "other.example", data=data)
    assert "already initialised" in again.stdout
    assert before == ((data / "postoffice.toml").read_bytes(), (data / "tls/cert.pem").read_bytes())
    assert json.loads(po("domain", "list", "--json", data=data).stdout) == [{"name": "example.org", "catch_all": None}]


def test_user_password_comes_from_stdin_or_env_never_argv(data: Path) -> None:
    po("user", "add", "alice@example.org", "--password-stdin", data=data, stdin=PASSWORD + "\n")
    po("user", "add", "bob@example.org", data=data, env={"POSTOFFICE_PASSWORD": PASSWORD})
    users = json.loads(po("user", "list", "--json", data=data).stdout)
    assert [u["address"] for u in users] == ["alice@example.org", "bob@example.org"]
    no_password = po("user", "add", "carol@example.org", data=data, check=False, stdin="")
    assert no_password.returncode == 1 and "--password-stdin" in no_password.stderr
    on_argv = po("user", "add", "carol@example.org", "--password", PASSWORD, data=data, check=False)
    assert on_argv.returncode == 2  # no such option
    conn = sqlite3.connect(data / "store.sqlite3")
    (hashed,) = conn.execute("SELECT password_hash FROM accounts WHERE address = 'alice@example.org'").fetchone()
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (("user", "add", "not-an-address", "--password-stdin"), PASSWORD, "not a valid email address"),
        (("user", "add", "x@unknown.example", "--password-stdin"), PASSWORD, "postoffice domain add unknown.example"),
        (("user", "add", "x@example.org", "--password-stdin"), "short", "too short"),
        (("user", "remove", "nobody@example.org"), None, "There is no user nobody@example.org"),
        (("domain", "add", "bad_domain"), None, "not a valid domain name"),
        (("alias", "remove", "none@example.org"), None, "There is no alias"),
        (("import", "mbox", "/nonexistent.mbox", "--into", "x@example.org"), None, "/nonexistent.mbox"),
        (("user", "add", "../x@example.org", "--password-stdin"), PASSWORD, "may not start or end with a dot"),
        (("user", "add", ".a@example.org", "--password-stdin"), PASSWORD, "may not start or end with a dot"),
        (("user", "add", "a..b@example.org", "--password-stdin"), PASSWORD, "two dots in a row"),
        (("alias", "add", "a..b@example.org", "x@remote.example"), None, "two dots in a row"),
        (("alias", "add", "ok@example.org", "a/b@remote.example"), None, 'may not contain "/"'),
    ],
)
def test_failures_exit_nonzero_with_one_plain_sentence(data: Path, args: tuple[str, ...], stdin: str | None, expected: str) -> None:
    result = po(*args, data=data, stdin=stdin, check=False)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3  # one sentence, perhaps wrapped


def test_rows_an_older_version_let_in_can_still_be_removed(data: Path) -> None:
    conn = sqlite3.connect(data / "store.sqlite3")
    with conn:
        conn.execute("INSERT INTO accounts(address, domain_id, password_hash, created)"
                     " SELECT '../x@example.org', id, 'x', 0 FROM domains WHERE name = 'example.org'")
        conn.execute("INSERT INTO aliases(source, target) VALUES ('a..b@example.org', 'elsewhere@remote.example')")
    conn.close()
    po("user", "remove", "../x@example.org", data=data)
    po("alias", "remove", "a..b@example.org", data=data)
    assert json.loads(po("user", "list", "--json", data=data).stdout) == []
    assert json.loads(po("alias", "list", "--json", data=data).stdout) == []


def test_commands_on_a_directory_that_is_not_initialised(tmp_path: Path) -> None:
    result = po("user", "list", data=tmp_path / "nothing", check=False)
    assert result.returncode == 1 and "postoffice init" in result.stderr


def test_alias_and_catch_all(data: Path) -> None:
    po("user", "add", "alice@example.org", "--password-stdin", data=data, stdin=PASSWORD)
    po("alias", "add", "sales@example.org", "alice@example.org", "boss@elsewhere.example", data=data)
    po("alias", "add", "@example.org", "alice@example.org", data=data)
    aliases = json.loads(po("alias", "list", "--json", data=data).stdout)
    assert {"source": "sales@example.org", "target": "boss@elsewhere.example"} in aliases
    assert {"source": "@example.org", "target": "alice@example.org"} in aliases
    # Import files mail into a user's mailboxes and never forwards: an alias is no target.
    mbox = data.parent / "one.mbox"
    mbox.write_bytes(b"From a@example.net Tue Feb  6 10:00:00 2024\nSubject: one\n\nbody\n")
    refused = po("import", "mbox", str(mbox), "--into", "sales@example.org", data=data, check=False)
    assert refused.returncode == 1 and "sales@example.org is an alias" in refused.stderr
    po("alias", "remove", "sales@example.org", data=data)
    assert len(json.loads(po("alias", "list", "--json", data=data).stdout)) == 1


def test_config_show_is_valid_toml_and_bad_config_names_key(data: Path) -> None:
    shown = tomllib.loads(po("config", "show", data=data).stdout)
    assert shown["server"]["hostname"] == "mail.example.org"
    assert shown["store"]["backend"] == "sqlite"
    text = (data / "postoffice.toml").read_text()
    assert "max_message_size = 52428800" in text
    text = text.replace("max_message_size = 52428800", 'max_message_size = "50MB"')
    (data / "postoffice.toml").write_text(text)
    result = po("user", "list", data=data, check=False)
    assert result.returncode == 1
    assert "max_message_size" in result.stderr and "50MB" in result.stderr and "postoffice.toml" in result.stderr


def test_help_teaches_with_examples() -> None:
    for args in (("user", "add"), ("import",), ("export",), ("alias", "add"), ("serve",), ("init",)):
        out = po(*args, "--help").stdout
        assert "Example" in out, args


def _serve(data: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "postoffice", "serve", "--dev", "--data", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"},
    )


def _wait_for(proc: subprocess.Popen[str], needle: str, timeout: float) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        seen += line
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} not printed within {timeout}s:\n{seen}")


def test_serve_dev_first_run_prints_connection_details_and_stops_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    started = time.monotonic()
    proc = _serve(data)
    try:
        out = _wait_for(proc, "demo user", 30)
        assert time.monotonic() - started < 30
        assert "127.0.0.1:10143" in out and "127.0.0.1:10025" in out
        password = out.split("password:")[1].split()[0]
        # A second server on the same data directory is refused, in plain words.
        second = po("serve", "--dev", data=data, check=False)
        assert second.returncode == 1 and "already serving" in second.stderr
        # Admin commands work while it runs.
        po("user", "add", "late@example.test", "--password-stdin", data=data, stdin=PASSWORD)
        # The printed password is the demo user's real password.
        check = subprocess.run(
            [sys.executable, "-c",
             "import asyncio,sys;from pathlib import Path;from postoffice.config import load_config;"
             "from postoffice.services import open_services\n"
             "async def m():\n"
             "  async with open_services(load_config(Path(sys.argv[1]))) as s:\n"
             "    print(await s.directory.authenticate('demo@example.test', sys.argv[2]) is not None)\n"
             "asyncio.run(m())", str(data), password],
            capture_output=True, text=True, timeout=60,
        )
        assert check.stdout.strip() == "True", check.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    assert "stopped" in rest
    # A restart keeps everything and does not print a new password.
    proc = _serve(data)
    try:
        out = _wait_for(proc, "demo user", 30)
        assert "shown on first run" in out
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def _mbox(path: Path) -> None:
    path.write_bytes(
        b"From a@example.net Tue Feb  6 10:00:00 2024\nStatus: RO\nX-Status: AF\n"
        b"From: a@example.net\nSubject: one\nMessage-ID: <1@x>\n\nFirst body\n>From the start\n\n"
        b"From b@example.net Wed Feb  7 11:30:00 2024\n"
        b"From: b@example.net\nSubject: two\nMessage-ID: <2@x>\n\nSecond body\n\n"
    )


def test_import_export_round_trip_keeps_flags_dates_and_skips_duplicates(data: Path, tmp_path: Path) -> None:
    po("user", "add", "alice@example.org", "--password-stdin", data=data, stdin=PASSWORD)
    source = tmp_path / "in.mbox"
    _mbox(source)
    out = po("import", "mbox", str(source), "--into", "alice@example.org/Archive", "--json", data=data).stdout
    assert json.loads(out.splitlines()[-1])["done"]["stored"] == 2
    again = json.loads(po("import", "mbox", str(source), "--into", "alice@example.org/Archive", "--json", data=data).stdout.splitlines()[-1])
    assert again["done"]["stored"] == 0 and again["done"]["duplicates"] == 2
    forced = json.loads(po("import", "mbox", str(source), "--into", "alice@example.org/Archive", "--json",
                           "--allow-duplicates", data=data).stdout.splitlines()[-1])
    assert forced["done"]["stored"] == 2

    exported = tmp_path / "out.mbox"
    po("export", "alice@example.org", str(exported), "--mailbox", "Archive", data=data)
    maildir = tmp_path / "md"
    po("export", "alice@example.org", str(maildir), "--format", "maildir", data=data)

    from postoffice.transfer.maildir import read_maildir
    from postoffice.transfer.mbox import read_mbox

    original = list(read_mbox(source))
    back = list(read_mbox(exported))
    assert len(back) == 4
    for a, b in zip(original, back[:2], strict=True):
        assert a.raw == b.raw and a.flags == b.flags and a.internal_date == b.internal_date
    assert original[0].flags == {"\\Seen", "\\Answered", "\\Flagged"}
    in_maildir = [m for m in read_maildir(maildir) if m.folder == "Archive"]
    assert sorted(m.raw for m in in_maildir) == sorted([original[0].raw, original[1].raw] * 2)
    # The Maildir export imports back into another user with the same flags and folders.
    po("user", "add", "bob@example.org", "--password-stdin", data=data, stdin=PASSWORD)
    po("import", "maildir", str(maildir), "--into", "bob@example.org", data=data)
    po("export", "bob@example.org", str(tmp_path / "bob.mbox"), "--mailbox", "Archive", data=data)
    bob = list(read_mbox(tmp_path / "bob.mbox"))
    # The export held each message twice (the forced import above): the import keeps the source's
    # multiset, both copies of each (issue 18: true duplicates in a source are each copied), and
    # importing it again stores nothing.
    assert len(bob) == 4
    assert sorted((m.raw, tuple(sorted(m.flags))) for m in bob) == sorted((m.raw, tuple(sorted(m.flags))) for m in back)
    again = json.loads(po("import", "maildir", str(maildir), "--into", "bob@example.org", "--json",
                          data=data).stdout.splitlines()[-1])
    assert again["done"]["stored"] == 0


def test_import_onto_a_full_disk_says_so_in_one_sentence_and_resumes(tmp_path: Path) -> None:
    from small_disk import small_disk

    source = tmp_path / "big.mbox"
    with source.open("wb") as f:
        for n in range(40):
            f.write(f"From a@example.net Tue Feb  6 10:00:00 2024\nFrom: a@example.net\nSubject: {n}\n"
                    f"Message-ID: <{n}@x>\n\n".encode() + f"body {n}\n".encode() * 10_000 + b"\n")
    with small_disk(16) as disk:
        data = disk.root / "data"
        po("init", "--domain", "example.org", "--hostname", "mail.example.org", data=data)
        po("user", "add", "alice@example.org", "--password-stdin", data=data, stdin=PASSWORD)
        disk.fill()
        disk.leave_free(2 << 20)  # room for some of the 40 x 100 KB messages, not all
        full = po("import", "mbox", str(source), "--into", "alice@example.org", "--json", data=data, check=False)
        assert full.returncode == 1
        assert "Not enough disk space" in full.stderr and "run the same import again" in full.stderr, full.stderr
        assert "Traceback" not in full.stderr + full.stdout
        assert list((data / "blobs" / "tmp").iterdir()) == []
        stored_before = sum('"stored"' in line for line in full.stdout.splitlines())
        disk.free()
        done = json.loads(po("import", "mbox", str(source), "--into", "alice@example.org", "--json",
                             data=data).stdout.splitlines()[-1])["done"]
        assert (done["stored"], done["duplicates"]) == (40 - stored_before, stored_before)
        conn = sqlite3.connect(data / "store.sqlite3")
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 40
        conn.close()


def test_import_real_mailing_list_archive(data: Path, corpora: Path) -> None:
    po("user", "add", "list@example.org", "--password-stdin", data=data, stdin=PASSWORD)
    archive = corpora / "threading-jwz-fedora-devel" / "2010-January.txt.gz"
    out = po("import", "mbox", str(archive), "--into", "list@example.org", "--json", data=data).stdout
    done = json.loads(out.splitlines()[-1])["done"]
    assert done["stored"] + done["duplicates"] == 292
    conn = sqlite3.connect(data / "store.sqlite3")
    (count,) = conn.execute("SELECT count(*) FROM messages").fetchone()
    assert count == done["stored"]
    (mailbox_id,) = conn.execute("SELECT mailbox_id FROM messages LIMIT 1").fetchone()
    conn.close()

    async def search_before_and_after_indexing() -> tuple[set[int], set[int]]:
        store = SqliteStore(data / "store.sqlite3", data / "blobs")
        try:
            before = await store.search_text(mailbox_id, "rawhide")  # nothing indexed yet
            while await store.index_unindexed() > 0:
                pass
            return before, await store.search_text(mailbox_id, "rawhide")
        finally:
            await store.close()

    before, after = asyncio.run(search_before_and_after_indexing())
    assert len(before) > 20 and before == after


def test_init_recreates_a_deleted_certificate_and_nothing_else(data: Path) -> None:
    config = (data / "postoffice.toml").read_bytes()
    old_cert = (data / "tls/cert.pem").read_bytes()
    (data / "tls/cert.pem").unlink()
    (data / "tls/key.pem").unlink()
    out = po("init", data=data).stdout
    assert "certificate was created again" in out
    assert (data / "tls/cert.pem").read_bytes() != old_cert and (data / "tls/key.pem").exists()
    assert (data / "postoffice.toml").read_bytes() == config


def test_share_and_quota(data: Path) -> None:
    for user in ("team@example.org", "alice@example.org"):
        po("user", "add", user, "--password-stdin", data=data, stdin=PASSWORD)
    out = po("share", "team@example.org/INBOX", "--with", "alice@example.org", "--rights", "lrs", data=data).stdout
    assert "alice@example.org now has lrs rights" in out
    shown = json.loads(po("share", "team@example.org/INBOX", "--json", data=data).stdout)
    assert shown["acl"] == {"alice@example.org": "lrs"}
    bad = po("share", "team@example.org/Nope", "--with", "alice@example.org", data=data, check=False)
    assert bad.returncode != 0 and "has no mailbox 'Nope'" in bad.stderr
    bad = po("share", "team@example.org/INBOX", "--with", "alice@example.org", "--rights", "lrz", data=data, check=False)
    assert bad.returncode != 0 and "Unknown rights letters" in bad.stderr
    po("share", "team@example.org/INBOX", "--with", "alice@example.org", "--rights", "", data=data)
    assert json.loads(po("share", "team@example.org/INBOX", "--json", data=data).stdout)["acl"] == {}
    po("user", "quota", "alice@example.org", "2M", data=data)
    users = {u["address"]: u for u in json.loads(po("user", "list", "--json", data=data).stdout)}
    assert users["alice@example.org"]["quota"] == 2 * 1024 * 1024
    bad = po("user", "quota", "alice@example.org", "lots", data=data, check=False)
    assert bad.returncode != 0 and "is not a size" in bad.stderr
