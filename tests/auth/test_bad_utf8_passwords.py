"""A password whose bytes are not UTF-8 is a wrong password in every protocol: the normal
authentication failure, counted by the throttle, never a syntax error or a codec traceback."""
from __future__ import annotations

import base64
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import LiveServer

USER = "bob@example.test"
BAD = b"\xff\xfe\xc0\xaf"  # never UTF-8


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap", "pop3", "submission"],
                      auth={"failed_login_delay": 0.05}).start()
    live.add_user(USER)
    yield live
    live.stop()


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def talk(server: LiveServer, protocol: str, lines: list[bytes], until: bytes) -> bytes:
    """Send each line after the previous reply; return everything up to the line starting with
    `until`."""
    with socket.create_connection(("127.0.0.1", server.ports[protocol]), timeout=10) as sock:
        received = sock.recv(4096)
        for line in lines:
            sock.sendall(line)
            received += sock.recv(4096)
        while not any(line.startswith(until) for line in received.split(b"\r\n")):
            chunk = sock.recv(4096)
            assert chunk, received
            received += chunk
        return received


CASES = {
    "imap_login_literal": ("imap", [b"a LOGIN " + USER.encode() + b" {4}\r\n", BAD + b"\r\n"],
                           b"a ", b"a NO [AUTHENTICATIONFAILED]"),
    "imap_login_quoted": ("imap", [b"a LOGIN " + USER.encode() + b' "' + BAD + b'"\r\n'],
                          b"a ", b"a NO [AUTHENTICATIONFAILED]"),
    "imap_authenticate_plain": ("imap", [b"a AUTHENTICATE PLAIN " + b64(b"\0" + USER.encode() + b"\0" + BAD) + b"\r\n"],
                                b"a ", b"a NO [AUTHENTICATIONFAILED]"),
    "pop3_pass": ("pop3", [b"USER " + USER.encode() + b"\r\n", b"PASS " + BAD + b"\r\n"],
                  b"-ERR", b"-ERR [AUTH]"),
    "pop3_auth_plain": ("pop3", [b"AUTH PLAIN " + b64(b"\0" + USER.encode() + b"\0" + BAD) + b"\r\n"],
                        b"-ERR", b"-ERR [AUTH]"),
    "smtp_auth_plain": ("submission", [b"EHLO client\r\n", b"AUTH PLAIN " + b64(b"\0" + USER.encode() + b"\0" + BAD) + b"\r\n"],
                        b"535", b"535 5.7.8"),
    "smtp_auth_login": ("submission", [b"EHLO client\r\n", b"AUTH LOGIN " + b64(USER.encode()) + b"\r\n",
                                       b64(BAD) + b"\r\n"],
                        b"535", b"535 5.7.8"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_non_utf8_password_is_a_counted_failed_login(server: LiveServer, case: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    protocol, lines, until, expected = CASES[case]
    caplog.set_level(logging.DEBUG)
    reply = talk(server, protocol, lines, until)
    assert expected in reply, reply
    assert server.services is not None
    assert server.services.login_throttle.failures("127.0.0.1", USER) == (1, 1)
    assert "Traceback" not in caplog.text and "codec" not in caplog.text
