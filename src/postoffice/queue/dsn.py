"""Delivery status notifications: RFC 3464 reports in an RFC 6522 multipart/report.

    notice = DsnRecipient("bob@example.org", "failed", "5.1.1", reply=SmtpReply(550, "5.1.1", "no such user"),
                          remote_mta="mx.example.org")
    if wants_notice(recipient.notify, "failed"):
        raw = build_dsn(reporting_mta="mail.example.com", original=raw_message, ret=None,
                        envid=None, arrival=created, recipients=[notice])

Three parts: a plain-language text for the person (what happened, what to do), the
machine-readable message/delivery-status, and the original message (whole, or its header for
RET=HDRS, for big messages, and for delay and success notices). The caller sends it with the
null sender (RFC 3464 §2; RFC 5321 §4.5.5), and never for a message that had the null sender.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from postoffice.queue.outcomes import SmtpReply

Action = Literal["failed", "delayed", "delivered", "relayed", "expanded"]

# Without RET, the whole original comes back only while it is small (RFC 3461 §4.3 leaves the
# choice to the MTA): a bounce should not carry a 40 MB attachment back.
FULL_RETURN_LIMIT = 100 * 1024

_ACTION_NOTIFY = {"failed": "FAILURE", "delayed": "DELAY", "delivered": "SUCCESS", "relayed": "SUCCESS",
                  "expanded": "SUCCESS"}


@dataclass(frozen=True, slots=True)
class DsnRecipient:
    """One recipient's line of a report (RFC 3464 §2.3)."""

    recipient: str  # Final-Recipient
    action: Action
    status: str  # "5.1.1"
    original: str | None = None  # ORCPT as given ("rfc822;bob@example.org")
    reply: SmtpReply | None = None  # the remote server's exact reply, when there was one
    reason: str = ""  # plain words when there was no reply ("connection refused by ...")
    remote_mta: str = ""  # the host that answered
    last_attempt: float | None = None
    will_retry_until: float | None = None  # for delayed


def wants_notice(notify: Sequence[str], action: Action) -> bool:
    """RFC 3461 §4.1: NOTIFY=NEVER asks for nothing; without NOTIFY, failures and delays are
    reported (§6.1 lets the MTA choose; Postfix and Exim do the same), success only when asked."""
    wanted = {n.upper() for n in notify}
    if "NEVER" in wanted:
        return False
    if not wanted:
        wanted = {"FAILURE", "DELAY"}
    return _ACTION_NOTIFY[action] in wanted


def build_dsn(*, reporting_mta: str, original: bytes, recipients: Sequence[DsnRecipient], ret: str | None,
              envid: str | None, arrival: float, now: float | None = None, sender_note: str = "") -> bytes:
    """The whole notice as CRLF bytes with its header, To: left to the caller's `sender_note`
    (the original sender's address, for the To: field)."""
    now = time.time() if now is None else now
    boundary = f"=_postoffice-dsn-{int(now * 1000):x}-{abs(hash(original)) % 10**12:x}"
    kind = _kind(recipients)
    header = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        *([f"To: <{sender_note}>"] if sender_note else []),
        f"Subject: {_SUBJECTS[kind]}",
        f"Date: {email.utils.formatdate(now)}",
        f"Message-ID: {email.utils.make_msgid('dsn', domain=reporting_mta)}",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5: no automatic answer to this
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    whole = ret == "FULL" or (ret is None and len(original) <= FULL_RETURN_LIMIT)
    if kind != "failed" or ret == "HDRS":
        whole = False
    returned, returned_type = (original, "message/rfc822") if whole else (_header_of(original), "text/rfc822-headers")
    parts = [
        _part("text/plain; charset=utf-8", explanation(recipients, reporting_mta), "8bit"),
        _part("message/delivery-status", _status_fields(reporting_mta, recipients, envid, arrival),
              "7bit" if all(r.recipient.isascii() for r in recipients) else "8bit"),
        _part(returned_type, returned, "7bit" if returned.isascii() else "8bit"),
    ]
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p for p in parts) + b"--" + boundary.encode() + b"--\r\n"
    head = "\r\n".join(header).encode("utf-8") + b"\r\n\r\n"
    return head + b"This is a MIME-encapsulated delivery status notification.\r\n\r\n" + body


_SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "delivered": "Successful Mail Delivery Report",
}


def _kind(recipients: Sequence[DsnRecipient]) -> str:
    actions = {r.action for r in recipients}
    if "failed" in actions:
        return "failed"
    if "delayed" in actions:
        return "delayed"
    return "delivered"


def _part(content_type: str, payload: bytes | str, encoding: str) -> bytes:
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    if not payload.endswith(b"\r\n"):
        payload += b"\r\n"
    return (f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n".encode()
            + payload)


def _header_of(original: bytes) -> bytes:
    end = original.find(b"\r\n\r\n")
    return original if end < 0 else original[: end + 2]


