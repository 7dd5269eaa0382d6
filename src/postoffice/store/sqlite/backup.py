"""Copy the SQLite store (database and blob files) while it is in use, check a copy, put one back.

Consistency between the database and the blob files, while a server delivers and expunges:

1. `BackupHold` is taken first: from then on no process removes a blob file (removal runs
   inside a write transaction and looks at the hold after BEGIN IMMEDIATE).
2. One empty write transaction (BEGIN IMMEDIATE; ROLLBACK) waits for a removal that began
   before the hold and had not committed yet; every later one sees the hold.
3. The database is copied with SQLite's online backup API in ONE step: one read transaction,
   one consistent snapshot. In WAL mode a reader never blocks the writer (deliveries carry on;
   only checkpoints cannot pass the snapshot until it ends). A copy in several steps would
   restart from the beginning after every commit of another connection, and never end on a
   busy server.
4. The blob files the copy references are copied. Each existed when the snapshot was taken (a
   blob file is durable before the row naming it commits) and none has been removed since (1).
   Blob files are immutable and named by their SHA-256, so a file already in the destination
   with the right size is not copied again (incremental backups), and each copied file is
   hashed on the way and checked against its name.
5. The hold is released; files are made durable (syncfs, else fsync per file), renamed into
   place, and only then does the new database copy replace the old one. Blob files the new copy
   no longer references are removed from the destination last.

Synchronous and blocking: the CLI calls it from its own process (never the server's loop).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from postoffice.durable import fsync_dir, sync_filesystem
from postoffice.store.interface import StoreError
from postoffice.store.sqlite.backup_hold import BackupHold

__all__ = ["BackupError", "StoreCopy", "copy_blobs", "copy_store", "restore_store", "verify_store_copy"]

_CHUNK = 1 << 20
Progress = Callable[[int, int], None]  # (blob files done, blob files to copy)


class BackupError(StoreError):
    """One plain sentence: why a backup, check or restore could not be done."""


@dataclass
class StoreCopy:
    """What a copy of the store holds, and what the copy run did."""

    schema_version: int
    messages: int
    blobs: int  # blob files the copy references
    blob_bytes: int
    copied: int = 0  # blob files copied in this run
    copied_bytes: int = 0
    removed: int = 0  # blob files no longer referenced, removed from the destination


def _blob_path(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256


def _referenced(db: Path) -> tuple[dict[str, int], set[str]]:
    """Every blob row's hash and size, and those a message or queued message needs. The rest
    (refcount 0: expunged, awaiting removal) are copied when their files exist; a crash between
    a removal's unlink and its commit can leave such a row without a file, which is harmless."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        sizes, needed = {}, set()
        for sha, size, refcount in conn.execute("SELECT sha256, size, refcount FROM blobs"):
            sizes[sha] = size
            if refcount > 0:
                needed.add(sha)
        return sizes, needed
    finally:
        conn.close()


def _counts(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        version = int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
        messages = int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
        return version, messages
    finally:
        conn.close()


def _snapshot(db_path: Path, target: Path) -> None:
    """Steps 2 and 3 above: a consistent copy of the live database in `target`."""
    source = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, isolation_level=None, timeout=60.0)
    try:
        source.execute("PRAGMA busy_timeout = 60000")
        source.execute("BEGIN IMMEDIATE")  # waits out a write transaction begun before the hold
        source.execute("ROLLBACK")
        copy = sqlite3.connect(target, isolation_level=None)
        try:
            source.backup(copy, pages=-1)
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal
            row = copy.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise BackupError(f"The copy of {db_path} fails SQLite's quick_check ({row and row[0]}); is the store damaged?")
        finally:
            copy.close()
    finally:
        source.close()
    with open(target, "rb+") as file:
        os.fsync(file.fileno())


def _copy_file(source: Path, tmp: Path) -> tuple[str, int]:
    """Copy `source` to `tmp` (not yet durable); returns the SHA-256 and size of what was read."""
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as src, open(tmp, "wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def copy_blobs(
    wanted: dict[str, int], source_root: Path, dest_root: Path, progress: Progress | None = None,
) -> tuple[int, int, list[str]]:
    """Copy the blobs of `wanted` (sha256 -> size) that `dest_root` lacks, checking each one's
    hash; returns (files copied, bytes copied, hashes missing at the source). Every file is
    durable before its final name appears (as in blobs.BlobStore)."""
    todo = [sha for sha, size in wanted.items() if not _present(dest_root, sha, size)]
    tmp_dir = dest_root / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    pending: list[tuple[Path, Path]] = []
    missing: list[str] = []
    copied_bytes = 0
    try:
        for done, sha in enumerate(todo, 1):
            tmp = tmp_dir / f"{sha}.{os.getpid()}"
            try:
                digest, size = _copy_file(_blob_path(source_root, sha), tmp)
            except FileNotFoundError as error:
                if error.filename != str(_blob_path(source_root, sha)):
                    raise
                missing.append(sha)
                continue
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            if digest != sha or size != wanted[sha]:
                tmp.unlink(missing_ok=True)
                raise BackupError(
                    f"The message file {_blob_path(source_root, sha)} is damaged: its content does not"
                    f" match its name (or its recorded size of {wanted[sha]} bytes)."
                )
            pending.append((tmp, _blob_path(dest_root, sha)))
            copied_bytes += size
            if progress is not None:
                progress(done, len(todo))
        _make_durable(dest_root, pending)
    finally:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)  # only those not renamed (an error on the way)
    return len(pending), copied_bytes, missing


