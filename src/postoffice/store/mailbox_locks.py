"""Exclusive session locks on mailboxes, shared by every process that uses one store.

POP3 allows one session per maildrop (RFC 1939 §8, [IN-USE] of RFC 2449 §8.1.1), and with
`[pop3] processes` above 1 the sessions of one account may land in different processes. Each
lock is flock(2) on one file per mailbox in a directory beside the database: the kernel drops it
when the process dies, so a crash never leaves a maildrop locked. flock locks belong to the open
file, so two sessions of the same process conflict as well.

A locked mailbox is also held against blob removal (see `sqlite/blob_holds.py`):
the POP3 session that locked it may still RETR a message that IMAP expunged meanwhile, from any
process.

Opening and locking touch the file system: call them from a worker thread, not the event loop.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = ["MailboxLock", "MailboxLocks"]

LOCK_ATTEMPTS = 4
LOCK_RETRY = 0.002  # seconds between attempts: a look by locked() lasts microseconds


class MailboxLock:
    """A held lock; :meth:`release` (idempotent, cheap enough for the event loop) frees it."""

    __slots__ = ("_fd", "mailbox_id")

    def __init__(self, mailbox_id: int, fd: int) -> None:
        self.mailbox_id = mailbox_id
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)  # closing the only descriptor of the open file drops the flock


class MailboxLocks:
    """The lock files of one store: ``<directory>/mailbox-<id>``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, mailbox_id: int) -> Path:
        return self.directory / f"mailbox-{int(mailbox_id)}"

    def try_lock(self, mailbox_id: int) -> MailboxLock | None:
        """The lock, or None when a session (of any process) holds it. Blocks for a few
        milliseconds at most: `locked()` holds a shared lock for an instant while it looks, and
        that must not pass for a session."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(mailbox_id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        for attempt in range(LOCK_ATTEMPTS):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return MailboxLock(mailbox_id, fd)
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise
            if attempt + 1 < LOCK_ATTEMPTS:
                time.sleep(LOCK_RETRY)
        os.close(fd)
        return None

    def locked(self, mailbox_ids: Iterable[int]) -> set[int]:
        """Those of `mailbox_ids` that a session of any process (this one too) holds locked."""
        found = set()
        for mailbox_id in mailbox_ids:
            try:
                fd = os.open(self._path(mailbox_id), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # never locked
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                found.add(mailbox_id)
            finally:
                os.close(fd)  # also drops the shared lock just taken
        return found
