"""A real server whose data directory fills up (a small tmpfs): every client gets its protocol's
temporary error and a usable connection, nothing acknowledged is lost, no temporary file stays,
reads and logins go on, and the server takes mail again as soon as there is room, without a
restart. Issue 12: "44 of 44 SMTP deliveries got a dropped connection after DATA"."""
from __future__ import annotations

import imaplib
import logging
import poplib
import re
import smtplib
import socket
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from live_server import DOMAIN, PASSWORD, LiveServer
from small_disk import SmallDisk, small_disk
from smtp_client import RawSmtp

USER = f"carol@{DOMAIN}"
OTHER = f"dave@{DOMAIN}"
CLIENTS = 6
TIMEOUT = 30


@pytest.fixture
def disk() -> Iterator[SmallDisk]:
    with small_disk(32) as mounted:
        yield mounted


@pytest.fixture
def server(disk: SmallDisk) -> Iterator[LiveServer]:
    live = LiveServer(disk.root / "data", ["smtp", "lmtp", "imap", "pop3"]).start()
    live.add_user(USER)
    live.add_user(OTHER)
    yield live
    live.stop()


def message(n: int, size: int = 0) -> bytes:
    body = "".join(f"line {i} of message {n}, padded to make it long enough\r\n" for i in range(size // 56 + 1))
    return (f"From: sender@example.org\r\nTo: {USER}\r\nSubject: disk full {n}\r\n"
            f"Message-ID: <full{n}@example.org>\r\n\r\n{body}").encode()


def smtp_send(server: LiveServer, raw: bytes) -> tuple[int, bytes, int]:
    """(reply code to DATA, its text, NOOP's code afterwards: the connection must still work)."""
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=TIMEOUT) as client:
        try:
            client.sendmail("sender@example.org", [USER], raw)
            code, text = 250, b""
        except smtplib.SMTPDataError as exc:
            code, text = exc.smtp_code, exc.smtp_error
        return code, text, client.noop()[0]


def bdat_send(server: LiveServer, raw: bytes) -> tuple[int, str]:
    client = RawSmtp(server.ports["smtp"], timeout=TIMEOUT)
    try:
        assert client.cmd("EHLO client.example.org")[0] == 250
        assert client.cmd("MAIL FROM:<sender@example.org>")[0] == 250
        assert client.cmd(f"RCPT TO:<{USER}>")[0] == 250
        half = len(raw) // 2
        client.send(f"BDAT {half}\r\n".encode() + raw[:half])
        assert client.reply()[0] == 250
        client.send(f"BDAT {len(raw) - half} LAST\r\n".encode() + raw[half:])
        reply = client.reply()
        assert client.cmd("NOOP")[0] == 250
        return reply
    finally:
        client.close()


def lmtp_send(server: LiveServer, raw: bytes) -> list[tuple[int, str]]:
    client = RawSmtp(server.ports["lmtp"], timeout=TIMEOUT)
    try:
        assert client.cmd("LHLO client.example.org")[0] == 250
        assert client.cmd("MAIL FROM:<sender@example.org>")[0] == 250
        assert client.cmd(f"RCPT TO:<{USER}>")[0] == 250
        assert client.cmd(f"RCPT TO:<{OTHER}>")[0] == 250
        assert client.cmd("DATA")[0] == 354
        client.send(raw + b".\r\n")
        replies = [client.reply(), client.reply()]  # RFC 2033: one per recipient
        assert client.cmd("NOOP")[0] == 250
        return replies
    finally:
        client.close()


def imap_login(server: LiveServer) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=TIMEOUT)
    client.login(USER, PASSWORD)
    return client


def pop3_login(server: LiveServer) -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=TIMEOUT)
    client.user(USER)
    client.pass_(PASSWORD)
    return client


def empty_wal(server: LiveServer) -> None:
    """Truncate the WAL so that any commit must grow it: on the full disk SQLite fails too
    (SQLITE_FULL), not only the blob files, even for writes that need no new file."""
    assert server.services is not None
    with sqlite3.connect(server.services.store.db_path) as conn:  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0


