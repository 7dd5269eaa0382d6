"""A full disk under the store, on a real small tmpfs: every write fails with `StorageFull`
(never a stray OSError or sqlite3 error), leaves no temporary file and no half-written row,
reads keep working, and writes work again as soon as there is room, on the same writer."""
from __future__ import annotations

import asyncio
import errno
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from postoffice.store import open_store
from postoffice.store.blobs import BlobStore, blob_hash
from postoffice.store.disk_full import is_disk_full
from postoffice.store.interface import FlagMode, MailStore, NewMessage, StorageFull
from postoffice.store.sqlite.store import SqliteStore
from postoffice.store.sqlite.writer import Transaction
from small_disk import SmallDisk, small_disk
from store_kit import make_raw, new_account

TIMEOUT = 30


@pytest.fixture
def disk() -> Iterator[SmallDisk]:
    with small_disk(16) as mounted:
        yield mounted


@pytest.fixture
async def store(disk: SmallDisk) -> AsyncIterator[SqliteStore]:
    s = open_store("sqlite", disk.root / "store.sqlite3", disk.root / "blobs")
    assert isinstance(s, SqliteStore)
    yield s
    await s.close()


def empty_wal(store: SqliteStore) -> None:
    """Checkpoint and truncate the WAL, so that the next commit must grow it: on a full disk the
    database side fails too, not only the blob files."""
    with sqlite3.connect(store.db_path) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0


def temp_files(store: SqliteStore) -> list[Path]:
    return list((store.blobs.root / "tmp").iterdir())


async def append(store: MailStore, mailbox_id: int, raw: bytes) -> int:
    (result,) = await asyncio.wait_for(
        store.append_messages(mailbox_id, [NewMessage(await store.put_blob(raw), raw=raw)]), TIMEOUT)
    assert result.uid is not None
    return result.uid


def big_raw(n: int, size: int) -> bytes:
    return make_raw(n, body="x" * size)


async def test_full_disk_fails_writes_keeps_reads_and_recovers(store: SqliteStore, disk: SmallDisk) -> None:
    account = await new_account(store)
    inbox = await store.get_mailbox(account.id, "INBOX")
    assert inbox is not None
    acked = {await append(store, inbox.id, make_raw(1)): make_raw(1),
             await append(store, inbox.id, big_raw(2, 200_000)): big_raw(2, 200_000)}
    empty_wal(store)
    disk.fill()

    with pytest.raises(StorageFull, match="Not enough disk space"):
        await append(store, inbox.id, make_raw(3))  # small: the writer writes its file at commit
    with pytest.raises(StorageFull):
        await append(store, inbox.id, big_raw(4, 300_000))  # large: staged before the writer
    with pytest.raises(StorageFull):
        await append(store, inbox.id, make_raw(1))  # the file exists: only rows, and the WAL is full
    with pytest.raises(StorageFull):
        await asyncio.wait_for(store.store_flags(inbox.id, list(acked), FlagMode.ADD, ["\\Flagged"]), TIMEOUT)
    assert temp_files(store) == []

    # Reads go on as before.
    records = await store.list_messages(inbox.id)
    assert [r.uid for r in records] == sorted(acked)
    assert all(not r.flags for r in records)
    for record in records:
        assert await store.read_blob(record.blob) == acked[record.uid]

    disk.free()
    acked[await append(store, inbox.id, make_raw(3))] = make_raw(3)
    acked[await append(store, inbox.id, big_raw(4, 300_000))] = big_raw(4, 300_000)
    await asyncio.wait_for(store.store_flags(inbox.id, list(acked), FlagMode.ADD, ["\\Flagged"]), TIMEOUT)
    records = await store.list_messages(inbox.id)
    assert [r.uid for r in records] == sorted(acked)
    assert all("\\Flagged" in r.flags for r in records)
    for record in records:
        assert await store.read_blob(record.blob) == acked[record.uid]
    assert temp_files(store) == []


