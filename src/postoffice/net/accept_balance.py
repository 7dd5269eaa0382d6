"""Spread connections over the processes sharing a listening socket (`[smtp]`/`[pop3] processes`).

When several processes accept from one socket, the kernel wakes them all and the first to call
accept(2) wins, so one process can end up with most sessions (measured: 32 of 40 POP3 sessions
in the main process, 8 in its worker) while the other sits idle. Each process therefore
publishes how many connections it is serving in a small shared memory board (a memfd the main
process creates and passes to its workers), and one that is serving more than the least busy
process leaves a waiting connection to it. If nobody else takes the connection within
``GIVE_UP`` (that process is stuck or gone), it accepts anyway: nothing waits for long.

Each process writes only its own slot (an aligned 64-bit integer: readers never see it torn),
so no lock is needed.
"""

from __future__ import annotations

import mmap
import os
import tempfile

__all__ = ["AcceptBoard"]

SLOT = 8  # bytes per process: a signed 64-bit count
NOT_ACCEPTING = 1 << 62  # the count of a process that is not (yet, or any more) accepting
GIVE_UP = 0.02  # seconds a connection is left for a less busy process before taking it anyway
RECHECK = 0.001  # seconds between looks at the board while leaving a connection to another


class AcceptBoard:
    """Connections per process; slot 0 is the main process, slot n worker n."""

    def __init__(self, fd: int, slots: int, me: int) -> None:
        if not 0 <= me < slots:
            raise ValueError(f"slot {me} of {slots}")
        self.fd = fd
        self.slots = slots
        self.me = me
        self._map = mmap.mmap(fd, slots * SLOT)
        self._counts = memoryview(self._map).cast("q")

    @classmethod
    def create(cls, slots: int) -> AcceptBoard:
        """A new board for the main process (slot 0, accepting); the workers' slots say "not
        accepting" until each worker calls `accepting()`. Pass `fd` to them with pass_fds."""
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("postoffice-accept-board", os.MFD_CLOEXEC)
        else:  # not Linux: an unlinked temporary file serves as well
            with tempfile.TemporaryFile() as file:
                fd = os.dup(file.fileno())
        os.ftruncate(fd, slots * SLOT)
        board = cls(fd, slots, 0)
        for slot in range(1, slots):
            board.reset(slot)
        return board

    def accepting(self) -> None:
        """This process accepts connections now (and serves none yet)."""
        self._counts[self.me] = 0

    def add(self, delta: int) -> None:
        """This process serves `delta` more (or fewer) connections."""
        self._counts[self.me] += delta

    def reset(self, slot: int) -> None:
        """A process stopped accepting (stopping, or gone): the others must not leave it
        connections, nor wait for it to take them."""
        self._counts[slot] = NOT_ACCEPTING

    def count(self, slot: int) -> int:
        return int(self._counts[slot])

    def should_leave(self) -> bool:
        """True when another process serves fewer connections than this one."""
        counts = self._counts
        mine = counts[self.me]
        return any(counts[slot] < mine for slot in range(self.slots) if slot != self.me)

    def close(self) -> None:
        """Unmap the board and close its descriptor (idempotent)."""
        if self.fd >= 0:
            self._counts.release()
            self._map.close()
            os.close(self.fd)
            self.fd = -1
