"""The POP3 core: (state, bytes) -> events for every command, hostile input, replies, RETR/TOP."""

from __future__ import annotations

import ast
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import postoffice.pop3
from postoffice.auth import sasl
from postoffice.pop3 import content, maildrop, proto
from postoffice.pop3.content import MessageEncoder, octets_after_crlf
from postoffice.pop3.proto import (
    NEED_DATA,
    Apop,
    Auth,
    AuthResponse,
    Capa,
    CommandError,
    Dele,
    Event,
    List,
    LocalProtocolError,
    Noop,
    Pass,
    Pop3ServerConnection,
    Pop3State,
    Quit,
    Retr,
    Rset,
    Stat,
    Stls,
    Top,
    Uidl,
    User,
    auth_challenge,
    capabilities,
    err,
    greeting,
    multiline,
    ok,
)
from postoffice.proto import linebuffer

A = Pop3State.AUTHORIZATION
T = Pop3State.TRANSACTION

WRONG_STATE = CommandError(b"-ERR Command not valid in this state\r\n")
UNKNOWN = CommandError(b"-ERR Unknown command\r\n")
EMPTY = CommandError(b"-ERR Empty command\r\n")
TOO_LONG = CommandError(b"-ERR Line too long\r\n")
BAD_CHARS = CommandError(b"-ERR Bare CR, NUL or invalid UTF-8 in command\r\n")
USER_FIRST = CommandError(b"-ERR USER first\r\n")
TLS_ACTIVE = CommandError(b"-ERR TLS already active\r\n")
BAD_MSG = CommandError(b"-ERR Invalid message number\r\n")
BAD_LINES = CommandError(b"-ERR Invalid number of lines\r\n")

DIGEST = "c4c9334bac560ecc979e58001b3e22fb"  # RFC 1939 §7's APOP example


def syntax(usage: str) -> CommandError:
    return CommandError(f"-ERR Syntax: {usage}\r\n".encode())


def connection(state: Pop3State = A, **kwargs: bool) -> Pop3ServerConnection:
    conn = Pop3ServerConnection(**kwargs)
    if state is T:
        conn.auth_succeeded()
    return conn


Reaction = Callable[[Pop3ServerConnection, Event], None]


def ignore(conn: Pop3ServerConnection, event: Event) -> None:
    pass


def drive(conn: Pop3ServerConnection, *pieces: bytes, react: Reaction = ignore) -> list[Event]:
    """Feed each piece (b"" is EOF) and drain the events after it; ``react`` plays the driver."""
    events: list[Event] = []
    for piece in pieces:
        conn.receive_data(piece)
        events += drain(conn, react)
    return events


def drain(conn: Pop3ServerConnection, react: Reaction = ignore) -> list[Event]:
    events: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
        react(conn, event)
    return events


def one(state: Pop3State, line: bytes, **kwargs: bool) -> Event:
    events = drive(connection(state, **kwargs), line)
    assert len(events) == 1, events
    return events[0]


# --- every command in the state it belongs to ------------------------------------------------

