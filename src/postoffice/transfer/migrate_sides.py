"""The two ends of a migration, and the local account (`local:ADDR`) as either end.

A source lists its folders and yields each folder's messages (or a failure for one it could
not read); a destination lists its folders, says which fingerprints a folder already holds, and
stores a batch of messages, answering per message. The network ends are in migrate_remote.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from postoffice.store.interface import AccountRecord, MailStore, MessageRecord, StoreError
from postoffice.transfer.importer import Importer, StoredMessage
from postoffice.transfer.migrate_folders import FolderInfo
from postoffice.transfer.source import SourceMessage
from postoffice.transfer.stored_fingerprints import mailbox_fingerprint_uids

__all__ = [
    "ItemFailure",
    "LocalDestination",
    "LocalSource",
    "MigrationDestination",
    "MigrationSource",
    "SourceItem",
]


@dataclass(slots=True)
class SourceItem:
    """One message read from the source. `ident` names it in reports ("UID 12", "UIDL abc");
    `uidl` is its POP3 unique-id on the source, when it has one we know."""

    ident: str
    raw: bytes
    flags: frozenset[str]
    internal_date: datetime | None
    uidl: str | None = None


@dataclass(frozen=True, slots=True)
class ItemFailure:
    ident: str
    reason: str


class MigrationSource(Protocol):
    async def folders(self) -> list[FolderInfo]: ...
    def messages(self, folder: FolderInfo) -> AsyncIterator[SourceItem | ItemFailure]: ...
    async def close(self) -> None: ...


class MigrationDestination(Protocol):
    keeps_uidls: bool

    async def folders(self) -> list[FolderInfo]: ...
    async def fingerprints(self, folder: str) -> Counter[str]:
        """What the folder holds now (nothing when it does not exist yet)."""
        ...
    async def store(self, folder: str, items: list[SourceItem], special_use: str | None = None) -> list[str | None]:
        """Store the messages into `folder` (created when missing, with `special_use` when the
        destination can); per message None when it is stored, else the reason it is not."""
        ...
    async def note_duplicate(self, folder: str, fp: str, item: SourceItem) -> None:
        """`item` was not copied: the folder's message with fingerprint `fp` is its copy."""
        ...
    async def close(self) -> None: ...


class LocalSource:
    """A postoffice account on this machine (`local:ADDR` as the source)."""

    def __init__(self, store: MailStore, account: AccountRecord) -> None:
        self.mail_store = store
        self.account = account

    async def folders(self) -> list[FolderInfo]:
        return [FolderInfo(b.name, b.special_use) for b in await self.mail_store.list_mailboxes(self.account.id)]

    async def messages(self, folder: FolderInfo) -> AsyncIterator[SourceItem | ItemFailure]:
        box = await self.mail_store.get_mailbox(self.account.id, folder.name)
        if box is None:
            return
        batch: list[MessageRecord] = []
        async for record in self.mail_store.iter_messages(box.id):
            batch.append(record)
            if len(batch) >= 200:
                for item in await self._read(batch, box.uidvalidity, folder.name):
                    yield item
                batch = []
        for item in await self._read(batch, box.uidvalidity, folder.name):
            yield item

    async def _read(self, records: list[MessageRecord], uidvalidity: int, name: str) -> list[SourceItem | ItemFailure]:
        blobs = await self.mail_store.read_blobs([r.blob for r in records])
        items: list[SourceItem | ItemFailure] = []
        for r in records:
            raw = blobs.get(r.blob)
            if raw is None:
                items.append(ItemFailure(f"UID {r.uid}", "its message file is missing or damaged"))
                continue
            # postoffice's own POP3 unique-id of an INBOX message (pop3/maildrop.py).
            uidl = f"{uidvalidity}.{r.uid}" if name == "INBOX" else None
            items.append(SourceItem(f"UID {r.uid}", raw, r.flags - {"\\Recent"},
                                    datetime.fromtimestamp(r.internal_date, UTC), uidl))
        return items

    async def close(self) -> None:
        """Nothing to close: the store belongs to the caller."""


class LocalDestination:
    """A postoffice account on this machine (`local:ADDR` as the destination): messages go in
    through the importer (durable when stored), and INBOX messages keep their POP3 unique-id."""

    keeps_uidls = True

    def __init__(self, store: MailStore, account: AccountRecord) -> None:
        self.mail_store = store
        self.account = account
        self._inbox_uids: dict[str, list[int]] = {}
        self._adopted: dict[int, str] = {}  # INBOX UID -> the source's UIDL, not written yet

    async def folders(self) -> list[FolderInfo]:
        return [FolderInfo(b.name, b.special_use) for b in await self.mail_store.list_mailboxes(self.account.id)]

    async def fingerprints(self, folder: str) -> Counter[str]:
        box = await self.mail_store.get_mailbox(self.account.id, folder)
        if box is None:
            return Counter()
        uids = await mailbox_fingerprint_uids(self.mail_store, box.id)
        if folder == "INBOX":
            self._inbox_uids = uids
        return Counter({fp: len(u) for fp, u in uids.items()})

    async def note_duplicate(self, folder: str, fp: str, item: SourceItem) -> None:
        """A POP3 message already here (a client copied it) takes the source's UIDL as well, so
        a client that left it on the old server does not download it again either."""
        if folder != "INBOX" or item.uidl is None:
            return
        uids = self._inbox_uids.get(fp)
        if uids:
            # Written in batches: a rerun skips every message, one write each would be slow.
            self._adopted[uids.pop(0)] = item.uidl
            if len(self._adopted) >= 500:
                await self._keep_adopted()

    async def _keep_adopted(self) -> None:
        adopted, self._adopted = self._adopted, {}
        box = await self.mail_store.get_mailbox(self.account.id, "INBOX")
        if box is not None and adopted:
            await self.mail_store.keep_pop3_uidls(box.id, box.uidvalidity, adopted)

    async def store(self, folder: str, items: list[SourceItem], special_use: str | None = None) -> list[str | None]:
        if await self.mail_store.get_mailbox(self.account.id, folder) is None:
            try:
                await self.mail_store.create_mailbox(self.account.id, folder, special_use, subscribed=True)
            except StoreError:  # the use is taken by another mailbox, or the name is refused
                try:
                    await self.mail_store.create_mailbox(self.account.id, folder, subscribed=True)
                except StoreError as exc:
                    return [str(exc)] * len(items)
        stored: list[StoredMessage] = []
        importer = Importer(self.mail_store, self.account, into=folder, allow_duplicates=True, workers=1,
                            on_stored=stored.extend)
        messages = [SourceMessage(item.raw, item.flags, item.internal_date, folder, str(n))
                    for n, item in enumerate(items)]
        try:
            await importer.run(messages)
        except StoreError as exc:
            done = {int(s.source_id) for s in stored}
            return [None if n in done else str(exc) for n in range(len(items))]
        uidls = {s.uid: items[int(s.source_id)].uidl for s in stored}
        kept = {uid: uidl for uid, uidl in uidls.items() if uidl is not None}
        if kept and folder == "INBOX":
            box = await self.mail_store.get_mailbox(self.account.id, folder)
            if box is not None:
                await self.mail_store.keep_pop3_uidls(box.id, box.uidvalidity, kept)
        done = {int(s.source_id) for s in stored}
        return [None if n in done else "not stored" for n in range(len(items))]

    async def close(self) -> None:
        """Write the UIDLs still pending; the store itself belongs to the caller."""
        await self._keep_adopted()
