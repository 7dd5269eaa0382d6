"""Which messages of the selected mailbox a client's sequence set names (RFC 9051 §9, RFC 5182).

Every command that takes a set (FETCH, STORE, COPY, MOVE, UID EXPUNGE and their UID forms, the
QRESYNC known UIDs, UID FETCH ... VANISHED) turns it into UIDs here, so that none of them expands
a range: the set is intersected with the numbers in use (``SequenceSet.members``), and the cost
follows the ranges and the messages, not ``1:4294967295``'s four billion numbers.

``$`` (RFC 5182 SEARCHRES) is the session's saved search result, a set of UIDs: in a command by
message number or by UID it names the same messages, those of the result still in the mailbox.
"""

from __future__ import annotations

from collections.abc import Collection

from postoffice.imap.proto.sequence_set import SequenceSet
from postoffice.imap.snapshot import MailboxSnapshot

__all__ = ["named_uids", "uid_set"]


def named_uids(snapshot: MailboxSnapshot, sequence_set: SequenceSet, *, uid: bool,
               saved: Collection[int]) -> list[int] | None:
    """The UIDs the set names, ascending; None if it names a message number above the mailbox
    size (a BAD, RFC 9051 §9: no compliant client can send one), which in an empty mailbox is
    every number, ``*`` too (§9: "This includes "*" if the selected mailbox is empty"; Dovecot
    answers them all BAD). By UID nothing is invalid. ``saved`` is for ``$``."""
    uids = snapshot.uids
    if sequence_set.saved:
        kept = saved if isinstance(saved, set | frozenset) else set(saved)
        return [u for u in uids if u in kept]
    if uid:
        return sequence_set.members(uids, uids[-1] if uids else 0)
    exists = len(uids)
    if exists == 0:
        return None
    if sequence_set.max_number(exists) > exists:
        return None
    return [uids[seq - 1] for seq in sequence_set.members(range(1, exists + 1), exists)]


def uid_set(sequence_set: SequenceSet, saved: Collection[int]) -> SequenceSet:
    """A UID set with ``$`` replaced by the saved UIDs, for checking UIDs no longer in the
    mailbox (QRESYNC known UIDs, VANISHED); any other set as it is."""
    return SequenceSet.of(saved) if sequence_set.saved else sequence_set
