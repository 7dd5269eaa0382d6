"""`MailboxSnapshot`: one IMAP session's view of its selected mailbox.

Implementation notes (RFC 9051 §2.3.1.2, §5.2, §7.5.1; RFC 3501 §2.3.1.2, §2.3.2):
- Sequence numbers are this session's: position in `uids`, which changes only when the session
  itself announces EXISTS (append at the end) or EXPUNGE (remove, renumbering what follows).
- Changes by other sessions, SMTP delivery or POP3 arrive as store change events; `refresh` reads
  what changed since the modseq this session has seen and returns `Updates` to announce.
- EXPUNGE may not be announced during FETCH, STORE or SEARCH by sequence number (§7.5.1); until
  it may, the expunged message keeps its sequence number and stays fetchable (the store keeps its
  blob while the mailbox is held, see store.sqlite.message_ops).
- \\Recent (IMAP4rev1 only) belongs to exactly one session: the store hands out uid ranges.
- `in_sync` says the snapshot equals the store's view (for its viewer) at `highestmodseq`: two
  snapshots in sync at the same modseq hold the same messages, flags and sequence numbers, so one
  `changes_since` read serves both and `apply` gives both the same `Updates` (snapshot_push.py
  relies on it). A session's own STORE or EXPUNGE, or an expunge held back, breaks it until the
  next refresh.
- `refresh` reads only when the store's `change_version` of the mailbox moved since the last
  read began: most commands of a session whose mailbox nobody touched cost no read (a thread
  hop each). Held-back expunges and keywords are still announced then. The session's own
  STORE or EXPUNGE, applied to the snapshot as it completes, moves the version only by its own
  changes: `own_write_done` then spares the read that would only bring them back.
- `keywords` are the keywords the client has been shown in an untagged FLAGS (at SELECT, then
  each time the set grew). A record taken in with a keyword outside it (another session's STORE
  or APPEND, or this session's own STORE) grows it and marks it unannounced: the session sends
  `* FLAGS` and `* OK [PERMANENTFLAGS]` before any FETCH that could show the new keyword
  (RFC 9051 §7.3.5, RFC 3501 §7.2.6). The set only grows, as a client may keep what it was told.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field, replace

from postoffice.store.interface import (
    FlagUpdate,
    MailboxChanges,
    MailboxNotFound,
    MailboxRecord,
    MailStore,
    MessageRecord,
    StorageFull,
)

log = logging.getLogger(__name__)


class SelectedMailboxDeleted(Exception):
    """The selected mailbox is gone (another session deleted it): nothing sensible can be said
    about its messages any more, so the driver ends the connection with BYE, as Dovecot does."""


@dataclass
class Updates:
    """What a session should tell its client, in this order."""

    expunged: list[int] = field(default_factory=list)  # sequence numbers, each as of its moment
    expunged_uids: list[int] = field(default_factory=list)
    exists: int | None = None  # new EXISTS count
    recent: int | None = None
    flags: list[tuple[int, MessageRecord]] = field(default_factory=list)  # (seq, record)
    # Every keyword to list in a new untagged FLAGS, sent first; None when the set did not grow.
    keywords: tuple[str, ...] | None = None

    def __bool__(self) -> bool:
        return bool(self.expunged or self.exists is not None or self.flags or self.keywords is not None)


class MailboxSnapshot:
    # Slots: there is one per selected session, and an IDLE push reads tens of thousands at once.
    __slots__ = ("_closed", "claims_recent", "highestmodseq", "in_sync", "keywords", "keywords_unannounced",
                 "mailbox", "read_version", "readonly", "recent", "records", "store", "uidnext", "uids", "vanished",
                 "viewer")

    def __init__(self, store: MailStore, mailbox: MailboxRecord, records: list[MessageRecord],
                 *, readonly: bool, recent_from: int, claims_recent: bool, viewer: int | None = None) -> None:
        self.store = store
        # Takes \Recent for new messages: SELECT by an IMAP4rev1 session (rev2 has no \Recent).
        self.claims_recent = claims_recent
        self.viewer = viewer  # a sharee with their own \\Seen (store.store_flags)
        self.mailbox = mailbox
        self.readonly = readonly
        self.uids: list[int] = [r.uid for r in records]
        self.records: dict[int, MessageRecord] = {r.uid: r for r in records}
        self.highestmodseq = mailbox.highestmodseq
        self.uidnext = mailbox.uidnext
        self.recent: set[int] = {u for u in self.uids if u >= recent_from}
        self.vanished: set[int] = set()  # expunged in the store, not yet announced
        self.in_sync = True  # see the module notes
        self.keywords: set[str] = set()  # shown to the client in FLAGS (module notes)
        for record in records:
            self.keywords.update(_keywords_of(record.flags))
        self.keywords_unannounced = False
        self.read_version: int | None = None  # the store's change_version when the last read began
        self._closed = False

    @classmethod
    async def open(cls, store: MailStore, mailbox_id: int, *, readonly: bool, claim_recent: bool,
                   viewer: int | None = None) -> MailboxSnapshot:
        """`claim_recent` is False for IMAP4rev2 sessions, which have no \\Recent."""
        store.hold_mailbox(mailbox_id)
        try:
            version = store.change_version(mailbox_id)
            mailbox, records = await store.open_snapshot(mailbox_id, viewer=viewer)
            # EXAMINE shows \Recent without taking it (RFC 3501 §6.3.2); IMAP4rev2 has none.
            recent_from = mailbox.first_recent_uid if readonly else mailbox.uidnext
            if claim_recent and not readonly:
                recent_from = await _claimed_or(store.claim_recent(
                    mailbox_id, uidnext=mailbox.uidnext, uidvalidity=mailbox.uidvalidity), mailbox.uidnext)
        except BaseException:
            store.release_mailbox(mailbox_id)
            raise
        snapshot = cls(store, mailbox, records, readonly=readonly, recent_from=recent_from, viewer=viewer,
                       claims_recent=claim_recent and not readonly)
        snapshot.read_version = version
        return snapshot

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.store.release_mailbox(self.mailbox.id)

    # --- lookups ------------------------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def uid_at(self, seq: int) -> int:
        return self.uids[seq - 1]

    def record(self, uid: int) -> MessageRecord:
        return self.records[uid]

    @property
    def unseen_first(self) -> int | None:
        """Sequence number of the first message without \\Seen (the UNSEEN response code)."""
        for i, uid in enumerate(self.uids):
            if "\\Seen" not in self.records[uid].flags:
                return i + 1
        return None

    # --- changes ------------------------------------------------------------------------------

    async def refresh(self, *, allow_expunge: bool) -> Updates:
        """Read what changed in the store and return what to announce now; raises
        SelectedMailboxDeleted once another session has deleted the mailbox."""
        version = self.store.change_version(self.mailbox.id)
        if version is not None and version == self.read_version:
            return self.unchanged(allow_expunge=allow_expunge)  # nothing was published: no read
        try:
            changes = await self.store.changes_since(self.mailbox.id, self.highestmodseq, viewer=self.viewer)
            self.read_version = version
        except MailboxNotFound:
            raise SelectedMailboxDeleted(self.mailbox.name) from None
        recent_from = await self.claim_recent(self.new_records(changes))
        return self.apply(changes, allow_expunge=allow_expunge, recent_from=recent_from)

    def own_write_begins(self) -> int | None:
        """Before a write of this session's own (STORE, EXPUNGE): a token for `own_write_done`
        when the snapshot has read everything published so far, else None."""
        version = self.store.change_version(self.mailbox.id)
        return version if version is not None and version == self.read_version else None

    def own_write_done(self, token: int | None, published: int) -> None:
        """After this session's own writes, once applied here, which published `published`
        changes to the mailbox (a store_flags or expunge that changed something publishes one,
        before its caller resumes): when nothing else was published meanwhile, the snapshot
        holds all there is and the next refresh need not read. `highestmodseq` stays where the
        last read left it, so a change another process made before ours, which the watcher has
        not seen yet, is still read once it has."""
        if token is not None and self.store.change_version(self.mailbox.id) == token + published:
            self.read_version = token + published

    def unchanged(self, *, allow_expunge: bool) -> Updates:
        """What to announce when the store has nothing new: expunges held back until now, and
        keywords the session's own commands brought in."""
        updates = Updates()
        if allow_expunge and self.vanished:
            self._announce_expunges(updates)
        updates.keywords = self.take_unannounced_keywords()
        return updates

    def new_records(self, changes: MailboxChanges) -> list[MessageRecord]:
        """The messages in `changes` this snapshot has not seen yet, in uid order."""
        known_max = self.uids[-1] if self.uids else 0
        return [r for r in changes.changed if r.uid > known_max]

    async def claim_recent(self, new: list[MessageRecord]) -> int | None:
        """Take \\Recent for `new` where nobody took it yet: the first uid that is recent for this
        session, or None when none can be (nothing new, EXAMINE, or an IMAP4rev2 session)."""
        if not new or not self.claims_recent:
            return None
        return await _claimed_or(self.store.claim_recent(
            self.mailbox.id, uidnext=new[-1].uid + 1, uidvalidity=self.mailbox.uidvalidity), None)

    def apply(self, changes: MailboxChanges, *, allow_expunge: bool, recent_from: int | None) -> Updates:
        """Take in `changes` (read from `highestmodseq`) and return what to announce now; the new
        messages from uid `recent_from` on are recent for this session."""
        updates = Updates()
        for uid in changes.vanished:
            if uid in self.records:
                self.vanished.add(uid)
        known_max = self.uids[-1] if self.uids else 0
        new: list[MessageRecord] = []
        for record in changes.changed:
            if record.uid in self.records:
                old = self.records[record.uid]
                self.records[record.uid] = record
                if record.flags != old.flags and record.uid not in self.vanished:
                    updates.flags.append((0, record))
                    self._learn_keywords(record.flags)
            elif record.uid > known_max:
                new.append(record)
                self._learn_keywords(record.flags)
        if allow_expunge and self.vanished:
            self._announce_expunges(updates)
        if new:
            if recent_from is not None:
                self.recent.update(r.uid for r in new if r.uid >= recent_from)
            for record in new:
                self.uids.append(record.uid)
                self.records[record.uid] = record
            self.uidnext = max(self.uidnext, new[-1].uid + 1)
            updates.exists = len(self.uids)
            updates.recent = len(self.recent)
        self.highestmodseq = max(self.highestmodseq, changes.highestmodseq)
        self.in_sync = not self.vanished
        if updates.flags:
            updates.flags = [(s, r) for _, r in updates.flags if (s := self.seq_of(r.uid)) is not None]
        updates.keywords = self.take_unannounced_keywords()
        return updates

    def _learn_keywords(self, flags: frozenset[str]) -> None:
        for flag in flags:
            if flag not in self.keywords and not flag.startswith("\\"):
                self.keywords.add(flag)
                self.keywords_unannounced = True

    def take_unannounced_keywords(self) -> tuple[str, ...] | None:
        """Every keyword, sorted, when the set grew since the client was last told (and mark it
        told); else None."""
        if not self.keywords_unannounced:
            return None
        self.keywords_unannounced = False
        return tuple(sorted(self.keywords))

    def announce_expunges(self) -> Updates:
        """Announce expunges held back during a FETCH/STORE/SEARCH, now that it is allowed."""
        updates = Updates()
        self._announce_expunges(updates)
        return updates

    def _announce_expunges(self, updates: Updates) -> None:
        for uid in sorted(self.vanished):
            seq = self.seq_of(uid)
            if seq is None:
                continue
            del self.uids[seq - 1]
            del self.records[uid]
            self.recent.discard(uid)
            updates.expunged.append(seq)
            updates.expunged_uids.append(uid)
        self.vanished.clear()

    def forget(self, uids: list[int]) -> list[tuple[int, int]]:
        """This session expunged `uids` itself: remove them now, returning (sequence number,
        uid) as each is announced (descending order keeps later numbers valid)."""
        self.in_sync = False  # the store's change log still lists these until the next refresh
        seqs = []
        for uid in sorted(uids, reverse=True):
            seq = self.seq_of(uid)
            if seq is not None:
                del self.uids[seq - 1]
                self.records.pop(uid, None)
                self.recent.discard(uid)
                self.vanished.discard(uid)
                seqs.append((seq, uid))
        return seqs

    def apply_flag_updates(self, updates: Iterable[FlagUpdate]) -> None:
        """Apply flag changes this session made itself (STORE, FETCH setting \\Seen), so that
        refresh does not announce them again."""
        self.in_sync = False  # records ahead of highestmodseq until the next refresh
        for update in updates:
            old = self.records.get(update.uid)
            if old is not None:
                self.records[update.uid] = replace(old, modseq=update.modseq, flags=update.flags)
                self._learn_keywords(update.flags)


def _keywords_of(flags: Iterable[str]) -> list[str]:
    return [flag for flag in flags if not flag.startswith("\\")]


async def _claimed_or(claim: Awaitable[int], fallback: int | None) -> int | None:
    """The claim's first recent uid; `fallback` (none recent) when the disk is too full to record
    the claim: \\Recent is advisory, and reading a mailbox must keep working on a full disk."""
    try:
        return await claim
    except StorageFull as exc:
        log.warning("\\Recent not claimed: %s", exc)
        return fallback
