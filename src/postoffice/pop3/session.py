"""A POP3 session's maildrop: INBOX as it was at login, served from the store (RFC 1939 §5-6).

The maildrop is taken at login and stays fixed for the session: messages delivered later appear
at the next login; messages expunged meanwhile by IMAP stay readable (the store keeps the blobs
of a held mailbox, see `MailStore.hold_mailbox`). DELE only marks; the marks and the \\Seen flag
of retrieved messages are applied at QUIT, in the UPDATE state, so a dropped connection changes
nothing. One POP3 session per maildrop at a time ([IN-USE], RFC 2449 §8.1.1).

RETR and TOP stream the blob file in chunks through `MessageEncoder`, so a large message is
never in memory whole. A blob file missing or not of the message's recorded size raises
`BlobDamaged`: before anything is sent when possible (its length is checked when it is opened),
or mid-stream, where the only honest answer left is to close the connection (a terminator after
a short message would make the client keep it as complete).

The maildrop lock is the store's `lock_mailbox`, so it holds across the processes of
`[pop3] processes` as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import BinaryIO

from postoffice.message.lines import WireForm, dot_stuff
from postoffice.pop3.content import MessageEncoder
from postoffice.pop3.maildrop import DropMessage, Maildrop
from postoffice.services import Services
from postoffice.store.interface import AccountRecord, BlobDamaged, FlagMode, MailboxSessionLock

log = logging.getLogger(__name__)

CHUNK = 65536
# RETR is nearly always 1, 2, 3, ...: each read of the store fetches the next few messages too,
# so one thread hop serves several RETRs. Bounded per session.
READ_AHEAD_COUNT = 16
READ_AHEAD_BYTES = 512 * 1024


class MaildropInUse(Exception):
    """Another POP3 session holds this maildrop."""


class Pop3Maildrop:
    """The TRANSACTION state of one session: which messages, which are marked, which were read."""

    def __init__(self, services: Services, account: AccountRecord, mailbox_id: int, drop: Maildrop,
                 blobs: dict[int, str], forms: dict[int, int] | None = None,
                 lock: MailboxSessionLock | None = None) -> None:
        self.services = services
        self.account = account
        self.mailbox_id = mailbox_id
        self._lock = lock
        self.drop = drop
        self._blobs = blobs  # uid -> blob hash
        self._forms = forms or {}  # uid -> WireForm of its blob (missing: UNKNOWN)
        self._retrieved: set[int] = set()
        self._read_ahead: dict[int, bytes] = {}  # message number -> content
        self._last_read = 0  # the message number read last (0: none yet, so 1 reads ahead)
        self._open = True

    @classmethod
    async def open(cls, services: Services, account: AccountRecord) -> Pop3Maildrop:
        """Lock the account's maildrop (in every process serving this store) and take INBOX as
        it is now."""
        store = services.store
        inbox = await store.get_mailbox(account.id, "INBOX")
        if inbox is None:
            raise LookupError(f"{account.address} has no INBOX")
        lock = await store.lock_mailbox(inbox.id)
        if lock is None:
            raise MaildropInUse(account.address)
        try:
            store.hold_mailbox(inbox.id)
            try:
                mailbox, records = await store.open_snapshot(inbox.id)
            except BaseException:
                store.release_mailbox(inbox.id)
                raise
        except BaseException:
            lock.release()
            raise
        try:
            kept = await store.kept_pop3_uidls(inbox.id, mailbox.uidvalidity)
        except BaseException:
            store.release_mailbox(inbox.id)
            lock.release()
            raise
        drop = Maildrop(mailbox.uidvalidity, [DropMessage(r.uid, r.size) for r in records], kept)
        forms = {r.uid: r.wire_form for r in records if r.wire_form}
        return cls(services, account, inbox.id, drop, {r.uid: r.blob for r in records}, forms, lock)

    def close(self) -> None:
        """Release the lock and the mailbox (idempotent); nothing is applied."""
        if self._open:
            self._open = False
            self.services.store.release_mailbox(self.mailbox_id)
            if self._lock is not None:
                self._lock.release()

    def blob_of(self, uid: int) -> str:
        return self._blobs[uid]

    async def read_small(self, msg: int, limit: int) -> bytes:
        """The content of message `msg` (at most `limit` octets), reading the following
        messages of at most `limit` octets ahead in the same step; raises BlobDamaged when its
        file is missing or not of its recorded size."""
        sequential, self._last_read = msg == self._last_read + 1, msg
        cached = self._read_ahead.pop(msg, None)
        if cached is not None:
            return cached
        self._read_ahead.clear()
        wanted, total = [msg], self.drop.get(msg).size
        # Only a client going through the maildrop in order is read ahead for: one that reads a
        # message again, or skips about, would make every read fetch 16 messages.
        ahead = msg + READ_AHEAD_COUNT if sequential else msg + 1
        for n in range(msg + 1, min(ahead, self.drop.count + 1)):
            size = self.drop.messages[n - 1].size
            if size > limit or total + size > READ_AHEAD_BYTES:
                break
            wanted.append(n)
            total += size
        hashes = {n: self._blobs[self.drop.messages[n - 1].uid] for n in wanted}
        sizes = {hashes[n]: self.drop.messages[n - 1].size for n in wanted}
        store = self.services.store
        found = await store.read_blobs(list(set(hashes.values())), sizes)
        self._read_ahead = {n: found[h] for n, h in hashes.items() if n != msg and h in found}
        raw = found.get(hashes[msg])
        # Left out: read it alone, which says why (BlobDamaged).
        return raw if raw is not None else await store.read_blob(hashes[msg], sizes[hashes[msg]])

    def note_streamed(self, msg: int) -> None:
        """Message `msg` is sent without `read_small` (too large to read whole): it still counts
        for the in-order test of the read-ahead."""
        self._last_read = msg

    def encode_message(self, message: DropMessage, raw: bytes, top_lines: int | None = None) -> tuple[bytes, bytes]:
        """RETR (or TOP) content of a message read whole: (content, terminator), apart so that a
        message stored ready for the wire is sent without a copy."""
        if top_lines is not None:
            encoder = MessageEncoder(top_lines)
            return encoder.feed(raw), encoder.finish()
        self._retrieved.add(message.uid)
        form = self._forms.get(message.uid, WireForm.UNKNOWN)
        if form == WireForm.READY:
            return raw, b".\r\n"
        if form == WireForm.STUFF:
            return dot_stuff(raw), b".\r\n"
        encoder = MessageEncoder()
        return encoder.feed(raw), encoder.finish()

    async def send_message(self, message: DropMessage, handle: BinaryIO,
                           send: Callable[[bytes], Awaitable[None]], top_lines: int | None = None) -> None:
        """Stream RETR (or TOP) content from the open blob `handle`, terminator included, through
        `send`; closes the handle. Raises BlobDamaged, without sending the terminator, when the
        file ends before the message's recorded size."""
        encoder = MessageEncoder(top_lines)
        read = 0
        try:
            while not encoder.done:
                chunk = await asyncio.to_thread(handle.read, CHUNK)
                if not chunk:
                    break
                read += len(chunk)
                out = encoder.feed(chunk)
                if out:
                    await send(out)
        finally:
            await asyncio.to_thread(handle.close)
        if not encoder.done and read != message.size:
            raise BlobDamaged(self._blobs[message.uid], message.size, read)
        await send(encoder.finish())
        if top_lines is None:
            self._retrieved.add(message.uid)

    async def update(self) -> int:
        """The UPDATE state (RFC 1939 §6): mark retrieved messages \\Seen, remove DELE'd ones.
        Returns how many were removed; raises if the store could not do it."""
        store = self.services.store
        deleted = self.drop.deleted_uids()
        seen = sorted(self._retrieved - set(deleted))
        if seen:
            await store.store_flags(self.mailbox_id, seen, FlagMode.ADD, ["\\Seen"])
        if deleted:
            await store.expunge(self.mailbox_id, deleted)
        return len(deleted)
