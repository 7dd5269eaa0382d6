"""A message file shorter than its recorded size is never sent as a complete message: RETR and
TOP answer -ERR [SYS/PERM] before sending anything (the session goes on), and a file found short
in the middle of a stream ends the connection without the terminating "." line."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_pop3_server import USER, append, make_message, raw

from live_server import LiveServer
from postoffice.pop3.maildrop import DropMessage
from postoffice.pop3.session import Pop3Maildrop


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["pop3", "imap"]).start()
    live.add_user(USER)
    yield live
    live.stop()


def truncate_file_of(server: LiveServer, index: int) -> str:
    """Cut the file of the `index`-th INBOX message (0-based) to half its length; its hash."""
    assert server.services is not None
    store = server.services.store

    async def blob() -> str:
        account = await store.get_account(USER)
        assert account is not None
        box = await store.get_mailbox(account.id, "INBOX")
        assert box is not None
        return (await store.list_messages(box.id))[index].blob

    sha = server.call(blob())
    path: Path = store.blobs.path(sha)  # type: ignore[attr-defined]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return sha


@pytest.mark.parametrize("size", ["small", "streamed"])
def test_retr_and_top_of_a_truncated_file_answer_err_before_any_content(
        server: LiveServer, size: str, caplog: pytest.LogCaptureFixture) -> None:
    body = b"x" * 70 + b"\r\n"
    lines = 3 if size == "small" else 5000  # 5000 lines: above the 256 KB read whole
    for n in (1, 2, 3):
        append(server, make_message(n, body * lines))
    sha = truncate_file_of(server, 1)
    client = raw(server)
    client.send(f"USER {USER}\r\nPASS correct horse battery staple\r\n".encode())
    assert client.reply(2).count(b"+OK") == 2
    with caplog.at_level(logging.ERROR):
        client.send(b"RETR 2\r\n")
        assert client.reply().startswith(b"-ERR [SYS/PERM]")
        client.send(b"TOP 2 0\r\n")
        assert client.reply().startswith(b"-ERR [SYS/PERM]")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all(sha in e and "uid 2" in e and "INBOX" in e for e in errors), errors
    # Nothing else was sent for it, and the session goes on with the intact messages.
    client.send(b"RETR 3\r\n")
    first = client.reply()
    assert first.startswith(b"+OK"), first
    content = client.until(b"\r\n.\r\n")
    assert b"Subject: message 3" in content
    client.send(b"NOOP\r\n")
    assert client.reply().startswith(b"+OK")
    client.close()


def test_a_file_found_short_mid_stream_ends_without_the_terminator(tmp_path: Path) -> None:
    """The length is checked when the file is opened; a file cut after that (or one that a
    faulty disk returns short) is noticed when it ends early: no terminator is sent."""
    from postoffice.store.interface import BlobDamaged

    path = tmp_path / "blob"
    path.write_bytes(b"Subject: x\r\n\r\n" + b"line\r\n" * 1000)
    message = DropMessage(uid=7, size=path.stat().st_size + 500)
    drop = Pop3Maildrop(None, None, 1, None, {7: "ab" * 32})  # type: ignore[arg-type]
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        sent.append(data)

    async def stream() -> None:
        with path.open("rb") as handle:
            await drop.send_message(message, handle, send)

    with pytest.raises(BlobDamaged):
        asyncio.run(stream())
    assert b"".join(sent).startswith(b"Subject: x\r\n") and not b"".join(sent).endswith(b".\r\n")
