"""Export a user's mailboxes to mbox or Maildir, keeping flags and internal dates.

mbox: DEST is a file when one mailbox is exported, else a directory with one `NAME.mbox` per
mailbox (hierarchy kept as subdirectories). Maildir: DEST is a Maildir++ tree with one folder
per mailbox. Files are written durably (the writers fsync them, their folders, and every folder
created on the way in its parent) so an export can be trusted as a backup the moment it finishes.

Names. A mailbox name is never used as a path as it is: `names` escapes every level reversibly
(`../x` becomes `%2E./x.mbox` or `.\\2e\\2e.x`), every directory and file is checked to resolve
inside DEST (`filesystem.inside`, which also catches symbolic links planted in DEST), and two
mailboxes that would share one file (a case-insensitive file system) are refused.

Exporting again into the same DEST adds only what is missing, and never a second copy: the key
is the message's content, its SHA-256, which is what the store names blobs by and what import
deduplicates on, so it also recognises messages that were in DEST before (imported from there,
or put there by another program), and survives renames in the store. It counts copies: a
mailbox holding a message twice gets two files. Maildir files we write carry the hash in their
name, so a re-export reads only the directory listing; an existing mbox file is read once and
new messages are appended to it. Messages already there keep the flags they have there.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from postoffice.durable import make_dirs
from postoffice.store.blobs import blob_hash
from postoffice.store.interface import (
    AccountRecord,
    BlobDamaged,
    MailboxNotFound,
    MailboxRecord,
    MailStore,
    MessageRecord,
)
from postoffice.transfer.filesystem import describe_kind, inside
from postoffice.transfer.maildir import MaildirWriter
from postoffice.transfer.mbox import MboxWriter, content_hashes, read_back
from postoffice.transfer.names import mbox_path_parts
from postoffice.transfer.source import TransferError

FORMATS = ("mbox", "maildir")
_RETURN_PATH = re.compile(rb"^Return-Path:[ \t]*<([^>\r\n]*)>", re.IGNORECASE | re.MULTILINE)


@dataclass
class ExportStats:
    """New messages written per mailbox, and how many were already in the destination."""

    written: dict[str, int] = field(default_factory=dict)
    already_present: int = 0


def _sender(raw: bytes) -> str | None:
    head = raw[: raw.find(b"\r\n\r\n") + 2]
    found = _RETURN_PATH.search(head)
    return found.group(1).decode("ascii", "replace") if found and found.group(1) else None


async def _read(store: MailStore, box: MailboxRecord, record: MessageRecord) -> bytes | None:
    """The message's bytes; None when it was expunged after it was listed (the server runs
    on: a user deleting mail must not stop an export, nor be reported as damage)."""
    try:
        return await store.read_blob(record.blob, record.size)
    except BlobDamaged as exc:
        if exc.found is None and not await store.get_messages(box.id, [record.uid]):
            return None
        raise TransferError(f"Export stopped: {exc.where(box.name, record.uid)}") from None


def _oserror(path: Path, exc: OSError) -> TransferError:
    return TransferError(f"{path} cannot be written: {exc.strerror or exc}.")


async def export_mailboxes(
    store: MailStore,
    account: AccountRecord,
    fmt: str,
    dest: Path,
    *,
    mailbox: str | None = None,
    on_message: Callable[[], None] | None = None,
) -> ExportStats:
    """Write the account's mail (or one mailbox) to `dest`, adding to an earlier export there."""
    if fmt not in FORMATS:
        raise TransferError(f"Unknown format {fmt!r}: use mbox or maildir.")
    boxes = await store.list_mailboxes(account.id)
    if mailbox is not None:
        boxes = [b for b in boxes if b.name == mailbox or (mailbox.upper() == "INBOX" and b.name == "INBOX")]
        if not boxes:
            raise MailboxNotFound(f"{account.address} has no mailbox {mailbox}.")
    stats = ExportStats()
    if fmt == "maildir":
        maildir = MaildirWriter(dest)
        for box in boxes:
            stats.written[box.name] = await _to_maildir(store, box, maildir, stats, on_message)
        return stats
    tree = _MboxTree(dest) if mailbox is None or dest.is_dir() else None
    for box in boxes:
        path = dest if tree is None else tree.file_for(box.name)
        stats.written[box.name] = await _to_mbox(store, box, path, stats, on_message)
        if tree is not None:
            tree.claim(box.name, path)
    return stats


