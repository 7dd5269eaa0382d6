"""Hostile and stalled clients over real sockets: literal limits are enforced before the bytes are
read, and a client that stops reading or stops mid-command holds nothing anyone else needs."""
from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

USER = "bob@example.test"
LIMIT = 1_000_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap", "pop3", "smtp"], limits={"max_message_size": LIMIT}).start()
    live.add_user(USER)
    yield live
    live.stop()


def connect(server: LiveServer, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.ports["imap"]))
    assert sock.recv(4096).startswith(b"* OK")
    return sock


def command(sock: socket.socket, data: bytes, tag: bytes) -> bytes:
    """Send `data` and read until the tagged reply for `tag`."""
    sock.sendall(data)
    reply = b""
    while not any(line.startswith(tag + b" ") for line in reply.split(b"\r\n")):
        chunk = sock.recv(65536)
        assert chunk, reply
        reply += chunk
    return reply


def test_literal_limits_before_and_after_login(server: LiveServer) -> None:
    sock = connect(server)
    # Before login nothing larger than a password's worth: a synchronising literal is refused
    # without "+", so its bytes are never sent.
    assert b"a NO [TOOBIG]" in command(sock, b"a LOGIN {100000}\r\n", b"a")
    assert b"b OK" in command(sock, b"b NOOP\r\n", b"b")
    # A non-synchronising one cannot be refused before it arrives: BAD, its bytes skipped.
    flood = b"c LOGIN {100000+}\r\n" + b"x" * 100_000 + b" pw\r\nd NOOP\r\n"
    reply = command(sock, flood, b"d")
    assert b"c BAD [TOOBIG]" in reply and b"d OK" in reply
    assert b"e OK" in command(sock, f'e LOGIN {USER} "{PASSWORD}"\r\n'.encode(), b"e")
    # After login the limit is the message size limit.
    assert b"f NO [TOOBIG]" in command(sock, f"f APPEND INBOX {{{LIMIT + 1}}}\r\n".encode(), b"f")
    big = f"g APPEND INBOX {{{2 * LIMIT}+}}\r\n".encode() + b"y" * (2 * LIMIT) + b"\r\nh NOOP\r\n"
    reply = command(sock, big, b"h")
    assert b"g BAD [TOOBIG]" in reply and b"h OK" in reply
    message = b"Subject: fits\r\n\r\nbody\r\n"
    reply = command(sock, f"i APPEND INBOX {{{len(message)}+}}\r\n".encode() + message + b"\r\n", b"i")
    assert b"i OK [APPENDUID" in reply
    assert len(server.messages(USER)) == 1
    sock.close()


def test_stalled_clients_block_no_one(server: LiveServer) -> None:
    body = b"".join(b"%06d " % i + b"z" * 90 + b"\r\n" for i in range(9_000))  # ~880 KB
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as smtp:
        for n in range(4):
            smtp.sendmail("alice@example.test", [USER], b"Subject: big %d\r\n\r\n" % n + body)

    stalled: list[socket.socket] = []
    # 1. Asks for 3.5 MB and never reads a byte of it: the server's writes to it block.
    reader = connect(server, rcvbuf=4096)
    command(reader, f'a LOGIN {USER} "{PASSWORD}"\r\nb SELECT INBOX\r\n'.encode(), b"b")
    reader.sendall(b"c FETCH 1:* BODY[]\r\n")
    stalled.append(reader)
    # 2. Starts an APPEND to the same mailbox and stops in the middle of the literal.
    appender = connect(server)
    command(appender, f'a LOGIN {USER} "{PASSWORD}"\r\n'.encode(), b"a")
    appender.sendall(b"b APPEND INBOX {5000}\r\n")
    assert appender.recv(100).startswith(b"+")
    appender.sendall(b"Subject: half")
    stalled.append(appender)
    # 3. Sends half a command line.
    half = connect(server)
    half.sendall(b"a LOG")
    stalled.append(half)
    # 4. A POP3 session that RETRs the big message and does not read it.
    pop = socket.socket()
    pop.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    pop.settimeout(10)
    pop.connect(("127.0.0.1", server.ports["pop3"]))
    pop.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\nRETR 1\r\nRETR 2\r\nRETR 3\r\n".encode())
    stalled.append(pop)
    time.sleep(0.5)

    # Meanwhile: an IDLE session, a delivery, and another session changing and expunging the
    # very messages the stalled reader asked for.
    idler = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    idler.login(USER, PASSWORD)
    idler.select("INBOX")
    tag = idler._new_tag()
    idler.send(tag + b" IDLE\r\n")
    assert idler.readline().startswith(b"+")
    start = time.monotonic()
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as smtp:
        smtp.sendmail("alice@example.test", [USER], b"Subject: small\r\n\r\nstill flowing\r\n")
    assert idler.readline() == b"* 5 EXISTS\r\n"
    other = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    other.login(USER, PASSWORD)
    other.select("INBOX")
    assert other.store("1:2", "+FLAGS", "\\Deleted")[0] == "OK"
    assert other.expunge()[0] == "OK"
    assert other.search(None, "BODY", '"still flowing"')[1] == [b"3"]
    other.logout()
    elapsed = time.monotonic() - start
    assert elapsed < 10, elapsed  # generous: a blocked writer would hang here until the timeout

    # The stalled reader, once it reads, gets every byte it asked for, expunged messages included
    # (RFC 9051 §7.5.1: it had not been told).
    reader.settimeout(20)
    data = b""
    while b"c OK" not in data[-200:]:
        chunk = reader.recv(1 << 20)
        assert chunk
        data += chunk
    assert data.count(body) == 4
    for sock in stalled:
        sock.close()
    client = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=10)  # the stalled POP3 session let go
    for _ in range(50):
        try:
            client.user(USER)
            client.pass_(PASSWORD)
            break
        except poplib.error_proto:
            time.sleep(0.1)
    assert client.stat()[0] == 3
    client.quit()
