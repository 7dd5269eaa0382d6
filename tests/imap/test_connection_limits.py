"""Connection limits that fit an office behind NAT (issue 13), with the default configuration.

Dovecot's model: before login a connection counts against its address ([limits]
max_connections_per_ip, a flood limit); after login against its user and address
(max_userip_connections, 20), so twelve people behind one address with five Thunderbird
connections each are all served, while one user's 21st connection is refused in plain words.
Real imaplib clients and raw sockets against a real server on 127.0.0.1.
"""
from __future__ import annotations

import imaplib
import socket
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

TOO_MANY_FOR_USER = ("Maximum number of connections from user+IP exceeded"
                     " (max_userip_connections=20)")
USERS = [f"person{n}@example.test" for n in range(1, 13)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    for user in USERS:
        live.add_user(user)
    yield live
    live.stop()


def logged_in(server: LiveServer, user: str, stack: ExitStack) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    stack.callback(close_quietly, client)
    client.login(user, PASSWORD)
    return client


def close_quietly(client: imaplib.IMAP4) -> None:
    with suppress(OSError):  # logged out or refused already
        client.shutdown()


def greeted(server: LiveServer, stack: ExitStack) -> tuple[socket.socket, bytes]:
    """A raw connection and its first line (the greeting, or the refusal)."""
    sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=30)
    stack.callback(sock.close)
    return sock, sock.makefile("rb").readline()


def reply_to(sock: socket.socket, command: bytes, tag: bytes) -> list[bytes]:
    """Send one command; the lines up to its tagged reply, or up to the end of the connection."""
    sock.sendall(command)
    lines = []
    reader = sock.makefile("rb")
    while line := reader.readline():
        lines.append(line)
        if line.startswith(tag + b" "):
            break
    return lines


@pytest.mark.timeout(300)
def test_twelve_users_with_five_connections_each_from_one_address_are_all_served(
        server: LiveServer) -> None:
    with ExitStack() as stack:
        clients = [logged_in(server, user, stack) for user in USERS for _ in range(5)]
        assert len(clients) == 60
        for client in clients:
            assert client.select("INBOX")[0] == "OK"
            assert client.noop()[0] == "OK"
        # Still room for a 61st from the same address, and for the people to log in again.
        assert logged_in(server, USERS[0], stack).noop()[0] == "OK"


@pytest.mark.timeout(300)
def test_the_21st_connection_of_one_user_from_one_address_is_refused_in_plain_words(
        server: LiveServer) -> None:
    user = USERS[0]
    with ExitStack() as stack:
        twenty = [logged_in(server, user, stack) for _ in range(20)]
        sock, greeting = greeted(server, stack)
        assert greeting.startswith(b"* OK")  # not refused before it logs in
        lines = reply_to(sock, f'a LOGIN {user} "{PASSWORD}"\r\n'.encode(), b"a")
        assert lines == [f"* BYE [LIMIT] {TOO_MANY_FOR_USER}\r\n".encode(),
                         f"a NO [LIMIT] {TOO_MANY_FOR_USER}\r\n".encode()]
        assert sock.recv(100) == b""  # and the server closed it, as Dovecot does
        # imaplib reports it with the same sentence.
        with pytest.raises(imaplib.IMAP4.abort, match=r"max_userip_connections=20"):
            logged_in(server, user, stack)
        # Another user from the same address is not affected; nor is the user once one of
        # the twenty is gone.
        assert logged_in(server, USERS[1], stack).noop()[0] == "OK"
        twenty.pop().logout()
        assert logged_in(server, user, stack).noop()[0] == "OK"


@pytest.mark.timeout(300)
def test_a_flood_of_connections_that_never_log_in_is_capped(server: LiveServer) -> None:
    """100 connections from one address may wait for their login at once (the default
    max_connections_per_ip); the 101st is refused. A login makes room: connections that
    logged in count per user, not against the address."""
    with ExitStack() as stack:
        waiting = [greeted(server, stack) for _ in range(100)]
        assert all(greeting.startswith(b"* OK") for _, greeting in waiting)
        _, refused = greeted(server, stack)
        assert refused == b"* BYE Too many connections from your address\r\n"
        sock = waiting[0][0]
        assert reply_to(sock, f'a LOGIN {USERS[0]} "{PASSWORD}"\r\n'.encode(), b"a")[-1] \
            .startswith(b"a OK")
        _, greeting = greeted(server, stack)
        assert greeting.startswith(b"* OK")
        _, refused = greeted(server, stack)
        assert refused.startswith(b"* BYE Too many connections")
