"""Content-addressed message files: one immutable file per distinct message, named by SHA-256.

A blob is written to a temporary file, fsynced, renamed into place, and its directory fsynced,
so that once `write` returns the file survives a power cut (DESIGN §3). Identical messages (one
SMTP transaction to 50 recipients, a re-import) share one file. The functions here are
synchronous and do disk I/O: async callers run them in a thread.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from postoffice.durable import fsync_dir, sync_filesystem
from postoffice.store.blob_trash import BlobTrash
from postoffice.store.interface import BlobDamaged, StoreError
from postoffice.store.page_cache import PageCacheReader

# From this many new files on, a batch is made durable with two file-system flushes instead of
# one fsync per file and directory.
_BATCH_SYNC_AT = 16
_stage_counter = itertools.count()


DEFAULT_TRASH_DAYS = 7.0


def blob_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def make_directory(path: Path, what: str) -> bool:
    """Create the directory `path` if missing, but never its parents: a configured path with a
    typo must not grow a tree somewhere (say, at the file-system root). `what` names it for
    the error, e.g. "blob directory ([store] blobs)". True when it was created."""
    if path.is_dir():
        return False
    if not path.parent.is_dir():
        raise StoreError(
            f"The {what} {path} cannot be created because {path.parent} does not exist; "
            "check that setting in postoffice.toml, or create its parent directory first."
        )
    path.mkdir(exist_ok=True)
    return True


def _checked(sha256: str, data: bytes, size: int | None) -> bytes:
    if size is not None and len(data) != size:
        raise BlobDamaged(sha256, size, len(data))
    return data


class BlobStore:
    """Files under `root/<first two hex digits>/<sha256>`; temporary files under `root/tmp`;
    removed files under `root/.trash` for `trash_days` (see blob_trash.py).

    Readers pass the size recorded at delivery where they know it: a file of another length
    raises `BlobDamaged` instead of being served as if whole."""

    def __init__(self, root: Path, trash_days: float = DEFAULT_TRASH_DAYS) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self.created = make_directory(root, "blob directory ([store] blobs)")
        self._tmp.mkdir(exist_ok=True)
        self._known_dirs: set[str] = set()
        self._cached = PageCacheReader(root)
        self.trash = BlobTrash(root, trash_days)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def read(self, sha256: str, size: int | None = None) -> bytes:
        """The blob; with `size`, a missing file or one of another length raises BlobDamaged."""
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError:
            if size is None:
                raise
            raise BlobDamaged(sha256, size, None) from None
        return _checked(sha256, data, size)

    def read_if_cached(self, sha256: str, size: int | None = None) -> bytes | None:
        """The blob if the kernel has it cached (safe on the event loop), else None."""
        data = self._cached.read_if_cached(f"{sha256[:2]}/{sha256}".encode())
        return None if data is None else _checked(sha256, data, size)

    def close(self) -> None:
        self._cached.close()

    def open(self, sha256: str, size: int | None = None) -> BinaryIO:
        """The file for streaming; its length is checked against `size` before any byte is
        read, so a caller can refuse before it has sent anything."""
        try:
            handle = open(self.path(sha256), "rb")  # noqa: SIM115 - returned open
        except FileNotFoundError:
            if size is None:
                raise
            raise BlobDamaged(sha256, size, None) from None
        if size is not None:
            found = os.fstat(handle.fileno()).st_size
            if found != size:
                handle.close()
                raise BlobDamaged(sha256, size, found)
        return handle

    def write(self, raw: bytes, sha256: str | None = None) -> str:
        """Store `raw` durably; returns its hash. A file already present is left alone."""
        sha256 = sha256 or blob_hash(raw)
        self.write_many([(sha256, raw)])
        return sha256

    def write_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store several blobs durably.

        A final name only ever appears for a complete, durable file, because `exists` is taken
        as proof of that by every later writer. Small batches pay one fsync per file and per
        directory; large ones (imports) write every temporary file, flush the file system once,
        rename, and flush once more, which is several times faster on real disks.
        """
        fresh = [(sha256, raw) for sha256, raw in items if not self.path(sha256).exists()]
        if not fresh:
            return
        batch = len(fresh) >= _BATCH_SYNC_AT
        pending: list[tuple[Path, Path]] = []
        try:
            for sha256, raw in fresh:
                final = self.path(sha256)
                self._make_parent(sha256)
                tmp = self._tmp / f"{sha256}.{os.getpid()}.{next(_stage_counter)}"
                self._write_tmp(tmp, raw, fsync=not batch)
                pending.append((tmp, final))
            synced = batch and sync_filesystem(self.root)
            if batch and not synced:
                for tmp, _ in pending:  # no syncfs here: fsync the files written without it
                    with open(tmp, "rb+") as f:
                        os.fsync(f.fileno())
            for tmp, final in pending:
                os.replace(tmp, final)
        except BaseException:
            _remove_files(tmp for tmp, _ in pending)  # a full disk must not keep half a batch
            raise
        if synced and sync_filesystem(self.root):
            return
        fsync_dir(self.root)  # directories created for this batch
        for directory in {final.parent for _, final in pending}:
            fsync_dir(directory)

    @staticmethod
    def _write_tmp(path: Path, raw: bytes, *, fsync: bool) -> None:
        """Write `path`; on any failure (ENOSPC above all) the partial file is removed at once."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(raw)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)

    def stage(self, raw: bytes, sha256: str) -> Path | None:
        """Write `raw` to a temporary file without fsync, for `promote` to make durable with
        the other files of its commit; None when the blob is already stored."""
        if self.path(sha256).exists():
            return None
        tmp = self._tmp / f"{sha256}.{os.getpid()}.{next(_stage_counter)}"
        self._write_tmp(tmp, raw, fsync=False)
        return tmp

    def promote(self, staged: Iterable[tuple[Path, str]], unwritten: Iterable[tuple[str, bytes]] = ()) -> None:
        """Make staged files, and `unwritten` (sha, bytes) blobs, durable under their final
        names: write, flush the file system, rename, flush again (so the names are durable too).
        A final name therefore always means a complete, durable file.

        A failure (a full disk) removes the temporary files written here; staged files stay
        their stager's, who may try again or discard them (`SqliteStore.discard_staged`)."""
        staged = list(staged)
        written: list[Path] = []
        directories = set()
        try:
            for sha256, raw in unwritten:
                tmp = self._tmp / f"{sha256}.{os.getpid()}.{next(_stage_counter)}"
                self._write_tmp(tmp, raw, fsync=False)
                written.append(tmp)
                staged.append((tmp, sha256))
            synced = sync_filesystem(self.root)
            if not synced:
                for tmp, _ in staged:
                    with open(tmp, "rb+") as f:
                        os.fsync(f.fileno())
            for tmp, sha256 in staged:
                self._make_parent(sha256)
                final = self.path(sha256)
                os.replace(tmp, final)
                directories.add(final.parent)
        except BaseException:
            _remove_files(written)
            raise
        if synced and sync_filesystem(self.root):
            return
        fsync_dir(self.root)
        for directory in directories:
            fsync_dir(directory)

    def _make_parent(self, sha256: str) -> None:
        if sha256[:2] not in self._known_dirs:
            self.path(sha256).parent.mkdir(exist_ok=True)
            self._known_dirs.add(sha256[:2])

    def remove(self, sha256: str) -> bool:
        """Move the blob file to the trash; False if there was none."""
        return self.trash.put(self.path(sha256))

    def files_older_than(self, cutoff: float) -> Iterable[Path]:
        """Blob and temporary files last modified before `cutoff` (unix time)."""
        for directory in self.root.iterdir():
            if directory.is_dir() and (len(directory.name) == 2 or directory.name == "tmp"):
                for entry in directory.iterdir():
                    try:
                        if entry.stat().st_mtime < cutoff:
                            yield entry
                    except FileNotFoundError:
                        continue

    def all_hashes(self) -> Iterable[str]:
        """Every blob file present (for consistency checks and orphan sweeps); the trash and
        temporary files are not blobs."""
        for directory in self.root.iterdir():
            if directory.is_dir() and len(directory.name) == 2:
                for entry in directory.iterdir():
                    yield entry.name

    def holds_files(self) -> bool:
        """Whether any blob file is present (stops at the first)."""
        return next(iter(self.all_hashes()), None) is not None

    def undo_create(self) -> None:
        """Remove the directory this object created (still empty), when the store is refused."""
        if self.created:
            self._tmp.rmdir()
            self.root.rmdir()


def _remove_files(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
