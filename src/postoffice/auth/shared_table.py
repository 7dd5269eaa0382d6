"""Counts that every process of one `serve` shares (`[smtp]`/`[pop3] processes`): a table in shared memory.

With POP3 worker processes, per-IP connection counts and failed-login delays kept in each
process would let a client spread over N processes get N times the limit. So when there are
workers, the main process creates these tables in memfds and passes them to the workers with
the accept board's (net/accept_balance.py); auth/limits.py keeps its counts in them instead of
in dicts.

A table is fixed-size open addressing in an ``mmap``: each slot is ``(key hash, count, when)``,
24 bytes. A key may sit in any of ``WINDOW`` slots from its hash, so a lookup reads at most
that many and removing a key just empties its slot (no tombstones). Keys are hashed with
BLAKE2b, not ``hash()``, which differs between processes; 64 bits make a collision between two
live keys negligible. When the window of a new key is full, an ``evicting`` table drops the
slot with the oldest ``when`` (failure counts: the oldest matter least); a table of connection
counts never drops a live count and reports the new key as not stored (the caller refuses).
Tables are sized at four slots per entry they may need to hold, so that never happens in
practice.

Every operation holds a POSIX record lock (``lockf``) on the memfd: those belong to the
process, so they exclude the other processes even though all share one open file description
(an ``flock`` would not). Times are ``time.monotonic()``, one clock for every process on Linux.
Measured on the 2-core development machine: a locked update about 9 microseconds (the lock and
unlock 1.4 of them); a connection makes four (counted, moved to its user at login, released).
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import tempfile
from dataclasses import dataclass

__all__ = ["SharedLimits", "SharedTable"]

_SLOT = struct.Struct("=Qqd")  # key hash, count, when
WINDOW = 16  # slots a key may occupy, from its hash on
_WINDOW = struct.Struct("=" + "Qqd" * WINDOW)  # a key's window, read in one call
# Login failures and known (account, address) pairs remembered by all processes together:
# 400,000 slots, 9.6 MB of shared memory when a flood of addresses has touched every page.
LOGIN_ENTRIES = 100_000


def _size(slots: int) -> int:
    return (slots + WINDOW) * _SLOT.size


def _key_hash(key: str) -> int:
    value = int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"),
                                           digest_size=8).digest(), "little")
    return value or 1  # 0 marks an empty slot


class SharedTable:
    """``key -> (count, when)`` in shared memory, for every process holding its descriptor."""

    def __init__(self, fd: int, slots: int, *, evicting: bool) -> None:
        if slots < WINDOW:
            raise ValueError(f"a shared table needs at least {WINDOW} slots, not {slots}")
        self.fd = fd
        self.slots = slots
        self.evicting = evicting
        # WINDOW spare slots after the last: a window never wraps around, so it is one read.
        self._map = mmap.mmap(fd, _size(slots))
        self._depth = 0  # nesting of locked(): the lock is taken once

    @classmethod
    def create(cls, entries: int, *, evicting: bool) -> SharedTable:
        """A new, empty table for about ``entries`` keys; pass ``fd`` to the workers
        (pass_fds) and :meth:`attach` there."""
        slots = max(WINDOW, 4 * entries)
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("postoffice-shared-limits", os.MFD_CLOEXEC)
        else:  # not Linux: an unlinked temporary file serves as well
            with tempfile.TemporaryFile() as file:
                fd = os.dup(file.fileno())
        os.ftruncate(fd, _size(slots))  # reads as zeros: every slot empty
        return cls(fd, slots, evicting=evicting)

    def locked(self) -> SharedTable:
        """``with table.locked():`` holds the table's lock (against the other processes) for
        several operations; each operation also takes it alone."""
        return self

    def __enter__(self) -> None:
        if self._depth == 0:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def get(self, key: str) -> tuple[int, float]:
        """``(count, when)`` of ``key``; ``(0, 0.0)`` when it is not in the table."""
        with self.locked():
            slot, _ = self._scan(_key_hash(key))
            if slot < 0:
                return 0, 0.0
            _, count, when = _SLOT.unpack_from(self._map, slot * _SLOT.size)
            return count, when

    def put(self, key: str, count: int, when: float) -> bool:
        """Set ``key`` (a count of 0 removes it); False if there was no room for a new key."""
        hashed = _key_hash(key)
        with self.locked():
            slot, room = self._scan(hashed)
            return self._write(slot if slot >= 0 else room, hashed, count, when)

    def add(self, key: str, delta: int, when: float, limit: int | None = None) -> bool:
        """Add ``delta`` to the count of ``key`` unless that takes it above ``limit`` or below
        0, or there is no room for a new key: then False, and nothing changed."""
        hashed = _key_hash(key)
        with self.locked():
            slot, room = self._scan(hashed)
            count = _SLOT.unpack_from(self._map, slot * _SLOT.size)[1] if slot >= 0 else 0
            if count + delta < 0 or (limit is not None and count + delta > limit):
                return False
            return self._write(slot if slot >= 0 else room, hashed, count + delta, when)

    def __len__(self) -> int:
        """Keys held (a full scan: for tests and metrics)."""
        with self.locked():
            return sum(1 for key, _, _ in _SLOT.iter_unpack(self._map) if key)

    def close(self) -> None:
        """Unmap the table and close its descriptor (idempotent)."""
        if self.fd >= 0:
            self._map.close()
            os.close(self.fd)
            self.fd = -1

    def _scan(self, hashed: int) -> tuple[int, int]:
        """The slot holding ``hashed`` (or -1), and the slot a new key would take: the first
        empty one, else (evicting) the oldest, else -1."""
        start = hashed % self.slots
        fields = _WINDOW.unpack_from(self._map, start * _SLOT.size)
        keys = fields[0::3]
        if hashed in keys:
            return start + keys.index(hashed), -1
        if 0 in keys:
            return -1, start + keys.index(0)
        if not self.evicting:
            return -1, -1
        whens = fields[2::3]
        return -1, start + whens.index(min(whens))

    def _write(self, slot: int, hashed: int, count: int, when: float) -> bool:
        if count == 0:
            if slot >= 0:
                _SLOT.pack_into(self._map, slot * _SLOT.size, 0, 0, 0.0)
            return True
        if slot < 0:
            return False
        _SLOT.pack_into(self._map, slot * _SLOT.size, hashed, count, when)
        return True


@dataclass(frozen=True)
class SharedLimits:
    """The tables of one `serve`: open connections (never evicted) and login failures and
    successes (the oldest evicted when full)."""

    connections: SharedTable
    logins: SharedTable

    @classmethod
    def create(cls, max_connections: int, login_entries: int = LOGIN_ENTRIES) -> SharedLimits:
        """``max_connections``: of every process together (each holds one count at a time, but
        a count moves to a new key at login); ``login_entries``: failures and known pairs."""
        return cls(SharedTable.create(2 * max_connections, evicting=False),
                   SharedTable.create(login_entries, evicting=True))

    @property
    def handles(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """``(fd, slots)`` of each table, for a worker's :meth:`attach`."""
        return (self.connections.fd, self.connections.slots), (self.logins.fd, self.logins.slots)

    @classmethod
    def attach(cls, handles: tuple[tuple[int, int], tuple[int, int]]) -> SharedLimits:
        (cfd, cslots), (lfd, lslots) = handles
        return cls(SharedTable(cfd, cslots, evicting=False), SharedTable(lfd, lslots, evicting=True))

    def close(self) -> None:
        self.connections.close()
        self.logins.close()
