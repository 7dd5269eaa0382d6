"""The network ends of a migration: an IMAP account (source or destination) and a POP3 maildrop
(source).

IMAP goes through `imap_client.ImapClient` (pipelined UID FETCH, LITERAL+ APPEND), logged in
by `imap_session.open_imap` (password, OAuth token command, or an admin user). Folder names
are turned into "/"-separated names on the way in and into the server's delimiter on the way
out. The POP3 source uses the standard library's poplib in a thread (one blocking connection,
messages in maildrop order); a message's internal date is the date of its topmost Received
field (when the POP3 server's MTA delivered it), else its Date field.
"""

from __future__ import annotations

import asyncio
import email.utils
import poplib
import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime

from postoffice.imap.proto.values import flags_list, internaldate, mailbox
from postoffice.transfer.credentials import AccountUrl, Credentials
from postoffice.transfer.dedup import fingerprint
from postoffice.transfer.imap_client import (
    FetchFailure,
    ImapClient,
    ImapCommandFailed,
    ImapError,
    MailboxListing,
)
from postoffice.transfer.imap_session import open_imap
from postoffice.transfer.migrate_folders import FolderInfo
from postoffice.transfer.migrate_sides import ItemFailure, SourceItem
from postoffice.transfer.source import TransferError

__all__ = ["ImapDestination", "ImapSource", "Pop3Source"]

def _is_loopback(url: AccountUrl) -> bool:
    return url.host in ("127.0.0.1", "::1", "localhost")


async def _imap_login(url: AccountUrl, credentials: Credentials) -> ImapClient:
    # On loopback COMPRESS would only cost CPU.
    return await open_imap(url, credentials, compress=not _is_loopback(url))


def _logical(listing: MailboxListing) -> str:
    name = listing.name
    if listing.delimiter and listing.delimiter != "/":
        name = name.replace(listing.delimiter, "/")
    return "INBOX" if name.upper() == "INBOX" else name


class ImapSource:
    def __init__(self, client: ImapClient) -> None:
        self.client = client
        self._listings: dict[str, MailboxListing] = {}

    @classmethod
    async def open(cls, url: AccountUrl, credentials: Credentials) -> ImapSource:
        return cls(await _imap_login(url, credentials))

    async def folders(self) -> list[FolderInfo]:
        found = []
        for listing in await self.client.list_mailboxes():
            if not listing.selectable:
                continue
            name = _logical(listing)
            self._listings[name] = listing
            found.append(FolderInfo(name, listing.special_use))
        return found

    async def messages(self, folder: FolderInfo) -> AsyncIterator[SourceItem | ItemFailure]:
        listing = self._listings[folder.name]
        try:
            await self.client.select(listing.wire_name if listing.error else listing.name)
            uids = await self.client.uid_search()
        except ImapCommandFailed as exc:
            yield ItemFailure("the folder", str(exc))
            return
        async for item in self.client.uid_fetch(uids, batch=100, in_flight=4):
            if isinstance(item, FetchFailure):
                yield ItemFailure(f"UID {item.uid}", item.reason)
                continue
            try:
                yield SourceItem(f"UID {item.uid}", item.raw(), item.flags - {"\\Recent"}, item.internal_date)
            finally:
                item.close()

    async def close(self) -> None:
        try:
            await self.client.logout()
        except ImapError:
            pass
        await self.client.close()


class ImapDestination:
    keeps_uidls = False

    def __init__(self, client: ImapClient) -> None:
        self.client = client
        self._names: dict[str, str] = {}  # "/"-separated name -> the server's name
        self._delimiter = "/"

    @classmethod
    async def open(cls, url: AccountUrl, credentials: Credentials) -> ImapDestination:
        return cls(await _imap_login(url, credentials))

    async def folders(self) -> list[FolderInfo]:
        found = []
        for listing in await self.client.list_mailboxes():
            if listing.delimiter:
                self._delimiter = listing.delimiter
            name = _logical(listing)
            self._names[name] = listing.name
            if listing.selectable:
                found.append(FolderInfo(name, listing.special_use))
        return found

    def _server_name(self, folder: str) -> str:
        return self._names.get(folder) or folder.replace("/", self._delimiter)

    async def fingerprints(self, folder: str) -> Counter[str]:
        found: Counter[str] = Counter()
        if folder not in self._names:
            return found
        await self.client.select(self._server_name(folder))
        uids = await self.client.uid_search()
        async for item in self.client.uid_fetch(uids, "UID BODY.PEEK[]", batch=100, in_flight=4):
            if isinstance(item, FetchFailure):
                continue  # counted as absent: the worst case is one more copy, never a loss
            try:
                found[fingerprint(item.raw())] += 1
            finally:
                item.close()
        return found

    async def note_duplicate(self, folder: str, fp: str, item: SourceItem) -> None:
        """Nothing to note: an IMAP server's POP3 unique-ids are its own."""

    async def store(self, folder: str, items: list[SourceItem], special_use: str | None = None) -> list[str | None]:
        name = self._server_name(folder)
        if folder not in self._names:
            try:
                await self.client.create(name)
            except ImapCommandFailed as exc:
                if exc.code != "ALREADYEXISTS":
                    return [str(exc)] * len(items)
            self._names[folder] = name
        results: list[str | None] = []
        start = 0
        while start < len(items):
            group = _multiappend_group(items, start) if self._multiappend() else items[start : start + 1]
            start += len(group)
            if len(group) > 1:
                try:
                    await self.client.command(_multiappend(name, group))
                    results += [None] * len(group)
                    continue
                except ImapCommandFailed:
                    pass  # none was stored (RFC 3502 §6.3.11): one at a time finds the bad one
            for item in group:
                try:
                    await self.client.append(name, item.raw, flags=item.flags, internal_date=item.internal_date)
                    results.append(None)
                except ImapCommandFailed as exc:
                    results.append(str(exc))
        return results

    def _multiappend(self) -> bool:
        # Without LITERAL+ every literal would wait for the server's "+": no gain over APPEND.
        caps = self.client.capabilities
        return "MULTIAPPEND" in caps and "LITERAL+" in caps

    async def close(self) -> None:
        try:
            await self.client.logout()
        except ImapError:
            pass
        await self.client.close()


