"""Durable file writes: what every "it is on disk now" promise in postoffice rests on.

A file is durable once its bytes are fsynced AND the directory entry naming it is fsynced;
a rename alone can be lost in a power cut (ext4, XFS). Readers must see the old file or the new
one, never a mixture, so new contents are written to a temporary file and renamed into place.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import cast


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (created, renamed, removed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """Create directory `path` and its missing parents, each one's entry fsynced in its parent
    (a file fsynced in a folder whose own name a power cut took is lost with it). Raises
    FileExistsError when `path` is a file, NotADirectoryError when one of its parents is."""
    missing = []
    parent = path
    while not parent.is_dir():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            if directory.is_dir():  # made meanwhile
                continue
            if directory != path:
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(directory)) from None
            raise
        fsync_dir(directory.parent)


def write_file(path: Path, data: bytes, *, mode: int = 0o644, replace: bool = True) -> None:
    """Write `path` atomically and durably.

    With replace=False the call fails with FileExistsError if `path` exists, and two concurrent
    writers cannot both win (link() refuses an existing name), which suits private keys.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # set before any byte is written
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)
            except FileExistsError:
                raise
            except OSError:
                # No hard links on this file system: check-then-rename, racy only against a
                # second writer of the same file at the same moment.
                if path.exists():
                    raise FileExistsError(path) from None
                os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    fsync_dir(path.parent)


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return cast("Callable[[int], int]", function)


_syncfs = _load_syncfs() if sys.platform.startswith("linux") else None


def sync_filesystem(path: Path) -> bool:
    """Flush every dirty file and directory of the file system holding `path` (Linux syncfs).

    One call costs about one journal commit however many files were written, which makes a
    batch of N new files durable far cheaper than N fsyncs. Returns False where unsupported,
    and the caller falls back to fsync per file.
    """
    if _syncfs is None:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _syncfs(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), str(path))
    finally:
        os.close(fd)
    return True
