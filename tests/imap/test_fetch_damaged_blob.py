"""A message file shorter than its recorded size (a disk or file-system fault) is never served as
if whole: FETCH of its content answers NO [CORRUPTION] (RFC 5530), the other messages of the
command are sent, the session goes on, and one ERROR line names the file, mailbox and UID."""
from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

USER = "bob@example.test"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user(USER)
    yield live
    live.stop()


def append_and_truncate(server: LiveServer, count: int, damaged_uid: int) -> str:
    """`count` messages in INBOX; the file of `damaged_uid` loses its second half. Its hash."""
    assert server.services is not None
    store = server.services.store

    async def run() -> str:
        from postoffice.store.interface import NewMessage

        account = await store.get_account(USER)
        assert account is not None
        box = await store.get_mailbox(account.id, "INBOX")
        assert box is not None
        for n in range(1, count + 1):
            raw = (f"Subject: message {n}\r\nMessage-ID: <m{n}@example.test>\r\n\r\n" + f"line {n}\r\n" * 50).encode()
            await store.append_messages(box.id, [NewMessage(await store.put_blob(raw), raw=raw)])
        (record,) = await store.get_messages(box.id, [damaged_uid])
        return record.blob

    sha = server.call(run())
    path: Path = store.blobs.path(sha)  # type: ignore[attr-defined]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return sha


def command(sock: socket.socket, data: bytes, tag: bytes) -> bytes:
    sock.sendall(data)
    reply = b""
    while not re.search(rb"(^|\r\n)" + tag + rb" ", reply):
        chunk = sock.recv(65536)
        assert chunk, reply
        reply += chunk
    return reply


def logged_in(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
    assert sock.recv(4096).startswith(b"* OK")
    assert b"a OK" in command(sock, f'a LOGIN {USER} "{PASSWORD}"\r\n'.encode(), b"a")
    assert b"b OK" in command(sock, b"b SELECT INBOX\r\n", b"b")
    return sock


@pytest.mark.parametrize("item", ["BODY[]", "BODY.PEEK[]", "RFC822", "RFC822.TEXT", "BODY[TEXT]",
                                  "BODY.PEEK[]<0.20>", "BINARY.PEEK[]", "BINARY.SIZE[]"])
def test_fetch_of_a_truncated_file_answers_no_corruption_and_the_session_goes_on(
        server: LiveServer, item: str, caplog: pytest.LogCaptureFixture) -> None:
    sha = append_and_truncate(server, 3, damaged_uid=2)
    sock = logged_in(server)
    with caplog.at_level(logging.ERROR):
        reply = command(sock, f"c FETCH 1:3 (UID {item})\r\n".encode(), b"c")
    assert re.search(rb"\r\nc NO \[CORRUPTION\] [^\r\n]*UID 2", reply), reply
    # Messages 1 and 3 are sent; message 2 gets no FETCH response at all (no short literal).
    assert re.search(rb"^\* 1 FETCH \(UID 1 ", reply, re.M) and re.search(rb"^\* 3 FETCH \(UID 3 ", reply, re.M), reply
    assert not re.search(rb"^\* 2 FETCH", reply, re.M), reply
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and sha in errors[0] and "uid 2" in errors[0] and "INBOX" in errors[0], errors
    # The session is intact: later commands, and the other messages, work.
    assert b"d OK" in command(sock, b"d NOOP\r\n", b"d")
    reply = command(sock, b"e UID FETCH 3 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n", b"e")
    assert b"Subject: message 3" in reply and b"e OK" in reply
    # Items that need no content are still answered from the index.
    reply = command(sock, b"f FETCH 2 (UID FLAGS RFC822.SIZE)\r\n", b"f")
    assert b"* 2 FETCH (UID 2 FLAGS" in reply and b"f OK" in reply
    sock.close()


def test_fetch_of_a_missing_file_answers_no_corruption(server: LiveServer) -> None:
    sha = append_and_truncate(server, 2, damaged_uid=1)
    server.services.store.blobs.path(sha).unlink()  # type: ignore[union-attr]
    sock = logged_in(server)
    reply = command(sock, b"c FETCH 1:2 BODY.PEEK[]\r\n", b"c")
    assert b"c NO [CORRUPTION]" in reply and b"* 2 FETCH" in reply and b"* 1 FETCH" not in reply
    assert b"d OK" in command(sock, b"d NOOP\r\n", b"d")
    sock.close()


def test_a_damaged_message_that_fetch_could_not_send_stays_unread(server: LiveServer) -> None:
    """FETCH BODY[] sets \\Seen (RFC 9051 §6.4.5) on what it sends; old code set it before
    reading, so a damaged message nobody could read looked read afterwards (to this session
    and every other). The messages that were sent are \\Seen as usual."""
    append_and_truncate(server, 2, damaged_uid=1)
    sock = logged_in(server)
    reply = command(sock, b"c FETCH 1:2 BODY[]\r\n", b"c")
    assert b"c NO [CORRUPTION]" in reply and b"* 2 FETCH" in reply
    reply = command(sock, b"d FETCH 1:2 FLAGS\r\n", b"d")
    flags = dict(re.findall(rb"^\* (\d) FETCH \(FLAGS \(([^)]*)\)\)", reply, re.M))
    assert b"\\Seen" not in flags[b"1"] and b"\\Seen" in flags[b"2"], reply
    sock.close()
    other = logged_in(server)  # what another session (a new login) sees
    reply = command(other, b"e FETCH 1 FLAGS\r\n", b"e")
    assert b"\\Seen" not in reply and b"e OK" in reply, reply
    other.close()
