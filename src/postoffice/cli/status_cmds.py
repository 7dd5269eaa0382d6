"""`postoffice status [--json]`: is it serving, what listens, the queue, the certificates."""

from __future__ import annotations

import datetime as dt
import time

from postoffice.cli.common import DATA, DataDir, JsonFlag, console, load, print_json, with_services
from postoffice.diagnostics.status import ServerStatus, server_status
from postoffice.net.tls_expiry import WARN_DAYS, CertificateStatus, expiry_warning
from postoffice.services import Services
from postoffice.store.interface import QueueSummary


def status_command(data: DataDir = DATA, json: JsonFlag = False) -> None:
    """Show whether postoffice is serving this data directory and which listeners listen, the
    outbound queue (messages, held, deferred, the oldest), and each certificate in use with
    its expiry and the days left (a warning from 21 days before). Works while serve runs.

    Example: postoffice status --json
    """
    from postoffice.app import certificates_in_use  # the protocol servers load only here

    config = load(data)

    async def queue(s: Services) -> QueueSummary:
        return await s.store.queue_summary()

    status = server_status(config, with_services(data, queue), certificates_in_use(config))
    if json:
        print_json(status_json(status, acme=config.tls.acme))
        return
    _print(status)


def status_json(status: ServerStatus, *, acme: bool = False) -> dict[str, object]:
    q = status.queue
    return {
        "data_dir": str(status.data_dir),
        "serving": status.pid is not None, "pid": status.pid,
        "listeners": [{"protocol": x.protocol, "address": x.address, "listening": x.listening}
                      for x in status.listeners],
        "queue": {"messages": q.messages, "held": q.held, "deferred": q.deferred, "oldest": q.oldest},
        "certificates": [_certificate_json(c, acme) for c in status.certificates],
    }


def _certificate_json(c: CertificateStatus, acme: bool) -> dict[str, object]:
    return {"key": c.key, "file": str(c.path), "names": list(c.names), "self_signed": c.self_signed,
            "expires": c.expires.isoformat() if c.expires else None, "days_left": c.days_left,
            "warning": expiry_warning(c, acme=acme), "problem": c.problem or None}


def _print(status: ServerStatus) -> None:
    say = lambda text: console.print(text, soft_wrap=True, highlight=False)  # noqa: E731
    say(f"data directory: {status.data_dir}")
    say(f"server: serving (pid {status.pid})" if status.pid else
        f"server: not running (start it with postoffice serve --data {status.data_dir})")
    say("listeners:")
    for x in status.listeners:
        state = {True: "listening", False: "NOT listening", None: ""}[x.listening]
        say(f"  {x.protocol:<12} {x.address:<24} {state}".rstrip())
    if not status.listeners:
        say("  none configured ([listen] in postoffice.toml)")
    q = status.queue
    if q.messages:
        age = _age(time.time() - q.oldest) if q.oldest is not None else "?"
        say(f"queue: {q.messages} message(s) waiting to be sent, {q.held} held, {q.deferred} deferred "
            f"(tried and waiting for the next attempt); the oldest queued {age} ago (postoffice queue list)")
    else:
        say("queue: empty")
    say("certificates:")
    for c in status.certificates:
        if c.expires is None:
            say(f"  {c.key}  {c.path}  cannot be read: {c.problem}")
            continue
        kind = ", self-signed" if c.self_signed else ""
        left = f"expired {-c.days_left} day(s) ago" if c.days_left is not None and c.days_left < 0 \
            else f"{c.days_left} day(s) left"
        flag = "  WARNING" if c.days_left is not None and c.days_left < WARN_DAYS else ""
        say(f"  {c.key}  {c.path}  for {', '.join(c.names) or '?'}{kind}: expires "
            f"{c.expires:%Y-%m-%d %H:%M} UTC, {left}{flag}")
    if not status.certificates:
        say("  none in use (no TLS listener)")


def _age(seconds: float) -> str:
    delta = dt.timedelta(seconds=int(max(seconds, 0)))
    if delta.days:
        return f"{delta.days} day(s) {delta.seconds // 3600} h"
    if delta.seconds >= 3600:
        return f"{delta.seconds // 3600} h {delta.seconds % 3600 // 60} min"
    return f"{delta.seconds // 60} min"
