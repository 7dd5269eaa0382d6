"""The notice a sender gets when a recipient's Sieve script rejects a message that could not be
refused in the SMTP dialogue (RFC 5429 §2.1: an MDN, RFC 8098, with the disposition
"deleted"), sent from the null sender so that it is never answered automatically."""

from __future__ import annotations

import email.utils
import secrets

from postoffice.message.mime_headers import parse_fields
from postoffice.smtp.headers import header_block

_HEADERS_KEPT = 64 * 1024  # the original's header block, at most this much, goes back


def rejection_notice(recipient: str, sender: str, original: bytes, reason: str) -> bytes:
    """An MDN from `recipient` to `sender` saying `original` was rejected for `reason`."""
    domain = recipient.rpartition("@")[2] or "localhost"
    boundary = "rejected-" + secrets.token_hex(8)
    fields = {lower: value for lower, _, value in parse_fields(header_block(original))}
    subject = " ".join(fields.get("subject", "").split())[:200]
    message_id = fields.get("message-id", "").strip()
    text = " ".join(reason.split()) or "rejected by the recipient's filter"
    headers = header_block(original)[:_HEADERS_KEPT]
    lines = [
        f"From: <{recipient}>",
        f"To: <{sender}>",
        f"Subject: Rejected: {subject}" if subject else "Subject: Rejected message",
        f"Date: {email.utils.formatdate(localtime=False)}",
        f"Message-ID: <{secrets.token_hex(12)}@{domain}>",
        "Auto-Submitted: auto-replied (rejected)",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=disposition-notification; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        f"Your message to <{recipient}> was rejected by the recipient's mail filter:",
        "",
        text,
        "",
        f"--{boundary}",
        "Content-Type: message/disposition-notification",
        "",
        "Reporting-UA: postoffice",
        f"Final-Recipient: rfc822; {recipient}",
        *([f"Original-Message-ID: {message_id}"] if message_id else []),
        "Disposition: automatic-action/MDN-sent-automatically; deleted",
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
    ]
    head = "\r\n".join(lines).encode("utf-8", "replace") + b"\r\n"
    return head + headers.rstrip(b"\r\n") + f"\r\n\r\n--{boundary}--\r\n".encode()
