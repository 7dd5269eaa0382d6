"""Bulk import of mail files into a user's mailboxes, fast and crash-safe.

The pipeline: the reader yields `SourceMessage`s; the main process drops those the target
mailbox already held when the import began, compared by `dedup.fingerprint` as a multiset
(unless duplicates are allowed): re-importing a file adds nothing, even when a POP3 client
added header fields of its own to its copy, and a message the file holds twice is stored
twice. Worker processes parse the rest and write their blob files durably
(`store.indexing.index_message`); the store's single writer then inserts a batch of rows in one
transaction. Only after that commit is a message reported as stored, so a crash at any point
loses nothing that was reported, and a rerun completes the import without duplicates.

While the writer commits batch N the workers already parse batch N+1. Blob files of a batch are
made durable together (see `BlobStore.write_many`): per-file fsyncs, not parsing, were the
bottleneck on two cores.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from postoffice.store.blobs import BlobStore, blob_hash
from postoffice.store.disk_full import as_storage_full
from postoffice.store.indexing import index_message
from postoffice.store.interface import AccountRecord, IndexedBlob, MailStore, NewMessage
from postoffice.transfer.dedup import DuplicateFilter, fingerprint
from postoffice.transfer.source import SourceMessage
from postoffice.transfer.stored_fingerprints import mailbox_fingerprints

BATCH = 250


@dataclass(frozen=True, slots=True)
class StoredMessage:
    source_id: str
    mailbox: str
    uid: int
    sha256: str


@dataclass
class ImportStats:
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    bytes: int = 0
    mailboxes_created: list[str] = field(default_factory=list)


def _index_batch(blob_root: str, items: list[tuple[str, bytes]]) -> list[IndexedBlob]:
    """Worker-process entry point: durable blob files plus parsed metadata."""
    blobs = BlobStore(Path(blob_root))
    blobs.write_many(items)
    return [index_message(raw, None, sha) for sha, raw in items]


def _fingerprints(messages: list[SourceMessage]) -> list[str]:
    return [fingerprint(m.raw) for m in messages]


def _batches(messages: Iterable[SourceMessage], size: int) -> Iterator[list[SourceMessage]]:
    batch: list[SourceMessage] = []
    for message in messages:
        batch.append(message)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class Importer:
    """Imports into one account; `into` is the mailbox for sources that do not name folders."""

    def __init__(
        self,
        store: MailStore,
        account: AccountRecord,
        *,
        into: str | None = None,
        allow_duplicates: bool = False,
        workers: int | None = None,
        on_stored: Callable[[list[StoredMessage]], None] | None = None,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.account = account
        self.into = into
        self.allow_duplicates = allow_duplicates
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.on_stored = on_stored
        self.on_read = on_read
        self.stats = ImportStats()
        self._mailbox_ids: dict[str, int] = {}
        # What each mailbox held when the import began; none for one that was empty (true
        # duplicates within the source are all stored, so nothing needs fingerprinting).
        self._present: dict[int, DuplicateFilter] = {}

    async def run(self, messages: Iterable[SourceMessage]) -> ImportStats:
        executor = self._executor()
        try:
            pending: asyncio.Task[None] | None = None
            loop = asyncio.get_running_loop()
            # Reading the file runs in a thread too, so the loop stays free for the writer's results.
            batches = _batches(messages, BATCH)
            while True:
                batch = await loop.run_in_executor(None, next, batches, None)
                if batch is None:
                    break
                self.stats.read += len(batch)
                if self.on_read is not None:
                    self.on_read(len(batch))
                work = await self._prepare(batch, executor)
                if pending is not None:
                    await pending
                pending = asyncio.create_task(self._commit(work))
            if pending is not None:
                await pending
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        return self.stats

    def _executor(self) -> Executor:
        if self.workers <= 1:
            return ThreadPoolExecutor(max_workers=1)
        # spawn, not fork: the store runs threads, and forking a threaded process is unsafe.
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))

    async def _mailbox_id(self, folder: str) -> int:
        name = self.into or folder or "INBOX"
        if name not in self._mailbox_ids:
            mailbox = await self.store.get_mailbox(self.account.id, name)
            if mailbox is None:
                mailbox = await self.store.create_mailbox(self.account.id, name, subscribed=True)
                self.stats.mailboxes_created.append(mailbox.name)
            if not self.allow_duplicates and (await self.store.mailbox_status(mailbox.id)).messages:
                self._present[mailbox.id] = DuplicateFilter(
                    await mailbox_fingerprints(self.store, mailbox.id)
                )
            self._mailbox_ids[name] = mailbox.id
        return self._mailbox_ids[name]

    async def _prepare(
        self, batch: list[SourceMessage], executor: Executor
    ) -> list[tuple[int, list[tuple[SourceMessage, str]], asyncio.Future[list[IndexedBlob]]]]:
        """Group by mailbox, drop duplicates, and start parsing in the workers."""
        by_mailbox: dict[int, list[tuple[SourceMessage, str]]] = {}
        for message in batch:
            by_mailbox.setdefault(await self._mailbox_id(message.folder), []).append(
                (message, blob_hash(message.raw))
            )
        loop = asyncio.get_running_loop()
        work = []
        blob_root = str(self.store.blobs.root)  # type: ignore[attr-defined]
        for mailbox_id, items in by_mailbox.items():
            present = self._present.get(mailbox_id)
            if present:
                fingerprints = await asyncio.to_thread(_fingerprints, [m for m, _ in items])
                fresh: list[tuple[SourceMessage, str]] = []
                for (message, sha), fp in zip(items, fingerprints, strict=True):
                    if present.is_duplicate(fp):
                        self.stats.duplicates += 1
                    else:
                        fresh.append((message, sha))
                items = fresh
            if not items:
                continue
            # Split across workers so both cores parse one batch.
            parts = max(1, min(self.workers, len(items) // 50))
            step = -(-len(items) // parts)
            futures = [
                loop.run_in_executor(
                    executor, _index_batch, blob_root, [(sha, m.raw) for m, sha in items[i:i + step]]
                )
                for i in range(0, len(items), step)
            ]
            work.append((mailbox_id, items, _concat(futures)))
        return work

    async def _commit(
        self, work: list[tuple[int, list[tuple[SourceMessage, str]], asyncio.Future[list[IndexedBlob]]]]
    ) -> None:
        for mailbox_id, items, indexed_future in work:
            try:
                indexed = await indexed_future
            except OSError as exc:  # the workers write the blob files
                raise as_storage_full(exc, f"message files in {self.store.blobs.root}") from exc  # type: ignore[attr-defined]
            new = [
                NewMessage(
                    blob,
                    message.flags,
                    message.internal_date.timestamp() if message.internal_date else None,
                    message.raw,
                )
                for (message, _), blob in zip(items, indexed, strict=True)
            ]
            results = await self.store.append_messages(mailbox_id, new)
            stored = []
            name = next(n for n, i in self._mailbox_ids.items() if i == mailbox_id)
            for (message, sha), result in zip(items, results, strict=True):
                if result.uid is None:
                    self.stats.duplicates += 1
                    continue
                self.stats.stored += 1
                self.stats.bytes += len(message.raw)
                stored.append(StoredMessage(message.source_id, name, result.uid, sha))
            if self.on_stored is not None and stored:
                self.on_stored(stored)


def _concat(futures: list[asyncio.Future[list[IndexedBlob]]]) -> asyncio.Future[list[IndexedBlob]]:
    async def gather() -> list[IndexedBlob]:
        parts = await asyncio.gather(*futures)
        return [blob for part in parts for blob in part]

    return asyncio.ensure_future(gather())
