"""`postoffice queue list|retry|remove`: the outbound queue."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from postoffice.cli.common import DATA, DataDir, JsonFlag, console, print_json, with_services

queue_app = typer.Typer(help="Mail waiting to be sent to other servers.", no_args_is_help=True)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@queue_app.command("list")
def queue_list(data: DataDir = DATA, json: JsonFlag = False) -> None:
    """List queued messages with their recipients, attempts and last error.

    Example: postoffice queue list
    """
    queued = with_services(data, lambda s: s.store.list_queue())
    if json:
        print_json([
            {"id": q.id, "sender": q.envelope.sender, "size": q.size, "attempts": q.attempts,
             "next_attempt": q.next_attempt, "last_error": q.last_error,
             "recipients": [{"address": r.address, "status": r.status} for r in q.envelope.recipients]}
            for q in queued
        ])
        return
    if not queued:
        console.print("The queue is empty.")
        return
    table = Table("id", "from", "to", "size", "attempts", "next attempt", "last error")
    for q in queued:
        table.add_row(
            str(q.id), q.envelope.sender or "<>", ", ".join(r.address for r in q.envelope.recipients),
            f"{q.size:,} B", str(q.attempts), _when(q.next_attempt), q.last_error or "",
        )
    console.print(table)


@queue_app.command("retry")
def queue_retry(queue_id: Annotated[int, typer.Argument(help="The id shown by `queue list`.")], data: DataDir = DATA) -> None:
    """Try a queued message again now."""
    with_services(data, lambda s: s.store.retry_queued(queue_id))
    console.print(f"Message {queue_id} will be tried again now.")


@queue_app.command("remove")
def queue_remove(queue_id: Annotated[int, typer.Argument(help="The id shown by `queue list`.")], data: DataDir = DATA) -> None:
    """Delete a queued message without sending it (no bounce is sent)."""
    with_services(data, lambda s: s.store.remove_from_queue(queue_id))
    console.print(f"Removed message {queue_id} from the queue.")
