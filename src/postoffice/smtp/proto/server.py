"""The server side of an SMTP or LMTP connection, sans-IO (RFC 5321, RFC 2033).

Bytes in, events out; replies in, bytes out::

    conn = SmtpServerConnection(max_message_size=25 * 2**20)
    sock.sendall(conn.greeting("mx.example.org"))
    while True:
        conn.receive_data(sock.recv(65536))          # b"" at EOF
        while (event := conn.next_event()) is not NEED_DATA:
            if isinstance(event, Ehlo):
                sock.sendall(conn.send(conn.ehlo_reply("mx.example.org", ["PIPELINING"])))
            ...

Implementation notes (invariants):

- Every event except :class:`DataChunk` is a command awaiting exactly one reply, and the next
  event comes only after :meth:`SmtpServerConnection.send` answered it (LMTP's extra
  per-recipient replies after the end of data are sent afterwards and change nothing). The
  reply moves the state machine (``state.py``); a refused command changes nothing.
- Sequence errors, syntax errors, unknown commands and over-long lines come out as
  :class:`CommandError` carrying the reply; the driver only sends it and counts errors.
- Commands are read a line at a time from :class:`LineBuffer`, CRLF or bare LF terminated
  (Postfix accepts a bare LF in commands). A bare CR or a NUL inside a command line is an
  error, never a line end.
- Message content after 354 goes through :class:`DataScanner`: it ends only at CRLF.CRLF
  (SMTP smuggling), is streamed as DataChunks and never buffered whole; past
  ``max_message_size`` it is counted and discarded, and DataComplete says too_large.
- BDAT (RFC 3030) reads exactly the announced octets, without dot handling, whether or not the
  command is acceptable: a refused BDAT reports its CommandError after its bytes, so chunk
  content is never read as commands. A BDAT whose size cannot be parsed is fatal, for the same
  reason. The size limit applies to the sum of a transaction's chunks.
- After 220 to STARTTLS everything buffered is dropped (CVE-2011-0411, command injection into
  the TLS session) and nothing is read until :meth:`SmtpServerConnection.tls_started`; then
  the session starts over (RFC 3207 §4.2): EHLO again, no authentication, no transaction.
- Between AUTH's 334 and its final reply, each line is an AuthResponse whatever it says
  (RFC 4954 §4); an over-long one ends the exchange with 500.
- After 221, a 421 or a fatal CommandError nothing more is read.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable

from postoffice.proto.linebuffer import LineBuffer, LineTooLong
from postoffice.smtp.proto import events as ev
from postoffice.smtp.proto import state as st
from postoffice.smtp.proto.dotstuff import DataScanner
from postoffice.smtp.proto.grammar import ParseError, parse_mail_from, parse_rcpt_to
from postoffice.smtp.proto.replies import (
    LINE_TOO_LONG,
    MESSAGE_TOO_BIG,
    UNKNOWN_COMMAND,
    Reply,
)
from postoffice.smtp.proto.state import State

__all__ = ["LocalProtocolError", "SmtpServerConnection"]


class LocalProtocolError(Exception):
    """The driver used the connection wrongly (our bug, not the client's)."""


def _syntax(usage: str) -> Reply:
    return Reply(501, "5.5.4", f"Syntax: {usage}")


BAD_CHARACTERS = Reply(500, "5.5.2", "Bare CR, NUL or invalid UTF-8 in command")
NOT_SMTP = Reply(500, "5.5.2", "This is an SMTP server; closing connection")
TLS_ACTIVE = Reply(503, "5.5.1", "TLS already active")
ALREADY_AUTHENTICATED = Reply(503, "5.5.1", "Already authenticated")
BINARYMIME_NEEDS_BDAT = Reply(503, "5.5.1", "BODY=BINARYMIME requires BDAT")
BDAT_SYNTAX = _syntax("BDAT <size> [LAST]; closing connection")

# Verbs of other protocols: a browser or proxy talking to us (cross-protocol attacks). Postfix
# drops these connections at once too.
_FOREIGN_VERBS = frozenset({b"GET", b"POST", b"PUT", b"HEAD", b"CONNECT", b"OPTIONS"})
_BDAT_ARGS = re.compile(r"([0-9]{1,18})(?: +(LAST))? *", re.IGNORECASE)
_MECHANISM = re.compile(r"[A-Za-z0-9_-]{1,20}")


class _Mode(enum.Enum):
    COMMAND = "command"  # command lines
    AUTH = "auth"  # the next line answers a 334 challenge
    DATA = "data"  # content after 354, until CRLF.CRLF
    BDAT = "bdat"  # the announced octets of a BDAT chunk


class SmtpServerConnection:
    """One SMTP (or LMTP) server connection's protocol state; no I/O."""

    def __init__(
        self,
        *,
        max_line: int = 4096,
        max_message_size: int,
        lmtp: bool = False,
        tls: bool = False,
    ) -> None:
        if max_line < 512:  # RFC 5321 §4.5.3.1.4: command lines up to 512 octets
            raise ValueError(f"max_line must be at least 512, not {max_line}")
        if max_message_size < 0:
            raise ValueError(f"max_message_size must not be negative: {max_message_size}")
        self.max_message_size = max_message_size
        self.lmtp = lmtp
        self._buffer = LineBuffer(max_line)
        self._state = State.CONNECTED
        self._mode = _Mode.COMMAND
        self._tls = tls
        self._authenticated = False
        self._eof = False
        self._pending: ev.Event | None = None  # the command awaiting its reply
        self._queued: ev.Event | None = None  # an event to emit before reading more
        # The transaction (reset by _reset_transaction).
        self._smtputf8 = False
        self._binarymime = False
        self._size = 0  # content octets so far: this DATA, or all BDAT chunks
        self._too_large = False
        # DATA and BDAT reading.
        self._scanner: DataScanner | None = None
        self._bdat_remaining = 0
        self._bdat_discard = False
        self._bdat_after: ev.Event | None = None

    # --- public API ----------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def tls(self) -> bool:
        return self._tls

    @property
    def in_data(self) -> bool:
        """Reading message content: after 354 to DATA, or the octets of a BDAT chunk."""
        return self._mode is _Mode.DATA or self._mode is _Mode.BDAT

    @property
    def open_line(self) -> int | None:
        """Which command or AUTH line is partly received (stays the same until it is complete),
        None between lines and in message data: for the driver's line deadline."""
        if self._mode is _Mode.DATA or self._mode is _Mode.BDAT:
            return None
        return self._buffer.open_line

    @property
    def has_pending_input(self) -> bool:
        """Received bytes not yet turned into events (pipelined commands, RFC 2920)."""
        return len(self._buffer) > 0 or self._queued is not None

    def greeting(self, hostname: str) -> bytes:
        """The 220 banner (RFC 5321 §4.2; no enhanced code, RFC 2034 §3)."""
        kind = "LMTP" if self.lmtp else "ESMTP"
        return Reply(220, None, f"{hostname} {kind} postoffice").to_bytes()

    def ehlo_reply(self, hostname: str, extensions: list[str]) -> Reply:
        """250 with the hostname on the first line and one extension per line (§4.1.1.1)."""
        return Reply(250, None, (hostname, *extensions))

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; ``b""`` means the client closed its side."""
        if self._eof:
            raise LocalProtocolError("receive_data() after EOF")
        if not data:
            self._eof = True
        elif self._state is not State.TLS_PENDING and self._state is not State.CLOSED:
            self._buffer.feed(data)

    def next_event(self) -> ev.Event | ev.NeedData:
        """The next event, or NEED_DATA when the buffered bytes hold none."""
        if self._pending is not None:
            raise LocalProtocolError(f"send() a reply to {self._pending!r} first")
        queued = self._queued
        if queued is not None:
            self._queued = None
            return self._emit(queued)
        if self._state is State.TLS_PENDING or self._state is State.CLOSED:
            return ev.NEED_DATA
        if self._mode is _Mode.DATA:
            return self._next_data_event()
        if self._mode is _Mode.BDAT:
            return self._next_bdat_event()
        try:
            line = self._buffer.next_line()
        except LineTooLong:
            self._buffer.skip_line()
            if self._mode is _Mode.AUTH:
                self._mode = _Mode.COMMAND
            return self._emit(ev.CommandError(LINE_TOO_LONG))
        if line is None:
            return ev.NEED_DATA
        body = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if self._mode is _Mode.AUTH:
            return self._emit(ev.AuthResponse(body))
        event = self._command(body)
        if event is None:  # BDAT: its chunk follows
            return self._next_bdat_event()
        return self._emit(event)

    def send(self, reply: Reply) -> bytes:
        """The reply's bytes; the reply also answers the pending command and moves the state."""
        event, self._pending = self._pending, None
        if event is None:
            if reply.code == 421:  # RFC 5321 §3.8
                self._enter(State.CLOSED, self._state)
            return reply.to_bytes()
        old = self._state
        new = st.state_after_reply(old, event, reply)
        if new is not old:
            self._enter(new, old)
        if isinstance(event, ev.MailFrom) and reply.is_positive:
            self._smtputf8 = event.params.smtputf8
            self._binarymime = event.params.body == "BINARYMIME"
        elif isinstance(event, ev.DataRequested) and reply.code == 354:
            self._mode = _Mode.DATA
            self._scanner = DataScanner()
            self._size = 0
            self._too_large = False
        elif isinstance(event, ev.AuthRequested | ev.AuthResponse):
            if reply.code == 334:
                self._mode = _Mode.AUTH
            else:
                self._mode = _Mode.COMMAND
                self._authenticated = self._authenticated or reply.is_positive
        return reply.to_bytes()

    def tls_started(self) -> None:
        """The TLS handshake after 220 to STARTTLS succeeded: start over (RFC 3207 §4.2)."""
        if self._state is not State.TLS_PENDING:
            raise LocalProtocolError(f"tls_started() in state {self._state.value}")
        self._buffer.clear()  # nothing should be there; never let plaintext into the session
        self._tls = True
        self._authenticated = False
        self._state = State.CONNECTED
        self._mode = _Mode.COMMAND

    # --- state changes -----------------------------------------------------------------------

    def _emit(self, event: ev.Event) -> ev.Event:
        if not isinstance(event, ev.DataChunk):
            self._pending = event
        return event

    def _enter(self, new: State, old: State) -> None:
        self._state = new
        if new is State.TLS_PENDING:
            self._buffer.clear()  # CVE-2011-0411
            self._queued = None
        elif new is State.CLOSED:
            self._buffer.clear()
        if old in st.IN_TRANSACTION and new not in st.IN_TRANSACTION:
            self._reset_transaction()

    def _reset_transaction(self) -> None:
        self._smtputf8 = False
        self._binarymime = False
        self._size = 0
        self._too_large = False

    # --- message content -------------------------------------------------------------------

    def _next_data_event(self) -> ev.Event | ev.NeedData:
        scanner = self._scanner
        assert scanner is not None
        if not len(self._buffer):
            return ev.NEED_DATA
        content, rest = scanner.feed(self._buffer.take_all())
        chunk = self._count(content)
        if rest is None:
            return chunk if chunk is not None else ev.NEED_DATA
        # The buffer is empty after take_all(), so feeding the rest back keeps the order.
        self._buffer.feed(rest)
        self._mode = _Mode.COMMAND
        self._scanner = None
        done = ev.DataComplete(self._size, self._too_large)
        if chunk is None:
            return self._emit(done)
        self._queued = done
        return chunk

    def _count(self, content: bytes) -> ev.DataChunk | None:
        """Count message octets; a DataChunk unless empty or the message is too large."""
        if not content:
            return None
        self._size += len(content)
        if self._size > self.max_message_size:
            self._too_large = True
        if self._too_large:
            return None
        return ev.DataChunk(content)

    def _next_bdat_event(self) -> ev.Event | ev.NeedData:
        if self._bdat_remaining:
            chunk = self._buffer.take(self._bdat_remaining)
            if not chunk:
                return ev.NEED_DATA
            self._bdat_remaining -= len(chunk)
            if not self._bdat_discard:
                return ev.DataChunk(chunk)
            if self._bdat_remaining:
                return ev.NEED_DATA
        self._mode = _Mode.COMMAND
        after, self._bdat_after = self._bdat_after, None
        assert after is not None
        return self._emit(after)

    # --- commands ----------------------------------------------------------------------------

    def _command(self, body: bytes) -> ev.Event | None:
        if b"\r" in body or b"\x00" in body:
            return ev.CommandError(BAD_CHARACTERS)
        verb, _, raw_args = body.rstrip(b" \t").partition(b" ")
        verb = verb.upper()
        handler = _COMMANDS.get(verb)
        if handler is None:
            if verb in _FOREIGN_VERBS:
                return ev.CommandError(NOT_SMTP, fatal=True)
            return ev.CommandError(UNKNOWN_COMMAND)
        try:
            args = raw_args.decode("utf-8").strip(" \t")
        except UnicodeDecodeError:
            return ev.CommandError(BAD_CHARACTERS)
        return handler(self, verb.decode("ascii"), args)

    def _refused(self, verb: str) -> ev.CommandError | None:
        reply = st.refusal(verb, self._state)
        if reply is None:
            return None
        if self.lmtp and reply is st.NEED_HELO:
            reply = st.NEED_LHLO
        return ev.CommandError(reply)

    def _hello(self, verb: str, args: str) -> ev.Event:
        # RFC 2033 §4.1: LMTP has LHLO and neither HELO nor EHLO.
        if (verb == "LHLO") != self.lmtp:
            return ev.CommandError(UNKNOWN_COMMAND)
        if not args:
            return ev.CommandError(_syntax(f"{verb} <hostname>"))
        return ev.Ehlo(args, extended=verb != "HELO")

    def _mail(self, verb: str, args: str) -> ev.Event:
        refused = self._refused(verb)
        if refused is not None:
            return refused
        try:
            address, params = parse_mail_from(args, requiretls_allowed=self._tls)
        except ParseError as exc:
            return ev.CommandError(exc.reply)
        if params.size is not None and params.size > self.max_message_size:
            return ev.CommandError(MESSAGE_TOO_BIG)  # RFC 1870 §6.1
        return ev.MailFrom(address, params)

    def _rcpt(self, verb: str, args: str) -> ev.Event:
        refused = self._refused(verb)
        if refused is not None:
            return refused
        try:
            address, params, route = parse_rcpt_to(args, smtputf8=self._smtputf8)
        except ParseError as exc:
            return ev.CommandError(exc.reply)
        return ev.RcptTo(address, params, route)

    def _data(self, verb: str, args: str) -> ev.Event:
        if args:
            return ev.CommandError(_syntax("DATA"))
        refused = self._refused(verb)
        if refused is not None:
            return refused
        if self._binarymime:  # RFC 3030 §3
            return ev.CommandError(BINARYMIME_NEEDS_BDAT)
        return ev.DataRequested()

    def _bdat(self, verb: str, args: str) -> ev.Event | None:
        match = _BDAT_ARGS.fullmatch(args)
        if match is None:
            return ev.CommandError(BDAT_SYNTAX, fatal=True)
        size, last = int(match[1]), match[2] is not None
        refused = self._refused(verb)
        after: ev.Event
        if refused is not None:
            after, discard = refused, True
        else:
            self._size += size
            self._too_large = self._too_large or self._size > self.max_message_size
            after = ev.BdatComplete(size, last, self._too_large)
            discard = self._too_large
        self._mode = _Mode.BDAT
        self._bdat_remaining = size
        self._bdat_discard = discard
        self._bdat_after = after
        return None

    def _starttls(self, verb: str, args: str) -> ev.Event:
        if args:
            return ev.CommandError(_syntax("STARTTLS"))
        if self._tls:
            return ev.CommandError(TLS_ACTIVE)
        return self._refused(verb) or ev.StartTlsRequested()

    def _auth(self, verb: str, args: str) -> ev.Event:
        refused = self._refused(verb)
        if refused is not None:
            return refused
        if self._authenticated:
            return ev.CommandError(ALREADY_AUTHENTICATED)  # RFC 4954 §4
        words = args.split(" ")
        if len(words) > 2 or not _MECHANISM.fullmatch(words[0]):
            return ev.CommandError(_syntax("AUTH <mechanism> [initial-response]"))
        initial = words[1].encode() if len(words) == 2 else None
        return ev.AuthRequested(words[0].upper(), initial)

    def _no_args(self, verb: str, args: str) -> ev.Event:
        if args:
            return ev.CommandError(_syntax(verb))
        return ev.Rset() if verb == "RSET" else ev.Quit()

    def _noop(self, verb: str, args: str) -> ev.Event:
        return ev.Noop()  # RFC 5321 §4.1.1.9: an argument is allowed and ignored

    def _vrfy(self, verb: str, args: str) -> ev.Event:
        if not args:
            return ev.CommandError(_syntax(f"{verb} <string>"))
        return ev.Vrfy(args) if verb == "VRFY" else ev.Expn(args)

    def _help(self, verb: str, args: str) -> ev.Event:
        return ev.Help(args)


# (connection, verb, arguments) -> the event; None when a BDAT chunk is to be read first.
_Handler = Callable[[SmtpServerConnection, str, str], "ev.Event | None"]
_COMMANDS: dict[bytes, _Handler] = {
    b"EHLO": SmtpServerConnection._hello,
    b"HELO": SmtpServerConnection._hello,
    b"LHLO": SmtpServerConnection._hello,
    b"MAIL": SmtpServerConnection._mail,
    b"RCPT": SmtpServerConnection._rcpt,
    b"DATA": SmtpServerConnection._data,
    b"BDAT": SmtpServerConnection._bdat,
    b"STARTTLS": SmtpServerConnection._starttls,
    b"AUTH": SmtpServerConnection._auth,
    b"RSET": SmtpServerConnection._no_args,
    b"QUIT": SmtpServerConnection._no_args,
    b"NOOP": SmtpServerConnection._noop,
    b"VRFY": SmtpServerConnection._vrfy,
    b"EXPN": SmtpServerConnection._vrfy,
    b"HELP": SmtpServerConnection._help,
}
