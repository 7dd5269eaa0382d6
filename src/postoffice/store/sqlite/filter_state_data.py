"""SqliteStore's junk-learning and greylisting methods (a mixin of store.py; the rows are
filter_state_ops.py's).

Every delivery scored for spam asks for each account's training totals (most accounts never
train, and then that is all the classifier does), so the totals are kept in memory: a change
made through this store object is seen at once, one made by another process (the trainer runs
in the main process of `serve`, deliveries also in its workers) within `RECHECK_SECONDS`, when
the totals' version number, which triggers bump on every change, is looked at again. Measured:
that read, on a reader thread per account and message, was a fifth of what filtering added to
a delivery for accounts that had not trained.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

from postoffice.store.filter_state_interface import (
    GreylistState,
    JunkLesson,
    JunkTotals,
    JunkTrainingRequest,
    TokenCounts,
)
from postoffice.store.sqlite import filter_state_ops as fs
from postoffice.store.sqlite.versioned_cache import VersionedCache
from postoffice.store.sqlite.writer import Transaction

T = TypeVar("T")
RECHECK_SECONDS = 1.0
_CACHED_ACCOUNTS = 100_000


class FilterStateData:
    # Provided by SqliteStore.
    async def _read(self, fn: Callable[..., T], *args: object) -> T:
        raise NotImplementedError

    async def _write(self, fn: Callable[[Transaction], T]) -> T:
        raise NotImplementedError

    async def queue_junk_training(self, account_id: int, sha256: str, spam: bool) -> None:
        await self._write(lambda tx: fs.add_training(tx, account_id, sha256, spam))

    async def pending_junk_training(self, limit: int = 100) -> list[JunkTrainingRequest]:
        return await self._read(fs.pending_training, limit)

    async def learn_junk(self, lessons: Sequence[JunkLesson], now: float) -> int:
        batch = list(lessons)
        try:
            return await self._write(lambda tx: fs.learn(tx, batch, now))
        finally:  # the next delivery here sees the new totals, not a second later
            self._junk_totals().changed_here()

    async def forget_junk_training(self, request_ids: Collection[int]) -> None:
        ids = list(request_ids)
        await self._write(lambda tx: fs.forget_training(tx, ids))

    async def junk_token_counts(self, account_id: int,
                                tokens: Collection[str]) -> tuple[JunkTotals, dict[str, TokenCounts]]:
        if tokens:
            return await self._read(fs.token_counts, account_id, list(tokens))
        totals = await self._junk_totals().get(
            account_id, lambda: self._totals_of(account_id))
        return totals, {}

    async def _totals_of(self, account_id: int) -> JunkTotals:
        totals, _ = await self._read(fs.token_counts, account_id, [])
        return totals

    def _junk_totals(self) -> VersionedCache[JunkTotals]:
        cache: VersionedCache[JunkTotals] | None = getattr(self, "_totals_cache", None)
        if cache is None:
            cache = VersionedCache(lambda: self._read(fs.totals_version), RECHECK_SECONDS, _CACHED_ACCOUNTS)
            self._totals_cache: VersionedCache[JunkTotals] = cache
        return cache

    async def junk_trained_as(self, account_id: int, sha256: str) -> bool | None:
        return await self._read(fs.trained_as, account_id, sha256)

    async def prune_junk_tokens(self, max_tokens: int, older_than: float) -> int:
        return await self._write(lambda tx: fs.prune_tokens(tx, max_tokens, older_than))

    async def greylist_state(self, network: str, sender: str, recipient: str) -> GreylistState:
        return await self._read(fs.greylist_state, network, sender, recipient)

    async def greylist_seen(self, network: str, sender: str, recipient: str, now: float, *,
                            first: bool = False, passed: bool = False) -> None:
        await self._write(lambda tx: fs.greylist_seen(tx, network, sender, recipient, now, first, passed))

    async def sweep_greylist(self, unpassed_before: float, passed_before: float) -> int:
        return await self._write(lambda tx: fs.sweep_greylist(tx, unpassed_before, passed_before))