def temp_files(server: LiveServer) -> list[Path]:
    assert server.services is not None
    return list((server.services.store.blobs.root / "tmp").iterdir())  # type: ignore[attr-defined]


def assert_acked_present(server: LiveServer, smtp_acked: list[bytes], appended: list[bytes]) -> None:
    stored = server.messages(USER)
    for raw in smtp_acked:  # stored after our Return-Path and Received lines
        assert sum(blob.endswith(raw) for blob in stored) == 1, raw[:80]
    for raw in appended:
        assert stored.count(raw) == 1, raw[:80]


@dataclass
class Full:
    """A server whose disk is full, with what it acknowledged before."""

    server: LiveServer
    disk: SmallDisk
    smtp_acked: list[bytes]
    appended: list[bytes]

    def check_after(self, caplog: pytest.LogCaptureFixture, refusals: int) -> None:
        """Nothing acked lost, no temporary file, one WARNING per refusal and no traceback."""
        assert temp_files(self.server) == []
        assert_acked_present(self.server, self.smtp_acked, self.appended)
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged for a full disk"
        lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "refused" in r.getMessage()]
        assert len(lines) == refusals, lines


@pytest.fixture
def full(server: LiveServer, disk: SmallDisk, caplog: pytest.LogCaptureFixture) -> Full:
    # Mail acknowledged by SMTP and APPEND, small and large (staged) alike.
    smtp_acked = [message(1), message(2, 200_000)]
    for raw in smtp_acked:
        assert smtp_send(server, raw)[0] == 250
    appended = [message(3)]
    imap = imap_login(server)
    assert imap.append("INBOX", None, None, appended[0])[0] == "OK"
    imap.logout()
    empty_wal(server)
    disk.fill()
    caplog.clear()
    caplog.set_level(logging.WARNING)
    return Full(server, disk, smtp_acked, appended)


