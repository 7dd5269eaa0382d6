"""Where `postoffice fetch` writes: a Maildir++ tree, an mbox tree, or a local account.

Each destination opens one :class:`FolderWriter` per source folder. The fetch engine adds
messages, then calls ``sync`` (everything added is durable) before it records their UIDs in
the state file (``fetch_state``); how each destination recognises a message that was written
but whose UID a crash kept from being recorded:

- Maildir: the file's unique name is derived from the source and the message's UIDVALIDITY
  and UID (``<date>.fetch-<source>-V<uidvalidity>-U<uid>.<host>,H=<sha256>``), so listing
  cur/ and new/ finds it (``present_uids``). Every file is fsynced with its directory on
  ``add`` (``MaildirWriter``). Flags are in the name (``:2,FRS``), the internal date is the
  file's mtime.
- mbox (DEST is a folder holding ``NAME.mbox`` per folder, as ``export`` writes them): the
  state records the file's length after the last recorded message; opening truncates the file
  back to it, dropping a message written but not recorded (fetched again). Flags go to
  ``Status``/``X-Status``, the internal date to the ``From_`` line. A file that is shorter than
  recorded, or that existed without a recorded length, was changed by someone else: its
  content is compared by hash instead (``untrusted``).
- local:ADDR: the store itself; appends go through ``Importer`` (flags, internal dates,
  mailboxes created as needed), whose content check skips a message already in the mailbox.

Flag changes at the source (CONDSTORE, see ``fetch_changes``) reach copies already written
through ``set_flags``, durable when it returns:

- Maildir: the file (found by the ``-U<uid>.`` in its name) is renamed, atomically, to its new
  ``:2,<letters>`` in cur/, keywords lettered as on the first copy. After a UIDVALIDITY change
  a file matched by content is renamed to the new ``-V<uidvalidity>-U<uid>`` (``adopt``), so
  it is found by its new UID.
- local:ADDR: ``store_flags`` on the copy, so IMAP clients see the change (a new modseq, the
  change log, IDLE). The copy's UID comes from the state (``local_uids``, recorded as the
  importer stores each message); a message the importer skipped as already present is matched
  to a stored one by its fingerprint, and so, once, is every copy of a state file from before
  ``local_uids`` (``unmatched``/``match``: the source's messages are read again for it).
- mbox: not carried (``carries_flags`` is False; the summary says so). Status/X-Status sit in
  each message's header, so a change means rewriting the file from that message on: a full
  copy of a large mbox on every run, and one that the truncate-to-recorded-length recovery
  above could not undo safely if killed halfway.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from postoffice.durable import fsync_dir, make_dirs
from postoffice.message.lines import to_crlf
from postoffice.store.blobs import blob_hash
from postoffice.store.interface import AccountRecord, FlagMode, MailStore
from postoffice.transfer.dedup import fingerprint
from postoffice.transfer.fetch_state import FolderState
from postoffice.transfer.filesystem import inside
from postoffice.transfer.importer import Importer, StoredMessage
from postoffice.transfer.maildir import MaildirWriter
from postoffice.transfer.mbox import MboxWriter, content_hashes
from postoffice.transfer.names import mbox_path_parts
from postoffice.transfer.source import SourceMessage, TransferError
from postoffice.transfer.stored_fingerprints import mailbox_fingerprint_uids

__all__ = [
    "Destination",
    "FlagsSet",
    "FolderWriter",
    "LocalDestination",
    "MaildirDestination",
    "MboxDestination",
    "source_tag",
]


_FETCH_NAME = re.compile(r"fetch-[0-9a-f]{8}-V[0-9]+-U[0-9]+\.")


def source_tag(source_key: str) -> str:
    """Eight hex digits naming a source in Maildir file names."""
    return hashlib.sha256(source_key.encode()).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class FlagsSet:
    """What ``set_flags`` did: copies whose flags changed, and source UIDs without a known copy."""

    updated: int = 0
    missing: tuple[int, ...] = ()


class FolderWriter(Protocol):
    untrusted: bool  # the destination holds mail the state does not account for: dedupe by hash
    carries_flags: bool  # set_flags can change the flags of copies already written

    async def present_uids(self) -> dict[int, str | None]:
        """UIDs of this folder's messages already written (with their SHA-256 when known)."""
        ...

    async def content_hashes(self) -> Counter[str]: ...

    async def add(self, raw: bytes, flags: frozenset[str], date: datetime | None, uid: int) -> None: ...

    async def sync(self) -> int:
        """Make every message added durable and note it in the folder's state; returns how
        many of those were duplicates the destination itself skipped."""
        ...

    async def set_flags(self, changes: Mapping[int, frozenset[str]]) -> FlagsSet:
        """Give the copies of these source UIDs exactly these flags (the source's, as ``add``
        takes them); durable when it returns."""
        ...

    async def unmatched(self) -> list[int]:
        """Copied source UIDs whose copy here cannot be found without reading them again
        (``match`` then gets their fingerprints); [] where every copy is found by its name."""
        ...

    async def match(self, fingerprints: Mapping[int, str]) -> None: ...

    async def adopt(self, digest: str, uid: int, flags: frozenset[str]) -> bool:
        """After a UIDVALIDITY change, make an earlier copy with this SHA-256 the copy of
        ``uid`` (found by it from now on) with these flags; False where there is none to take."""
        ...

    async def close(self) -> None: ...