VALID = [
    (A, b"USER alice\r\n", User("alice")),
    (A, b"USER alice@example.org\r\n", User("alice@example.org")),
    (A, "USER jürgen\r\n".encode(), User("jürgen")),
    (A, f"APOP mrose {DIGEST}\r\n".encode(), Apop("mrose", DIGEST)),
    (A, f"APOP mrose {DIGEST.upper()}\r\n".encode(), Apop("mrose", DIGEST)),
    (A, b"AUTH\r\n", Auth(None, None)),  # list the mechanisms
    (A, b"AUTH PLAIN\r\n", Auth("PLAIN", None)),
    (A, b"AUTH plain\r\n", Auth("PLAIN", None)),
    (A, b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", Auth("PLAIN", b"AGFsaWNlAHNlY3JldA==")),
    (A, b"AUTH PLAIN =\r\n", Auth("PLAIN", b"=")),  # RFC 5034 §4: an empty initial response
    (A, b"AUTH LOGIN YWxpY2U=\r\n", Auth("LOGIN", b"YWxpY2U=")),
    (A, b"AUTH X-UNKNOWN-MECH\r\n", Auth("X-UNKNOWN-MECH", None)),  # the driver refuses it
    (A, b"CAPA\r\n", Capa()),
    (A, b"QUIT\r\n", Quit()),
    (T, b"CAPA\r\n", Capa()),
    (T, b"STAT\r\n", Stat()),
    (T, b"LIST\r\n", List(None)),
    (T, b"LIST 1\r\n", List(1)),
    (T, b"UIDL\r\n", Uidl(None)),
    (T, b"UIDL 2\r\n", Uidl(2)),
    (T, b"RETR 1\r\n", Retr(1)),
    (T, b"DELE 3\r\n", Dele(3)),
    (T, b"TOP 1 0\r\n", Top(1, 0)),
    (T, b"TOP 2 10\r\n", Top(2, 10)),
    (T, b"NOOP\r\n", Noop()),
    (T, b"RSET\r\n", Rset()),
    (T, b"QUIT\r\n", Quit()),
    # Numbers: leading zeros are still decimal; 2^31 is the largest.
    (T, b"RETR 007\r\n", Retr(7)),
    (T, b"RETR 2147483648\r\n", Retr(2**31)),
    (T, b"TOP 1 2147483648\r\n", Top(1, 2**31)),
    # Separators: runs of spaces or tabs, trailing ones ignored.
    (T, b"RETR  1\r\n", Retr(1)),
    (T, b"TOP 1\t5\r\n", Top(1, 5)),
    (T, b"RETR\t1\r\n", Retr(1)),
    (T, b"STAT  \r\n", Stat()),
    (T, b"DELE 2 \r\n", Dele(2)),
    # Case-insensitive keywords; arguments keep their case.
    (T, b"retr 1\r\n", Retr(1)),
    (T, b"ReTr 1\r\n", Retr(1)),
    (T, b"top 1 2\r\n", Top(1, 2)),
    (A, b"user Alice\r\n", User("Alice")),
    (A, b"Capa\r\n", Capa()),
    # A bare LF ends a command line as well as CRLF.
    (T, b"STAT\n", Stat()),
    (A, b"USER alice\n", User("alice")),
]


@pytest.mark.parametrize(("state", "line", "event"), VALID)
def test_command_gives_event(state: Pop3State, line: bytes, event: Event) -> None:
    assert one(state, line) == event


def test_stls_when_offered() -> None:
    assert one(A, b"STLS\r\n", stls=True) == Stls()
    assert one(A, b"stls\n", stls=True) == Stls()


# --- wrong state, unknown, empty -------------------------------------------------------------

TRANSACTION_ONLY = [b"STAT", b"LIST", b"LIST 1", b"UIDL", b"UIDL 1", b"RETR 1", b"DELE 1",
                    b"TOP 1 1", b"NOOP", b"RSET", b"RETR x", b"TOP"]  # fmt: skip
AUTHORIZATION_ONLY = [b"USER alice", b"PASS secret", f"APOP a {DIGEST}".encode(), b"AUTH",
                      b"AUTH PLAIN", b"AUTH PLAIN AGFsaWNlAHNlY3JldA==", b"USER", b"STLS"]  # fmt: skip


@pytest.mark.parametrize("line", TRANSACTION_ONLY)
def test_transaction_commands_refused_before_login(line: bytes) -> None:
    assert one(A, line + b"\r\n", stls=True) == WRONG_STATE


@pytest.mark.parametrize("line", AUTHORIZATION_ONLY)
def test_authorization_commands_refused_after_login(line: bytes) -> None:
    assert one(T, line + b"\r\n", stls=True) == WRONG_STATE


@pytest.mark.parametrize("state", [A, T])
@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"XYZZY\r\n", UNKNOWN),
        (b"GET / HTTP/1.1\r\n", UNKNOWN),
        (b"RETRIEVE 1\r\n", UNKNOWN),
        (b" STAT\r\n", UNKNOWN),  # no leading blanks before the keyword
        ("ÜSER a\r\n".encode(), UNKNOWN),
        (b"\r\n", EMPTY),
        (b"\n", EMPTY),
        (b"   \t\r\n", EMPTY),
        (b"USER a\x00b\r\n", BAD_CHARS),
        (b"USER a\rb\r\n", BAD_CHARS),
        (b"STAT\r\r\n", BAD_CHARS),
        (b"CAPA \xff\xfe\r\n", BAD_CHARS),
        (b"\x00\r\n", BAD_CHARS),
    ],
)
def test_unknown_empty_and_bad_lines(state: Pop3State, line: bytes, error: CommandError) -> None:
    assert one(state, line) == error


def test_invalid_utf8_in_wrong_state_says_wrong_state() -> None:
    # The state is judged before the arguments, so nothing is revealed about them.
    assert one(A, b"RETR \xff\r\n") == WRONG_STATE


# --- arguments -------------------------------------------------------------------------------

BAD_NUMBERS = ["0", "-1", "1x", "x", "99999999999", "+1", "2147483649", "1.0", "0x1", "1_0",
               "١", "1e3", "00000000001"]  # fmt: skip


@pytest.mark.parametrize("number", BAD_NUMBERS)
@pytest.mark.parametrize("template", ["RETR {}", "DELE {}", "LIST {}", "UIDL {}", "TOP {} 1"])
def test_bad_message_numbers(template: str, number: str) -> None:
    line = (template.format(number) + "\r\n").encode()
    assert one(T, line) == BAD_MSG


@pytest.mark.parametrize("lines", ["-1", "x", "+1", "99999999999", "2147483649", "1.5", "١"])
def test_bad_top_line_counts(lines: str) -> None:
    assert one(T, f"TOP 1 {lines}\r\n".encode()) == BAD_LINES


def test_top_checks_the_message_number_first() -> None:
    assert one(T, b"TOP 0 x\r\n") == BAD_MSG


