"""The server side of a ManageSieve connection (RFC 5804), sans-IO: bytes in, events out.

Replies are built by the functions at the end (``ok``, ``no``, ``bye``, ``capability_lines``,
``string``); nothing here does I/O::

    conn = ManageSieveServerConnection(max_line=4096, max_literal=1 << 20)
    sock.sendall(capability_lines(caps) + ok())                  # the greeting
    while conn.state is not SieveState.LOGOUT:
        conn.receive_data(sock.recv(65536))                        # b"" at EOF
        while (event := conn.next_event()) is not NEED_DATA:
            match event:
                case CommandError(reply=reply): sock.sendall(reply)
                case GetScript(name=name): sock.sendall(string(text, literal=True) + b"\\r\\n" + ok())
                ...

Implementation notes (invariants):

- A command is one or more lines: a line that ends in a literal announcement ``{n+}`` (or
  ``{n}``, which clients send too; RFC 5804 defines no continuation, so neither form waits for
  one) is followed by n raw octets and the rest of the command on the next line. The whole
  command is collected (at most ``MAX_SEGMENTS`` literals) before it is parsed, so a syntax
  error anywhere refuses the whole command and the next one starts at a known place.
- Lines are at most ``max_line`` octets. A longer line cannot be skipped safely (its end may
  announce a literal whose octets would then be read as commands), so it ends the session
  with BYE, as does a literal announcement that cannot be honoured before login.
- Literals after login may be as long as ``max_literal``; a longer one is read and dropped
  without being kept (memory stays bounded) and the command is answered ``NO (QUOTA/MAXSIZE)``
  (RFC 5804 §2.6). Before login a literal may only be as long as a SASL response
  (``sasl.MAX_RESPONSE_LENGTH``): anything longer gets BYE, so an anonymous client cannot make
  the server read megabytes.
- Each command is allowed in some states only (§2: AUTHENTICATE and STARTTLS before login, the
  script commands after it); the core refuses the others with NO by itself.
- After STARTTLS nothing more is read until :meth:`tls_started` or :meth:`tls_refused`, and
  bytes received after the STARTTLS line are dropped: they would be plaintext injected into
  the TLS session (CVE-2011-0411).
- Between :meth:`begin_auth_exchange` and the end of the exchange each command is one string:
  the client's answer to the challenge (§2.1), given as :class:`AuthResponse`; ``"*"`` cancels.
- Commands are parsed only when :meth:`next_event` reaches them, so a command that follows an
  AUTHENTICATE in the same packet is judged after the driver reported the login's outcome.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final, TypeAlias

from postoffice.auth.sasl import MAX_RESPONSE_LENGTH
from postoffice.proto.linebuffer import LineBuffer, LineTooLong

__all__ = [
    "NEED_DATA", "AuthResponse", "Authenticate", "Capability", "CheckScript", "CommandError",
    "DeleteScript", "Event", "GetScript", "HaveSpace", "ListScripts", "Logout",
    "ManageSieveServerConnection", "NeedData", "Noop", "PutScript", "RenameScript", "SetActive", "SieveState",
    "StartTls", "Unauthenticate", "bye", "capability_lines", "no", "ok", "string",
]

MAX_SEGMENTS = 4  # literals in one command: PUTSCRIPT needs 2 at most, RENAMESCRIPT 2
MAX_NUMBER = 4294967295  # RFC 5804 §4: number is a 32-bit unsigned number
# An unauthenticated literal may hold a base64 SASL response, quoted or not.
PRE_LOGIN_LITERAL = MAX_RESPONSE_LENGTH + 2


class SieveState(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    LOGOUT = "logout"  # LOGOUT, BYE or EOF: nothing more is read


class NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


# --- events ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Capability:
    pass


@dataclass(frozen=True, slots=True)
class StartTls:
    pass


@dataclass(frozen=True, slots=True)
class Authenticate:
    mechanism: str
    initial_response: bytes | None  # the base64 text as sent, None if none was sent


@dataclass(frozen=True, slots=True)
class AuthResponse:
    data: bytes  # the base64 text of the client's answer to a challenge, or b"*" to cancel


@dataclass(frozen=True, slots=True)
class Logout:
    pass


@dataclass(frozen=True, slots=True)
class Noop:
    tag: str | None  # echoed in OK (TAG ...) (RFC 5804 §2.15)


@dataclass(frozen=True, slots=True)
class Unauthenticate:
    pass


@dataclass(frozen=True, slots=True)
class HaveSpace:
    name: str
    size: int


@dataclass(frozen=True, slots=True)
class PutScript:
    name: str
    content: bytes


@dataclass(frozen=True, slots=True)
class CheckScript:
    content: bytes


@dataclass(frozen=True, slots=True)
class ListScripts:
    pass


@dataclass(frozen=True, slots=True)
class SetActive:
    name: str  # "" deactivates (§2.8)


@dataclass(frozen=True, slots=True)
class GetScript:
    name: str


@dataclass(frozen=True, slots=True)
class DeleteScript:
    name: str


@dataclass(frozen=True, slots=True)
class RenameScript:
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class CommandError:
    """The core refused a command by itself; send ``reply``. ``fatal``: it is a BYE, and the
    state is LOGOUT (the driver closes the connection after writing it)."""

    reply: bytes
    fatal: bool = False


Event: TypeAlias = (
    Capability | StartTls | Authenticate | AuthResponse | Logout | Noop | Unauthenticate
    | HaveSpace | PutScript | CheckScript | ListScripts | SetActive | GetScript | DeleteScript
    | RenameScript | CommandError
)


class _Bad(Exception):
    """A syntax error in a command: NO with this text, the session goes on."""


class _TooBig(Exception):
    """A literal longer than allowed after login: NO (QUOTA/MAXSIZE)."""


# A line ending in a literal announcement: {n} or {n+} right before the line end.
_LITERAL_AT_END = re.compile(rb"\{(\d+)(\+?)\}\r?\n\Z")
_ATOM = re.compile(rb"[A-Za-z0-9]+")

# command -> (argument kinds, states where it is allowed). Kinds: "s" a string, "n" a number,
# "s?" an optional string, "s*" the rest (AUTHENTICATE's optional initial response).
_ANY = (SieveState.NOT_AUTHENTICATED, SieveState.AUTHENTICATED)
_PRE = (SieveState.NOT_AUTHENTICATED,)
_AUTH = (SieveState.AUTHENTICATED,)
_GRAMMAR: dict[str, tuple[str, tuple[SieveState, ...]]] = {
    "CAPABILITY": ("", _ANY), "LOGOUT": ("", _ANY), "NOOP": ("s?", _ANY),
    "STARTTLS": ("", _PRE), "AUTHENTICATE": ("ss?", _PRE),
    "UNAUTHENTICATE": ("", _AUTH), "LISTSCRIPTS": ("", _AUTH), "HAVESPACE": ("sn", _AUTH),
    "PUTSCRIPT": ("ss", _AUTH), "CHECKSCRIPT": ("s", _AUTH), "SETACTIVE": ("s", _AUTH),
    "GETSCRIPT": ("s", _AUTH), "DELETESCRIPT": ("s", _AUTH), "RENAMESCRIPT": ("ss", _AUTH),
}


class ManageSieveServerConnection:
    """One connection's input side: bytes in, :data:`Event` out, feedback from the driver."""

    def __init__(self, *, tls: bool = False, max_line: int = 4096, max_literal: int = 1 << 20) -> None:
        self.state = SieveState.NOT_AUTHENTICATED
        self.tls = tls
        self.max_literal = max_literal
        self._buf = LineBuffer(max(max_line, MAX_RESPONSE_LENGTH + 64))
        self._max_line = max_line
        self._eof = False
        self._awaiting_tls = False
        self._in_auth = False
        # The command being collected: its text segments and literals, in order.
        self._parts: list[bytes | _Literal] = []
        self._literal_left = 0  # octets of the current literal still to come
        self._literal_chunks: list[bytes] | None = None  # None: the literal is being dropped
        self._oversized = False  # a literal of this command was dropped

    # --- input ------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self._awaiting_tls or self.state is SieveState.LOGOUT:
            return  # bytes after STARTTLS are dropped (see the notes)
        if data:
            self._buf.feed(data)
        else:
            self._eof = True

    @property
    def open_line(self) -> int | None:
        """For the driver's line deadline: which line is partly received (None between lines
        and while literal octets arrive, which are not lines)."""
        return None if self._literal_left else self._buf.open_line

    def next_event(self) -> Event | NeedData:
        if self.state is SieveState.LOGOUT or self._awaiting_tls:
            return NEED_DATA
        while True:
            if self._literal_left:
                if not self._read_literal():
                    return self._need()
                continue
            try:
                line = self._buf.next_line()
            except LineTooLong:
                return self._fatal(f"Line longer than {self._max_line} octets")
            if line is None:
                return self._need()
            if len(line) > self._max_line and not self._in_auth:
                return self._fatal(f"Line longer than {self._max_line} octets")
            announced = _LITERAL_AT_END.search(line)
            if announced is None:
                self._parts.append(line.rstrip(b"\r\n"))
                parts, self._parts = self._parts, []
                oversized, self._oversized = self._oversized, False
                return self._command(parts, oversized)
            if len(announced.group(1)) > 10 or int(announced.group(1)) > MAX_NUMBER:
                return self._fatal("Literal size out of range")
            size = int(announced.group(1))
            limit = self.max_literal if self.state is SieveState.AUTHENTICATED else PRE_LOGIN_LITERAL
            if size > limit and self.state is not SieveState.AUTHENTICATED:
                return self._fatal("Literal too long before login")
            if len(self._parts) >= 2 * MAX_SEGMENTS:
                return self._fatal("Too many literals in one command")
            self._parts.append(line[: announced.start()])
            self._literal_left = size
            self._literal_chunks = [] if size <= limit else None
            self._oversized |= size > limit
            self._parts.append(_Literal(b"", size))

    def _read_literal(self) -> bool:
        chunk = self._buf.take(self._literal_left)
        if not chunk:
            return False
        self._literal_left -= len(chunk)
        if self._literal_chunks is not None:
            self._literal_chunks.append(chunk)
        if self._literal_left == 0:
            last = self._parts[-1]
            assert isinstance(last, _Literal)
            data = b"".join(self._literal_chunks) if self._literal_chunks is not None else b""
            self._parts[-1] = _Literal(data, last.size)
            self._literal_chunks = []
        return True

    def _need(self) -> Event | NeedData:
        if self._eof:
            self.state = SieveState.LOGOUT
        return NEED_DATA

    def _fatal(self, text: str) -> CommandError:
        self.state = SieveState.LOGOUT
        return CommandError(bye(text), fatal=True)

    # --- parsing ----------------------------------------------------------------------------

    def _command(self, parts: list[bytes | _Literal], oversized: bool) -> Event:
        if self._in_auth:
            return self._auth_response(parts)
        try:
            tokens = _tokens(parts)
            if not tokens or not isinstance(tokens[0], _Atom):
                raise _Bad("Expected a command name")
            name = tokens[0].text.decode("ascii").upper()
            grammar = _GRAMMAR.get(name)
            if grammar is None:
                raise _Bad(f"Unknown command {name[:40]}")
            kinds, states = grammar
            if self.state not in states:
                return CommandError(no("Log in first" if self.state is SieveState.NOT_AUTHENTICATED
                                       else f"{name} is not allowed after login"))
            if oversized:
                raise _TooBig
            return self._build(name, _arguments(name, kinds, tokens[1:]))
        except _TooBig:
            return CommandError(no(f"The script is longer than the {self.max_literal} octets allowed",
                                   "QUOTA/MAXSIZE"))
        except _Bad as bad:
            return CommandError(no(str(bad)))

    def _build(self, name: str, args: list[bytes | int | None]) -> Event:
        def text(i: int) -> str:
            value = args[i]
            assert isinstance(value, bytes)
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                raise _Bad("Strings must be UTF-8") from None

        match name:
            case "CAPABILITY":
                return Capability()
            case "LOGOUT":
                self.state = SieveState.LOGOUT
                return Logout()
            case "NOOP":
                return Noop(text(0) if args[0] is not None else None)
            case "STARTTLS":
                if self.tls:
                    return CommandError(no("TLS is active already"))
                self._awaiting_tls = True
                self._buf.clear()
                return StartTls()
            case "AUTHENTICATE":
                initial = args[1]
                assert initial is None or isinstance(initial, bytes)
                return Authenticate(text(0).upper(), initial)
            case "UNAUTHENTICATE":
                return Unauthenticate()
            case "LISTSCRIPTS":
                return ListScripts()
            case "HAVESPACE":
                size = args[1]
                assert isinstance(size, int)
                return HaveSpace(text(0), size)
            case "PUTSCRIPT":
                content = args[1]
                assert isinstance(content, bytes)
                return PutScript(text(0), content)
            case "CHECKSCRIPT":
                content = args[0]
                assert isinstance(content, bytes)
                return CheckScript(content)
            case "SETACTIVE":
                return SetActive(text(0))
            case "GETSCRIPT":
                return GetScript(text(0))
            case "DELETESCRIPT":
                return DeleteScript(text(0))
            case _:
                return RenameScript(text(0), text(1))

    def _auth_response(self, parts: list[bytes | _Literal]) -> Event:
        try:
            tokens = _tokens(parts)
        except _Bad as bad:
            self._in_auth = False
            return CommandError(no(f"Authentication failed: {bad}"))
        if len(tokens) == 1:
            token = tokens[0]
            return AuthResponse(token.data if isinstance(token, _Literal) else token.text)
        self._in_auth = False
        return CommandError(no("Authentication failed: expected one string"))

    # --- feedback from the driver -------------------------------------------------------------

    def begin_auth_exchange(self) -> None:
        """A challenge was sent: the next command is the client's answer."""
        self._in_auth = True

    def end_auth_exchange(self) -> None:
        self._in_auth = False

    def auth_succeeded(self) -> None:
        self._in_auth = False
        self.state = SieveState.AUTHENTICATED

    def unauthenticated(self) -> None:
        """UNAUTHENTICATE was answered OK (RFC 5804 §2.14): back to the greeting's state."""
        self.state = SieveState.NOT_AUTHENTICATED

    def tls_started(self) -> None:
        self.tls = True
        self._awaiting_tls = False
        self._buf.clear()

    def tls_refused(self) -> None:
        self._awaiting_tls = False

    def close(self) -> None:
        """The driver sent BYE of its own (a timeout, too many errors)."""
        self.state = SieveState.LOGOUT


