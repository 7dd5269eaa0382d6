"""The server side of a POP3 connection, sans-IO: bytes in, events out; replies are plain bytes.

RFC 1939 (POP3), RFC 2449 (CAPA, RESP-CODES, PIPELINING), RFC 2595 §4 (STLS), RFC 5034 (AUTH),
RFC 3206 (the SYS and AUTH response codes). Nothing here does I/O::

    conn = Pop3ServerConnection(stls=True)
    sock.sendall(greeting("postoffice ready"))
    while conn.state in (Pop3State.AUTHORIZATION, Pop3State.TRANSACTION):
        conn.receive_data(sock.recv(65536))          # b"" at EOF
        while (event := conn.next_event()) is not NEED_DATA:
            match event:
                case CommandError(reply=reply):
                    sock.sendall(reply)
                case Stat():
                    count, size = drop.stat()
                    sock.sendall(ok(f"{count} {size}"))
                ...

Implementation notes (invariants):

- The driver handles each event completely, feedback calls included (:meth:`auth_succeeded`,
  :meth:`begin_auth_exchange`, ...), before asking for the next one: pipelined commands
  (RFC 2449 §6.6) are parsed only when :meth:`next_event` reaches them, so a PASS that follows a
  refused USER, or a STAT that follows a successful PASS, is judged in the right state.
- The core decides every refusal by itself (unknown command, wrong state, bad argument, line too
  long, PASS without USER) and hands over the ``-ERR`` line as :class:`CommandError`. A command
  in the wrong state gets the same reply whatever its arguments, which says nothing about them.
- Command lines end in CRLF or a bare LF; a bare CR or NUL inside one is refused. RFC 2449 §4
  limits them to 255 octets; ``max_line`` (512 by default) is accepted. AUTH lines and the lines
  of an AUTH exchange may be as long as a SASL response can be (``sasl.MAX_RESPONSE_LENGTH``),
  so the buffer holds that much, which bounds memory per connection.
- After STLS nothing more is read until :meth:`tls_started` or :meth:`tls_refused`, and every
  byte received after the STLS line is dropped: a client must wait for the reply (RFC 2595 §4),
  so such bytes are plaintext injected into the TLS session (CVE-2011-0411).
- Between :meth:`begin_auth_exchange` and the end of the exchange every line is an
  :class:`AuthResponse`, whatever it says (RFC 5034 §4). An over-long line ends the exchange.
- QUIT moves TRANSACTION to UPDATE (RFC 1939 §6: apply the deletions) and AUTHORIZATION to
  CLOSED; EOF without QUIT moves to CLOSED, and deletions are then not applied. In UPDATE and
  CLOSED nothing more is read.
- RETR and TOP content is encoded by :class:`postoffice.pop3.content.MessageEncoder`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from postoffice.auth.sasl import MAX_RESPONSE_LENGTH, encode_challenge
from postoffice.proto.linebuffer import LineBuffer, LineTooLong

__all__ = [
    "NEED_DATA",
    "RESP_CODES",
    "Apop",
    "Auth",
    "AuthResponse",
    "Capa",
    "CommandError",
    "Dele",
    "Event",
    "List",
    "LocalProtocolError",
    "NeedData",
    "Noop",
    "Pass",
    "Pop3ServerConnection",
    "Pop3State",
    "Quit",
    "Retr",
    "Rset",
    "Stat",
    "Stls",
    "Top",
    "Uidl",
    "User",
    "auth_challenge",
    "capabilities",
    "err",
    "greeting",
    "multiline",
    "ok",
]


class Pop3State(enum.Enum):
    """RFC 1939 §3: a session's states, plus CLOSED for a session that ends without UPDATE."""

    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    UPDATE = "update"  # QUIT after login: apply the deletions, reply, close
    CLOSED = "closed"  # QUIT before login, or EOF: close, delete nothing


class _Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Final = _Sentinel.NEED_DATA
"""Returned by ``next_event()`` when the buffered bytes hold no complete event. Test with ``is``."""

NeedData: TypeAlias = Literal[_Sentinel.NEED_DATA]


