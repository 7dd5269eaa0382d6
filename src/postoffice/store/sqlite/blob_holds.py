"""What keeps an unreferenced blob for a while after its message was expunged.

A session that has not been told of an expunge may still FETCH (RFC 9051 §7.5.1) or RETR
(RFC 1939 §8) the message, so its blob stays while such a session may exist: one of this
process that holds the mailbox open (`hold`/`release`), or one of any process that holds the
mailbox locked (`MailboxLocks`, POP3). A process that cannot see every session (a POP3 worker
does not see the main process's IMAP sessions) keeps every recently expunged blob and leaves it
to the main process (`keep_all_recent`). While a backup runs (`BackupHold`, any process), no
blob is removed at all: the backup's copy of the database may reference it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from postoffice.store.mailbox_locks import MailboxLocks
from postoffice.store.sqlite.backup_hold import BackupHold

__all__ = ["BlobHolds"]

_RECENT = "SELECT 1 FROM expunged e WHERE e.blob = blobs.id AND e.expunged_at > ?"


class BlobHolds:
    def __init__(self, locks: MailboxLocks, *, keep_all_recent: bool = False) -> None:
        self.locks = locks
        self.keep_all_recent = keep_all_recent
        self._sessions: Counter[int] = Counter()  # mailbox id -> sessions of this process
        self._backup = BackupHold(locks.directory)

    def hold(self, mailbox_id: int) -> None:
        self._sessions[mailbox_id] += 1

    def release(self, mailbox_id: int) -> bool:
        """True when no session of this process holds the mailbox any more."""
        self._sessions[mailbox_id] -= 1
        if self._sessions[mailbox_id] > 0:
            return False
        del self._sessions[mailbox_id]
        return True

    def kept(self, cutoff: float, expunged_from: Callable[[], set[int]]) -> tuple[str, list[object]]:
        """A condition to append to a query on `blobs` that leaves out the blobs to keep (those
        expunged after `cutoff` from a held mailbox), and its parameters. `expunged_from` gives
        the mailboxes the candidate blobs were expunged from since `cutoff`; it runs only when
        the locks must be looked at. Called by the writer thread while the loop holds and
        releases: the copy of the counts is taken in one step."""
        if self._backup.running():
            return " AND 0", []  # keep them all; a later sweep removes them
        if self.keep_all_recent:
            return f" AND NOT EXISTS ({_RECENT})", [cutoff]
        held = {mailbox for mailbox, count in list(self._sessions.items()) if count > 0}
        held |= self.locks.locked(expunged_from() - held)
        if not held:
            return "", []
        marks = ",".join("?" * len(held))
        return f" AND NOT EXISTS ({_RECENT} AND e.mailbox_id IN ({marks}))", [cutoff, *sorted(held)]