def _status_fields(reporting_mta: str, recipients: Sequence[DsnRecipient], envid: str | None,
                   arrival: float) -> str:
    """RFC 3464 §2.2 (per message) and §2.3 (per recipient), one blank line between groups."""
    groups = [[
        *([f"Original-Envelope-Id: {_one_line(envid)}"] if envid else []),
        f"Reporting-MTA: dns; {reporting_mta}",
        f"Arrival-Date: {email.utils.formatdate(arrival)}",
    ]]
    for r in recipients:
        fields = []
        if r.original:
            fields.append(f"Original-Recipient: {_one_line(r.original)}")
        fields += [f"Final-Recipient: {'rfc822' if r.recipient.isascii() else 'utf-8'}; {r.recipient}",
                   f"Action: {r.action}", f"Status: {r.status}"]
        if r.remote_mta:
            fields.append(f"Remote-MTA: dns; {r.remote_mta}")
        if r.reply is not None:
            fields.append(f"Diagnostic-Code: smtp; {_one_line(str(r.reply))}")
        elif r.reason:
            fields.append(f"Diagnostic-Code: X-Postoffice; {_one_line(r.reason)}")
        if r.last_attempt is not None:
            fields.append(f"Last-Attempt-Date: {email.utils.formatdate(r.last_attempt)}")
        if r.will_retry_until is not None:
            fields.append(f"Will-Retry-Until: {email.utils.formatdate(r.will_retry_until)}")
        groups.append(fields)
    return "\r\n\r\n".join("\r\n".join(g) for g in groups)


def _one_line(text: str) -> str:
    """A header field value from a peer's text: no line breaks or controls can split the field."""
    return "".join(c if c.isprintable() else " " for c in text)[:900]


def explanation(recipients: Sequence[DsnRecipient], reporting_mta: str) -> str:
    """The first part: what happened to each recipient and what to do, in plain words."""
    kind = _kind(recipients)
    opening = {
        "failed": f"This is the mail server {reporting_mta}. Your message could not be delivered to"
                  " the recipient(s) below; it was not sent to them.",
        "delayed": f"This is the mail server {reporting_mta}. Your message has not been delivered yet"
                   " to the recipient(s) below. Nothing needs doing now: the server keeps trying.",
        "delivered": f"This is the mail server {reporting_mta}. Your message was delivered as you"
                     " asked to be told.",
    }[kind]
    lines = [opening, ""]
    for r in recipients:
        lines += [f"<{r.recipient}>: {_sentence(r)}", ""]
    if kind == "failed":
        lines.append("The technical report and your original message are attached.")
    return "\r\n".join(lines)


def _sentence(r: DsnRecipient) -> str:
    server = f"The server {r.remote_mta}" if r.remote_mta else "The receiving server"
    said = f" ({r.reply.code} {r.reply.enhanced})".replace(" )", ")") if r.reply is not None else ""
    quoted = f' It said: "{_one_line(r.reply.text)}".' if r.reply is not None and r.reply.text else ""
    if r.action in ("delivered", "relayed", "expanded"):
        onward = " It went on to a server that does not send delivery reports, so this is the last news of it." \
            if r.action == "relayed" else ""
        return f"delivered{' to ' + r.remote_mta if r.remote_mta else ''}.{onward}"
    if r.action == "delayed":
        why = r.reason or (f"{server} answered with a temporary error{said}." if r.reply else "")
        until = (f" It will be tried until {email.utils.formatdate(r.will_retry_until, usegmt=True)}."
                 if r.will_retry_until else "")
        return f"not delivered yet. {why}{quoted}{until}".strip()
    status = r.status
    if status == "5.1.1":
        advice = f"{server} said the address does not exist{said}.{quoted} Check the address for typing mistakes."
    elif status == "5.1.10":
        advice = ("The recipient's domain says it takes no mail at all (a \"null MX\" record, RFC 7505)."
                  " Check the domain of the address.")
    elif status.startswith("5.2.") or status.startswith("4.2."):
        advice = f"{server} said the mailbox is full or not accepting mail{said}.{quoted} Try again later or reach them another way."
    elif status == "5.7.30":  # RFC 8689 §5
        advice = ("the message was to travel only over verified encryption (REQUIRETLS) and the"
                  f" receiving server could not offer that: {r.reason or 'no reason given'}."
                  " Send it without that requirement, or reach the recipient another way.")
    elif status.startswith("5.7."):
        advice = (f"{server} refused the message for policy or spam reasons{said}.{quoted}"
                  " Ask the recipient (another way) to allow it, or ask this server's administrator.")
    elif status == "4.4.7" or status == "5.4.7":
        advice = (f"it could not be delivered for too long and the server gave up."
                  f" The last problem was: {r.reason or (str(r.reply) if r.reply else 'unknown')}."
                  " Check the address; if it is right, the receiving server may be down: try again later.")
    elif r.reply is not None:
        advice = f"{server} refused it{said}.{quoted} Check the address, or forward this report to your administrator."
    else:
        advice = f"{r.reason or 'delivery failed'}. Check the address, or forward this report to your administrator."
    return advice
