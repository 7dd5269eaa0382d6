"""Vacation replies (RFC 5230, RFC 6131): when not to answer, and the reply itself.

The Sieve interpreter resolves a `vacation` action (subject, reason, handle, period); this
module applies the checks that need the message and the account (RFC 5230 §4.5-§4.6) and
writes the reply (§5). The once-per-sender-per-period memory is the store's (`remembered`,
kind "vacation"), written in the delivery's own transaction, so a message refused or retried
never counts as answered.

Never answered (§4.5, and what Pigeonhole also skips):
- the null sender, and senders that are mail systems or lists by name: MAILER-DAEMON,
  LISTSERV, majordomo, owner-*, *-request;
- mail with `Auto-Submitted` other than "no" (RFC 3834 §2), with any `List-*` field
  (RFC 2369, RFC 2919), or with `Precedence: bulk|list|junk`;
- mail where none of the account's addresses (its own, the recipients that reached it, and
  the script's `:addresses`) is in To, Cc, Bcc, Resent-To, Resent-Cc or Resent-Bcc;
- mail from the account itself.
"""

from __future__ import annotations

import email.utils
import re
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

from postoffice.filtering.pipeline import IncomingMessage
from postoffice.message.mime_address import parse_address_list

if TYPE_CHECKING:  # the Sieve engine is imported only when a script runs (sieve_delivery.py)
    from postoffice.filtering.sieve.actions import Vacation

_SYSTEM_SENDERS = re.compile(r"^(mailer-daemon|listserv|majordomo|owner-.*|.*-request)$", re.IGNORECASE)
_RECIPIENT_FIELDS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")
_BULK = {"bulk", "list", "junk"}


def why_no_reply(message: IncomingMessage, account_addresses: Iterable[str], action: Vacation) -> str | None:
    """The reason this message gets no vacation reply, or None when it may get one."""
    sender = message.envelope.sender
    if not sender:
        return "the null sender"
    local = sender.rpartition("@")[0]
    if _SYSTEM_SENDERS.match(local):
        return f"a system or list sender ({sender})"
    ours = {a.lower() for a in account_addresses} | {a.lower() for a in action.addresses}
    if sender.lower() in ours:
        return "mail from the account itself"
    for value in message.header("auto-submitted"):
        if value.split(";")[0].strip().lower() != "no":
            return f"Auto-Submitted: {value.strip()[:40]}"
    if any(lower.startswith("list-") for lower, _, _ in message.header_fields):
        return "a mailing list message (List-* fields)"
    if any(value.strip().lower() in _BULK for value in message.header("precedence")):
        return "Precedence: bulk/list/junk"
    named = {
        f"{a.mailbox}@{a.host}".lower()
        for name in _RECIPIENT_FIELDS for value in message.header(name)
        for a in (parse_address_list(value) or ()) if a.mailbox and a.host
    }
    if not named & ours:
        return "the account is not named in To/Cc/Bcc"
    return None


def memory_key(sender: str, handle: str) -> str:
    """What the store remembers per reply: the sender (case-insensitive) and the handle."""
    return f"{sender.lower()}\0{handle}"


def vacation_reply(action: Vacation, account_address: str) -> tuple[str, bytes]:
    """(From address, the reply message) for `action` (RFC 5230 §5)."""
    from_ = action.from_ or account_address
    domain = from_.rpartition("@")[2].strip(">") or "localhost"
    subject = " ".join(action.subject.split())
    lines = [
        f"From: {from_ if '<' in from_ else '<' + from_ + '>'}",
        f"To: <{action.recipient}>",
        f"Subject: {_encoded(subject)}",
        f"Date: {email.utils.formatdate(localtime=False)}",
        f"Message-ID: <{secrets.token_hex(12)}@{domain}>",
        "Auto-Submitted: auto-replied (vacation)",  # RFC 3834 §5, RFC 5230 §5.6
        "Precedence: bulk",
    ]
    if action.in_reply_to:  # RFC 5230 §5.8: threading with the original
        lines.append(f"In-Reply-To: {action.in_reply_to}")
        lines.append(f"References: {(action.references + ' ') if action.references else ''}{action.in_reply_to}")
    lines.append("MIME-Version: 1.0")
    if action.mime:  # the reason is a MIME entity: its own header fields, then its body
        head = "\r\n".join(lines).encode("utf-8", "replace") + b"\r\n"
        return from_, head + _crlf(action.reason.encode("utf-8", "replace"))
    lines += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", ""]
    body = _crlf(action.reason.encode("utf-8", "replace"))
    return from_, "\r\n".join(lines).encode("utf-8", "replace") + b"\r\n" + body


def _encoded(text: str) -> str:
    """A header value in RFC 2047 words when it is not ASCII."""
    if text.isascii():
        return text
    from email.header import Header

    return Header(text, "utf-8").encode()


def _crlf(data: bytes) -> bytes:
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return data if data.endswith(b"\r\n") else data + b"\r\n"