_GROUP_MESSAGES = 50
_GROUP_BYTES = 8 << 20


def _multiappend_group(items: list[SourceItem], start: int) -> list[SourceItem]:
    group: list[SourceItem] = []
    size = 0
    for item in items[start:]:
        if group and (len(group) >= _GROUP_MESSAGES or size + len(item.raw) > _GROUP_BYTES):
            break
        group.append(item)
        size += len(item.raw)
    return group


def _multiappend(name: str, items: list[SourceItem]) -> bytes:
    """One APPEND of several messages (RFC 3502 MULTIAPPEND) with non-synchronising literals
    (RFC 7888 LITERAL+): the destination stores them in one go, or none of them."""
    parts = [b"APPEND " + mailbox(name)]
    for item in items:
        wanted = tuple(f for f in item.flags if f.upper() != "\\RECENT")
        part = b" " + flags_list(wanted) if wanted else b""
        if item.internal_date is not None:
            part += b" " + internaldate(item.internal_date)
        parts.append(part + b" {%d+}\r\n" % len(item.raw) + item.raw)
    return b"".join(parts)


_RECEIVED_DATE = re.compile(rb"^Received:.*?;\s*([^\r\n]+(?:\r?\n[ \t][^\r\n]+)*)", re.I | re.M | re.S)
_DATE = re.compile(rb"^Date:[ \t]*([^\r\n]+)", re.I | re.M)


def arrival_date(raw: bytes) -> datetime | None:
    """When the message arrived: the topmost Received field's date, else its Date field."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    for pattern in (_RECEIVED_DATE, _DATE):
        m = pattern.search(head)
        if m is None:
            continue
        text = b" ".join(m[1].split()).decode("latin-1")
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            continue
        if when.tzinfo is not None:
            return when
    return None


class Pop3Source:
    """A POP3 maildrop: one folder, INBOX; each message keeps its UIDL."""

    def __init__(self, connection: poplib.POP3) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, url: AccountUrl, password: str) -> Pop3Source:
        def login() -> poplib.POP3:
            try:
                if url.security == "tls":
                    conn: poplib.POP3 = poplib.POP3_SSL(url.host, url.port, timeout=60, context=url.ssl_context())
                else:
                    conn = poplib.POP3(url.host, url.port, timeout=60)
                    if url.security == "starttls":
                        conn.stls(url.ssl_context())
                conn.user(url.user)
                conn.pass_(password)
                return conn
            except (OSError, poplib.error_proto) as exc:
                raise TransferError(f"{url}: {_reason(exc)}.") from exc

        return cls(await asyncio.to_thread(login))

    async def folders(self) -> list[FolderInfo]:
        return [FolderInfo("INBOX")]

    async def messages(self, folder: FolderInfo) -> AsyncIterator[SourceItem | ItemFailure]:
        listing = await asyncio.to_thread(self.connection.uidl)
        numbered: list[tuple[int, str]] = []
        for line in listing[1]:
            text, _, uidl = line.decode("latin-1").partition(" ")
            numbered.append((int(text), uidl.strip()))
        for number, uidl in numbered:
            try:
                _, lines, _ = await asyncio.to_thread(self.connection.retr, number)
            except poplib.error_proto as exc:
                yield ItemFailure(f"UIDL {uidl}", _reason(exc))
                continue
            raw = b"\r\n".join(lines) + b"\r\n"
            yield SourceItem(f"UIDL {uidl}", raw, frozenset(), arrival_date(raw), uidl)

    async def close(self) -> None:
        def quit_() -> None:
            try:
                self.connection.quit()
            except (OSError, poplib.error_proto):
                self.connection.close()

        await asyncio.to_thread(quit_)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, poplib.error_proto) and exc.args:
        arg = exc.args[0]
        return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
    return str(exc) or type(exc).__name__
