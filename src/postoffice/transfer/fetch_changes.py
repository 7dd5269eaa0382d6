"""What changed at the source since the last fetch, carried to the copies (RFC 7162).

>>> if is_unchanged(selected, state):                  # UIDNEXT and HIGHESTMODSEQ as recorded
...     return                                         # no SEARCH, no FETCH for this folder
>>> outcome = await carry_flags(client, selected, state, writer, gmail=False)
>>> outcome.updated, outcome.missing, outcome.carried

Theory of operation. A folder's state keeps the source's HIGHESTMODSEQ (``highestmodseq``) up to
which flag changes are at the destination, and the UIDNEXT of the last run that copied
everything it found (``uidnext``). On a rerun with the same UIDVALIDITY:

1. Both equal to what EXAMINE reports: nothing was added, changed or removed (every change
   takes a new mod-sequence, RFC 7162 §3.1.1): the folder is done.
2. Otherwise the flags of the messages already copied that changed since ``highestmodseq``:
   from the SELECT itself when QRESYNC is enabled (``SELECT box (QRESYNC (uidvalidity
   modseq))``, §3.2.5: FETCH responses for the changes, ``VANISHED (EARLIER)`` for what was
   expunged), else ``UID FETCH first:last (UID FLAGS) (CHANGEDSINCE modseq)`` (§3.1.4) over the
   copied UIDs, at most 2,000 of them per command so an answer stays small (also for a folder
   with UIDs past 50,000: a QRESYNC answer arrives whole, ``QRESYNC_MAX_UID``). Each copy gets the
   source's flags exactly (replace, not add), through the same keyword mapping as its first
   copy (``copy_flags``), except ``\\Deleted`` (``carried_flags``). The new HIGHESTMODSEQ is
   recorded only after that is durable, so a run killed halfway carries the same changes again
   next time (idempotent).
3. New messages are found and copied as before (``imap_fetch``).

A folder with copies but no recorded HIGHESTMODSEQ (a state file from before, or a source
that has just started offering CONDSTORE) reads every copied message's flags once.

Removed at the source (VANISHED, or a copied UID that UID SEARCH no longer lists): counted
once, remembered in ``vanished``; the copy is kept, since a backup must not lose mail because
the source expunged it. A QRESYNC answer that does not parse is reported and the folder takes
the CHANGEDSINCE path instead (as does one whose EXAMINE (QRESYNC ...) the server refused,
``imap_fetch``); a CHANGEDSINCE answer that does not parse leaves the flags for
the next run (``highestmodseq`` does not move).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from postoffice.transfer.fetch_destinations import FolderWriter
from postoffice.transfer.fetch_state import FolderState
from postoffice.transfer.imap_client import (
    FlagChange,
    ImapClient,
    ImapCommandFailed,
    ImapConnectionLost,
    ImapError,
    SelectedMailbox,
)
from postoffice.transfer.imap_client_changes import flag_change, uid_ranges, uids_in

__all__ = [
    "MBOX_NOT_CARRIED",
    "QRESYNC_MAX_UID",
    "FlagsOutcome",
    "carried_flags",
    "carry_flags",
    "changed_flags",
    "copy_flags",
    "is_unchanged",
    "label_keywords",
    "qresync_params",
    "removed_at_source",
]

MBOX_NOT_CARRIED = "mbox destination: flag changes at the source are not carried"
RANGE_SIZE = 2000
# A QRESYNC SELECT answers every change in the folder in one response, held whole until it
# ends ("mark all read" on a folder of a million messages: a million FETCH responses), copied
# or not (no known-uids are sent). A folder whose UIDs went past this when last seen takes the
# CHANGEDSINCE path, whose answers come RANGE_SIZE copied UIDs at a time.
QRESYNC_MAX_UID = 50_000
_KEYWORD_UNSAFE = re.compile(r'[\x00-\x20\x7f-\uffff(){%*"\\\]]')


def label_keywords(labels: tuple[str, ...]) -> frozenset[str]:
    """Gmail labels as IMAP keywords: user labels with unsafe characters replaced by "_";
    Gmail's own (\\Inbox, \\Sent...) are what the folders already say, except \\Important."""
    out = set()
    for label in labels:
        if label.startswith("\\"):
            if label.upper() == "\\IMPORTANT":
                out.add("$Important")
            continue
        keyword = _KEYWORD_UNSAFE.sub("_", label)
        if keyword:
            out.add(keyword)
    return frozenset(out)


def copy_flags(flags: frozenset[str], gm_labels: tuple[str, ...] = ()) -> frozenset[str]:
    """The flags a copy carries: the source's, plus Gmail labels as keywords. The first copy
    and every later flag change go through here, so both map alike."""
    return flags | label_keywords(gm_labels) if gm_labels else flags


def carried_flags(flags: frozenset[str]) -> frozenset[str]:
    """A flag change as it reaches a copy: without \\Deleted. The source's usual two-step
    delete (STORE \\Deleted, EXPUNGE later) would otherwise leave the backup marked, and any
    client's EXPUNGE or CLOSE there would then destroy it."""
    return frozenset(f for f in flags if f.upper() != "\\DELETED")


