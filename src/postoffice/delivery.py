"""`deliver_message`: the only way into a mailbox (DESIGN §1).

SMTP, LMTP, imports and (later) JMAP all call it. It resolves each recipient through the
directory, stores the message bytes once however many recipients there are, and returns only
when every mailbox write is durable, so the caller may then answer 250/OK.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from postoffice.directory import Directory, Resolution
from postoffice.message.lines import to_crlf
from postoffice.store.interface import (
    DeliveryTarget,
    MailStore,
    NewMessage,
    OutboundMessage,
    QuotaExceeded,
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """The SMTP envelope of one transaction (RFC 5321 §2.3.1); sender "" is the null sender."""

    sender: str
    recipients: tuple[str, ...]


@dataclass
class DeliveryReport:
    """What happened to each recipient of one message."""

    delivered: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # rcpt -> [(account, uid)]
    unknown: list[str] = field(default_factory=list)  # local domain, no such user
    not_local: list[str] = field(default_factory=list)  # domain not served here
    over_quota: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # rcpt -> reason
    forwards: list[str] = field(default_factory=list)  # alias targets elsewhere (for the queue)
    queue_id: int | None = None  # the outbound queue row written with this delivery

    @property
    def all_delivered(self) -> bool:
        return not (self.unknown or self.not_local or self.over_quota or self.failed)


async def deliver_message(
    store: MailStore,
    directory: Directory,
    envelope: Envelope,
    raw: bytes,
    *,
    mailbox: str = "INBOX",
    flags: frozenset[str] = frozenset(),
    internal_date: float | None = None,
    return_path: bool = True,
    outbound: OutboundMessage | None = None,
    enforce_quota: bool = True,
    binary: bool = False,
    resolved: dict[str, Resolution] | None = None,
) -> DeliveryReport:
    """Deliver `raw` to every local recipient of `envelope`; durable when it returns.

    Local copies start with `Return-Path:` (RFC 5321 §4.4: added at final delivery). With
    `outbound`, a copy without it goes to the outbound queue in the same transaction.
    Line endings become CRLF, except for `binary` content (BODY=BINARYMIME, RFC 3030), which is
    stored byte for byte. `resolved` passes recipient resolutions already made (SMTP resolves
    each recipient at RCPT time) so they are not looked up twice.
    """
    report = DeliveryReport()
    targets: dict[int, DeliveryTarget] = {}
    reached_by: dict[int, list[str]] = {}
    addresses: dict[int, str] = {}
    for recipient in envelope.recipients:
        resolution = (resolved or {}).get(recipient) or await directory.resolve_recipient(recipient)
        if not resolution.local_domain:
            report.not_local.append(recipient)
            continue
        if not resolution.exists:
            report.unknown.append(recipient)
            continue
        report.forwards.extend(f for f in resolution.forwards if f not in report.forwards)
        for account in resolution.accounts:
            # One copy per account even when several recipients (aliases) lead to it.
            targets.setdefault(account.id, DeliveryTarget(account.id, mailbox, enforce_quota=enforce_quota))
            reached_by.setdefault(account.id, []).append(recipient)
            addresses[account.id] = account.address
        if not resolution.accounts:
            report.delivered.setdefault(recipient, [])
    if not targets and outbound is None:
        return report
    if not binary:
        raw = await asyncio.to_thread(to_crlf, raw) if len(raw) > 65536 else to_crlf(raw)
    when = internal_date if internal_date is not None else time.time()
    queue = None
    if outbound is not None:
        queue = (NewMessage(await store.put_blob(raw), raw=raw), outbound)
    if return_path and targets:
        raw = b"Return-Path: <" + envelope.sender.encode("utf-8", "replace") + b">\r\n" + raw
    message = NewMessage(await store.put_blob(raw), flags, when, raw) if targets else queue[0]  # type: ignore[index]
    results, report.queue_id = await store.deliver(message, list(targets.values()), queue)
    for result in results:
        account_id = result.target.account_id
        for recipient in reached_by[account_id]:
            if result.error is None and result.uid is not None:
                report.delivered.setdefault(recipient, []).append((addresses[account_id], result.uid))
            elif isinstance(result.error, QuotaExceeded):
                report.over_quota.append(recipient)
            else:
                report.failed[recipient] = str(result.error)
    return report
