"""The log lines an administrator reads and fail2ban matches: one function per event kind.

Every protocol calls these, so a kind of event has one shape whichever protocol logs it. They
log to the ``postoffice.events`` logger at INFO, as an :class:`Event` argument that becomes text
only if a handler emits it (nothing is built when INFO is off). Two renderings:

- text (``[server] log_format = "text"``, the default): ``login failed: protocol=imap
  ip=192.0.2.7 user=bob@example.org mechanism=LOGIN conn=a10003``; the event name, then
  ``key=value`` fields in a fixed order; a value with a space, a quote, ``=`` or a control
  character is written as a JSON string, so a client-chosen value (a user name, a HELO) can never
  fake another field or another line;
- json (``log_format = "json"``): one object per line, see :class:`JsonFormatter`.

The field names are stable (docs/logging.md lists them); the IP always comes before any value
the client chose, which the fail2ban filter (docs/fail2ban/) relies on.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "Event", "JsonFormatter", "admin_change", "blocked", "configure", "formatter", "login", "queue_delivery",
    "relayed", "session_end", "smtp_transaction",
]

log = logging.getLogger("postoffice.events")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A value with any of these is written as a JSON string (one C-level search per value: a
# character-by-character test cost more than the rest of a line).
_NEEDS_QUOTES = re.compile(r'[ "=\\\x00-\x1f\x7f]')


class Event:
    """One event: a name (``login failed``) and its fields, rendered when (and if) logged."""

    __slots__ = ("fields", "name")

    def __init__(self, name: str, fields: dict[str, Any]) -> None:
        self.name = name
        self.fields = fields

    def __str__(self) -> str:
        parts = [self.name + ":"]
        for key, value in self.fields.items():
            if value is None:
                continue
            parts.append(f"{key}={_text_value(value)}")
        return " ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {"event": self.name, **{k: v for k, v in self.fields.items() if v is not None}}


def _text_value(value: Any) -> str:
    if isinstance(value, list):
        value = ", ".join(" ".join(str(v) for v in item.values() if v is not None)
                          if isinstance(item, Mapping) else str(item) for item in value)
    text = str(value)
    if text == "" or _NEEDS_QUOTES.search(text):
        return json.dumps(text)
    return text


def _emit(name: str, fields: dict[str, Any]) -> None:
    log.info("%s", Event(name, fields))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, then for an
    event its ``event`` name and fields, for any other line its ``message`` (and ``traceback``)."""

    def __init__(self, tag: str = "") -> None:
        super().__init__()
        self.tag = tag or None

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if self.tag:
            entry["process"] = self.tag
        args = record.args
        if isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], Event):
            entry.update(args[0].as_json())
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(log_format: str, tag: str = "") -> logging.Formatter:
    """The formatter of ``[server] log_format`` ("text" or "json"); `tag` names the process
    in text lines (``[worker 1]``), JSON lines carry it as ``process``."""
    if log_format == "json":
        return JsonFormatter(tag)
    return logging.Formatter(TEXT_FORMAT.replace("%(name)s", f"%(name)s [{tag}]") if tag else TEXT_FORMAT)


