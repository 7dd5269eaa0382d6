"""SqliteStore's filtered-delivery and Sieve-memory methods (a mixin of store.py, like
queue_and_access.py): each hands one delivery_memory_ops function to the reader threads or the
single writer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from postoffice.store.blobs import BlobStore
from postoffice.store.delivery_memory_interface import DeliveryPlan, PlanResult
from postoffice.store.interface import IndexedBlob
from postoffice.store.sqlite import delivery_memory_ops as ops
from postoffice.store.sqlite.writer import Transaction

T = TypeVar("T")


class DeliveryMemoryData:
    # Provided by SqliteStore.
    blobs: BlobStore

    async def _read(self, fn: Callable[..., T], *args: object) -> T:
        raise NotImplementedError

    async def _write(self, fn: Callable[[Transaction], T]) -> T:
        raise NotImplementedError

    async def discard_staged(self, blobs: Iterable[IndexedBlob]) -> None:
        raise NotImplementedError

    async def deliver_plan(self, plan: DeliveryPlan) -> PlanResult:
        try:
            return await self._write(lambda tx: ops.deliver_plan(tx, self.blobs, plan))
        except BaseException:  # the staged files of a failed write go at once (a full disk)
            await self.discard_staged([c.blob for c in plan.contents] + [q[0].blob for q in plan.queue])
            raise

    async def remembered(self, account_id: int, kind: str, key: str, now: float) -> bool:
        return await self._read(ops.remembered, account_id, kind, key, now)

    async def forget_expired(self, now: float) -> int:
        return await self._write(lambda tx: ops.forget_expired(tx, now))
