"""Strings with variable references (RFC 5229 §3) and encoded characters (RFC 5228 §2.4.2.4).

At compile time a string that mentions "${" becomes a `Template` (literal parts and variable
names); every other string stays a plain `str`, so the interpreter pays nothing for scripts
without variables. `expand(value, lookup)` returns the text.

- Variable names are case-insensitive: `identifier ("." identifier)*` (a namespace such as
  "global." from RFC 6609), or a number for the match variables ${0}..${9}.
- A reference that is not well-formed is kept literally (RFC 5229 §3: "${foo" is just text).
- "${hex:41 42}" and "${unicode:263a}" are decoded when "encoded-character" is required; an
  invalid sequence stays literal, as the RFC says.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|[0-9]+)\}")
_ENCODED = re.compile(r"\$\{(hex|unicode)\s*:\s*([0-9A-Fa-f \t\r\n]*)\}", re.IGNORECASE)
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


@dataclass(frozen=True, slots=True)
class Template:
    """Literal text (str) and variable names (`Ref`) in order."""

    parts: tuple[str | Ref, ...]
    source: str


@dataclass(frozen=True, slots=True)
class Ref:
    name: str  # lowercase; digits for a match variable


Text = str | Template


class Varying(tuple):  # type: ignore[type-arg]
    """A string list holding at least one Template; a constant list stays a plain tuple, so the
    interpreter can use it as it is."""


class BadEncodedCharacter(ValueError):
    """RFC 5228 §2.4.2.4: a code point out of range, or octets that are not UTF-8."""


def _decode_one(match: re.Match[str]) -> str:
    kind, digits = match.group(1).lower(), match.group(2).split()
    if not digits:
        return match.group(0)  # "${hex:}" is not an encoded character: kept as written
    if kind == "hex":
        if any(len(d) > 2 for d in digits):
            return match.group(0)  # hex-pair is 1*2HEXDIG
        try:
            return bytes(int(d, 16) for d in digits).decode("utf-8")
        except UnicodeDecodeError:
            raise BadEncodedCharacter(f"{match.group(0)!r} is not valid UTF-8") from None
    points = [int(d, 16) for d in digits]
    bad = next((p for p in points if p > 0x10FFFF or 0xD800 <= p <= 0xDFFF), None)
    if bad is not None:
        raise BadEncodedCharacter(f"{match.group(0)!r}: U+{bad:04X} is not a Unicode character")
    return "".join(chr(p) for p in points)


def decode_encoded(text: str) -> str:
    """Replace ${hex:..} and ${unicode:..} sequences (RFC 5228 §2.4.2.4).

    Raises BadEncodedCharacter for the errors the RFC names (the script must not compile).
    """
    return _ENCODED.sub(_decode_one, text) if "${" in text else text


def compile_text(text: str, variables: bool) -> Text:
    """A plain str, or a Template when `variables` is on and the text references one."""
    if not variables or "${" not in text:
        return text
    parts: list[str | Ref] = []
    pos = 0
    for m in _REFERENCE.finditer(text):
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        name = m.group(1).lower()
        parts.append(Ref(str(int(name)) if name.isdigit() else name))
        pos = m.end()
    if not parts:
        return text
    if pos < len(text):
        parts.append(text[pos:])
    return Template(tuple(parts), text)


class ExpansionTooLong(Exception):
    """An expanded string would pass the run's limit (many references to a long variable)."""


def expand(value: Text, lookup: Callable[[str], str], limit: int = 1 << 20) -> str:
    """The text of `value` with each variable replaced by lookup(name) ("" when unset).

    Raises ExpansionTooLong before building a string longer than `limit` characters: a script
    of 400 KB of "${a}" with `a` at its 4 KB cap would otherwise build 400 MB.
    """
    if type(value) is str:
        return value
    assert isinstance(value, Template)
    pieces = [p if type(p) is str else lookup(p.name) for p in value.parts]  # type: ignore[union-attr]
    if sum(map(len, pieces)) > limit:
        raise ExpansionTooLong(limit)
    return "".join(pieces)


def source_of(value: Text) -> str:
    return value if isinstance(value, str) else value.source


def is_constant(value: Text) -> bool:
    return isinstance(value, str)