ARG_COUNT = [
    (A, b"USER", syntax("USER name")),
    (A, b"USER a b", syntax("USER name")),
    (A, b"APOP mrose", syntax("APOP name digest")),
    (A, b"APOP mrose 1234", syntax("APOP name digest")),  # the digest is 32 hex digits
    (A, f"APOP mrose {DIGEST} x".encode(), syntax("APOP name digest")),
    (A, f"APOP mrose {'g' * 32}".encode(), syntax("APOP name digest")),
    (A, b"AUTH PLAIN a b", syntax("AUTH mechanism [initial-response]")),
    (A, b"AUTH PL@IN", syntax("AUTH mechanism [initial-response]")),
    (A, b"AUTH " + b"X" * 21, syntax("AUTH mechanism [initial-response]")),
    (A, b"CAPA x", syntax("CAPA")),
    (A, b"QUIT now", syntax("QUIT")),
    (T, b"QUIT now", syntax("QUIT")),
    (T, b"STAT 1", syntax("STAT")),
    (T, b"NOOP x", syntax("NOOP")),
    (T, b"RSET 1", syntax("RSET")),
    (T, b"LIST 1 2", syntax("LIST [msg]")),
    (T, b"UIDL 1 2", syntax("UIDL [msg]")),
    (T, b"RETR", syntax("RETR msg")),
    (T, b"RETR 1 2", syntax("RETR msg")),
    (T, b"DELE", syntax("DELE msg")),
    (T, b"DELE 1 2", syntax("DELE msg")),
    (T, b"TOP", syntax("TOP msg lines")),
    (T, b"TOP 1", syntax("TOP msg lines")),
    (T, b"TOP 1 2 3", syntax("TOP msg lines")),
]


@pytest.mark.parametrize(("state", "line", "error"), ARG_COUNT)
def test_argument_errors(state: Pop3State, line: bytes, error: CommandError) -> None:
    assert one(state, line + b"\r\n") == error


def test_quit_with_bad_arguments_changes_no_state() -> None:
    conn = connection(T)
    drive(conn, b"QUIT now\r\n")
    assert conn.state is T


# --- USER and PASS ---------------------------------------------------------------------------


def test_pass_needs_user_first() -> None:
    assert one(A, b"PASS secret\r\n") == USER_FIRST


def test_user_then_pass() -> None:
    conn = connection()
    assert drive(conn, b"USER alice\r\nPASS secret\r\n") == [User("alice"), Pass("secret")]


def test_pass_keeps_spaces_in_the_password() -> None:
    # RFC 1939 §7: the server may take spaces in the argument as part of the password.
    for line, password in [
        (b"PASS my secret \r\n", "my secret "),
        (b"PASS  lead\r\n", " lead"),
        (b"pass p\xc3\xa4ss\r\n", "päss"),
        (b"PASS\tx\r\n", "x"),
    ]:
        conn = connection()
        assert drive(conn, b"USER a\r\n", line)[1:] == [Pass(password)]


@pytest.mark.parametrize("line", [b"PASS\r\n", b"PASS \r\n"])
def test_empty_password_is_a_syntax_error(line: bytes) -> None:
    conn = connection()
    assert drive(conn, b"USER a\r\n", line)[1:] == [syntax("PASS password")]


def test_second_pass_needs_a_new_user() -> None:
    conn = connection()
    events = drive(conn, b"USER a\r\nPASS x\r\nPASS y\r\n")
    assert events[2] == USER_FIRST


def test_refused_user_makes_a_pipelined_pass_fail() -> None:
    def refuse(conn: Pop3ServerConnection, event: Event) -> None:
        if isinstance(event, User):
            conn.auth_failed()

    conn = connection()
    events = drive(conn, b"USER nobody\r\nPASS x\r\n", react=refuse)
    assert events == [User("nobody"), USER_FIRST]


def test_pipelined_login_and_commands() -> None:
    def accept(conn: Pop3ServerConnection, event: Event) -> None:
        if isinstance(event, Pass):
            conn.auth_succeeded()

    conn = connection()
    events = drive(conn, b"USER a\r\nPASS x\r\nSTAT\r\nLIST\r\nQUIT\r\n", react=accept)
    assert events == [User("a"), Pass("x"), Stat(), List(None), Quit()]
    assert conn.state is Pop3State.UPDATE


def test_failed_pass_leaves_authorization() -> None:
    conn = connection()
    drive(conn, b"USER a\r\nPASS wrong\r\n")
    conn.auth_failed()
    assert conn.state is A
    assert drive(conn, b"STAT\r\n") == [WRONG_STATE]


def test_capa_between_user_and_pass_is_fine() -> None:
    conn = connection()
    assert drive(conn, b"USER a\r\nCAPA\r\nPASS x\r\n")[2] == Pass("x")


@pytest.mark.parametrize("between", [b"AUTH\r\n", f"APOP a {DIGEST}\r\n".encode()])
def test_other_authentication_command_forgets_user(between: bytes) -> None:
    conn = connection()
    assert drive(conn, b"USER a\r\n", between, b"PASS x\r\n")[2] == USER_FIRST


