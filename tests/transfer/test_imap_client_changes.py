"""CONDSTORE/QRESYNC answers read without I/O: bytes through the client's response parser, then
VANISHED (EARLIER) and FETCH with MODSEQ into ranges and flag changes."""

from __future__ import annotations

import pytest

from postoffice.transfer.imap_client_changes import (
    FlagChange,
    flag_change,
    parse_vanished,
    resync_from,
    uid_ranges,
    uids_in,
)
from postoffice.transfer.imap_client_proto import Malformed, ResponseParser, Untagged


def untagged(data: bytes) -> tuple[list[Untagged], list[Malformed]]:
    parser = ResponseParser()
    parser.feed(data)
    good: list[Untagged] = []
    bad: list[Malformed] = []
    while (event := parser.next_event()) is not None:
        if isinstance(event, Untagged):
            good.append(event)
        elif isinstance(event, Malformed):
            bad.append(event)
    return good, bad


def test_qresync_select_answer_gives_vanished_ranges_and_flag_changes() -> None:
    good, bad = untagged(
        b"* OK [HIGHESTMODSEQ 90] h\r\n"
        b"* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n"
        b"* 49 FETCH (UID 117 FLAGS (\\Seen \\Answered) MODSEQ (90))\r\n"
        b"* 50 FETCH (MODSEQ (88) FLAGS ($Label1 \\Recent) UID 119)\r\n"
    )
    resync = resync_from(good, bad, known_through=300)
    assert resync.problem is None
    assert resync.vanished == ((41, 41), (43, 116), (118, 118), (120, 211), (214, 300))
    assert resync.changed == (
        FlagChange(117, frozenset({"\\Seen", "\\Answered"}), 90),
        FlagChange(119, frozenset({"$Label1"}), 88),  # \Recent is session state
    )
    assert uids_in(resync.vanished, {1, 41, 42, 100, 117, 118, 300, 301}) == {41, 100, 118, 300}


def test_vanished_without_earlier_reversed_ranges_and_huge_ranges_are_not_expanded() -> None:
    (response,), _ = untagged(b"* VANISHED 9:5,4294967295:1\r\n")
    earlier, ranges = parse_vanished(response.values, known_through=20)
    assert not earlier and ranges == [(5, 9), (1, 20)]
    assert parse_vanished(response.values, known_through=0) == (False, [])


@pytest.mark.parametrize("line", [
    b"* VANISHED (EARLIER) 0:*\r\n",
    b"* VANISHED (EARLIER) 1:*\r\n",
    b"* VANISHED (EARLIER) 0\r\n",
    b"* VANISHED (EARLIER) 4294967296\r\n",
    b"* VANISHED (LATER) 3\r\n",
    b"* VANISHED (EARLIER)\r\n",
    b"* VANISHED (EARLIER) 1,,2\r\n",
    b"* VANISHED (EARLIER) 1 2\r\n",
    b"* VANISHED (EARLIER) \"3\"\r\n",
])
def test_a_malformed_vanished_is_a_problem_not_an_exception(line: bytes) -> None:
    good, bad = untagged(line + b"* 1 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (5))\r\n")
    resync = resync_from(good, bad, known_through=100)
    assert resync.problem is not None and "VANISHED" in resync.problem
    assert resync.vanished == () and resync.changed == ()


@pytest.mark.parametrize("line", [
    b"* 1 FETCH (FLAGS (\\Seen) MODSEQ (5))\r\n",  # no UID
    b"* 1 FETCH (UID 3 MODSEQ (5))\r\n",  # no FLAGS
    b"* 1 FETCH (UID 3 FLAGS (\\Seen) MODSEQ 5)\r\n",  # MODSEQ not a list
    b"* 1 FETCH (UID x FLAGS (\\Seen))\r\n",
    b"* 1 FETCH (UID 3 FLAGS (\\Seen)\r\n",  # unbalanced: Malformed from the parser
])
def test_a_fetch_that_does_not_read_is_a_problem(line: bytes) -> None:
    good, bad = untagged(line)
    resync = resync_from(good, bad, known_through=100)
    assert resync.problem is not None and "FETCH" in resync.problem


def test_fetch_with_gmail_labels_and_without_modseq() -> None:
    (response,), _ = untagged(b'* 2 FETCH (UID 8 FLAGS () X-GM-LABELS (\\Important "Work/2024"))\r\n')
    assert flag_change(response, labels=True) == FlagChange(8, frozenset(), None, ("\\Important", "Work/2024"))
    with pytest.raises(ValueError):
        flag_change(untagged(b"* 2 FETCH (UID 8 FLAGS ())\r\n")[0][0], labels=True)


def test_uid_ranges_bound_each_command_however_sparse() -> None:
    assert uid_ranges([]) == []
    assert uid_ranges([9, 1, 5, 1000000], per_range=2) == [(1, 5), (9, 1000000)]
    assert len(uid_ranges(range(1, 4501), per_range=2000)) == 3
