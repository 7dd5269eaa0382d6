"""`postoffice fetch imap[s]://...`: copy a remote IMAP account to Maildir, mbox or a local account.

>>> summary = await fetch_imap(url, credentials, MaildirDestination(Path("Mail")), FetchOptions())
>>> summary.copied, summary.skipped_duplicates, summary.failures

For each folder (every selectable one, or those matching ``--folder`` globs), on one of
``connections`` connections working through the folder list:

1. EXAMINE it (read-only: fetching never changes the source, not even \\Seen: BODY.PEEK).
2. Compare its UIDVALIDITY with the state's. Unchanged: the UIDs recorded, plus those the
   destination holds without a record (a crash between write and record), are skipped. Changed
   (the server renumbered the folder, RFC 9051 §2.3.1.1), or a destination the state does not
   account for: the folder is fetched again and each message compared by content (SHA-256 of
   the CRLF form) with what the destination holds, counted as a multiset, so nothing is copied
   twice and true duplicates in the source stay duplicates.
3. ``UID FETCH (UID RFC822.SIZE)`` for what is new: sizes for the progress bar and for
   ``--max-bytes`` (a message that would pass the cap is left for the next run, ``deferred``).
4. ``UID FETCH (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])``, pipelined; each message is
   written (durably), and every ``sync_every`` messages, and at the end, the destination is
   synced and the UIDs recorded in the state file.

With CONDSTORE at the source, a rerun first asks what changed (``fetch_changes``): a folder
whose UIDNEXT and HIGHESTMODSEQ are as recorded is done after EXAMINE; otherwise flag changes
reach the copies already made (QRESYNC's SELECT or CHANGEDSINCE), and copies whose message
the source removed are counted and kept, before step 2 goes on as above.

Failures stay local: a message the server will not give, or gives malformed, is a failure with
the server's reason; a dropped connection fails the rest of that folder (what was written is
recorded) and the next folder gets a new connection. A rerun fetches exactly what is missing.

Gmail (X-GM-EXT-1): a message with several labels appears in several folders. By default
(``gmail_labels="keywords"``) only "All Mail", Spam and Trash (which All Mail leaves out) are
fetched, each message once, its labels as keywords; ``X-GM-MSGID`` is its identity in the state.
``gmail_labels="folders"`` fetches every label folder instead, and a message already copied (same
X-GM-MSGID) is not downloaded again: in a Maildir it is hard-linked into the other folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fnmatch
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from postoffice.message.lines import to_crlf
from postoffice.store.blobs import blob_hash
from postoffice.transfer.credentials import AccountUrl, Credentials
from postoffice.transfer.dedup import fingerprint
from postoffice.transfer.fetch_changes import (
    MBOX_NOT_CARRIED,
    carried_flags,
    carry_flags,
    copy_flags,
    is_unchanged,
    qresync_params,
    removed_at_source,
)
from postoffice.transfer.fetch_destinations import Destination, FolderWriter
from postoffice.transfer.fetch_state import FetchState, FolderState, SourceState
from postoffice.transfer.fetch_summary import Failure, FetchProgress, FetchSummary
from postoffice.transfer.imap_client import (
    FetchedMessage,
    FetchFailure,
    ImapClient,
    ImapCommandFailed,
    ImapConnectionLost,
    ImapError,
    MailboxListing,
    SelectedMailbox,
)
from postoffice.transfer.imap_session import open_imap
from postoffice.transfer.source import TransferError

__all__ = ["FetchOptions", "fetch_imap", "select_folders"]

BODY_ITEMS = "UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[]"


@dataclass(frozen=True)
class FetchOptions:
    folders: tuple[str, ...] = ()
    connections: int = 1
    max_bytes: int | None = None
    gmail_labels: Literal["keywords", "folders"] = "keywords"
    batch: int = 50
    in_flight: int = 4
    sync_every: int = 100
    timeout: float = 60.0


def select_folders(
    listings: list[MailboxListing], globs: tuple[str, ...], *, gmail: bool, gmail_labels: str
) -> list[MailboxListing]:
    """The folders to fetch, INBOX first."""
    selectable = [b for b in listings if b.selectable]
    if globs:
        chosen = [b for b in selectable if any(_matches(b.name, g) for g in globs)]
    elif gmail and gmail_labels == "keywords" and any(b.special_use == "\\All" for b in selectable):
        chosen = [b for b in selectable if b.special_use in ("\\All", "\\Junk", "\\Trash")]
    else:
        chosen = selectable
    return sorted(chosen, key=lambda b: (b.name.upper() != "INBOX", b.name))


def _matches(name: str, glob: str) -> bool:
    if name.upper() == "INBOX" and glob.upper() == "INBOX":
        return True
    return fnmatch.fnmatchcase(name, glob)


class _Run:
    def __init__(
        self,
        url: AccountUrl,
        credentials: Credentials,
        destination: Destination,
        options: FetchOptions,
        progress: FetchProgress,
        state: FetchState,
    ) -> None:
        self.url = url
        self.credentials = credentials
        self.destination = destination
        self.options = options
        self.progress = progress
        self.state = state
        self.source: SourceState = state.source(url.key)
        self.summary = FetchSummary()
        self.budget = options.max_bytes
        self.gmail = False
        self.lock = asyncio.Lock()
        self.gmail_files: dict[int, Path] = {}
        self.qresync_refused = False

    async def save(self) -> None:
        async with self.lock:
            await asyncio.to_thread(self.state.write, self.state.snapshot())

    async def connect(self) -> ImapClient:
        return await open_imap(self.url, self.credentials, timeout=self.options.timeout)

    async def worker(self, client: ImapClient | None, folders: list[MailboxListing]) -> None:
        try:
            while folders:
                listing = folders.pop(0)
                if client is None:
                    try:
                        client = await self.connect()
                    except (ImapError, OSError) as exc:
                        self.summary.failures.append(Failure(listing.name, None, str(exc)))
                        continue
                try:
                    await self.folder(client, listing)
                except ImapConnectionLost as exc:
                    self.summary.failures.append(Failure(listing.name, None, f"{exc}; run fetch again to finish"))
                    await client.close()
                    client = None
                except ImapError as exc:
                    self.summary.failures.append(Failure(listing.name, None, str(exc)))
                finally:
                    self.progress.folder_done(listing.name)
        finally:
            if client is not None:
                await client.logout()

    async def folder(self, client: ImapClient, listing: MailboxListing) -> None:
        name = listing.name
        folder_state = self.source.folder(name)
        qresync = None if self.qresync_refused else qresync_params(client, folder_state, gmail=self.gmail)
        selected = await self.examine(client, listing, qresync)
        self.summary.folders += 1
        uidvalidity = selected.uidvalidity or 0
        writer = await self.destination.open_folder(name, self.url.key, uidvalidity, folder_state)
        try:
            changed = folder_state.uidvalidity is not None and folder_state.uidvalidity != uidvalidity
            if changed or writer.untrusted:
                # Compare by content until this folder has been fetched completely once.
                folder_state.dedupe = True
                folder_state.forget_source()
                reason = "its UIDVALIDITY changed" if changed else "the destination holds mail the state does not list"
                self.summary.warnings.append(f"{name}: {reason}; messages were compared by content")
            folder_state.uidvalidity = uidvalidity
            if is_unchanged(selected, folder_state):
                self.summary.unchanged_folders += 1
                self.summary.skipped_duplicates += len(folder_state.uids - folder_state.vanished)
                self.progress.folder_unchanged(name)
                return
            folder_state.uidnext = None  # until this run has copied everything it finds
            await self.save()  # the folder's starting point, before anything is written
            uids = await client.uid_search() if selected.exists else []
            listed = set(uids)
            for uid, digest in (await writer.present_uids()).items():
                if uid in listed and uid not in folder_state.uids:
                    folder_state.uids.add(uid)  # written by a run that was killed before recording it
                    if folder_state.dedupe and digest:
                        folder_state.claimed[digest] += 1
            # After the line above: a copy a killed run wrote gets the changes since, too.
            await self.note_removed(name, folder_state, removed_at_source(selected, folder_state, listed))
            await self.match_copies(client, writer)
            await self.carry_changes(client, name, selected, writer, folder_state)
            hashes: Counter[str] | None = None
            if folder_state.dedupe:
                hashes = await writer.content_hashes()
                hashes.subtract(folder_state.claimed)
            todo = [uid for uid in uids if uid not in folder_state.uids]
            self.summary.skipped_duplicates += len(uids) - len(todo)
            plan, sizes, gm_ids = await self.plan(client, name, todo)
            self.progress.folder_started(name, len(plan), sum(sizes.get(u, 0) for u in plan))
            failures = len(self.summary.failures)
            await self.copy(client, name, plan, writer, folder_state, hashes, gm_ids)
            if len(plan) == len(todo) and len(self.summary.failures) == failures:
                folder_state.dedupe = False
                folder_state.claimed.clear()
                # Nothing left behind: a run that finds this UIDNEXT (and HIGHESTMODSEQ) again
                # has nothing to do.
                if folder_state.highestmodseq == selected.highestmodseq:
                    folder_state.uidnext = selected.uidnext
                await self.save()
        finally:
            await writer.close()

    async def examine(
        self, client: ImapClient, listing: MailboxListing, qresync: tuple[int, int, int] | None
    ) -> SelectedMailbox:
        """EXAMINE, with (QRESYNC (...)) when it can serve. Some servers advertise QRESYNC
        yet answer NO or BAD to that EXAMINE: the folder then takes a plain EXAMINE, and its
        changes come by CHANGEDSINCE and UID SEARCH instead (RFC 7162 §3.1.4), said once a run;
        the folders after it are examined plainly at once (``qresync_refused``)."""
        wire = listing.wire_name if listing.error else listing.name
        if qresync is None:
            return _without_unoffered_modseq(client, await client.select(wire))
        try:
            return await client.select(wire, qresync=qresync)
        except ImapCommandFailed as exc:
            refusal = exc
        selected = await client.select(wire)  # refused too: the folder fails with this answer
        if not self.qresync_refused:
            self.qresync_refused = True
            self.summary.warnings.append(
                f"{listing.name}: the server refused EXAMINE with QRESYNC ({refusal}) although it offers"
                " QRESYNC; this and the run's later folders were examined plainly and their flag changes read"
                " with CHANGEDSINCE"
            )
        return selected

    async def match_copies(self, client: ImapClient, writer: FolderWriter) -> None:
        """A ``local:`` state from before it recorded each copy's local UID: the copies are
        found by fingerprint, once (the messages are read again), so flag changes reach them."""
        uids = await writer.unmatched()
        if not uids:
            return
        fingerprints: dict[int, str] = {}
        stream = client.uid_fetch(uids, "UID BODY.PEEK[]", batch=self.options.batch, in_flight=self.options.in_flight)
        async with contextlib.aclosing(stream) as messages:
            async for item in messages:
                if isinstance(item, FetchedMessage):
                    try:
                        fingerprints[item.uid] = await asyncio.to_thread(fingerprint, item.raw())
                    finally:
                        item.close()
        await writer.match(fingerprints)
        await self.save()

    async def carry_changes(
        self,
        client: ImapClient,
        name: str,
        selected: SelectedMailbox,
        writer: FolderWriter,
        folder_state: FolderState,
    ) -> None:
        """Flag changes at the source to the copies already made, then the new HIGHESTMODSEQ
        into the state (only once they are durable: see ``fetch_changes``)."""
        outcome = await carry_flags(client, selected, folder_state, writer, gmail=self.gmail)
        self.summary.flags_updated += outcome.updated
        if outcome.warning == MBOX_NOT_CARRIED:
            if MBOX_NOT_CARRIED not in self.summary.warnings:
                self.summary.warnings.append(MBOX_NOT_CARRIED)
        elif outcome.warning is not None:
            self.summary.warnings.append(f"{name}: {outcome.warning}")
        if outcome.missing:
            self.summary.warnings.append(
                f"{name}: {outcome.missing} message(s) changed flags at the source but have no copy here"
                " that postoffice knows of (removed here, or copied before it recorded which copy is which)"
            )
        if outcome.carried:
            folder_state.highestmodseq = selected.highestmodseq
        elif selected.highestmodseq is None:
            folder_state.highestmodseq = None
        await self.save()

    async def note_removed(self, name: str, folder_state: FolderState, gone: set[int]) -> None:
        """Copies whose message the source has removed: counted once, kept (a backup).
        Recorded at once: a folder that fails later in this run (the connection lost while
        flags are read) must not count them again next run."""
        if not gone:
            return
        folder_state.vanished |= gone
        await self.save()
        self.summary.removed_at_source += len(gone)
        self.summary.warnings.append(
            f"{name}: {len(gone)} message(s) copied earlier were removed at the source (deleted, or moved"
            " to another folder); their copies here are kept"
        )

    async def plan(
        self, client: ImapClient, name: str, todo: list[int]
    ) -> tuple[list[int], dict[int, int], dict[int, int]]:
        """Sizes (and Gmail ids) of what is new; the UIDs to copy now, within the byte cap."""
        sizes: dict[int, int] = {}
        gm_ids: dict[int, int] = {}
        if not todo:
            return [], sizes, gm_ids
        items = "UID RFC822.SIZE" + (" X-GM-MSGID" if self.gmail else "")
        async with contextlib.aclosing(client.uid_fetch(todo, items, batch=1000, in_flight=2)) as stream:
            async for item in stream:
                if isinstance(item, FetchedMessage):
                    sizes[item.uid] = item.size or 0
                    if item.gm_msgid is not None:
                        gm_ids[item.uid] = item.gm_msgid
        plan: list[int] = []
        for uid in todo:
            size = sizes.get(uid, 0)
            if self.budget is not None:
                if size > self.budget:
                    self.summary.deferred += 1
                    self.budget = 0  # keep the order: nothing after a deferred message either
                    continue
                self.budget -= size
            plan.append(uid)
        return plan, sizes, gm_ids

    async def copy(
        self,
        client: ImapClient,
        name: str,
        plan: list[int],
        writer: FolderWriter,
        folder_state: FolderState,
        hashes: Counter[str] | None,
        gm_ids: dict[int, int],
    ) -> None:
        unsynced: list[int] = []
        unsynced_gm: list[int] = []
        unsynced_hashes: list[str] = []
        written = 0

        async def commit() -> None:
            nonlocal written
            duplicates = await writer.sync()
            self.summary.copied -= duplicates
            self.summary.skipped_duplicates += duplicates
            folder_state.uids.update(unsynced)
            folder_state.claimed.update(unsynced_hashes)
            self.source.gmail_ids.update(unsynced_gm)
            unsynced.clear()
            unsynced_gm.clear()
            unsynced_hashes.clear()
            written = 0
            await self.save()

        linkable = self.gmail and self.options.gmail_labels == "folders"
        todo = []
        for uid in plan:
            gm = gm_ids.get(uid)
            known = linkable and gm is not None and gm in self.source.gmail_ids
            if known and gm is not None and await self.link(gm, writer, uid):
                self.summary.skipped_duplicates += 1
                unsynced.append(uid)
                continue
            todo.append(uid)
        try:
            items = BODY_ITEMS + (" X-GM-MSGID X-GM-LABELS" if self.gmail else "")
            stream = client.uid_fetch(todo, items, batch=self.options.batch, in_flight=self.options.in_flight)
            async with contextlib.aclosing(stream) as messages:
                async for item in messages:
                    if isinstance(item, FetchFailure):
                        self.summary.failures.append(Failure(name, item.uid, item.reason))
                        continue
                    try:
                        raw = item.raw()
                        if hashes is not None:
                            digest = blob_hash(to_crlf(raw))
                            unsynced_hashes.append(digest)
                            if hashes[digest] > 0:
                                hashes[digest] -= 1
                                # So that later flag changes find this copy by its new UID.
                                await writer.adopt(digest, item.uid, carried_flags(copy_flags(item.flags, item.gm_labels)))
                                self.summary.skipped_duplicates += 1
                                unsynced.append(item.uid)
                                continue
                        flags = copy_flags(item.flags, item.gm_labels)
                        await writer.add(raw, flags, item.internal_date, item.uid)
                    finally:
                        item.close()
                    unsynced.append(item.uid)
                    if item.gm_msgid is not None:
                        unsynced_gm.append(item.gm_msgid)
                        self.remember_gmail_file(item.gm_msgid, writer, item.uid)
                    self.summary.copied += 1
                    self.summary.bytes += len(raw)
                    self.progress.advanced(name, 1, len(raw))
                    written += 1
                    if written >= self.options.sync_every:
                        await commit()
        finally:
            await commit()

    def remember_gmail_file(self, gm_msgid: int, writer: FolderWriter, uid: int) -> None:
        path = getattr(writer, "last_path", None)
        if isinstance(path, Path):
            self.gmail_files[gm_msgid] = path

    async def link(self, gm_msgid: int, writer: FolderWriter, uid: int) -> bool:
        """Put a message already copied into this label's folder without downloading it."""
        source = self.gmail_files.get(gm_msgid)
        link = getattr(writer, "link", None)
        if source is None or link is None or not source.exists():
            return False
        try:
            await link(source, uid)
        except OSError:
            return False
        return True


