"""Match types and comparators: RFC 5228 §2.7, RFC 4790 §9, RFC 5231 (relational).

- Comparators: i;octet (code points, i.e. UTF-8 octet order), i;ascii-casemap (A-Z folded to
  a-z, nothing else), i;ascii-numeric (the leading digits as a number; a string without one is
  positive infinity, equal only to another such string; RFC 4790 §9.1.1).
- `:matches` is a glob with "*" (any run), "?" (one character) and "\\" escapes. `glob_match`
  is linear in practice and never exponential: the pattern is cut at its stars into segments;
  the first is anchored at the start, the last at the end, and each middle one is found at its
  leftmost place (which is always safe for globs, so nothing is ever retried). The captured
  text of every wildcard is returned for the RFC 5229 match variables: stars take as little as
  possible, left to right, the last one the rest.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache

from postoffice.filtering.sieve.validator import Match

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_LEADING_DIGITS = re.compile(r"[0-9]+")


def ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def numeric_value(text: str) -> int | None:
    """i;ascii-numeric: the value of the leading digits, None (infinity) without any."""
    m = _LEADING_DIGITS.match(text)
    return int(m.group()) if m else None


def _fold(text: str, comparator: str) -> str:
    return ascii_lower(text) if comparator == "i;ascii-casemap" else text


def _order(a: str, b: str, comparator: str) -> int:
    """-1, 0 or 1 as a sorts before, with or after b under the comparator."""
    if comparator == "i;ascii-numeric":
        x, y = numeric_value(a), numeric_value(b)
        if x == y:
            return 0
        if x is None:
            return 1
        if y is None:
            return -1
        return -1 if x < y else 1
    a, b = _fold(a, comparator), _fold(b, comparator)
    return (a > b) - (a < b)


_RELATION = {
    "gt": lambda c: c > 0, "ge": lambda c: c >= 0, "lt": lambda c: c < 0,
    "le": lambda c: c <= 0, "eq": lambda c: c == 0, "ne": lambda c: c != 0,
}


Segment = tuple[str | None, ...]


@lru_cache(maxsize=512)
def _segments(pattern: str) -> tuple[Segment, ...]:
    """The pattern cut at stars: segments of items (a literal char, or None for '?')."""
    segments: list[list[str | None]] = [[]]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            segments[-1].append(pattern[i + 1])
            i += 2
            continue
        if ch == "*":
            segments.append([])
        elif ch == "?":
            segments[-1].append(None)
        else:
            segments[-1].append(ch)
        i += 1
    return tuple(tuple(s) for s in segments)


def _fits(text: str, pos: int, segment: Segment) -> bool:
    return all(not (item is not None and text[pos + k] != item) for k, item in enumerate(segment))


_CHECK_EVERY = 16384  # characters compared in place between two looks at the CPU deadline


def _find(text: str, segment: Segment, start: int, end: int, check: Callable[[], None] | None = None) -> int:
    """Leftmost position in [start, end - len] where segment fits, or -1.

    A segment with "?" is looked up by its longest literal run (str.find), then checked in
    place; a segment of "?" only fits wherever there is room. Checking in place costs up to
    the segment's length at every hit of the run ("a?a?...b" in "aaaa..."), so `check` (the
    run's CPU deadline) is called as that work adds up.
    """
    n = len(segment)
    if start + n > end:
        return -1  # (also keeps the find bounds below from going negative)
    if None not in segment:
        return text.find("".join(segment), start, end)  # type: ignore[arg-type]
    runs: list[tuple[int, int]] = []  # (offset, length) of literal runs
    k = 0
    while k < n:
        if segment[k] is None:
            k += 1
            continue
        j = k
        while j < n and segment[j] is not None:
            j += 1
        runs.append((k, j - k))
        k = j
    if not runs:
        return start
    offset, length = max(runs, key=lambda r: r[1])
    literal = "".join(segment[offset : offset + length])  # type: ignore[arg-type]
    hit = text.find(literal, start + offset, end - (n - offset - length))
    work = 0
    while hit >= 0:
        pos = hit - offset
        if _fits(text, pos, segment):
            return pos
        work += n
        if check is not None and work >= _CHECK_EVERY:
            check()
            work = 0
        hit = text.find(literal, hit + 1, end - (n - offset - length))
    return -1


def glob_match(pattern: str, text: str, casemap: bool, check: Callable[[], None] | None = None) -> list[str] | None:
    """Captures (whole text first, then one per wildcard) if `text` matches, else None.
    `check` is the run's CPU deadline (see `_find`)."""
    segs = _segments(ascii_lower(pattern) if casemap else pattern)
    subject = ascii_lower(text) if casemap else text
    first, last = segs[0], segs[-1]
    captures: list[str] = [text]
    if len(segs) == 1:
        if len(first) != len(subject) or not _fits(subject, 0, first):
            return None
        captures.extend(text[k] for k, item in enumerate(first) if item is None)
        return captures
    if len(first) + len(last) > len(subject) or not _fits(subject, 0, first):
        return None
    tail = len(subject) - len(last)
    if not _fits(subject, tail, last):
        return None
    captures.extend(text[k] for k, item in enumerate(first) if item is None)
    pos = len(first)
    for seg in segs[1:-1]:
        found = _find(subject, seg, pos, tail, check)
        if found < 0:
            return None
        captures.append(text[pos:found])
        captures.extend(text[found + k] for k, item in enumerate(seg) if item is None)
        pos = found + len(seg)
    captures.append(text[pos:tail])
    captures.extend(text[tail + k] for k, item in enumerate(last) if item is None)
    return captures


