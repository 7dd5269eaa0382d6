"""SqliteStore's outbound-queue, block/allow-list and DMARC-data methods (a mixin of store.py).

Each method hands one *_ops function to the store's reader threads or its single writer; kept
apart from store.py, whose job is mailboxes and messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from postoffice.mailauth.dmarc_reports import AggregateReport
from postoffice.store.interface import (
    AccessEntry,
    AccessListName,
    DmarcEvaluation,
    DmarcSourceSummary,
    QueueAttemptRecord,
    QueueAttemptResult,
    QueuedMessage,
    QueueSummary,
)
from postoffice.store.sqlite import dmarc_ops as dmarc
from postoffice.store.sqlite import lists_ops as lists
from postoffice.store.sqlite import queue_ops as q
from postoffice.store.sqlite.writer import Transaction

T = TypeVar("T")


class QueueAndAccessData:
    # Provided by SqliteStore.
    async def _read(self, fn: Callable[..., T], *args: object) -> T:
        raise NotImplementedError

    async def _write(self, fn: Callable[[Transaction], T]) -> T:
        raise NotImplementedError

    async def list_queue(self) -> list[QueuedMessage]:
        return await self._read(q.list_queue)

    async def queue_summary(self) -> QueueSummary:
        return await self._read(q.queue_summary)

    async def remove_from_queue(self, queue_id: int) -> None:
        await self._write(lambda tx: q.remove_from_queue(tx, queue_id))

    async def retry_queued(self, queue_id: int) -> None:
        await self._write(lambda tx: q.retry_queued(tx, queue_id))

    async def get_queued(self, queue_id: int) -> QueuedMessage:
        return await self._read(q.get_queued, queue_id)

    async def queue_attempts(self, queue_id: int) -> list[QueueAttemptRecord]:
        return await self._read(q.queue_attempts, queue_id)

    async def hold_queued(self, queue_id: int, held: bool) -> None:
        await self._write(lambda tx: q.hold_queued(tx, queue_id, held))

    async def flush_queue(self) -> int:
        return await self._write(q.flush_queue)

    async def claim_due_queue(self, owner: str, now: float, lease_seconds: float, limit: int) -> list[QueuedMessage]:
        return await self._write(lambda tx: q.claim_due(tx, owner, now, lease_seconds, limit))

    async def renew_queue_lease(self, queue_id: int, owner: str, until: float) -> bool:
        return await self._write(lambda tx: q.renew_lease(tx, queue_id, owner, until))

    async def finish_queue_attempt(self, queue_id: int, owner: str, result: QueueAttemptResult) -> bool:
        return await self._write(lambda tx: q.finish_attempt(tx, queue_id, owner, result))

    async def release_queue_leases(self, owners: Sequence[str]) -> int:
        return await self._write(lambda tx: q.release_leases(tx, list(owners)))

    async def queue_lease_owners(self) -> list[str]:
        return await self._read(q.lease_owners)

    # --- block/allow lists, DMARC data -------------------------------------------------------

    async def add_access_entry(self, entry: AccessEntry) -> bool:
        return await self._write(lambda tx: lists.add_access_entry(tx, entry))

    async def remove_access_entry(self, list_name: AccessListName, value: str) -> bool:
        return await self._write(lambda tx: lists.remove_access_entry(tx, list_name, value))

    async def list_access_entries(self, list_name: AccessListName | None = None) -> list[AccessEntry]:
        return await self._read(lists.list_access_entries, list_name)

    async def access_lists_version(self) -> int:
        return await self._read(lists.access_lists_version)

    async def record_dmarc_evaluation(self, evaluation: DmarcEvaluation) -> None:
        await self._write(lambda tx: dmarc.record_dmarc_evaluation(tx, evaluation))

    async def dmarc_evaluations(self, since: float = 0.0) -> list[DmarcEvaluation]:
        return await self._read(dmarc.dmarc_evaluations, since)

    async def add_dmarc_report(self, report: AggregateReport, received: float) -> bool:
        return await self._write(lambda tx: dmarc.add_dmarc_report(tx, report, received))

    async def dmarc_report_summary(self, domain: str | None = None) -> list[DmarcSourceSummary]:
        return await self._read(dmarc.dmarc_report_summary, domain)
