"""Where removed message files wait for a grace period before they are deleted for good.

Every removal of a blob file (the sweep after an expunge, store maintenance, files no row
knows) moves it here instead of unlinking it, so a removal decided on wrong information (a store
path typo, an index that lost rows) can be undone by an administrator for `[store]
blob_trash_days` days. The move is a rename within the blob directory's file system: cheap, and
the file keeps its name (its SHA-256), so putting it back is a `mv`. Maintenance purges files
whose grace period is over.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["TRASH_DIR", "BlobTrash"]

TRASH_DIR = ".trash"
DAY = 86400.0


class BlobTrash:
    def __init__(self, blob_root: Path, keep_days: float) -> None:
        self.root = blob_root / TRASH_DIR
        self.keep_seconds = keep_days * DAY

    def put(self, path: Path) -> bool:
        """Move the file at `path` into the trash (delete it at once when the grace period is
        0); False when there was no such file."""
        try:
            if self.keep_seconds <= 0:
                path.unlink()
                return True
            target = self.root / path.name
            try:
                os.replace(path, target)
            except FileNotFoundError:
                if not path.exists():
                    return False
                self.root.mkdir(exist_ok=True)  # the first file ever trashed
                os.replace(path, target)
        except FileNotFoundError:
            return False
        # A rename keeps the file's old time: the grace period starts now.
        os.utime(target)
        return True

    def purge(self, now: float | None = None) -> int:
        """Delete the files whose grace period is over; returns how many."""
        cutoff = (time.time() if now is None else now) - self.keep_seconds
        removed = 0
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
