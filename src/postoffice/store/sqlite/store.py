"""`SqliteStore`: the embedded `MailStore` (SQLite in WAL mode plus blob files).

Writes go to one writer thread (group commit, see writer.py); reads run on a small pool of
threads with a connection each, so neither ever blocks the event loop and readers never wait
for the writer (WAL). Changes committed by another process on the same data directory are
noticed by polling `PRAGMA data_version` and published like local ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, TypeVar

from postoffice.message.mime_model import Address, MessageMetadata
from postoffice.store.blob_info_cache import BlobInfoCache
from postoffice.store.blobs import DEFAULT_TRASH_DAYS, BlobStore
from postoffice.store.changes import ChangeKind, ChangeNotifier, MailboxChange
from postoffice.store.disk_full import as_storage_full
from postoffice.store.indexing import index_message, queue_blob
from postoffice.store.interface import (
    AccountRecord,
    AddressField,
    AliasRecord,
    AppendResult,
    BlobDamaged,
    BlobInfo,
    CopyResult,
    DeliveryTarget,
    DomainRecord,
    FlagMode,
    FlagsKept,
    GarbageCollected,
    HeaderFields,
    IndexedBlob,
    MailboxChanges,
    MailboxRecord,
    MailboxStatus,
    MessageRecord,
    NewMessage,
    OutboundMessage,
    SharedMailbox,
    StoreError,
    StoreFlagsResult,
    StoreMismatch,
    TargetResult,
)
from postoffice.store.mailbox_locks import MailboxLock, MailboxLocks
from postoffice.store.sqlite import acl_ops as acl
from postoffice.store.sqlite import directory_ops as d
from postoffice.store.sqlite import mailbox_ops as mb
from postoffice.store.sqlite import message_ops as m
from postoffice.store.sqlite import text_ops
from postoffice.store.sqlite.blob_holds import BlobHolds
from postoffice.store.sqlite.delivery_memory_data import DeliveryMemoryData
from postoffice.store.sqlite.filter_state_data import FilterStateData
from postoffice.store.sqlite.open_errors import explain_open_error
from postoffice.store.sqlite.other_processes import watch_other_processes
from postoffice.store.sqlite.queue_and_access import QueueAndAccessData
from postoffice.store.sqlite.schema import connect, create_schema
from postoffice.store.sqlite.sieve_data import SieveScriptStore
from postoffice.store.sqlite.transfer_data import TransferStoreData
from postoffice.store.sqlite.writer import Transaction, WriterThread

log = logging.getLogger(__name__)
T = TypeVar("T")
INLINE_BLOB_LIMIT = 64 * 1024
# A full-text search is cut into parts only in a store with more blobs than this: below it, a
# search takes milliseconds and a part's hand-off to a thread would be most of it.
_SPLIT_SEARCH_ABOVE = 5000
_INDEX_BATCH = 16  # messages per full-text index write (text_ops also bounds the text per batch)


class SqliteStore(QueueAndAccessData, DeliveryMemoryData, SieveScriptStore, FilterStateData, TransferStoreData):
    def __init__(self, db_path: Path, blob_root: Path, reader_threads: int = 4, *,
                 keep_recently_expunged: bool = False, trash_days: float = DEFAULT_TRASH_DAYS) -> None:
        self.db_path = db_path
        if not db_path.parent.is_dir():  # created by nobody: a typo must not grow a tree somewhere
            raise StoreError(
                f"The store {db_path} cannot be opened because {db_path.parent} does not exist; "
                "check [store] path in postoffice.toml, or create that directory first."
            )
        self.blobs = BlobStore(blob_root, trash_days)
        new = not db_path.exists()
        if new:
            _refuse_beside_blobs(db_path, self.blobs, "does not exist yet")
        try:
            setup = connect(db_path, writer=True)
            try:
                create_schema(setup, db_path)
                # Only referenced blobs are mail: rows at refcount 0 (expunged) may have lost their
                # files to a removal whose commit did not happen (a crash, a full disk).
                holds_mail, set_up = setup.execute(
                    "SELECT EXISTS (SELECT 1 FROM blobs WHERE refcount > 0),"
                    " EXISTS (SELECT 1 FROM domains) OR EXISTS (SELECT 1 FROM accounts)"
                ).fetchone()
            finally:
                setup.close()
        except sqlite3.Error as error:  # not a database, damaged, no permission: one sentence
            raise explain_open_error(db_path, error) from error
        if not new and not holds_mail and not set_up:
            # A store that was set up and is empty now (every message deleted, as POP3 users do)
            # is no typo, and a delivery interrupted before its commit leaves a file beside it.
            _refuse_beside_blobs(db_path, self.blobs, "holds no messages and no accounts")
        if holds_mail and not self.blobs.holds_files():
            # The reverse typo ([store] blobs): every message would be unreadable.
            self.blobs.undo_create()
            raise StoreMismatch(
                f"Refusing to open the store {db_path}: it holds messages, but {blob_root} holds no message "
                "files, so it is probably not the blob directory they are in; check [store] blobs (and "
                "[store] path) in postoffice.toml."
            )
        self.changes = ChangeNotifier()
        # Beside the database like SQLite's own -wal and -shm files.
        self.locks = MailboxLocks(db_path.with_name(db_path.name + "-locks"))
        self._holds = BlobHolds(self.locks, keep_all_recent=keep_recently_expunged)
        self._writer = WriterThread(db_path, self.blobs, self.changes, self._holds)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._readers = ThreadPoolExecutor(max_workers=reader_threads, thread_name_prefix="store-reader")
        # Searches read for up to a second each (100,000 messages): all readers but one at most,
        # so that other sessions' short reads (STATUS, FETCH) never queue behind them.
        self._long_reads = asyncio.Semaphore(max(1, reader_threads - 1))
        self._search_parts = max(1, min(os.cpu_count() or 1, reader_threads - 1, 4))
        self._watcher: asyncio.Task[None] | None = None
        self._changes_in_flight: dict[tuple[int, int, int | None, int], asyncio.Future[MailboxChanges]] = {}
        # mailbox -> (uidvalidity, first uid no session has claimed yet)
        self._recent_claimed: dict[int, tuple[int, int]] = {}
        self._unsaved_claims: dict[int, tuple[int, int]] = {}  # claimed in memory, not yet written
        self._claims_saver: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._blob_info = BlobInfoCache()

    # --- plumbing -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """The calling reader thread's own connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.db_path, writer=False)
            self._local.conn = conn
            self._connections.append(conn)
        return conn

    async def _read(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: fn(self._conn(), *args))

    async def _write(self, fn: Callable[[Transaction], T]) -> T:
        return await self._writer.run(fn)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        if self._claims_saver is not None:
            await asyncio.shield(self._claims_saver)
        self._writer.close()
        self._readers.shutdown(wait=True)
        for conn in self._connections:
            conn.close()
        self.blobs.close()

    def watch_external_changes(self, interval: float = 0.05,
                               on_queued: Callable[[], None] | None = None) -> None:
        """Publish changes written by other processes (admin commands, imports, the worker
        processes of `serve`); call `on_queued` when another process added outbound queue rows,
        so the queue runner need not wait for its next poll."""
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch(interval, on_queued))

    async def _watch(self, interval: float, on_queued: Callable[[], None] | None) -> None:
        await watch_other_processes(self._read, self.changes, self._writer.own_change_seqs,
                                    self._sweep_soon, interval, on_queued)

    # --- domains, accounts, aliases ---------------------------------------------------------

    async def add_domain(self, name: str) -> DomainRecord:
        return await self._write(lambda tx: d.add_domain(tx, name))

    async def get_domain(self, name: str) -> DomainRecord | None:
        return await self._read(d.get_domain, name)

    async def list_domains(self) -> list[DomainRecord]:
        return await self._read(d.list_domains)

    async def remove_domain(self, name: str) -> None:
        await self._write(lambda tx: d.remove_domain(tx, name))

    async def set_catch_all(self, domain: str, target: str | None) -> None:
        await self._write(lambda tx: d.set_catch_all(tx, domain, target))

    async def add_account(self, address: str, password_hash: str, quota: int = 0) -> AccountRecord:
        return await self._write(lambda tx: d.add_account(tx, address, password_hash, quota))

    async def get_account(self, address: str) -> AccountRecord | None:
        return await self._read(d.get_account, address)

    async def get_account_by_id(self, account_id: int) -> AccountRecord | None:
        return await self._read(d.get_account_by_id, account_id)

    async def list_accounts(self, domain: str | None = None) -> list[AccountRecord]:
        return await self._read(d.list_accounts, domain)

    async def set_password_hash(self, address: str, password_hash: str) -> None:
        await self._write(lambda tx: d.set_password_hash(tx, address, password_hash))

    async def set_quota(self, address: str, quota: int) -> None:
        await self._write(lambda tx: d.set_quota(tx, address, quota))

    async def remove_account(self, address: str) -> None:
        await self._write(lambda tx: d.remove_account(tx, address))

    async def lookup_address(
        self, address: str
    ) -> tuple[DomainRecord | None, AccountRecord | None, list[AliasRecord]]:
        return await self._read(d.lookup_address, address)

    async def add_alias(self, source: str, target: str) -> None:
        await self._write(lambda tx: d.add_alias(tx, source, target))

    async def remove_alias(self, source: str, target: str | None = None) -> int:
        return await self._write(lambda tx: d.remove_alias(tx, source, target))

    async def list_aliases(self, source: str | None = None) -> list[AliasRecord]:
        return await self._read(d.list_aliases, source)

    # --- mailboxes ------------------------------------------------------------------------

    async def create_mailbox(
        self, account_id: int, name: str, special_use: str | None = None, *, subscribed: bool = False
    ) -> MailboxRecord:
        return await self._write(lambda tx: mb.create_mailbox(tx, account_id, name, special_use, subscribed))

    async def get_mailbox(self, account_id: int, name: str) -> MailboxRecord | None:
        return await self._read(mb.get_mailbox, account_id, name)

    async def get_mailbox_by_id(self, mailbox_id: int) -> MailboxRecord | None:
        return await self._read(mb.get_mailbox_by_id, mailbox_id)

    async def list_mailboxes(self, account_id: int) -> list[MailboxRecord]:
        return await self._read(mb.list_mailboxes, account_id)

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> MailboxRecord:
        return await self._write(lambda tx: mb.rename_mailbox(tx, account_id, old, new))

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        await self._write(lambda tx: mb.delete_mailbox(tx, account_id, name))

    async def set_subscribed(self, mailbox_id: int, subscribed: bool) -> None:
        await self._write(lambda tx: mb.set_subscribed(tx, mailbox_id, subscribed))

    async def set_rights(self, mailbox_id: int, identifier: str, rights: str) -> None:
        def job(tx: Transaction) -> None:
            acl.set_rights(tx, mailbox_id, identifier, rights)
            tx.changes.append(MailboxChange(mailbox_id, ChangeKind.MAILBOX, 0))

        await self._write(job)

    async def get_acl(self, mailbox_id: int) -> dict[str, str]:
        return await self._read(acl.get_acl, mailbox_id)

    async def shared_with(self, address: str) -> list[SharedMailbox]:
        return await self._read(acl.shared_with, address)

    async def list_subscriptions(self, account_id: int) -> list[str]:
        return await self._read(mb.list_subscriptions, account_id)

    async def subscribe_name(self, account_id: int, name: str) -> None:
        await self._write(lambda tx: mb.subscribe_name(tx, account_id, name))

    async def unsubscribe_name(self, account_id: int, name: str) -> bool:
        return await self._write(lambda tx: mb.unsubscribe_name(tx, account_id, name))

    async def mailbox_status(self, mailbox_id: int, *, viewer: int | None = None) -> MailboxStatus:
        return await self._read(mb.mailbox_status, mailbox_id, viewer, self._recent_claimed.get(mailbox_id))

    async def claim_recent(self, mailbox_id: int, *, uidnext: int | None = None, uidvalidity: int | None = None) -> int:
        """RFC 3501 §2.3.2: \\Recent goes to one session. `uidnext` is one past the highest
        UID the caller knows.

        Only this process's IMAP sessions claim, so once it has claimed in a mailbox, the
        boundary it keeps in memory is the truth: a caller that passes `uidnext` gets its
        answer at once, and the new boundary is saved by a write nobody waits for (10,000 IDLE
        sessions, one delivery: no write; 50 sessions appending: no fsync in any command's
        path). A boundary lost in a crash makes those messages recent again, as RFC 3501
        §2.3.2 asks when it cannot be known whether a session was told. The first claim in a
        mailbox, and a claim without `uidnext`, are writes the caller waits for."""
        claimed = self._recent_claimed.get(mailbox_id)
        if uidnext is not None and claimed is not None and claimed[0] == uidvalidity:
            if claimed[1] < uidnext:
                self._recent_claimed[mailbox_id] = (claimed[0], uidnext)
                self._save_recent_claim(mailbox_id, claimed[0], uidnext)
            return claimed[1]
        old, new, validity = await self._write(lambda tx: mb.claim_recent_range(tx, mailbox_id))
        claimed = self._recent_claimed.get(mailbox_id)  # again: claims in memory may not be written yet
        if claimed is None or claimed[0] != validity:  # a recreated id starts over
            self._recent_claimed[mailbox_id] = (validity, new)
            return old
        self._recent_claimed[mailbox_id] = (validity, max(claimed[1], new))
        return max(old, claimed[1])  # what memory gave to others is not this caller's

    def _save_recent_claim(self, mailbox_id: int, uidvalidity: int, boundary: int) -> None:
        """Save a boundary claimed in memory; one write job at a time carries every boundary
        claimed while the previous one ran."""
        self._unsaved_claims[mailbox_id] = (uidvalidity, boundary)
        if self._claims_saver is None:
            self._claims_saver = asyncio.get_running_loop().create_task(self._save_recent_claims())

    async def _save_recent_claims(self) -> None:
        try:
            while self._unsaved_claims:
                claims, self._unsaved_claims = self._unsaved_claims, {}
                await self._write(functools.partial(mb.save_recent_claims, claims=claims))
        except Exception as exc:  # a full disk: \Recent is advisory, the memory still answers
            log.warning("\\Recent claims not saved: %s", exc)
        finally:
            self._claims_saver = None

    # --- messages -------------------------------------------------------------------------

    async def put_blob(self, raw: bytes, *, queue_only: bool = False,
                       parsed: MessageMetadata | None = None) -> IndexedBlob:
        """Parse the bytes (not for a `queue_only` copy) and, for a large message, stage them in
        a temporary file. The file becomes durable with the commit that references it; a small
        message's file is written by the writer then, from the `raw` its NewMessage carries.

        A typical message is parsed in a fraction of a millisecond, less than a hand-off to a
        thread costs under load; large ones go to a thread so the event loop is never held up.
        """
        if len(raw) <= INLINE_BLOB_LIMIT:
            return queue_blob(raw) if queue_only else index_message(raw, parsed=parsed)
        try:
            prepare = queue_blob if queue_only else functools.partial(index_message, parsed=parsed)
            return await asyncio.to_thread(functools.partial(prepare, raw, self.blobs, stage=True))
        except OSError as exc:
            raise as_storage_full(exc, f"a message file in {self.blobs.root}") from exc

    async def discard_staged(self, blobs: Iterable[IndexedBlob]) -> None:
        """Remove the temporary files of blobs from `put_blob` that will not be stored (the
        command failed): a full disk gets its space back at once, not at the next sweep."""
        paths = [Path(blob.staged) for blob in blobs if blob.staged is not None]

        def remove() -> None:
            for path in paths:
                path.unlink(missing_ok=True)

        if paths:
            await asyncio.to_thread(remove)

    async def append_messages(
        self, mailbox_id: int, messages: Sequence[NewMessage], *, skip_duplicates: bool = False
    ) -> list[AppendResult]:
        try:
            return await self._write(lambda tx: m.append_messages(tx, self.blobs, mailbox_id, messages, skip_duplicates))
        except BaseException:
            await self.discard_staged(message.blob for message in messages)
            raise

    async def deliver(
        self, message: NewMessage, targets: Sequence[DeliveryTarget],
        queue: tuple[NewMessage, OutboundMessage] | None = None,
    ) -> tuple[list[TargetResult], int | None]:
        try:
            return await self._write(lambda tx: m.deliver(tx, self.blobs, message, targets, queue))
        except BaseException:
            await self.discard_staged([message.blob] + ([queue[0].blob] if queue is not None else []))
            raise

    async def list_messages(self, mailbox_id: int) -> list[MessageRecord]:
        return await self._read(m.list_messages, mailbox_id)

    async def iter_messages(self, mailbox_id: int, batch: int = 500) -> AsyncIterator[MessageRecord]:
        after = 0
        while True:
            records = await self._read(m.list_messages, mailbox_id, after, batch)
            for record in records:
                yield record
            if len(records) < batch:
                return
            after = records[-1].uid

    async def get_messages(self, mailbox_id: int, uids: Sequence[int], *,
                           viewer: int | None = None) -> list[MessageRecord]:
        return await self._read(m.get_messages, mailbox_id, uids, viewer)

    async def store_flags(
        self, mailbox_id: int, uids: Sequence[int], mode: FlagMode, flags: Iterable[str],
        *, unchanged_since: int | None = None, viewer: int | None = None,
    ) -> StoreFlagsResult:
        flag_list = list(flags)
        return await self._write(
            lambda tx: m.store_flags(tx, mailbox_id, uids, mode, flag_list, unchanged_since, viewer)
        )

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        return await self._write(lambda tx: m.expunge(tx, mailbox_id, uids))

    async def copy_messages(
        self, source_id: int, uids: Sequence[int], target_id: int, *, move: bool = False, keep: FlagsKept | None = None,
    ) -> CopyResult:
        return await self._write(lambda tx: m.copy_messages(tx, source_id, uids, target_id, move, keep))

    async def open_snapshot(self, mailbox_id: int, *,
                            viewer: int | None = None) -> tuple[MailboxRecord, list[MessageRecord]]:
        mailbox, records = await self._read(m.open_snapshot, mailbox_id, viewer)
        claimed = self._recent_claimed.get(mailbox_id)  # may be ahead of the row (claim_recent)
        if claimed is not None and claimed[0] == mailbox.uidvalidity and claimed[1] > mailbox.first_recent_uid:
            mailbox = dataclasses.replace(mailbox, first_recent_uid=claimed[1])
        return mailbox, records

    def change_version(self, mailbox_id: int) -> int | None:
        """Changes published for the mailbox since start-up: this process's commits as they
        happen, other processes' once the watcher (`watch_external_changes`, which `serve`
        runs) has seen them, within its interval. Without the watcher: None."""
        if self._watcher is None:
            return None
        self.changes.ensure_bound()
        return self.changes.versions.get(mailbox_id, 0)

    async def changes_since(self, mailbox_id: int, modseq: int, *, viewer: int | None = None) -> MailboxChanges:
        """Sessions woken by the same change ask the same question at once (10,000 IDLE
        sessions on one mailbox): they share one read, if it started after the last change
        published for the mailbox, so nobody gets an answer older than what they were told."""
        self.changes.ensure_bound()
        key = (mailbox_id, modseq, viewer, self.changes.versions.get(mailbox_id, 0))
        shared = self._changes_in_flight.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._read(m.changes_since, mailbox_id, modseq, viewer))
            self._changes_in_flight[key] = shared
            shared.add_done_callback(lambda _: self._changes_in_flight.pop(key, None))
        return await asyncio.shield(shared)

    async def read_blob(self, sha256: str, size: int | None = None) -> bytes:
        cached = self.blobs.read_if_cached(sha256, size)
        return cached if cached is not None else await asyncio.to_thread(self.blobs.read, sha256, size)

    async def read_blobs(self, hashes: Sequence[str], sizes: Mapping[str, int] | None = None) -> dict[str, bytes]:
        # Blobs in the page cache are read here; only the rest costs a thread hop.
        sizes = sizes or {}
        found: dict[str, bytes] = {}
        uncached = []
        for sha in hashes:
            try:
                cached = self.blobs.read_if_cached(sha, sizes.get(sha))
            except BlobDamaged:
                continue
            if cached is None:
                uncached.append(sha)
            else:
                found[sha] = cached

        def read_rest() -> None:
            for sha in uncached:
                try:
                    found[sha] = self.blobs.read(sha, sizes.get(sha))
                except (FileNotFoundError, BlobDamaged):
                    pass

        if uncached:
            await asyncio.to_thread(read_rest)
        return found

    async def open_blob(self, sha256: str, size: int | None = None) -> BinaryIO:
        return await asyncio.to_thread(self.blobs.open, sha256, size)

    async def blob_structure(self, sha256: str) -> str:
        def structure(conn: sqlite3.Connection, sha: str) -> str:
            row = conn.execute("SELECT structure FROM blobs WHERE sha256 = ?", (sha,)).fetchone()
            if row is None:
                raise KeyError(sha)
            return str(row[0])

        return await self._read(structure, sha256)

    async def search_text(self, mailbox_id: int, query: str, *, headers: bool = True, body: bool = True) -> set[int]:
        """A common phrase in a large store costs a second of SQLite's CPU (FTS5 walks every
        posting of every trigram): it is cut by blob id into parts that run on several reader
        threads at once, as many as there are cores (up to 4) and long-read slots."""
        async def part(blob_range: tuple[int, int]) -> set[int]:
            async with self._long_reads:
                return await self._read(lambda conn: text_ops.search_text(
                    conn, self.blobs, mailbox_id, query, headers, body, blob_range))

        if self._search_parts < 2 or not text_ops.searched_by_index(query):
            return await part(text_ops.ALL_BLOBS)
        highest = await self._read(lambda conn: conn.execute("SELECT max(id) FROM blobs").fetchone()[0])
        if highest is None or highest < _SPLIT_SEARCH_ABOVE:
            return await part(text_ops.ALL_BLOBS)
        step = highest // self._search_parts + 1
        ranges = [(i * step, (i + 1) * step - 1) for i in range(self._search_parts)]
        ranges[-1] = (ranges[-1][0], text_ops.ALL_BLOBS[1])  # and blobs added meanwhile
        return set().union(*await asyncio.gather(*(part(r) for r in ranges)))

    async def mailbox_blob_hashes(self, mailbox_id: int, hashes: Sequence[str]) -> set[str]:
        return await self._read(m.mailbox_blob_hashes, mailbox_id, list(hashes))

    def hold_mailbox(self, mailbox_id: int) -> None:
        """A session opened the mailbox: keep its expunged messages readable until released."""
        self._holds.hold(mailbox_id)

    def release_mailbox(self, mailbox_id: int) -> None:
        if self._holds.release(mailbox_id):
            self._sweep_soon()

    def _sweep_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self._remove_unreferenced())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def lock_mailbox(self, mailbox_id: int) -> MailboxLock | None:
        """An exclusive session lock on the mailbox across every process using this store, or
        None if a session holds it; expunged messages stay readable while it is held."""
        taking = asyncio.ensure_future(asyncio.to_thread(self.locks.try_lock, mailbox_id))
        try:
            return await asyncio.shield(taking)
        except asyncio.CancelledError:
            # The session is gone (shutdown): a lock taken meanwhile must not stay held.
            taking.add_done_callback(_release_taken)
            raise

    async def _remove_unreferenced(self) -> None:
        def job(tx: Transaction) -> None:
            tx.after_commit.append(lambda: m.remove_unreferenced_blobs(tx.conn, tx.blobs, None, tx.holds))

        try:
            await self._write(job)
        except Exception:
            log.exception("removing unreferenced blobs failed")

    async def blob_info(self, hashes: Sequence[str]) -> dict[str, BlobInfo]:
        """From memory where it can (blob_info_cache.py), the rest in one read."""
        found, missing = self._blob_info.lookup(hashes)
        if missing:
            read = await self._read(m.blob_info, missing)
            self._blob_info.add(read)
            found.update(read)
        return found

    async def header_fields(
        self, mailbox_id: int, uids: Sequence[int], *, addresses: Collection[AddressField] = ()
    ) -> list[HeaderFields]:
        async with self._long_reads:  # SEARCH SUBJECT, SORT, THREAD: every message's row
            return await self._read(m.header_fields, mailbox_id, uids, addresses)

    async def envelope_addresses(
        self, mailbox_id: int, field: AddressField, *, containing: str | None = None
    ) -> list[tuple[int, tuple[Address, ...]]]:
        async with self._long_reads:  # SEARCH FROM/TO/CC/BCC: every message's row
            return await self._read(m.envelope_addresses, mailbox_id, field, containing)

    async def collect_garbage(self, orphan_min_age: float = 3600.0) -> GarbageCollected:
        """Move unreferenced blob files (normally moved right after each expunge) and files
        left by a crash before their commit to the trash, purge trash past its grace period,
        and drop change-log rows older than a day.

        Nothing is removed from a store that fails SQLite's integrity_check: its rows cannot be
        trusted to say which files are mail. It runs on a reader connection, so writers go on;
        on 50,000 messages (a 49 MB database) it takes 0.15-0.2 s (quick_check 0.1 s)."""
        trash = str(self.blobs.trash.root)
        problems = await self._read(_integrity_check)
        if problems:
            return GarbageCollected(skipped=(
                f"the store {self.db_path} fails SQLite's integrity_check ({problems}), so it cannot say which "
                "files are mail; restore it from a backup, or repair it with sqlite3's .recover"), trash=trash)
        result: list[GarbageCollected] = []

        def job(tx: Transaction) -> None:
            tx.execute("DELETE FROM change_log WHERE created < unixepoch('now') - 86400")
            conn, blobs = tx.conn, tx.blobs

            def sweep() -> None:
                unreferenced = m.remove_unreferenced_blobs(conn, blobs, None, tx.holds)
                orphans, temporary = m.remove_orphan_files(conn, blobs, orphan_min_age)
                result.append(GarbageCollected(unreferenced, orphans, temporary, blobs.trash.purge(), trash=trash))

            tx.after_commit.append(sweep)

        await self._write(job)
        return result[0] if result else GarbageCollected(trash=trash)

    async def index_unindexed(self, limit: int = 64) -> int:
        """Add up to `limit` messages that are not in the full-text index yet, or remove the
        postings of up to `limit` removed ones (see text_ops.forget_later); returns how many
        were looked at (0: the index is complete).

        The text is derived in a reader thread, so the write lock is held only for the inserts,
        a small batch at a time; the next batch's text is derived while the previous one is
        written (parsing holds the GIL, SQLite's inserts mostly do not), so the two overlap."""
        forgotten = await self._read(text_ops.forgotten_texts, self.blobs, min(limit, _INDEX_BATCH))
        if forgotten:  # postings of removed messages first: the queue is bounded by removals
            await self._write(functools.partial(_forget_texts, forgotten))
            return len(forgotten)
        done, after = 0, 0
        writing: asyncio.Future[int] | None = None
        try:
            while done < limit:
                size = min(_INDEX_BATCH, limit - done)
                texts = await self._read(text_ops.unindexed_texts, self.blobs, size, after)
                if writing is not None:
                    await writing
                    writing = None
                if not texts:
                    break
                done, after = done + len(texts), texts[-1].blob_id
                writing = asyncio.ensure_future(self._write(functools.partial(_add_texts, texts)))
        finally:
            if writing is not None:
                await writing
        return done

    async def text_backlog(self, cap: int) -> tuple[int, int]:
        return await self._read(text_ops.text_backlog, cap)

    async def run_write(self, fn: Callable[[Transaction], T]) -> T:
        """Run a custom write job (tests use this to hold a long write transaction)."""
        return await self._write(fn)

    async def run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a custom read on a reader thread (tests use this to keep the readers busy)."""
        return await self._read(fn)


def _add_texts(texts: list[text_ops.IndexRow], tx: Transaction) -> int:
    return text_ops.add_texts(tx.conn, texts)


def _forget_texts(texts: list[tuple[int, text_ops.IndexRow | None]], tx: Transaction) -> None:
    text_ops.forget_texts(tx.conn, texts)


def _integrity_check(conn: sqlite3.Connection) -> str:
    """An empty string when the database passes SQLite's integrity_check, else its first complaint."""
    try:
        rows = conn.execute("PRAGMA integrity_check(1)").fetchall()
    except sqlite3.DatabaseError as exc:  # "database disk image is malformed" before any row
        return str(exc)
    return "" if rows == [("ok",)] else str(rows[0][0])


def _refuse_beside_blobs(db_path: Path, blobs: BlobStore, state: str) -> None:
    """A store that is new or empty while the blob directory holds mail is almost always the
    wrong file (a typo in [store] path): serving it would show empty mailboxes, and its
    clean-up would take every message file for garbage."""
    if blobs.holds_files():
        raise StoreMismatch(
            f"Refusing to open the store {db_path}: it {state}, but {blobs.root} holds message files, "
            "so it is probably not the store they belong to; check [store] path (and [store] blobs) in "
            "postoffice.toml, or move those files away if this store really is meant to start empty."
        )


def _release_taken(taking: asyncio.Future[MailboxLock | None]) -> None:
    if not taking.cancelled() and taking.exception() is None and (lock := taking.result()) is not None:
        lock.release()
