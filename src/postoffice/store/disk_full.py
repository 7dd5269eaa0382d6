"""Recognise "the disk is full" among the errors of blob files and SQLite.

A full disk is a temporary condition, not a bug: every protocol answers it with its temporary
error and keeps serving reads (see `StorageFull`). It reaches us in three forms:
- `OSError` with ENOSPC, or EDQUOT (a file-system quota: the same to us, as in Dovecot);
- `sqlite3.Error` SQLITE_FULL, which SQLite reports when a write to the database or WAL
  fails with ENOSPC (os_unix.c `unixWrite`);
- `sqlite3.Error` SQLITE_IOERR_SHMSIZE, when the WAL index (-shm) cannot grow.
"""

from __future__ import annotations

import errno
import sqlite3

from postoffice.store.interface import StorageFull

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13
_SQLITE_IOERR_SHMSIZE = 10 | (19 << 8)


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, StorageFull):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and (code & 0xFF == _SQLITE_FULL or code == _SQLITE_IOERR_SHMSIZE)
    return False


def as_storage_full(exc: BaseException, where: str) -> BaseException:
    """`StorageFull` for a disk-full error (chained to it), else `exc` itself.

    `where` names what could not be written, e.g. "the blob directory /srv/mail/blobs"."""
    if isinstance(exc, StorageFull) or not is_disk_full(exc):
        return exc
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    full = StorageFull(f"Not enough disk space for {where} ({reason}).")
    full.__cause__ = exc
    return full
