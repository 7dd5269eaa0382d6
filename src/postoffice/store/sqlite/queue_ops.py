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
    QueueAttemptRecord,
    QueueAttemptResult,
    QueuedMessage,
    QueuedRecipient,
    QueueSummary,
)
from postoffice.store.sqlite.writer import Transaction


def enqueue(tx: Transaction, blobs: BlobStore, message: NewMessage, envelope: OutboundMessage) -> int:
    from postoffice.store.sqlite.message_ops import insert_blob  # one place inserts blobs

    blob_id = insert_blob(tx, blobs, message.blob, message.raw)
    recipients = _recipients_json(envelope.recipients)
    now = time.time()
    row = tx.execute(
        "INSERT INTO queue(blob, sender, recipients, envid, ret, auth_account, created, next_attempt)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (blob_id, envelope.sender, recipients, envelope.envid, envelope.ret, envelope.auth_account, now, now),
    ).fetchone()
    if envelope.requiretls:  # a table of its own, like holds: no new column, no schema upgrade
        tx.execute("INSERT INTO queue_requiretls(queue_id) VALUES (?)", (row[0],))
    return int(row[0])


def _recipients_json(recipients: tuple[QueuedRecipient, ...]) -> str:
    return json.dumps([
        {"address": r.address, "notify": list(r.notify), "orcpt": r.orcpt, "status": r.status,
         **({"delay_warned": True} if r.delay_warned else {})}
        for r in recipients
    ])


def _queued(row: tuple[Any, ...]) -> QueuedMessage:
    recipients = tuple(
        QueuedRecipient(r["address"], tuple(r["notify"]), r["orcpt"], r["status"], bool(r.get("delay_warned")))
        for r in json.loads(row[3])
    )
    return QueuedMessage(
        id=row[0], blob=row[1], size=row[2],
        envelope=OutboundMessage(row[4], recipients, row[5], row[6], row[7], requiretls=bool(row[13])),
        created=row[8], next_attempt=row[9], attempts=row[10], last_error=row[11], held=bool(row[12]),
    )


_SELECT = (
    "SELECT q.id, b.sha256, b.size, q.recipients, q.sender, q.envid, q.ret, q.auth_account,"
    " q.created, q.next_attempt, q.attempts, q.last_error, h.queue_id IS NOT NULL,"
    " t.queue_id IS NOT NULL"
    " FROM queue q JOIN blobs b ON b.id = q.blob LEFT JOIN queue_holds h ON h.queue_id = q.id"
    " LEFT JOIN queue_requiretls t ON t.queue_id = q.id"
)


def list_queue(conn: sqlite3.Connection) -> list[QueuedMessage]:
    return [_queued(r) for r in conn.execute(_SELECT + " ORDER BY q.id").fetchall()]


def queue_summary(conn: sqlite3.Connection) -> QueueSummary:
    row = conn.execute(
        "SELECT count(*), count(h.queue_id), coalesce(sum(q.attempts > 0), 0), min(q.created)"
        " FROM queue q LEFT JOIN queue_holds h ON h.queue_id = q.id").fetchone()
    return QueueSummary(int(row[0]), int(row[1]), int(row[2]), row[3])


def get_queued(conn: sqlite3.Connection, queue_id: int) -> QueuedMessage:
    row = conn.execute(_SELECT + " WHERE q.id = ?", (queue_id,)).fetchone()
    if row is None:
        raise NotFound(f"There is no queued message {queue_id}.")
    return _queued(row)


def queue_attempts(conn: sqlite3.Connection, queue_id: int) -> list[QueueAttemptRecord]:
    rows = conn.execute(
        "SELECT time, recipient, outcome, host, address, reply, tls FROM queue_attempts"
        " WHERE queue_id = ? ORDER BY id", (queue_id,)
    ).fetchall()
    return [QueueAttemptRecord(*row) for row in rows]


def remove_from_queue(tx: Transaction, queue_id: int) -> None:
    if not _remove_entry(tx, queue_id):
        raise NotFound(f"There is no queued message {queue_id}.")


