"""Sieve tokens (RFC 5228 §8.1): identifiers, tags, numbers, strings, punctuation.

`tokenize(text)` returns the whole token list, each with its 1-based line and column, or raises
`SieveError` at the first character it cannot read. Rules it enforces:

- Numbers take an optional K/M/G quantifier (×2^10, 2^20, 2^30; case-insensitive, as ABNF is)
  and must fit in 63 bits.
- Quoted strings: `\\"` and `\\\\` are escapes; any other backslash is dropped (§2.4.2). A line
  break inside a string is CRLF (§2.2), also when the script was saved with bare LFs.
- `text:` multi-line strings run to a line holding only "."; a line starting with ".." loses one
  dot (dot-stuffing, §2.4.2). A bare LF is read as a line break, as CRLF.
- Comments: "#" to the end of the line, "/* ... */" (not nested; an unclosed one is an error).
- The text is Unicode already; lone surrogates (bad UTF-8 read with surrogateescape) and NUL
  are refused with their position (§2.4.2.4: strings are UTF-8).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from postoffice.filtering.sieve.errors import SieveError

IDENT, TAG, NUMBER, STRING, PUNCT, EOF = "identifier", "tag", "number", "string", "punct", "eof"

_QUANTIFIER = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_MAX_NUMBER = (1 << 63) - 1

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<hash>\#[^\n]*)
  | (?P<bracket>/\*)
  | (?P<multiline>text:[ \t]*(?:\#[^\n]*)?\r?\n)
  | (?P<badtext>text:[ \t]*)(?=[^ \t\r\n\#])
  | (?P<tag>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>[0-9]+(?P<q>[KkMmGg]?))
  | (?P<quoted>")
  | (?P<punct>[;,()\[\]{}])
    """,
    re.VERBOSE,
)
_QUOTED_BODY = re.compile(r'(?:[^"\\]|\\.)*"', re.DOTALL)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_BARE_LF = re.compile(r"(?<!\r)\n")
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    value: str | int
    line: int
    column: int


class _Position:
    """Line and column of an offset, computed from a sorted list of line starts."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def at(self, offset: int) -> tuple[int, int]:
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, offset - self.starts[lo] + 1


def _check_text(text: str, where: _Position) -> None:
    bad = _BAD_CHAR.search(text)
    if bad is not None:
        line, column = where.at(bad.start())
        what = "a NUL character" if bad.group() == "\x00" else "invalid UTF-8"
        raise SieveError(line, column, f"{what} in the script")


def _multiline(text: str, pos: int, where: _Position, start: int) -> tuple[str, int]:
    """The body of a text: string from `pos` (after its first line break) to the "." line."""
    lines: list[str] = []
    while True:
        end = text.find("\n", pos)
        if end < 0:
            line, column = where.at(start)
            raise SieveError(line, column, "multi-line string (text:) not ended by a line with a single '.'")
        raw = text[pos:end]
        if raw.endswith("\r"):
            raw = raw[:-1]
        pos = end + 1
        if raw == ".":
            return "".join(lines), pos
        if raw.startswith(".."):
            raw = raw[1:]  # dot-stuffing, RFC 5228 §2.4.2
        lines.append(raw + "\r\n")


def tokenize(text: str) -> list[Token]:
    """Every token of `text`, ending with one EOF token; raises SieveError on bad input."""
    where = _Position(text)
    _check_text(text, where)
    tokens: list[Token] = []
    pos, size = 0, len(text)
    match = _TOKEN.match
    while pos < size:
        m = match(text, pos)
        if m is None:
            line, column = where.at(pos)
            raise SieveError(line, column, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup
        start, pos = pos, m.end()
        if kind == "ws" or kind == "hash":
            continue
        if kind == "bracket":
            end = text.find("*/", pos)
            if end < 0:
                line, column = where.at(start)
                raise SieveError(line, column, "comment (/*) not closed by */")
            pos = end + 2
            continue
        line, column = where.at(start)
        if kind == "badtext":
            line, column = where.at(pos)
            raise SieveError(line, column, f"unexpected {text[pos]!r} after text: (the string starts on the next line)")
        if kind == "multiline":
            value, pos = _multiline(text, pos, where, start)
            tokens.append(Token(STRING, value, line, column))
        elif kind == "quoted":
            body = _QUOTED_BODY.match(text, pos)
            if body is None:
                raise SieveError(line, column, "string not closed by a double quote")
            pos = body.end()
            raw = text[start + 1 : pos - 1]
            if "\n" in raw:  # line breaks in strings are CRLF, however the script was saved
                raw = _BARE_LF.sub("\r\n", raw)
            tokens.append(Token(STRING, _UNESCAPE.sub(r"\1", raw) if "\\" in raw else raw, line, column))
        elif kind == "number":
            digits = m.group("number")
            quantifier = m.group("q")
            number = int(digits[: len(digits) - len(quantifier)]) * _QUANTIFIER[quantifier.lower()]
            if number > _MAX_NUMBER:
                raise SieveError(line, column, f"number {digits} is too large")
            tokens.append(Token(NUMBER, number, line, column))
        elif kind == "tag":
            tokens.append(Token(TAG, m.group().lower(), line, column))
        elif kind == "ident":
            tokens.append(Token(IDENT, m.group().lower(), line, column))
        else:
            tokens.append(Token(PUNCT, m.group(), line, column))
    line, column = where.at(size)
    tokens.append(Token(EOF, "", line, column))
    return tokens