def compare(match: Match, value: str, key: str) -> bool:
    """One value against one key (RFC 5228 §2.7.1); :count is handled by `test_values`."""
    kind, comparator = match.kind, match.comparator
    if kind == ":is":
        if comparator == "i;ascii-numeric":
            return _order(value, key, comparator) == 0
        return _fold(value, comparator) == _fold(key, comparator)
    if kind == ":contains":
        return _fold(key, comparator) in _fold(value, comparator)
    if kind == ":matches":
        return glob_match(key, value, comparator == "i;ascii-casemap") is not None
    assert match.relation is not None
    return bool(_RELATION[match.relation](_order(value, key, comparator)))


def test_values(match: Match, values: Iterable[str], keys: Iterable[str],
                check: Callable[[], None] | None = None) -> tuple[bool, list[str] | None]:
    """True when any value matches any key; with :matches also the winning captures.

    For :count (RFC 5231 §4.1) the number of values is compared with each key. `check` is
    called every 64 comparisons (the run's CPU deadline): one test may compare a long value
    with thousands of keys.
    """
    if match.kind == ":count":
        count = str(sum(1 for _ in values))
        return any(compare(Match(":value", match.comparator, match.relation), count, k) for k in keys), None
    keys = list(keys)
    n = 0
    if match.kind == ":matches":
        casemap = match.comparator == "i;ascii-casemap"
        for value in values:
            for key in keys:
                n += 1
                if check is not None and n & 63 == 0:
                    check()
                captures = glob_match(key, value, casemap, check)
                if captures is not None:
                    return True, captures
        return False, None
    if match.comparator == "i;ascii-casemap" and match.kind in (":is", ":contains"):
        is_ = match.kind == ":is"  # each value and key folded once, not once per comparison
        folded = [ascii_lower(k) for k in keys]
        for value in values:
            subject = ascii_lower(value)
            for key in folded:
                n += 1
                if check is not None and n & 63 == 0:
                    check()
                if (subject == key) if is_ else (key in subject):
                    return True, None
        return False, None
    for value in values:
        for key in keys:
            n += 1
            if check is not None and n & 63 == 0:
                check()
            if compare(match, value, key):
                return True, None
    return False, None
