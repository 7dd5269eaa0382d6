"""Schema upgrades from every earlier schema, on data directories made by the old code itself
(tests/store/fixtures/, see its README): mail, flags, uids and logins as before; a failed
upgrade leaves the file byte for byte as it was and says so; a newer schema is refused."""
from __future__ import annotations

import hashlib
import imaplib
import json
import os
import poplib
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from live_server import LiveServer
from postoffice.setup.initialise import initialise
from postoffice.store.sqlite import upgrade
from postoffice.store.sqlite.schema import SCHEMA_VERSION
from postoffice.store.sqlite.store import SqliteStore
from postoffice.store.sqlite.upgrade import SchemaTooNew, UpgradeFailed

FIXTURES = Path(__file__).parent / "fixtures"
OLD_SCHEMAS = sorted(p.name for p in FIXTURES.iterdir() if p.name.startswith("schema"))


def test_a_fixture_for_every_earlier_schema() -> None:
    assert [f"schema{n}" for n in range(1, SCHEMA_VERSION)] == OLD_SCHEMAS
    assert sorted(upgrade.STEPS) == list(range(1, SCHEMA_VERSION))


def _old_copy(name: str, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    data = tmp_path / "data"
    shutil.copytree(FIXTURES / name / "data", data)
    expected = json.loads((FIXTURES / name / "expected.json").read_text())
    return data, expected


def _stored_version(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture(params=OLD_SCHEMAS)
def upgraded_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, Any], str]]:
    data, expected = _old_copy(request.param, tmp_path)
    initialise(data, "mail.example.org")  # only makes the TLS certificate the fixture leaves out
    server = LiveServer(data, ["imap", "pop3"]).start()
    try:
        yield server, expected, request.param
    finally:
        server.stop()


_FETCHED = re.compile(rb"UID (\d+) .*?FLAGS \(([^)]*)\)")


def _fetch_all(imap: imaplib.IMAP4) -> dict[int, tuple[set[str], bytes]]:
    typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[] BODYSTRUCTURE ENVELOPE)")
    assert typ == "OK", data
    found = {}
    for part in data:
        if isinstance(part, tuple):
            match = _FETCHED.search(part[0])
            assert match, part[0]
            flags = {f for f in match.group(2).decode().split() if f != "\\Recent"}
            found[int(match.group(1))] = (flags, part[1])
    return found


def test_old_data_dir_serves_every_message_flag_uid_and_login_as_before(
    upgraded_server: tuple[LiveServer, dict[str, Any], str],
) -> None:
    server, expected, name = upgraded_server
    version = int(name.removeprefix("schema"))
    db = server.data_dir / "store.sqlite3"
    assert _stored_version(db) == SCHEMA_VERSION
    kept = server.data_dir / f"store.sqlite3.pre-upgrade-v{version}"
    assert _stored_version(kept) == version  # the file to put back by hand, should one want to
    for address, boxes in expected["accounts"].items():
        imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
        try:
            imap.login(address, expected["passwords"][address])
            typ, listed = imap.list()
            assert typ == "OK"
            names = {line.decode().rsplit(" ", 1)[1].strip('"') for line in listed
                     if isinstance(line, bytes) and b"\\Noselect" not in line and b"\\NonExistent" not in line}
            assert names == set(boxes)
            for box, want in boxes.items():
                typ, _ = imap.select(f'"{box}"', readonly=True)
                assert typ == "OK", box
                assert imap.untagged_responses["UIDVALIDITY"][-1] == str(want["uidvalidity"]).encode()
                assert imap.untagged_responses["UIDNEXT"][-1] == str(want["uidnext"]).encode()
                fetched = _fetch_all(imap) if want["messages"] else {}
                assert sorted(fetched) == [m["uid"] for m in want["messages"]], box
                for message in want["messages"]:
                    flags, body = fetched[message["uid"]]
                    assert flags == set(message["flags"]), (box, message["uid"])
                    assert hashlib.sha256(body).hexdigest() == message["sha256"]
                    assert len(body) == message["size"]
            # The substring index is rebuilt in the background; search works meanwhile too.
            imap.select("INBOX")
            typ, hits = imap.uid("SEARCH", "BODY", "\"starts with a dot\"")
            assert typ == "OK" and hits[0].split() == ([b"2"] if address.startswith("alice") else [])
            # New mail after the upgrade takes the next uid.
            typ, appended = imap.append("INBOX", "(\\Flagged)", None, b"Subject: after\r\n\r\nnew\r\n")
            assert typ == "OK"
            if "INBOX" in boxes:
                assert f"APPENDUID {boxes['INBOX']['uidvalidity']} {boxes['INBOX']['uidnext']}".encode() in appended[0]
        finally:
            imap.logout()
    pop = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    try:
        pop.user("alice@example.org")
        pop.pass_(expected["passwords"]["alice@example.org"])
        inbox = expected["accounts"]["alice@example.org"]["INBOX"]["messages"]
        count, _ = pop.stat()
        assert count == len(inbox) + 1  # and the one appended above
        _, lines, _ = pop.retr(2)
        assert hashlib.sha256(b"\r\n".join(lines) + b"\r\n").hexdigest() == inbox[1]["sha256"]
    finally:
        pop.quit()


