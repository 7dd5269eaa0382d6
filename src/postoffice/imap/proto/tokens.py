"""The lexical layer of IMAP commands (RFC 9051 §4, §9; RFC 3501 §4, §9): atoms, strings, numbers.

A :class:`Reader` walks one complete command: its text lines with the literals between them
already read by the parser. ``A1 LOGIN {3}\\r\\nbob {6}\\r\\nsecret\\r\\n`` reaches it as the text
segments ``b"A1 LOGIN "``, ``b" "``, ``b""`` and the literals ``b"bob"``, ``b"secret"``: a literal
sits between the end of one segment and the start of the next. The grammar modules
(``grammar``, ``search_keys``, ``fetch_items``) call its methods; every one either consumes what
it names or raises :class:`ParseError`.

Implementation notes:

- Every token is matched with a compiled regular expression at the current position; nothing
  loops over single bytes in Python. All patterns are linear-time (no nested repetitions).
- Atoms are 7-bit (RFC 9051 ``ATOM-CHAR``). Quoted strings may carry UTF-8 (RFC 9051
  ``quoted-char`` allows UTF8-2/3/4; IMAP4rev1 clients send none) and only ``\\"`` and ``\\\\``
  escapes. Literals (``string``) must not contain NUL (``CHAR8``); ``~{n}`` literal8 is accepted
  only where the grammar allows binary data (APPEND), by asking :meth:`Reader.literal`.
- Mailbox names are decoded from modified UTF-7 (RFC 3501 §5.1.3) unless ``utf8`` is set (after
  ENABLE UTF8=ACCEPT or IMAP4rev2, RFC 6855 §3, RFC 9051 §5.1), when they are UTF-8 as sent. A
  name that does not decode is refused with NO (Dovecot does the same), not BAD: it is a valid
  string that names no mailbox. "INBOX" in any case is "INBOX" (RFC 9051 §5.1).
- Numbers: ``number`` and ``nz-number`` are 32-bit, ``number64``/``mod-sequence-value`` 63-bit.
- Sequence sets: at most ``MAX_SEQUENCE_RANGES`` ranges in one command, counted over every set
  and every line between its literals. A line bounds one set (a 64 KiB ``1,3,5,...`` has 32,768
  ranges), but a command of a thousand literals could carry a thousand such sets, and each range
  costs about 160 octets of memory once parsed and resolved: bounded, a command costs at most 16 MB.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Literal, TypeVar

from postoffice.imap.proto.sequence_set import SequenceSet, SequenceSetError, parse_sequence_set
from postoffice.imap.proto.utf7 import Utf7Error, decode_utf7

__all__ = ["MAX_NUMBER", "MAX_NUMBER64", "MAX_SEQUENCE_RANGES", "SYSTEM_FLAGS", "ParseError", "Reader"]

T = TypeVar("T")

MAX_NUMBER = 4294967295
MAX_NUMBER64 = 9223372036854775807
MAX_SEQUENCE_RANGES = 100_000  # per command: three times what one 64 KiB line can hold

# Canonical spelling of the system flags a client may set (RFC 9051 §2.3.2); \Recent is not one.
SYSTEM_FLAGS = {f.upper(): f for f in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")}
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    )
}

_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_ASTRING_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')  # ATOM-CHAR plus "]"
_LIST_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')  # plus "%" and "*"
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_QUOTED_ESCAPE = re.compile(rb'\\(["\\])')
_NUMBER = re.compile(rb"[0-9]+")
_C0_CONTROL = re.compile(r"[\x00-\x1f]")
_SEQUENCE_SET = re.compile(rb"[0-9*:,$]+")
_FLAG = re.compile(rb'\\?[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_DATE_TIME = re.compile(
    rb'"([ 0-9][0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
)


class ParseError(Exception):
    """The command is malformed at ``position``: answer ``status`` (BAD unless said otherwise)."""

    def __init__(
        self,
        position: int,
        reason: str,
        *,
        status: Literal["BAD", "NO"] = "BAD",
        code: str | None = None,
    ) -> None:
        super().__init__(f"{reason} (at octet {position})")
        self.position = position
        self.reason = reason
        self.status: Literal["BAD", "NO"] = status
        self.code = code


class Reader:
    """A cursor over one command's text segments and the literals between them."""

    __slots__ = ("_base", "_literals", "_ranges_left", "_seg", "_segments", "depth", "pos", "search_keys",
                 "text", "utf8")

    def __init__(
        self,
        segments: list[bytes],
        literals: list[tuple[bytes, bool]] | None = None,
        *,
        utf8: bool = False,
    ) -> None:
        literals = literals or []
        if len(segments) != len(literals) + 1:
            raise ValueError("a literal goes between two text segments")
        self._segments = segments
        self._literals = literals
        self._seg = 0
        self._base = 0  # octets of the segments before this one, for error positions
        self.text = segments[0]
        self.pos = 0
        self.utf8 = utf8  # mailbox names are UTF-8, not modified UTF-7
        self.depth = 0  # nesting of parenthesised search keys, bounded by the grammar
        self.search_keys = 0  # search keys read so far, bounded by the grammar
        self._ranges_left = MAX_SEQUENCE_RANGES  # of the command's sequence sets together

    @classmethod
    def from_line(cls, line: bytes, *, utf8: bool = False) -> Reader:
        """A reader over a command without literals (tests, tools)."""
        return cls([line], utf8=utf8)

    # --- positions ----------------------------------------------------------------------------

    def error(self, reason: str) -> ParseError:
        return ParseError(self._base + self.pos, reason)

    def peek(self) -> bytes:
        """The next octet of the current segment, b"" at its end (where a literal may follow)."""
        return self.text[self.pos : self.pos + 1]

    def literal_next(self) -> bool:
        return self.pos == len(self.text) and self._seg < len(self._literals)

    def in_last_segment(self) -> bool:
        """No literal follows: the rest of the command is ``text[pos:]``."""
        return self._seg == len(self._literals)

    def at_end(self) -> bool:
        """Nothing left of the command."""
        return self.pos == len(self.text) and self._seg == len(self._literals)

    def end(self) -> None:
        if not self.at_end():
            raise self.error("Unexpected extra arguments")

    # --- single characters ----------------------------------------------------------------------

    def sp(self) -> None:
        if self.text[self.pos : self.pos + 1] != b" ":
            raise self.error("Expected a space")
        self.pos += 1

    def try_char(self, char: bytes) -> bool:
        if self.text[self.pos : self.pos + 1] == char:
            self.pos += 1
            return True
        return False

    def expect(self, char: bytes, what: str | None = None) -> None:
        if not self.try_char(char):
            raise self.error(f"Expected {what or char.decode()!r}")

    def try_sp(self) -> bool:
        return self.try_char(b" ")

    # --- tokens -------------------------------------------------------------------------------

    def match(self, pattern: re.Pattern[bytes], what: str) -> re.Match[bytes]:
        m = pattern.match(self.text, self.pos)
        if m is None:
            raise self.error(f"Expected {what}")
        self.pos = m.end()
        return m

    def atom(self) -> bytes:
        return self.match(_ATOM, "an atom").group()

    def keyword(self) -> str:
        """An atom, upper-cased: command names, option names, search keys."""
        return self.match(_ATOM, "a keyword").group().decode("ascii").upper()

    def word(self, pattern: re.Pattern[bytes], what: str) -> str:
        """A token matched by a caller's pattern, upper-cased."""
        return self.match(pattern, what).group().decode("ascii").upper()

    def number(self, maximum: int = MAX_NUMBER) -> int:
        m = self.match(_NUMBER, "a number")
        if len(m.group()) > 19 or int(m.group()) > maximum:
            raise self.error("Number out of range")
        return int(m.group())

    def nz_number(self, maximum: int = MAX_NUMBER) -> int:
        n = self.number(maximum)
        if n == 0:
            raise self.error("Expected a non-zero number")
        return n

    def sequence_set(self) -> SequenceSet:
        m = self.match(_SEQUENCE_SET, "a sequence set")
        self._ranges_left -= m.group().count(b",") + 1
        if self._ranges_left < 0:
            self.pos = m.start()
            raise self.error(f"Too many ranges in sequence sets (at most {MAX_SEQUENCE_RANGES} in a command)")
        try:
            return parse_sequence_set(m.group())
        except SequenceSetError as exc:
            self.pos = m.start()
            raise self.error(f"Invalid sequence set: {exc}") from None

    def literal(self, *, binary_ok: bool = False) -> tuple[bytes, bool]:
        """The literal that follows here, as (data, binary)."""
        if not self.literal_next():
            raise self.error("Expected a literal")
        data, binary = self._literals[self._seg]
        if binary and not binary_ok:
            raise self.error("literal8 (~{n}) is not allowed here")
        self._base += len(self.text)
        self._seg += 1
        self.text = self._segments[self._seg]
        self.pos = 0
        return data, binary

    def quoted(self) -> bytes:
        m = self.match(_QUOTED, "a quoted string")
        value = m.group(1)
        return _QUOTED_ESCAPE.sub(rb"\1", value) if b"\\" in value else value

    def string(self) -> bytes:
        """``string``: a quoted string or a literal (without NUL)."""
        if self.literal_next():
            data, _ = self.literal()
            if b"\x00" in data:
                raise self.error("NUL in a literal")
            return data
        if self.peek() == b'"':
            return self.quoted()
        raise self.error("Expected a string")

    def astring(self) -> bytes:
        """``astring``: an atom (``]`` allowed), a quoted string or a literal."""
        if self.literal_next() or self.peek() == b'"':
            return self.string()
        return self.match(_ASTRING_ATOM, "a string").group()

    def nstring(self) -> bytes | None:
        """``nstring``: NIL or a string."""
        if self.literal_next() or self.peek() == b'"':
            return self.string()
        if self.text[self.pos : self.pos + 3].upper() == b"NIL":
            m = _ATOM.match(self.text, self.pos)
            if m is not None and m.end() == self.pos + 3:
                self.pos += 3
                return None
        raise self.error("Expected a string or NIL")

    def text_of(self, value: bytes) -> str:
        """A string argument as text: UTF-8 (RFC 9051 §4.3; US-ASCII is a subset)."""
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("Invalid UTF-8 in a string") from None

    def astring_text(self) -> str:
        return self.text_of(self.astring())

    def mailbox(self) -> str:
        """A mailbox name: modified UTF-7 decoded (or UTF-8 in UTF8 mode); INBOX normalised."""
        start = self._base + self.pos
        raw = self.astring()
        if raw.upper() == b"INBOX":
            return "INBOX"
        if self.utf8:
            name = self.text_of(raw)
        else:
            try:
                name = decode_utf7(raw)
            except Utf7Error:
                raise ParseError(
                    start, "Mailbox name is not valid modified UTF-7", status="NO"
                ) from None
        if _C0_CONTROL.search(name):
            # No stored name has one (`store.mailbox_names`), and the name must not be echoed.
            raise ParseError(start, "Mailbox name contains a control character", status="NO")
        if name.upper() == "INBOX":
            return "INBOX"
        return name

    def list_mailbox(self) -> str:
        """A LIST/LSUB reference or pattern (``list-mailbox``, ``%`` and ``*`` allowed).

        Decoded like a mailbox name, but a pattern that is not valid modified UTF-7 is kept as
        sent: it can still match (or not), and LIST must not fail on it (imaptest ``atoms``).
        """
        if self.literal_next() or self.peek() == b'"':
            raw = self.string()
        else:
            raw = self.match(_LIST_ATOM, "a mailbox pattern").group()
        if self.utf8:
            return self.text_of(raw)
        try:
            return decode_utf7(raw)
        except Utf7Error:
            return self.text_of(raw)

    def flag(self) -> str:
        """A flag to set: a system flag (canonical spelling) or a keyword (as sent)."""
        m = self.match(_FLAG, "a flag")
        flag = m.group().decode("ascii")
        if flag[0] == "\\":
            canonical = SYSTEM_FLAGS.get(flag.upper())
            if canonical is None:
                self.pos = m.start()
                raise self.error(f"Invalid system flag {flag}")
            return canonical
        return flag

    def flag_list(self) -> tuple[str, ...]:
        """``(flag *(SP flag))``, possibly empty; duplicates dropped, order kept."""
        self.expect(b"(")
        flags: list[str] = []
        if not self.try_char(b")"):
            flags.append(self.flag())
            while self.try_sp():
                flags.append(self.flag())
            self.expect(b")")
        return tuple(dict.fromkeys(flags))

    def paren_list(self, item: Callable[[], T], *, allow_empty: bool = False) -> list[T]:
        """``"(" item *(SP item) ")"``."""
        self.expect(b"(")
        items: list[T] = []
        if allow_empty and self.try_char(b")"):
            return items
        items.append(item())
        while self.try_sp():
            items.append(item())
        self.expect(b")")
        return items

    def date(self) -> date:
        """``date``: ``1-Feb-1994``, optionally in double quotes (RFC 9051 §9)."""
        quoted = self.try_char(b'"')
        m = self.match(_DATE, "a date like 1-Feb-1994")
        if quoted:
            self.expect(b'"')
        month = _MONTHS.get(m.group(2).decode("ascii").upper())
        try:
            if month is None:
                raise ValueError("month")
            return date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            self.pos = m.start()
            raise self.error("Invalid date") from None

    def date_time(self) -> datetime:
        """``date-time``: ``"17-Jul-1996 02:44:25 -0700"`` (day may be space-padded)."""
        m = self.match(_DATE_TIME, 'a date-time like "17-Jul-1996 02:44:25 -0700"')
        day, mon, year, hh, mm, ss, sign, zh, zm = (g.decode("ascii") for g in m.groups())
        month = _MONTHS.get(mon.upper())
        try:
            if month is None or int(zm) > 59:
                raise ValueError("month or zone")
            offset = timedelta(hours=int(zh), minutes=int(zm))
            zone = timezone(-offset if sign == "-" else offset)
            return datetime(int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=zone)
        except ValueError:
            self.pos = m.start()
            raise self.error("Invalid date-time") from None
