"""ManageSieve's sans-IO core (RFC 5804): bytes in, events out; replies as bytes."""
from __future__ import annotations

import pytest

from postoffice.managesieve import proto as p

MAX_LITERAL = 100


def _authenticated() -> p.ManageSieveServerConnection:
    conn = p.ManageSieveServerConnection(max_line=200, max_literal=MAX_LITERAL)
    conn.auth_succeeded()
    return conn


def _events(conn: p.ManageSieveServerConnection, data: bytes) -> list[p.Event]:
    conn.receive_data(data)
    out: list[p.Event] = []
    while (event := conn.next_event()) is not p.NEED_DATA:
        assert isinstance(event, p.Event.__args__)  # type: ignore[attr-defined]
        out.append(event)
    return out


@pytest.mark.parametrize(("data", "event"), [
    (b"CAPABILITY\r\n", p.Capability()),
    (b"capability\n", p.Capability()),  # case-insensitive; a bare LF ends a line too
    (b"NOOP\r\n", p.Noop(None)),
    (b'NOOP "STARTTLS-SYNC-42"\r\n', p.Noop("STARTTLS-SYNC-42")),
    (b"LISTSCRIPTS\r\n", p.ListScripts()),
    (b'PUTSCRIPT "a b" {8+}\r\nkeep;\r\n\r\n', p.PutScript("a b", b"keep;\r\n\r")),
    (b'PUTSCRIPT "x" {5}\r\nkeep;\r\n', p.PutScript("x", b"keep;")),  # {n} is read the same way
    (b'PUTSCRIPT {1+}\r\nx {5+}\r\nkeep;\r\n', p.PutScript("x", b"keep;")),  # two literals
    (b'PUTSCRIPT "q\\"uo\\\\te" "keep;"\r\n', p.PutScript('q"uo\\te', b"keep;")),
    (b'CHECKSCRIPT {9+}\r\nstop;\r\n\r\n\r\n', p.CheckScript(b"stop;\r\n\r\n")),
    (b'HAVESPACE "s\xc3\xa9" 4294967295\r\n', p.HaveSpace("sé", 4294967295)),
    (b'SETACTIVE ""\r\n', p.SetActive("")),
    (b'GETSCRIPT "main"\r\n', p.GetScript("main")),
    (b'DELETESCRIPT "main"\r\n', p.DeleteScript("main")),
    (b'RENAMESCRIPT "a" "b"\r\n', p.RenameScript("a", "b")),
    (b"UNAUTHENTICATE\r\n", p.Unauthenticate()),
    (b"LOGOUT\r\n", p.Logout()),
])
def test_commands_after_login(data: bytes, event: p.Event) -> None:
    assert _events(_authenticated(), data) == [event]


@pytest.mark.parametrize(("data", "text"), [
    (b"FROB\r\n", b"Unknown command FROB"),
    (b"\r\n", b"Expected a command name"),
    (b"GETSCRIPT\r\n", b"GETSCRIPT needs more arguments"),
    (b"GETSCRIPT main\r\n", b"needs a quoted string or a literal"),
    (b'GETSCRIPT "a" "b"\r\n', b"Too many arguments"),
    (b'GETSCRIPT  "a"\r\n', b"Unexpected"),
    (b'GETSCRIPT "a \r\n', b"not closed"),
    (b'GETSCRIPT "a\\n"\r\n', b"may only escape"),
    (b'GETSCRIPT "\xff"\r\n', b"UTF-8"),
    (b'HAVESPACE "a" 4294967296\r\n', b"needs a number"),
    (b'HAVESPACE "a" -1\r\n', b"Unexpected"),
    (b"STARTTLS\r\n", b"STARTTLS is not allowed after login"),
    (b'AUTHENTICATE "PLAIN"\r\n', b"AUTHENTICATE is not allowed after login"),
])
def test_bad_commands_get_no_and_the_session_goes_on(data: bytes, text: bytes) -> None:
    conn = _authenticated()
    (error, capability) = _events(conn, data + b"CAPABILITY\r\n")
    assert isinstance(error, p.CommandError) and not error.fatal
    assert error.reply.startswith(b"NO ") and text in error.reply, error.reply
    assert capability == p.Capability() and conn.state is p.SieveState.AUTHENTICATED


def test_a_bad_command_with_a_literal_is_skipped_whole() -> None:
    # The literal's octets must not be read as commands, whatever the error before it.
    conn = _authenticated()
    events = _events(conn, b'FROB "x" {10+}\r\nLOGOUT\r\n\r\n\r\nNOOP\r\n')
    assert isinstance(events[0], p.CommandError) and events[1:] == [p.Noop(None)]


def test_script_commands_need_login() -> None:
    conn = p.ManageSieveServerConnection()
    (error,) = _events(conn, b"LISTSCRIPTS\r\n")
    assert isinstance(error, p.CommandError) and error.reply == b'NO "Log in first"\r\n'


def test_authenticate_and_its_exchange() -> None:
    conn = p.ManageSieveServerConnection()
    assert _events(conn, b'AUTHENTICATE "plain" "AGEAYg=="\r\n') == [p.Authenticate("PLAIN", b"AGEAYg==")]
    assert _events(conn, b'Authenticate "LOGIN"\r\n') == [p.Authenticate("LOGIN", None)]
    conn.begin_auth_exchange()
    assert _events(conn, b'"dXNlcg=="\r\n{4+}\r\ncGFz\r\n') == [p.AuthResponse(b"dXNlcg=="), p.AuthResponse(b"cGFz")]
    assert _events(conn, b'"*"\r\n') == [p.AuthResponse(b"*")]
    conn.auth_succeeded()
    assert conn.state is p.SieveState.AUTHENTICATED
    assert _events(conn, b"LISTSCRIPTS\r\n") == [p.ListScripts()]
    conn.unauthenticated()
    assert isinstance(_events(conn, b"LISTSCRIPTS\r\n")[0], p.CommandError)


