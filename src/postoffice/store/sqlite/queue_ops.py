"""The outbound queue in SQLite: durable rows the queue runner leases and retries.

A queued message references its blob like a mailbox message does (triggers keep the count),
so the bytes stay on disk until the row is removed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from postoffice.store.blobs import BlobStore
from postoffice.store.interface import (
    NewMessage,
    NotFound,
    OutboundMessage,
    QueuedMessage,
    QueuedRecipient,
)
from postoffice.store.sqlite.writer import Transaction


def enqueue(tx: Transaction, blobs: BlobStore, message: NewMessage, envelope: OutboundMessage) -> int:
    from postoffice.store.sqlite.message_ops import insert_blob  # one place inserts blobs

    blob_id = insert_blob(tx, blobs, message.blob, message.raw)
    recipients = json.dumps([
        {"address": r.address, "notify": list(r.notify), "orcpt": r.orcpt, "status": r.status}
        for r in envelope.recipients
    ])
    now = time.time()
    row = tx.execute(
        "INSERT INTO queue(blob, sender, recipients, envid, ret, auth_account, created, next_attempt)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (blob_id, envelope.sender, recipients, envelope.envid, envelope.ret, envelope.auth_account, now, now),
    ).fetchone()
    return int(row[0])


def _queued(row: tuple[Any, ...]) -> QueuedMessage:
    recipients = tuple(
        QueuedRecipient(r["address"], tuple(r["notify"]), r["orcpt"], r["status"]) for r in json.loads(row[3])
    )
    return QueuedMessage(
        id=row[0], blob=row[1], size=row[2],
        envelope=OutboundMessage(row[4], recipients, row[5], row[6], row[7]),
        created=row[8], next_attempt=row[9], attempts=row[10], last_error=row[11],
    )


def list_queue(conn: sqlite3.Connection) -> list[QueuedMessage]:
    rows = conn.execute(
        "SELECT q.id, b.sha256, b.size, q.recipients, q.sender, q.envid, q.ret, q.auth_account,"
        " q.created, q.next_attempt, q.attempts, q.last_error FROM queue q JOIN blobs b ON b.id = q.blob"
        " ORDER BY q.id"
    ).fetchall()
    return [_queued(r) for r in rows]


def remove_from_queue(tx: Transaction, queue_id: int) -> None:
    from postoffice.store.sqlite.message_ops import schedule_blob_cleanup

    row = tx.execute("DELETE FROM queue WHERE id = ? RETURNING blob", (queue_id,)).fetchone()
    if row is None:
        raise NotFound(f"There is no queued message {queue_id}.")
    schedule_blob_cleanup(tx, [row[0]])


def retry_queued(tx: Transaction, queue_id: int) -> None:
    cur = tx.execute("UPDATE queue SET next_attempt = ? WHERE id = ?", (time.time(), queue_id))
    if cur.rowcount == 0:
        raise NotFound(f"There is no queued message {queue_id}.")
