"""The single writer thread of the SQLite backend, with group commit.

Theory of operation: every write is a function `job(tx) -> result` queued to one thread that
owns the only write connection. The thread takes every job waiting in the queue, runs each in
its own SAVEPOINT inside one transaction (so one failing job rolls back alone), commits once,
and only then resolves the callers' futures and publishes their change events. One fsync of the
WAL thus covers many concurrent deliveries, which is what lets a busy SMTP listener answer 250
quickly while never answering it before the data is durable.

Post-commit actions (removing blob files whose last reference went away) run on this thread
after the commit, so they are serialised with every other write.

When a batch cannot be committed (a full disk: no room for a blob file or for the WAL to grow;
an I/O error after which SQLite rolled the whole transaction back), it is rolled back and each
of its jobs is run again alone, so only those that cannot be done fail (on a full disk with
`StorageFull`); the thread and its connection stay usable, and writes succeed again as soon as
there is room (no restart).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from postoffice.store.blobs import BlobStore
from postoffice.store.changes import ChangeNotifier, MailboxChange
from postoffice.store.disk_full import as_storage_full
from postoffice.store.sqlite.blob_holds import BlobHolds
from postoffice.store.sqlite.schema import connect

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BATCH = 256


@dataclass
class Transaction:
    """What a job sees: the connection, and where to record effects visible after commit."""

    conn: sqlite3.Connection
    blobs: BlobStore
    # Which expunged messages must stay readable, so their blobs are not removed yet.
    holds: BlobHolds | None = None
    changes: list[MailboxChange] = field(default_factory=list)
    staged: list[tuple[Path, str]] = field(default_factory=list)  # blob files to promote at commit
    unwritten: list[tuple[str, bytes]] = field(default_factory=list)  # blobs to write at commit
    after_commit: list[Callable[[], object]] = field(default_factory=list)

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)


@dataclass
class _Job:
    fn: Callable[[Transaction], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class WriterThread:
    def __init__(self, path: Path, blobs: BlobStore, notifier: ChangeNotifier,
                 holds: BlobHolds | None = None) -> None:
        self._path = path
        self._where = f"the mail store in {path.parent}"
        self._blobs = blobs
        self._holds = holds
        self._notifier = notifier
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None
        # change_log rows this process wrote: its own events are published directly, so the
        # watcher of other processes' changes skips these.
        self.own_change_seqs: set[int] = set()
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error

    async def run(self, fn: Callable[[Transaction], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, loop, future))
        return await future

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    # --- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            conn = connect(self._path, writer=True)
        except BaseException as exc:  # reported to the constructor
            self._error = exc
            self._started.set()
            return
        self._started.set()
        turn = _open_turn(self._path)
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            _take_turn(turn)
            batch = [first]  # with what came while waiting for the turn
            while len(batch) < MAX_BATCH:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            try:
                self._run_batch(conn, batch)
            except BaseException as exc:  # a bug here must not end the thread: later writes would hang
                log.exception("store writer failed")
                _roll_back(conn)
                for job in batch:
                    _resolve(job, None, exc)
            finally:
                _give_turn(turn)
        conn.close()
        if turn is not None:
            os.close(turn)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:  # (after busy_timeout) nothing ran: every job fails alike
            for job in batch:
                _resolve(job, None, as_storage_full(exc, self._where))
            return
        try:
            tx, outcomes = self._attempt(conn, batch)
        except Exception as exc:  # nothing of the batch was committed
            _roll_back(conn)
            if len(batch) > 1:
                # Only some jobs may need what is missing (room for a blob, a WAL that must
                # grow), or one job's failure took the others' work with it: each alone, so
                # that only the jobs that cannot be done fail.
                for job in batch:
                    self._run_batch(conn, [job])
                return
            failure = as_storage_full(exc, self._where)
            if failure is exc:
                log.error("store commit failed: %s", exc)
            for job in batch:
                _resolve(job, None, failure)
            return
        for action in tx.after_commit:
            try:
                action()
            except Exception:
                log.exception("post-commit action failed")
        self._notifier.publish_threadsafe(tx.changes)
        for job, result, error in outcomes:
            _resolve(job, result, error)

    def _attempt(self, conn: sqlite3.Connection,
                 batch: list[_Job]) -> tuple[Transaction, list[tuple[_Job, Any, BaseException | None]]]:
        """Run the batch's jobs in the open transaction, each in its savepoint, and commit;
        raises when nothing could be committed (the caller rolls back). A job that fails alone
        is rolled back alone."""
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        tx = Transaction(conn, self._blobs, self._holds)
        for job in batch:
            marks = len(tx.changes), len(tx.after_commit), len(tx.staged), len(tx.unwritten)
            conn.execute("SAVEPOINT job")
            try:
                result = job.fn(tx)
                conn.execute("RELEASE job")
                outcomes.append((job, result, None))
            except Exception as exc:
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back by itself (it may on SQLITE_FULL
                    # or an I/O error): the jobs before this one are undone too.
                    raise
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                del tx.changes[marks[0]:]
                del tx.after_commit[marks[1]:]
                del tx.staged[marks[2]:]
                del tx.unwritten[marks[3]:]
                outcomes.append((job, None, as_storage_full(exc, self._where)))
        recorded = _record_changes(conn, tx.changes, self.own_change_seqs)
        try:
            if tx.staged or tx.unwritten:  # the files new rows point to are durable first
                self._blobs.promote(tx.staged, tx.unwritten)
            conn.execute("COMMIT")
        except BaseException:
            self.own_change_seqs.difference_update(recorded)  # those numbers are free again
            raise
        return tx, outcomes


def _roll_back(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.error("store rollback failed: %s", exc)


def _record_changes(conn: sqlite3.Connection, changes: list[MailboxChange], own: set[int]) -> list[int]:
    recorded = []
    for c in changes:
        cur = conn.execute(
            "INSERT INTO change_log(mailbox_id, kind, modseq, uids, created)"
            " VALUES (?, ?, ?, ?, unixepoch('now'))",
            (c.mailbox_id, c.kind.value, c.modseq, ",".join(map(str, c.uids))),
        )
        recorded.append(cur.lastrowid or 0)
    if len(own) > 100_000:  # nobody is consuming them (no watcher in this process)
        own.clear()
    own.update(recorded)
    return recorded


def _resolve(job: _Job, result: Any, error: BaseException | None) -> None:
    def settle() -> None:
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    try:
        job.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the caller's loop is gone; nothing is waiting any more
        pass


# --- turns between processes ---------------------------------------------------------------------
# Several processes write one store (`serve` with [smtp] or [pop3] processes, the CLI beside it).
# SQLite lets one write at a time, and one that finds the write lock taken sleeps in steps of 1,
# 2, 5, 10 ... up to 100 ms before it looks again (its busy handler): two processes committing
# all the time kept missing each other's free moments, and a 250 waited seconds (measured with
# two SMTP processes: p99 5.6 s, half the throughput of one process). So the writers of all
# processes take turns on an flock(2) of a file beside the database first: a waiting writer is
# woken the moment the other's commit ends, and then finds SQLite's lock free.


def _open_turn(db_path: Path) -> int | None:
    """The descriptor of the writers' turn file, or None (SQLite's own waiting then) when it
    cannot be opened, as in a read-only directory."""
    try:
        return os.open(f"{db_path}-writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        log.warning("store writers cannot take turns through %s-writer.lock (%s); SQLite's"
                    " own waiting is used", db_path, exc.strerror)
        return None


def _take_turn(turn: int | None) -> None:
    if turn is not None:
        fcntl.flock(turn, fcntl.LOCK_EX)


def _give_turn(turn: int | None) -> None:
    if turn is not None:
        fcntl.flock(turn, fcntl.LOCK_UN)