def configure(level: str, log_format: str, tag: str = "") -> None:
    """Log to stderr (journald, docker logs) at `level` in `log_format`: `serve` and its workers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format, tag))
    logging.basicConfig(level=level.upper(), handlers=[handler])


# --- the events ---------------------------------------------------------------------------------

def login(protocol: str, ip: str, user: str, mechanism: str, outcome: str, conn: str | None = None,
          reason: str | None = None) -> None:
    """A login attempt: ``outcome`` is "ok", "failed" (wrong credentials: what fail2ban counts)
    or "refused" (not checked: throttled, busy, maildrop in use; ``reason`` says which).
    Never the password."""
    if log.isEnabledFor(logging.INFO):
        _emit(f"login {outcome}", {"protocol": protocol, "ip": ip, "user": user,
                                   "mechanism": mechanism, "conn": conn, "reason": reason})


def session_end(protocol: str, ip: str, conn: str, seconds: float, bytes_in: int, bytes_out: int,
                commands: int, user: str | None = None) -> None:
    """A connection closed: how long it lasted, what it moved, how many commands it sent."""
    if log.isEnabledFor(logging.INFO):
        _emit("session end", {"protocol": protocol, "ip": ip, "conn": conn, "user": user,
                              "duration": round(seconds, 3), "bytes_in": bytes_in,
                              "bytes_out": bytes_out, "commands": commands})


def smtp_transaction(protocol: str, ip: str, conn: str, *, helo: str, tls: str | None,
                     user: str | None, sender: str, recipients: Iterable[Mapping[str, Any]],
                     size: int | None, result: str, queue_id: str | None = None,
                     reverse_name: str | None = None, auth: Mapping[str, str] | None = None) -> None:
    """One SMTP/LMTP mail transaction, however it ended (``result``: the reply code to the
    message, or "abandoned" when no message came). ``recipients``: per RCPT its ``address``,
    ``status`` (accepted, refused, delivered, queued, failed) and ``reply`` code or ``uid``s.
    ``auth`` (port 25): the mail authentication results (spf, dkim, dmarc, arc, iprev, dnsbl)
    and what was done with the message (``action``), before ``rcpts``."""
    if log.isEnabledFor(logging.INFO):
        _emit("smtp transaction", {
            "protocol": protocol, "ip": ip, "conn": conn, "name": reverse_name, "helo": helo,
            "tls": tls, "user": user, "from": sender, "size": size, "result": result,
            "queue_id": queue_id, **(auth or {}), "rcpts": list(recipients)})


def blocked(protocol: str, ip: str, conn: str, stage: str, entry: str, *, sender: str | None = None,
            recipient: str | None = None) -> None:
    """The local block list refused a client (``stage`` connect), a sender (mail) or a recipient
    (rcpt); ``entry`` is the block entry that matched (`postoffice block list`)."""
    if log.isEnabledFor(logging.INFO):
        _emit("smtp blocked", {"protocol": protocol, "ip": ip, "conn": conn, "stage": stage,
                               "entry": entry, "from": sender, "rcpt": recipient})


def queue_delivery(queue_row: int, sender: str, recipient: str, result: str, *, host: str, ip: str,
                   reply: str, tls: str, attempt: int, delay: float) -> None:
    """One recipient of one attempt of the outbound queue: ``result`` is "delivered",
    "deferred" (tried again later) or "bounced" (failed for good; the sender gets a report);
    ``reply`` the server's reply or our reason; ``delay`` seconds since the message was queued."""
    if log.isEnabledFor(logging.INFO):
        _emit("queue delivery", {"queue_row": queue_row, "from": sender, "rcpt": recipient, "result": result,
                                 "host": host or None, "ip": ip or None, "tls": tls or None,
                                 "attempt": attempt, "delay": round(delay, 1), "reply": reply})


def relayed(protocol: str, ip: str, conn: str, *, sender: str, recipients: Iterable[str],
            queue_id: str, queue_row: int | None) -> None:
    """A `[smtp] relay_networks` device's message was accepted without a login: from whom,
    for whom, the queue id it was told (``queue_row``: the outbound queue entry, if any)."""
    if log.isEnabledFor(logging.INFO):
        _emit("smtp relay", {"protocol": protocol, "ip": ip, "conn": conn, "from": sender,
                             "rcpts": list(recipients), "queue_id": queue_id, "queue_row": queue_row})


def filter_outcome(account: str, sender: str, message_id: str, actions: Iterable[str]) -> None:
    """What the filters (Sieve, the junk classifier) did with one account's copy of a message,
    when it was not a plain keep in INBOX: ``actions`` in words ("fileinto Other", "discard
    (script 'main' line 4)", "redirect a@example.net", "vacation to b@example.com")."""
    if log.isEnabledFor(logging.INFO):
        _emit("filter outcome", {"account": account, "from": sender, "message_id": message_id or None,
                                 "actions": "; ".join(actions)})


def admin_change(os_user: str, command: str, target: str, **details: Any) -> None:
    """An administrator changed something (``postoffice user add ...``): who, what, on what."""
    if log.isEnabledFor(logging.INFO):
        _emit("admin change", {"os_user": os_user, "command": command, "target": target, **details})
