"""The slots for password checks: a few at once, known users first, a bounded line (issue 12).

argon2id costs about 0.25 s of CPU and 64 MiB per check, so only ``slots`` checks run at once
(more than the cores only adds memory). Everyone else waits in line, and a flood of wrong
passwords would put a real user's login behind hundreds of guesses. So:

- an attempt with ``priority`` (an account logging in from an address it logged in from
  successfully not long ago, see :meth:`LoginThrottle.is_known`) goes before every attempt
  without it;
- at most ``max_waiting`` attempts without priority wait; one more raises
  :class:`PasswordChecksBusy` at once, and the driver answers with its protocol's temporary
  failure (IMAP ``NO [UNAVAILABLE]``, POP3 ``-ERR [SYS/TEMP]``, SMTP ``454 4.7.0``). Attempts
  with priority are never turned away: there are only as many as there are real users.

Within one priority, attempts are served in arrival order. No I/O here: the caller runs the
check itself (in a thread) while holding a slot::

    async with queue.slot(priority=throttle.is_known(ip, user)):
        ok = await asyncio.to_thread(verify_password, stored_hash, password)
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["PasswordCheckQueue", "PasswordChecksBusy"]


class PasswordChecksBusy(Exception):
    """Too many password checks are waiting; the client should try again a little later."""


class PasswordCheckQueue:
    """``slots`` checks at once; waiters ordered by (priority first, arrival)."""

    def __init__(self, slots: int, max_waiting: int) -> None:
        if slots < 1 or max_waiting < 0:
            raise ValueError("slots must be at least 1 and max_waiting not negative")
        self.slots = slots
        self.max_waiting = max_waiting
        self._busy = 0
        self._order = itertools.count()
        # (0 for priority else 1, arrival number, future woken when a slot is handed over)
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._ordinary_waiting = 0

    @property
    def busy(self) -> int:
        """Checks running now."""
        return self._busy

    @property
    def waiting(self) -> int:
        """Attempts in line (priority ones included)."""
        return len(self._waiting)

    @asynccontextmanager
    async def slot(self, *, priority: bool = False) -> AsyncIterator[None]:
        """Hold one of the slots for the body; raises :class:`PasswordChecksBusy` when the line
        is full and this attempt has no priority."""
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: bool) -> None:
        if self._busy < self.slots and not self._waiting:
            self._busy += 1
            return
        if not priority and self._ordinary_waiting >= self.max_waiting:
            raise PasswordChecksBusy
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (0 if priority else 1, next(self._order), future)
        heapq.heappush(self._waiting, entry)
        if not priority:
            self._ordinary_waiting += 1
        try:
            await future  # _release hands its slot over: _busy already counts us
        except BaseException:
            if future.done() and not future.cancelled():
                self._release()  # the slot was ours already: pass it on
            elif entry in self._waiting:
                self._waiting.remove(entry)
                heapq.heapify(self._waiting)
            raise
        finally:
            if not priority:
                self._ordinary_waiting -= 1

    def _release(self) -> None:
        while self._waiting:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)  # the slot goes to the next in line, still counted busy
                return
        self._busy -= 1
