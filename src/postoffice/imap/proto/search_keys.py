"""SEARCH criteria as a tree (RFC 9051 §6.4.4; RFC 3501 §6.4.4; RFC 4731 ESEARCH; RFC 5182
SEARCHRES; RFC 7162 §3.1.5 MODSEQ; RFC 5032 WITHIN; RFC 8514 SAVEDATE; RFC 8474 OBJECTID;
RFC 5267 CONTEXT=SEARCH; RFC 9394 PARTIAL).

:func:`parse_search_program` reads ``[CHARSET x] key *(SP key)`` into one :data:`SearchKey`, and
:func:`parse_search_keys` the ``key *(SP key)`` part alone (SORT and THREAD, whose charset is
not optional); :func:`parse_search_return` reads ESEARCH's ``RETURN (MIN MAX ALL COUNT SAVE)``,
:func:`parse_return_options` the same with the options of RFC 5267 and RFC 9394 (UPDATE,
CONTEXT, ``PARTIAL 1:100``), for SEARCH and SORT.

The tree is small and typed: :class:`SearchAll`; :class:`SearchFlag` (ANSWERED, UNSEEN, KEYWORD,
RECENT, OLD...); :class:`SearchHeader` (FROM, TO, CC, BCC, SUBJECT, HEADER); :class:`SearchBody`
and :class:`SearchText`; :class:`SearchDate` (BEFORE/ON/SINCE on the internal date, the Date:
header or the save date); :class:`SearchSize`; :class:`SearchAge` (OLDER, YOUNGER);
:class:`SearchSequence` (message numbers, or ``$``); :class:`SearchUid`; :class:`SearchModSeq`;
:class:`SearchObjectId` (EMAILID, THREADID); :class:`SearchSaveDateSupported`; and
:class:`SearchNot`, :class:`SearchOr`, :class:`SearchAnd` to combine them.

Implementation notes:

- Several keys at top level or in parentheses are a conjunction, :class:`SearchAnd`; a single
  key stands alone. NEW is RECENT and UNSEEN (RFC 3501 §6.4.4), so it becomes a SearchAnd.
- Strings are astrings (quoted, literal or atom; ``NIL`` is the text "NIL") decoded as UTF-8.
  CHARSET may be UTF-8 or US-ASCII (any case); anything else is ``NO [BADCHARSET (UTF-8
  US-ASCII)]`` (RFC 9051 §6.4.4), raised before the keys are read.
- Dates are ``1-Feb-1994``, optionally quoted; they are calendar dates, without a time zone.
- Nesting (NOT, OR, parentheses) is limited to :data:`MAX_DEPTH`, so a hostile line of
  ``NOT NOT NOT ...`` is a BAD, not a RecursionError.
- A command holds at most :data:`MAX_SEARCH_KEYS` keys (each NOT, OR and parenthesis counts):
  every key is checked against every message, so ``SEARCH 1:* 1:* ...`` (16,000 keys in a
  line, a thousand lines through literals) would cost the server minutes per command; real
  clients send a few dozen.
- ``RETURN ()`` means ``RETURN (ALL)`` (RFC 4731 §3.1) and is reported as ("ALL",).
  :func:`parse_search_return` refuses the options of RFC 5267 and RFC 9394 (BAD);
  :func:`parse_return_options` accepts them, and leaves it to the server whether it offers
  them. A PARTIAL range is ``first:last`` or ``-first:-last`` (counted from the end), either
  way round (RFC 9394 §3.1: ``500:400`` is ``400:500``), and is reported in that order:
  ``PARTIAL -100:-1`` gives (-1, -100).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from postoffice.imap.proto.sequence_set import SequenceSet
from postoffice.imap.proto.tokens import MAX_NUMBER, MAX_NUMBER64, SYSTEM_FLAGS, ParseError, Reader

__all__ = [
    "MAX_DEPTH",
    "MAX_SEARCH_KEYS",
    "SEARCH_CHARSETS",
    "SearchAge",
    "SearchAll",
    "SearchAnd",
    "SearchBody",
    "SearchDate",
    "SearchFlag",
    "SearchHeader",
    "SearchKey",
    "SearchModSeq",
    "SearchNot",
    "SearchObjectId",
    "SearchOr",
    "SearchSaveDateSupported",
    "SearchSequence",
    "SearchSize",
    "SearchText",
    "SearchUid",
    "parse_return_options",
    "parse_search_keys",
    "parse_search_program",
    "parse_search_return",
    "parse_search_text",
]

MAX_DEPTH = 64
MAX_SEARCH_KEYS = 2000  # in one command; see the implementation notes
SEARCH_CHARSETS = ("UTF-8", "US-ASCII")
BADCHARSET_CODE = "BADCHARSET (" + " ".join(SEARCH_CHARSETS) + ")"
RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})
# RETURN options with CONTEXT=SEARCH/SORT (RFC 5267 §4.1) and PARTIAL (RFC 9394 §3.1).
CONTEXT_RETURN_OPTIONS = RETURN_OPTIONS | {"UPDATE", "CONTEXT", "PARTIAL"}


@dataclass(frozen=True, slots=True)
class SearchAll:
    pass


@dataclass(frozen=True, slots=True)
class SearchFlag:
    """The message has (``present``) or lacks ``flag``: system flags spelled canonically."""

    flag: str  # "\\Seen", "\\Recent", or a keyword as sent
    present: bool = True


@dataclass(frozen=True, slots=True)
class SearchHeader:
    """The header field ``field`` (upper-cased) contains ``value``; "" matches any such field."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class SearchBody:
    value: str


