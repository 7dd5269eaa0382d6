"""LIST/LSUB mailbox patterns (RFC 9051 §6.3.9, RFC 5258 §3): match names in linear time.

    pattern = ListPattern.compile("", ["INBOX", "Archive/%"])
    pattern.matches("Archive/2024")          # True
    pattern.matches("Archive/2024/Q1")       # False: % stops at the delimiter
    pattern.matching_superiors("a/b/c")      # ["a", "a/b"] for a pattern that matches those

Implementation notes:

- ``*`` matches any text and ``%`` any text without the hierarchy delimiter. Turned into a
  backtracking regular expression (``.*``, ``[^/]*``) a pattern such as ``%%%%%%%%%%!`` costs
  time exponential in its wildcards: one such LIST against a 40-character name held the event
  loop for 30 s. Here a pattern is a small NFA run as a bit set (one bit per pattern position,
  Python integers as the bit vector), so one name costs O(len(name)) steps of a few integer
  operations, whatever the pattern holds.
- A run of wildcards is collapsed first (any ``*`` in the run makes it ``*``, else ``%``): they
  match the same names, and then one shift is the whole epsilon closure of a wildcard.
- Several patterns (LIST-EXTENDED's pattern list) are one NFA side by side, so a command with many
  patterns still reads each name once.
- INBOX is case-insensitive (RFC 9051 §5.1): when a pattern starts with those five letters in any
  case, its first five positions match either case (names under INBOX are stored as ``INBOX/``).
- A name can only match a pattern that it starts with the literal prefix of; that check, done by
  ``str.startswith``, skips the per-character loop for most names.
- The patterns of one command are at most ``MAX_PATTERN_LENGTH`` characters together (with the
  reference each time): a step costs time in proportion to the bit set's size, and no name is
  longer than 1,000 octets (`store.mailbox_names`). ``weight`` tells a caller sharing the event
  loop how many plain characters one character of a name costs against these patterns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DELIMITER", "MAX_PATTERN_LENGTH", "ListPattern", "PatternTooLong", "full_pattern"]

DELIMITER = "/"
MAX_PATTERN_LENGTH = 16_384
_BITS_PER_WEIGHT = 2048
_WILDCARDS = "*%"
_INBOX = "INBOX"


class PatternTooLong(ValueError):
    """The patterns are longer than ``MAX_PATTERN_LENGTH`` together."""


def full_pattern(reference: str, pattern: str) -> str:
    """The reference and pattern as one pattern (RFC 9051 §6.3.9: a pattern that starts with
    the delimiter is taken as it is, like an absolute name)."""
    return pattern if pattern.startswith(DELIMITER) else reference + pattern


def _collapse(pattern: str) -> str:
    """``a%*%b**c`` -> ``a*b*c``: every run of wildcards as one wildcard that matches the same."""
    out: list[str] = []
    run = ""
    for ch in pattern:
        if ch in _WILDCARDS:
            run += ch
            continue
        if run:
            out.append("*" if "*" in run else "%")
            run = ""
        out.append(ch)
    if run:
        out.append("*" if "*" in run else "%")
    return "".join(out)


def _literal_prefix(pattern: str) -> str:
    for i, ch in enumerate(pattern):
        if ch in _WILDCARDS:
            return pattern[:i]
    return pattern


@dataclass(frozen=True, slots=True)
class ListPattern:
    """One or more LIST patterns compiled to one bit-parallel NFA.

    Bit ``i`` set in a state means "the text so far matches the pattern up to position i".
    Each pattern of length n takes n + 1 bits: one per element and its accepting bit.
    """

    literals: dict[str, int]  # char -> positions holding a literal that matches it
    stars: int  # positions holding "*"
    percents: int  # positions holding "%"
    start: int  # the state before any character (with the epsilon closure applied)
    accept: int  # the accepting bit of each pattern
    prefixes: tuple[str, ...]  # literal prefixes of the case-sensitive patterns
    inbox_prefixes: tuple[str, ...]  # the same for patterns starting with INBOX (any case)
    match_all: bool  # some pattern is "*"
    weight: int  # the cost of one character of a name, in plain characters

    @classmethod
    def compile(cls, reference: str, patterns: Iterable[str]) -> ListPattern:
        """Raises :class:`PatternTooLong` past ``MAX_PATTERN_LENGTH``."""
        full = [full_pattern(reference, p) for p in patterns]
        if sum(map(len, full)) > MAX_PATTERN_LENGTH:
            raise PatternTooLong(f"LIST patterns can be at most {MAX_PATTERN_LENGTH} characters together")
        literals: dict[str, int] = {}
        stars = percents = start = accept = 0
        prefixes: list[str] = []
        inbox_prefixes: list[str] = []
        match_all = False
        base = 0
        for text in full:
            pattern = _collapse(text)
            match_all = match_all or pattern == "*"
            inbox = pattern[:5].upper() == _INBOX
            prefix = _literal_prefix(pattern)
            if inbox:
                inbox_prefixes.append(prefix[5:])
            else:
                prefixes.append(prefix)
            for i, ch in enumerate(pattern):
                bit = 1 << (base + i)
                if ch == "*":
                    stars |= bit
                elif ch == "%":
                    percents |= bit
                else:
                    for variant in {ch.upper(), ch.lower()} if inbox and i < 5 else {ch}:
                        literals[variant] = literals.get(variant, 0) | bit
            start |= 1 << base
            accept |= 1 << (base + len(pattern))
            base += len(pattern) + 1
        wild = stars | percents
        start |= (start & wild) << 1
        return cls(literals, stars, percents, start, accept, tuple(prefixes), tuple(inbox_prefixes), match_all,
                   1 + base // _BITS_PER_WEIGHT)

    def _may_match(self, name: str) -> bool:
        return name.startswith(self.prefixes) or (
            bool(self.inbox_prefixes) and name[:5].upper() == _INBOX and name[5:].startswith(self.inbox_prefixes))

    def _run(self, name: str, superiors: list[int] | None = None) -> int:
        """The state after reading `name`; with `superiors`, also the end of every superior
        name (before a delimiter) that the pattern matches."""
        literals, wild = self.literals, self.stars | self.percents
        keep_delimiter, keep_other = self.stars, wild
        state = self.start
        for i, ch in enumerate(name):
            if ch == DELIMITER:
                if superiors is not None and state & self.accept:
                    superiors.append(i)
                keep = keep_delimiter
            else:
                keep = keep_other
            state = ((state & literals.get(ch, 0)) << 1) | (state & keep)
            state |= (state & wild) << 1
            if not state:
                break
        return state

    def matches(self, name: str) -> bool:
        """Whether `name` matches any of the patterns."""
        if self.match_all:
            return True
        if not self._may_match(name):
            return False
        return bool(self._run(name) & self.accept)

    def matching_superiors(self, name: str) -> list[str]:
        """The superiors of `name` (``a``, ``a/b`` for ``a/b/c``) that match, shortest first."""
        if not self.match_all and not self._may_match(name):
            return []
        ends: list[int] = []
        self._run(name, ends)
        return [name[:end] for end in ends]