def test_an_oversized_literal_after_login_is_dropped_and_refused_with_maxsize() -> None:
    conn = _authenticated()
    conn.receive_data(b'PUTSCRIPT "big" {1000+}\r\n')
    assert conn.next_event() is p.NEED_DATA and conn.open_line is None  # literal octets are not a line
    for _ in range(10):
        conn.receive_data(b"x" * 100)
        assert conn.next_event() is p.NEED_DATA
    (error, noop) = _events(conn, b"\r\nNOOP\r\n")
    assert isinstance(error, p.CommandError) and error.reply.startswith(b"NO (QUOTA/MAXSIZE) ")
    assert noop == p.Noop(None)


@pytest.mark.parametrize("data", [
    b'AUTHENTICATE "PLAIN" {20000+}\r\n',  # a big literal before login
    b"NOOP " + b"x" * 300 + b"\r\n",  # a line longer than max_line (200)
    b"x" * 20000,  # and one that never ends
    b'NOOP {99999999999+}\r\n',  # a literal size beyond 32 bits
])
def test_input_that_cannot_be_skipped_safely_gets_bye(data: bytes) -> None:
    conn = p.ManageSieveServerConnection(max_line=200)
    (error,) = _events(conn, data + b"CAPABILITY\r\n")
    assert isinstance(error, p.CommandError) and error.fatal and error.reply.startswith(b"BYE ")
    assert conn.state is p.SieveState.LOGOUT


def test_bytes_after_starttls_are_dropped() -> None:
    conn = p.ManageSieveServerConnection()
    assert _events(conn, b"STARTTLS\r\nLISTSCRIPTS\r\n") == [p.StartTls()]
    conn.receive_data(b"CAPABILITY\r\n")  # still plaintext, before the handshake: dropped
    assert conn.next_event() is p.NEED_DATA
    conn.tls_started()
    assert _events(conn, b"CAPABILITY\r\n") == [p.Capability()]
    (again,) = _events(conn, b"STARTTLS\r\n")
    assert isinstance(again, p.CommandError) and again.reply == b'NO "TLS is active already"\r\n'


def test_eof_ends_the_session() -> None:
    conn = p.ManageSieveServerConnection()
    assert _events(conn, b"NOOP\r\n") == [p.Noop(None)]
    assert _events(conn, b"") == [] and conn.state is p.SieveState.LOGOUT


def test_replies() -> None:
    assert p.ok() == b"OK\r\n"
    assert p.no('say "hi"\\', "QUOTA/MAXSCRIPTS") == b'NO (QUOTA/MAXSCRIPTS) "say \\"hi\\"\\\\"\r\n'
    assert p.no("line 1\r\nline 2") == b"NO {14}\r\nline 1\r\nline 2\r\n"
    assert p.string("keep;", literal=True) == b"{5}\r\nkeep;"
    assert p.capability_lines([("IMPLEMENTATION", "postoffice"), ("STARTTLS", None)]) == (
        b'"IMPLEMENTATION" "postoffice"\r\n"STARTTLS"\r\n')


def test_random_input_never_raises_and_stays_bounded() -> None:
    # A small grammar fuzzer: fragments of real commands, literals with wrong sizes, quotes,
    # backslashes, CR/LF/NUL, bytes that are not UTF-8, cut at random places.
    import random

    rng = random.Random(5804)
    fragments = [b"PUTSCRIPT", b"GETSCRIPT", b"HAVESPACE", b"AUTHENTICATE", b"NOOP", b"STARTTLS",
                 b"RENAMESCRIPT", b"CHECKSCRIPT", b"SETACTIVE", b" ", b"  ", b'"', b'\\"', b"\\",
                 b"{5+}\r\n", b"{0}\r\n", b"{99999+}\r\n", b"{12", b"}", b"+", b"\r\n", b"\n", b"\r",
                 b"\x00", b"\xff\xfe", b"keep;", b"4294967296", b"12", b"*", b"x" * 300]
    for _ in range(2000):
        conn = p.ManageSieveServerConnection(max_line=256, max_literal=64)
        if rng.random() < 0.5:
            conn.auth_succeeded()
        if rng.random() < 0.2:
            conn.begin_auth_exchange()
        data = b"".join(rng.choice(fragments) for _ in range(rng.randrange(1, 40)))
        for start in range(0, len(data), rng.randrange(1, 64)):
            conn.receive_data(data[start:start + 64])
            for _ in range(200):
                event = conn.next_event()
                if event is p.NEED_DATA:
                    break
                assert isinstance(event, p.Event.__args__)  # type: ignore[attr-defined]
                if isinstance(event, p.CommandError):
                    assert event.reply.startswith((b"NO", b"BYE")) and event.reply.endswith(b"\r\n")
            else:
                raise AssertionError("the core produced events without end")
            if isinstance(event, p.StartTls):
                conn.tls_started()
        assert len(conn._buf) <= 256 + 64 + p.MAX_RESPONSE_LENGTH + 64  # bounded by the line limit
