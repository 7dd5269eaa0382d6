"""A client that resets its connection (RST: SO_LINGER 0) at an awkward moment is routine: at
most a debug line, never an ERROR or a traceback (issue 12). The moments: in the middle of
AUTHENTICATE / AUTH, right after STARTTLS / STLS, and inside a literal or message data."""
from __future__ import annotations

import base64
import logging
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from live_server import PASSWORD, LiveServer

USER = "bob@example.test"
LOGIN = f'a LOGIN {USER} "{PASSWORD}"\r\n'.encode()
PLAIN = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("resets") / "data", ["imap", "pop3", "submission", "smtp"]).start()
    live.add_user(USER)
    yield live
    live.stop()


# protocol -> lines sent one by one, each answered before the next; the reset follows the last
# line, either at once (the server is still working on it) or after its answer.
SCENARIOS = {
    "imap_authenticate": ("imap", [b"a AUTHENTICATE PLAIN\r\n"]),
    "imap_authenticate_login_mechanism": ("imap", [b"a AUTHENTICATE LOGIN\r\n", base64.b64encode(USER.encode()) + b"\r\n"]),
    "imap_starttls": ("imap", [b"a STARTTLS\r\n"]),
    "imap_login_literal": ("imap", [b"a LOGIN {16}\r\n"]),
    "imap_append_literal": ("imap", [LOGIN, b"b APPEND INBOX {100}\r\n", b"Subject: half\r\n"]),
    "pop3_auth": ("pop3", [b"AUTH PLAIN\r\n"]),
    "pop3_stls": ("pop3", [b"STLS\r\n"]),
    "smtp_auth": ("submission", [b"EHLO client\r\n", b"AUTH LOGIN\r\n"]),
    "smtp_starttls": ("submission", [b"EHLO client\r\n", b"STARTTLS\r\n"]),
    "smtp_data": ("smtp", [b"EHLO client\r\n", f"MAIL FROM:<a@b.example>\r\nRCPT TO:<{USER}>\r\nDATA\r\n".encode(),
                           b"Subject: half\r\n"]),
    "smtp_auth_plain_sent": ("submission", [b"EHLO client\r\n", b"AUTH PLAIN " + PLAIN + b"\r\n"]),
}


def reset_after(port: int, lines: list[bytes], wait_for_answer: bool) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.recv(4096)
        for n, line in enumerate(lines):
            sock.sendall(line)
            if n < len(lines) - 1 or wait_for_answer:
                time.sleep(0.2)
                sock.settimeout(0.5)  # inside a literal or DATA nothing is answered
                try:
                    sock.recv(65536)
                except TimeoutError:
                    pass
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.parametrize("wait_for_answer", [False, True], ids=["at_once", "after_answer"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_reset_is_not_an_error(server: LiveServer, scenario: str, wait_for_answer: bool,
                                 caplog: pytest.LogCaptureFixture) -> None:
    protocol, lines = SCENARIOS[scenario]
    caplog.set_level(logging.DEBUG, logger="postoffice")
    reset_after(server.ports[protocol], lines, wait_for_answer)
    time.sleep(0.5)  # the server notices the reset
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info
                or (r.levelno >= logging.INFO and "reset" in r.getMessage().lower())]
    assert not problems, [r.getMessage() for r in problems]
    assert "Traceback" not in caplog.text
    # The server still answers.
    with socket.create_connection(("127.0.0.1", server.ports[protocol]), timeout=10) as sock:
        assert sock.recv(4096)[:1] in (b"*", b"+", b"2")
