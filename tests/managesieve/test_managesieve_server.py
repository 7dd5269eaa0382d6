"""The ManageSieve server (RFC 5804) over real sockets: a raw-socket client for every command,
STARTTLS, login rules shared with IMAP, limits and response codes; scripts land in the store."""
from __future__ import annotations

import base64
import re
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer
from postoffice.filtering.sieve import CAPABILITIES

USER = "bob@example.test"
SCRIPT = b'require "fileinto";\r\nif address :is "from" "boss@example.org" { fileinto "Boss"; }\r\n'


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["managesieve"], auth={"failed_login_delay": 0.05},
                      sieve={"max_scripts": 3, "max_script_size": 2048}).start()
    live.add_user(USER)
    yield live
    live.stop()


class Client:
    """A raw ManageSieve client: send lines, read one response (data lines + OK/NO/BYE)."""

    def __init__(self, server: LiveServer, *, greet: bool = True) -> None:
        self.server = server
        self.sock: socket.socket = socket.create_connection(("127.0.0.1", server.ports["managesieve"]), timeout=10)
        self.buf = b""
        if greet:
            self.greeting = self.response()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; buffered: {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed in a literal")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self) -> tuple[list[bytes], bytes]:
        """(lines before the status line, with literals inlined; the status line)."""
        lines: list[bytes] = []
        while True:
            line = self._line()
            literal = re.search(rb"\{(\d+)\}$", line)
            if literal:
                line = line[: literal.start()] + self._read(int(literal.group(1))) + self._line()
            if re.match(rb"(OK|NO|BYE)\b", line):
                return lines, line
            lines.append(line)

    def command(self, data: bytes) -> tuple[list[bytes], bytes]:
        self.send(data + b"\r\n")
        return self.response()

    def starttls(self) -> tuple[list[bytes], bytes]:
        assert self.command(b"STARTTLS")[1].startswith(b"OK")
        context = ssl.create_default_context(cafile=str(self.server.data_dir / "tls" / "cert.pem"))
        self.sock = context.wrap_socket(self.sock, server_hostname="mail.example.test")
        return self.response()  # RFC 5804 §2.2: the capabilities again

    def login(self, user: str = USER, password: str = PASSWORD) -> bytes:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.command(f'AUTHENTICATE "PLAIN" "{token}"'.encode())[1]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    c = Client(server)
    yield c
    c.close()


def capabilities(lines: list[bytes]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for line in lines:
        m = re.fullmatch(rb'"([A-Z-]+)"(?: "(.*)")?', line)
        assert m, line
        out[m.group(1).decode()] = m.group(2).decode() if m.group(2) is not None else None
    return out


def store_scripts(server: LiveServer) -> tuple[list[tuple[str, bool]], tuple[str, str] | None]:
    assert server.services is not None
    store = server.services.store

    async def read() -> tuple[list[tuple[str, bool]], tuple[str, str] | None]:
        account = await store.get_account(USER)
        assert account is not None
        return ([(s.name, s.active) for s in await store.list_sieve_scripts(account.id)],
                await store.active_sieve_script(account.id))

    return server.call(read())


def test_greeting_capabilities_then_starttls_reissues_them(client: Client) -> None:
    lines, status = client.greeting
    caps = capabilities(lines)
    assert status.startswith(b"OK")
    assert caps["IMPLEMENTATION"] == "postoffice" and caps["VERSION"] == "1.0"
    assert caps["SIEVE"] is not None and set(caps["SIEVE"].split()) == set(CAPABILITIES)
    assert "fileinto" in caps["SIEVE"].split() and caps["MAXREDIRECTS"] == "4"
    assert "STARTTLS" in caps and caps["SASL"] == "PLAIN LOGIN"  # loopback: plaintext allowed
    lines, status = client.starttls()
    assert status.startswith(b"OK")
    after = capabilities(lines)
    assert "STARTTLS" not in after and after["SASL"] == "PLAIN LOGIN"
    assert client.command(b"STARTTLS")[1].startswith(b"NO")  # only once
    assert client.login() == b'OK "Logged in"'
    assert capabilities(client.command(b"CAPABILITY")[0])["OWNER"] == USER


def test_every_script_command_with_its_response_codes(server: LiveServer, client: Client) -> None:
    assert client.command(b"LISTSCRIPTS")[1].startswith(b'NO "Log in first"')
    assert client.login() == b'OK "Logged in"'
    assert client.command(b"LISTSCRIPTS") == ([], b'OK "Listscripts completed"')
    assert client.command(b'HAVESPACE "main" 100')[1].startswith(b"OK")
    assert client.command(b'HAVESPACE "main" 999999')[1].startswith(b"NO (QUOTA/MAXSIZE)")
    assert client.command(b'PUTSCRIPT "main" {%d+}\r\n' % len(SCRIPT) + SCRIPT)[1].startswith(b"OK")
    assert client.command(b'PUTSCRIPT "other" "keep;"')[1].startswith(b"OK")
    assert client.command(b'GETSCRIPT "main"') == ([SCRIPT], b'OK "Getscript completed"')
    assert client.command(b'GETSCRIPT "nope"')[1].startswith(b"NO (NONEXISTENT)")
    assert client.command(b'SETACTIVE "nope"')[1].startswith(b"NO (NONEXISTENT)")
    assert client.command(b'SETACTIVE "main"')[1].startswith(b"OK")
    assert client.command(b"LISTSCRIPTS") == ([b'"main" ACTIVE', b'"other"'], b'OK "Listscripts completed"')
    assert store_scripts(server) == ([("main", True), ("other", False)], ("main", SCRIPT.decode()))
    assert client.command(b'DELETESCRIPT "main"')[1].startswith(b"NO (ACTIVE)")
    assert client.command(b'RENAMESCRIPT "main" "other"')[1].startswith(b"NO (ALREADYEXISTS)")
    assert client.command(b'RENAMESCRIPT "gone" "x"')[1].startswith(b"NO (NONEXISTENT)")
    assert client.command(b'RENAMESCRIPT "main" "filters"')[1].startswith(b"OK")
    assert store_scripts(server)[1] == ("filters", SCRIPT.decode())  # still active under its new name
    assert client.command(b'PUTSCRIPT "third" "keep;"')[1].startswith(b"OK")
    assert client.command(b'PUTSCRIPT "fourth" "keep;"')[1].startswith(b"NO (QUOTA/MAXSCRIPTS)")
    assert client.command(b'HAVESPACE "fourth" 10')[1].startswith(b"NO (QUOTA/MAXSCRIPTS)")
    assert client.command(b'HAVESPACE "third" 10')[1].startswith(b"OK")  # replacing is fine
    assert client.command(b'SETACTIVE ""')[1].startswith(b"OK")
    assert store_scripts(server)[1] is None
    assert client.command(b'DELETESCRIPT "filters"')[1].startswith(b"OK")
    assert client.command(b'NOOP "sync-1"') == ([], b'OK (TAG "sync-1") "Done"')
    assert client.command(b"UNAUTHENTICATE")[1].startswith(b"OK")
    assert client.command(b"LISTSCRIPTS")[1].startswith(b'NO "Log in first"')
    assert client.command(b"LOGOUT")[1].startswith(b"OK")


def test_a_bad_script_is_refused_with_line_and_column(server: LiveServer, client: Client) -> None:
    client.login()
    bad = b'require "fileinto";\r\nif true {\r\n  fileinto "x"\r\n}\r\n'  # no ";" after the command
    _, status = client.command(b'PUTSCRIPT "bad" {%d+}\r\n' % len(bad) + bad)
    assert re.match(rb'NO "Script not saved: line 4, column 1: ', status), status
    assert store_scripts(server)[0] == []
    _, status = client.command(b'CHECKSCRIPT {%d+}\r\n' % len(bad) + bad)
    assert re.match(rb'NO "line 4, column 1: ', status), status
    _, status = client.command(b'CHECKSCRIPT "frobnicate;"')
    assert re.match(rb'NO "line 1, column 1: .*frobnicate', status), status
    assert client.command(b'CHECKSCRIPT {%d+}\r\n' % len(SCRIPT) + SCRIPT)[1].startswith(b"OK")
    bad_utf8 = b'# \xff\r\nkeep;\r\n'
    _, status = client.command(b'PUTSCRIPT "u" {%d+}\r\n' % len(bad_utf8) + bad_utf8)
    assert re.match(rb'NO "Script not saved: line 1, column \d+: ', status), status


def test_an_oversized_script_is_refused_and_the_session_goes_on(client: Client) -> None:
    client.login()
    big = b"# " + b"x" * 5000 + b"\r\nkeep;\r\n"
    _, status = client.command(b'PUTSCRIPT "big" {%d+}\r\n' % len(big) + big)
    assert status.startswith(b"NO (QUOTA/MAXSIZE)")
    assert client.command(b"LISTSCRIPTS") == ([], b'OK "Listscripts completed"')


def test_authenticate_login_exchange_and_failures(server: LiveServer, client: Client) -> None:
    assert client.command(b'AUTHENTICATE "CRAM-MD5"')[1].startswith(b"NO")
    client.send(b'AUTHENTICATE "LOGIN"\r\n')
    assert client._line() == b'"VXNlcm5hbWU6"'  # "Username:"
    client.send(b'"%s"\r\n' % base64.b64encode(USER.encode()))
    assert client._line() == b'"UGFzc3dvcmQ6"'  # "Password:"
    client.send(b"{%d+}\r\n%s\r\n" % (len(base64.b64encode(b"wrong")), base64.b64encode(b"wrong")))
    assert client.response()[1] == b'NO "Authentication failed"'
    client.send(b'AUTHENTICATE "PLAIN"\r\n')
    assert client._line() == b'""'
    client.send(b'"*"\r\n')
    assert client.response()[1] == b'NO "Authentication cancelled"'
    assert client.login() == b'OK "Logged in"'
    assert client.command(b'AUTHENTICATE "PLAIN" "AGEAYg=="')[1].startswith(b"NO")  # already logged in


def test_no_plaintext_login_off_loopback_before_tls(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", ["managesieve"], auth={"plaintext_on_loopback": False}).start()
    try:
        live.add_user(USER)
        client = Client(live)
        caps = capabilities(client.greeting[0])
        assert caps["SASL"] == "" and "STARTTLS" in caps
        assert client.login().startswith(b"NO (ENCRYPT-NEEDED)")
        assert capabilities(client.starttls()[0])["SASL"] == "PLAIN LOGIN"
        assert client.login() == b'OK "Logged in"'
        client.close()
    finally:
        live.stop()


@pytest.mark.parametrize("data", [
    b"NOOP " + b"x" * 10000 + b"\r\n",  # longer than [limits] max_line_length
    b'AUTHENTICATE "PLAIN" {900000+}\r\n',  # a big literal before login
])
def test_hostile_input_gets_bye_and_the_connection_closes(client: Client, data: bytes) -> None:
    client.send(data)
    lines, status = client.response()
    assert status.startswith(b"BYE") and lines == []
    client.sock.settimeout(5)
    assert client.sock.recv(100) == b""  # closed


def test_garbage_gets_no_then_bye_after_many_errors(client: Client) -> None:
    for _ in range(19):
        assert client.command(b"FROB")[1].startswith(b"NO")
    assert client.command(b"FROB")[1].startswith(b"NO")
    assert client.response()[1].startswith(b"BYE")


def test_pipelined_getscripts_are_answered_while_the_client_reads(server: LiveServer, client: Client) -> None:
    # 400 GETSCRIPTs of a 2 KB script in one packet: every answer arrives, in order.
    client.login()
    script = b"# " + b"x" * 1900 + b"\r\nkeep;\r\n"
    assert client.command(b'PUTSCRIPT "big" {%d+}\r\n' % len(script) + script)[1].startswith(b"OK")
    client.send(b'GETSCRIPT "big"\r\n' * 400 + b'NOOP "end"\r\n')
    for _ in range(400):
        assert client.response() == ([script], b'OK "Getscript completed"')
    assert client.response()[1] == b'OK (TAG "end") "Done"'
