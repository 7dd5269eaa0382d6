"""Sequence sets (RFC 9051 §9, RFC 5182): parsing, resolving *, membership, compact writing.

A set is intersected with the numbers in use, never expanded: the property tests compare that
against naive references (a per-number check, and sets expanded where they are small) on sets
with four-billion-wide ranges, ``*`` and backwards ranges, with a deadline per case.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_parser_proto import command, error

from postoffice.imap.proto.commands import Search
from postoffice.imap.proto.sequence_set import (
    MAX_NUMBER,
    SequenceSet,
    SequenceSetError,
    compress,
    parse_sequence_set,
)
from postoffice.imap.proto.tokens import MAX_SEQUENCE_RANGES


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("1", ((1, 1),)),
        ("*", ((None, None),)),
        ("1:*", ((1, None),)),
        ("*:3", ((None, 3),)),
        ("1:*,5,7:9", ((1, None), (5, 5), (7, 9))),
        ("4294967295", ((4294967295, 4294967295),)),
        ("9:2", ((9, 2),)),
    ],
)
def test_parse(text: str, ranges: tuple[tuple[int | None, int | None], ...]) -> None:
    parsed = parse_sequence_set(text)
    assert parsed == SequenceSet(ranges)
    assert parsed.to_string() == text
    assert parse_sequence_set(text.encode()) == parsed


def test_saved_result() -> None:
    saved = parse_sequence_set("$")
    assert saved.saved and saved.to_string() == "$"
    with pytest.raises(ValueError):
        saved.resolve(10)


@pytest.mark.parametrize(
    "text",
    ["", "0", "1:0", "01", ",", "1,", ",1", "1::2", "1:2:3", "a", "1 2", "$,1", "1,$", "$:1",
     "4294967296", "99999999999", "-1", "1.5", "**", "*:"],
)  # fmt: skip
def test_invalid(text: str) -> None:
    with pytest.raises(SequenceSetError):
        parse_sequence_set(text)


@pytest.mark.parametrize(
    ("text", "largest", "resolved"),
    [
        ("1:*", 5, [(1, 5)]),
        ("*", 5, [(5, 5)]),
        ("*:3", 5, [(3, 5)]),
        ("3:1", 5, [(1, 3)]),
        ("1:3,2:6,8,7", 10, [(1, 8)]),  # overlaps and neighbours merge
        ("5,1,3", 10, [(1, 1), (3, 3), (5, 5)]),
        ("10:*", 5, [(5, 10)]),  # n:* above the largest includes the largest
        ("1:*", 0, []),  # empty mailbox
        ("*", 0, []),
        ("2:*,3", 0, [(3, 3)]),
        ("7:9", 5, [(7, 9)]),  # not clipped
    ],
)
def test_resolve(text: str, largest: int, resolved: list[tuple[int, int]]) -> None:
    assert parse_sequence_set(text).resolve(largest) == resolved


def test_membership_and_members() -> None:
    s = parse_sequence_set("2:4,9,20:*")
    members = [n for n in range(1, 30) if s.contains(n, 25)]
    assert members == [2, 3, 4, 9, 20, 21, 22, 23, 24, 25]
    assert s.members(range(1, 26), 25) == members
    assert parse_sequence_set("3,8:12").members(range(1, 11), 10) == [3, 8, 9, 10]
    assert parse_sequence_set("3:6,40:*").members([2, 4, 7, 41, 900], 900) == [4, 41, 900]
    assert s.max_number(25) == 25
    assert parse_sequence_set("30:*").max_number(25) == 30


def test_resolution_follows_largest() -> None:
    s = parse_sequence_set("*")
    assert s.resolve(3) == [(3, 3)]
    assert s.resolve(4) == [(4, 4)]  # not stuck in the cache
    assert s.contains(4, 4) and not s.contains(3, 4)


@pytest.mark.parametrize(
    ("numbers", "text"),
    [
        ([], ""),
        ([1], "1"),
        ([1, 2, 3, 5, 7, 8], "1:3,5,7:8"),
        ([1, 1, 2, 2], "1:2"),
        ([4, 6, 8], "4,6,8"),
        ([4294967294, 4294967295], "4294967294:4294967295"),
    ],
)
def test_compress(numbers: list[int], text: str) -> None:
    assert compress(numbers) == text
    if numbers:
        assert SequenceSet.of(numbers).to_string() == text


@given(st.sets(st.integers(min_value=1, max_value=200), max_size=60))
def test_compress_then_resolve_gives_the_numbers_back(numbers: set[int]) -> None:
    ordered = sorted(numbers)
    text = compress(ordered)
    if not ordered:
        return
    assert parse_sequence_set(text).members(range(1, 201), 200) == ordered


def test_compress_is_fast_enough_for_a_big_mailbox() -> None:
    numbers = [n for n in range(1, 300_000) if n % 7]
    assert compress(numbers).startswith("1:6,8:13,")


# --- clamped, never expanded: against naive references --------------------------------------

Bound = int | None

# Small numbers meet the mailbox often; huge ones are the hostile widths (1:4294967295).
_bound = st.one_of(
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=1, max_value=MAX_NUMBER),
    st.sampled_from([MAX_NUMBER - 1, MAX_NUMBER]),
    st.none(),  # "*"
)
_range = st.tuples(_bound, _bound | st.just("single"))


def _text(ranges: list[tuple[Bound, Bound | str]]) -> str:
    def one(bound: Bound) -> str:
        return "*" if bound is None else str(bound)

    return ",".join(one(lo) if hi == "single" else f"{one(lo)}:{one(hi)}" for lo, hi in ranges)


def _spans(ranges: list[tuple[Bound, Bound | str]], largest: int) -> list[tuple[int, int]]:
    """The ranges as RFC 9051 §9 reads them: "*" is the largest number in use (none in an empty
    mailbox), a range written backwards is the same range."""
    spans = []
    for lo, hi in ranges:
        hi = lo if hi == "single" else hi
        assert not isinstance(hi, str)
        if largest == 0 and (lo is None or hi is None):
            continue
        a, b = (largest if lo is None else lo), (largest if hi is None else hi)
        spans.append((min(a, b), max(a, b)))
    return spans


def _expanded(spans: list[tuple[int, int]]) -> set[int] | None:
    """Every number of the spans as a Python set, when that is small enough to build."""
    if sum(b - a + 1 for a, b in spans) > 100_000:
        return None
    return {n for a, b in spans for n in range(a, b + 1)}


_mailbox = st.sets(st.one_of(st.integers(min_value=1, max_value=80),
                             st.integers(min_value=1, max_value=MAX_NUMBER)), max_size=40)


@settings(deadline=timedelta(seconds=2), max_examples=300)
@given(st.lists(_range, min_size=1, max_size=12), _mailbox)
def test_members_of_a_mailbox_match_a_naive_reference(
        ranges: list[tuple[Bound, Bound | str]], uids: set[int]) -> None:
    parsed = parse_sequence_set(_text(ranges))
    available = sorted(uids)
    largest = available[-1] if available else 0  # UIDs: "*" is the highest UID
    spans = _spans(ranges, largest)
    naive = [u for u in available if any(a <= u <= b for a, b in spans)]
    assert parsed.members(available, largest) == naive
    assert [u for u in available if parsed.contains(u, largest)] == naive
    expanded = _expanded(spans)
    if expanded is not None:
        assert naive == sorted(expanded & uids)
    assert parsed.max_number(largest) == max((b for _, b in spans), default=0)


@settings(deadline=timedelta(seconds=2), max_examples=300)
@given(st.lists(_range, min_size=1, max_size=12), st.integers(min_value=0, max_value=50))
def test_message_numbers_match_a_naive_reference(ranges: list[tuple[Bound, Bound | str]], exists: int) -> None:
    parsed = parse_sequence_set(_text(ranges))
    spans = _spans(ranges, exists)
    members = parsed.members(range(1, exists + 1), exists)
    assert members == [n for n in range(1, exists + 1) if any(a <= n <= b for a, b in spans)]
    # Above the mailbox size the command is a BAD: max_number says so without expanding.
    assert (parsed.max_number(exists) > exists) == any(b > exists for _, b in spans)


def test_the_widest_ranges_cost_nothing() -> None:
    started = time.monotonic()
    widest = parse_sequence_set("1:4294967295")
    uids = [3, 7, 4294967295]
    for _ in range(1000):
        assert widest.members(uids, uids[-1]) == uids
        assert widest.members(range(1, 12), 11) == list(range(1, 12))
        assert widest.max_number(11) == MAX_NUMBER
        assert parse_sequence_set("4294967295:1,*:4294967294").members(range(1, 12), 11) == list(range(1, 12))
    assert time.monotonic() - started < 5  # about 10 ms; expanding even one would take minutes


def test_a_line_of_single_numbers_is_linear() -> None:
    # "1,3,5,...": as many ranges as a 64 KiB command line holds, against 100,000 messages.
    text = ",".join(str(n) for n in range(1, 200_000, 2))[:65_000].rsplit(",", 1)[0]
    started = time.monotonic()
    parsed = parse_sequence_set(text)
    count = len(parsed.ranges)
    assert count > 10_000
    members = parsed.members(range(1, 100_001), 100_000)
    assert members == [n for n in range(1, 100_001, 2)][:count]
    assert sum(parsed.contains(n, 100_000) for n in range(1, 100_001)) == count
    assert time.monotonic() - started < 10  # about 0.1 s


def test_empty_set_of_numbers() -> None:
    empty = SequenceSet.of([])  # "$" after a search that found nothing
    assert empty.ranges == () and empty.members([1, 2, 3], 3) == []


def test_ranges_in_one_command_are_bounded_across_its_literals() -> None:
    # "1,1,1,...": 32,000 ranges in each 64 KiB line, the server's line limit; a command's
    # literals let it go on for a thousand lines, but not past MAX_SEQUENCE_RANGES ranges.
    per_line = 32_000
    numbers = b",".join([b"1"] * per_line)
    lines = MAX_SEQUENCE_RANGES // per_line

    def search(count: int) -> bytes:  # a SEARCH 1,1,... SUBJECT {1+}\r\nx 1,1,... over `count` lines
        return b"a SEARCH " + b" SUBJECT {1+}\r\nx ".join(numbers for _ in range(count)) + b"\r\n"

    assert isinstance(command(search(lines), max_line=65_536).args, Search)
    refused = error(search(lines + 1), max_line=65_536)
    assert refused.tag == "a" and refused.status == "BAD"
    assert "Too many ranges" in refused.text
