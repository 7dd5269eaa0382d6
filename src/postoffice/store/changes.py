"""Mailbox change events, published after each commit (DESIGN §3).

IMAP IDLE, POP3 maildrop locks and later JMAP push subscribe here. The SQLite backend publishes
in-process from its writer thread; the events carry the new modseq so a subscriber can ask the
store for exactly what changed (`MailStore.changes_since`). Writes made by another process on the
same data directory (an admin command, an import) are found by `ExternalChangeWatcher` in the
SQLite backend and published here too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum


class ChangeKind(Enum):
    EXISTS = "exists"  # messages appended
    FLAGS = "flags"  # flags or keywords changed
    EXPUNGE = "expunge"  # messages removed
    MAILBOX = "mailbox"  # mailbox created, renamed or deleted


@dataclass(frozen=True, slots=True)
class MailboxChange:
    mailbox_id: int
    kind: ChangeKind
    modseq: int
    uids: tuple[int, ...] = ()


class Subscription:
    """A queue of changes for one mailbox (or all, when mailbox_id is None), or a callback.

    With `on_change`, each change is handed to it on the loop as it is published and the queue
    stays empty: one subscriber can then wake many waiters without a task of its own.
    `on_change` must not raise; it runs inside `publish`.
    """

    def __init__(self, notifier: ChangeNotifier, mailbox_id: int | None,
                 on_change: Callable[[MailboxChange], None] | None = None) -> None:
        self._notifier = notifier
        self.mailbox_id = mailbox_id
        self.on_change = on_change
        self.queue: asyncio.Queue[MailboxChange] = asyncio.Queue()

    def deliver(self, change: MailboxChange) -> None:
        if self.on_change is None:
            self.queue.put_nowait(change)
        else:
            self.on_change(change)

    async def get(self) -> MailboxChange:
        return await self.queue.get()

    def drain(self) -> list[MailboxChange]:
        items = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items

    def close(self) -> None:
        self._notifier._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChangeNotifier:
    """Fan-out of committed changes to subscribers on one event loop.

    `publish_threadsafe` may be called from any thread (the store's writer thread does).
    """

    def __init__(self) -> None:
        self._by_mailbox: dict[int | None, set[Subscription]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        # How many changes each mailbox has had since startup, counted as they are published:
        # a read that starts after the count moved sees everything published so far.
        self.versions: dict[int, int] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def ensure_bound(self) -> None:
        """Publish on the running loop from now on (so `versions` count every commit)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()

    def subscribe(self, mailbox_id: int | None,
                  on_change: Callable[[MailboxChange], None] | None = None) -> Subscription:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        sub = Subscription(self, mailbox_id, on_change)
        self._by_mailbox.setdefault(mailbox_id, set()).add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        subs = self._by_mailbox.get(sub.mailbox_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_mailbox[sub.mailbox_id]

    def publish(self, changes: Iterable[MailboxChange]) -> None:
        """Deliver to subscribers; must run on the notifier's loop."""
        for change in changes:
            self.versions[change.mailbox_id] = self.versions.get(change.mailbox_id, 0) + 1
            for key in (change.mailbox_id, None):
                for sub in tuple(self._by_mailbox.get(key, ())):
                    sub.deliver(change)

    def publish_threadsafe(self, changes: list[MailboxChange]) -> None:
        loop = self._loop
        if not changes or loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self.publish, changes)
        except RuntimeError:  # loop closed between the check and the call
            pass
