"""`postoffice import` and `postoffice export`: move mail in and out of files."""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from postoffice.cli.common import DATA, DataDir, JsonFlag, console, fail, with_services
from postoffice.services import Services
from postoffice.store.interface import StorageFull
from postoffice.transfer import eml, maildir, mbox
from postoffice.transfer.exporter import ExportStats, export_mailboxes
from postoffice.transfer.importer import Importer, StoredMessage
from postoffice.transfer.source import TransferError
from postoffice.transfer.takeout import map_takeout_labels


class SourceFormat(StrEnum):
    mbox = "mbox"
    maildir = "maildir"
    eml = "eml"


class GmailLabelMode(StrEnum):
    keywords = "keywords"
    folders = "folders"


class ExportFormat(StrEnum):
    mbox = "mbox"
    maildir = "maildir"


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console, transient=False,
    )


def import_command(
    fmt: Annotated[SourceFormat, typer.Argument(metavar="mbox|maildir|eml", help="The format of PATH.")],
    path: Annotated[Path, typer.Argument(
        help="An mbox file (.gz too) or a folder of .mbox files, a Maildir, or an .eml file or folder.")],
    into: Annotated[str, typer.Option("--into", help="ADDR or ADDR/MAILBOX to import into.")],
    data: DataDir = DATA,
    allow_duplicates: Annotated[bool, typer.Option("--allow-duplicates", help="Import messages the mailbox already has.")] = False,
    workers: Annotated[int, typer.Option(help="Parser processes (default: one per core, at most 2).")] = 0,
    json_lines: JsonFlag = False,
    gmail_labels: Annotated[GmailLabelMode, typer.Option(
        "--gmail-labels", help="Google Takeout mbox: the user's labels as keywords, or also as mailboxes.")] = GmailLabelMode.keywords,
) -> None:
    """Import mail from files, keeping flags and dates; running it twice adds nothing twice.

    Without /MAILBOX, Maildir folders go to mailboxes of the same names, the files of an mbox
    folder (as `export` writes it) to the mailboxes their paths name, and an mbox or eml file
    to INBOX. Only regular files are read: a named pipe or a device is refused at once.
    ADDR is a user: imported mail is filed, never forwarded, so aliases do not apply.
    The Maildir trees of Dovecot, mbsync and offlineimap are read as they are. A message the
    mailbox already holds is skipped, even when a POP3 client added header fields of its own
    to its copy (see docs/transfer.md). A Google Takeout mbox (X-Gmail-Labels) is sorted by
    its labels: INBOX, Sent, Drafts, Junk, Trash or Archive, Starred as flagged, unread kept.

    Examples: postoffice import mbox ~/old.mbox --into alice@example.org/Archive
              postoffice import mbox "All mail Including Spam and Trash.mbox" --into alice@example.org
              postoffice import maildir ~/Maildir --into alice@example.org
    """
    address, _, mailbox = into.partition("/")
    readers = {"mbox": (mbox.read_mbox, mbox.count_mbox), "maildir": (maildir.read_maildir, maildir.count_maildir),
               "eml": (eml.read_eml, eml.count_eml)}
    read, count = readers[fmt.value]
    try:
        total = count(path) if count is not None and not json_lines else None
        source = read(path)
        if fmt.value == "mbox" and not mailbox:
            source = map_takeout_labels(source, str(gmail_labels))
    except TransferError as exc:
        fail(str(exc))

    started = time.monotonic()

    async def go(s: Services):
        account = await s.directory.get_user(address)
        if account is None:
            if await s.store.list_aliases(address):
                fail(f"{address} is an alias: import into one of its users (imported mail is never forwarded).")
            fail(f"There is no user {address}; create it with `postoffice user add {address}`.")

        def emit(stored: list[StoredMessage]) -> None:
            # One JSON line per message, written only after its batch is committed and durable.
            for m in stored:
                sys.stdout.write(json.dumps({"stored": m.source_id, "mailbox": m.mailbox, "uid": m.uid, "sha256": m.sha256}) + "\n")
            sys.stdout.flush()

        importer = Importer(s.store, account, into=mailbox or None, allow_duplicates=allow_duplicates,
                            workers=workers or None, on_stored=emit if json_lines else None)
        try:
            if json_lines:
                return await importer.run(source)
            with _progress() as bar:
                task = bar.add_task("importing", total=total, rate="")

                def advance(n: int) -> None:
                    done = bar.tasks[0].completed + n
                    bar.update(task, completed=done, rate=f"{done / max(time.monotonic() - started, 1e-6):,.0f} msg/s")

                importer.on_read = advance
                return await importer.run(source)
        except StorageFull as exc:
            raise StorageFull(f"{exc} {importer.stats.stored:,} messages were stored before that; free some"
                              " space and run the same import again: what is imported already is skipped.") from exc

    try:
        stats = with_services(data, go)
    except TransferError as exc:
        fail(str(exc))
    elapsed = time.monotonic() - started
    if stats.read == 0 and not json_lines:
        console.print(f"{path} holds no messages; nothing was imported.")
        return
    summary = {"read": stats.read, "stored": stats.stored, "duplicates": stats.duplicates,
               "mailboxes_created": stats.mailboxes_created, "seconds": round(elapsed, 2)}
    if json_lines:
        sys.stdout.write(json.dumps({"done": summary}) + "\n")
        return
    console.print(
        f"Stored {stats.stored:,} of {stats.read:,} messages in {elapsed:.1f} s"
        f" ({stats.read / max(elapsed, 1e-6):,.0f} msg/s); {stats.duplicates:,} already present were skipped."
    )
    if stats.mailboxes_created:
        console.print("Created mailboxes: " + ", ".join(stats.mailboxes_created))


def export_command(
    address: Annotated[str, typer.Argument(help="The user whose mail to export.")],
    dest: Annotated[Path, typer.Argument(help="Where to write: a file or folder (see below).")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="mbox or maildir.")] = ExportFormat.mbox,
    mailbox: Annotated[str | None, typer.Option(help="Only this mailbox.")] = None,
    data: DataDir = DATA,
    json_out: JsonFlag = False,
) -> None:
    """Export mail to mbox or Maildir, with flags and dates.

    mbox with --mailbox writes DEST as one file; otherwise DEST is a folder with one NAME.mbox
    per mailbox. maildir writes a Maildir++ tree at DEST. Mailbox names are escaped, never
    used as paths as they are (see docs/transfer.md). Exporting again to the same DEST adds only
    the messages that are not there yet (compared by content), so it can refresh a backup.

    Example: postoffice export alice@example.org --format maildir ~/backup/alice
    """

    async def go(s: Services) -> ExportStats:
        account = await s.directory.get_user(address)
        if account is None:
            fail(f"There is no user {address}.")
        total = sum([(await s.store.mailbox_status(b.id)).messages for b in await s.store.list_mailboxes(account.id)
                     if mailbox is None or b.name == mailbox])
        if json_out:
            return await export_mailboxes(s.store, account, fmt.value, dest, mailbox=mailbox)
        with _progress() as bar:
            task = bar.add_task("exporting", total=total, rate="")
            return await export_mailboxes(s.store, account, fmt.value, dest, mailbox=mailbox,
                                          on_message=lambda: bar.advance(task))

    try:
        stats = with_services(data, go)
    except TransferError as exc:
        fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps({"written": stats.written, "already_present": stats.already_present}) + "\n")
        return
    console.print(
        f"Exported {sum(stats.written.values()):,} messages from {len(stats.written)} mailbox(es) to {dest};"
        f" {stats.already_present:,} already there were skipped."
    )