async def _to_maildir(
    store: MailStore,
    box: MailboxRecord,
    maildir: MaildirWriter,
    stats: ExportStats,
    on_message: Callable[[], None] | None,
) -> int:
    present = maildir.content_hashes(box.name)
    count = 0
    async for record in store.iter_messages(box.id):
        if present[record.blob] > 0:
            present[record.blob] -= 1  # this copy is there already; the blob need not be read
            stats.already_present += 1
        elif (raw := await _read(store, box, record)) is not None:
            date = datetime.fromtimestamp(record.internal_date, UTC)
            maildir.add(raw, record.flags, date, box.name, content_hash=record.blob)
            count += 1
        if on_message is not None:
            on_message()
    return count


async def _to_mbox(
    store: MailStore,
    box: MailboxRecord,
    path: Path,
    stats: ExportStats,
    on_message: Callable[[], None] | None,
) -> int:
    try:
        existing = path.exists()
    except OSError as exc:
        raise _oserror(path, exc) from exc
    # An existing file (an earlier export) is appended to, only when something is missing: a
    # compressed one that is complete is fine as it is.
    present = content_hashes(path) if existing else Counter[str]()
    writer = None if existing else MboxWriter(path)
    count = 0
    try:
        async for record in store.iter_messages(box.id):
            raw = await _read(store, box, record)
            if raw is None:
                pass  # expunged meanwhile
            elif present[key := blob_hash(read_back(raw))] > 0:
                present[key] -= 1
                stats.already_present += 1
            else:
                if writer is None:
                    writer = MboxWriter(path, append=True)
                date = datetime.fromtimestamp(record.internal_date, UTC)
                writer.add(raw, record.flags, date, _sender(raw))
                count += 1
            if on_message is not None:
                on_message()
    finally:
        if writer is not None:
            writer.close()
    return count


class _MboxTree:
    """Where each mailbox's file goes in an mbox tree at `root`, made safe (see the module doc)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            make_dirs(root)
        except FileExistsError:
            raise TransferError(
                f"{root} is {describe_kind(os.stat(root).st_mode)}; exporting several mailboxes"
                " to mbox needs a folder (or pick one with --mailbox)."
            ) from None
        except OSError as exc:
            raise _oserror(root, exc) from exc
        self._owners: dict[tuple[int, int], str] = {}

    def file_for(self, name: str) -> Path:
        """The file for mailbox `name`, its folders created; refused if it would be outside the
        root or is already another mailbox's file."""
        parts = mbox_path_parts(name)
        directory = self.root
        try:
            for part in parts[:-1]:
                directory = inside(self.root, directory / part)
                make_dirs(directory)
            path = inside(self.root, directory / parts[-1])
            identity = os.stat(path) if path.exists() else None
        except FileExistsError:
            raise TransferError(f"{directory} is in the way: it should be a folder.") from None
        except OSError as exc:
            raise _oserror(directory, exc) from exc
        if identity is not None:
            other = self._owners.setdefault((identity.st_dev, identity.st_ino), name)
            if other != name:
                raise TransferError(
                    f"The mailboxes '{other}' and '{name}' would share the file {path}"
                    " (this file system ignores case?); export them one at a time with --mailbox."
                )
        return path

    def claim(self, name: str, path: Path) -> None:
        """Record the file just created for `name`, so a later name that maps to it is refused."""
        identity = os.stat(path)
        self._owners.setdefault((identity.st_dev, identity.st_ino), name)
