"""One mailbox change pushed to every session idling on the mailbox at once (RFC 2177 IDLE).

Ten thousand sessions idling on one INBOX used to wake up one by one for each change, each
reading the change, encoding its responses and sending them: about 300 us of the single event
loop per session, three seconds for one delivery. Here a change wakes one `MailboxIdlers` per
mailbox instead. It reads the change once per group of sessions whose snapshots are in the same
state (in sync at the same modseq for the same viewer, see `MailboxSnapshot.in_sync`), applies it
to each of their snapshots (list and dict updates: each session keeps its own sequence numbers),
encodes the responses once per distinct `ImapSession.encoding_key`, and writes them to the
sockets itself. The sessions' own tasks sleep on their reads throughout.

Implementation notes:
- A session in IDLE is an `Idler`. While its own task works on its snapshot (entering IDLE, or
  catching up), it is `busy`: a push leaves it alone and marks it `missed`, and the task looks
  again before it sleeps. Everything a push does to one session happens without an await in
  between, so it never interleaves with the session's own work.
- A session the shared path cannot serve is woken (`Idler.nudge`) to catch up the per-session
  way, as every session did before: one with searches kept up to date (RFC 5267 §4.2 needs its
  own async work), one whose snapshot is out of sync, and one whose client is not reading: its
  own task waits for the socket to drain, so a stalled client cannot make the server buffer
  without limit.
- \\Recent (RFC 3501 §2.3.2): one claim per group, given to one session (an IMAP4rev1 one when
  the group has one, since IMAP4rev2 sessions do not show it); the others see none of the new
  messages as recent, just as when their own refresh came after the first claim. The claim is a
  durable write, so the others are served while it commits, and the taker after it.
- EXPUNGE is always allowed during IDLE (RFC 9051 §7.5.1), so the push announces it at once.
- The sessions are served in slices with a yield to the event loop between them, so that a push
  to 10,000 sessions does not hold up every other connection until it is done.
- NOTIFY sessions (RFC 5465) are never here: they watch every mailbox through their own
  subscription (imap/commands/notify.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextlib import contextmanager
from weakref import WeakKeyDictionary

from postoffice.imap.session import ImapSession
from postoffice.imap.snapshot import MailboxSnapshot
from postoffice.store.changes import ChangeNotifier, MailboxChange
from postoffice.store.interface import MailboxChanges, MailboxNotFound, MailStore

log = logging.getLogger(__name__)

SLICE = 256  # sessions served between two yields to the event loop
SEND_BUFFER_LIMIT = 256 * 1024  # octets a client left unread, beyond which its own task takes over

# A group of snapshots the same change read serves: (viewer, highestmodseq, message count).
GroupKey = tuple[int | None, int, int]


class Idler:
    """One session in IDLE, as the push sees it."""

    __slots__ = ("active", "busy", "missed", "session", "snapshot", "wake")

    def __init__(self, session: ImapSession) -> None:
        assert session.snapshot is not None
        self.session = session
        self.snapshot: MailboxSnapshot = session.snapshot  # no command can change it during IDLE
        self.active = True  # until the session leaves IDLE
        self.busy = False
        self.missed = True  # entering IDLE, the session first catches up on its own
        self.wake: asyncio.Future[None] | None = None

    def nudge(self) -> None:
        """Have the session's own task catch up (now if it sleeps, else before it does)."""
        self.missed = True
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    def sleep(self) -> asyncio.Future[None]:
        """A future that `nudge` completes: the session's task waits on it beside its read."""
        self.wake = asyncio.get_running_loop().create_future()
        return self.wake

    async def catch_up(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run the session's own update `work` (refresh, announce, flush) until no push was
        missed meanwhile; pushes leave the snapshot alone while it runs."""
        while self.missed:
            self.missed = False
            self.busy = True
            try:
                await work()
            finally:
                self.busy = False


class MailboxIdlers:
    """The sessions idling on one mailbox, and the pushes to them."""

    def __init__(self, store: MailStore, mailbox_id: int, on_empty: Callable[[MailboxIdlers], None]) -> None:
        self.store = store
        self.mailbox_id = mailbox_id
        self.members: dict[Idler, None] = {}  # a set that keeps the order of joining
        self._on_empty = on_empty
        self._pending = False
        self._task: asyncio.Task[None] | None = None
        self._subscription = store.changes.subscribe(mailbox_id, self._changed)

    def add(self, session: ImapSession) -> Idler:
        idler = Idler(session)
        self.members[idler] = None
        return idler

    def remove(self, idler: Idler) -> None:
        idler.active = False
        self.members.pop(idler, None)
        self._close_if_unused()

    def _close_if_unused(self) -> None:
        if not self.members and self._task is None:
            self._subscription.close()
            self._on_empty(self)

    def _changed(self, change: MailboxChange) -> None:
        # Changes published while a push runs are taken by the next round, all at once.
        self._pending = True
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._pending and self.members:
                self._pending = False
                await self._push()
        except Exception as exc:
            # Every session catches up on its own, and meets the same error there.
            if not isinstance(exc, MailboxNotFound):
                log.exception("IDLE push to mailbox %d failed", self.mailbox_id)
            self._pending = False
            for idler in self.members:
                idler.nudge()
        finally:
            self._task = None
            self._close_if_unused()

    async def _push(self) -> None:
        # One group per turn, in one pass over its members: with ten thousand sessions spread
        # over the heap, every extra pass costs tens of milliseconds in cache misses. Members at
        # another state (rare) are left for the next turn, which serves the first of them.
        waiting = list(self.members)
        while waiting:
            key = next((k for idler in waiting if (k := self._key_of(idler)) is not None), None)
            if key is None:
                return
            waiting = await self._push_group(key, waiting)

    async def _push_group(self, key: GroupKey, idlers: list[Idler]) -> list[Idler]:
        """Serve the members of `idlers` at `key`; return those found at another state."""
        viewer, modseq, _ = key
        changes = await self.store.changes_since(self.mailbox_id, modseq, viewer=viewer)
        here = (idler for idler in idlers if self._key_of(idler) == key)
        first = next(here, None)
        if first is None:
            return [idler for idler in idlers if self._key_of(idler) is not None]
        new = first.snapshot.new_records(changes)
        taker = _recent_taker(here, first) if new else None
        # The others get no \Recent whatever the claim answers: no need to wait for its commit.
        claim = asyncio.ensure_future(taker.snapshot.claim_recent(new)) if taker else None
        encoded: dict[Hashable, bytes] = {}
        later: list[Idler] = []
        try:
            for n, idler in enumerate(idlers):
                if n % SLICE == SLICE - 1:
                    await asyncio.sleep(0)
                at = None if idler is taker else self._key_of(idler)
                if at == key:
                    self._serve(idler, changes, None, encoded)
                elif at is not None:
                    later.append(idler)
            if taker is not None and claim is not None:
                recent_from = await claim
                if self._key_of(taker) == key:
                    self._serve(taker, changes, recent_from, encoded)
        finally:
            if claim is not None:
                claim.cancel()
        return later

    def _key_of(self, idler: Idler) -> GroupKey | None:
        """The group `idler` belongs to now, or None when a push may not serve it: it left,
        is catching up on its own (it will look again), or needs the per-session path (woken)."""
        if not idler.active:
            return None
        if idler.busy:
            idler.missed = True
            return None
        snapshot = idler.snapshot
        if not snapshot.in_sync or idler.session.search_contexts:
            idler.nudge()
            return None
        return (snapshot.viewer, snapshot.highestmodseq, len(snapshot.uids))

    def _serve(self, idler: Idler, changes: MailboxChanges, recent_from: int | None,
               encoded: dict[Hashable, bytes]) -> None:
        session = idler.session
        writer = session.conn.writer
        if writer.is_closing():
            return  # the session's read ends it
        if writer.transport.get_write_buffer_size() > SEND_BUFFER_LIMIT:
            idler.nudge()
            return
        updates = idler.snapshot.apply(changes, allow_expunge=True, recent_from=recent_from)
        if not updates:
            return
        key = session.encoding_key(updates)
        data = encoded.get(key)
        if data is None:
            data = encoded[key] = session.encode_updates(updates)
        try:
            session.transmit(data)
        except (ConnectionError, OSError):
            idler.nudge()  # its own flush finds the broken connection and ends the session


def _recent_taker(rest: Iterator[Idler], first: Idler) -> Idler | None:
    """Who gets \\Recent for the new messages, among `first` and `rest` (the group's members
    after it): the first session whose own refresh would take it (an IMAP4rev1 SELECT), else
    nobody (EXAMINE and IMAP4rev2 sessions leave it to a later rev1 session)."""
    return next((idler for idler in itertools.chain((first,), rest) if idler.snapshot.claims_recent), None)


_by_notifier: WeakKeyDictionary[ChangeNotifier, dict[int, MailboxIdlers]] = WeakKeyDictionary()


@contextmanager
def idling(session: ImapSession) -> Iterator[Idler]:
    """Push the changes of the session's selected mailbox to it until the block ends."""
    assert session.snapshot is not None
    store = session.services.store
    boxes = _by_notifier.setdefault(store.changes, {})
    box_id = session.snapshot.mailbox.id

    def forget(gone: MailboxIdlers) -> None:
        if boxes.get(box_id) is gone:
            del boxes[box_id]

    idlers = boxes.get(box_id)
    if idlers is None:
        idlers = boxes[box_id] = MailboxIdlers(store, box_id, forget)
    idler = idlers.add(session)
    try:
        yield idler
    finally:
        idlers.remove(idler)
