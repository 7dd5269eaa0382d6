"""Sequence sets: ``1:*,5,7:9``, ``*`` and ``$`` (RFC 9051 §9 ``sequence-set``, RFC 5182 SEARCHRES).

:func:`parse_sequence_set` reads the client's text into a :class:`SequenceSet`;
:meth:`SequenceSet.resolve` turns it into sorted, merged ranges once the largest number in use is
known; :func:`compress` writes sorted numbers back compactly for responses (COPYUID, APPENDUID,
ESEARCH ALL, VANISHED).

Implementation notes:

- ``*`` is kept as ``None`` until :meth:`~SequenceSet.resolve`, because what it means depends on
  the mailbox at the time the command runs (RFC 9051 §9: "the largest number in use"). A range
  may be written backwards (``4:2`` is ``2:4``), and ``n:*`` with ``n`` above the largest number
  is ``largest:n`` (§6.4.8: "UID range of 559:* always includes the UID of the last message").
- Ranges are not clipped: for message sequence numbers, numbers above the mailbox size are the
  client's error (the caller answers BAD: the rules for EXPUNGE keep a compliant client from
  naming a message that does not exist), for UIDs they are simply absent.
- A set is never expanded into its numbers: ``1:4294967295`` is one range, and a mailbox of 11
  messages must not cost 4 billion steps (the 24 GB that took every protocol down, issue 12).
  :meth:`~SequenceSet.members` intersects the resolved ranges with the numbers actually in use,
  :meth:`~SequenceSet.contains` bisects them, :meth:`~SequenceSet.max_number` reads the last:
  the work follows the number of ranges and of messages, never the width of a range. The number
  of ranges is bounded by the command's length (``tokens.MAX_SEQUENCE_RANGES`` for the whole
  command, whatever literals it spans).
- ``$`` (RFC 5182) is the result saved by an earlier ``SEARCH RETURN (SAVE)``; it stands alone and
  only the session can resolve it, so :meth:`~SequenceSet.resolve` refuses it.
- Numbers are ``nz-number``: 1 to 4294967295 (RFC 9051 §9).
- The resolution is cached per ``largest``, so a loop over a mailbox costs one resolve.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "MAX_NUMBER",
    "SequenceSet",
    "SequenceSetError",
    "compact_set",
    "compress",
    "ordered_set",
    "parse_sequence_set",
]

MAX_NUMBER = 4294967295  # nz-number: 32 bits (RFC 9051 §9)

_SET = re.compile(
    r"(?:[1-9][0-9]{0,9}|\*)(?::(?:[1-9][0-9]{0,9}|\*))?"
    r"(?:,(?:[1-9][0-9]{0,9}|\*)(?::(?:[1-9][0-9]{0,9}|\*))?)*"
)


class SequenceSetError(ValueError):
    """The text is not a sequence set."""


Bound = int | None  # None is "*"


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """A parsed sequence set: ``ranges`` as written (``None`` is ``*``), or the saved result ``$``."""

    ranges: tuple[tuple[Bound, Bound], ...] = ()
    saved: bool = False  # "$": the result of the last SEARCH RETURN (SAVE) (RFC 5182)
    _cache: list[object] = field(
        default_factory=list, init=False, compare=False, repr=False, hash=False
    )

    @classmethod
    def parse(cls, text: str | bytes) -> SequenceSet:
        return parse_sequence_set(text)

    @classmethod
    def of(cls, numbers: Iterable[int]) -> SequenceSet:
        """The set of the given numbers (for building responses, ``$`` and tests); may be empty."""
        text = compress(sorted(set(numbers)))
        return parse_sequence_set(text) if text else cls()

    @property
    def uses_star(self) -> bool:
        return any(lo is None or hi is None for lo, hi in self.ranges)

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Sorted, merged, inclusive ``(first, last)`` ranges, ``*`` meaning ``largest``.

        ``largest`` is the number of messages (sequence numbers) or the highest UID (UIDs); with
        an empty mailbox it is 0 and a range with ``*`` (``1:*`` too) stands for nothing.
        """
        if self.saved:
            raise ValueError("$ is the saved search result: the session must substitute it")
        cache = self._cache
        if cache and cache[0] == largest:
            return cache[1]  # type: ignore[return-value]
        spans: list[tuple[int, int]] = []
        for lo, hi in self.ranges:
            if largest < 1 and (lo is None or hi is None):
                continue  # "*" in an empty mailbox names nothing
            a = largest if lo is None else lo
            b = largest if hi is None else hi
            spans.append((a, b) if a <= b else (b, a))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1] + 1:
                if b > merged[-1][1]:
                    merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        cache[:] = [largest, merged]
        return merged

    def contains(self, number: int, largest: int) -> bool:
        """Whether ``number`` is in the set, ``*`` meaning ``largest``."""
        ranges = self.resolve(largest)
        i = bisect_right(ranges, (number, MAX_NUMBER + 1)) - 1
        return i >= 0 and ranges[i][0] <= number <= ranges[i][1]

    def members(self, available: Sequence[int], largest: int) -> list[int]:
        """The numbers of ``available`` (ascending, e.g. a mailbox's UIDs or ``range(1, n + 1)``)
        that the set names, ascending, ``*`` meaning ``largest``.

        Two bisections per resolved range, then a slice: the cost follows the number of ranges
        and of the numbers returned, never the width of a range (``1:4294967295``).
        """
        found: list[int] = []
        start = 0
        end = len(available)
        for a, b in self.resolve(largest):
            start = bisect_left(available, a, start, end)
            if start == end:
                break
            stop = bisect_right(available, b, start, end)
            found.extend(available[start:stop])
            start = stop
        return found

    def max_number(self, largest: int) -> int:
        """The highest number the set names (0 if none): a sequence set above the mailbox size is BAD."""
        ranges = self.resolve(largest)
        return ranges[-1][1] if ranges else 0

    def to_string(self) -> str:
        """The set written compactly, ``*`` kept: ``1:*,5``."""
        if self.saved:
            return "$"
        parts = []
        for lo, hi in self.ranges:
            a = "*" if lo is None else str(lo)
            parts.append(a if lo == hi else f"{a}:{'*' if hi is None else hi}")
        return ",".join(parts)

    def __str__(self) -> str:
        return self.to_string()


