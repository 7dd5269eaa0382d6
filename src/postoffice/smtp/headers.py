"""Header fields an SMTP server adds to a message: Received, Message-ID, Date.

- RFC 5321 §4.4: every SMTP server that accepts a message prepends a Received: line.
- RFC 3848: the `with` keyword: SMTP, ESMTP, ESMTPS (TLS), ESMTPA (AUTH), ESMTPSA, LMTP...
- RFC 6409 §8.2-8.3: a submission server may add a missing Message-ID and Date.
- RFC 5321 §6.3: counting Received: fields finds mail loops (`received_count`, `MAX_RECEIVED`).
Pure functions of their inputs: no I/O.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import itertools
import re
import secrets
import time
from dataclasses import dataclass

from postoffice.message.mime_address import parse_address_list
from postoffice.message.mime_headers import parse_fields, split_header


@dataclass(frozen=True, slots=True)
class ReceivedInfo:
    helo: str
    peer_ip: str
    hostname: str  # ours
    protocol: str  # "SMTP" | "LMTP"
    esmtp: bool
    tls_version: str | None = None
    tls_cipher: str | None = None
    auth_user: str | None = None  # shown only when configured
    authenticated: bool = False
    queue_id: str = ""
    recipient: str | None = None  # `for <rcpt>` only when there is exactly one


def with_keyword(info: ReceivedInfo) -> str:
    if info.protocol == "LMTP":
        return "LMTPS" if info.tls_version else "LMTP"
    if not info.esmtp:
        return "SMTP"
    return "ESMTP" + ("S" if info.tls_version else "") + ("A" if info.authenticated else "")


_QUEUE_ID_PREFIX = secrets.token_hex(3).upper()  # differs per process start
_queue_ids = itertools.count(1)


def new_queue_id() -> str:
    """A short id naming one accepted message in logs and replies (unique per process run)."""
    return f"{_QUEUE_ID_PREFIX}{next(_queue_ids):08X}"


def received_header(info: ReceivedInfo, now: float | None = None) -> bytes:
    """The Received: field (folded, CRLF-terminated) for one accepted message."""
    helo = _clean(info.helo) or "unknown"
    peer = f"[{info.peer_ip}]" if info.peer_ip else "local unix socket"
    lines = [f"Received: from {helo} ({peer})"]
    by = f"by {info.hostname} (postoffice) with {with_keyword(info)}"
    if info.queue_id:
        by += f" id {info.queue_id}"
    lines.append(by)
    if info.tls_version:
        lines.append(f"(version={info.tls_version} cipher={info.tls_cipher or 'unknown'})")
    if info.auth_user and info.authenticated:
        lines.append(f"(authenticated as {_clean(info.auth_user)})")
    if info.recipient:
        lines.append(f"for <{_clean(info.recipient)}>")
    lines[-1] += ";"
    lines.append(rfc5322_date(now))
    return ("\r\n\t".join(lines) + "\r\n").encode("utf-8")


def rfc5322_date(now: float | None = None) -> str:
    """`Sat, 28 Nov 2026 12:00:00 +0000` (RFC 5322 §3.3)."""
    moment = dt.datetime.fromtimestamp(now if now is not None else time.time(), dt.UTC)
    return email.utils.format_datetime(moment)


def _clean(text: str) -> str:
    """Keep header injection out: no line breaks, no control characters."""
    return "".join(c for c in text if c >= " " and c != "\x7f")[:255]


def header_block(raw: bytes) -> bytes:
    header_end, _ = split_header(raw, 0, len(raw))
    return raw[:header_end]


# RFC 5321 §6.3: "SMTP servers using this technique SHOULD use a large rejection threshold,
# normally at least 100 Received entries." Forwarded mail (alias targets elsewhere) makes loops
# between servers possible; each round prepends one more.
MAX_RECEIVED = 100
_RECEIVED = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)
_HOPS_WINDOW = 256 * 1024  # each hop prepends its field: a loop's are all near the top


def received_count(raw: bytes | bytearray) -> int:
    """The Received: fields in the first 256 KiB of the header: the work is bounded whatever
    the message's size (it runs on the event loop)."""
    return len(_RECEIVED.findall(header_block(bytes(raw[:_HOPS_WINDOW]))))


def add_missing_ids(raw: bytes, hostname: str, now: float | None = None) -> bytes:
    """Add Message-ID and Date when the message has none (RFC 6409 §8.2, §8.3)."""
    names = {name for name, _, _ in parse_fields(header_block(raw))}
    extra = b""
    if "message-id" not in names:
        extra += f"Message-ID: <{secrets.token_hex(12)}@{hostname}>\r\n".encode()
    if "date" not in names:
        extra += f"Date: {rfc5322_date(now)}\r\n".encode()
    return extra + raw if extra else raw


def from_addresses(raw: bytes) -> list[str]:
    """The addresses of every From: field (RFC 5322 §3.6.2), as `local@domain`."""
    found: list[str] = []
    for name, _, value in parse_fields(header_block(raw)):
        if name != "from":
            continue
        for address in parse_address_list(value) or ():
            if address.mailbox is not None and address.host is not None:
                found.append(f"{address.mailbox}@{address.host}")
    return found