class LocalProtocolError(Exception):
    """The driver used the connection wrongly (our bug, not the client's)."""


# --- events --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    """USER name (RFC 1939 §7); a PASS may follow."""

    name: str


@dataclass(frozen=True, slots=True)
class Pass:
    """PASS string: everything after "PASS ", spaces included (RFC 1939 §7)."""

    password: str = field(repr=False)  # never in logs or tracebacks


@dataclass(frozen=True, slots=True)
class Apop:
    """APOP name digest (RFC 1939 §7); ``digest`` is 32 lower-case hex digits."""

    name: str
    digest: str


@dataclass(frozen=True, slots=True)
class Auth:
    """AUTH [mechanism [initial-response]] (RFC 5034 §4).

    ``mechanism`` is upper-cased; None for a bare AUTH, which lists the mechanisms (answer
    ``multiline(ok(), [b"PLAIN", b"LOGIN"])``). ``initial_response`` is the raw base64 text
    (``b"="`` means empty): decode it with ``sasl.decode_initial_response``.
    """

    mechanism: str | None
    initial_response: bytes | None = field(repr=False)  # may carry a password


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """A client line during an AUTH exchange, without its line end: base64 text or b"*"."""

    line: bytes = field(repr=False)  # may carry a password


@dataclass(frozen=True, slots=True)
class Stls:
    """STLS (RFC 2595 §4): answer +OK, run the TLS handshake, then call ``tls_started()``."""


@dataclass(frozen=True, slots=True)
class Capa:
    """CAPA (RFC 2449 §5): answer with ``multiline(ok(), capabilities(...))``."""


@dataclass(frozen=True, slots=True)
class Stat:
    pass


@dataclass(frozen=True, slots=True)
class List:
    """LIST [msg]; None lists every message not marked deleted."""

    msg: int | None


@dataclass(frozen=True, slots=True)
class Uidl:
    """UIDL [msg]; None lists every message not marked deleted."""

    msg: int | None


@dataclass(frozen=True, slots=True)
class Retr:
    msg: int


@dataclass(frozen=True, slots=True)
class Dele:
    msg: int


@dataclass(frozen=True, slots=True)
class Top:
    """TOP msg n: the header, the blank line, and the first ``lines`` lines of the body."""

    msg: int
    lines: int


@dataclass(frozen=True, slots=True)
class Noop:
    pass


@dataclass(frozen=True, slots=True)
class Rset:
    pass


@dataclass(frozen=True, slots=True)
class Quit:
    """QUIT; ``state`` already says what follows: UPDATE (apply deletions) or CLOSED."""


@dataclass(frozen=True, slots=True)
class CommandError:
    """A command the core refused by itself: send ``reply`` (a complete ``-ERR`` line)."""

    reply: bytes


Event: TypeAlias = (
    User
    | Pass
    | Apop
    | Auth
    | AuthResponse
    | Stls
    | Capa
    | Stat
    | List
    | Uidl
    | Retr
    | Dele
    | Top
    | Noop
    | Rset
    | Quit
    | CommandError
)


# --- replies -------------------------------------------------------------------------------------

# RFC 2449 §8.1 (IN-USE, LOGIN-DELAY) and RFC 3206 (SYS/TEMP, SYS/PERM, AUTH).
RESP_CODES: Final = frozenset({"IN-USE", "LOGIN-DELAY", "SYS/TEMP", "SYS/PERM", "AUTH"})


def ok(text: str = "", code: str | None = None) -> bytes:
    """``+OK [CODE] text`` and CRLF; empty parts are left out (``ok()`` is ``b"+OK\\r\\n"``)."""
    return _status("+OK", text, code)


def err(text: str = "", code: str | None = None) -> bytes:
    """``-ERR [CODE] text`` and CRLF, e.g. ``err("Mailbox locked", "IN-USE")``."""
    return _status("-ERR", text, code)