@dataclass(frozen=True, slots=True)
class SearchText:
    value: str


@dataclass(frozen=True, slots=True)
class SearchDate:
    """``BEFORE``/``ON``/``SINCE`` (internal date), ``SENT*`` (Date: header), ``SAVED*``."""

    which: Literal["internal", "sent", "saved"]
    op: Literal["before", "on", "since"]
    date: date


@dataclass(frozen=True, slots=True)
class SearchSize:
    op: Literal["larger", "smaller"]
    size: int


@dataclass(frozen=True, slots=True)
class SearchAge:
    """OLDER/YOUNGER n: internal date more/less than n seconds ago (RFC 5032)."""

    op: Literal["older", "younger"]
    seconds: int


@dataclass(frozen=True, slots=True)
class SearchSequence:
    """Message sequence numbers; ``sequence_set.saved`` is ``$`` (RFC 5182)."""

    sequence_set: SequenceSet


@dataclass(frozen=True, slots=True)
class SearchUid:
    sequence_set: SequenceSet


@dataclass(frozen=True, slots=True)
class SearchModSeq:
    """MODSEQ [entry type] n (RFC 7162 §3.1.5): mod-sequence at least ``modseq``."""

    modseq: int
    entry: str | None = None  # e.g. "/flags/\\seen"
    entry_type: str | None = None  # "PRIV", "SHARED" or "ALL"


@dataclass(frozen=True, slots=True)
class SearchObjectId:
    """EMAILID/THREADID objectid (RFC 8474 §5): the message's object id is ``objectid``."""

    which: Literal["emailid", "threadid"]
    objectid: str  # 1*255(ALPHA / DIGIT / "_" / "-"), as sent


@dataclass(frozen=True, slots=True)
class SearchSaveDateSupported:
    """SAVEDATESUPPORTED (RFC 8514 §4.3): every message if the mailbox keeps save dates, else
    none."""


@dataclass(frozen=True, slots=True)
class SearchNot:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class SearchOr:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class SearchAnd:
    keys: tuple[SearchKey, ...]


SearchKey = (
    SearchAll
    | SearchFlag
    | SearchHeader
    | SearchBody
    | SearchText
    | SearchDate
    | SearchSize
    | SearchAge
    | SearchSequence
    | SearchUid
    | SearchModSeq
    | SearchObjectId
    | SearchSaveDateSupported
    | SearchNot
    | SearchOr
    | SearchAnd
)

