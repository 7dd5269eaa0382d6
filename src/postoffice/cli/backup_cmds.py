"""`postoffice backup DEST` and `postoffice restore SRC --data DIR` (see postoffice/backup.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from postoffice.backup import BackupError, BackupSummary, back_up, restore
from postoffice.cli.common import DATA, DataDir, JsonFlag, console, fail, load, print_json


@contextmanager
def _blob_progress(description: str, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A bar for the message files, shown once there is something to copy."""
    if quiet:
        yield None
        return
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=console, transient=True)
    task: list[TaskID] = []

    def advance(done: int, total: int) -> None:
        if not task:
            bar.start()
            task.append(bar.add_task(description, total=total))
        bar.update(task[0], completed=done)

    try:
        yield advance
    finally:
        if task:
            bar.stop()


def _size(n: int) -> str:
    if n < 1024:
        return f"{n:,} B"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:,.1f} {unit}"


def _print_not_included(summary: BackupSummary) -> None:
    for path in summary.not_included:
        console.print(f"not included (outside the data directory): {path}", highlight=False)


def backup_command(
    dest: Annotated[Path, typer.Argument(help="Folder to write to: new, empty, or an earlier backup (updated).")],
    data: DataDir = DATA,
    json: JsonFlag = False,
) -> None:
    """Back up the store, every message file, the config and the TLS and DKIM keys to DEST.

    Works while `serve` runs (deliveries go on). Into an earlier backup, only new message files
    are copied. The backup is checked before the command says it is done.

    Example: postoffice backup /mnt/backups/postoffice --data /var/lib/postoffice
    """
    config = load(data)
    try:
        with _blob_progress("copying message files", json) as progress:
            summary = back_up(config, dest, progress)
    except (BackupError, OSError) as exc:
        fail(_sentence(exc))
    if json:
        print_json(summary.as_json())
        return
    console.print(
        f"Backed up {summary.messages:,} messages ({summary.blob_files:,} message files,"
        f" {_size(summary.blob_bytes)}) to {summary.destination} in {summary.seconds:.1f} s;"
        f" {summary.copied_files:,} files ({_size(summary.copied_bytes)}) were new,"
        f" {summary.removed_files:,} no longer needed were removed. Checked: complete.",
        highlight=False,
    )
    _print_not_included(summary)


def restore_command(
    src: Annotated[Path, typer.Argument(help="A folder written by `postoffice backup`.")],
    data: DataDir = DATA,
    json: JsonFlag = False,
) -> None:
    """Restore a backup into a new or empty data directory, checking it first.

    Then start the server on it with `postoffice serve --data DIR`.

    Example: postoffice restore /mnt/backups/postoffice --data /var/lib/postoffice
    """
    try:
        with _blob_progress("restoring message files", json) as progress:
            summary = restore(src, data, progress)
    except (BackupError, OSError) as exc:
        fail(_sentence(exc))
    if json:
        print_json(summary.as_json())
        return
    console.print(
        f"Restored {summary.messages:,} messages ({summary.blob_files:,} message files,"
        f" {_size(summary.blob_bytes)}) into {summary.destination}; every file checked."
        f" Start it with `postoffice serve --data {summary.destination}`.",
        highlight=False,
    )
    _print_not_included(summary)


def _sentence(error: Exception) -> str:
    if isinstance(error, OSError) and not isinstance(error, BackupError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}."
    return str(error)
