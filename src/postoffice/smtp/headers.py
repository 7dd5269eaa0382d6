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


# --- Authentication-Results and trusted relays (RFC 8601, issue 14) ------------------------------

_AUTHRES_NAME = re.compile(rb"authentication-results[ \t]*:", re.IGNORECASE)


def _fields(block: bytes) -> list[bytes]:
    """A header block cut into its fields, each with its continuation lines, byte for byte."""
    fields: list[bytes] = []
    for line in block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def authserv_id(value: str) -> str:
    """The authserv-id of an Authentication-Results field body (RFC 8601 §2.2): the first
    token or quoted-string after any comments and white space; "" when there is none."""
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":  # a comment, possibly nested, with quoted-pairs
            depth = 0
            while i < n:
                if value[i] == "\\":
                    i += 2
                    continue
                depth += {"(": 1, ")": -1}.get(value[i], 0)
                i += 1
                if depth == 0:
                    break
        elif c == '"':
            out, i = [], i + 1
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(value[i])
                i += 1
            return "".join(out)
        else:
            end = i
            while end < n and value[end] not in ' \t\r\n;()"':
                end += 1
            return value[i:end]
    return ""


def remove_authentication_results(raw: bytes, our_id: str) -> tuple[bytes, int]:
    """`raw` without the Authentication-Results fields that claim to come from us (RFC 8601
    §5: a forged verdict must not reach the user's filters), and how many went. The authserv-id
    is compared case-insensitively, after any comment; everyone else's fields stay untouched."""
    header_end, _ = split_header(raw, 0, len(raw))
    block = raw[:header_end]
    if not _AUTHRES_NAME.search(block):
        return raw, 0
    ours = our_id.lower().rstrip(".")
    kept: list[bytes] = []
    removed = 0
    for field in _fields(block):
        if _AUTHRES_NAME.match(field):
            value = field.split(b":", 1)[1].decode("utf-8", "replace")
            if authserv_id(value).lower().rstrip(".") == ours:
                removed += 1
                continue
        kept.append(field)
    return b"".join(kept) + raw[header_end:], removed


_RECEIVED_FROM = re.compile(
    r"^\s*from\s+(?P<helo>\S+).*?\[(?:ipv6:)?(?P<ip>[0-9a-f:.]+)\]", re.IGNORECASE | re.DOTALL)
_RECEIVED_BY = re.compile(r"(?:^|\s)by\s+(?P<by>[^\s;()]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ReceivedHop:
    """One Received: field as RFC 5321 §4.4 writes it: who connected (`from helo (name
    [192.0.2.1])`) and who received (`by host`); "" for what the field does not say."""

    helo: str
    ip: str
    by: str


def received_hops(raw: bytes) -> list[ReceivedHop]:
    """The Received: fields of a message, newest (top) first."""
    hops: list[ReceivedHop] = []
    for name, _, value in parse_fields(header_block(raw[:_HOPS_WINDOW])):
        if name != "received":
            continue
        clause = re.split(r"\sby\s", value, maxsplit=1, flags=re.IGNORECASE)[0]
        match = _RECEIVED_FROM.match(clause)
        by = _RECEIVED_BY.search(value)
        hops.append(ReceivedHop(match["helo"] if match else "", match["ip"] if match else "",
                                by["by"].lower().rstrip(".") if by else ""))
    return hops


def received_clients(raw: bytes) -> list[tuple[str, str]]:
    """(HELO name, client IP) of each Received: field, newest first, as a relay in front of
    us records them (`from helo (name [192.0.2.1])`, RFC 5321 §4.4); a field without an
    address literal in its from-clause gives ("", "")."""
    return [(hop.helo, hop.ip) if hop.ip else ("", "") for hop in received_hops(raw)]