# --- tokens -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Literal:
    data: bytes
    size: int


@dataclass(frozen=True, slots=True)
class _Atom:
    text: bytes


@dataclass(frozen=True, slots=True)
class _String:
    text: bytes


_Token: TypeAlias = _Atom | _String | _Literal


def _tokens(parts: list[bytes | _Literal]) -> list[_Token]:
    """The command's tokens, each separated from the next by one space (RFC 5804 §4)."""
    out: list[_Token] = []
    for index, part in enumerate(parts):
        if isinstance(part, _Literal):
            out.append(part)
            continue
        text = part
        literal_follows = index + 1 < len(parts)
        if index:  # the rest of a line after a literal: nothing, or a space and more
            if not text and not literal_follows:
                continue
            if text[:1] != b" ":
                raise _Bad("Expected a space after a literal")
            text = text[1:]
        if literal_follows and text:
            if not text.endswith(b" "):
                raise _Bad("Expected a space before a literal")
            text = text[:-1]
        i = 0
        while i < len(text):
            if text[i : i + 1] == b'"':
                value, i = _quoted(text, i + 1)
                out.append(_String(value))
            else:
                atom = _ATOM.match(text, i)
                if atom is None:
                    raise _Bad(f"Unexpected {text[i:i + 1]!r} at position {i + 1}")
                out.append(_Atom(atom.group()))
                i = atom.end()
            if i < len(text):
                if text[i : i + 1] != b" " or i + 1 == len(text):
                    raise _Bad(f"Expected one space at position {i + 1}")
                i += 1
    return out


