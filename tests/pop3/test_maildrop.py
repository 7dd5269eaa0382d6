"""Maildrop: numbering, STAT/LIST/UIDL, DELE marks, RSET, what UPDATE expunges, UIDL rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postoffice.pop3.maildrop import DropMessage, Maildrop, NoSuchMessage


def drop() -> Maildrop:
    # UIDs as the store hands them out: increasing, with gaps where messages were expunged.
    return Maildrop(7, [DropMessage(10, 100), DropMessage(12, 200), DropMessage(15, 300)])


def test_fresh_maildrop() -> None:
    md = drop()
    assert md.stat() == (3, 600)
    assert md.count == 3
    assert md.total_size == 600
    assert md.listing() == [(1, 100), (2, 200), (3, 300)]
    assert md.uid_listing() == [(1, "7.10"), (2, "7.12"), (3, "7.15")]
    assert md.get(2) == DropMessage(12, 200)
    assert md.deleted_uids() == []


def test_delete_marks_and_hides() -> None:
    md = drop()
    md.delete(2)
    assert md.stat() == (2, 400)
    assert md.listing() == [(1, 100), (3, 300)]  # numbers do not shift
    assert md.uid_listing() == [(1, "7.10"), (3, "7.15")]
    assert md.get(3) == DropMessage(15, 300)
    assert (md.count, md.total_size) == (3, 600)  # the totals at login stay


def test_deleted_message_cannot_be_referred_to() -> None:
    md = drop()
    md.delete(2)
    with pytest.raises(NoSuchMessage) as info:
        md.get(2)
    assert info.value.reason == "Message 2 already deleted"
    with pytest.raises(NoSuchMessage, match="already deleted"):
        md.delete(2)
    assert md.stat() == (2, 400)  # the second DELE changed nothing


@pytest.mark.parametrize("msg", [0, -1, 4, 2**31])
def test_out_of_range(msg: int) -> None:
    md = drop()
    with pytest.raises(NoSuchMessage) as info:
        md.get(msg)
    assert info.value.reason == "No such message"
    with pytest.raises(NoSuchMessage):
        md.delete(msg)


def test_reset_unmarks_everything() -> None:
    md = drop()
    md.delete(1)
    md.delete(3)
    md.reset()
    assert md.stat() == (3, 600)
    assert md.listing() == [(1, 100), (2, 200), (3, 300)]
    assert md.deleted_uids() == []
    md.delete(1)  # and a message can be deleted again after RSET
    assert md.deleted_uids() == [10]


def test_deleted_uids_in_message_order() -> None:
    md = drop()
    md.delete(3)
    md.delete(1)
    assert md.deleted_uids() == [10, 15]


def test_empty_maildrop() -> None:
    md = Maildrop(1, [])
    assert md.stat() == (0, 0)
    assert md.listing() == []
    assert md.uid_listing() == []
    with pytest.raises(NoSuchMessage):
        md.get(1)


def test_uidl_is_valid_for_the_largest_values() -> None:
    # RFC 1939 §7: 1 to 70 characters in the range 0x21 to 0x7E.
    largest = Maildrop(2**32 - 1, [DropMessage(2**32 - 1, 1)]).uid_listing()[0][1]
    assert largest == "4294967295.4294967295"
    assert 1 <= len(largest) <= 70
    assert all(0x21 <= ord(ch) <= 0x7E for ch in largest)


def test_uidl_is_stable_across_sessions() -> None:
    first = Maildrop(7, [DropMessage(10, 1), DropMessage(12, 2)])
    later = Maildrop(7, [DropMessage(12, 2), DropMessage(20, 5)])  # 10 expunged, 20 arrived
    assert first.uidl(12) == later.uidl(12) == "7.12"
    assert dict(later.uid_listing())[1] == "7.12"


def test_uidl_changes_with_uidvalidity() -> None:
    assert Maildrop(7, []).uidl(12) != Maildrop(8, []).uidl(12)


@pytest.mark.parametrize(
    ("uidvalidity", "messages"),
    [
        (0, []),
        (1, [DropMessage(0, 1)]),
        (1, [DropMessage(1, -1)]),
        (1, [DropMessage(1, 1), DropMessage(1, 2)]),
    ],
)
def test_bad_maildrops_are_refused(uidvalidity: int, messages: list[DropMessage]) -> None:
    with pytest.raises(ValueError):
        Maildrop(uidvalidity, messages)


@given(
    st.lists(st.integers(min_value=0, max_value=10**6), max_size=30),
    st.lists(st.integers(min_value=1, max_value=35), max_size=40),
)
def test_stat_matches_listing_after_any_deletions(sizes: list[int], deletes: list[int]) -> None:
    md = Maildrop(3, [DropMessage(uid, size) for uid, size in enumerate(sizes, 1)])
    deleted: set[int] = set()
    for msg in deletes:
        if 1 <= msg <= len(sizes) and msg not in deleted:
            md.delete(msg)
            deleted.add(msg)
        else:
            with pytest.raises(NoSuchMessage):
                md.delete(msg)
    listing = md.listing()
    assert md.stat() == (len(listing), sum(size for _, size in listing))
    assert [msg for msg, _ in listing] == [m for m in range(1, len(sizes) + 1) if m not in deleted]
    assert md.deleted_uids() == sorted(deleted)  # uid == number here
    uidls = [uidl for _, uidl in md.uid_listing()]
    assert len(set(uidls)) == len(uidls)


def test_kept_unique_ids_are_served_unless_they_would_name_two_messages() -> None:
    """Messages migrated from another POP3 server keep its unique-ids (transfer/migrate.py); one
    kept twice, or equal to another message's own id, falls back to the message's own id."""
    messages = [DropMessage(uid, 10) for uid in (1, 2, 3, 4, 5)]
    drop = Maildrop(7, messages, {1: "old-a", 2: "dup", 3: "dup", 4: "7.5", 9: "gone"})
    assert drop.uid_listing() == [(1, "old-a"), (2, "7.2"), (3, "7.3"), (4, "7.4"), (5, "7.5")]
    assert len({uidl for _, uidl in drop.uid_listing()}) == 5
