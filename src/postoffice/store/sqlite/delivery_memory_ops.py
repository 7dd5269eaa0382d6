"""Filtered delivery in one transaction, and the per-account memory of Sieve (issue 17).

See store/delivery_memory_interface.py for the contract.
"""

from __future__ import annotations

import sqlite3
import time

from postoffice.store.blobs import BlobStore
from postoffice.store.delivery_memory_interface import DeliveryPlan, MemoryEntry, PlanResult
from postoffice.store.interface import InvalidName, TargetResult
from postoffice.store.sqlite import message_ops as m
from postoffice.store.sqlite import queue_ops
from postoffice.store.sqlite.mailbox_ops import create_mailbox, get_mailbox
from postoffice.store.sqlite.writer import Transaction


def deliver_plan(tx: Transaction, blobs: BlobStore, plan: DeliveryPlan) -> PlanResult:
    queue_ids = [queue_ops.enqueue(tx, blobs, message, envelope) for message, envelope in plan.queue]
    results: list[TargetResult] = []
    fell_back: list[int] = []
    for index, copy in enumerate(plan.copies):
        target = copy.target
        if target.special_use is None and get_mailbox(tx.conn, target.account_id, target.mailbox) is None:
            try:
                if not copy.create:
                    raise InvalidName("no such mailbox")
                create_mailbox(tx, target.account_id, target.mailbox, None, subscribed=True)
            except InvalidName:  # missing, or a name no mailbox may have: INBOX (message_ops.deliver)
                fell_back.append(index)
        (result,), _ = m.deliver(tx, blobs, plan.contents[copy.content], [target], None)
        results.append(result)
    for entry in plan.remember:
        _remember(tx, entry)
    return PlanResult(results, queue_ids, tuple(fell_back))


def _remember(tx: Transaction, entry: MemoryEntry) -> None:
    tx.execute(
        "INSERT INTO delivery_memory(account_id, kind, key, expires) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(account_id, kind, key) DO UPDATE SET expires = excluded.expires",
        (entry.account_id, entry.kind, entry.key, entry.expires),
    )


def remembered(conn: sqlite3.Connection, account_id: int, kind: str, key: str, now: float) -> bool:
    return conn.execute(
        "SELECT 1 FROM delivery_memory WHERE account_id = ? AND kind = ? AND key = ? AND expires > ?",
        (account_id, kind, key, now),
    ).fetchone() is not None


def forget_expired(tx: Transaction, now: float | None = None) -> int:
    cutoff = time.time() if now is None else now
    return int(tx.execute("DELETE FROM delivery_memory WHERE expires <= ?", (cutoff,)).rowcount)
