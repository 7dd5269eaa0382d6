"""LIST pattern matching (RFC 9051 §6.3.9) without I/O: names in, yes or no out, checked against
a naive backtracking matcher on small inputs and timed on hostile ones."""
from __future__ import annotations

import time
from datetime import timedelta
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postoffice.imap.proto.list_pattern import (
    MAX_PATTERN_LENGTH,
    ListPattern,
    PatternTooLong,
    full_pattern,
)


def reference_matches(pattern: str, name: str) -> bool:
    """The RFC's words as a backtracking search: `*` any text, `%` any text without "/", the
    first five letters of a pattern spelling INBOX matched in any case."""
    inbox = pattern[:5].upper() == "INBOX"

    @cache
    def at(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(name)
        ch = pattern[i]
        if ch == "*":
            return any(at(i + 1, k) for k in range(j, len(name) + 1))
        if ch == "%":
            for k in range(j, len(name) + 1):
                if "/" in name[j:k]:
                    return False
                if at(i + 1, k):
                    return True
            return False
        if j == len(name):
            return False
        same = name[j] == ch or (inbox and i < 5 and name[j].upper() == ch.upper())
        return same and at(i + 1, j + 1)

    return at(0, 0)


def matches(pattern: str, name: str, reference: str = "") -> bool:
    return ListPattern.compile(reference, [pattern]).matches(name)


@pytest.mark.parametrize(("pattern", "name", "expected"), [
    ("*", "a/b/c", True),
    ("%", "a", True),
    ("%", "a/b", False),
    ("a/%", "a/b", True),
    ("a/%", "a/b/c", False),
    ("a/*", "a/b/c", True),
    ("a*", "a", True),
    ("%/%", "a/b", True),
    ("%/%", "a", False),
    ("a%c", "abbc", True),
    ("a%c", "ab/c", False),
    ("a*c", "ab/c", True),
    ("", "", True),
    ("", "a", False),
    ("inbox", "INBOX", True),
    ("Inbox/%", "INBOX/Later", True),
    ("INBOX", "inbox2", False),
    ("inbox", "Inbox", True),  # old stored spellings still match (as the regex version did)
    ("Archive", "archive", False),  # only INBOX is case-insensitive
    ("%%%%%%%%%%!", "a" * 40, False),
    ("%" * 100 + "a", "b" * 39 + "a", True),
])
def test_pattern_examples(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected
    assert reference_matches(pattern, name) is expected


def test_reference_is_prefixed_unless_the_pattern_starts_with_the_delimiter() -> None:
    assert full_pattern("Archive/", "%") == "Archive/%"
    assert full_pattern("Archive/", "/x") == "/x"
    assert matches("%", "Archive/2024", reference="Archive/")
    assert not matches("%", "2024", reference="Archive/")


def test_several_patterns_match_any_of_them() -> None:
    pattern = ListPattern.compile("", ["INBOX", "Archive/%", "%%%%x"])
    assert [n for n in ("INBOX", "Archive/1", "Archive/1/2", "abx", "a/x", "Sent") if pattern.matches(n)] == [
        "INBOX", "Archive/1", "abx"]


def test_matching_superiors_are_found_in_one_pass() -> None:
    pattern = ListPattern.compile("", ["%/%"])
    assert pattern.matching_superiors("a/b/c/d") == ["a/b"]
    assert ListPattern.compile("", ["*"]).matching_superiors("a/b/c") == ["a", "a/b"]
    assert ListPattern.compile("", ["x*"]).matching_superiors("a/b/c") == []


# Small alphabets so that names and patterns meet often; INBOX spellings for the one
# case-insensitive name.
_NAME = st.one_of(
    st.text(alphabet="ab/", max_size=10),
    st.builds(lambda head, tail: head + tail, st.sampled_from(["INBOX", "inbox", "Inbox"]), st.text("ab/", max_size=5)),
)
_PATTERN = st.one_of(
    st.text(alphabet="ab/%*", max_size=10),
    st.builds(lambda head, tail: head + tail, st.sampled_from(["INBOX", "inbox", "inBox"]), st.text("ab/%*", max_size=5)),
)


@settings(max_examples=600, deadline=timedelta(seconds=2))
@given(patterns=st.lists(_PATTERN, min_size=1, max_size=3), name=_NAME)
def test_matches_like_the_reference(patterns: list[str], name: str) -> None:
    compiled = ListPattern.compile("", patterns)
    assert compiled.matches(name) == any(reference_matches(p, name) for p in patterns)
    superiors = [name[:i] for i, ch in enumerate(name) if ch == "/"]
    assert compiled.matching_superiors(name) == [
        s for s in superiors if any(reference_matches(p, s) for p in patterns)]


@pytest.mark.parametrize("pattern", [
    "%" * 100 + "!",
    "*" * 100 + "!",
    "%a" * 50 + "!",
    "*a%" * 34 + "!",
    "*/" * 50 + "!",
    ("%" * 10 + "a") * 9 + "!",
])
def test_hostile_patterns_cost_linear_time(pattern: str) -> None:
    """The regex translation needed 30 s for ten %s against 40 characters; these have 100."""
    names = ["a" * 200, "/".join(["a" * 49] * 20), "a/" * 99 + "a"]
    compiled = ListPattern.compile("", [pattern] * 20)
    started = time.perf_counter()
    for name in names:
        assert not compiled.matches(name)
        assert compiled.matching_superiors(name) == []
    assert time.perf_counter() - started < 2.0  # about a millisecond; generous for a busy machine


def test_patterns_are_bounded_in_length_with_their_reference() -> None:
    ListPattern.compile("", ["%a" * (MAX_PATTERN_LENGTH // 2)])
    with pytest.raises(PatternTooLong):
        ListPattern.compile("", ["%a" * (MAX_PATTERN_LENGTH // 2) + "!"])
    with pytest.raises(PatternTooLong):
        ListPattern.compile("r" * 100, ["*"] * (MAX_PATTERN_LENGTH // 100))
    assert ListPattern.compile("", ["*"] * 100).weight == 1
    assert ListPattern.compile("", ["x" * 8000, "y" * 8000]).weight == 8