def _present(root: Path, sha: str, size: int) -> bool:
    try:
        return _blob_path(root, sha).stat().st_size == size
    except FileNotFoundError:
        return False


def _make_durable(root: Path, pending: list[tuple[Path, Path]]) -> None:
    if not pending:
        return
    synced = sync_filesystem(root)
    if not synced:
        for tmp, _ in pending:
            with open(tmp, "rb+") as file:
                os.fsync(file.fileno())
    directories = set()
    for tmp, final in pending:
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)
        directories.add(final.parent)
    if synced and sync_filesystem(root):
        return
    fsync_dir(root)
    for directory in directories:
        fsync_dir(directory)


def _remove_unreferenced(root: Path, wanted: Iterable[str]) -> int:
    keep = set(wanted)
    removed = 0
    for directory in root.iterdir():
        if directory.is_dir() and len(directory.name) == 2:
            for entry in directory.iterdir():
                if entry.name not in keep:
                    entry.unlink(missing_ok=True)
                    removed += 1
    return removed


def copy_store(
    db_path: Path, blob_root: Path, dest_db: Path, dest_blobs: Path, progress: Progress | None = None,
) -> StoreCopy:
    """Back the store up into `dest_db` and `dest_blobs` (see the module docstring); a previous
    copy there is updated: only new blob files are copied."""
    if not db_path.is_file():
        raise BackupError(f"There is no store at {db_path} to back up.")
    partial = dest_db.with_name(dest_db.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        with BackupHold(db_path.with_name(db_path.name + "-locks")):
            _snapshot(db_path, partial)
            wanted, needed = _referenced(partial)
            copied, copied_bytes, missing = copy_blobs(wanted, blob_root, dest_blobs, progress)
        lost = [sha for sha in missing if sha in needed]
        if lost:
            raise BackupError(
                f"{len(lost)} message files the store references are missing from {blob_root}"
                f" (first: {lost[0]}); the backup was not completed and {dest_db} was left as it was."
            )
        os.replace(partial, dest_db)
        fsync_dir(dest_db.parent)
    except sqlite3.Error as error:  # a damaged file, or a lock held past the busy timeout
        raise BackupError(f"The store {db_path} could not be copied ({error}); the backup was not made"
                          f" and {dest_db} was left as it was.") from error
    finally:
        partial.unlink(missing_ok=True)
    version, messages = _counts(dest_db)
    removed = _remove_unreferenced(dest_blobs, wanted)
    present = {sha: size for sha, size in wanted.items() if sha not in missing}
    return StoreCopy(version, messages, len(present), sum(present.values()), copied, copied_bytes, removed)


def verify_store_copy(db: Path, blobs: Path, *, hashes: bool = False) -> StoreCopy:
    """Check a copy: the database passes quick_check and every blob file it references is there
    with its size (and, with `hashes`, its SHA-256). Raises BackupError saying what is wrong."""
    if not db.is_file():
        raise BackupError(f"{db} is missing: this is not a postoffice backup.")
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute("PRAGMA quick_check").fetchone()
        finally:
            conn.close()
        wanted, needed = _referenced(db)
        version, messages = _counts(db)
    except sqlite3.Error as error:
        raise BackupError(f"{db} cannot be read as a postoffice store ({error}).") from error
    if row is None or row[0] != "ok":
        raise BackupError(f"{db} fails SQLite's quick_check ({row and row[0]}).")
    bad = [sha for sha in needed if not _present(blobs, sha, wanted[sha])]
    if not bad and hashes:
        bad = [sha for sha in needed if _copy_hash(_blob_path(blobs, sha)) != sha]
    if bad:
        raise BackupError(
            f"{len(bad)} of the {len(needed)} message files {db.name} references are missing or"
            f" damaged in {blobs} (first: {sorted(bad)[0]})."
        )
    return StoreCopy(version, messages, len(needed), sum(wanted[sha] for sha in needed))


def _copy_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def restore_store(
    source_db: Path, source_blobs: Path, db_path: Path, blob_root: Path, progress: Progress | None = None,
) -> StoreCopy:
    """Put a copy back (check it with `verify_store_copy` first): blob files first, each hashed
    on the way, the database last, so a store file at `db_path` only ever appears with every
    blob it references, unchanged."""
    wanted, needed = _referenced(source_db)
    copied, copied_bytes, missing = copy_blobs(wanted, source_blobs, blob_root, progress)
    lost = [sha for sha in missing if sha in needed]
    if lost:
        raise BackupError(f"{len(lost)} message files vanished from {source_blobs} during the restore (first: {lost[0]}).")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    partial = db_path.with_name(db_path.name + ".partial")
    shutil.copyfile(source_db, partial)
    with open(partial, "rb+") as file:
        os.fsync(file.fileno())
    os.replace(partial, db_path)
    fsync_dir(db_path.parent)
    version, messages = _counts(db_path)
    present = {sha: size for sha, size in wanted.items() if sha not in missing}
    return StoreCopy(version, messages, len(present), sum(present.values()), copied, copied_bytes)
