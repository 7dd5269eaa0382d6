"""The sans-IO half of the IMAP client: server responses (RFC 9051 §7, RFC 3501 §7) from bytes.

>>> parser = ResponseParser()
>>> parser.feed(b"* 3 FETCH (UID 9 FLAGS (\\\\Seen) BODY[] {5}\\r\\nHello)\\r\\nA1 OK done\\r\\n")
>>> parser.next_event()           # Untagged(kind="FETCH", number=3, values=[[UID, 9, ...]])
>>> parser.next_event()           # Tagged(tag="A1", status="OK", text="done")
>>> parser.next_event() is None   # NEED_DATA: feed more bytes

A response is read a line at a time; a line ending in a literal announcement (``{N}``,
``{N+}``, ``~{N}``) continues after N octets. Only when the whole response is in does the
parser tokenise it, so an untagged response is one event whatever its literals.

Implementation notes:

- Memory is bounded by the largest message, not by the account: a literal over
  ``SPOOL_OVER`` octets goes to a :class:`SpooledLiteral` (a temporary file once it passes
  1 MiB), so a 50 MB attachment never sits in a Python ``bytes`` and the caller copies it to
  its destination in pieces. A line outside literals is limited to ``MAX_LINE`` octets
  (an ``* SEARCH`` answer of a million UIDs fits); more is a :class:`ResponseError`, fatal.
- A response that does not tokenise (unbalanced parentheses, a bad quoted string, a NUL) is
  a :class:`Malformed` event carrying what could be read (tag, number, kind), never an
  exception: the caller reports that one message or command and carries on. Framing (lines
  and literal lengths) is all the parser needs to stay in step with the server.
- Values: atoms (numbers, flags, ``BODY[HEADER.FIELDS (A B)]<0>`` whole) are :class:`Atom`
  (a ``str``); quoted strings and small literals are ``bytes``; ``NIL`` is ``None``; a
  parenthesised list is a ``list``. Status responses (OK, NO, BAD, BYE, PREAUTH) keep their
  human text as it is and their response code (RFC 9051 §7.1) as a name plus values.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import IO, Union

__all__ = [
    "MAX_LINE",
    "SPOOL_OVER",
    "Atom",
    "Continuation",
    "Event",
    "Malformed",
    "ResponseError",
    "ResponseParser",
    "SpooledLiteral",
    "Tagged",
    "Untagged",
    "Value",
    "as_int",
    "as_text",
    "fetch_attributes",
    "parse_internaldate",
]

MAX_LINE = 16 * 1024 * 1024
SPOOL_OVER = 64 * 1024
_SPOOL_IN_MEMORY = 1024 * 1024
STATUS_KINDS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})


class Atom(str):
    """An unquoted token: a number, a flag, a keyword, a FETCH attribute name."""

    __slots__ = ()


class SpooledLiteral:
    """A literal too large to keep as ``bytes``: held in a temporary file (in memory up to 1 MiB)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.file.write(data)

    def chunks(self, piece: int = 256 * 1024) -> list[bytes]:
        """The content in pieces (a list, read at once; for huge literals use ``file``)."""
        self.file.seek(0)
        out: list[bytes] = []
        while chunk := self.file.read(piece):
            out.append(chunk)
        return out

    def read(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()


Value = Union[Atom, bytes, SpooledLiteral, None, list["Value"]]  # noqa: UP007 (a recursive alias)


@dataclass(frozen=True, slots=True)
class Continuation:
    """``+ text``: the server waits for a literal or a SASL response."""

    text: bytes


@dataclass(frozen=True, slots=True)
class Tagged:
    """``TAG OK|NO|BAD [CODE args] text``: a command is complete."""

    tag: str
    status: str
    code: str | None = None
    code_values: list[Value] = field(default_factory=list)
    text: str = ""


@dataclass(frozen=True, slots=True)
class Untagged:
    """``* ...``: ``kind`` is the upper-cased keyword (FETCH, LIST, OK, CAPABILITY...),
    ``number`` the leading number of ``* 3 EXISTS``; status kinds carry code and text."""

    kind: str
    number: int | None = None
    values: list[Value] = field(default_factory=list)
    code: str | None = None
    code_values: list[Value] = field(default_factory=list)
    text: str = ""


@dataclass(frozen=True, slots=True)
class Malformed:
    """A response that was framed but does not parse; ``tag``, ``number``, ``kind`` as far as
    they could be read (``tag`` is ``"*"`` for an untagged one)."""

    tag: str | None
    number: int | None
    kind: str | None
    reason: str
    raw: bytes


Event = Continuation | Tagged | Untagged | Malformed


class ResponseError(Exception):
    """The server's byte stream cannot be framed any more (a line beyond MAX_LINE); the
    connection is unusable."""


_LITERAL_AT_END = re.compile(rb"~?\{([0-9]{1,12})\+?\}\Z")
_SP = re.compile(rb" +")
# An atom, with a bracketed part taken whole: BODY[HEADER.FIELDS (A B)]<0>, [Gmail]/Sent.
_ATOM = re.compile(rb'(?:[^\x00-\x20\x7f()\[\]{"]+|\[[^\]\r\n]*\])+')
_QUOTED = re.compile(rb'"((?:[^"\\\r\n]|\\.)*)"')
_QUOTED_ESCAPE = re.compile(rb"\\(.)")
_TAG = re.compile(rb"[^\x00-\x20\x7f(){%*\"\\+]+")
_WORD = re.compile(rb"[A-Za-z0-9.=\-]+")
_NUMBER = re.compile(rb"[0-9]+")


class _TokenError(Exception):
    pass


class ResponseParser:
    """Bytes from the server in (:meth:`feed`), :data:`Event` objects out (:meth:`next_event`)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._segments: list[bytes] = []
        self._literals: list[bytes | SpooledLiteral] = []
        self._literal_left = 0
        self._literal: bytearray | SpooledLiteral | None = None
        self._scan_from = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def take_buffer(self) -> bytes:
        """Everything fed but not yet parsed (what follows the OK to COMPRESS is compressed)."""
        rest = bytes(self._buf)
        self._buf.clear()
        self._scan_from = 0
        return rest

    def next_event(self) -> Event | None:
        """The next complete response, or None when more bytes are needed."""
        while True:
            if self._literal is not None:
                if not self._take_literal():
                    return None
                continue
            end = self._buf.find(b"\r\n", self._scan_from)
            if end < 0:
                self._scan_from = max(len(self._buf) - 1, 0)
                if len(self._buf) > MAX_LINE:
                    raise ResponseError(f"a response line longer than {MAX_LINE} octets")
                return None
            line = bytes(self._buf[:end])
            del self._buf[: end + 2]
            self._scan_from = 0
            m = _LITERAL_AT_END.search(line)
            if m is not None:
                size = int(m[1])
                self._segments.append(line[: m.start()])
                self._literal_left = size
                self._literal = SpooledLiteral(size) if size > SPOOL_OVER else bytearray()
                continue
            self._segments.append(line)
            segments, literals = self._segments, self._literals
            self._segments, self._literals = [], []
            return _parse_response(segments, literals)

    def _take_literal(self) -> bool:
        literal = self._literal
        assert literal is not None
        take = min(self._literal_left, len(self._buf))
        if take:
            piece = self._buf[:take]
            if isinstance(literal, bytearray):
                literal += piece
            else:
                literal.write(piece)
            del self._buf[:take]
            self._literal_left -= take
        if self._literal_left:
            return False
        self._literals.append(bytes(literal) if isinstance(literal, bytearray) else literal)
        self._literal = None
        return True


def _parse_response(segments: list[bytes], literals: list[bytes | SpooledLiteral]) -> Event:
    first = segments[0]
    raw = b"{literal}".join(segments)
    if first.startswith(b"+"):
        return Continuation(first[2:] if first[1:2] == b" " else first[1:])
    tag_match = _TAG.match(first) if not first.startswith(b"*") else None
    tag = "*" if first.startswith(b"*") else (tag_match[0].decode("ascii") if tag_match else None)
    number: int | None = None
    kind: str | None = None
    try:
        if tag is None or first[len(tag) : len(tag) + 1] != b" ":
            raise _TokenError("no tag")
        pos = len(tag) + 1
        word = _WORD.match(first, pos)
        if word is None:
            raise _TokenError("no response keyword")
        pos = word.end()
        if tag == "*" and word[0].isdigit():
            number = int(word[0])
            if first[pos : pos + 1] != b" ":
                raise _TokenError("no keyword after the number")
            word = _WORD.match(first, pos + 1)
            if word is None:
                raise _TokenError("no response keyword")
            pos = word.end()
        kind = word[0].decode("ascii").upper()
        if kind in STATUS_KINDS:
            if literals:
                raise _TokenError("a literal in a status response")
            code, code_values, text = _status_rest(first, pos)
            if tag == "*":
                return Untagged(kind, number, [], code, code_values, text)
            return Tagged(tag, kind, code, code_values, text)
        if tag != "*":
            raise _TokenError(f"a tagged response must be OK, NO or BAD, not {kind}")
        values = _Tokens(segments, literals, pos).values()
        return Untagged(kind, number, values)
    except _TokenError as exc:
        for literal in literals:
            if isinstance(literal, SpooledLiteral):
                literal.close()
        return Malformed(tag, number, kind, str(exc), raw[:1000])


def _status_rest(line: bytes, pos: int) -> tuple[str | None, list[Value], str]:
    if line[pos : pos + 1] == b" ":
        pos += 1
    code: str | None = None
    code_values: list[Value] = []
    if line[pos : pos + 1] == b"[":
        end = line.find(b"]", pos)
        # A code's values may hold "]" only inside quotes, which no standard code sends.
        if end < 0:
            raise _TokenError("a response code without ']'")
        inner = line[pos + 1 : end]
        name = _WORD.match(inner)
        if name is None:
            raise _TokenError("an empty response code")
        code = name[0].decode("ascii").upper()
        rest = inner[name.end() :]
        if rest.strip():
            try:
                code_values = _Tokens([rest], [], 0).values()
            except _TokenError:
                code_values = [rest.strip()]  # unknown codes may hold anything (RFC 9051 §7.1)
        pos = end + 1
        if line[pos : pos + 1] == b" ":
            pos += 1
    return code, code_values, line[pos:].decode("utf-8", "replace")


class _Tokens:
    """Tokenise the rest of an untagged response: its text segments with literals between."""

    def __init__(self, segments: list[bytes], literals: list[bytes | SpooledLiteral], pos: int):
        self.segments = segments
        self.literals = literals
        self.pos = pos

    def values(self) -> list[Value]:
        top: list[Value] = []
        stack: list[list[Value]] = [top]
        last = len(self.segments) - 1
        for index, segment in enumerate(self.segments):
            pos = self.pos if index == 0 else 0
            while pos < len(segment):
                c = segment[pos]
                if c == 0x20:
                    pos += 1
                    continue
                if c == 0x28:  # (
                    child: list[Value] = []
                    stack[-1].append(child)
                    stack.append(child)
                    pos += 1
                elif c == 0x29:  # )
                    if len(stack) == 1:
                        raise _TokenError("')' without '('")
                    stack.pop()
                    pos += 1
                elif c == 0x22:  # "
                    m = _QUOTED.match(segment, pos)
                    if m is None:
                        raise _TokenError("a quoted string without its end")
                    stack[-1].append(_QUOTED_ESCAPE.sub(rb"\1", m[1]))
                    pos = m.end()
                else:
                    m = _ATOM.match(segment, pos)
                    if m is None:
                        raise _TokenError(f"unexpected {chr(c)!r}")
                    text = m[0].decode("utf-8", "surrogateescape")
                    stack[-1].append(None if text.upper() == "NIL" else Atom(text))
                    pos = m.end()
            if index < last:
                stack[-1].append(self.literals[index])
        if len(stack) != 1:
            raise _TokenError("'(' without ')'")
        return top


# -- reading values -------------------------------------------------------------------------


def as_int(value: Value) -> int:
    """A number; ValueError for anything else."""
    if isinstance(value, Atom) and _NUMBER.fullmatch(value.encode("ascii", "replace")):
        return int(value)
    raise ValueError(f"not a number: {value!r}")


def as_text(value: Value) -> str:
    """A string, an atom or a literal as text (UTF-8, undecodable octets kept as escapes)."""
    if isinstance(value, Atom):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, SpooledLiteral):
        return value.read().decode("utf-8", "surrogateescape")
    raise ValueError(f"not a string: {value!r}")


def fetch_attributes(values: list[Value]) -> dict[str, Value]:
    """``* n FETCH (UID 1 FLAGS (...) ...)`` as {"UID": ..., "FLAGS": [...], "BODY[]": ...};
    names upper-cased, a partial ``<0>`` origin dropped. ValueError when it is not a list of
    name/value pairs."""
    if len(values) != 1 or not isinstance(values[0], list) or len(values[0]) % 2:
        raise ValueError("FETCH data is not a list of name and value pairs")
    items = values[0]
    out: dict[str, Value] = {}
    for i in range(0, len(items), 2):
        name = items[i]
        if not isinstance(name, Atom):
            raise ValueError(f"a FETCH attribute name that is not an atom: {name!r}")
        key = name.upper()
        if key.endswith(">") and "<" in key:
            key = key[: key.rindex("<")]
        out[key] = items[i + 1]
    return out


_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    )
}
_DATE_TIME = re.compile(
    r" ?([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"
)


def parse_internaldate(value: Value) -> datetime:
    """``"17-Jul-1996 02:44:25 -0700"`` (RFC 9051 date-time) as an aware datetime."""
    m = _DATE_TIME.fullmatch(as_text(value))
    if m is None or m[2].upper() not in _MONTHS:
        raise ValueError(f"not an IMAP date-time: {value!r}")
    offset = timedelta(hours=int(m[8]), minutes=int(m[9]))
    tz = timezone(-offset if m[7] == "-" else offset)
    return datetime(
        int(m[3]), _MONTHS[m[2].upper()], int(m[1]), int(m[4]), int(m[5]), int(m[6]), tzinfo=tz
    )