def test_user_again_replaces_the_name() -> None:
    conn = connection()
    assert drive(conn, b"USER a\r\nUSER b\r\nPASS x\r\n") == [User("a"), User("b"), Pass("x")]


def test_secrets_stay_out_of_repr() -> None:
    assert "hunter2" not in repr(Pass("hunter2"))
    assert "AGFsaWNl" not in repr(Auth("PLAIN", b"AGFsaWNlAHNlY3JldA=="))
    assert "c2VjcmV0" not in repr(AuthResponse(b"c2VjcmV0"))
    assert Pass("a") == Pass("a") != Pass("b")


# --- AUTH (RFC 5034) -------------------------------------------------------------------------


def test_auth_exchange_lines_are_responses_whatever_they_say() -> None:
    conn = connection()
    assert drive(conn, b"AUTH LOGIN\r\n") == [Auth("LOGIN", None)]
    conn.begin_auth_exchange()
    assert conn.in_auth_exchange
    assert drive(conn, b"YWxpY2U=\r\nQUIT\r\n\r\n*\n") == [
        AuthResponse(b"YWxpY2U="),
        AuthResponse(b"QUIT"),
        AuthResponse(b""),
        AuthResponse(b"*"),
    ]
    assert conn.state is A


def test_auth_exchange_ends_and_commands_resume() -> None:
    conn = connection()
    drive(conn, b"AUTH PLAIN\r\n")
    conn.begin_auth_exchange()
    assert drive(conn, b"*\r\n") == [AuthResponse(b"*")]
    conn.end_auth_exchange()
    assert drive(conn, b"CAPA\r\n") == [Capa()]


def test_auth_exchange_success_enters_transaction() -> None:
    def play(conn: Pop3ServerConnection, event: Event) -> None:
        if isinstance(event, Auth):
            conn.begin_auth_exchange()
        elif isinstance(event, AuthResponse):
            conn.auth_succeeded()

    conn = connection()
    events = drive(conn, b"AUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nSTAT\r\n", react=play)
    assert events == [Auth("PLAIN", None), AuthResponse(b"AGFsaWNlAHNlY3JldA=="), Stat()]
    assert conn.state is T
    assert not conn.in_auth_exchange


def test_auth_failure_ends_the_exchange() -> None:
    conn = connection()
    drive(conn, b"AUTH PLAIN\r\n")
    conn.begin_auth_exchange()
    drive(conn, b"AAAA\r\n")
    conn.auth_failed()
    assert not conn.in_auth_exchange
    assert drive(conn, b"STAT\r\n") == [WRONG_STATE]


def test_long_auth_lines_are_accepted() -> None:
    response = b"A" * sasl.MAX_RESPONSE_LENGTH
    assert one(A, b"AUTH PLAIN " + response + b"\r\n") == Auth("PLAIN", response)
    assert one(A, b"auth plain " + response + b"\r\n") == Auth("PLAIN", response)
    conn = connection()
    drive(conn, b"AUTH PLAIN\r\n")
    conn.begin_auth_exchange()
    assert drive(conn, response + b"\r\n") == [AuthResponse(response)]


def test_over_long_auth_response_ends_the_exchange() -> None:
    conn = connection()
    drive(conn, b"AUTH PLAIN\r\n")
    conn.begin_auth_exchange()
    assert drive(conn, b"A" * 20000 + b"\r\nCAPA\r\n") == [TOO_LONG, Capa()]
    assert not conn.in_auth_exchange


# --- line length -----------------------------------------------------------------------------


def test_lines_up_to_max_line_are_accepted() -> None:
    name = "a" * (512 - len("USER \r\n"))
    assert one(A, f"USER {name}\r\n".encode()) == User(name)


def test_long_command_line_is_refused_then_the_next_line_works() -> None:
    conn = connection()
    line = b"USER " + b"a" * 600 + b"\r\n"
    assert drive(conn, line + b"CAPA\r\n") == [TOO_LONG, Capa()]


def test_endless_line_is_skipped_through_its_end_across_feeds() -> None:
    conn = connection(T)
    events = drive(conn, b"NOOP " + b"x" * 30000, b"y" * 30000, b"z\r\nSTAT\r\n")
    assert events == [TOO_LONG, Stat()]


def test_max_line_below_rfc_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="255"):
        Pop3ServerConnection(max_line=100)


def test_larger_max_line() -> None:
    conn = Pop3ServerConnection(max_line=2000)
    assert drive(conn, b"USER " + b"a" * 1500 + b"\r\n") == [User("a" * 1500)]


# --- pipelining and splitting ----------------------------------------------------------------

SCRIPT = b"STAT\r\nLIST\r\nUIDL 1\nRETR 1\r\nTOP 2 5\r\nDELE 1\r\nNOOP\r\nRSET\r\nXX\r\nQUIT\r\n"
SCRIPT_EVENTS = [Stat(), List(None), Uidl(1), Retr(1), Top(2, 5), Dele(1), Noop(), Rset(),
                 UNKNOWN, Quit()]  # fmt: skip


