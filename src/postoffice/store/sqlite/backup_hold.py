"""The flag a running backup raises so that no process removes a blob file meanwhile.

A backup copies the database at one moment and then the blob files that copy references; a blob
expunged after that moment must still be there when its turn comes. The backup holds an
exclusive flock(2) on ``<db>-locks/backup`` while it copies; every blob removal looks (a shared
lock tried for an instant, as `MailboxLocks.locked` does) and keeps every blob while it is held.
The kernel drops the lock when the backup process dies, so a killed backup never stops removals
for good. Several backups at once take turns.

Call from a worker thread (it touches the file system), never the event loop.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

__all__ = ["BackupHold"]


class BackupHold:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "backup"
        self._fd = -1

    def acquire(self) -> None:
        """Wait for any other backup, then hold every blob against removal."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> BackupHold:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()

    def running(self) -> bool:
        """True while a backup (of any process) holds the blobs."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            return True
        finally:
            os.close(fd)
        return False
