"""`postoffice queue list|retry|remove`: the outbound queue."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

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
    # One block per message, one recipient per line, never wrapped: addresses stay whole at any
    # terminal width (a table cut them at 80 columns), and each line still reads on its own.
    for q in queued:
        say(f"{q.id}  from <{q.envelope.sender}>  {q.size:,} B  attempts {q.attempts}  "
            f"next attempt {_when(q.next_attempt)}")
        for r in q.envelope.recipients:
            say(f"    to <{r.address}>  {r.status}")
        if q.last_error:
            say(f"    last error: {q.last_error}")


def say(line: str) -> None:
    """Print one line as it is: no markup, no highlighting, no wrapping."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


@queue_app.command("retry")
def queue_retry(queue_id: Annotated[int, typer.Argument(help="The id shown by `queue list`.")], data: DataDir = DATA) -> None:
    """Make a queued message due now, for the next delivery attempt.

    Example: postoffice queue retry 42
    """
    with_services(data, lambda s: s.store.retry_queued(queue_id))
    # No queue runner sends mail yet (DESIGN §2 queue/): say what really happens.
    console.print(f"Message {queue_id} is due now, but it stays in the queue: this version cannot send mail to "
                  "other servers yet, so nothing will try it until outbound delivery is available.")


@queue_app.command("remove")
def queue_remove(queue_id: Annotated[int, typer.Argument(help="The id shown by `queue list`.")], data: DataDir = DATA) -> None:
    """Delete a queued message without sending it (no bounce is sent).

    Example: postoffice queue remove 42
    """
    with_services(data, lambda s: s.store.remove_from_queue(queue_id))
    console.print(f"Removed message {queue_id} from the queue.")