class Destination(Protocol):
    state_path: Path
    description: str

    async def open_folder(
        self, folder: str, source_key: str, uidvalidity: int, state: FolderState
    ) -> FolderWriter: ...


# -- Maildir -----------------------------------------------------------------------------------


class MaildirDestination:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.state_path = path.parent / f"{path.name}.fetch-state.json"
        self.description = f"maildir:{path}"
        self._writer = MaildirWriter(path)

    async def open_folder(
        self, folder: str, source_key: str, uidvalidity: int, state: FolderState
    ) -> FolderWriter:
        directory = await asyncio.to_thread(self._writer.folder_path, folder)
        return _MaildirFolder(self._writer, folder, directory, source_tag(source_key), uidvalidity)


class _NothingToFind:
    """The FolderWriter steps that find copies again, for a writer that needs none of them (its
    copies are found by their source UID, or never updated); each writer overrides its own."""

    async def unmatched(self) -> list[int]:
        return []

    async def match(self, fingerprints: Mapping[int, str]) -> None:
        return None

    async def adopt(self, digest: str, uid: int, flags: frozenset[str]) -> bool:
        return False


class _MaildirFolder(_NothingToFind):
    untrusted = False
    carries_flags = True

    def __init__(
        self, writer: MaildirWriter, folder: str, directory: Path, tag: str, uidvalidity: int
    ) -> None:
        self.writer = writer
        self.folder = folder
        self.directory = directory
        self.prefix = f"fetch-{tag}-V{uidvalidity}-U"
        self.host = writer.host_part
        self.last_path: Path | None = None
        self._pattern = re.compile(re.escape(self.prefix) + r"([0-9]+)\.[^,:;]*(?:,H=([0-9a-f]{64}))?")
        self._files: dict[int, Path] | None = None  # by source UID, for set_flags
        # Files of this source from an earlier UIDVALIDITY, by SHA-256: what adopt renames.
        self._earlier = re.compile(rf"\.fetch-{tag}-V(?!{uidvalidity}-)[0-9]+-U[0-9]+\.[^,:;]*,H=([0-9a-f]{{64}})")
        self._stale: dict[str, list[Path]] | None = None

    def _scan(self) -> dict[int, tuple[Path, str | None]]:
        found: dict[int, tuple[Path, str | None]] = {}
        for sub in ("cur", "new"):
            for name in os.listdir(self.directory / sub):
                m = self._pattern.search(name)
                if m is not None:
                    found[int(m[1])] = (self.directory / sub / name, m[2])
        return found

    async def present_uids(self) -> dict[int, str | None]:
        found = await asyncio.to_thread(self._scan)
        return {uid: digest for uid, (_, digest) in found.items()}

    async def set_flags(self, changes: Mapping[int, frozenset[str]]) -> FlagsSet:
        def apply() -> FlagsSet:
            if self._files is None:  # one listing per folder and run, kept up to date below
                self._files = {uid: path for uid, (path, _) in self._scan().items()}
            files = self._files
            wanted = {files[uid]: flags for uid, flags in changes.items() if uid in files}
            moved = self.writer.set_flags(self.folder, wanted)
            if len(moved) < len(wanted) and any(p not in moved and not p.exists() for p in wanted):
                # A mail reader renamed some meanwhile (its own flag change): look again, once.
                self._files = files = {uid: path for uid, (path, _) in self._scan().items()}
                again = {files[uid]: flags for uid, flags in changes.items() if uid in files}
                moved |= self.writer.set_flags(self.folder, {p: f for p, f in again.items() if p not in moved})
            by_path = {path: uid for uid, path in files.items()}
            for old, new in moved.items():
                if old in by_path:
                    files[by_path[old]] = new
            return FlagsSet(len(moved), tuple(uid for uid in changes if uid not in files))

        return await asyncio.to_thread(apply)

    async def content_hashes(self) -> Counter[str]:
        return await asyncio.to_thread(self.writer.content_hashes, self.folder)

    async def adopt(self, digest: str, uid: int, flags: frozenset[str]) -> bool:
        """After a UIDVALIDITY change a message matched by content is not written again: the
        file this source wrote for it under the earlier UIDVALIDITY becomes the copy of `uid`,
        renamed (atomically) to this UIDVALIDITY's name so that set_flags finds it, with the
        source's `flags`. False when no such file is left (a copy from another program)."""

        def rename() -> bool:
            if self._stale is None:  # one listing per folder and run
                self._stale = {}
                for sub in ("cur", "new"):
                    for name in sorted(os.listdir(self.directory / sub)):
                        m = self._earlier.search(name)
                        if m is not None:
                            self._stale.setdefault(m[1], []).append(self.directory / sub / name)
            candidates = self._stale.get(digest, [])
            try:
                while candidates:
                    old = candidates.pop(0)
                    new = old.with_name(_FETCH_NAME.sub(f"{self.prefix}{uid}.", old.name, count=1))
                    try:
                        os.rename(old, new)
                    except FileNotFoundError:
                        continue  # a mail reader renamed or removed it meanwhile
                    fsync_dir(new.parent)
                    moved = self.writer.set_flags(self.folder, {new: flags})
                    if self._files is not None:
                        self._files[uid] = moved.get(new, new)
                    return True
            except OSError as exc:
                raise TransferError(f"{self.directory} cannot be changed: {exc.strerror or exc}.") from exc
            return False

        return await asyncio.to_thread(rename)

    async def add(self, raw: bytes, flags: frozenset[str], date: datetime | None, uid: int) -> None:
        def write() -> None:
            stamp = int(date.timestamp()) if date is not None else 0
            sha = blob_hash(to_crlf(raw))
            unique = f"{stamp}.{self.prefix}{uid}.{self.host},H={sha}"
            self.writer.add(raw, flags, date, self.folder, unique=unique)
            self.last_path = next((self.directory / "cur").glob(glob.escape(unique) + ":2,*"), None)
            if self._files is not None and self.last_path is not None:
                self._files[uid] = self.last_path

        await asyncio.to_thread(write)

    async def link(self, source: Path, uid: int) -> None:
        """A hard link to a message file of another folder (Gmail labels as folders), named
        as this folder's copy of `uid`."""
        name = _FETCH_NAME.sub(f"{self.prefix}{uid}.", source.name, count=1)

        def make() -> None:
            os.link(source, self.directory / "cur" / name)
            fsync_dir(self.directory / "cur")
            if self._files is not None:
                self._files[uid] = self.directory / "cur" / name

        await asyncio.to_thread(make)

    async def sync(self) -> int:
        return 0  # every add is durable already

    async def close(self) -> None:
        return None


