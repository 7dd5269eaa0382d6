"""Content-addressed message files: one immutable file per distinct message, named by SHA-256.

A blob is written to a temporary file, fsynced, renamed into place, and its directory fsynced,
so that once `write` returns the file survives a power cut (DESIGN §3). Identical messages (one
SMTP transaction to 50 recipients, a re-import) share one file. The functions here are
synchronous and do disk I/O: async callers run them in a thread.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from postoffice.durable import fsync_dir


def blob_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class BlobStore:
    """Files under `root/<first two hex digits>/<sha256>`; temporary files under `root/tmp`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._known_dirs: set[str] = set()

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def open(self, sha256: str) -> BinaryIO:
        return open(self.path(sha256), "rb")

    def write(self, raw: bytes, sha256: str | None = None) -> str:
        """Store `raw` durably; returns its hash. A file already present is left alone."""
        sha256 = sha256 or blob_hash(raw)
        self.write_many([(sha256, raw)])
        return sha256

    def write_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store several blobs durably, paying one fsync per file and one per directory touched."""
        renamed_into: set[Path] = set()
        for sha256, raw in items:
            final = self.path(sha256)
            if final.exists():
                continue
            directory = final.parent
            if sha256[:2] not in self._known_dirs:
                if not directory.is_dir():
                    directory.mkdir(exist_ok=True)
                    fsync_dir(self.root)  # the new directory entry itself must be durable
                self._known_dirs.add(sha256[:2])
            tmp = self._tmp / f"{sha256}.{os.getpid()}.{id(raw)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            try:
                view = memoryview(raw)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            renamed_into.add(directory)
        for directory in renamed_into:
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
