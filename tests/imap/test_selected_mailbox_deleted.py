"""Another session deletes the selected mailbox: the session ends with `* BYE` (as Dovecot does),
whether it was idling, about to send a command, or waiting with NOTIFY; no internal error, no
dropped connection without a word, and other sessions go on."""
from __future__ import annotations

import contextlib
import imaplib
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

USER = "bob@example.test"
BYE = b"* BYE The selected mailbox was deleted by another session\r\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user(USER)
    yield live
    live.stop()


class Raw:
    def __init__(self, server: LiveServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"* OK")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def until_tagged(self, tag: str) -> list[bytes]:
        lines = []
        while not (line := self.file.readline()).startswith(tag.encode() + b" "):
            assert line, f"connection closed before {tag} completed: {lines}"
            lines.append(line)
        assert line.startswith(tag.encode() + b" OK"), line
        return lines

    def rest(self) -> list[bytes]:
        """Every line until the server closes the connection (a reset counts as closing: a
        command sent as the server closed may make the kernel reset the connection)."""
        lines = []
        try:
            while line := self.file.readline():
                lines.append(line)
        except ConnectionResetError:
            pass
        return lines


def selected(server: LiveServer, mailbox: str, *extra: str) -> Raw:
    client = Raw(server)
    client.send(f'a LOGIN {USER} "{PASSWORD}"')
    client.until_tagged("a")
    for n, line in enumerate(extra):
        client.send(f"x{n} {line}")
        client.until_tagged(f"x{n}")
    client.send(f"b SELECT {mailbox}")
    client.until_tagged("b")
    return client


def other_session(server: LiveServer) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    imap.login(USER, PASSWORD)
    return imap


def test_idling_session_is_told_bye(server: LiveServer) -> None:
    other = other_session(server)
    assert other.create("Doomed")[0] == "OK"
    client = selected(server, "Doomed")
    client.send("c IDLE")
    assert client.file.readline().startswith(b"+ ")
    assert other.delete("Doomed")[0] == "OK"
    assert client.rest() == [BYE]
    assert other.noop()[0] == "OK"  # the deleting session goes on
    other.logout()


def test_next_command_is_answered_with_bye(server: LiveServer) -> None:
    other = other_session(server)
    assert other.create("Doomed")[0] == "OK"
    assert other.append("Doomed", None, None, b"Subject: x\r\n\r\nbody\r\n")[0] == "OK"
    client = selected(server, "Doomed")
    assert other.delete("Doomed")[0] == "OK"
    client.send("c FETCH 1:* (FLAGS)")
    assert client.rest() == [BYE]
    other.logout()


def test_notify_session_is_told_bye(server: LiveServer) -> None:
    other = other_session(server)
    assert other.create("Doomed")[0] == "OK"
    client = selected(server, "Doomed", "ENABLE CONDSTORE")
    client.send("c NOTIFY SET (SELECTED (MessageNew MessageExpunge FlagChange))")
    client.until_tagged("c")
    assert other.delete("Doomed")[0] == "OK"
    # NOTIFY may say BYE on its own, or at the next command: a command is sent only if the
    # server is silent, since one sent as it closes could have the connection reset.
    if not select.select([client.sock], [], [], 2.0)[0]:
        with contextlib.suppress(OSError):
            client.send("d NOOP")
    assert BYE in client.rest()
    other.logout()