# Keys without an argument.
_FLAG_KEYS: dict[str, SearchKey] = {
    "ALL": SearchAll(),
    "ANSWERED": SearchFlag("\\Answered"),
    "DELETED": SearchFlag("\\Deleted"),
    "DRAFT": SearchFlag("\\Draft"),
    "FLAGGED": SearchFlag("\\Flagged"),
    "SEEN": SearchFlag("\\Seen"),
    "RECENT": SearchFlag("\\Recent"),
    "UNANSWERED": SearchFlag("\\Answered", False),
    "UNDELETED": SearchFlag("\\Deleted", False),
    "UNDRAFT": SearchFlag("\\Draft", False),
    "UNFLAGGED": SearchFlag("\\Flagged", False),
    "UNSEEN": SearchFlag("\\Seen", False),
    "OLD": SearchFlag("\\Recent", False),
    "NEW": SearchAnd((SearchFlag("\\Recent"), SearchFlag("\\Seen", False))),
    "SAVEDATESUPPORTED": SearchSaveDateSupported(),
}
_HEADER_KEYS = frozenset({"BCC", "CC", "FROM", "SUBJECT", "TO"})
_DATE_KEYS: dict[
    str, tuple[Literal["internal", "sent", "saved"], Literal["before", "on", "since"]]
] = {
    "BEFORE": ("internal", "before"),
    "ON": ("internal", "on"),
    "SINCE": ("internal", "since"),
    "SENTBEFORE": ("sent", "before"),
    "SENTON": ("sent", "on"),
    "SENTSINCE": ("sent", "since"),
    "SAVEDBEFORE": ("saved", "before"),
    "SAVEDON": ("saved", "on"),
    "SAVEDSINCE": ("saved", "since"),
}
_KEY_NAME = re.compile(rb"[A-Za-z]+")
_ENTRY_TYPES = frozenset({"PRIV", "SHARED", "ALL"})
_FIELD_NAME = re.compile(r"[!-9;-~]+")
_OBJECTID = re.compile(rb"[A-Za-z0-9_-]{1,255}")  # RFC 8474 §7
_PARTIAL_RANGE = re.compile(rb"(-?)([0-9]+):(-?)([0-9]+)")


def parse_search_return(reader: Reader) -> tuple[str, ...]:
    """``"(" [option *(SP option)] ")"`` after RETURN SP: the ESEARCH result options."""
    options = reader.paren_list(reader.keyword, allow_empty=True)
    for option in options:
        if option not in RETURN_OPTIONS:
            raise reader.error(f"Unsupported SEARCH RETURN option {option}")
    return tuple(dict.fromkeys(options)) or ("ALL",)


def parse_return_options(
    reader: Reader, *, command: str = "SEARCH"
) -> tuple[tuple[str, ...], tuple[int, int] | None]:
    """``"(" [option *(SP option)] ")"`` after RETURN SP, with the options of CONTEXT=SEARCH
    (UPDATE, CONTEXT; RFC 5267 §4.1) and ``PARTIAL range`` (RFC 9394 §3.1).

    Returns (options, partial range): ``RETURN (PARTIAL -1:-100 COUNT)`` gives
    (("PARTIAL", "COUNT"), (-1, -100)); ``RETURN ()`` gives (("ALL",), None). ``command``
    names the command in error messages.
    """
    reader.expect(b"(")
    options: list[str] = []
    partial: tuple[int, int] | None = None
    if not reader.try_char(b")"):
        while True:
            start = reader.pos
            option = reader.keyword()
            if option not in CONTEXT_RETURN_OPTIONS:
                reader.pos = start
                raise reader.error(f"Unsupported {command} RETURN option {option}")
            if option == "PARTIAL":
                if partial is not None:
                    reader.pos = start
                    raise reader.error("PARTIAL given twice")
                reader.sp()
                partial = _partial_range(reader)
            options.append(option)
            if reader.try_char(b")"):
                break
            reader.sp()
    return tuple(dict.fromkeys(options)) or ("ALL",), partial


def _partial_range(reader: Reader) -> tuple[int, int]:
    """``nz-number ":" nz-number`` or ``"-" nz-number ":" "-" nz-number`` (RFC 9394 §3.1)."""
    m = reader.match(_PARTIAL_RANGE, "a partial range like 1:100 or -1:-100")
    first_sign, first, last_sign, last = m.groups()
    if first_sign != last_sign:
        reader.pos = m.start()
        raise reader.error("A partial range is first:last or -first:-last")
    low, high = sorted(int(n) if len(n) <= 10 else 0 for n in (first, last))
    if low < 1 or high > MAX_NUMBER:
        reader.pos = m.start()
        raise reader.error("Invalid partial range")
    return (-low, -high) if first_sign else (low, high)


def parse_search_program(reader: Reader) -> tuple[str | None, SearchKey]:
    """``[CHARSET SP charset SP] search-key *(SP search-key)``: (charset upper-cased, key)."""
    charset: str | None = None
    start = reader.pos
    if reader.text[start : start + 8].upper() == b"CHARSET ":
        reader.pos += 8
        charset = reader.astring().decode("ascii", "replace").upper()
        if charset not in SEARCH_CHARSETS:
            raise ParseError(
                start, f"Unsupported charset {charset}", status="NO", code=BADCHARSET_CODE
            )
        reader.sp()
    return charset, parse_search_keys(reader)