def _failing_step(conn: sqlite3.Connection) -> None:
    """Does part of the work, then fails as a full disk would."""
    conn.execute("ALTER TABLE blobs ADD COLUMN wire_form INTEGER NOT NULL DEFAULT 0")
    conn.execute("UPDATE mailboxes SET uidnext = uidnext + 100")
    raise sqlite3.OperationalError("database or disk is full")


async def test_failed_upgrade_leaves_the_store_byte_identical_and_names_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, _ = _old_copy("schema1", tmp_path)
    db = data / "store.sqlite3"
    before = db.read_bytes()
    monkeypatch.setitem(upgrade.STEPS, 2, _failing_step)
    with pytest.raises(UpgradeFailed) as failed:
        SqliteStore(db, data / "blobs")
    message = str(failed.value)
    assert "from schema 1 to" in message and "left unchanged at schema 1" in message
    assert "disk is full" in message and f"{db}.pre-upgrade-v1" in message
    assert db.read_bytes() == before
    assert not (data / "store.sqlite3-wal").exists() or (data / "store.sqlite3-wal").stat().st_size == 0
    monkeypatch.undo()
    store = SqliteStore(db, data / "blobs")  # the real steps then upgrade it
    try:
        assert _stored_version(db) == SCHEMA_VERSION
    finally:
        await store.close()


def _po(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "postoffice", *args, "--data", str(data)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})


def test_failed_upgrade_from_the_command_line_is_one_sentence(tmp_path: Path) -> None:
    data, _ = _old_copy("schema1", tmp_path)
    db = data / "store.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE blobs_v2 (x)")  # in the way of the step's table rebuild
    conn.commit()
    conn.close()
    before = db.read_bytes()
    result = _po(data, "user", "list")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "left unchanged at schema 1" in result.stderr and "pre-upgrade-v1" in result.stderr
    assert db.read_bytes() == before


def test_a_store_from_a_newer_postoffice_is_refused(tmp_path: Path) -> None:
    data, _ = _old_copy("schema2", tmp_path)
    db = data / "store.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(SchemaTooNew, match="newer postoffice"):
        SqliteStore(db, data / "blobs")
    for args in (("user", "list"), ("serve", "--dev")):
        result = _po(data, *args)
        assert result.returncode == 1, args
        assert "Traceback" not in result.stderr
        assert "upgrade postoffice" in result.stderr, result.stderr
    assert db.read_bytes() == before
    assert not list(data.glob("*.pre-upgrade-*"))


def test_no_pre_upgrade_copy_of_a_store_another_process_upgraded_meanwhile(tmp_path: Path) -> None:
    """Two processes open an old store at once: the second one's copy, taken after the first
    committed the upgrade, must not replace the first one's copy of the old file."""
    data, _ = _old_copy("schema1", tmp_path)
    db = data / "store.sqlite3"
    conn = sqlite3.connect(db)
    try:
        assert upgrade.copy_before_upgrade(conn, db, 1) == data / "store.sqlite3.pre-upgrade-v1"
        kept = (data / "store.sqlite3.pre-upgrade-v1").read_bytes()
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        conn.commit()  # the other process's upgrade
        assert upgrade.copy_before_upgrade(conn, db, 1) is None
    finally:
        conn.close()
    assert (data / "store.sqlite3.pre-upgrade-v1").read_bytes() == kept
    assert sorted(p.name for p in data.glob("*.pre-upgrade-*")) == ["store.sqlite3.pre-upgrade-v1"]