def _quoted(text: bytes, i: int) -> tuple[bytes, int]:
    """RFC 5804 §4 quoted: backslash escapes only DQUOTE and backslash; no CR, LF or NUL."""
    value = bytearray()
    while i < len(text):
        c = text[i]
        if c == 0x22:
            return bytes(value), i + 1
        if c == 0x5C:
            if text[i + 1 : i + 2] not in (b'"', b"\\"):
                raise _Bad("A backslash in a quoted string may only escape \" or \\")
            value += text[i + 1 : i + 2]
            i += 2
            continue
        if c in (0, 0x0A, 0x0D):
            raise _Bad("A quoted string cannot contain NUL, CR or LF: send a literal")
        value.append(c)
        i += 1
    raise _Bad("A quoted string is not closed")


def _arguments(name: str, kinds: str, tokens: list[_Token]) -> list[bytes | int | None]:
    args: list[bytes | int | None] = []
    pos = 0
    for i, kind in enumerate(kinds):
        optional = i + 1 < len(kinds) and kinds[i + 1] == "?"
        if kind == "?":
            continue
        if pos >= len(tokens):
            if optional:
                args.append(None)
                continue
            raise _Bad(f"{name} needs more arguments")
        token = tokens[pos]
        pos += 1
        if kind == "n":
            if not isinstance(token, _Atom) or not token.text.isdigit() or int(token.text) > MAX_NUMBER:
                raise _Bad(f"{name} needs a number from 0 to {MAX_NUMBER}")
            args.append(int(token.text))
        elif isinstance(token, _String | _Literal):
            args.append(token.data if isinstance(token, _Literal) else token.text)
        else:
            raise _Bad(f"{name} needs a quoted string or a literal, not {token.text[:40].decode('ascii')}")
    if pos < len(tokens):
        raise _Bad(f"Too many arguments for {name}")
    return args


# --- replies ----------------------------------------------------------------------------------

_QUOTABLE_MAX = 1024


def string(value: str | bytes, *, literal: bool = False) -> bytes:
    """A string as the server sends it: quoted when it can be, else a literal ``{n}``."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if not literal and len(data) <= _QUOTABLE_MAX and not any(c in data for c in b"\r\n\0"):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def _response(kind: bytes, text: str, code: str | None) -> bytes:
    out = kind
    if code:
        out += b" (" + code.encode("utf-8") + b")"
    if text:
        out += b" " + string(text)
    return out + b"\r\n"


def ok(text: str = "", code: str | None = None) -> bytes:
    return _response(b"OK", text, code)


def no(text: str, code: str | None = None) -> bytes:
    return _response(b"NO", text, code)


def bye(text: str, code: str | None = None) -> bytes:
    return _response(b"BYE", text, code)


def capability_lines(capabilities: list[tuple[str, str | None]]) -> bytes:
    """``"NAME" "value"`` lines (RFC 5804 §1.7); the caller adds the OK."""
    out = b""
    for name, value in capabilities:
        out += string(name) + (b" " + string(value) if value is not None else b"") + b"\r\n"
    return out
