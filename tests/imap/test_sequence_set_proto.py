"""Sequence sets (RFC 9051 §9, RFC 5182): parsing, resolving *, membership, compact writing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postoffice.imap.proto.sequence_set import (
    SequenceSet,
    SequenceSetError,
    compress,
    parse_sequence_set,
)


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


def test_membership_and_numbers() -> None:
    s = parse_sequence_set("2:4,9,20:*")
    members = [n for n in range(1, 30) if s.contains(n, 25)]
    assert members == [2, 3, 4, 9, 20, 21, 22, 23, 24, 25]
    assert list(s.numbers(25)) == members
    assert list(parse_sequence_set("3,8:12").numbers(10, clip=True)) == [3, 8, 9, 10]
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
    assert list(parse_sequence_set(text).numbers(200)) == ordered


def test_compress_is_fast_enough_for_a_big_mailbox() -> None:
    numbers = [n for n in range(1, 300_000) if n % 7]
    assert compress(numbers).startswith("1:6,8:13,")
