"""Per-account values a delivery reads from the store every time, kept in memory.

Used for the active Sieve scripts (sieve_data.py) and the junk-training totals
(filter_state_data.py): each delivery asks for them once per account, and a read on a reader
thread each time was a measurable share of the filtering cost. A version number, bumped by
triggers on every change by any process, says when the kept values are stale; it is read at
most once per `recheck_seconds`. Changes made through the same store object call
`changed_here()`, so this process sees them at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class VersionedCache(Generic[V]):
    def __init__(self, read_version: Callable[[], Awaitable[int]], recheck_seconds: float,
                 max_entries: int) -> None:
        self._read_version = read_version
        self._recheck = recheck_seconds
        self._max = max_entries
        self._checked = -math.inf
        self._version: int | None = None
        self._values: dict[int, V] = {}

    async def get(self, key: int, read: Callable[[], Awaitable[V]]) -> V:
        """The value for `key`, from memory or else from `read()` (then kept)."""
        now = time.monotonic()
        if now - self._checked >= self._recheck:
            version = await self._read_version()
            self._checked = now
            if version != self._version:
                self._version = version
                self._values = {}
        values = self._values
        if key in values:
            return values[key]
        value = await read()
        if len(values) >= self._max:
            values.clear()
        values[key] = value
        return value

    def changed_here(self) -> None:
        """A change through this store object: look at the version at the next `get`."""
        self._checked = -math.inf