def test_pipelined_commands_in_one_feed() -> None:
    conn = connection(T)
    conn.receive_data(SCRIPT)
    assert conn.next_event() == Stat()
    assert conn.has_pending_input
    assert drive(conn, b"") == SCRIPT_EVENTS[1:]  # b"" is EOF; QUIT came first
    assert conn.state is Pop3State.UPDATE
    assert not conn.has_pending_input


def test_commands_fed_byte_by_byte() -> None:
    conn = connection(T)
    pieces = [SCRIPT[i : i + 1] for i in range(len(SCRIPT))]
    assert drive(conn, *pieces) == SCRIPT_EVENTS


@given(st.lists(st.integers(min_value=0, max_value=len(SCRIPT)), max_size=8))
def test_commands_split_anywhere(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(SCRIPT)]
    pieces = [SCRIPT[a:b] for a, b in pairwise(bounds) if a < b]
    assert drive(connection(T), *pieces) == SCRIPT_EVENTS


# --- STLS (RFC 2595 §4) ----------------------------------------------------------------------


def test_stls_drops_injected_bytes() -> None:
    conn = connection(stls=True)
    assert conn.stls_available
    # CVE-2011-0411: commands sent in plaintext right behind STLS must not reach the TLS session.
    assert drive(conn, b"STLS\r\nUSER evil\r\nPASS x\r\n") == [Stls()]
    assert not conn.stls_available
    assert drive(conn, b"CAPA\r\n") == []  # nothing is read before the handshake is done
    conn.tls_started()
    assert conn.tls
    assert not conn.has_pending_input
    assert drive(conn, b"USER alice\r\n") == [User("alice")]


def test_stls_forgets_a_user_given_in_plaintext() -> None:
    conn = connection(stls=True)
    drive(conn, b"USER alice\r\nSTLS\r\n")
    conn.tls_started()
    assert drive(conn, b"PASS x\r\n") == [USER_FIRST]


def test_stls_twice_is_refused() -> None:
    conn = connection(stls=True)
    drive(conn, b"STLS\r\n")
    conn.tls_started()
    assert drive(conn, b"STLS\r\n") == [TLS_ACTIVE]


def test_stls_on_an_implicit_tls_connection_is_refused() -> None:
    conn = connection(stls=True, tls=True)
    assert not conn.stls_available
    assert drive(conn, b"STLS\r\n") == [TLS_ACTIVE]


def test_stls_not_offered_is_unknown() -> None:
    assert one(A, b"STLS\r\n") == UNKNOWN


def test_stls_after_login_is_refused() -> None:
    conn = connection(T, stls=True)
    assert not conn.stls_available
    assert drive(conn, b"STLS\r\n") == [WRONG_STATE]


def test_stls_with_argument() -> None:
    assert one(A, b"STLS now\r\n", stls=True) == syntax("STLS")


def test_stls_refused_by_the_driver_goes_on_in_plaintext() -> None:
    conn = connection(stls=True)
    drive(conn, b"STLS\r\nCAPA\r\n")
    conn.tls_refused()
    assert not conn.tls
    assert drive(conn, b"QUIT\r\n") == [Quit()]


def test_eof_during_stls_closes() -> None:
    conn = connection(stls=True)
    drive(conn, b"STLS\r\n", b"")
    assert conn.state is Pop3State.CLOSED


# --- QUIT, EOF, driver mistakes --------------------------------------------------------------


@pytest.mark.parametrize(("state", "after"), [(A, Pop3State.CLOSED), (T, Pop3State.UPDATE)])
def test_quit_state(state: Pop3State, after: Pop3State) -> None:
    conn = connection(state)
    assert drive(conn, b"QUIT\r\nSTAT\r\nNOOP\r\n") == [Quit()]
    assert conn.state is after
    assert drive(conn, b"CAPA\r\n") == []  # nothing is read any more
    assert not conn.has_pending_input


@pytest.mark.parametrize("state", [A, T])
def test_eof_without_quit_closes_without_update(state: Pop3State) -> None:
    conn = connection(state)
    assert drive(conn, b"DELE 1", b"") == []  # the partial line goes with the session
    assert conn.state is Pop3State.CLOSED


def test_lines_before_eof_are_still_read() -> None:
    conn = connection(T)
    conn.receive_data(b"DELE 1\r\nQUIT\r\n")
    conn.receive_data(b"")
    assert drain(conn) == [Dele(1), Quit()]
    assert conn.state is Pop3State.UPDATE


def test_receive_after_eof_is_a_driver_bug() -> None:
    conn = connection()
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"CAPA\r\n")


@pytest.mark.parametrize("method", ["auth_succeeded", "auth_failed", "begin_auth_exchange"])
def test_authorization_feedback_after_login_is_a_driver_bug(method: str) -> None:
    conn = connection(T)
    with pytest.raises(LocalProtocolError):
        getattr(conn, method)()


