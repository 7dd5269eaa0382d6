"""SmtpServerConnection: (bytes, replies) -> events, for every state rule and hostile input."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postoffice.smtp.proto import events as ev
from postoffice.smtp.proto import replies as r
from postoffice.smtp.proto.dotstuff import stuff_dots
from postoffice.smtp.proto.replies import Reply
from postoffice.smtp.proto.server import LocalProtocolError, SmtpServerConnection
from postoffice.smtp.proto.state import NEED_MAIL, State

Replier = Callable[[ev.Event], Reply]

AUTH_CONTINUE = Reply(334, None, "")
REJECT = Reply(550, "5.7.1", "No")


def default_reply(event: ev.Event) -> Reply:
    """What a permissive driver answers."""
    match event:
        case ev.Ehlo():
            return Reply(250, None, ("mx.example.org", "PIPELINING", "CHUNKING"))
        case ev.MailFrom():
            return r.SENDER_OK
        case ev.RcptTo():
            return r.RCPT_OK
        case ev.DataRequested():
            return r.START_DATA
        case ev.DataComplete(too_large=True) | ev.BdatComplete(too_large=True):
            return r.MESSAGE_TOO_BIG
        case ev.StartTlsRequested():
            return r.READY_FOR_TLS
        case ev.AuthRequested() | ev.AuthResponse():
            return AUTH_CONTINUE
        case ev.Quit():
            return r.CLOSING
        case ev.Vrfy() | ev.Expn():
            return r.VRFY_CANNOT
        case ev.Help():
            return r.HELP
        case ev.CommandError(reply=reply):
            return reply
        case _:
            return r.OK


class Session:
    """Feeds bytes, answers every command event, records events (DataChunks merged)."""

    def __init__(
        self,
        replier: Replier = default_reply,
        *,
        max_message_size: int = 1000,
        max_line: int = 512,
        lmtp: bool = False,
    ) -> None:
        self.conn = SmtpServerConnection(
            max_line=max_line, max_message_size=max_message_size, lmtp=lmtp
        )
        self.replier = replier
        self.replies: list[Reply] = []

    def feed(self, *pieces: bytes) -> list[ev.Event]:
        """Feed the pieces (empty ones skipped: ``eof()`` is EOF); the events they gave."""
        return self._receive([piece for piece in pieces if piece])

    def eof(self) -> list[ev.Event]:
        return self._receive([b""])

    def _receive(self, pieces: list[bytes]) -> list[ev.Event]:
        events: list[ev.Event] = []
        for piece in pieces:
            self.conn.receive_data(piece)
            while (event := self.conn.next_event()) is not ev.NEED_DATA:
                if isinstance(event, ev.DataChunk):
                    if events and isinstance(events[-1], ev.DataChunk):
                        events[-1] = ev.DataChunk(events[-1].data + event.data)
                    else:
                        events.append(event)
                    continue
                events.append(event)
                reply = self.replier(event)
                self.replies.append(reply)
                assert self.conn.send(reply) == reply.to_bytes()
        return events


def greeted(**kwargs: object) -> Session:
    session = Session(**kwargs)  # type: ignore[arg-type]
    session.feed(b"EHLO client.example\r\n")
    return session


def in_transaction(**kwargs: object) -> Session:
    session = greeted(**kwargs)
    session.feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n")
    return session


def error(reply: Reply, fatal: bool = False) -> ev.CommandError:
    return ev.CommandError(reply, fatal)


def codes(events: list[ev.Event]) -> list[tuple[int, str | None]]:
    return [(e.reply.code, e.reply.enhanced) for e in events if isinstance(e, ev.CommandError)]


MAIL = ev.MailFrom("a@example.org", ev.MailParams())
RCPT = ev.RcptTo("b@example.org", ev.RcptParams(), False)

# --- the greeting and EHLO -----------------------------------------------------------------


def test_greetings() -> None:
    assert SmtpServerConnection(max_message_size=1).greeting("mx.example.org") == (
        b"220 mx.example.org ESMTP postoffice\r\n"
    )
    lmtp = SmtpServerConnection(max_message_size=1, lmtp=True)
    assert lmtp.greeting("mx.example.org") == b"220 mx.example.org LMTP postoffice\r\n"


def test_ehlo_reply_lists_extensions_without_enhanced_codes() -> None:
    conn = SmtpServerConnection(max_message_size=1)
    reply = conn.ehlo_reply("mx.example.org", ["PIPELINING", "SIZE 100"])
    assert reply.to_bytes() == b"250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 100\r\n"


HELLO = [
    # lmtp, line, event
    (False, b"EHLO client.example\r\n", ev.Ehlo("client.example", True)),
    (False, b"ehlo  client.example \r\n", ev.Ehlo("client.example", True)),
    (False, b"HELO client.example\r\n", ev.Ehlo("client.example", False)),
    (False, b"EHLO [192.0.2.1]\r\n", ev.Ehlo("[192.0.2.1]", True)),
    (False, b"EHLO\r\n", error(Reply(501, "5.5.4", "Syntax: EHLO <hostname>"))),
    (False, b"LHLO client.example\r\n", error(r.UNKNOWN_COMMAND)),
    (True, b"LHLO client.example\r\n", ev.Ehlo("client.example", True)),
    (True, b"EHLO client.example\r\n", error(r.UNKNOWN_COMMAND)),
    (True, b"HELO client.example\r\n", error(r.UNKNOWN_COMMAND)),
]


@pytest.mark.parametrize(("lmtp", "line", "event"), HELLO)
def test_hello_table(lmtp: bool, line: bytes, event: ev.Event) -> None:
    assert Session(lmtp=lmtp).feed(line) == [event]


# --- the command sequence (RFC 5321 §4.1.4) -----------------------------------------------

SEQUENCE = [
    # setup input, command, expected (code, enhanced) or the event
    (b"", b"MAIL FROM:<a@example.org>\r\n", (503, "5.5.1")),
    (b"", b"RCPT TO:<b@example.org>\r\n", (503, "5.5.1")),
    (b"", b"DATA\r\n", (503, "5.5.1")),
    (b"", b"AUTH PLAIN\r\n", (503, "5.5.1")),
    (b"EHLO x\r\n", b"RCPT TO:<b@example.org>\r\n", (503, "5.5.1")),
    (b"EHLO x\r\n", b"DATA\r\n", (503, "5.5.1")),
    (b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n", b"DATA\r\n", (554, "5.5.1")),
    (b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n", b"MAIL FROM:<c@example.org>\r\n", (503, "5.5.1")),
    (b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n", b"AUTH PLAIN\r\n", (503, "5.5.1")),
    (b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n", b"STARTTLS\r\n", (503, "5.5.1")),
    (b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n", b"RCPT TO:<b@example.org>\r\n", RCPT),
    (
        b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRSET\r\n",
        b"RCPT TO:<b@example.org>\r\n",
        (503, "5.5.1"),
    ),
    (
        b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nEHLO y\r\n",
        b"RCPT TO:<b@example.org>\r\n",
        (503, "5.5.1"),
    ),
    (b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nHELO y\r\n", b"MAIL FROM:<a@example.org>\r\n", MAIL),
    (b"HELO x\r\n", b"MAIL FROM:<a@example.org>\r\n", MAIL),
    (b"RSET\r\n", b"MAIL FROM:<a@example.org>\r\n", (503, "5.5.1")),  # RSET is no greeting
    (b"EHLO x\r\n", b"NOOP whatever\r\n", ev.Noop()),
    (b"", b"NOOP\r\n", ev.Noop()),
    (b"", b"HELP\r\n", ev.Help("")),
    (b"", b"HELP MAIL\r\n", ev.Help("MAIL")),
    (b"", b"VRFY postmaster\r\n", ev.Vrfy("postmaster")),
    (b"", b"EXPN staff\r\n", ev.Expn("staff")),
    (b"", b"VRFY\r\n", (501, "5.5.4")),
    (b"", b"EXPN\r\n", (501, "5.5.4")),
    (b"", b"RSET\r\n", ev.Rset()),
    (b"", b"RSET now\r\n", (501, "5.5.4")),
    (b"", b"QUIT now\r\n", (501, "5.5.4")),
    (b"", b"STARTTLS now\r\n", (501, "5.5.4")),
    (b"", b"STARTTLS\r\n", ev.StartTlsRequested()),
    (
        b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n",
        b"DATA now\r\n",
        (501, "5.5.4"),
    ),
    (b"", b"QUIT \t\r\n", ev.Quit()),  # trailing blanks are tolerated
    (
        b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n",
        b"DATA \r\n",
        ev.DataRequested(),
    ),
    (b"", b"FOO\r\n", (500, "5.5.2")),
    (b"", b"\r\n", (500, "5.5.2")),
    (b"", b"MAILFROM:<a@example.org>\r\n", (500, "5.5.2")),
    (b"", b"NOOP\rQUIT\r\n", (500, "5.5.2")),  # a bare CR is no line end
    (b"", b"NOOP\x00\r\n", (500, "5.5.2")),
    (b"", b"HELP \xff\xfe\r\n", (500, "5.5.2")),  # not UTF-8
    (b"EHLO x\r\n", b"MAIL FROM:a@example.org\r\n", (501, "5.5.4")),
    (b"EHLO x\r\n", b"MAIL FROM:<a@@example.org>\r\n", (553, "5.1.7")),
    (b"EHLO x\r\n", b"MAIL FROM:<a@example.org> FOO=1\r\n", (555, "5.5.4")),
    (b"EHLO x\r\n", b"MAIL FROM:<a@example.org> SIZE=1001\r\n", (552, "5.3.4")),
    (
        b"EHLO x\r\n",
        b"MAIL FROM:<a@example.org> SIZE=1000\r\n",
        ev.MailFrom("a@example.org", ev.MailParams(size=1000)),
    ),
    (b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n", b"RCPT TO:<b>\r\n", (553, "5.1.3")),
    (
        b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n",
        b"RCPT TO:<@relay:b@example.org>\r\n",
        ev.RcptTo("b@example.org", ev.RcptParams(), True),
    ),
    (
        b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n",
        b"RCPT TO:<Postmaster>\r\n",
        ev.RcptTo("postmaster", ev.RcptParams(), False),
    ),
]


@pytest.mark.parametrize(("setup", "command", "expected"), SEQUENCE)
def test_sequence_table(setup: bytes, command: bytes, expected: tuple[int, str] | ev.Event) -> None:
    session = Session()
    session.feed(setup)
    (event,) = session.feed(command)
    if isinstance(expected, tuple):
        assert isinstance(event, ev.CommandError)
        assert (event.reply.code, event.reply.enhanced) == expected
        assert not event.fatal
    else:
        assert event == expected


def test_lmtp_asks_for_lhlo() -> None:
    (event,) = Session(lmtp=True).feed(b"MAIL FROM:<a@example.org>\r\n")
    assert isinstance(event, ev.CommandError)
    assert "LHLO" in str(event.reply.text)


def test_rejected_mail_from_leaves_no_transaction() -> None:
    session = greeted(replier=lambda e: REJECT if isinstance(e, ev.MailFrom) else default_reply(e))
    events = session.feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n")
    assert codes(events) == [(503, "5.5.1")]


def test_data_without_accepted_recipient_is_554() -> None:
    session = greeted(replier=lambda e: REJECT if isinstance(e, ev.RcptTo) else default_reply(e))
    events = session.feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    assert events[:2] == [MAIL, RCPT]
    assert events[2] == error(r.NO_VALID_RECIPIENTS)


def test_one_accepted_recipient_of_two_is_enough_for_data() -> None:
    replies = iter([r.RCPT_OK, REJECT])
    session = greeted(
        replier=lambda e: next(replies) if isinstance(e, ev.RcptTo) else default_reply(e)
    )
    events = session.feed(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
        b"DATA\r\n"
    )
    assert events[-1] == ev.DataRequested()


def test_transaction_ends_after_the_message() -> None:
    session = in_transaction()
    events = session.feed(b"DATA\r\nhi\r\n.\r\nRCPT TO:<b@example.org>\r\nMAIL FROM:<>\r\n")
    assert events == [
        ev.DataRequested(),
        ev.DataChunk(b"hi\r\n"),
        ev.DataComplete(4, False),
        error(NEED_MAIL),
        ev.MailFrom("", ev.MailParams()),
    ]


def test_mail_with_binarymime_needs_bdat() -> None:
    session = greeted()
    events = session.feed(
        b"MAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
        b"BDAT 3 LAST\r\n\x00\xff\r"
    )
    assert codes(events) == [(503, "5.5.1")]
    assert events[-2:] == [ev.DataChunk(b"\x00\xff\r"), ev.BdatComplete(3, True, False)]


def test_smtputf8_on_mail_allows_utf8_recipients() -> None:
    session = greeted()
    events = session.feed(
        "MAIL FROM:<jöran@exämple.org> SMTPUTF8\r\nRCPT TO:<zoë@exämple.org>\r\n".encode()
    )
    assert events == [
        ev.MailFrom("jöran@exämple.org", ev.MailParams(smtputf8=True)),
        ev.RcptTo("zoë@exämple.org", ev.RcptParams(), False),
    ]
    session.feed(b"RSET\r\n")
    events = session.feed("MAIL FROM:<a@x.org>\r\nRCPT TO:<zoë@exämple.org>\r\n".encode())
    assert codes(events) == [(553, "5.6.7")]


def test_dsn_parameters_reach_the_driver() -> None:
    session = greeted()
    events = session.feed(
        b"MAIL FROM:<a@x.org> RET=HDRS ENVID=id+2B1\r\n"
        b"RCPT TO:<b@x.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b+2Bx@x.org\r\n"
    )
    assert events == [
        ev.MailFrom("a@x.org", ev.MailParams(ret="HDRS", envid="id+1")),
        ev.RcptTo("b@x.org", ev.RcptParams(("FAILURE", "DELAY"), "rfc822;b+x@x.org"), False),
    ]


# --- pipelining (RFC 2920) -------------------------------------------------------------------


def test_pipelined_commands_come_out_one_by_one() -> None:
    session = Session()
    events = session.feed(
        b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n"
        b"RCPT TO:<c@example.org>\r\nDATA\r\n"
    )
    assert [type(e).__name__ for e in events] == [
        "Ehlo", "MailFrom", "RcptTo", "RcptTo", "DataRequested",
    ]  # fmt: skip
    assert len(session.replies) == 5


def test_bare_lf_ends_command_lines() -> None:
    assert Session().feed(b"NOOP\nNOOP\r\n") == [ev.Noop(), ev.Noop()]


def test_next_event_before_the_reply_is_a_driver_bug() -> None:
    conn = SmtpServerConnection(max_message_size=100)
    conn.receive_data(b"NOOP\r\nNOOP\r\n")
    assert conn.next_event() == ev.Noop()
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    conn.send(r.OK)
    assert conn.next_event() == ev.Noop()


def test_has_pending_input() -> None:
    conn = SmtpServerConnection(max_message_size=100)
    conn.receive_data(b"NOOP\r\nNOOP\r\n")
    assert conn.has_pending_input
    conn.next_event()
    conn.send(r.OK)
    assert conn.has_pending_input
    conn.next_event()
    conn.send(r.OK)
    assert not conn.has_pending_input
    assert conn.next_event() is ev.NEED_DATA


# --- DATA ------------------------------------------------------------------------------------


def test_data_streams_unstuffed_content_then_completes() -> None:
    session = in_transaction()
    events = session.feed(b"DATA\r\n", b"Subject: x\r\n\r\n..dot\r\n", b".\r\nQUIT\r\n")
    assert events == [
        ev.DataRequested(),
        ev.DataChunk(b"Subject: x\r\n\r\n.dot\r\n"),
        ev.DataComplete(20, False),
        ev.Quit(),
    ]
    assert session.conn.state is State.CLOSED


def test_in_data_only_after_354() -> None:
    session = in_transaction(
        replier=lambda e: REJECT if isinstance(e, ev.DataRequested) else default_reply(e)
    )
    events = session.feed(b"DATA\r\nNOOP\r\n")
    assert events == [ev.DataRequested(), ev.Noop()]  # refused DATA: lines are commands again
    session = in_transaction()
    session.feed(b"DATA\r\n")
    assert session.conn.in_data
    session.feed(b"x\r\n.\r\n")
    assert not session.conn.in_data


def test_empty_message() -> None:
    assert in_transaction().feed(b"DATA\r\n.\r\n") == [
        ev.DataRequested(),
        ev.DataComplete(0, False),
    ]


MESSAGE = b"From: a@example.org\r\n\r\n.hidden\r\nline\r\n"
WIRE = b"DATA\r\n" + stuff_dots(MESSAGE) + b".\r\nRSET\r\nQUIT\r\n"
EXPECTED = [
    ev.DataRequested(),
    ev.DataChunk(MESSAGE),
    ev.DataComplete(len(MESSAGE), False),
    ev.Rset(),
    ev.Quit(),
]


@pytest.mark.parametrize("index", range(len(WIRE) + 1))
def test_split_at_every_index_gives_identical_events(index: int) -> None:
    assert in_transaction().feed(WIRE[:index], WIRE[index:]) == EXPECTED


def test_byte_by_byte_gives_identical_events() -> None:
    assert in_transaction().feed(*[WIRE[i : i + 1] for i in range(len(WIRE))]) == EXPECTED


SMUGGLING = [
    b"a\n.\nMAIL FROM:<evil@example.org>\r\n",
    b"a\r.\rMAIL FROM:<evil@example.org>\r\n",
    b"a\r\n.\nMAIL FROM:<evil@example.org>\r\n",
    b"a\n.\r\nMAIL FROM:<evil@example.org>\r\n",
    b"a\r.\r\nMAIL FROM:<evil@example.org>\r\n",
    b"a\r\n.\rMAIL FROM:<evil@example.org>\r\n",
    b"a\r\n\x00.\r\nMAIL FROM:<evil@example.org>\r\n",
]


@pytest.mark.parametrize("smuggled", SMUGGLING)
def test_smuggled_end_of_data_is_content(smuggled: bytes) -> None:
    session = in_transaction()
    events = session.feed(b"DATA\r\n" + smuggled + b"\r\n.\r\n")
    assert [type(e) for e in events] == [ev.DataRequested, ev.DataChunk, ev.DataComplete]
    assert b"MAIL FROM:<evil@example.org>" in events[1].data  # type: ignore[union-attr]


@pytest.mark.parametrize("smuggled", SMUGGLING)
def test_smuggled_end_of_data_split_anywhere_is_content(smuggled: bytes) -> None:
    wire = b"DATA\r\n" + smuggled + b"\r\n.\r\n"
    whole = in_transaction().feed(wire)
    for i in range(len(wire) + 1):
        assert in_transaction().feed(wire[:i], wire[i:]) == whole


def test_message_over_the_limit_is_discarded_with_bounded_buffers() -> None:
    session = in_transaction(max_message_size=1000)
    conn = session.conn
    session.feed(b"DATA\r\n")
    emitted = 0
    line = b"x" * 998 + b"\r\n"
    for _ in range(2000):  # 2 MB in 16 KB reads
        conn.receive_data(line * 16)
        while (event := conn.next_event()) is not ev.NEED_DATA:
            assert isinstance(event, ev.DataChunk)
            emitted += len(event.data)
        assert not conn.has_pending_input  # nothing piles up inside
    assert emitted <= 1000
    events = session.feed(b"\r\n.\r\nNOOP\r\n")
    assert events == [ev.DataComplete(2000 * 16 * 1000 + 2, True), ev.Noop()]
    assert session.replies[-2] == r.MESSAGE_TOO_BIG


def test_message_exactly_at_the_limit_is_fine() -> None:
    session = in_transaction(max_message_size=10)
    events = session.feed(b"DATA\r\n12345678\r\n.\r\n")
    assert events[-1] == ev.DataComplete(10, False)
    events = session.feed(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n123456789\r\n.\r\n")
    assert events[-1] == ev.DataComplete(11, True)
    assert not any(isinstance(e, ev.DataChunk) for e in events)


def test_lmtp_replies_per_recipient_after_data() -> None:
    session = Session(lmtp=True)
    session.feed(
        b"LHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nRCPT TO:<c@x.org>\r\nDATA\r\n"
    )
    conn = session.conn
    conn.receive_data(b"hi\r\n.\r\nMAIL FROM:<a@x.org>\r\n")
    assert conn.next_event() == ev.DataChunk(b"hi\r\n")
    assert conn.next_event() == ev.DataComplete(4, False)
    conn.send(r.Reply(250, "2.1.5", "<b@x.org> delivered"))
    conn.send(r.Reply(452, "4.2.2", "<c@x.org> mailbox full"))  # the second reply, no command
    assert conn.next_event() == ev.MailFrom("a@x.org", ev.MailParams())


# --- BDAT (RFC 3030) --------------------------------------------------------------------------


def test_bdat_chunks_are_raw_bytes() -> None:
    session = in_transaction()
    events = session.feed(b"BDAT 9\r\nab\r\n.\r\ncdBDAT 3 LAST\r\n..xNOOP\r\n")
    assert events == [
        ev.DataChunk(b"ab\r\n.\r\ncd"),  # CRLF.CRLF inside BDAT is content
        ev.BdatComplete(9, False, False),
        ev.DataChunk(b"..x"),  # and there is no dot-stuffing
        ev.BdatComplete(3, True, False),
        ev.Noop(),
    ]
    assert session.conn.state is State.GREETED


def test_bdat_split_across_reads() -> None:
    session = in_transaction()
    events = session.feed(b"BDAT 10 last\r\n01", b"234", b"", b"56789RSET\r\n")
    assert events == [ev.DataChunk(b"0123456789"), ev.BdatComplete(10, True, False), ev.Rset()]
    assert session.conn.state is State.GREETED


def test_in_data_during_bdat_chunk() -> None:
    session = in_transaction()
    session.feed(b"BDAT 10\r\n01")
    assert session.conn.in_data
    session.feed(b"23456789")
    assert not session.conn.in_data


def test_bdat_zero_last() -> None:
    session = in_transaction()
    assert session.feed(b"BDAT 0 LAST\r\n") == [ev.BdatComplete(0, True, False)]


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        (b"", (503, "5.5.1")),
        (b"EHLO x\r\n", (503, "5.5.1")),
        (b"EHLO x\r\nMAIL FROM:<a@x.org>\r\n", (554, "5.5.1")),
    ],
)
def test_refused_bdat_still_consumes_its_bytes(setup: bytes, code: tuple[int, str]) -> None:
    session = Session()
    session.feed(setup)
    events = session.feed(b"BDAT 12 LAST\r\nQUIT\r\nQUIT\r\nNOOP\r\n")
    assert codes(events) == [code]
    assert events[1:] == [ev.Noop()]  # the QUITs were chunk content, never commands


def test_refused_bdat_error_comes_after_the_bytes() -> None:
    session = Session()
    assert session.feed(b"BDAT 4\r\nQU") == []
    assert codes(session.feed(b"IT")) == [(503, "5.5.1")]


@pytest.mark.parametrize("args", [b"BDAT\r\n", b"BDAT x\r\n", b"BDAT -1\r\n", b"BDAT 5 NOW\r\n"])
def test_bdat_without_a_size_is_fatal(args: bytes) -> None:
    session = in_transaction()
    events = session.feed(args + b"NOOP\r\n")
    assert len(events) == 1 and isinstance(events[0], ev.CommandError) and events[0].fatal
    assert session.conn.state is State.CLOSED


def test_data_after_bdat_is_refused() -> None:
    session = in_transaction()
    events = session.feed(b"BDAT 2\r\nabDATA\r\nRCPT TO:<c@x.org>\r\n")
    assert codes(events) == [(503, "5.5.1"), (503, "5.5.1")]


def test_bdat_size_limit_spans_the_chunks() -> None:
    session = in_transaction(max_message_size=10)
    events = session.feed(b"BDAT 6\r\n123456BDAT 6\r\n789012BDAT 1 LAST\r\nxNOOP\r\n")
    assert events == [
        ev.DataChunk(b"123456"),
        ev.BdatComplete(6, False, False),
        ev.BdatComplete(6, False, True),  # discarded; the client hears 552 ...
        ev.BdatComplete(1, True, True),  # ... and again for what it pipelined after
        ev.Noop(),
    ]
    assert session.conn.state is State.GREETED


def test_failed_bdat_chunk_ends_the_transaction() -> None:
    def replier(event: ev.Event) -> Reply:
        if isinstance(event, ev.BdatComplete):
            return Reply(451, "4.3.0", "Try later")
        return default_reply(event)

    session = in_transaction(replier=replier)
    events = session.feed(b"BDAT 2\r\nabBDAT 2 LAST\r\ncdNOOP\r\n")
    assert events[:2] == [ev.DataChunk(b"ab"), ev.BdatComplete(2, False, False)]
    assert codes(events) == [(503, "5.5.1")]  # the pipelined chunk is consumed and refused
    assert events[-1] == ev.Noop()


def test_bdat_over_the_limit_in_one_chunk_reads_but_never_emits() -> None:
    session = in_transaction(max_message_size=10)
    events = session.feed(b"BDAT 100000 LAST\r\n", b"x" * 50000, b"y" * 50000, b"NOOP\r\n")
    assert events == [ev.BdatComplete(100000, True, True), ev.Noop()]


# --- STARTTLS (RFC 3207) ----------------------------------------------------------------------


def test_starttls_discards_pipelined_plaintext() -> None:
    session = greeted()
    conn = session.conn
    events = session.feed(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<x@y.org>\r\n")
    assert events == [ev.StartTlsRequested()]
    assert conn.state is State.TLS_PENDING
    assert not conn.has_pending_input
    assert session.feed(b"DATA\r\n") == []  # still plaintext: dropped
    conn.tls_started()
    assert conn.tls
    events = session.feed(b"MAIL FROM:<a@x.org>\r\nEHLO x\r\nSTARTTLS\r\n")
    assert codes(events) == [(503, "5.5.1"), (503, "5.5.1")]  # EHLO first; TLS already active
    assert events[1] == ev.Ehlo("x", True)


def test_starttls_junk_split_across_reads_never_becomes_an_event() -> None:
    wire = b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nNOOP\r\n"
    for i in range(len(wire) + 1):
        session = greeted()
        events = session.feed(wire[:i], wire[i:])
        assert events == [ev.StartTlsRequested()]
        session.conn.tls_started()
        assert session.feed(b"NOOP\r\n") == [ev.Noop()]


def test_refused_starttls_keeps_reading_commands() -> None:
    session = greeted(
        replier=lambda e: (
            Reply(502, "5.5.1", "No TLS")
            if isinstance(e, ev.StartTlsRequested)
            else default_reply(e)
        )
    )
    assert session.feed(b"STARTTLS\r\nNOOP\r\n") == [ev.StartTlsRequested(), ev.Noop()]
    with pytest.raises(LocalProtocolError):
        session.conn.tls_started()


def test_tls_resets_authentication() -> None:
    session = greeted(
        replier=lambda e: r.AUTH_OK if isinstance(e, ev.AuthRequested) else default_reply(e)
    )
    session.feed(b"AUTH PLAIN AGEAYg==\r\nSTARTTLS\r\n")
    session.conn.tls_started()
    events = session.feed(b"EHLO x\r\nAUTH PLAIN AGEAYg==\r\n")
    assert events[1] == ev.AuthRequested("PLAIN", b"AGEAYg==")


# --- AUTH (RFC 4954) ------------------------------------------------------------------------

AUTH_LINES = [
    (b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", ev.AuthRequested("PLAIN", b"AGFsaWNlAHNlY3JldA==")),
    (b"AUTH plain =\r\n", ev.AuthRequested("PLAIN", b"=")),  # "=": an empty response, raw
    (b"AUTH LOGIN\r\n", ev.AuthRequested("LOGIN", None)),
    (b"AUTH\r\n", (501, "5.5.4")),
    (b"AUTH PLAIN a b\r\n", (501, "5.5.4")),
    (b"AUTH PL@IN\r\n", (501, "5.5.4")),
]


@pytest.mark.parametrize(("line", "expected"), AUTH_LINES)
def test_auth_command_table(line: bytes, expected: ev.Event | tuple[int, str]) -> None:
    (event,) = greeted().feed(line)
    if isinstance(expected, tuple):
        assert codes([event]) == [expected]
    else:
        assert event == expected


def test_auth_continuation_lines_are_raw_responses() -> None:
    replies = iter([AUTH_CONTINUE, AUTH_CONTINUE, r.AUTH_OK])
    session = greeted(
        replier=lambda e: (
            next(replies) if isinstance(e, ev.AuthRequested | ev.AuthResponse) else default_reply(e)
        )
    )
    events = session.feed(b"AUTH LOGIN\r\ndXNlcg==\r\nQUIT\r\nAUTH PLAIN\r\n")
    assert events == [
        ev.AuthRequested("LOGIN", None),
        ev.AuthResponse(b"dXNlcg=="),
        ev.AuthResponse(b"QUIT"),  # a response line, whatever it looks like
        error(Reply(503, "5.5.1", "Already authenticated")),
    ]


def test_auth_cancel_and_failure_end_the_exchange() -> None:
    def replier(event: ev.Event) -> Reply:
        if isinstance(event, ev.AuthResponse) and event.data == b"*":
            return Reply(501, "5.0.0", "Authentication cancelled")
        return default_reply(event)

    session = greeted(replier=replier)
    events = session.feed(b"AUTH LOGIN\r\n*\r\nNOOP\r\n")
    assert events == [ev.AuthRequested("LOGIN", None), ev.AuthResponse(b"*"), ev.Noop()]
    events = session.feed(b"AUTH LOGIN\r\n*\n")
    assert events[-1] == ev.AuthResponse(b"*")  # bare LF stripped too


def test_failed_auth_allows_another_attempt() -> None:
    session = greeted(
        replier=lambda e: r.AUTH_FAILED if isinstance(e, ev.AuthRequested) else default_reply(e)
    )
    events = session.feed(b"AUTH PLAIN AAAA\r\nAUTH PLAIN AAAA\r\n")
    assert events == [ev.AuthRequested("PLAIN", b"AAAA")] * 2


def test_overlong_auth_response_ends_the_exchange() -> None:
    session = greeted()
    session.feed(b"AUTH LOGIN\r\n")
    events = session.feed(b"A" * 600 + b"\r\nNOOP\r\n")
    assert events == [error(r.LINE_TOO_LONG), ev.Noop()]


# --- limits and hostile input -------------------------------------------------------------------


def test_line_too_long_is_reported_and_the_rest_skipped() -> None:
    session = greeted()
    events = session.feed(b"NOOP " + b"x" * 700, b"y" * 5000, b"z\r\nNOOP\r\n")
    assert events == [error(r.LINE_TOO_LONG), ev.Noop()]


def test_complete_overlong_line_in_one_read() -> None:
    session = greeted()
    assert session.feed(b"HELP " + b"x" * 600 + b"\r\nNOOP\r\n") == [
        error(r.LINE_TOO_LONG),
        ev.Noop(),
    ]


@pytest.mark.parametrize(
    "line", [b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.0\r\n", b"CONNECT a:25 HTTP/1.1\r\n"]
)
def test_http_requests_close_the_connection(line: bytes) -> None:
    session = Session()
    events = session.feed(line + b"Host: x\r\nNOOP\r\n")
    assert len(events) == 1 and isinstance(events[0], ev.CommandError) and events[0].fatal
    assert session.conn.state is State.CLOSED


def test_quit_closes() -> None:
    session = greeted()
    assert session.feed(b"QUIT\r\nNOOP\r\n") == [ev.Quit()]
    assert session.feed(b"NOOP\r\n") == []


def test_421_closes() -> None:
    session = greeted()
    session.conn.send(r.TOO_MANY_ERRORS)
    assert session.feed(b"NOOP\r\n") == []


def test_eof_ignores_an_unterminated_command() -> None:
    session = greeted()
    assert session.feed(b"NOOP\r\nQUIT") == [ev.Noop()]
    assert session.eof() == []
    with pytest.raises(LocalProtocolError):
        session.conn.receive_data(b"more")


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        SmtpServerConnection(max_message_size=10, max_line=100)
    with pytest.raises(ValueError):
        SmtpServerConnection(max_message_size=-1)


# --- anything at all -----------------------------------------------------------------------------

FRAGMENTS = [
    b"EHLO x\r\n", b"HELO x\r\n", b"LHLO x\r\n", b"MAIL FROM:<a@b.org>\r\n", b"MAIL FROM:<>",
    b"RCPT TO:<c@d.org>\r\n", b"RCPT TO:<Postmaster>", b"DATA\r\n", b"BDAT 3\r\n", b"BDAT 0 LAST\r\n",
    b"BDAT 5 LAST", b"STARTTLS\r\n", b"AUTH PLAIN", b"AUTH LOGIN\r\n", b" =\r\n", b"RSET\r\n",
    b"NOOP\r\n", b"QUIT\r\n", b"VRFY x\r\n", b"HELP\r\n", b"\r\n.\r\n", b".\r\n", b"\r\n", b"\n",
    b"\r", b".", b"\x00", b"\xff", b"*\r\n", b" SIZE=10", b" BODY=BINARYMIME", b" SMTPUTF8",
    b"x" * 300, b"GET / ",
]  # fmt: skip


def random_replier(data: st.DataObject) -> Replier:
    choices = [r.OK, REJECT, r.START_DATA, AUTH_CONTINUE, r.AUTH_OK, r.READY_FOR_TLS,
               r.MESSAGE_TOO_BIG, r.CLOSING, r.SHUTDOWN, r.SYNTAX_ERROR]  # fmt: skip

    def replier(event: ev.Event) -> Reply:
        if data.draw(st.booleans()):
            return default_reply(event)
        return data.draw(st.sampled_from(choices))

    return replier


@settings(max_examples=300, deadline=None)
@given(
    wire=st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=20), max_size=30).map(b"".join),
    cuts=st.lists(st.integers(0, 2000), max_size=6),
    lmtp=st.booleans(),
    data=st.data(),
)
def test_random_bytes_in_random_splits_never_raise(
    wire: bytes, cuts: list[int], lmtp: bool, data: st.DataObject
) -> None:
    session = Session(random_replier(data), max_message_size=50, lmtp=lmtp)
    points = sorted({c for c in cuts if c <= len(wire)})
    pieces = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    for piece in pieces:
        session.feed(piece)
        if session.conn.state is State.TLS_PENDING:
            session.conn.tls_started()
    session.eof()


@settings(max_examples=200, deadline=None)
@given(
    wire=st.lists(st.sampled_from(FRAGMENTS), max_size=25).map(b"".join),
    index=st.integers(0, 5000),
)
def test_event_stream_does_not_depend_on_the_split(wire: bytes, index: int) -> None:
    index = min(index, len(wire))
    whole = Session(max_message_size=50).feed(wire)
    split = Session(max_message_size=50).feed(wire[:index], wire[index:])
    assert split == whole