SAVED_RESULT = SequenceSet(saved=True)


def parse_sequence_set(text: str | bytes) -> SequenceSet:
    """``"1:*,5"`` -> SequenceSet(((1, None), (5, 5))); ``"$"`` -> the saved result."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise SequenceSetError("not a sequence set") from None
    if text == "$":
        return SAVED_RESULT
    if not _SET.fullmatch(text):
        raise SequenceSetError(f"not a sequence set: {text[:40]!r}")
    ranges: list[tuple[Bound, Bound]] = []
    for item in text.split(","):
        first, _, last = item.partition(":")
        lo = None if first == "*" else int(first)
        hi = lo if not last else None if last == "*" else int(last)
        if (lo is not None and lo > MAX_NUMBER) or (hi is not None and hi > MAX_NUMBER):
            raise SequenceSetError(f"number out of range in {text[:40]!r}")
        ranges.append((lo, hi))
    return SequenceSet(tuple(ranges))


def compress(numbers: Iterable[int]) -> str:
    """Sorted numbers written as a sequence set: ``[1, 2, 3, 5, 7, 8]`` -> ``"1:3,5,7:8"``.

    Duplicates are tolerated; the numbers must be ascending. Empty input gives ``""``.
    """
    parts: list[str] = []
    append = parts.append
    start = prev = -2
    for n in numbers:
        if n == prev + 1 or n == prev:
            prev = n
            continue
        if start >= 0:
            append(f"{start}:{prev}" if start != prev else str(start))
        start = prev = n
    if start >= 0:
        append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(parts)


def compact_set(numbers: Iterable[int]) -> str:
    """Numbers in any order, duplicates allowed, as a sequence set: ``{9, 1, 2, 3, 5, 8, 7}``
    -> ``"1:3,5,7:9"``. Empty input gives ``""``."""
    return compress(sorted(set(numbers)))


def ordered_set(numbers: Iterable[int]) -> str:
    """Numbers in a meaningful order (a SORT result) as a sequence set that keeps it: only
    ascending runs become ranges, ``[5, 6, 7, 3, 2]`` -> ``"5:7,3,2"`` (RFC 5267 §3, §4.3).

    A range ``3:2`` would be the set {2, 3} and say nothing about order (RFC 9051 §9), so a
    descending run is written number by number.
    """
    parts: list[str] = []
    append = parts.append
    start = prev = -2
    for n in numbers:
        if n == prev + 1:
            prev = n
            continue
        if start >= 0:
            append(f"{start}:{prev}" if start != prev else str(start))
        start = prev = n
    if start >= 0:
        append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(parts)
