"""Reading what changed in a mailbox since a mod-sequence (RFC 7162 CONDSTORE/QRESYNC); no I/O.

>>> resync = resync_from(untagged, malformed, known_through=500)   # after SELECT (QRESYNC ...)
>>> resync.vanished, [c.uid for c in resync.changed], resync.problem
((1, 3), (7, 7)), [12, 40], None
>>> flag_change(fetch_response)     # * 4 FETCH (UID 12 FLAGS (\\Seen) MODSEQ (90))
FlagChange(uid=12, flags=frozenset({'\\\\Seen'}), modseq=90, labels=())

Implementation notes:

- ``* VANISHED (EARLIER) 1:3,7`` (RFC 7162 §3.2.10) is kept as ranges clipped to the UIDs the
  caller knows (``known_through``), never expanded: a server that sends ``1:4294967295``
  costs one range, not four billion integers.
- Anything that does not read as the RFC says (a ``*`` or a zero in a VANISHED set, a FETCH
  without UID or FLAGS, a response the parser could not tokenise) makes ``problem`` a plain
  sentence; the caller then trusts none of it and asks again the slow way (CHANGEDSINCE), since
  a change it misses would never be carried.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from postoffice.transfer.imap_client_proto import (
    Atom,
    Malformed,
    Untagged,
    Value,
    as_int,
    as_text,
    fetch_attributes,
)
from postoffice.transfer.imap_client_records import flag_set, gm_label

__all__ = [
    "FlagChange",
    "Resync",
    "flag_change",
    "parse_vanished",
    "resync_from",
    "uid_ranges",
    "uids_in",
]

MAX_UID = 2**32 - 1  # RFC 9051 nz-number
_RANGE = re.compile(r"([0-9]+)(?::([0-9]+))?")


@dataclass(frozen=True, slots=True)
class FlagChange:
    """A message's flags now, from ``FETCH (UID FLAGS MODSEQ)``; Gmail labels when asked for."""

    uid: int
    flags: frozenset[str]
    modseq: int | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Resync:
    """What ``SELECT (QRESYNC ...)`` said: UIDs expunged (as ranges) and flags changed since the
    client's mod-sequence. ``problem``: a response did not parse; use none of this."""

    vanished: tuple[tuple[int, int], ...] = ()
    changed: tuple[FlagChange, ...] = ()
    problem: str | None = None


def parse_vanished(values: Sequence[Value], *, known_through: int) -> tuple[bool, list[tuple[int, int]]]:
    """``(EARLIER) 1:3,7`` -> (True, [(1, 3), (7, 7)]): the EARLIER tag and the UID ranges,
    each clipped to 1..known_through (ranges past it are dropped). ValueError when the values
    are not an optional ``(EARLIER)`` then a UID set of numbers (RFC 7162 §3.2.10)."""
    earlier = False
    rest = list(values)
    if rest and isinstance(rest[0], list):
        tag = rest.pop(0)
        if not isinstance(tag, list) or [as_text(v).upper() for v in tag] != ["EARLIER"]:
            raise ValueError(f"VANISHED with an unknown tag {tag!r}")
        earlier = True
    if len(rest) != 1 or not isinstance(rest[0], Atom):
        raise ValueError("VANISHED without one UID set")
    ranges: list[tuple[int, int]] = []
    for part in rest[0].split(","):
        m = _RANGE.fullmatch(part)
        if m is None:
            raise ValueError(f"VANISHED with {part!r} in its UID set")
        first, last = int(m[1]), int(m[2] or m[1])
        low, high = min(first, last), max(first, last)  # RFC 9051 §9: n:m or m:n alike
        if low < 1 or high > MAX_UID:
            raise ValueError(f"VANISHED with a UID out of range in {part!r}")
        if low <= known_through:
            ranges.append((low, min(high, known_through)))
    return earlier, ranges


def flag_change(response: Untagged, *, labels: bool = False) -> FlagChange:
    """One ``* n FETCH (UID u FLAGS (...) [MODSEQ (m)])``; ValueError without UID or FLAGS
    (with QRESYNC every FETCH carries UID, RFC 7162 §3.2.4)."""
    attrs = fetch_attributes(response.values)
    if "UID" not in attrs or "FLAGS" not in attrs:
        raise ValueError("a FETCH response without UID or FLAGS")
    uid = as_int(attrs["UID"])
    # \Recent is session state, not a flag a copy carries (as for the first fetch).
    flags = frozenset(f for f in flag_set(attrs["FLAGS"]) if f.upper() != "\\RECENT")
    modseq = None
    value = attrs.get("MODSEQ")
    if value is not None:
        if not isinstance(value, list) or len(value) != 1:
            raise ValueError(f"a MODSEQ that is not one number: {value!r}")
        modseq = as_int(value[0])
    found: tuple[str, ...] = ()
    if labels:
        listed = attrs.get("X-GM-LABELS")
        if not isinstance(listed, list):
            raise ValueError("a Gmail FETCH response without X-GM-LABELS")
        found = tuple(gm_label(v) for v in listed if isinstance(v, Atom | bytes))
    return FlagChange(uid, flags, modseq, found)


def resync_from(
    untagged: Iterable[Untagged], malformed: Iterable[Malformed], *, known_through: int
) -> Resync:
    """The VANISHED (EARLIER) and FETCH responses among a SELECT's untagged responses."""
    for bad in malformed:
        if bad.kind in ("VANISHED", "FETCH"):
            return Resync(problem=f"the server sent a malformed {bad.kind} response ({bad.reason})")
    vanished: list[tuple[int, int]] = []
    changed: list[FlagChange] = []
    for response in untagged:
        try:
            if response.kind == "VANISHED":
                _, ranges = parse_vanished(response.values, known_through=known_through)
                vanished += ranges
            elif response.kind == "FETCH":
                changed.append(flag_change(response))
        except ValueError as exc:
            return Resync(problem=f"the server's {response.kind} response to SELECT (QRESYNC) does not parse ({exc})")
    return Resync(tuple(vanished), tuple(changed))


def uids_in(ranges: Iterable[tuple[int, int]], uids: Iterable[int]) -> set[int]:
    """The members of ``uids`` inside any of ``ranges`` (a range is never expanded)."""
    ordered = sorted(uids)
    found: set[int] = set()
    for low, high in ranges:
        found.update(ordered[bisect.bisect_left(ordered, low) : bisect.bisect_right(ordered, high)])
    return found


def uid_ranges(uids: Iterable[int], per_range: int = 2000) -> list[tuple[int, int]]:
    """Sorted ``uids`` cut into ranges of at most ``per_range`` members each, as ``(first,
    last)``: one short ``first:last`` per command however sparse the UIDs are, and a bounded
    answer (at most ``per_range`` FETCH responses) to each."""
    ordered = sorted(uids)
    return [
        (ordered[i], ordered[min(i + per_range, len(ordered)) - 1])
        for i in range(0, len(ordered), per_range)
    ]
