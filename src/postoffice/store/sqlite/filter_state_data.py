"""SqliteStore's junk-learning and greylisting methods (a mixin of store.py; the rows are
filter_state_ops.py's)."""

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
from postoffice.store.sqlite.writer import Transaction

T = TypeVar("T")


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
        return await self._write(lambda tx: fs.learn(tx, batch, now))

    async def forget_junk_training(self, request_ids: Collection[int]) -> None:
        ids = list(request_ids)
        await self._write(lambda tx: fs.forget_training(tx, ids))

    async def junk_token_counts(self, account_id: int,
                                tokens: Collection[str]) -> tuple[JunkTotals, dict[str, TokenCounts]]:
        return await self._read(fs.token_counts, account_id, list(tokens))

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
