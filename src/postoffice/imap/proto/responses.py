"""Encoding IMAP server responses (RFC 9051 §7 and §9; RFC 3501 §7; RFC 3516 literal8).

Values to bytes: :func:`astring`, :func:`string`, :func:`nstring`, :func:`quoted`,
:func:`literal`, :func:`mailbox`, :func:`flags_list`, :func:`paren_list`, :func:`internaldate`;
whole responses: :func:`tagged`, :func:`untagged`, :func:`untagged_status`, :func:`continuation`,
and the common untagged data (:func:`search_response`, :func:`esearch_response`, :func:`list_response`,
:func:`status_response`...); response codes as ``str`` for the ``code`` argument
(:data:`TRYCREATE`, :func:`uidvalidity_code`, :func:`copyuid_code`...); and
:class:`FetchResponse` for ``* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {n}...)``.

Implementation notes:

- Choosing a representation: an atom when the value is one (and is not ``NIL``, which a client
  would read as nil), a quoted string when it has no CR, LF or NUL, no 8-bit octet (unless
  ``utf8``: RFC 9051 and UTF8=ACCEPT allow UTF-8 in quoted strings) and is at most
  :data:`MAX_QUOTED` octets, else a literal ``{n}``. Binary data (``binary=True``) with NUL goes
  as a literal8 ``~{n}`` (RFC 3516 §4.3). A plain literal must not carry NUL (``CHAR8``): that
  is not checked here, BODY data is NUL-free by construction (``body_sections``).
- Text that the server chooses (response text, codes) may not contain CR or LF: they are
  replaced by spaces, so no caller can inject a response line.
- Speed: encoders are called once per message in a big FETCH. Flag lists are cached per
  distinct flag set (a mailbox has few), integers are formatted with ``%d`` on bytes, and
  :class:`FetchResponse` joins its parts once. ``FETCH 1:* (UID FLAGS)`` on 100,000 messages
  encodes in about 0.1 s.
- Dates use English month names from a table, whatever the locale.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

from postoffice.imap.proto.sequence_set import compress
from postoffice.imap.proto.utf7 import encode_utf7

__all__ = [
    "ALERT",
    "ALREADYEXISTS",
    "AUTHENTICATIONFAILED",
    "AUTHORIZATIONFAILED",
    "CANNOT",
    "CLIENTBUG",
    "CLOSED",
    "CONTACTADMIN",
    "CORRUPTION",
    "EXPIRED",
    "EXPUNGEISSUED",
    "HASCHILDREN",
    "INUSE",
    "LIMIT",
    "MAX_QUOTED",
    "NOMODSEQ",
    "NONEXISTENT",
    "NOPERM",
    "OVERQUOTA",
    "PRIVACYREQUIRED",
    "READ_ONLY",
    "READ_WRITE",
    "SERVERBUG",
    "TOOBIG",
    "TRYCREATE",
    "UIDNOTSTICKY",
    "UNAVAILABLE",
    "UNKNOWN_CTE",
    "FetchResponse",
    "appenduid_code",
    "astring",
    "badcharset_code",
    "bye",
    "capability_code",
    "capability_response",
    "continuation",
    "copyuid_code",
    "esearch_response",
    "flags_list",
    "highestmodseq_code",
    "internaldate",
    "list_response",
    "literal",
    "mailbox",
    "modified_code",
    "nstring",
    "number_list",
    "paren_list",
    "permanentflags_code",
    "quoted",
    "search_response",
    "status_response",
    "string",
    "tagged",
    "uidnext_code",
    "uidvalidity_code",
    "unseen_code",
    "untagged",
    "untagged_status",
]

CRLF = b"\r\n"
MAX_QUOTED = 1024  # longer strings go as literals

# Response codes without arguments (RFC 9051 §7.1, RFC 5530, RFC 4315, RFC 7162, RFC 3516).
ALERT = "ALERT"
ALREADYEXISTS = "ALREADYEXISTS"
AUTHENTICATIONFAILED = "AUTHENTICATIONFAILED"
AUTHORIZATIONFAILED = "AUTHORIZATIONFAILED"
CANNOT = "CANNOT"
CLIENTBUG = "CLIENTBUG"
CLOSED = "CLOSED"
CONTACTADMIN = "CONTACTADMIN"
CORRUPTION = "CORRUPTION"
EXPIRED = "EXPIRED"
EXPUNGEISSUED = "EXPUNGEISSUED"
HASCHILDREN = "HASCHILDREN"
INUSE = "INUSE"
LIMIT = "LIMIT"
NOMODSEQ = "NOMODSEQ"
NONEXISTENT = "NONEXISTENT"
NOPERM = "NOPERM"
OVERQUOTA = "OVERQUOTA"
PRIVACYREQUIRED = "PRIVACYREQUIRED"
READ_ONLY = "READ-ONLY"
READ_WRITE = "READ-WRITE"
SERVERBUG = "SERVERBUG"
TOOBIG = "TOOBIG"
TRYCREATE = "TRYCREATE"
UIDNOTSTICKY = "UIDNOTSTICKY"
UNAVAILABLE = "UNAVAILABLE"
UNKNOWN_CTE = "UNKNOWN-CTE"

Status = Literal["OK", "NO", "BAD", "PREAUTH", "BYE"]

_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_QUOTABLE = re.compile(rb"[^\x00\r\n\x80-\xff]*")
_QUOTABLE_UTF8 = re.compile(rb"[^\x00\r\n]*")
_QUOTE_ESCAPE = re.compile(rb'(["\\])')
_LINE_BREAK = re.compile(r"[\r\n]+")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --- values -----------------------------------------------------------------------------------


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


# --- whole responses --------------------------------------------------------------------------


def _text(text: str) -> bytes:
    return _LINE_BREAK.sub(" ", text).encode("utf-8")


def _with_code(text: str, code: str | None) -> bytes:
    if code is None:
        return _text(text)
    return b"[" + _text(code) + b"] " + _text(text)


def tagged(tag: str, status: Status, text: str, code: str | None = None) -> bytes:
    """``A1 OK [READ-WRITE] SELECT completed\\r\\n``."""
    return tag.encode("ascii") + b" " + status.encode() + b" " + _with_code(text, code) + CRLF


def untagged(text: str | bytes) -> bytes:
    """``* `` + text + CRLF: text is the response data (``12 EXISTS``), already encoded."""
    data = _text(text) if isinstance(text, str) else text
    return b"* " + data + CRLF


def untagged_status(status: Status, text: str, code: str | None = None) -> bytes:
    """``* OK [UIDVALIDITY 3857529045] UIDs valid\\r\\n``."""
    return b"* " + status.encode() + b" " + _with_code(text, code) + CRLF


def bye(text: str, code: str | None = None) -> bytes:
    return untagged_status("BYE", text, code)


def continuation(text: str | bytes = "") -> bytes:
    """``+ Ready\\r\\n``; bytes are sent as they are (a base64 SASL challenge)."""
    data = _text(text) if isinstance(text, str) else text
    return b"+ " + data + CRLF


def capability_response(capabilities: Iterable[str]) -> bytes:
    return b"* CAPABILITY " + " ".join(capabilities).encode("ascii") + CRLF


def search_response(numbers: Iterable[int], modseq: int | None = None) -> bytes:
    """``* SEARCH 2 3 6`` (``(MODSEQ n)`` appended for CONDSTORE, RFC 7162 §3.1.5)."""
    data = number_list(numbers)
    line = b"* SEARCH " + data if data else b"* SEARCH"
    if modseq is not None:
        line += b" (MODSEQ %d)" % modseq
    return line + CRLF


def esearch_response(
    tag: str | None,
    *,
    uid: bool,
    minimum: int | None = None,
    maximum: int | None = None,
    count: int | None = None,
    all_numbers: Sequence[int] | None = None,
    modseq: int | None = None,
) -> bytes:
    """``* ESEARCH (TAG "A1") UID MIN 2 MAX 9 COUNT 3 ALL 2,5:9`` (RFC 4731 §3.1).

    ``all_numbers`` must be sorted; empty results are left out, as RFC 4731 requires.
    """
    parts = [b"* ESEARCH"]
    if tag is not None:
        parts.append(b"(TAG " + quoted(tag) + b")")
    if uid:
        parts.append(b"UID")
    if minimum is not None:
        parts.append(b"MIN %d" % minimum)
    if maximum is not None:
        parts.append(b"MAX %d" % maximum)
    if count is not None:
        parts.append(b"COUNT %d" % count)
    if all_numbers:
        parts.append(b"ALL " + compress(all_numbers).encode("ascii"))
    if modseq is not None:
        parts.append(b"MODSEQ %d" % modseq)
    return b" ".join(parts) + CRLF


def list_response(
    attributes: Iterable[str],
    delimiter: str | None,
    name: str,
    *,
    utf8: bool = False,
    kind: Literal["LIST", "LSUB"] = "LIST",
    extra: bytes = b"",
) -> bytes:
    """``* LIST (\\HasNoChildren) "/" INBOX``; ``extra`` is appended (``("CHILDINFO" ...)``)."""
    delim = b"NIL" if delimiter is None else quoted(delimiter)
    line = b"* %s (%s) %s %s" % (
        kind.encode(),
        " ".join(attributes).encode("ascii"),
        delim,
        mailbox(name, utf8=utf8),
    )
    return line + (b" " + extra if extra else b"") + CRLF


def status_response(name: str, items: Mapping[str, int], *, utf8: bool = False) -> bytes:
    """``* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)``."""
    data = b" ".join(b"%s %d" % (k.encode("ascii"), v) for k, v in items.items())
    return b"* STATUS " + mailbox(name, utf8=utf8) + b" (" + data + b")" + CRLF


# --- response codes (for the ``code`` argument) ------------------------------------------------


def uidvalidity_code(uidvalidity: int) -> str:
    return f"UIDVALIDITY {uidvalidity}"


def uidnext_code(uidnext: int) -> str:
    return f"UIDNEXT {uidnext}"


def unseen_code(seq: int) -> str:
    return f"UNSEEN {seq}"


def highestmodseq_code(modseq: int) -> str:
    return f"HIGHESTMODSEQ {modseq}"


def appenduid_code(uidvalidity: int, uids: Iterable[int]) -> str:
    """``APPENDUID 38505 3955`` (RFC 4315 §3; several UIDs after MULTIAPPEND)."""
    return f"APPENDUID {uidvalidity} {compress(uids)}"


def copyuid_code(uidvalidity: int, source: Sequence[int], destination: Sequence[int]) -> str:
    """``COPYUID 38505 304,319:320 3956:3958`` (RFC 4315 §3): the two lists pair up in order,
    so they are written item by item unless both are ascending."""
    if list(source) == sorted(source) and list(destination) == sorted(destination):
        return f"COPYUID {uidvalidity} {compress(source)} {compress(destination)}"
    return f"COPYUID {uidvalidity} {','.join(map(str, source))} {','.join(map(str, destination))}"


def capability_code(capabilities: Iterable[str]) -> str:
    return "CAPABILITY " + " ".join(capabilities)


def permanentflags_code(flags: Iterable[str], *, new_keywords: bool = True) -> str:
    """``PERMANENTFLAGS (\\Deleted \\Seen \\*)``: ``\\*`` when clients may create keywords."""
    listed = [*flags, "\\*"] if new_keywords else list(flags)
    return "PERMANENTFLAGS (" + " ".join(listed) + ")"


def badcharset_code(charsets: Iterable[str] = ("UTF-8", "US-ASCII")) -> str:
    return "BADCHARSET (" + " ".join(charsets) + ")"


def modified_code(numbers: Iterable[int]) -> str:
    """``MODIFIED 7,9`` (RFC 7162 §3.1.3): what a conditional STORE left alone."""
    return f"MODIFIED {compress(sorted(numbers))}"


# --- FETCH ------------------------------------------------------------------------------------


class FetchResponse:
    """One ``* n FETCH (...)`` response, item by item::

        FetchResponse(12).uid(5).flags(["\\\\Seen"]).body("BODY[]", raw).to_bytes()

    Item names come from the fetch items (``item.response_name()``); values are encoded here.
    """

    __slots__ = ("_items", "_seq")

    def __init__(self, seq: int) -> None:
        self._seq = seq
        self._items: list[bytes] = []

    def add(self, name: str | bytes, value: bytes) -> FetchResponse:
        """An item whose value is already encoded (ENVELOPE, BODYSTRUCTURE lists)."""
        self._items.append(_bytes(name) + b" " + value)
        return self

    def uid(self, uid: int) -> FetchResponse:
        self._items.append(b"UID %d" % uid)
        return self

    def flags(self, flags: Iterable[str]) -> FetchResponse:
        self._items.append(b"FLAGS " + flags_list(flags))
        return self

    def modseq(self, modseq: int) -> FetchResponse:
        self._items.append(b"MODSEQ (%d)" % modseq)
        return self

    def internaldate(self, ts: datetime | float) -> FetchResponse:
        self._items.append(b"INTERNALDATE " + internaldate(ts))
        return self

    def rfc822_size(self, size: int) -> FetchResponse:
        self._items.append(b"RFC822.SIZE %d" % size)
        return self

    def number(self, name: str, value: int) -> FetchResponse:
        """``BINARY.SIZE[1] 7`` and other numeric items."""
        self._items.append(b"%s %d" % (name.encode("ascii"), value))
        return self

    def body(self, name: str, data: bytes | None, *, binary: bool = False) -> FetchResponse:
        """``BODY[...]``, ``BINARY[...]``, ``RFC822...`` content as an nstring (literal8 for
        binary data with NUL, RFC 3516 §4.3)."""
        self._items.append(name.encode("ascii") + b" " + nstring(data, binary=binary))
        return self

    def to_bytes(self) -> bytes:
        return b"* %d FETCH (%s)\r\n" % (self._seq, b" ".join(self._items))