def parse_search_keys(reader: Reader) -> SearchKey:
    """``search-key *(SP search-key)``: one key, or their conjunction."""
    keys = [_search_key(reader)]
    while reader.try_sp():
        keys.append(_search_key(reader))
    return keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))


def _search_key(reader: Reader) -> SearchKey:
    reader.search_keys += 1
    if reader.search_keys > MAX_SEARCH_KEYS:
        raise reader.error(f"Too many search keys (at most {MAX_SEARCH_KEYS} in a command)")
    char = reader.peek()
    if char == b"(":
        reader.pos += 1
        _enter(reader)
        keys = [_search_key(reader)]
        while reader.try_sp():
            keys.append(_search_key(reader))
        reader.expect(b")")
        reader.depth -= 1
        return keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))
    if char.isdigit() or char in (b"*", b"$"):
        return SearchSequence(reader.sequence_set())
    start = reader.pos
    name = reader.word(_KEY_NAME, "a search key")
    simple = _FLAG_KEYS.get(name)
    if simple is not None:
        return simple
    if name in _HEADER_KEYS:
        reader.sp()
        return SearchHeader(name, reader.astring_text())
    dated = _DATE_KEYS.get(name)
    if dated is not None:
        reader.sp()
        return SearchDate(dated[0], dated[1], reader.date())
    if name == "NOT":
        reader.sp()
        _enter(reader)
        key = SearchNot(_search_key(reader))
        reader.depth -= 1
        return key
    if name == "OR":
        reader.sp()
        _enter(reader)
        left = _search_key(reader)
        reader.sp()
        right = _search_key(reader)
        reader.depth -= 1
        return SearchOr(left, right)
    if name in ("KEYWORD", "UNKEYWORD"):
        reader.sp()
        flag_start = reader.pos
        keyword = reader.atom().decode("ascii")
        if keyword.upper() in SYSTEM_FLAGS or keyword.startswith("\\"):
            reader.pos = flag_start
            raise reader.error("KEYWORD takes a keyword, not a system flag")
        return SearchFlag(keyword, name == "KEYWORD")
    if name == "HEADER":
        reader.sp()
        field_start = reader.pos
        field = reader.astring_text()
        if not _FIELD_NAME.fullmatch(field):
            reader.pos = field_start
            raise reader.error("Invalid header field name")
        reader.sp()
        return SearchHeader(field.upper(), reader.astring_text())
    if name == "BODY":
        reader.sp()
        return SearchBody(reader.astring_text())
    if name == "TEXT":
        reader.sp()
        return SearchText(reader.astring_text())
    if name in ("LARGER", "SMALLER"):
        reader.sp()
        return SearchSize("larger" if name == "LARGER" else "smaller", reader.number(MAX_NUMBER64))
    if name in ("OLDER", "YOUNGER"):
        reader.sp()
        return SearchAge("older" if name == "OLDER" else "younger", reader.nz_number())
    if name == "UID":
        reader.sp()
        return SearchUid(reader.sequence_set())
    if name == "MODSEQ":
        reader.sp()
        return _modseq(reader)
    if name in ("EMAILID", "THREADID"):
        reader.sp()
        id_start = reader.pos
        objectid = reader.atom()
        if not _OBJECTID.fullmatch(objectid):
            reader.pos = id_start
            raise reader.error("Invalid object id")
        return SearchObjectId("emailid" if name == "EMAILID" else "threadid", objectid.decode())
    reader.pos = start
    raise reader.error(f"Unknown search key {name}")


def _modseq(reader: Reader) -> SearchModSeq:
    """``MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer`` (RFC 7162 §3.1.5)."""
    entry: str | None = None
    entry_type: str | None = None
    if reader.peek() == b'"':
        entry = reader.text_of(reader.quoted())
        if not entry.lower().startswith("/flags/"):
            raise reader.error("MODSEQ entry must be /flags/<flag>")
        reader.sp()
        entry_type = reader.keyword()
        if entry_type not in _ENTRY_TYPES:
            raise reader.error("MODSEQ entry type must be priv, shared or all")
        reader.sp()
    return SearchModSeq(reader.number(MAX_NUMBER64), entry, entry_type)


def _enter(reader: Reader) -> None:
    reader.depth += 1
    if reader.depth > MAX_DEPTH:
        raise reader.error("Search criteria nested too deeply")


def parse_search_text(text: str | bytes) -> tuple[str | None, SearchKey]:
    """A search program from text without literals (tests and tools); raises ParseError."""
    reader = Reader.from_line(text.encode() if isinstance(text, str) else text)
    result = parse_search_program(reader)
    reader.end()
    return result
