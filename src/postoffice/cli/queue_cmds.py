"""`postoffice queue list|show|retry|remove|hold|release|flush`: the outbound queue.

The commands change the store; the running server's queue runner polls it every second for due
entries, so `retry` and `flush` reach it without a signal, from any process.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from postoffice.cli.common import (
    DATA,
    DataDir,
    JsonFlag,
    console,
    print_json,
    server_pid,
    with_services,
)
from postoffice.store.interface import QueueAttemptRecord, QueuedMessage

QueueId = Annotated[int, typer.Argument(help="The id shown by `queue list`.")]

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
        print_json([_entry_json(q) for q in queued])
        return
    if not queued:
        console.print("The queue is empty.")
        return
    # One block per message, one recipient per line, never wrapped: addresses stay whole at any
    # terminal width (a table cut them at 80 columns), and each line still reads on its own.
    for q in queued:
        _say_entry(q)


def _entry_json(q: QueuedMessage) -> dict[str, Any]:
    return {"id": q.id, "sender": q.envelope.sender, "size": q.size, "attempts": q.attempts,
            "next_attempt": q.next_attempt, "last_error": q.last_error, "held": q.held, "created": q.created,
            "recipients": [{"address": r.address, "status": r.status} for r in q.envelope.recipients]}


def _say_entry(q: QueuedMessage) -> None:
    when = "held (postoffice queue release to send it)" if q.held else f"next attempt {_when(q.next_attempt)}"
    say(f"{q.id}  from <{q.envelope.sender}>  {q.size:,} B  attempts {q.attempts}  {when}")
    for r in q.envelope.recipients:
        say(f"    to <{r.address}>  {r.status}")
    if q.last_error:
        say(f"    last error: {q.last_error}")


def _attempt_json(a: QueueAttemptRecord) -> dict[str, Any]:
    return {"time": a.time, "recipient": a.recipient, "outcome": a.outcome, "host": a.host,
            "address": a.address, "reply": a.reply, "tls": a.tls}


@queue_app.command("show")
def queue_show(queue_id: QueueId, data: DataDir = DATA, json: JsonFlag = False) -> None:
    """Show one queued message and every delivery attempt: time, recipient, host, reply, TLS.

    Example: postoffice queue show 42
    """
    async def read(s: Any) -> tuple[QueuedMessage, list[QueueAttemptRecord]]:
        return await s.store.get_queued(queue_id), await s.store.queue_attempts(queue_id)

    entry, attempts = with_services(data, read)
    if json:
        print_json({**_entry_json(entry), "attempts": [_attempt_json(a) for a in attempts]})
        return
    _say_entry(entry)
    if not attempts:
        say("    no attempt yet")
    for a in attempts:
        where = " ".join(p for p in (a.host, f"[{a.address}]" if a.address else "") if p)
        say(f"    {_when(a.time)}  <{a.recipient}>  {a.outcome}" + (f"  {where}" if where else "")
            + (f"  TLS {a.tls}" if a.tls else ""))
        say(f"        {a.reply}")


def say(line: str) -> None:
    """Print one line as it is: no markup, no highlighting, no wrapping."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _who_tries(data: Path, show: str = "postoffice queue list") -> str:
    pid = server_pid(data)
    if pid is None:
        return "no server is running on this data directory: it is tried when `postoffice serve` starts."
    return f"the running server (pid {pid}) tries it within a few seconds (`{show}` shows how it went)."


@queue_app.command("retry")
def queue_retry(queue_id: QueueId, data: DataDir = DATA, json: JsonFlag = False) -> None:
    """Make a queued message due now, so the running server tries it at once.

    Example: postoffice queue retry 42
    """
    entry = with_services(data, lambda s: _retry(s, queue_id))
    running = server_pid(data) is not None
    if json:
        print_json({"id": queue_id, "due": not entry.held, "held": entry.held, "server_running": running})
        return
    if entry.held:
        say(f"Message {queue_id} is held: release it with `postoffice queue release {queue_id}` to send it.")
        return
    say(f"Message {queue_id} is due now; {_who_tries(data, f'postoffice queue show {queue_id}')}")


async def _retry(s: Any, queue_id: int) -> QueuedMessage:
    await s.store.retry_queued(queue_id)
    entry: QueuedMessage = await s.store.get_queued(queue_id)
    return entry


@queue_app.command("flush")
def queue_flush(data: DataDir = DATA, json: JsonFlag = False) -> None:
    """Make every queued message that is not held due now.

    Example: postoffice queue flush
    """
    count = with_services(data, lambda s: s.store.flush_queue())
    if json:
        print_json({"due": count, "server_running": server_pid(data) is not None})
        return
    say(f"{count} queued message(s) are due now" + (f"; {_who_tries(data)}" if count else "."))


@queue_app.command("hold")
def queue_hold(queue_id: QueueId, data: DataDir = DATA, json: JsonFlag = False) -> None:
    """Keep a queued message from being sent until `queue release` (an attempt under way finishes).

    Example: postoffice queue hold 42
    """
    with_services(data, lambda s: s.store.hold_queued(queue_id, True))
    if json:
        print_json({"id": queue_id, "held": True})
        return
    say(f"Message {queue_id} is held: it is not sent until `postoffice queue release {queue_id}`.")


@queue_app.command("release")
def queue_release(queue_id: QueueId, data: DataDir = DATA, json: JsonFlag = False) -> None:
    """Let a held message be sent again, at its next scheduled attempt (`queue retry` for now).

    Example: postoffice queue release 42
    """
    with_services(data, lambda s: s.store.hold_queued(queue_id, False))
    if json:
        print_json({"id": queue_id, "held": False})
        return
    say(f"Message {queue_id} is released: it is tried at its next attempt time (`postoffice queue retry {queue_id}`"
        " tries it now).")


@queue_app.command("remove")
def queue_remove(queue_id: QueueId, data: DataDir = DATA, json: JsonFlag = False) -> None:
    """Delete a queued message without sending it (no bounce is sent).

    Example: postoffice queue remove 42
    """
    with_services(data, lambda s: s.store.remove_from_queue(queue_id))
    if json:
        print_json({"id": queue_id, "removed": True})
        return
    console.print(f"Removed message {queue_id} from the queue.")
