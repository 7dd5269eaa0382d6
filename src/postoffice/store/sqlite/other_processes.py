"""What other processes wrote to the store, noticed by polling (`SqliteStore.watch_external_changes`).

SQLite tells a process nothing about another's commits, so the main process of `serve` looks
every `interval` (50 ms) at two cheap indexed reads: the change log past the last row it saw
(mailbox changes by admin commands, imports and the worker processes of `serve`: published to
IMAP sessions like its own) and the highest outbound queue row id (rows queued by a worker's
SMTP session: the queue runner is woken instead of waiting for its next poll).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from postoffice.store.changes import ChangeKind, ChangeNotifier, MailboxChange

log = logging.getLogger(__name__)

Read = Callable[..., Awaitable[Any]]


def _last_queue_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM queue").fetchone()[0])


def _positions(conn: sqlite3.Connection) -> tuple[int, int]:
    seq = conn.execute("SELECT coalesce(max(seq), 0) FROM change_log").fetchone()[0]
    return int(seq), _last_queue_id(conn)


def _newer(conn: sqlite3.Connection, seq: int) -> tuple[list[tuple[Any, ...]], int]:
    rows = conn.execute(
        "SELECT seq, mailbox_id, kind, modseq, uids FROM change_log WHERE seq > ? ORDER BY seq", (seq,),
    ).fetchall()
    return rows, _last_queue_id(conn)


async def watch_other_processes(read: Read, changes: ChangeNotifier, own: set[int],
                                sweep_soon: Callable[[], None], interval: float,
                                on_queued: Callable[[], None] | None) -> None:
    """Forever: publish other processes' change-log rows on `changes` (`own`: sequence numbers
    this process's writer published already), `sweep_soon` after their expunges, `on_queued`
    after their new queue rows."""
    seen, queued = await read(_positions)
    while True:
        await asyncio.sleep(interval)
        try:
            rows, last_queued = await read(_newer, seen)
        except Exception:  # a transient read error must not end the watcher
            log.exception("reading the change log failed")
            continue
        if last_queued > queued:
            queued = last_queued
            if on_queued is not None:
                on_queued()
        events = []
        for seq, mailbox_id, kind, modseq, uids in rows:
            seen = seq
            # Our own writer already published its changes; the log rows are for others.
            if seq in own:
                own.discard(seq)
                continue
            events.append(MailboxChange(mailbox_id, ChangeKind(kind), modseq,
                                        tuple(int(u) for u in uids.split(",") if u)))
        if events:
            changes.publish(events)
            if any(event.kind is ChangeKind.EXPUNGE for event in events):
                # Another process expunged: the blobs it left (see keep_recently_expunged)
                # are ours to remove, as no session here holds them.
                sweep_soon()