def test_smtp_clients_get_452_4_3_1_and_deliver_again_when_space_returns(
        full: Full, caplog: pytest.LogCaptureFixture) -> None:
    server = full.server
    # Several clients at once, small and large messages: 452 4.3.1 each, and the connection stays.
    raws = [message(100 + n, 100_000 if n % 2 else 0) for n in range(CLIENTS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        outcomes = list(pool.map(lambda raw: smtp_send(server, raw), raws))
    for code, text, noop in outcomes:
        assert (code, noop) == (452, 250), text
        assert text.startswith(b"4.3.1"), text
    code, text = bdat_send(server, message(200))  # CHUNKING (RFC 3030) ends the same way
    assert code == 452 and "4.3.1" in text, text
    assert [(c, t.split()[1]) for c, t in lmtp_send(server, message(201))] == [(452, "4.3.1")] * 2
    full.check_after(caplog, refusals=CLIENTS + 2)

    full.disk.free()  # room again: mail flows at once, with no restart
    more = [message(400 + n, 100_000 if n % 2 else 0) for n in range(CLIENTS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        assert [o[0] for o in pool.map(lambda raw: smtp_send(server, raw), more)] == [250] * CLIENTS
    assert bdat_send(server, message(500))[0] == 250
    assert [c for c, _ in lmtp_send(server, message(501))] == [250, 250]
    full.smtp_acked += [*more, message(500), message(501)]
    full.check_after(caplog, refusals=CLIENTS + 2)


def test_imap_writes_get_no_overquota_while_login_select_and_fetch_work(
        full: Full, caplog: pytest.LogCaptureFixture) -> None:
    server, smtp_acked, appended = full.server, full.smtp_acked, full.appended
    imap = imap_login(server)
    for raw in (message(300), message(301, 150_000), appended[0]):  # new, staged, and rows only
        status, data = imap.append("INBOX", None, None, raw)
        assert (status, data[0][:12]) == ("NO", b"[OVERQUOTA] "), data
    status, data = imap.select("INBOX")
    assert status == "OK" and int(data[0]) == len(smtp_acked) + len(appended)
    status, data = imap.fetch("1:*", "(BODY.PEEK[])")
    assert status == "OK"
    bodies = [part[1] for part in data if isinstance(part, tuple)]
    assert len(bodies) == 3 and bodies[-1] == appended[0]
    status, data = imap.fetch("1", "(BODY[])")  # would set \Seen: the content comes anyway
    assert status == "OK" and data[0][1].endswith(smtp_acked[0])  # type: ignore[index]
    for status, data in (imap.copy("1", "Archive"), imap.store("1", "+FLAGS", "(\\Flagged)"),
                         imap.uid("MOVE", "1", "Archive")):
        assert (status, data[0][:12]) == ("NO", b"[OVERQUOTA] "), data
    imap.logout()
    full.check_after(caplog, refusals=6)

    full.disk.free()
    imap = imap_login(server)
    assert imap.append("INBOX", None, None, message(502))[0] == "OK"
    imap.select("INBOX")
    assert imap.copy("1", "Archive")[0] == "OK"
    assert imap.store("1", "+FLAGS", "(\\Flagged)")[0] == "OK"
    imap.logout()
    appended.append(message(502))
    full.check_after(caplog, refusals=6)


def test_pop3_quit_on_a_full_disk_deletes_nothing_and_says_so(full: Full, caplog: pytest.LogCaptureFixture) -> None:
    server = full.server
    pop = pop3_login(server)
    assert pop.stat()[0] == 3
    assert b"\r\n".join(pop.retr(1)[1]).endswith(full.smtp_acked[0].rstrip(b"\r\n"))
    pop.dele(1)
    with pytest.raises(poplib.error_proto, match="SYS/TEMP"):
        pop.quit()
    pop = pop3_login(server)
    assert pop.stat()[0] == 3
    pop.quit()
    full.check_after(caplog, refusals=1)

    full.disk.free()
    pop = pop3_login(server)
    pop.dele(1)
    assert pop.quit().startswith(b"+OK")
    pop = pop3_login(server)
    assert pop.stat()[0] == 2
    pop.quit()
    full.smtp_acked.pop(0)
    full.check_after(caplog, refusals=1)


def test_imap_close_on_a_full_disk_closes_the_mailbox_and_says_what_stayed(
        server: LiveServer, disk: SmallDisk, caplog: pytest.LogCaptureFixture) -> None:
    """CLOSE has no NO (RFC 9051 §6.4.1: OK, now in authenticated state, or BAD). Old code
    answered NO [OVERQUOTA] and left the mailbox selected, while clients take any answer to
    CLOSE as the end of the selection. Now, as Dovecot: an untagged NO [OVERQUOTA], then OK."""
    for n in (1, 2):
        assert smtp_send(server, message(n))[0] == 250
    imap = imap_login(server)
    imap.select("INBOX")
    assert imap.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    imap.logout()
    empty_wal(server)
    disk.fill()
    caplog.set_level(logging.WARNING)

    sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=TIMEOUT)

    def command(line: bytes, tag: bytes) -> bytes:
        sock.sendall(line)
        reply = b""
        while not re.search(rb"(^|\r\n)" + tag + rb" ", reply):
            chunk = sock.recv(65536)
            assert chunk, reply
            reply += chunk
        return reply

    assert sock.recv(4096).startswith(b"* OK")
    assert b"a OK" in command(f'a LOGIN {USER} "{PASSWORD}"\r\n'.encode(), b"a")
    assert b"b OK" in command(b"b SELECT INBOX\r\n", b"b")
    reply = command(b"c CLOSE\r\n", b"c")
    assert re.search(rb"^\* NO \[OVERQUOTA\] [^\r\n]*\\Deleted", reply, re.M) and b"\r\nc OK" in reply, reply
    assert b"d BAD" in command(b"d FETCH 1 FLAGS\r\n", b"d")  # no mailbox is selected any more
    sock.close()
    assert len(server.messages(USER)) == 2  # the \Deleted message is still there: nothing was expunged
    assert not [r for r in caplog.records if r.exc_info]