@pytest.mark.parametrize("method", ["tls_started", "tls_refused"])
def test_tls_feedback_without_stls_is_a_driver_bug(method: str) -> None:
    with pytest.raises(LocalProtocolError):
        getattr(connection(stls=True), method)()


def test_no_login_while_stls_is_pending() -> None:
    conn = connection(stls=True)
    drive(conn, b"STLS\r\n")
    with pytest.raises(LocalProtocolError):
        conn.auth_succeeded()


# --- replies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "wire"),
    [
        (ok(), b"+OK\r\n"),
        (ok("2 320"), b"+OK 2 320\r\n"),
        (ok(code="IN-USE"), b"+OK [IN-USE]\r\n"),
        (err(), b"-ERR\r\n"),
        (err("Mailbox locked", "IN-USE"), b"-ERR [IN-USE] Mailbox locked\r\n"),
        (err("Try later", "SYS/TEMP"), b"-ERR [SYS/TEMP] Try later\r\n"),
        (err("Gone", "SYS/PERM"), b"-ERR [SYS/PERM] Gone\r\n"),
        (err("Authentication failed", "AUTH"), b"-ERR [AUTH] Authentication failed\r\n"),
        (err("Too soon", "LOGIN-DELAY"), b"-ERR [LOGIN-DELAY] Too soon\r\n"),
        (greeting("postoffice ready"), b"+OK postoffice ready\r\n"),
        (auth_challenge(b""), b"+ \r\n"),
        (auth_challenge(b"Username:"), b"+ VXNlcm5hbWU6\r\n"),
    ],
)
def test_reply_bytes(reply: bytes, wire: bytes) -> None:
    assert reply == wire


@pytest.mark.parametrize(
    "call",
    [
        lambda: ok("a\r\nb"),
        lambda: ok("a\nDELE 1"),
        lambda: err("a\rb"),
        lambda: err("a\0b"),
        lambda: err("x", "BOGUS"),
        lambda: ok("x", "in-use"),
    ],
)
def test_reply_refuses_line_breaks_and_unknown_codes(call: Callable[[], bytes]) -> None:
    with pytest.raises(ValueError):
        call()


def test_multiline_listing() -> None:
    assert multiline(ok("2 messages"), [b"1 120", b"2 200"]) == (
        b"+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n"
    )
    assert multiline(ok(), []) == b"+OK\r\n.\r\n"
    assert multiline(ok(), [b".", b"..x", b"a.b"]) == b"+OK\r\n..\r\n...x\r\na.b\r\n.\r\n"


@pytest.mark.parametrize(
    ("first", "lines"), [(b"+OK", [b"a"]), (ok(), [b"a\r\n"]), (ok(), [b"a\nb"]), (ok(), [b"\r"])]
)
def test_multiline_refuses_broken_lines(first: bytes, lines: list[bytes]) -> None:
    with pytest.raises(ValueError):
        multiline(first, lines)


def test_capabilities_everything() -> None:
    lines = capabilities(stls=True, user=True, sasl=["PLAIN", "LOGIN"], implementation="po")
    assert lines == [b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING",
                     b"EXPIRE NEVER", b"USER", b"SASL PLAIN LOGIN", b"STLS",
                     b"IMPLEMENTATION po"]  # fmt: skip


def test_capabilities_without_plaintext_auth() -> None:
    lines = capabilities(stls=False, user=False, sasl=())
    assert b"USER" not in lines
    assert b"STLS" not in lines
    assert not any(line.startswith(b"SASL") for line in lines)
    assert lines[-1] == b"IMPLEMENTATION postoffice"
    assert b"IMPLEMENTATION" not in b" ".join(
        capabilities(stls=False, user=False, sasl=(), implementation=None)
    )


# --- MessageEncoder: RETR --------------------------------------------------------------------


def encode(*chunks: bytes, top: int | None = None) -> bytes:
    enc = MessageEncoder(top)
    return b"".join(enc.feed(chunk) for chunk in chunks) + enc.finish()


RETR_CASES = [
    # stored message, RETR content on the wire
    (b"", b".\r\n"),  # after "+OK ...\r\n" this is CRLF.CRLF
    (b"a", b"a\r\n.\r\n"),
    (b"a\n", b"a\r\n.\r\n"),
    (b"a\r\n", b"a\r\n.\r\n"),
    (b"\n", b"\r\n.\r\n"),
    (b"\n\n", b"\r\n\r\n.\r\n"),
    (b".", b"..\r\n.\r\n"),
    (b".\n", b"..\r\n.\r\n"),
    (b"..\r\n", b"...\r\n.\r\n"),
    (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),  # a lone dot in content stays content
    (b"a\n\r\n.\r\nMAIL\r\n", b"a\r\n\r\n..\r\nMAIL\r\n.\r\n"),
    (b"a\r", b"a\r\r\n.\r\n"),  # a bare CR is kept, and the line still ends with CRLF
    (b"\r", b"\r\r\n.\r\n"),
    (b"a\r.\r\n", b"a\r.\r\n.\r\n"),  # "." after a bare CR is no line start
    (b"a\r\r\nb", b"a\r\r\nb\r\n.\r\n"),
    (b"a\n\rb\n", b"a\r\n\rb\r\n.\r\n"),
    (b"\r\n.", b"\r\n..\r\n.\r\n"),
    (b"x\n.\r.\n", b"x\r\n..\r.\r\n.\r\n"),
]


