"""IMAP values as bytes, for responses (RFC 9051 §4 and §9; RFC 3501 §4; RFC 3516 literal8).

:func:`quoted`, :func:`literal`, :func:`string`, :func:`astring`, :func:`nstring`,
:func:`mailbox`, :func:`flags_list`, :func:`internaldate`, :func:`paren_list`,
:func:`number_list`: the output counterpart of :mod:`postoffice.imap.proto.tokens`.
:mod:`postoffice.imap.proto.responses` builds whole responses from them and exports them all.

Implementation notes:

- Choosing a representation: an atom when the value is one (and is not ``NIL``, which a client
  would read as nil), a quoted string when it has no CR, LF or NUL, no 8-bit octet (unless
  ``utf8``: RFC 9051 and UTF8=ACCEPT allow UTF-8 in quoted strings) and is at most
  :data:`MAX_QUOTED` octets, else a literal ``{n}``. Binary data (``binary=True``) with NUL goes
  as a literal8 ``~{n}`` (RFC 3516 §4.3). A plain literal must not carry NUL (``CHAR8``): that
  is not checked here, BODY data is NUL-free by construction (``body_sections``).
- Flag lists are cached per distinct flag set (a mailbox has few) and integers are formatted
  with ``%d`` on bytes: these run once per message in a big FETCH.
- Dates use English month names from a table, whatever the locale.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache

from postoffice.imap.proto.utf7 import encode_utf7

__all__ = [
    "MAX_QUOTED",
    "astring",
    "flags_list",
    "internaldate",
    "literal",
    "mailbox",
    "nstring",
    "number_list",
    "paren_list",
    "quoted",
    "string",
]

MAX_QUOTED = 1024  # longer strings go as literals

_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_QUOTABLE = re.compile(rb"[^\x00\r\n\x80-\xff]*")
_QUOTABLE_UTF8 = re.compile(rb"[^\x00\r\n]*")
_QUOTE_ESCAPE = re.compile(rb'(["\\])')
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _quotable(data: bytes, utf8: bool) -> bool:
    if len(data) > MAX_QUOTED:
        return False
    if utf8 and not data.isascii():
        if not _QUOTABLE_UTF8.fullmatch(data):
            return False
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    return _QUOTABLE.fullmatch(data) is not None


def quoted(value: str | bytes) -> bytes:
    """``"..."`` with ``"`` and ``\\`` escaped; ValueError if it cannot be quoted (CR, LF, NUL)."""
    data = _bytes(value)
    if b"\r" in data or b"\n" in data or b"\x00" in data:
        raise ValueError("CR, LF or NUL cannot be quoted: use a literal")
    if b'"' in data or b"\\" in data:
        data = _QUOTE_ESCAPE.sub(rb"\\\1", data)
    return b'"' + data + b'"'


def literal(data: bytes, *, binary: bool = False) -> bytes:
    """``{n}\\r\\n`` + data, or the literal8 ``~{n}\\r\\n`` + data when ``binary``."""
    return (b"~{%d}\r\n" if binary else b"{%d}\r\n") % len(data) + data


def string(value: str | bytes, *, utf8: bool = False, binary: bool = False) -> bytes:
    """A quoted string when safe and short, else a literal (literal8 for binary data with NUL)."""
    data = _bytes(value)
    if _quotable(data, utf8):
        return quoted(data)
    return literal(data, binary=binary and b"\x00" in data)


def astring(value: str | bytes, *, utf8: bool = False) -> bytes:
    """An atom when possible (never ``NIL``, nor with ``]``, which would end a response code
    in naive client parsers), else :func:`string`."""
    data = _bytes(value)
    if _ATOM.fullmatch(data) and data.upper() != b"NIL":
        return data
    return string(data, utf8=utf8)


def nstring(value: str | bytes | None, *, utf8: bool = False, binary: bool = False) -> bytes:
    """``NIL`` for None, else :func:`string`."""
    if value is None:
        return b"NIL"
    return string(value, utf8=utf8, binary=binary)


def mailbox(name: str, *, utf8: bool = False) -> bytes:
    """A mailbox name: modified UTF-7 (or UTF-8 in UTF8=ACCEPT mode), as an astring."""
    if name.upper() == "INBOX":
        return b"INBOX"
    return astring(name if utf8 else encode_utf7(name), utf8=utf8)


@lru_cache(maxsize=4096)
def _flags_list_cached(flags: tuple[str, ...] | frozenset[str]) -> bytes:
    if isinstance(flags, frozenset):
        # System flags first, then keywords; a stable order for the same set.
        flags = tuple(sorted(flags, key=lambda f: (f[:1] != "\\", f.upper())))
    encoded = [f.encode("ascii") for f in flags]
    for flag in encoded:
        bare = flag[1:] if flag[:1] == b"\\" else flag
        if not _ATOM.fullmatch(bare):
            raise ValueError(f"not a flag: {flag!r}")
    return b"(" + b" ".join(encoded) + b")"


def flags_list(flags: Iterable[str]) -> bytes:
    """``(\\Seen $Forwarded)``; sets are written system flags first, in a stable order."""
    if not isinstance(flags, tuple | frozenset):
        flags = frozenset(flags) if isinstance(flags, set) else tuple(flags)
    return _flags_list_cached(flags)


def internaldate(ts: datetime | float) -> bytes:
    """``"17-Jul-1996 02:44:25 -0700"``; a number is a POSIX time shown in UTC, a naive
    datetime is taken as UTC."""
    if isinstance(ts, datetime):
        dt = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    else:
        dt = datetime.fromtimestamp(ts, UTC)
    offset = dt.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (
        f'"{dt.day:02d}-{_MONTHS[dt.month - 1]}-{dt.year:04d} '
        f'{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}"'
    ).encode("ascii")


def paren_list(items: Iterable[bytes]) -> bytes:
    """``(a b c)`` from already encoded items; ``()`` when empty."""
    return b"(" + b" ".join(items) + b")"


def number_list(numbers: Iterable[int]) -> bytes:
    """``1 2 3``."""
    return b" ".join(b"%d" % n for n in numbers)