# -- mbox --------------------------------------------------------------------------------------


class MboxDestination:
    def __init__(self, path: Path) -> None:
        if path.exists() and not path.is_dir():
            raise TransferError(
                f"{path} is a file; fetch writes an mbox folder with one NAME.mbox per folder."
            )
        self.path = path
        self.state_path = path.parent / f"{path.name}.fetch-state.json"
        self.description = f"mbox:{path}"

    async def open_folder(
        self, folder: str, source_key: str, uidvalidity: int, state: FolderState
    ) -> FolderWriter:
        return await asyncio.to_thread(_MboxFolder, self.path, folder, state)


class _MboxFolder(_NothingToFind):
    carries_flags = False  # see the module docstring

    def __init__(self, root: Path, folder: str, state: FolderState) -> None:
        self.state = state
        parts = mbox_path_parts(folder)
        try:
            make_dirs(root)
            directory = root
            for part in parts[:-1]:
                directory = inside(root, directory / part)
                make_dirs(directory)
            self.file = inside(root, directory / parts[-1])
            size = self.file.stat().st_size if self.file.exists() else None
        except OSError as exc:
            raise TransferError(f"{root} cannot be written: {exc.strerror or exc}.") from exc
        recorded = state.mbox_length
        self.untrusted = False
        if size is None:
            if state.uids:  # the file was removed: fetch the folder again
                state.uids.clear()
            state.mbox_length = 0
        elif recorded is None or size < recorded:
            # Someone else's file, or one changed behind our back: compare by content.
            self.untrusted = size > 0
            state.uids.clear()
            state.mbox_length = size
        elif size > recorded:
            # Messages written after the last recorded one (a crash): drop them, fetch again.
            os.truncate(self.file, recorded)
        self._writer: MboxWriter | None = None

    async def present_uids(self) -> dict[int, str | None]:
        return {}

    async def content_hashes(self) -> Counter[str]:
        if not self.file.exists():
            return Counter()
        return await asyncio.to_thread(content_hashes, self.file)

    async def add(self, raw: bytes, flags: frozenset[str], date: datetime | None, uid: int) -> None:
        def write() -> None:
            if self._writer is None:
                self._writer = MboxWriter(self.file, append=True)
            self._writer.add(raw, flags, date)

        await asyncio.to_thread(write)

    async def sync(self) -> int:
        if self._writer is not None:
            self.state.mbox_length = await asyncio.to_thread(self._writer.sync)
        elif self.state.mbox_length is None:
            self.state.mbox_length = self.file.stat().st_size if self.file.exists() else 0
        return 0

    async def set_flags(self, changes: Mapping[int, frozenset[str]]) -> FlagsSet:
        return FlagsSet(0, tuple(changes))

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await asyncio.to_thread(writer.close)


