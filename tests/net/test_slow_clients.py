"""Clients that trickle bytes or never log in are cut off, and the server holds at most
`[limits] max_connections` connections (issue 12). Real servers, raw sockets; the deadlines are
set to a second or two so that nothing waits a minute.

A trickling client sends one byte every 0.2 s: each byte would restart a plain read timeout, so
only a deadline that runs from the line's (or the connection's) start can end it.
"""
from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

USER = "bob@example.test"
LINE = 1.5   # [limits] line_timeout in these tests
LOGIN = 3.0  # [limits] login_timeout
TRANSACTION = 2.0  # [smtp] transaction_timeout
INTERVAL = 0.2
GREETING = {"imap": b"* OK", "pop3": b"+OK", "smtp": b"220", "submission": b"220"}


def start(tmp_path: Path, **limits: float) -> LiveServer:
    settings = {"line_timeout": LINE, "login_timeout": LOGIN, "max_connections_per_ip": 1000,
                **limits}
    live = LiveServer(tmp_path / "data", ["imap", "pop3", "smtp", "submission"], limits=settings,
                      smtp={"transaction_timeout": TRANSACTION}).start()
    live.add_user(USER)
    return live


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = start(tmp_path)
    yield live
    live.stop()


def connect(server: LiveServer, protocol: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.ports[protocol]), timeout=10)
    assert sock.recv(4096).startswith(GREETING[protocol])
    return sock


def exchange(sock: socket.socket, data: bytes, expect: bytes) -> bytes:
    """Send `data` and read until a line starts with `expect`."""
    sock.sendall(data)
    received = b""
    while not any(line.startswith(expect) for line in received.split(b"\r\n")):
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    return received


def trickle(sock: socket.socket, data: bytes, *, give_up: float = 15.0) -> tuple[bytes, float]:
    """Send `data` one byte every INTERVAL seconds (from the start again when it runs out) until
    the server answers and closes; returns what it said and how long that took."""
    start = time.monotonic()
    position = 0
    while time.monotonic() - start < give_up:
        try:
            sock.send(data[position:position + 1])
        except OSError:  # closed under us: what it said is still readable
            pass
        position = (position + 1) % len(data)
        if select.select([sock], [], [], INTERVAL)[0]:
            received = b""
            sock.settimeout(5)
            try:
                while chunk := sock.recv(65536):
                    received += chunk
            except OSError:
                pass
            return received, time.monotonic() - start
    raise AssertionError(f"still connected after trickling for {give_up} s")


def log_in(server: LiveServer, protocol: str) -> socket.socket:
    sock = connect(server, protocol)
    if protocol == "imap":
        exchange(sock, f'a LOGIN {USER} "{PASSWORD}"\r\n'.encode(), b"a OK")
    else:
        exchange(sock, f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode(), b"+OK Logged in")
    return sock


# What the server says when a line is not finished in time.
LINE_CUT = {"imap": b"* BYE Command line not completed in time",
            "pop3": b"-ERR Command not completed in time",
            "smtp": b"421 4.4.2 Command line not completed in time"}


@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
def test_a_trickled_command_line_is_cut_off(server: LiveServer, protocol: str) -> None:
    # Logged in (IMAP, POP3) so that only the line deadline can apply.
    sock = connect(server, protocol) if protocol == "smtp" else log_in(server, protocol)
    with sock:
        said, elapsed = trickle(sock, b"NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP")
    assert said.startswith(LINE_CUT[protocol]), said
    assert LINE - 0.5 < elapsed < LINE + 5, elapsed


def test_imap_line_after_a_literal_has_its_own_deadline(server: LiveServer) -> None:
    with connect(server, "imap") as sock:
        assert exchange(sock, b"a LOGIN {16}\r\n", b"+").startswith(b"+")
        sock.sendall(USER.encode())  # the literal; then the rest of the line trickles
        said, elapsed = trickle(sock, b' "a password that never ends')
    assert said.startswith(LINE_CUT["imap"]), said
    assert elapsed < LINE + 5, elapsed


# What the server says to a client that is still not logged in.
LOGIN_CUT = {"imap": b"* BYE Not logged in in time", "pop3": b"-ERR Not logged in in time",
             "submission": b"421 4.4.2 Not authenticated in time"}
KEEP_BUSY = {"imap": b"a NOOP\r\n", "pop3": b"CAPA\r\n", "submission": b"NOOP\r\n"}


@pytest.mark.parametrize("protocol", ["imap", "pop3", "submission"])
def test_no_login_in_time_is_cut_off(server: LiveServer, protocol: str) -> None:
    """Complete, valid commands keep coming, so neither the idle nor the line limit applies."""
    with connect(server, protocol) as sock:
        start = time.monotonic()
        said = b""
        while time.monotonic() - start < LOGIN + 10:
            try:
                sock.sendall(KEEP_BUSY[protocol])
            except OSError:
                break
            time.sleep(0.3)
            sock.settimeout(0.05)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            said += chunk
            if not chunk or LOGIN_CUT[protocol] in said:
                break
        elapsed = time.monotonic() - start
    assert LOGIN_CUT[protocol] in said, said[-200:]
    assert LOGIN - 0.5 < elapsed < LOGIN + 5, elapsed


def test_logging_in_ends_the_login_deadline(server: LiveServer) -> None:
    with log_in(server, "imap") as sock:
        time.sleep(LOGIN + 0.5)
        assert b"b OK" in exchange(sock, b"b NOOP\r\n", b"b ")


def test_an_smtp_transaction_that_trickles_is_cut_off(server: LiveServer) -> None:
    """Whole lines of message data, each in time: only the transaction deadline ends it."""
    with connect(server, "smtp") as sock:
        exchange(sock, b"EHLO client\r\n", b"250 ")
        exchange(sock, f"MAIL FROM:<a@b.example>\r\nRCPT TO:<{USER}>\r\nDATA\r\n".encode(), b"354")
        said, elapsed = trickle(sock, b"x\r\n")
    assert said.startswith(b"421 4.4.2 Message not completed in time"), said
    assert TRANSACTION - 0.5 < elapsed < TRANSACTION + 5, elapsed
    assert server.messages(USER) == []


REFUSED = {"imap": b"* BYE Too many connections to this server",
           "pop3": b"-ERR [SYS/TEMP] Too many connections to this server",
           "smtp": b"421 4.7.0 Too many connections to this server"}


def test_the_connection_cap_holds_across_protocols(tmp_path: Path) -> None:
    server = start(tmp_path, max_connections=3, login_timeout=60.0)
    try:
        held = [connect(server, "imap"), connect(server, "pop3"), connect(server, "smtp")]
        for protocol in ("imap", "pop3", "smtp"):
            with socket.create_connection(("127.0.0.1", server.ports[protocol]), timeout=10) as sock:
                said = b""
                while chunk := sock.recv(4096):
                    said += chunk
                assert said.startswith(REFUSED[protocol]), said
        held.pop().close()
        time.sleep(0.3)
        connect(server, "imap").close()  # a slot is free again
        for sock in held:
            sock.close()
    finally:
        server.stop()
