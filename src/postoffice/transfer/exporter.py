"""Export a user's mailboxes to mbox or Maildir, keeping flags and internal dates.

mbox: DEST is a file when one mailbox is exported, else a directory with one `NAME.mbox` per
mailbox (hierarchy kept as subdirectories). Maildir: DEST is a Maildir++ tree with one folder
per mailbox. Files are written durably (the writers fsync) so an export can be trusted as a
backup the moment it finishes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from postoffice.store.interface import AccountRecord, BlobDamaged, MailboxNotFound, MailStore
from postoffice.transfer.maildir import MaildirWriter
from postoffice.transfer.mbox import MboxWriter
from postoffice.transfer.source import TransferError

FORMATS = ("mbox", "maildir")
_RETURN_PATH = re.compile(rb"^Return-Path:[ \t]*<([^>\r\n]*)>", re.IGNORECASE | re.MULTILINE)


def _sender(raw: bytes) -> str | None:
    head = raw[: raw.find(b"\r\n\r\n") + 2]
    found = _RETURN_PATH.search(head)
    return found.group(1).decode("ascii", "replace") if found and found.group(1) else None


async def export_mailboxes(
    store: MailStore,
    account: AccountRecord,
    fmt: str,
    dest: Path,
    *,
    mailbox: str | None = None,
    on_message: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Write the account's mail (or one mailbox) to `dest`; returns messages per mailbox."""
    if fmt not in FORMATS:
        raise TransferError(f"Unknown format {fmt!r}: use mbox or maildir.")
    boxes = await store.list_mailboxes(account.id)
    if mailbox is not None:
        boxes = [b for b in boxes if b.name == mailbox or (mailbox.upper() == "INBOX" and b.name == "INBOX")]
        if not boxes:
            raise MailboxNotFound(f"{account.address} has no mailbox {mailbox}.")
    counts: dict[str, int] = {}
    maildir = MaildirWriter(dest) if fmt == "maildir" else None
    for box in boxes:
        writer = None
        if maildir is None:
            if mailbox is not None and not dest.is_dir():
                path = dest
            else:
                path = dest / (box.name + ".mbox")
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = MboxWriter(path)
        count = 0
        try:
            async for record in store.iter_messages(box.id):
                try:
                    raw = await store.read_blob(record.blob, record.size)
                except BlobDamaged as exc:
                    raise TransferError(f"Export stopped: {exc.where(box.name, record.uid)}") from None
                date = datetime.fromtimestamp(record.internal_date, UTC)
                if maildir is not None:
                    maildir.add(raw, record.flags, date, box.name)
                else:
                    assert writer is not None
                    writer.add(raw, record.flags, date, _sender(raw))
                count += 1
                if on_message is not None:
                    on_message()
        finally:
            if writer is not None:
                writer.close()
        counts[box.name] = count
    return counts