@pytest.mark.parametrize(("stored", "wire"), RETR_CASES)
def test_retr_encoding(stored: bytes, wire: bytes) -> None:
    assert encode(stored) == wire


@pytest.mark.parametrize(("stored", "wire"), RETR_CASES)
def test_retr_encoding_any_split(stored: bytes, wire: bytes) -> None:
    for i in range(len(stored) + 1):
        for j in range(i, len(stored) + 1):
            assert encode(stored[:i], stored[i:j], stored[j:]) == wire, (i, j)
    assert encode(*(stored[i : i + 1] for i in range(len(stored)))) == wire


def test_crlf_split_between_chunks_stays_one_line_end() -> None:
    assert encode(b"a\r", b"\nb") == b"a\r\nb\r\n.\r\n"
    assert encode(b"a\r", b"", b"\nb") == b"a\r\nb\r\n.\r\n"


def test_dot_right_after_a_chunk_ending_a_line_is_stuffed() -> None:
    assert encode(b"a\n", b".b") == b"a\r\n..b\r\n.\r\n"
    assert encode(b"a\r\n", b".") == b"a\r\n..\r\n.\r\n"
    assert encode(b"a\r", b"\n.") == b"a\r\n..\r\n.\r\n"


def test_retr_is_never_done_and_misuse_raises() -> None:
    enc = MessageEncoder()
    enc.feed(b"x\n" * 100)
    assert not enc.done
    enc.finish()
    with pytest.raises(RuntimeError):
        enc.feed(b"x")
    with pytest.raises(RuntimeError):
        enc.finish()
    with pytest.raises(ValueError):
        MessageEncoder(-1)


@pytest.mark.parametrize(
    ("stored", "size"),
    [(b"", 0), (b"a", 3), (b"a\n", 3), (b"a\r\n", 3), (b"a\nb\n", 6), (b"a\r", 4), (b"\n\n", 4)],
)
def test_octets_after_crlf(stored: bytes, size: int) -> None:
    assert octets_after_crlf(stored) == size


# --- MessageEncoder: properties --------------------------------------------------------------

MESSAGES = st.binary(max_size=60) | st.lists(
    st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"a", b"b ", b"..", b"\n\n", b"\r\n\r\n"]),
    max_size=40,
).map(b"".join)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(min(cut, len(data)) for cut in cuts), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


def reference_lines(data: bytes) -> list[bytes]:
    """The lines of a stored message without their ends: split at CRLF or bare LF, by hand."""
    lines, line, i = [], bytearray(), 0
    while i < len(data):
        if data[i : i + 2] == b"\r\n":
            lines.append(bytes(line))
            line.clear()
            i += 2
        elif data[i : i + 1] == b"\n":
            lines.append(bytes(line))
            line.clear()
            i += 1
        else:
            line += data[i : i + 1]
            i += 1
    if line:
        lines.append(bytes(line))
    return lines


def unstuff(wire: bytes) -> bytes:
    assert wire.endswith(b".\r\n")
    content = wire[:-3]
    if content.startswith(b".."):
        content = content[1:]
    return content.replace(b"\r\n..", b"\r\n.")


@settings(max_examples=400)
@given(MESSAGES, st.lists(st.integers(min_value=0, max_value=60), max_size=6))
def test_retr_properties(stored: bytes, cuts: list[int]) -> None:
    wire = encode(*split(stored, cuts))
    assert wire == encode(stored)  # (a) chunking changes nothing
    assert (b"+OK\r\n" + wire).endswith(b"\r\n.\r\n")  # (b) terminated
    if stored:
        assert wire.endswith(b"\r\n.\r\n")
    assert wire.count(b"\n") == wire.count(b"\r\n")  # (c) no bare LF
    # The terminator appears once, at the end: no content can end the response early.
    assert (b"\r\n" + wire).find(b"\r\n.\r\n") == len(wire) - 3
    content = unstuff(wire)  # (d) unstuffing gives back the stored message, line ends normalised
    assert content == b"".join(line + b"\r\n" for line in reference_lines(stored))
    assert len(content) == octets_after_crlf(stored)


def reference_top(stored: bytes, n: int) -> bytes:
    lines = reference_lines(stored)
    if b"" in lines:
        blank = lines.index(b"")
        lines = lines[: blank + 1 + n]
    out = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    return out + b".\r\n"


@settings(max_examples=400)
@given(
    MESSAGES,
    st.integers(min_value=0, max_value=6),
    st.lists(st.integers(min_value=0, max_value=60), max_size=6),
)
def test_top_matches_reference(stored: bytes, n: int, cuts: list[int]) -> None:
    assert encode(*split(stored, cuts), top=n) == reference_top(stored, n)


