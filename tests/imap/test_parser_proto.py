"""The IMAP command parser's framing: lines, literals, limits, modes (bytes in -> events out).

The grammar of each command is in test_commands_proto.py; the helpers here (``run``,
``command``, ``error``) are shared with it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postoffice.imap.proto.commands import (
    Append,
    AppendMessage,
    Authenticate,
    Idle,
    Login,
    Noop,
    Select,
)
from postoffice.imap.proto.events import (
    NEED_DATA,
    CommandError,
    ContinuationLine,
    Event,
    IdleDone,
    ImapCommand,
    LiteralNeeded,
)
from postoffice.imap.proto.parser import ImapServerParser, LocalProtocolError

# --- helpers (also used by test_commands_proto.py) ---------------------------------------------


def run(
    chunks: bytes | Iterable[bytes],
    parser: ImapServerParser | None = None,
    **options: int,
) -> list[Event]:
    """All events for the input, fed chunk by chunk; every LiteralNeeded is accepted."""
    if parser is None:
        options.setdefault("max_literal", 1 << 20)
        parser = ImapServerParser(**options)  # type: ignore[arg-type]
    events: list[Event] = []
    for chunk in [chunks] if isinstance(chunks, bytes) else chunks:
        parser.receive_data(chunk)
        while (event := parser.next_event()) is not NEED_DATA:
            events.append(event)
    return events


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def final_events(line: bytes, **options: int) -> list[ImapCommand | CommandError]:
    return [e for e in run(line, **options) if isinstance(e, ImapCommand | CommandError)]


def command(line: bytes, **options: int) -> ImapCommand:
    """The one command a line (with its literals) parses into."""
    events = final_events(line, **options)
    assert len(events) == 1, events
    assert isinstance(events[0], ImapCommand), events[0]
    return events[0]


def error(line: bytes, **options: int) -> CommandError:
    events = final_events(line, **options)
    assert len(events) == 1, events
    assert isinstance(events[0], CommandError), events[0]
    return events[0]


def noop(tag: str) -> ImapCommand:
    return ImapCommand(tag, "NOOP", Noop())


MESSAGE = b"From: a@example.org\r\nSubject: hi\r\n\r\nHello\r\n"

# Inputs with literals of every kind, for the split tests.
LITERAL_INPUTS = [
    b"a1 LOGIN {3}\r\nbob {6}\r\nsecret\r\n",
    b"a2 LOGIN {3+}\r\nbob {6-}\r\nse\r\nre\r\n",
    b"a3 APPEND INBOX (\\Seen) {%d}\r\n%s {%d+}\r\n%s ~{3}\r\na\x00b\r\n"
    % (len(MESSAGE), MESSAGE, len(MESSAGE), MESSAGE),
    b'a4 SEARCH CHARSET UTF-8 SUBJECT {4}\r\n\xc3\xa4\xc3\xb6 FROM "x"\r\n',
    b"a5 SELECT {5}\r\ninbox\r\na6 NOOP\r\na7 APPEND x {0}\r\n\r\n",
]


# --- commands and pipelining -------------------------------------------------------------------


def test_one_command_per_line_and_pipelining() -> None:
    assert run(b"a NOOP\r\nb noop\r\nc NoOp\r\n") == [noop("a"), noop("b"), noop("c")]


def test_bare_lf_ends_a_line() -> None:
    assert run(b"a NOOP\nb NOOP\n") == [noop("a"), noop("b")]


def test_empty_lines_between_commands_are_ignored() -> None:
    assert run(b"\r\n\r\na NOOP\r\n\n") == [noop("a")]


def test_nothing_before_the_line_end() -> None:
    parser = ImapServerParser(max_literal=100)
    assert run(b"a NO", parser) == []
    assert run(b"OP\r", parser) == []
    assert run(b"\n", parser) == [noop("a")]


@pytest.mark.parametrize(
    ("line", "tag", "text"),
    [
        (b"+ NOOP\r\n", None, "Invalid tag"),
        (b"a+b NOOP\r\n", None, "Invalid tag"),
        (b"(a) NOOP\r\n", None, "Invalid tag"),
        (b'"a" NOOP\r\n', None, "Invalid tag"),
        (b"* NOOP\r\n", None, "Invalid tag"),
        (b" NOOP\r\n", None, "Invalid tag"),
        (b"a\r\n", "a", "Missing command"),
        (b"a \r\n", "a", "Missing command"),
        (b"a FROB\r\n", "a", "Unknown command FROB"),
        (b"a UID FROB 1\r\n", "a", "Unknown command UID FROB"),
        (b"a NOOP extra\r\n", "a", "Unexpected extra arguments"),
        (b"a NOOP\x00\r\n", "a", "Unexpected extra arguments"),
        (b"a  NOOP\r\n", "a", "Invalid command name"),
        (b"a {3}\r\n", "a", "Invalid command name"),
    ],
)
def test_malformed_lines_are_bad(line: bytes, tag: str | None, text: str) -> None:
    err = error(line)
    assert (err.tag, err.status, err.text) == (tag, "BAD", text)


def test_tags_may_contain_any_astring_char_but_plus() -> None:
    assert command(b"a]1.x~y! NOOP\r\n").tag == "a]1.x~y!"


# --- literals ----------------------------------------------------------------------------------


def test_synchronising_literal_is_announced_before_its_octets() -> None:
    parser = ImapServerParser(max_literal=100)
    assert run(b"a LOGIN {3}\r\n", parser) == [LiteralNeeded("a", 3, False, "LOGIN")]
    assert run(b"bob {6}\r\n", parser) == [LiteralNeeded("a", 6, False, "LOGIN")]
    assert run(b"sec", parser) == []
    assert run(b"ret\r\n", parser) == [ImapCommand("a", "LOGIN", Login("bob", "secret"))]


def test_literal_needed_comes_before_any_literal_octet_is_read() -> None:
    # A client that does not wait for "+" (or a pipelined next command) is not read ahead.
    parser = ImapServerParser(max_literal=100)
    parser.receive_data(b"a LOGIN {3}\r\nbob {3}\r\nxyz\r\n")
    assert parser.next_event() == LiteralNeeded("a", 3, False, "LOGIN")
    assert parser.has_buffered_data
    parser.reject_literal()
    # Refused: what the client sent anyway is read as commands.
    assert parser.next_event() == CommandError("bob", "BAD", "Invalid command name")


def test_uid_command_name_in_literal_needed() -> None:
    events = run(b"a UID SEARCH SUBJECT {2}\r\nhi\r\n")
    assert events[0] == LiteralNeeded("a", 2, False, "UID SEARCH")


@pytest.mark.parametrize("data", LITERAL_INPUTS)
def test_literals_split_at_every_boundary_give_the_same_events(data: bytes) -> None:
    whole = run(data)
    assert any(isinstance(e, ImapCommand) for e in whole)
    assert not any(isinstance(e, CommandError) for e in whole), whole
    for size in (1, 2, 3, 5, 7, 64):
        assert run(split_every(data, size)) == whole, size
    for cut in range(1, len(data)):
        assert run([data[:cut], data[cut:]]) == whole, cut


def test_multiappend_with_plain_nonsync_and_binary_literals() -> None:
    cmd = command(LITERAL_INPUTS[2])
    assert cmd.args == Append(
        "INBOX",
        (
            AppendMessage(("\\Seen",), None, MESSAGE, False),
            AppendMessage((), None, MESSAGE, False),
            AppendMessage((), None, b"a\x00b", True),
        ),
    )


def test_binary_literal_is_announced_as_binary() -> None:
    assert run(b"a APPEND INBOX ~{3}\r\n")[0] == LiteralNeeded("a", 3, True, "APPEND")


def test_binary_literal_outside_append_is_bad() -> None:
    err = error(b"a LOGIN ~{3+}\r\nbob x\r\n")
    assert err.status == "BAD" and "literal8" in err.text


def test_nul_in_a_string_literal_is_bad() -> None:
    assert error(b"a LOGIN {3+}\r\nb\x00b x\r\n").text == "NUL in a literal"


def test_zero_length_literal() -> None:
    assert command(b"a LOGIN {0}\r\n {0+}\r\n\r\n").args == Login("", "")


def test_literal_containing_crlf_and_command_text() -> None:
    cmd = command(b"a LOGIN {14+}\r\nb NOOP\r\nc NOOP x\r\n")
    assert cmd.args == Login("b NOOP\r\nc NOOP", "x")


# --- literal limits ----------------------------------------------------------------------------


def test_synchronising_literal_over_the_limit_is_refused_before_any_octet() -> None:
    parser = ImapServerParser(max_literal=10)
    events = run(b"a APPEND INBOX {11}\r\n", parser)
    assert events == [CommandError("a", "NO", "Literal too large", "TOOBIG")]
    # The client sends nothing of the literal: the next line is a command.
    assert run(b"b NOOP\r\n", parser) == [noop("b")]


def test_driver_may_refuse_a_literal_it_was_asked_about() -> None:
    parser = ImapServerParser(max_literal=1000)
    parser.receive_data(b"a APPEND INBOX {500}\r\n")
    event = parser.next_event()
    assert event == LiteralNeeded("a", 500, False, "APPEND")
    parser.reject_literal()  # e.g. over quota
    assert run(b"b NOOP\r\n", parser) == [noop("b")]


def test_literal_plus_over_the_limit_is_discarded_then_reported() -> None:
    smuggled = b"x LOGOUT\r\n" * 2
    data = b"a APPEND INBOX {20+}\r\n" + smuggled + b"\r\nb NOOP\r\n"
    expected = [CommandError("a", "BAD", "Literal too large", "TOOBIG"), noop("b")]
    assert run(data, max_literal=10) == expected
    assert run(split_every(data, 1), max_literal=10) == expected


def test_literal_minus_over_4096_is_too_big() -> None:
    data = b"a APPEND INBOX {5000-}\r\n" + b"x" * 5000 + b"\r\nb NOOP\r\n"
    events = run(data, max_literal=10000, max_nonsync_literal=4096)
    assert events == [CommandError("a", "BAD", "Literal too large", "TOOBIG"), noop("b")]


def test_rest_of_a_failed_command_is_discarded_with_its_nonsync_literals() -> None:
    data = (
        b"a APPEND INBOX {20+}\r\n" + b"y" * 20 + b" {10+}\r\nc LOGOUT\r\n (\\Seen) {3+}\r\nabc\r\n"
        b"b NOOP\r\n"
    )
    events = run(data, max_literal=10)
    assert events == [CommandError("a", "BAD", "Literal too large", "TOOBIG"), noop("b")]


def test_failed_command_reports_at_its_next_synchronising_literal() -> None:
    parser = ImapServerParser(max_literal=10)
    events = run(b"a APPEND INBOX {20+}\r\n" + b"y" * 20 + b" {5}\r\n", parser)
    # The client now waits for "+": it gets the tagged BAD instead and abandons the command.
    assert events == [CommandError("a", "BAD", "Literal too large", "TOOBIG")]
    assert run(b"b NOOP\r\n", parser) == [noop("b")]


def test_total_literal_size_of_a_command_is_limited() -> None:
    parser = ImapServerParser(max_literal=10, max_command_literals=15)
    assert run(b"a APPEND x {10+}\r\n" + b"z" * 10 + b" {10}\r\n", parser) == [
        CommandError("a", "NO", "Command too large", "TOOBIG")
    ]


def test_number_of_literals_in_a_command_is_limited() -> None:
    data = b"a APPEND x" + b" {1+}\r\nz" * 5 + b"\r\nb NOOP\r\n"
    events = run(data, max_literal=10, max_literals_per_command=3)
    assert events == [CommandError("a", "BAD", "Too many literals", "TOOBIG"), noop("b")]


def test_unknown_command_with_a_literal_is_refused_without_asking_for_it() -> None:
    assert run(b"a FROB {5}\r\n") == [CommandError("a", "BAD", "Unknown command FROB")]


def test_literal_size_beyond_number64_cannot_be_resynchronised() -> None:
    parser = ImapServerParser(max_literal=10)
    events = run(b"a LOGIN {99999999999999999999999+}\r\nb NOOP\r\n", parser)
    assert events == [CommandError("a", "BAD", "Invalid literal size", fatal=True)]
    assert run(b"c NOOP\r\n", parser) == []


def test_synchronising_literal_size_beyond_number64_is_just_refused() -> None:
    parser = ImapServerParser(max_literal=10)
    events = run(b"a LOGIN {99999999999999999999999}\r\nb NOOP\r\n", parser)
    assert events == [CommandError("a", "BAD", "Invalid literal size"), noop("b")]


# --- line length and garbage -------------------------------------------------------------------


def test_over_long_line_is_bad_and_skipped() -> None:
    data = b"a SEARCH " + b"x" * 3000 + b"\r\nb NOOP\r\n"
    expected = [CommandError("a", "BAD", "Command line too long", "TOOBIG"), noop("b")]
    assert run(data, max_line=1024) == expected
    assert run(split_every(data, 100), max_line=1024) == expected
    assert run(split_every(data, 1), max_line=1024) == expected


def test_over_long_line_without_tag_is_untagged_bad() -> None:
    events = run(b"+" * 2000 + b"\r\nb NOOP\r\n", max_line=1024)
    assert events == [CommandError(None, "BAD", "Command line too long", "TOOBIG"), noop("b")]


def test_over_long_line_ending_in_nonsync_literal_discards_the_literal() -> None:
    data = b"a APPEND INBOX (" + b"x" * 2000 + b") {10+}\r\nc LOGOUT\r\n\r\nb NOOP\r\n"
    events = run(split_every(data, 300), max_line=1024)
    assert events == [CommandError("a", "BAD", "Command line too long", "TOOBIG"), noop("b")]


def test_over_long_line_ending_in_sync_literal_reports_at_once() -> None:
    data = b"a APPEND INBOX (" + b"x" * 2000 + b") {10}\r\nb NOOP\r\n"
    events = run(data, max_line=1024)
    assert events == [CommandError("a", "BAD", "Command line too long", "TOOBIG"), noop("b")]


def test_over_long_line_ending_in_an_unreadable_literal_header_is_fatal() -> None:
    data = b"a APPEND INBOX " + b"x" * 2000 + b" {" + b"9" * 100 + b"+}\r\nb NOOP\r\n"
    parser = ImapServerParser(max_literal=10, max_line=1024)
    assert run(data, parser) == [
        CommandError("a", "BAD", "Command line too long", "TOOBIG", fatal=True)
    ]
    assert run(b"c NOOP\r\n", parser) == []


def test_over_long_continuation_line_keeps_the_tag() -> None:
    data = b"a LOGIN {3+}\r\nbob " + b"x" * 2000 + b"\r\nb NOOP\r\n"
    events = run(data, max_line=1024)
    assert events == [CommandError("a", "BAD", "Command line too long", "TOOBIG"), noop("b")]


def test_error_counters_for_garbage() -> None:
    parser = ImapServerParser(max_literal=10)
    run(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", parser)
    assert parser.consecutive_errors == 2 and parser.error_count == 2
    run(b"a NOOP\r\nb FROB\r\n", parser)
    assert parser.consecutive_errors == 1 and parser.error_count == 3


# --- IDLE, AUTHENTICATE, STARTTLS, EOF ---------------------------------------------------------


def test_idle_done() -> None:
    parser = ImapServerParser(max_literal=10)
    parser.receive_data(b"a IDLE\r\nDONE\r\nb NOOP\r\n")
    assert parser.next_event() == ImapCommand("a", "IDLE", Idle())
    parser.expect_idle_done()
    assert parser.next_event() == IdleDone("a")
    assert parser.next_event() == noop("b")


@pytest.mark.parametrize("line", [b"done\r\n", b"Done\n"])
def test_idle_done_is_case_insensitive(line: bytes) -> None:
    parser = ImapServerParser(max_literal=10)
    run(b"t IDLE\r\n", parser)
    parser.expect_idle_done()
    assert run(line, parser) == [IdleDone("t")]


def test_idle_anything_but_done_is_bad_and_ends_idle() -> None:
    parser = ImapServerParser(max_literal=10)
    run(b"t IDLE\r\n", parser)
    parser.expect_idle_done()
    assert run(b"u NOOP\r\nv NOOP\r\n", parser) == [
        CommandError("t", "BAD", "Expected DONE"),
        noop("v"),
    ]


def test_idle_over_long_line_is_bad() -> None:
    parser = ImapServerParser(max_literal=10, max_line=1024)
    run(b"t IDLE\r\n", parser)
    parser.expect_idle_done()
    assert run(b"D" * 3000 + b"\r\nv NOOP\r\n", parser) == [
        CommandError("t", "BAD", "Expected DONE"),
        noop("v"),
    ]


def test_authenticate_continuation_lines() -> None:
    parser = ImapServerParser(max_literal=10)
    parser.receive_data(b"a AUTHENTICATE PLAIN\r\nAGJvYgBzZWNyZXQ=\r\n*\r\n")
    assert parser.next_event() == ImapCommand("a", "AUTHENTICATE", Authenticate("PLAIN"))
    parser.expect_continuation()
    assert parser.next_event() == ContinuationLine(b"AGJvYgBzZWNyZXQ=", "a")
    parser.expect_continuation()
    assert parser.next_event() == ContinuationLine(b"*", "a")
    assert parser.next_event() is NEED_DATA


def test_continuation_line_is_raw_even_if_it_looks_like_a_literal() -> None:
    parser = ImapServerParser(max_literal=10)
    run(b"a AUTHENTICATE PLAIN\r\n", parser)
    parser.expect_continuation()
    assert run(b"b LOGIN {5}\r\n", parser) == [ContinuationLine(b"b LOGIN {5}", "a")]


def test_continuation_line_too_long() -> None:
    parser = ImapServerParser(max_literal=10, max_line=1024)
    run(b"a AUTHENTICATE PLAIN\r\n", parser)
    parser.expect_continuation()
    assert run(b"A" * 5000 + b"\r\nb NOOP\r\n", parser) == [
        CommandError("a", "BAD", "Line too long"),
        noop("b"),
    ]


def test_take_buffered_after_starttls_drops_injected_commands() -> None:
    parser = ImapServerParser(max_literal=10)
    parser.receive_data(b"a STARTTLS\r\nb LOGIN x y\r\n")
    assert isinstance(parser.next_event(), ImapCommand)
    assert parser.take_buffered() == b"b LOGIN x y\r\n"
    assert parser.next_event() is NEED_DATA


def test_eof() -> None:
    parser = ImapServerParser(max_literal=10)
    parser.receive_data(b"a NOOP\r\nb NO")
    parser.receive_data(b"")
    assert parser.eof
    assert parser.next_event() == noop("a")
    assert parser.next_event() is NEED_DATA
    with pytest.raises(LocalProtocolError):
        parser.receive_data(b"x")


def test_driver_mistakes_are_local_protocol_errors() -> None:
    parser = ImapServerParser(max_literal=10)
    with pytest.raises(LocalProtocolError):
        parser.reject_literal()
    run(b"a LOGIN {3}\r\n", parser)
    with pytest.raises(LocalProtocolError):
        parser.expect_idle_done()
    with pytest.raises(LocalProtocolError):
        parser.take_buffered()


def test_utf8_mailboxes_mode() -> None:
    line = 'a SELECT "Entwürfe"\r\n'.encode()
    assert error(line).status == "NO"  # not modified UTF-7
    parser = ImapServerParser(max_literal=10, utf8_mailboxes=True)
    assert run(line, parser) == [ImapCommand("a", "SELECT", Select("Entwürfe"))]
    parser.utf8_mailboxes = False
    assert command(b"b SELECT Entw&APw-rfe\r\n").args == Select("Entwürfe")


def test_constructor_validates_limits() -> None:
    with pytest.raises(ValueError):
        ImapServerParser(max_literal=-1)
    with pytest.raises(ValueError):
        ImapServerParser(max_literal=10, max_line=100)


# --- hostile input -----------------------------------------------------------------------------

EVENT_TYPES = (ImapCommand, CommandError, LiteralNeeded)
TOKENS = [
    b"a", b" ", b"{", b"}", b"3", b"+", b"-", b"~", b"\r\n", b"\n", b"(", b")", b'"', b"\\",
    b"NOOP", b"LOGIN", b"APPEND", b"FETCH", b"SEARCH", b"1:*", b"[", b"]", b"<", b">", b"BODY",
    b"\x00", b"\xff", b"*", b"$", b"UID", b"INBOX",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.lists(
            st.sampled_from(TOKENS),
            max_size=80,
        ).map(b"".join),
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_random_input_in_random_splits_only_gives_events(data: bytes, cuts: list[int]) -> None:
    points = sorted({c for c in cuts if c < len(data)} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    whole = run(data, max_literal=64, max_line=1024)
    split = run([c for c in chunks if c], max_literal=64, max_line=1024)
    assert split == whole
    assert all(isinstance(e, EVENT_TYPES) for e in whole)
