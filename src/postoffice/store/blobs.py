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
from postoffice.store.page_cache import PageCacheReader

# From this many new files on, a batch is made durable with two file-system flushes instead of
# one fsync per file and directory.
_BATCH_SYNC_AT = 16
_stage_counter = itertools.count()


def blob_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class BlobStore:
    """Files under `root/<first two hex digits>/<sha256>`; temporary files under `root/tmp`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._known_dirs: set[str] = set()
        self._cached = PageCacheReader(root)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def read_if_cached(self, sha256: str) -> bytes | None:
        """The blob if the kernel has it cached (safe on the event loop), else None."""
        return self._cached.read_if_cached(f"{sha256[:2]}/{sha256}".encode())

    def close(self) -> None:
        self._cached.close()

    def open(self, sha256: str) -> BinaryIO:
        return open(self.path(sha256), "rb")

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
        for sha256, raw in fresh:
            final = self.path(sha256)
            if sha256[:2] not in self._known_dirs:
                final.parent.mkdir(exist_ok=True)
                self._known_dirs.add(sha256[:2])
            tmp = self._tmp / f"{sha256}.{os.getpid()}.{len(pending)}"
            self._write_tmp(tmp, raw, fsync=not batch)
            pending.append((tmp, final))
        synced = batch and sync_filesystem(self.root)
        if batch and not synced:
            for tmp, _ in pending:  # no syncfs here: fsync the files written without it
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
        for tmp, final in pending:
            os.replace(tmp, final)
        if synced and sync_filesystem(self.root):
            return
        fsync_dir(self.root)  # directories created for this batch
        for directory in {final.parent for _, final in pending}:
            fsync_dir(directory)

    @staticmethod
    def _write_tmp(path: Path, raw: bytes, *, fsync: bool) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(raw)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if fsync:
                os.fsync(fd)
        finally:
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
        A final name therefore always means a complete, durable file."""
        staged = list(staged)
        for sha256, raw in unwritten:
            tmp = self._tmp / f"{sha256}.{os.getpid()}.{next(_stage_counter)}"
            self._write_tmp(tmp, raw, fsync=False)
            staged.append((tmp, sha256))
        synced = sync_filesystem(self.root)
        if not synced:
            for tmp, _ in staged:
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
        directories = set()
        for tmp, sha256 in staged:
            final = self.path(sha256)
            if sha256[:2] not in self._known_dirs:
                final.parent.mkdir(exist_ok=True)
                self._known_dirs.add(sha256[:2])
            os.replace(tmp, final)
            directories.add(final.parent)
        if synced and sync_filesystem(self.root):
            return
        fsync_dir(self.root)
        for directory in directories:
            fsync_dir(directory)

    def remove(self, sha256: str) -> None:
        try:
            os.unlink(self.path(sha256))
        except FileNotFoundError:
            pass

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
        """Every blob file present (for consistency checks and orphan sweeps)."""
        for directory in self.root.iterdir():
            if directory.is_dir() and len(directory.name) == 2:
                for entry in directory.iterdir():
                    yield entry.name