def _status(indicator: str, text: str, code: str | None) -> bytes:
    if code is not None and code not in RESP_CODES:
        raise ValueError(f"unknown POP3 response code {code!r}")
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError(f"CR, LF or NUL in a POP3 response: {text!r}")
    line = indicator
    if code is not None:
        line += f" [{code}]"
    if text:
        line += " " + text
    return line.encode("utf-8") + b"\r\n"


def multiline(first: bytes, lines: Iterable[bytes]) -> bytes:
    """A multi-line response (RFC 1939 §3): ``first`` (a status line from :func:`ok`), the lines
    dot-stuffed with CRLF each, then ``.`` CRLF."""
    if not first.endswith(b"\r\n"):
        raise ValueError(f"the first line of a multi-line response needs its CRLF: {first!r}")
    out = [first]
    for line in lines:
        if b"\r" in line or b"\n" in line:
            raise ValueError(f"CR or LF inside a line of a multi-line response: {line!r}")
        out.append(b"." + line + b"\r\n" if line.startswith(b".") else line + b"\r\n")
    out.append(b".\r\n")
    return b"".join(out)


def capabilities(
    *, stls: bool, user: bool, sasl: Sequence[str], implementation: str | None = "postoffice"
) -> list[bytes]:
    """The CAPA lines (RFC 2449 §6) for :func:`multiline`.

    ``stls``, ``user`` and ``sasl`` say what this connection offers right now: STLS only before
    TLS and login, USER and SASL only where a password may be sent (``sasl.mechanisms_offered``).
    """
    lines = [b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING", b"EXPIRE NEVER"]
    if user:
        lines.append(b"USER")
    if sasl:
        lines.append(("SASL " + " ".join(sasl)).encode("ascii"))
    if stls:
        lines.append(b"STLS")
    if implementation:
        lines.append(("IMPLEMENTATION " + implementation).encode("ascii"))
    return lines


def greeting(text: str) -> bytes:
    """The banner (RFC 1939 §4). No APOP timestamp: passwords are stored hashed, so no APOP."""
    return ok(text)


def auth_challenge(data: bytes) -> bytes:
    """A SASL challenge line: ``+`` SP base64 CRLF (RFC 5034 §4); ``b"+ \\r\\n"`` when empty."""
    return b"+ " + encode_challenge(data) + b"\r\n"


LINE_TOO_LONG: Final = err("Line too long")
EMPTY_COMMAND: Final = err("Empty command")
UNKNOWN_COMMAND: Final = err("Unknown command")
WRONG_STATE: Final = err("Command not valid in this state")
BAD_CHARACTERS: Final = err("Bare CR, NUL or invalid UTF-8 in command")
USER_FIRST: Final = err("USER first")
TLS_ACTIVE: Final = err("TLS already active")
INVALID_MESSAGE_NUMBER: Final = err("Invalid message number")
INVALID_LINE_COUNT: Final = err("Invalid number of lines")


def _syntax(usage: str) -> CommandError:
    return CommandError(err(f"Syntax: {usage}"))


# --- the connection ------------------------------------------------------------------------------

_A = Pop3State.AUTHORIZATION
_T = Pop3State.TRANSACTION
_READING: Final = frozenset({_A, _T})  # the states in which commands are read

# RFC 1939 §4-§6 and the extensions: where each command is valid. The rest is WRONG_STATE.
_VALID_IN: Final[dict[bytes, frozenset[Pop3State]]] = {
    b"USER": frozenset({_A}),
    b"PASS": frozenset({_A}),
    b"APOP": frozenset({_A}),
    b"AUTH": frozenset({_A}),
    b"STLS": frozenset({_A}),  # RFC 2595 §4
    b"CAPA": frozenset({_A, _T}),  # RFC 2449 §5
    b"QUIT": frozenset({_A, _T}),
    b"STAT": frozenset({_T}),
    b"LIST": frozenset({_T}),
    b"UIDL": frozenset({_T}),
    b"RETR": frozenset({_T}),
    b"DELE": frozenset({_T}),
    b"TOP": frozenset({_T}),
    b"NOOP": frozenset({_T}),
    b"RSET": frozenset({_T}),
}

# An AUTH line may carry a whole SASL response: "AUTH " mechanism SP response CRLF.
_AUTH_LINE_MAX: Final = len(b"AUTH ") + 20 + 1 + MAX_RESPONSE_LENGTH + 2
_MAX_NUMBER: Final = 2**31
_NUMBER = re.compile(r"[0-9]{1,10}")  # ASCII digits only: int() would take "+1", "1_0", "١"
_SEPARATOR = re.compile(rb"[ \t]")
_ARG_SPLIT = re.compile(r"[ \t]+")
_MECHANISM = re.compile(r"[A-Za-z0-9_-]{1,20}")  # RFC 4422 §3.1: 1 to 20 of these
_DIGEST = re.compile(r"[0-9a-fA-F]{32}")


class Pop3ServerConnection:
    """One POP3 server connection's protocol state; no I/O.

    ``tls``: the connection is already encrypted (POP3S, port 995). ``stls``: this server can
    do STLS (it has a certificate); it is accepted only before TLS and before login.
    """

    __slots__ = (
        "_buffer",
        "_eof",
        "_in_auth",
        "_max_line",
        "_state",
        "_stls_offered",
        "_tls",
        "_tls_pending",
        "_user_given",
    )

    def __init__(self, *, max_line: int = 512, tls: bool = False, stls: bool = False) -> None:
        if max_line < 255:  # RFC 2449 §4: command lines up to 255 octets
            raise ValueError(f"max_line must be at least 255, not {max_line}")
        self._max_line = max_line
        self._buffer = LineBuffer(max(max_line, _AUTH_LINE_MAX))
        self._state = Pop3State.AUTHORIZATION
        self._tls = tls
        self._stls_offered = stls
        self._tls_pending = False  # STLS emitted; waiting for tls_started() or tls_refused()
        self._user_given = False  # USER seen, PASS may follow
        self._in_auth = False  # every line is an AuthResponse
        self._eof = False

    # --- properties ----------------------------------------------------------------------

    @property
    def state(self) -> Pop3State:
        return self._state

    @property
    def tls(self) -> bool:
        return self._tls

    @property
    def stls_available(self) -> bool:
        """Whether STLS would be accepted now: what CAPA should say (RFC 2595 §4)."""
        return (
            self._stls_offered
            and not self._tls
            and not self._tls_pending
            and self._state is Pop3State.AUTHORIZATION
        )

    @property
    def in_auth_exchange(self) -> bool:
        """Between :meth:`begin_auth_exchange` and its end; a CommandError ends it too."""
        return self._in_auth

    @property
    def has_pending_input(self) -> bool:
        """Received bytes not yet turned into events (pipelined commands, RFC 2449 §6.6)."""
        return len(self._buffer) > 0

    @property
    def open_line(self) -> int | None:
        """Which line is partly received (stays the same until it is complete), None between
        lines: for the driver's line deadline (net/deadlines.py)."""
        return self._buffer.open_line

    # --- bytes in, events out ------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; ``b""`` means the client closed its side."""
        if self._eof:
            raise LocalProtocolError("receive_data() after EOF")
        if not data:
            self._eof = True
        elif not self._tls_pending and self._state in _READING:
            self._buffer.feed(data)

    def next_event(self) -> Event | NeedData:
        """The next event, or NEED_DATA when the buffered bytes hold none."""
        if self._state not in _READING:
            return NEED_DATA
        if self._tls_pending:
            if self._eof:
                self._close()
            return NEED_DATA
        try:
            line = self._buffer.next_line()
        except LineTooLong:
            self._buffer.skip_line()
            self._in_auth = False
            return CommandError(LINE_TOO_LONG)
        if line is None:
            if self._eof:  # a partial line at EOF is dropped with the session
                self._close()
            return NEED_DATA
        body = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if self._in_auth:
            return AuthResponse(body)
        if len(line) > self._max_line and body[:5].upper() not in (b"AUTH ", b"AUTH\t"):
            return CommandError(LINE_TOO_LONG)
        return self._command(body)

    # --- feedback from the driver --------------------------------------------------------

    def auth_succeeded(self) -> None:
        """PASS, APOP or AUTH succeeded: enter TRANSACTION (RFC 1939 §5)."""
        self._expect_authorization("auth_succeeded")
        self._state = Pop3State.TRANSACTION
        self._in_auth = False
        self._user_given = False

    def auth_failed(self) -> None:
        """USER, PASS, APOP or AUTH was refused: the client starts over (RFC 1939 §7)."""
        self._expect_authorization("auth_failed")
        self._in_auth = False
        self._user_given = False

    def begin_auth_exchange(self) -> None:
        """A ``+`` challenge was sent: the next line is the client's response (RFC 5034 §4)."""
        self._expect_authorization("begin_auth_exchange")
        self._in_auth = True

    def end_auth_exchange(self) -> None:
        """The exchange is over (``auth_succeeded`` and ``auth_failed`` end it as well)."""
        self._in_auth = False

    def tls_started(self) -> None:
        """The TLS handshake after +OK to STLS succeeded (RFC 2595 §4)."""
        if not self._tls_pending:
            raise LocalProtocolError("tls_started() without STLS")
        self._buffer.clear()  # nothing should be there; never let plaintext into the session
        self._tls_pending = False
        self._tls = True
        self._user_given = False

    def tls_refused(self) -> None:
        """The driver answered STLS with -ERR: go on reading commands in plaintext."""
        if not self._tls_pending:
            raise LocalProtocolError("tls_refused() without STLS")
        self._tls_pending = False

    def _expect_authorization(self, method: str) -> None:
        if self._state is not Pop3State.AUTHORIZATION or self._tls_pending:
            raise LocalProtocolError(f"{method}() in state {self._state.value}")

    def _close(self) -> None:
        self._state = Pop3State.CLOSED
        self._buffer.clear()
        self._in_auth = False
        self._tls_pending = False

    # --- commands ------------------------------------------------------------------------

    def _command(self, body: bytes) -> Event:
        if not body.strip(b" \t"):
            return CommandError(EMPTY_COMMAND)
        if b"\r" in body or b"\0" in body:
            return CommandError(BAD_CHARACTERS)
        separator = _SEPARATOR.search(body)
        if separator is None:
            verb, raw_rest = body, b""
        else:
            verb, raw_rest = body[: separator.start()], body[separator.end() :]
        verb = verb.upper()
        valid_in = _VALID_IN.get(verb)
        if valid_in is None:
            return CommandError(UNKNOWN_COMMAND)
        if self._state not in valid_in:
            return CommandError(WRONG_STATE)
        try:
            # PASS: bytes that are not UTF-8 make a wrong password (a failed login), not a bad
            # command; surrogateescape keeps them and the directory refuses such a string.
            rest = raw_rest.decode("utf-8", "surrogateescape" if verb == b"PASS" else "strict")
        except UnicodeDecodeError:
            return CommandError(BAD_CHARACTERS)
        stripped = rest.strip(" \t")
        args = _ARG_SPLIT.split(stripped) if stripped else []
        return _HANDLERS[verb](self, args, rest)

    def _user(self, args: list[str], rest: str) -> Event:
        if len(args) != 1:
            return _syntax("USER name")
        self._user_given = True
        return User(args[0])

    def _pass(self, args: list[str], rest: str) -> Event:
        # RFC 1939 §7: PASS follows a USER that got +OK (the driver calls auth_failed() if not).
        if not self._user_given:
            return CommandError(USER_FIRST)
        if not rest:
            return _syntax("PASS password")
        self._user_given = False
        return Pass(rest)  # the rest of the line as sent: passwords may hold spaces

    def _apop(self, args: list[str], rest: str) -> Event:
        self._user_given = False
        if len(args) != 2 or not _DIGEST.fullmatch(args[1]):
            return _syntax("APOP name digest")
        return Apop(args[0], args[1].lower())

    def _auth(self, args: list[str], rest: str) -> Event:
        self._user_given = False
        if not args:
            return Auth(None, None)  # list the mechanisms
        if len(args) > 2 or not _MECHANISM.fullmatch(args[0]):
            return _syntax("AUTH mechanism [initial-response]")
        initial = args[1].encode("utf-8") if len(args) == 2 else None
        return Auth(args[0].upper(), initial)

    def _stls(self, args: list[str], rest: str) -> Event:
        if not self._stls_offered:
            return CommandError(UNKNOWN_COMMAND)  # not offered: as if it did not exist
        if self._tls:
            return CommandError(TLS_ACTIVE)
        if args:
            return _syntax("STLS")
        self._tls_pending = True
        self._user_given = False
        self._buffer.clear()  # CVE-2011-0411: whatever followed STLS is injected plaintext
        return Stls()

    def _quit(self, args: list[str], rest: str) -> Event:
        if args:
            return _syntax("QUIT")
        if self._state is Pop3State.TRANSACTION:
            self._state = Pop3State.UPDATE  # RFC 1939 §6
            self._buffer.clear()
        else:
            self._close()
        return Quit()

    def _optional_msg(self, args: list[str], verb: str, event: type[List] | type[Uidl]) -> Event:
        if not args:
            return event(None)
        if len(args) > 1:
            return _syntax(f"{verb} [msg]")
        msg = _number(args[0])
        if msg is None or msg < 1:
            return CommandError(INVALID_MESSAGE_NUMBER)
        return event(msg)

    def _list(self, args: list[str], rest: str) -> Event:
        return self._optional_msg(args, "LIST", List)

    def _uidl(self, args: list[str], rest: str) -> Event:
        return self._optional_msg(args, "UIDL", Uidl)

    def _retr(self, args: list[str], rest: str) -> Event:
        if len(args) != 1:
            return _syntax("RETR msg")
        msg = _number(args[0])
        if msg is None or msg < 1:
            return CommandError(INVALID_MESSAGE_NUMBER)
        return Retr(msg)

    def _dele(self, args: list[str], rest: str) -> Event:
        if len(args) != 1:
            return _syntax("DELE msg")
        msg = _number(args[0])
        if msg is None or msg < 1:
            return CommandError(INVALID_MESSAGE_NUMBER)
        return Dele(msg)

    def _top(self, args: list[str], rest: str) -> Event:
        if len(args) != 2:
            return _syntax("TOP msg lines")
        msg = _number(args[0])
        if msg is None or msg < 1:
            return CommandError(INVALID_MESSAGE_NUMBER)
        lines = _number(args[1])
        if lines is None:
            return CommandError(INVALID_LINE_COUNT)
        return Top(msg, lines)


def _number(text: str) -> int | None:
    """A decimal number 0..2^31 in ASCII digits, no sign; None for anything else."""
    if not _NUMBER.fullmatch(text):
        return None
    value = int(text)
    return value if value <= _MAX_NUMBER else None


# (connection, arguments split at spaces, the raw rest of the line after the verb) -> the event
_Handler = Callable[[Pop3ServerConnection, list[str], str], Event]


def _without_args(event: type[Capa | Stat | Noop | Rset], verb: str) -> _Handler:
    def handler(conn: Pop3ServerConnection, args: list[str], rest: str) -> Event:
        return _syntax(verb) if args else event()

    return handler


_HANDLERS: Final[dict[bytes, _Handler]] = {
    b"USER": Pop3ServerConnection._user,
    b"PASS": Pop3ServerConnection._pass,
    b"APOP": Pop3ServerConnection._apop,
    b"AUTH": Pop3ServerConnection._auth,
    b"STLS": Pop3ServerConnection._stls,
    b"CAPA": _without_args(Capa, "CAPA"),
    b"QUIT": Pop3ServerConnection._quit,
    b"STAT": _without_args(Stat, "STAT"),
    b"LIST": Pop3ServerConnection._list,
    b"UIDL": Pop3ServerConnection._uidl,
    b"RETR": Pop3ServerConnection._retr,
    b"DELE": Pop3ServerConnection._dele,
    b"TOP": Pop3ServerConnection._top,
    b"NOOP": _without_args(Noop, "NOOP"),
    b"RSET": _without_args(Rset, "RSET"),
}