def _remove_entry(tx: Transaction, queue_id: int) -> bool:
    from postoffice.store.sqlite.message_ops import schedule_blob_cleanup

    row = tx.execute("DELETE FROM queue WHERE id = ? RETURNING blob", (queue_id,)).fetchone()
    if row is None:
        return False
    # Not a trigger: stores made before these tables keep their old queue_removed trigger.
    tx.execute("DELETE FROM queue_attempts WHERE queue_id = ?", (queue_id,))
    tx.execute("DELETE FROM queue_holds WHERE queue_id = ?", (queue_id,))
    tx.execute("DELETE FROM queue_requiretls WHERE queue_id = ?", (queue_id,))
    schedule_blob_cleanup(tx, [row[0]])
    return True


def retry_queued(tx: Transaction, queue_id: int) -> None:
    cur = tx.execute("UPDATE queue SET next_attempt = ? WHERE id = ?", (time.time(), queue_id))
    if cur.rowcount == 0:
        raise NotFound(f"There is no queued message {queue_id}.")


def hold_queued(tx: Transaction, queue_id: int, held: bool) -> None:
    if tx.execute("SELECT 1 FROM queue WHERE id = ?", (queue_id,)).fetchone() is None:
        raise NotFound(f"There is no queued message {queue_id}.")
    if held:
        tx.execute("INSERT OR IGNORE INTO queue_holds(queue_id, since) VALUES (?, ?)", (queue_id, time.time()))
    else:
        tx.execute("DELETE FROM queue_holds WHERE queue_id = ?", (queue_id,))


def flush_queue(tx: Transaction) -> int:
    cur = tx.execute("UPDATE queue SET next_attempt = min(next_attempt, ?)"
                     " WHERE id NOT IN (SELECT queue_id FROM queue_holds)", (time.time(),))
    return int(cur.rowcount)


def claim_due(tx: Transaction, owner: str, now: float, lease_seconds: float, limit: int) -> list[QueuedMessage]:
    """Lease due entries in one write: the runner polls this every second, so it must be cheap
    when nothing is due (the queue_due index answers that)."""
    ids = [row[0] for row in tx.execute(
        "SELECT id FROM queue WHERE next_attempt <= ? AND (lease_until IS NULL OR lease_until < ?)"
        " AND id NOT IN (SELECT queue_id FROM queue_holds) ORDER BY next_attempt LIMIT ?",
        (now, now, limit),
    ).fetchall()]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    tx.execute(f"UPDATE queue SET lease_owner = ?, lease_until = ? WHERE id IN ({marks})",
               (owner, now + lease_seconds, *ids))
    rows = tx.execute(_SELECT + f" WHERE q.id IN ({marks}) ORDER BY q.next_attempt", ids).fetchall()
    return [_queued(r) for r in rows]


def renew_lease(tx: Transaction, queue_id: int, owner: str, until: float) -> bool:
    cur = tx.execute("UPDATE queue SET lease_until = ? WHERE id = ? AND lease_owner = ?", (until, queue_id, owner))
    return cur.rowcount == 1


def finish_attempt(tx: Transaction, queue_id: int, owner: str, result: QueueAttemptResult) -> bool:
    row = tx.execute("SELECT lease_owner FROM queue WHERE id = ?", (queue_id,)).fetchone()
    if row is None or row[0] != owner:
        return False
    if result.next_attempt is None:
        _remove_entry(tx, queue_id)
        return True
    for a in result.attempts:
        tx.execute(
            "INSERT INTO queue_attempts(queue_id, time, recipient, host, address, reply, outcome, tls)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (queue_id, a.time, a.recipient, a.host, a.address, a.reply, a.outcome, a.tls),
        )
    tx.execute(
        "UPDATE queue SET recipients = ?, next_attempt = ?, last_error = ?, attempts = attempts + 1,"
        " lease_owner = NULL, lease_until = NULL WHERE id = ?",
        (_recipients_json(result.recipients), result.next_attempt, result.last_error, queue_id),
    )
    return True


def release_leases(tx: Transaction, owners: list[str]) -> int:
    if not owners:
        return 0
    marks = ",".join("?" * len(owners))
    cur = tx.execute(f"UPDATE queue SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IN ({marks})", owners)
    return int(cur.rowcount)


def lease_owners(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT lease_owner FROM queue WHERE lease_owner IS NOT NULL")]