def is_unchanged(selected: SelectedMailbox, state: FolderState) -> bool:
    """EXAMINE reports the UIDNEXT and HIGHESTMODSEQ the last complete run recorded."""
    return (
        not state.dedupe
        and selected.highestmodseq is not None
        and selected.uidnext is not None
        and state.uidvalidity == (selected.uidvalidity or 0)
        and state.highestmodseq == selected.highestmodseq
        and state.uidnext == selected.uidnext
    )


def qresync_params(client: ImapClient, state: FolderState, *, gmail: bool) -> tuple[int, int, int] | None:
    """(uidvalidity, modseq, last UID copied) for SELECT (QRESYNC ...), when it can serve
    (the last UID bounds what VANISHED may name that matters).
    Not for Gmail: its changes must carry X-GM-LABELS, which a QRESYNC answer does not.
    Not for a folder whose UIDs went past QRESYNC_MAX_UID (its UIDNEXT at the last complete
    run, or the highest UID copied): the answer would be held whole in memory."""
    copied = state.uids - state.vanished
    if (
        gmail
        or "QRESYNC" not in client.enabled
        or state.dedupe
        or not state.uidvalidity
        or state.highestmodseq is None
        or not copied
        or max(max(copied), (state.uidnext or 1) - 1) > QRESYNC_MAX_UID
    ):
        return None
    return state.uidvalidity, state.highestmodseq, max(copied)


async def changed_flags(
    client: ImapClient, first: int, last: int, since: int | None, *, gmail: bool = False
) -> list[FlagChange]:
    """``UID FETCH first:last (UID FLAGS) (CHANGEDSINCE since)``, or every message's flags
    without ``since``. ImapError when an answer does not read: a change skipped silently
    would never be carried."""
    text = b"UID FETCH %d:%d (UID FLAGS%s)" % (first, last, b" X-GM-LABELS" if gmail else b"")
    if since is not None:
        text += b" (CHANGEDSINCE %d)" % since
    untagged = await client.command(text)
    bad = next((m for m in client.malformed if m.kind == "FETCH"), None)
    if bad is not None:
        raise ImapError(f"the server sent a malformed FETCH response ({bad.reason})")
    changes: list[FlagChange] = []
    for response in untagged:
        if response.kind == "FETCH":
            try:
                change = flag_change(response, labels=gmail)
            except ValueError as exc:
                raise ImapError(f"the server sent a FETCH response that does not read: {exc}") from exc
            if first <= change.uid <= last:
                changes.append(change)
    return changes


@dataclass
class FlagsOutcome:
    """``carried``: the copies' flags are now those of ``selected.highestmodseq`` (record it)."""

    updated: int = 0
    missing: int = 0
    carried: bool = False
    warning: str | None = None


async def carry_flags(
    client: ImapClient, selected: SelectedMailbox, state: FolderState, writer: FolderWriter, *, gmail: bool
) -> FlagsOutcome:
    """Step 2 of the module docstring for one folder; ImapConnectionLost goes up (the folder
    fails and the next run carries the changes), any other ImapError is the warning."""
    target = selected.highestmodseq
    copied = state.uids - state.vanished
    since = state.highestmodseq
    if target is None:
        return FlagsOutcome()  # no CONDSTORE here, or NOMODSEQ: nothing to go by
    if not copied or since == target:
        return FlagsOutcome(carried=True)  # nothing copied yet, or nothing changed
    if since is not None and since > target:
        since = None  # the server lost its mod-sequences (RFC 7162 §3.1.2.1): read them all
    if not writer.carries_flags:
        return FlagsOutcome(carried=True, warning=MBOX_NOT_CARRIED)
    outcome = FlagsOutcome(carried=True)
    resync = selected.resync
    if resync is not None and resync.problem is None and since is not None:
        await _apply(writer, {c.uid: copy_flags(c.flags) for c in resync.changed if c.uid in copied}, outcome)
        return outcome
    if resync is not None and resync.problem is not None:
        outcome.warning = f"{resync.problem}; flag changes were read again with CHANGEDSINCE"
    try:
        for first, last in uid_ranges(copied, RANGE_SIZE):
            changes = await changed_flags(client, first, last, since, gmail=gmail)
            await _apply(
                writer,
                {c.uid: copy_flags(c.flags, c.labels) for c in changes if c.uid in copied},
                outcome,
            )
    except ImapConnectionLost:
        raise
    except ImapCommandFailed as exc:
        outcome.carried = False
        outcome.warning = f"flag changes were not carried ({exc}); the next run tries again"
    except ImapError as exc:
        outcome.carried = False
        outcome.warning = f"flag changes were not carried: {exc}; the next run tries again"
    return outcome


async def _apply(writer: FolderWriter, changes: dict[int, frozenset[str]], outcome: FlagsOutcome) -> None:
    if not changes:
        return
    done = await writer.set_flags({uid: carried_flags(flags) for uid, flags in changes.items()})
    outcome.updated += done.updated
    outcome.missing += len(done.missing)


def removed_at_source(selected: SelectedMailbox, state: FolderState, listed: set[int]) -> set[int]:
    """Copied UIDs the source no longer has and that were not counted before: what
    VANISHED (EARLIER) named, and what UID SEARCH ALL (``listed``) left out."""
    copied = state.uids - state.vanished
    gone = copied - listed
    resync = selected.resync
    if resync is not None and resync.problem is None:
        gone |= uids_in(resync.vanished, copied)
    return gone