async def test_a_job_that_does_not_fit_fails_alone_in_its_batch(store: SqliteStore, disk: SmallDisk) -> None:
    """Group commit puts concurrent writes in one transaction; when its blob files do not fit,
    only the job that needs the room fails: a flag change in the same batch goes through."""
    account = await new_account(store)
    inbox = await store.get_mailbox(account.id, "INBOX")
    assert inbox is not None
    uid = await append(store, inbox.id, make_raw(1))
    empty_wal(store)
    disk.fill()
    disk.leave_free(128 * 1024)  # room for a few WAL pages, not for 3 x 60 KB of message files
    big = [make_raw(n, body="y" * 60_000) for n in (2, 3, 4)]
    messages = [NewMessage(await store.put_blob(raw), raw=raw) for raw in big]
    assert all(m.blob.staged is None for m in messages)  # written by the writer at commit

    # Hold the writer so that both jobs wait in its queue and make one batch.
    release = threading.Event()

    def hold(tx: Transaction) -> None:
        release.wait(TIMEOUT)

    held = asyncio.ensure_future(store.run_write(hold))
    await asyncio.sleep(0.2)
    appending = asyncio.ensure_future(store.append_messages(inbox.id, messages))
    flagging = asyncio.ensure_future(store.store_flags(inbox.id, [uid], FlagMode.ADD, ["\\Seen"]))
    await asyncio.sleep(0.2)
    release.set()
    await asyncio.wait_for(held, TIMEOUT)
    with pytest.raises(StorageFull):
        await asyncio.wait_for(appending, TIMEOUT)
    flagged = await asyncio.wait_for(flagging, TIMEOUT)
    assert [u.uid for u in flagged.updated] == [uid]
    assert [(r.uid, r.flags) for r in await store.list_messages(inbox.id)] == [(uid, frozenset({"\\Seen"}))]
    assert temp_files(store) == []


async def test_writer_survives_sqlite_rolling_back_the_whole_transaction(tmp_path: Path) -> None:
    """After SQLITE_FULL or an I/O error SQLite may roll back the whole transaction by itself
    (https://sqlite.org/lang_transaction.html, "Response To Errors Within A Transaction").
    Fault injection, as a tmpfs cannot produce an I/O error: a job ends the transaction and
    raises. Only that job fails; the one batched with it goes through, and so do later writes
    (old code: ROLLBACK TO raised out of the writer thread, and every later write hung)."""
    store = open_store("sqlite", tmp_path / "store.sqlite3", tmp_path / "blobs")
    try:
        account = await new_account(store)
        inbox = await store.get_mailbox(account.id, "INBOX")
        assert inbox is not None
        uid = await append(store, inbox.id, make_raw(1))
        release = threading.Event()

        def hold(tx: Transaction) -> None:
            release.wait(TIMEOUT)

        def lost(tx: Transaction) -> None:
            tx.execute("ROLLBACK")
            raise sqlite3.OperationalError("disk I/O error")

        held = asyncio.ensure_future(store.run_write(hold))
        await asyncio.sleep(0.2)
        failing = asyncio.ensure_future(store.run_write(lost))
        flagging = asyncio.ensure_future(store.store_flags(inbox.id, [uid], FlagMode.ADD, ["\\Seen"]))
        await asyncio.sleep(0.2)
        release.set()
        await asyncio.wait_for(held, TIMEOUT)
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            await asyncio.wait_for(failing, TIMEOUT)
        assert [u.uid for u in (await asyncio.wait_for(flagging, TIMEOUT)).updated] == [uid]
        later = await append(store, inbox.id, make_raw(2))
        assert [r.uid for r in await store.list_messages(inbox.id)] == [uid, later]
    finally:
        await store.close()


def test_a_batch_of_blob_files_that_does_not_fit_leaves_no_temp_file(disk: SmallDisk) -> None:
    """The import path writes many files, flushes once, then renames: a full disk half-way
    removes the temporary files already written."""
    blobs = BlobStore(disk.root / "blobs")
    disk.fill()
    disk.leave_free(1 << 20)
    items = [(blob_hash(raw), raw) for raw in (bytes([n]) * 100_000 for n in range(20))]
    with pytest.raises(OSError) as caught:
        blobs.write_many(items)
    assert is_disk_full(caught.value)
    assert list((disk.root / "blobs" / "tmp").iterdir()) == []
    assert not any(blobs.exists(sha) for sha, _ in items)
    disk.free()
    blobs.write_many(items)
    assert all(blobs.read(sha) == raw for sha, raw in items)
    assert list((disk.root / "blobs" / "tmp").iterdir()) == []


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EDQUOT, "Disk quota exceeded"),  # a file-system quota: no tmpfs can show it here
])
def test_quota_and_no_space_are_both_disk_full(error: OSError) -> None:
    assert is_disk_full(error)
    assert not is_disk_full(OSError(errno.EIO, "Input/output error"))
    assert not is_disk_full(sqlite3.IntegrityError("UNIQUE constraint failed"))
