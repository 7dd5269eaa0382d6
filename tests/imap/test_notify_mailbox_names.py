"""NOTIFY MailboxName (RFC 5465 §5.4) over real sockets: mailboxes another session creates,
renames (LIST with OLDNAME, RFC 5258) and deletes (LIST with \\NonExistent), including one that
existed before NOTIFY SET, and a shared mailbox whose access is taken away."""
from __future__ import annotations

import imaplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

USER, OTHER = "bob@example.test", "alice@example.test"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user(USER)
    live.add_user(OTHER)
    yield live
    live.stop()


class Watcher:
    """A session that has said NOTIFY SET and reads what the server sends on its own."""

    def __init__(self, server: LiveServer, user: str, notify: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"* OK")
        self.command(f'a LOGIN {user} "{PASSWORD}"')
        self.command(f"b {notify}")

    def command(self, line: str) -> list[bytes]:
        tag = line.split()[0].encode()
        self.sock.sendall(line.encode() + b"\r\n")
        lines = []
        while not (reply := self.file.readline()).startswith(tag + b" "):
            lines.append(reply)
        assert reply.startswith(tag + b" OK"), reply
        return lines

    def next_line(self) -> bytes:
        return self.file.readline()


def session(server: LiveServer, user: str = USER) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    imap.login(user, PASSWORD)
    return imap


def test_created_renamed_and_deleted_mailboxes_are_announced(server: LiveServer) -> None:
    other = session(server)
    assert other.create("Old")[0] == "OK"
    watcher = Watcher(server, USER, "NOTIFY SET (personal (MailboxName))")
    assert other.create("Fresh")[0] == "OK"
    assert watcher.next_line() == b'* LIST () "/" Fresh\r\n'
    assert other.rename("Fresh", "Renamed")[0] == "OK"
    assert watcher.next_line() == b'* LIST () "/" Renamed ("OLDNAME" (Fresh))\r\n'
    assert other.delete("Renamed")[0] == "OK"
    assert watcher.next_line() == b'* LIST (\\NonExistent) "/" Renamed\r\n'
    assert other.delete("Old")[0] == "OK"  # known since NOTIFY SET
    assert watcher.next_line() == b'* LIST (\\NonExistent) "/" Old\r\n'
    assert watcher.command("c NOOP") == []  # nothing else was queued
    other.logout()


def test_a_shared_mailbox_taken_away_is_announced_as_gone(server: LiveServer) -> None:
    owner = session(server, OTHER)
    assert owner.create("Team")[0] == "OK"
    assert owner.setacl("Team", USER, "lr")[0] == "OK"
    watcher = Watcher(server, USER, 'NOTIFY SET (SUBTREE "Shared" (MailboxName))')
    assert owner.deleteacl("Team", USER)[0] == "OK"
    assert watcher.next_line() == f'* LIST (\\NonExistent) "/" Shared/{OTHER}/Team\r\n'.encode()
    owner.logout()
