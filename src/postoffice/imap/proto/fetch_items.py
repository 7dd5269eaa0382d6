"""FETCH data items (RFC 9051 §6.4.5; RFC 3501 §6.4.5; RFC 3516 BINARY; RFC 7162 MODSEQ).

:func:`parse_fetch_items` reads what follows the sequence set of FETCH: a macro (ALL, FAST,
FULL), one item, or a parenthesised list, into a tuple of :data:`FetchItem`:

- :class:`FetchAttribute` for the plain ones: FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE, BODY
  (the non-extensible BODYSTRUCTURE), BODYSTRUCTURE, UID, MODSEQ, RFC822, RFC822.HEADER,
  RFC822.TEXT, and PREVIEW (with ``(LAZY)``, RFC 8970 §3), SAVEDATE, EMAILID, THREADID
  (tolerated: the server may answer NIL or leave them out).
- :class:`FetchBody`: ``BODY[section]<partial>`` and ``BODY.PEEK[...]``, with the
  :class:`~postoffice.imap.proto.sections.Section` of the FETCH body code.
- :class:`FetchBinary`: ``BINARY[part]<partial>``, ``BINARY.PEEK[...]``; :class:`FetchBinarySize`:
  ``BINARY.SIZE[part]``.

Each item knows its name in the FETCH response (:meth:`response_name`): ``BODY.PEEK[TEXT]<0.10>``
is answered as ``BODY[TEXT]<0>`` (RFC 9051 §7.5.2), ``RFC822.HEADER`` as ``RFC822.HEADER``.

Implementation notes:

- Macros are valid only alone, never inside parentheses (RFC 9051 §6.4.5 ``fetch``); they are
  expanded here (FULL to FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY).
- ``RFC822`` is answered like ``BODY[]`` and sets \\Seen; ``RFC822.HEADER`` is like
  ``BODY.PEEK[HEADER]``; ``RFC822.TEXT`` like ``BODY[TEXT]`` (RFC 3501 §6.4.5).
  :attr:`FetchAttribute.sets_seen` and :attr:`FetchBody.sets_seen` say which items set \\Seen.
- Sections: ``part`` numbers, then HEADER, HEADER.FIELDS (names), HEADER.FIELDS.NOT (names),
  TEXT, or (only after a part number) MIME. Field names are astrings, upper-cased, and must be
  header field names (printable ASCII without ":"). BINARY sections are part numbers only.
- A partial is ``<origin.length>`` with a non-zero length; origin and length are number64 in
  IMAP4rev2 (32-bit in 3501), both accepted.
- Parsed item lists are cached by the text they were read from (a client asks for the same
  lists over and over); items are immutable, so sharing them is safe.
- Duplicate items are kept once, in the order first asked. Duplicate header field names are
  kept as sent: the response must name the section exactly as it was asked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from postoffice.imap.proto.sections import Section
from postoffice.imap.proto.tokens import MAX_NUMBER64, ParseError, Reader

__all__ = [
    "FetchAttribute",
    "FetchBinary",
    "FetchBinarySize",
    "FetchBody",
    "FetchItem",
    "parse_fetch_items",
    "parse_fetch_items_text",
]

# Attributes without brackets, as the client may name them.
_SIMPLE = frozenset(
    {
        "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE", "UID",
        "MODSEQ", "RFC822", "RFC822.HEADER", "RFC822.TEXT", "PREVIEW", "SAVEDATE", "EMAILID",
        "THREADID",
    }
)  # fmt: skip
_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_NAME = re.compile(rb"[A-Za-z0-9.]+")
_PART = re.compile(rb"[1-9][0-9]{0,9}(?:\.[1-9][0-9]{0,9})*")
_SECTION_TEXT = re.compile(rb"HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME", re.IGNORECASE)
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII except ":"


@dataclass(frozen=True, slots=True)
class FetchAttribute:
    """A data item without a section: ``FetchAttribute("FLAGS")``."""

    name: str  # upper-cased, one of the names listed in the module docstring
    modifiers: tuple[str, ...] = ()  # upper-cased: ("LAZY",) for PREVIEW (LAZY) (RFC 8970 §3)

    @property
    def sets_seen(self) -> bool:
        return self.name in ("RFC822", "RFC822.TEXT")

    def response_name(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class FetchBody:
    """``BODY[section]<origin.length>`` or ``BODY.PEEK[...]``."""

    section: Section
    partial: tuple[int, int] | None = None  # (origin, length)
    peek: bool = False

    @property
    def sets_seen(self) -> bool:
        return not self.peek

    def response_name(self) -> str:
        """``BODY[1.HEADER.FIELDS (FROM TO)]<0>``: the name the FETCH response uses."""
        origin = "" if self.partial is None else f"<{self.partial[0]}>"
        return f"BODY[{section_spec(self.section)}]{origin}"


@dataclass(frozen=True, slots=True)
class FetchBinary:
    """``BINARY[part]<origin.length>`` or ``BINARY.PEEK[...]`` (RFC 3516)."""

    part: tuple[int, ...] = ()
    partial: tuple[int, int] | None = None
    peek: bool = False

    @property
    def sets_seen(self) -> bool:
        return not self.peek

    def response_name(self) -> str:
        origin = "" if self.partial is None else f"<{self.partial[0]}>"
        return f"BINARY[{_part_spec(self.part)}]{origin}"


@dataclass(frozen=True, slots=True)
class FetchBinarySize:
    """``BINARY.SIZE[part]`` (RFC 3516): the decoded size."""

    part: tuple[int, ...] = ()

    @property
    def sets_seen(self) -> bool:
        return False

    def response_name(self) -> str:
        return f"BINARY.SIZE[{_part_spec(self.part)}]"


FetchItem = FetchAttribute | FetchBody | FetchBinary | FetchBinarySize


def _part_spec(part: tuple[int, ...]) -> str:
    return ".".join(map(str, part))


def section_spec(section: Section) -> str:
    """The text between the brackets: ``1.2.HEADER.FIELDS (FROM TO)``."""
    spec = _part_spec(section.part)
    if section.text is not None:
        spec = f"{spec}.{section.text}" if spec else section.text
        if section.fields:
            spec += " (" + " ".join(section.fields) + ")"
    return spec


# Clients repeat the same item lists all the time: (rest of the line) -> (items, octets read).
_CACHE: dict[bytes, tuple[tuple[FetchItem, ...], int]] = {}
_CACHE_SIZE = 512


def parse_fetch_items(reader: Reader) -> tuple[FetchItem, ...]:
    """The items of FETCH after its sequence set and a space (macros expanded)."""
    if not reader.in_last_segment():
        return _parse_fetch_items(reader)
    key = reader.text[reader.pos :]
    cached = _CACHE.get(key)
    if cached is not None:
        reader.pos += cached[1]
        return cached[0]
    start = reader.pos
    items = _parse_fetch_items(reader)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[key] = (items, reader.pos - start)
    return items


def _parse_fetch_items(reader: Reader) -> tuple[FetchItem, ...]:
    if reader.peek() == b"(":
        items = reader.paren_list(lambda: _fetch_att(reader))
    else:
        start = reader.pos
        name = reader.word(_NAME, "a FETCH data item")
        macro = _MACROS.get(name)
        if macro is not None:
            items = [FetchAttribute(n) for n in macro]
        else:
            reader.pos = start
            items = [_fetch_att(reader)]
    return tuple(dict.fromkeys(items))


def _fetch_att(reader: Reader) -> FetchItem:
    start = reader.pos
    name = reader.word(_NAME, "a FETCH data item")
    if reader.peek() != b"[":
        if name == "PREVIEW" and reader.text[reader.pos : reader.pos + 6].upper() == b" (LAZY":
            # "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"] (RFC 8970 §3). The look-ahead
            # tells it from the FETCH modifiers in ``FETCH 1 PREVIEW (CHANGEDSINCE 5)``.
            reader.sp()
            mods = reader.paren_list(_preview_mod(reader))
            return FetchAttribute(name, tuple(dict.fromkeys(mods)))
        if name in _SIMPLE:
            return FetchAttribute(name)
        reader.pos = start
        if name in _MACROS:
            raise reader.error(f"{name} is a macro and cannot be combined with other items")
        raise reader.error(f"Unknown FETCH data item {name}")
    if name in ("BODY", "BODY.PEEK"):
        section = _section(reader)
        return FetchBody(section, _partial(reader), peek=name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK"):
        part = _binary_section(reader)
        return FetchBinary(part, _partial(reader), peek=name == "BINARY.PEEK")
    if name == "BINARY.SIZE":
        return FetchBinarySize(_binary_section(reader))
    reader.pos = start
    raise reader.error(f"Unknown FETCH data item {name}")


def _preview_mod(reader: Reader) -> Callable[[], str]:
    def mod() -> str:
        start = reader.pos
        word = reader.keyword()
        if word != "LAZY":
            reader.pos = start
            raise reader.error(f"Unknown PREVIEW modifier {word}")
        return word

    return mod


def _section(reader: Reader) -> Section:
    """``"[" [section-spec] "]"`` (RFC 9051 §9)."""
    reader.expect(b"[")
    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()
    if reader.peek().isdigit():
        part = tuple(int(n) for n in reader.match(_PART, "a part number").group().split(b"."))
        if reader.try_char(b"."):
            text = reader.word(_SECTION_TEXT, "HEADER, HEADER.FIELDS, TEXT or MIME")
    elif reader.peek() != b"]":
        text = reader.word(_SECTION_TEXT, "HEADER, HEADER.FIELDS or TEXT")
        if text == "MIME":
            raise reader.error("MIME needs a part number")
    if text is not None and text.startswith("HEADER.FIELDS"):
        reader.sp()
        fields = tuple(reader.paren_list(lambda: _field_name(reader)))
    reader.expect(b"]")
    return Section(part, text, fields)


def _field_name(reader: Reader) -> str:
    start = reader.pos
    name = reader.astring().decode("ascii", "replace")
    if not _FIELD_NAME.fullmatch(name):
        reader.pos = start
        raise reader.error("Invalid header field name")
    return name.upper()


def _binary_section(reader: Reader) -> tuple[int, ...]:
    """``"[" [section-part] "]"`` (RFC 3516 §4.1)."""
    reader.expect(b"[")
    part: tuple[int, ...] = ()
    if reader.peek() != b"]":
        part = tuple(int(n) for n in reader.match(_PART, "a part number").group().split(b"."))
    reader.expect(b"]")
    return part


def _partial(reader: Reader) -> tuple[int, int] | None:
    """``"<" number64 "." nz-number64 ">"``, if there."""
    if not reader.try_char(b"<"):
        return None
    origin = reader.number(MAX_NUMBER64)
    reader.expect(b".")
    length = reader.nz_number(MAX_NUMBER64)
    reader.expect(b">")
    return origin, length


def parse_fetch_items_text(text: str | bytes) -> tuple[FetchItem, ...]:
    """Fetch items from text without literals (tests and tools); raises ParseError."""
    reader = Reader.from_line(text.encode() if isinstance(text, str) else text)
    items = parse_fetch_items(reader)
    if not reader.at_end():
        raise ParseError(reader.pos, "Unexpected extra arguments")
    return items
