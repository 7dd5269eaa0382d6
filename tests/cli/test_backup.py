"""`postoffice backup` and `postoffice restore`, driven as a user would: the real command, against
a real server that keeps delivering (SMTP) and expunging (IMAP) while the backup runs."""
from __future__ import annotations

import hashlib
import imaplib
import json
import os
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer
from postoffice.backup import verify_backup
from postoffice.store.sqlite.backup_hold import BackupHold

KEEPER = "keeper@example.test"  # never expunged: every message acked before the backup must be in it
CHURN = "churn@example.test"  # emptied all the time, so blob files are removed during the backup


def po(*args: str, data: Path | None = None, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "postoffice", *args] + (["--data", str(data)] if data is not None else [])
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"})
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["smtp", "imap"]).start()
    live.add_user(KEEPER)
    live.add_user(CHURN)
    try:
        yield live
    finally:
        live.stop()


def _message(token: str, size: int = 2000) -> bytes:
    body = (f"{token} " * (size // (len(token) + 1) + 1))[:size]
    return (f"From: sender@example.net\r\nTo: someone\r\nSubject: {token}\r\nMessage-ID: <{token}@example.net>\r\n"
            f"\r\n{body}\r\n").encode()


def _size_of(token: str) -> int:
    """The size `_message` was given for a token: live-C-N tokens grow with N."""
    return 1000 + 37 * int(token.rsplit("-", 1)[1]) if token.startswith("live-") else 2000


def _deliver(port: int, recipient: str, tokens: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        for token in tokens:
            smtp.sendmail("sender@example.net", [recipient], _message(token))


def _stored_by_token(live: LiveServer, address: str) -> dict[str, bytes]:
    found = {}
    for raw in live.messages(address):
        subject = next(line for line in raw.split(b"\r\n") if line.startswith(b"Subject: "))
        found[subject[len(b"Subject: "):].decode()] = raw
    return found


class Traffic:
    """Four SMTP clients delivering (to KEEPER and CHURN, alternately) and one IMAP client
    expunging CHURN's INBOX, until stopped; every acknowledged message is recorded with the
    time of its 250."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.acked: list[tuple[float, str, str]] = []  # (time of the 250, recipient, token)
        self.expunged = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._smtp, args=(n,)) for n in range(4)]
        self._threads.append(threading.Thread(target=self._imap))

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)
        assert not self.errors, self.errors

    def _smtp(self, client: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", self.live.ports["smtp"], timeout=60) as smtp:
                n = 0
                while not self._stop.is_set():
                    recipient = KEEPER if n % 2 == 0 else CHURN
                    token = f"live-{client}-{n}"
                    smtp.sendmail("sender@example.net", [recipient], _message(token, _size_of(token)))
                    self.acked.append((time.monotonic(), recipient, token))
                    n += 1
        except BaseException as error:  # reported by __exit__
            self.errors.append(error)

    def _imap(self) -> None:
        try:
            imap = imaplib.IMAP4("127.0.0.1", self.live.ports["imap"], timeout=60)
            imap.login(CHURN, PASSWORD)
            while not self._stop.is_set():
                _, count = imap.select("INBOX")
                if int(count[0]) < 2:
                    imap.close()
                    time.sleep(0.02)
                    continue
                # The older half: the rest stays a while, so the backup's snapshot holds many
                # messages that are expunged (and their files removed) while it copies.
                imap.store(f"1:{int(count[0]) // 2}", "+FLAGS", "(\\Deleted)")
                _, gone = imap.expunge()
                self.expunged += len([g for g in gone if g])
                imap.close()  # lets go of the mailbox: the server removes the blob files now
                time.sleep(0.02)
            imap.logout()
        except BaseException as error:
            self.errors.append(error)


def _referenced_blobs_present(dest: Path) -> None:
    conn = sqlite3.connect(dest / "store.sqlite3")
    try:
        rows = conn.execute("SELECT b.sha256, b.size FROM blobs b WHERE b.refcount > 0").fetchall()
        rows += conn.execute("SELECT b.sha256, b.size FROM messages m JOIN blobs b ON b.id = m.blob").fetchall()
    finally:
        conn.close()
    for sha, size in rows:
        path = dest / "blobs" / sha[:2] / sha
        assert path.is_file() and path.stat().st_size == size, sha
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha


def test_backup_while_four_clients_deliver_and_one_expunges_restores_every_acked_message(
    server: LiveServer, tmp_path: Path,
) -> None:
    # Mail from before: a store with some weight, so the backup has blob files to copy.
    threads = [threading.Thread(target=_deliver, args=(server.ports["smtp"], KEEPER, [f"old-{c}-{n}" for n in range(40)]))
               for c in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    dest = tmp_path / "backup"
    with Traffic(server) as traffic:
        deadline = time.monotonic() + 120
        while len(traffic.acked) < 20 or traffic.expunged < 5:  # every client is under way
            time.sleep(0.05)
            assert not traffic.errors and time.monotonic() < deadline, (len(traffic.acked), traffic.expunged)
        began = time.monotonic()
        result = po("backup", str(dest), "--json", data=server.data_dir)
        ended = time.monotonic()
        during = [a for a in traffic.acked if began < a[0] < ended]
    summary = json.loads(result.stdout)
    assert during, "no delivery was acknowledged while the backup ran"
    assert traffic.expunged > 0
    # Nothing in the backup references a missing or different blob file.
    _referenced_blobs_present(dest)
    verify_backup(dest)
    # Restore into a new directory and serve it: every message acked before the backup began
    # is there, byte for byte as the live server stores it.
    restored_dir = tmp_path / "restored"
    po("restore", str(dest), data=restored_dir)
    live = _stored_by_token(server, KEEPER)
    before = [f"old-{c}-{n}" for c in range(4) for n in range(40)]
    before += [token for when, rcpt, token in traffic.acked if when < began and rcpt == KEEPER]
    restored_server = LiveServer(restored_dir, ["imap"]).start()
    try:
        restored = _stored_by_token(restored_server, KEEPER)
        imap = imaplib.IMAP4("127.0.0.1", restored_server.ports["imap"], timeout=30)
        imap.login(KEEPER, PASSWORD)
        typ, count = imap.select("INBOX")
        assert typ == "OK" and int(count[0]) == len(restored)
        imap.logout()
    finally:
        restored_server.stop()
    missing = [token for token in before if token not in restored]
    assert not missing, f"{len(missing)} acknowledged messages missing from the restore: {missing[:5]}"
    for token in before:
        assert restored[token] == live[token], token
        assert restored[token].endswith(_message(token, _size_of(token))), token  # what the client sent
    assert summary["messages"] >= len(before)


def test_a_blob_expunged_during_a_backup_stays_until_the_backup_ends(server: LiveServer) -> None:
    _deliver(server.ports["smtp"], CHURN, ["doomed"])
    (raw,) = server.messages(CHURN)
    blob = server.data_dir / "blobs"
    sha = hashlib.sha256(raw).hexdigest()
    path = blob / sha[:2] / sha
    assert path.exists()
    hold = BackupHold(server.data_dir / "store.sqlite3-locks")
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    imap.login(CHURN, PASSWORD)
    with hold:
        imap.select("INBOX")
        imap.store("1", "+FLAGS", "(\\Deleted)")
        imap.expunge()
        imap.close()  # the session lets go of the mailbox: its expunged blobs may go now
        time.sleep(0.5)
        assert path.exists(), "a blob the backup's snapshot may reference was removed during the backup"
    # After the backup, the next sweep removes it (here: the next release of the mailbox).
    imap.select("INBOX")
    imap.close()
    deadline = time.monotonic() + 30
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    imap.logout()
    assert not path.exists()


def test_second_backup_copies_only_new_blobs_and_drops_unneeded_ones(server: LiveServer, tmp_path: Path) -> None:
    _deliver(server.ports["smtp"], CHURN, [f"first-{n}" for n in range(5)])
    dest = tmp_path / "backup"
    first = json.loads(po("backup", str(dest), "--json", data=server.data_dir).stdout)
    assert (first["copied_files"], first["blob_files"], first["removed_files"]) == (5, 5, 0)
    kept = {p: p.stat().st_ino for p in (dest / "blobs").glob("??/*")}
    _deliver(server.ports["smtp"], CHURN, ["second-1", "second-2"])
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    imap.login(CHURN, PASSWORD)
    imap.select("INBOX")
    imap.store("1", "+FLAGS", "(\\Deleted)")
    imap.expunge()
    imap.logout()
    second = json.loads(po("backup", str(dest), "--json", data=server.data_dir).stdout)
    assert (second["copied_files"], second["blob_files"], second["removed_files"]) == (2, 6, 1)
    still = {p: p.stat().st_ino for p in (dest / "blobs").glob("??/*") if p in kept}
    assert len(still) == 4 and all(still[p] == kept[p] for p in still)  # not copied again
    verify_backup(dest)


def test_backup_and_restore_carry_config_tls_and_dkim_keys(tmp_path: Path) -> None:
    data = tmp_path / "data"
    po("init", "--domain", "example.org", "--hostname", "mail.example.org", data=data)
    dest = tmp_path / "backup"
    out = po("backup", str(dest), data=data).stdout
    assert "Backed up 0 messages" in out and "Checked" in out
    restored = tmp_path / "restored"
    po("restore", str(dest), data=restored)
    for name in ("postoffice.toml", "tls/cert.pem", "tls/key.pem", "keys/example.org.mail.pem"):
        assert (restored / name).read_bytes() == (data / name).read_bytes(), name
        assert (restored / name).stat().st_mode & 0o777 == (data / name).stat().st_mode & 0o777, name
    assert json.loads(po("domain", "list", "--json", data=restored).stdout) == [{"name": "example.org", "catch_all": None}]


def test_backup_and_restore_refuse_in_one_plain_sentence(tmp_path: Path) -> None:
    data = tmp_path / "data"
    po("init", "--hostname", "mail.example.org", data=data)
    cases = [
        (("backup", str(tmp_path / "nowhere"), "--data", str(tmp_path / "empty")), "not a postoffice data directory"),
        (("backup", str(data / "postoffice.toml" / "x"), "--data", str(data)), "not writable"),
        (("restore", str(tmp_path), "--data", str(tmp_path / "new")), "not a postoffice backup"),
        (("restore", str(tmp_path), "--data", str(data)), "not empty"),
    ]
    damaged = tmp_path / "damaged"
    po("init", "--hostname", "mail.example.org", data=damaged)
    (damaged / "store.sqlite3").write_bytes(b"not a database, just some bytes " * 200)
    cases.append((("backup", str(tmp_path / "of-damaged"), "--data", str(damaged)), "could not be copied"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    cases.append((("backup", str(tmp_path / "other"), "--data", str(data)), "holds other files"))
    for args, expected in cases:
        result = po(*args, check=False)
        assert result.returncode == 1, args
        assert expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stderr.count("\n") <= 2, result.stderr
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    for args in (("backup",), ("restore",)):
        assert "Example" in po(*args, "--help").stdout


def test_restore_of_a_damaged_backup_stops_before_the_store_appears(server: LiveServer, tmp_path: Path) -> None:
    _deliver(server.ports["smtp"], KEEPER, ["precious-1", "precious-2"])
    dest = tmp_path / "backup"
    po("backup", str(dest), data=server.data_dir)
    victim = sorted((dest / "blobs").glob("??/*"))[0]
    damaged = bytearray(victim.read_bytes())
    damaged[-3] ^= 0x20  # same size: only the hash can tell
    victim.write_bytes(bytes(damaged))
    result = po("restore", str(dest), data=tmp_path / "restored", check=False)
    assert result.returncode == 1 and "damaged" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "restored" / "store.sqlite3").exists()
    assert not (tmp_path / "restored" / "postoffice.toml").exists()
    victim.unlink()
    result = po("restore", str(dest), data=tmp_path / "restored2", check=False)
    assert result.returncode == 1 and "missing" in result.stderr
    assert not (tmp_path / "restored2").exists()  # checked before anything was written


def test_a_second_backup_into_the_same_folder_while_one_runs_is_refused(server: LiveServer, tmp_path: Path) -> None:
    """Two backups into one folder (an hourly cron job that overlaps a slow one): the second
    unlinked the first's database copy in progress, and one's clean-up of unneeded message files
    could remove files the other's newer database references. Now the second is refused at once
    in one sentence and the first completes."""
    from postoffice.backup import BackupError, back_up
    from postoffice.config import load_config

    config = load_config(server.data_dir)
    dest = tmp_path / "backup"
    _deliver(server.ports["smtp"], KEEPER, ["earlier"])
    back_up(config, dest)  # an earlier backup, updated by both
    _deliver(server.ports["smtp"], KEEPER, [f"overlap-{n}" for n in range(3)])
    copying, go_on = threading.Event(), threading.Event()

    def slow(done: int, total: int) -> None:
        copying.set()
        go_on.wait(30)

    first_error: list[BaseException] = []
    first = threading.Thread(target=lambda: _capture(first_error, back_up, config, dest, slow))
    first.start()
    try:
        assert copying.wait(30)
        second_error: list[BaseException] = []
        second = threading.Thread(target=lambda: _capture(second_error, back_up, config, dest), daemon=True)
        second.start()
        second.join(10)
        assert not second.is_alive(), "the second backup waited for the first instead of refusing"
        assert len(second_error) == 1 and isinstance(second_error[0], BackupError), second_error
        assert "Another backup" in str(second_error[0]) and str(dest) in str(second_error[0])
    finally:
        go_on.set()
        first.join(60)
    assert first_error == []
    assert verify_backup(dest).messages == 4


def _capture(errors: list[BaseException], function: object, *args: object) -> None:
    try:
        function(*args)  # type: ignore[operator]
    except BaseException as error:  # the test reads it
        errors.append(error)


def test_a_first_backup_killed_part_way_can_be_run_again_into_the_same_folder(server: LiveServer, tmp_path: Path) -> None:
    """A first backup killed while copying the database leaves store.sqlite3.partial (and
    message files): running it again was refused as 'holds other files'."""
    _deliver(server.ports["smtp"], KEEPER, ["again-1"])
    dest = tmp_path / "backup"
    (dest / "blobs" / "tmp").mkdir(parents=True)
    (dest / "store.sqlite3.partial").write_bytes(b"half a database")
    (dest / "blobs" / "tmp" / f"{'0' * 64}.12345").write_bytes(b"half a message")
    out = po("backup", str(dest), data=server.data_dir).stdout
    assert "Backed up 1 messages" in out
    assert not (dest / "store.sqlite3.partial").exists()
    assert verify_backup(dest).messages == 1


def test_a_folder_on_a_file_system_without_locks_is_backed_up_all_the_same(
    server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Some network mounts answer flock(2) with ENOLCK: the one-backup-at-a-time guard steps
    aside there rather than making every backup fail."""
    import errno

    import postoffice.backup as backup_module
    from postoffice.config import load_config

    real_flock = backup_module.fcntl.flock

    def no_locks(fd: int, operation: int) -> None:  # on the backup folder only
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOLCK, "No locks available")
        real_flock(fd, operation)

    _deliver(server.ports["smtp"], KEEPER, ["unlocked"])
    monkeypatch.setattr(backup_module.fcntl, "flock", no_locks)
    dest = tmp_path / "backup"
    assert backup_module.back_up(load_config(server.data_dir), dest).messages == 1
    monkeypatch.undo()
    assert verify_backup(dest).messages == 1


def test_a_failed_restore_leaves_nothing_behind_so_it_can_be_run_again(server: LiveServer, tmp_path: Path) -> None:
    """A restore stopped part way (a damaged file found while copying, a full disk, Ctrl-C) left
    the message files it had copied: running it again, once the cause was dealt with, was refused
    as 'not empty'. Now it removes what it wrote."""
    _deliver(server.ports["smtp"], KEEPER, [f"retry-{n}" for n in range(4)])
    dest = tmp_path / "backup"
    po("backup", str(dest), data=server.data_dir)
    victim = sorted((dest / "blobs").glob("??/*"))[-1]  # copied after others
    good = victim.read_bytes()
    damaged = bytearray(good)
    damaged[-3] ^= 0x20
    victim.write_bytes(bytes(damaged))
    restored = tmp_path / "restored"
    restored.mkdir()
    result = po("restore", str(dest), data=restored, check=False)
    assert result.returncode == 1 and "damaged" in result.stderr and "Traceback" not in result.stderr
    assert list(restored.iterdir()) == []
    victim.write_bytes(good)  # the backup mended (here: the file put back)
    po("restore", str(dest), data=restored)
    assert verify_backup(dest).messages == 4
    assert len(list((restored / "blobs").glob("??/*"))) == 4