# --- MessageEncoder: TOP ---------------------------------------------------------------------

MESSAGE = b"From: a\nSubject: s\n\nl1\n.l2\nl3\n"


@pytest.mark.parametrize(
    ("top", "wire"),
    [
        (0, b"From: a\r\nSubject: s\r\n\r\n.\r\n"),
        (1, b"From: a\r\nSubject: s\r\n\r\nl1\r\n.\r\n"),
        (2, b"From: a\r\nSubject: s\r\n\r\nl1\r\n..l2\r\n.\r\n"),
        (3, b"From: a\r\nSubject: s\r\n\r\nl1\r\n..l2\r\nl3\r\n.\r\n"),
        (50, b"From: a\r\nSubject: s\r\n\r\nl1\r\n..l2\r\nl3\r\n.\r\n"),
    ],
)
def test_top(top: int, wire: bytes) -> None:
    assert encode(MESSAGE, top=top) == wire
    assert encode(*(MESSAGE[i : i + 1] for i in range(len(MESSAGE))), top=top) == wire


def test_top_without_blank_line_is_all_header() -> None:
    assert encode(b"From: a\nSubject: s", top=1) == b"From: a\r\nSubject: s\r\n.\r\n"


def test_top_of_message_opening_with_blank_line() -> None:
    assert encode(b"\nbody1\nbody2\n", top=1) == b"\r\nbody1\r\n.\r\n"
    assert encode(b"\r\nbody1\r\n", top=0) == b"\r\n.\r\n"


def test_top_blank_line_split_between_chunks() -> None:
    for chunks in [
        (b"From: a\r\n\r", b"\nbody\r\n"),
        (b"From: a\r\n", b"\r\nbody\r\n"),
        (b"From: a\r", b"\n\r\nbody\r\n"),
        (b"From: a\n", b"\nbody\n"),
    ]:
        assert encode(*chunks, top=0) == b"From: a\r\n\r\n.\r\n", chunks
        assert encode(*chunks, top=1) == b"From: a\r\n\r\nbody\r\n.\r\n", chunks


def test_top_last_body_line_without_line_end() -> None:
    assert encode(b"H: v\n\nlast", top=5) == b"H: v\r\n\r\nlast\r\n.\r\n"


def test_top_is_done_early_and_ignores_the_rest() -> None:
    enc = MessageEncoder(1)
    assert enc.feed(b"H: v\n\nfirst\nsecond\n") == b"H: v\r\n\r\nfirst\r\n"
    assert enc.done
    assert enc.feed(b"more\n") == b""
    assert enc.finish() == b".\r\n"


def test_top_zero_is_done_after_the_blank_line() -> None:
    enc = MessageEncoder(0)
    assert enc.feed(b"H: v\n") == b"H: v\r\n"
    assert not enc.done
    assert enc.feed(b"\nbody") == b"\r\n"
    assert enc.done


def test_top_over_big_chunks_counts_lines_across_them() -> None:
    body = b"".join(b"line %d\n" % i for i in range(10000))
    message = b"H: v\n\n" + body
    chunks = [message[i : i + 4096] for i in range(0, len(message), 4096)]
    wire = encode(*chunks, top=7777)
    assert wire.count(b"\r\n") == 2 + 7777 + 1
    assert wire.endswith(b"line 7776\r\n.\r\n")


# --- no I/O (like tests/smtp/test_sansio_proto.py) -------------------------------------------

FORBIDDEN = (
    "asyncio", "socket", "ssl", "selectors", "select", "threading", "subprocess", "uvloop",
    "os", "io", "pathlib", "postoffice.store",
)  # fmt: skip
ALLOWED_POSTOFFICE = (
    "postoffice.pop3.proto", "postoffice.pop3.content", "postoffice.pop3.maildrop",
    "postoffice.proto.linebuffer", "postoffice.auth.sasl", "postoffice.message.lines",
)  # fmt: skip
POP3_DIR = Path(postoffice.pop3.__file__).parent
DODGES = ("__import__", "open")
# The sans-IO modules; session.py and server.py are the I/O driver.
SANS_IO = ("__init__.py", "proto.py", "content.py", "maildrop.py")
SOURCES = [POP3_DIR / name for name in SANS_IO] + [Path(linebuffer.__file__), Path(sasl.__file__)]


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                continue
            assert node.module is not None
            modules.append(node.module)
            modules += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in DODGES:
            modules.append("__import__")  # dynamic imports or file access would dodge this test
    return modules


def test_sources_found() -> None:
    assert all(path.exists() for path in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_io_imports(path: Path) -> None:
    for module in imported_modules(path):
        assert module != "__import__", path
        assert not any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN), (
            f"{path.name} imports {module}"
        )
        if module.startswith("postoffice"):
            assert module.startswith(ALLOWED_POSTOFFICE), f"{path.name} imports {module}"


@pytest.mark.parametrize("module", [proto, maildrop, content], ids=lambda m: m.__name__)
def test_all_is_honest(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        assert hasattr(module, name), name