def _without_unoffered_modseq(client: ImapClient, selected: SelectedMailbox) -> SelectedMailbox:
    """A HIGHESTMODSEQ from a server that does not offer CONDSTORE is not acted on: CHANGEDSINCE
    may only be sent to one that does (RFC 7162 §3); such a folder is compared by UID SEARCH."""
    if selected.highestmodseq is None or "CONDSTORE" in client.capabilities | client.enabled:
        return selected
    return dataclasses.replace(selected, highestmodseq=None)


async def fetch_imap(
    url: AccountUrl,
    credentials: Credentials,
    destination: Destination,
    options: FetchOptions,
    progress: FetchProgress | None = None,
) -> FetchSummary:
    """Fetch the account at ``url`` into ``destination``; see the module docstring."""
    started = time.monotonic()
    state = await asyncio.to_thread(FetchState.load, destination.state_path)
    run = _Run(url, credentials, destination, options, progress or FetchProgress(), state)
    first = await run.connect()
    try:
        run.gmail = "X-GM-EXT-1" in first.capabilities
        listings = await first.list_mailboxes()
    except BaseException:
        await first.logout()
        raise
    for listing in listings:
        if listing.error is not None:
            run.summary.warnings.append(f"{listing.error}; fetched under that name as it is")
    folders = select_folders(
        listings, options.folders, gmail=run.gmail, gmail_labels=options.gmail_labels
    )
    if options.folders and not folders:
        await first.logout()
        raise TransferError(f"No folder of {url} matches {', '.join(options.folders)}.")
    workers = [run.worker(first, folders)]
    for _ in range(max(1, min(options.connections, len(folders))) - 1):
        workers.append(run.worker(None, folders))
    await asyncio.gather(*workers)
    run.summary.seconds = time.monotonic() - started
    return run.summary