# -- a local account -----------------------------------------------------------------------------


class LocalDestination:
    def __init__(self, store: MailStore, account: AccountRecord, data_dir: Path) -> None:
        self.store = store
        self.account = account
        self.state_path = data_dir / "fetch" / f"{account.address}.fetch-state.json"
        self.description = f"local:{account.address}"

    async def open_folder(
        self, folder: str, source_key: str, uidvalidity: int, state: FolderState
    ) -> FolderWriter:
        return _LocalFolder(self.store, self.account, folder, state)


class _LocalFolder(_NothingToFind):
    untrusted = False
    carries_flags = True

    def __init__(self, store: MailStore, account: AccountRecord, folder: str, state: FolderState) -> None:
        self.store = store
        self.account = account
        self.importer = Importer(store, account, workers=1, on_stored=self._stored)
        self.folder = folder
        self.state = state
        self.pending: list[SourceMessage] = []
        self._batch_stored: set[int] = set()
        self._by_fingerprint: dict[str, list[int]] | None = None

    def _stored(self, stored: list[StoredMessage]) -> None:
        """The importer committed these: note which local UID each source UID got (saved with
        the source UIDs, after ``sync``)."""
        for message in stored:
            self.state.local_uids[int(message.source_id)] = message.uid
            self._batch_stored.add(int(message.source_id))

    async def _mailbox(self) -> int | None:
        """The local mailbox's id, when ``local_uids`` point into it: a mailbox deleted and
        created again under the same name (a new UIDVALIDITY) holds none of those UIDs."""
        mailbox = await self.store.get_mailbox(self.account.id, self.folder or "INBOX")
        if mailbox is None or mailbox.uidvalidity != self.state.local_uidvalidity:
            self.state.local_uids.clear()
            return None
        return mailbox.id

    async def present_uids(self) -> dict[int, str | None]:
        return {}

    async def content_hashes(self) -> Counter[str]:
        return Counter()  # the importer compares content with the mailbox on every append

    async def add(self, raw: bytes, flags: frozenset[str], date: datetime | None, uid: int) -> None:
        self.pending.append(SourceMessage(to_crlf(raw), flags, date, self.folder, str(uid)))

    async def sync(self) -> int:
        if not self.pending:
            return 0
        batch, self.pending = self.pending, []
        before = self.importer.stats.duplicates
        await self._mailbox()
        self._batch_stored.clear()
        await self.importer.run(batch)
        mailbox = await self.store.get_mailbox(self.account.id, self.folder or "INBOX")
        if mailbox is not None:  # created by this batch, or the one checked above
            self.state.local_uidvalidity = mailbox.uidvalidity
        skipped = [m for m in batch if int(m.source_id) not in self._batch_stored]
        if skipped:
            await self._match_skipped(skipped)
        return self.importer.stats.duplicates - before

    async def _match_skipped(self, skipped: list[SourceMessage]) -> None:
        """Messages the importer found already in the mailbox (a run killed between storing and
        recording them, or copies from elsewhere): the stored message of the same fingerprint
        that no other source UID has taken is their copy."""
        mailbox_id = await self._mailbox()
        if mailbox_id is None:
            return
        if self._by_fingerprint is None:  # once per folder: what was there before this run
            self._by_fingerprint = await mailbox_fingerprint_uids(self.store, mailbox_id)
        fingerprints: dict[int, str] = {}
        for message in skipped:
            fingerprints[int(message.source_id)] = await asyncio.to_thread(fingerprint, message.raw)
        claimed = self._claim(fingerprints, self._by_fingerprint)
        flags = {int(m.source_id): frozenset(m.flags) for m in skipped}
        # The copy may carry older flags (a killed run stored it): these are the source's now.
        await self.set_flags({uid: flags[uid] for uid in claimed})

    def _claim(self, fingerprints: Mapping[int, str], by_fingerprint: dict[str, list[int]]) -> list[int]:
        """Give each source UID the first stored message of its fingerprint that no other
        source UID has taken (a multiset: two equal messages stay two copies)."""
        taken = set(self.state.local_uids.values())
        claimed: list[int] = []
        for source_uid, fp in fingerprints.items():
            free = next((uid for uid in by_fingerprint.get(fp, []) if uid not in taken), None)
            if free is not None:
                self.state.local_uids[source_uid] = free
                taken.add(free)
                claimed.append(source_uid)
        return claimed

    async def unmatched(self) -> list[int]:
        """Copied source UIDs whose copy here is unknown because the state is from before
        ``local_uids`` (no ``local_uidvalidity`` either): ``match`` finds them by content, once."""
        state = self.state
        if state.local_uids or state.local_uidvalidity is not None:
            return []
        if await self.store.get_mailbox(self.account.id, self.folder or "INBOX") is None:
            return []  # the copies are gone with their mailbox: nothing to look for
        return sorted(state.uids - state.vanished)

    async def match(self, fingerprints: Mapping[int, str]) -> None:
        """The fingerprints of ``unmatched`` messages as the source has them: each is given
        its stored copy. ``local_uidvalidity`` is set even when some stay unmatched, so the
        source is not read again on every run."""
        mailbox = await self.store.get_mailbox(self.account.id, self.folder or "INBOX")
        if mailbox is None:
            return
        if self._by_fingerprint is None:
            self._by_fingerprint = await mailbox_fingerprint_uids(self.store, mailbox.id)
        self.state.local_uidvalidity = mailbox.uidvalidity
        self._claim(dict(sorted(fingerprints.items())), self._by_fingerprint)

    async def set_flags(self, changes: Mapping[int, frozenset[str]]) -> FlagsSet:
        mailbox_id = await self._mailbox()
        local = self.state.local_uids
        known = {uid: flags for uid, flags in changes.items() if uid in local} if mailbox_id is not None else {}
        groups: dict[frozenset[str], list[int]] = {}
        for uid, flags in known.items():
            groups.setdefault(flags, []).append(local[uid])
        updated = 0
        for flags, uids in groups.items():  # one write per distinct flag set
            assert mailbox_id is not None
            result = await self.store.store_flags(mailbox_id, uids, FlagMode.REPLACE, flags)
            updated += len(result.updated)
        return FlagsSet(updated, tuple(uid for uid in changes if uid not in known))

    async def close(self) -> None:
        return None
