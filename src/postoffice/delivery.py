"""`deliver_message`: the only way into a mailbox (DESIGN §1).

SMTP, LMTP and (later) JMAP call it. It resolves each recipient through the directory, stores
the message bytes once however many recipients there are, and returns only when every mailbox
write is durable, so the caller may then answer 250/OK.

The invariant its callers check before a 250 (`DeliveryReport.accepted`): every recipient is
delivered to each account it reaches, or queued for each outside address it reaches (alias
targets elsewhere), or else reported (unknown, not local, over quota, failed) so that it gets a
refusal or a temporary error instead. Local copies and the one outbound queue row for all
outside targets are written in the same transaction: both or neither.

Forwarded copies of mail from other domains get an SRS envelope sender of the domain that
forwarded them (queue/srs.py) when the caller passes `srs` (`[outbound] srs`), so SPF at the
next hop judges our address, not one of theirs we may not send for, and bounces come back here
to be sent on to the original sender. The null sender and our own domains' senders stay as they
are. One queue row has one sender: when relayed mail (smtp/relay.py) with an outside sender has
both outside recipients of its own and forwards, the whole row gets the SRS sender.
`postoffice import` does not come here: it files old mail into one user's mailboxes and never
forwards.

Filtering (issue 17): with `filters` (filtering/pipeline.py, `Services.filters`), the message
stages judge the message once (a refusal: nothing stored, every recipient in
`DeliveryReport.refused`), then the account stages (the Sieve scripts) decide each account's
copy; what they decide is carried out by filtering/dispositions.py in one store transaction.
A rejecting account's recipients are refused in the dialogue (`refused`) when the caller can
say so (LMTP: one reply per recipient; SMTP: only when every recipient rejects, RFC 5429
§2.1); otherwise the sender gets a rejection notice through the queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from postoffice.directory import Directory, DirectoryError, Resolution, canonical_domain
from postoffice.filtering.pipeline import (
    AccountDisposition,
    Filing,
    FilterPipeline,
    IncomingMessage,
    Refusal,
)
from postoffice.message.lines import to_crlf
from postoffice.queue.srs import SenderRewriter
from postoffice.store.interface import (
    DeliveryTarget,
    MailStore,
    NewMessage,
    OutboundMessage,
    QueuedRecipient,
    QuotaExceeded,
)

if TYPE_CHECKING:
    from postoffice.smtp.inbound_checks import Judgement

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DsnRequest:
    """A recipient's RFC 3461 parameters, carried to its forwarded copies."""

    notify: tuple[str, ...] = ()  # NOTIFY (§4.1); () when not given
    orcpt: str | None = None  # ORCPT (§4.2), "addr-type;address"


@dataclass(frozen=True, slots=True)
class Envelope:
    """The SMTP envelope of one transaction (RFC 5321 §2.3.1); sender "" is the null sender.

    `envid`, `ret` and `dsn` (per recipient) are the RFC 3461 parameters, kept on forwarded
    copies so the next hop honours what the sender asked for.
    """

    sender: str
    recipients: tuple[str, ...]
    envid: str | None = None
    ret: str | None = None
    dsn: Mapping[str, DsnRequest] = field(default_factory=dict)


@dataclass
class DeliveryReport:
    """What happened to each recipient of one message."""

    delivered: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # rcpt -> [(account, uid)]
    queued: dict[str, list[str]] = field(default_factory=dict)  # rcpt -> outside addresses in the queue row
    unknown: list[str] = field(default_factory=list)  # local domain, no such user
    not_local: list[str] = field(default_factory=list)  # domain not served here
    over_quota: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # rcpt -> reason
    queue_id: int | None = None  # the outbound queue row written with this delivery
    # Filtering: recipients refused by a filter (the reply to give them), and recipients whose
    # accounts' filters decided durably without a local copy (a logged discard, a redirect, a
    # rejection notice queued): what was done, for the log.
    refused: dict[str, Refusal] = field(default_factory=dict)
    filtered: dict[str, list[str]] = field(default_factory=dict)
    queue_ids: list[int] = field(default_factory=list)  # every queue row written (redirects, replies)

    @property
    def all_delivered(self) -> bool:
        return not (self.unknown or self.not_local or self.over_quota or self.failed or self.refused)

    def accepted(self, recipient: str) -> bool:
        """True when every copy `recipient` asked for is durable: in a mailbox or in the queue,
        or a filter's decision about it is (a logged discard). Only then may it hear 250;
        anything less is lost mail if the client is told OK."""
        if (recipient in self.unknown or recipient in self.over_quota or recipient in self.failed
                or recipient in self.refused):
            return False
        return bool(self.delivered.get(recipient) or self.queued.get(recipient) or self.filtered.get(recipient))

    def unaccounted(self, recipients: Iterable[str]) -> list[str]:
        """Recipients this report says nothing about: a bug in delivery, never a client's fault."""
        return [
            rc for rc in recipients
            if not (self.delivered.get(rc) or self.queued.get(rc) or self.filtered.get(rc) or rc in self.unknown
                    or rc in self.not_local or rc in self.over_quota or rc in self.failed or rc in self.refused)
        ]


async def deliver_message(
    store: MailStore,
    directory: Directory,
    envelope: Envelope,
    raw: bytes,
    *,
    mailbox: str = "INBOX",
    special_use: str | None = None,
    flags: frozenset[str] = frozenset(),
    internal_date: float | None = None,
    return_path: bool = True,
    outbound: OutboundMessage | None = None,
    enforce_quota: bool = True,
    binary: bool = False,
    resolved: Mapping[str, Resolution] | None = None,
    srs: SenderRewriter | None = None,
    filters: FilterPipeline | None = None,
    way: str = "local",
    judgement: Judgement | None = None,
    per_recipient: bool = False,
) -> DeliveryReport:
    """Deliver `raw` to every recipient of `envelope`; durable when it returns.

    Local copies start with `Return-Path:` (RFC 5321 §4.4: added at final delivery). Outside
    addresses that aliases lead to, and `outbound` (the remote recipients of a submission), go
    to the outbound queue as one row, a copy without Return-Path, in the same transaction.
    Line endings become CRLF, except for `binary` content (BODY=BINARYMIME, RFC 3030), which is
    stored byte for byte. `resolved` passes recipient resolutions already made (SMTP resolves
    each recipient at RCPT time) so they are not looked up twice. `special_use` (``\\Junk`` for
    a message DMARC quarantines) files the local copies into each account's mailbox with that
    RFC 6154 attribute instead of `mailbox`, creating it when the account has none; forwarded
    copies leave unchanged (the next hop judges them itself). `srs`: forwarded copies of mail
    from outside senders leave with an SRS sender (see the module's text). `filters`, `way`,
    `judgement`: the filtering pipeline and what it judges by (see the module's text);
    `per_recipient`: the caller answers each recipient apart (LMTP), so one account's Sieve
    reject is a 550 for its recipients alone.
    """
    report = DeliveryReport()
    targets: dict[int, DeliveryTarget] = {}
    reached_by: dict[int, list[str]] = {}
    addresses: dict[int, str] = {}
    forwards: dict[str, QueuedRecipient] = {}  # lower-case outside address -> its queue entry
    forwarded: dict[str, list[str]] = {}  # recipient -> the outside addresses it leads to
    for recipient in envelope.recipients:
        resolution = (resolved or {}).get(recipient) or await directory.resolve_recipient(recipient)
        if not resolution.local_domain:
            report.not_local.append(recipient)
            continue
        if not resolution.exists:
            report.unknown.append(recipient)
            continue
        if resolution.forwards:
            request = envelope.dsn.get(recipient) or DsnRequest()
            # RFC 3461 §4.2: the next hop reports on the address the sender used.
            orcpt = request.orcpt or ("rfc822;" if recipient.isascii() else "utf-8;") + recipient
            for address in resolution.forwards:
                forwards.setdefault(address.lower(), QueuedRecipient(address, request.notify, orcpt))
            forwarded[recipient] = list(resolution.forwards)
        for account in resolution.accounts:
            # One copy per account even when several recipients (aliases) lead to it.
            targets.setdefault(account.id, DeliveryTarget(account.id, mailbox, special_use=special_use,
                                                            enforce_quota=enforce_quota))
            reached_by.setdefault(account.id, []).append(recipient)
            addresses[account.id] = account.address
    submitted = outbound.recipients if outbound is not None else ()
    outbound = _with_forwards(outbound, forwards.values(), envelope)
    if forwards and srs is not None and outbound is not None:
        outbound = await rewritten_sender(outbound, srs, directory, next(iter(forwarded)))
    if not targets and outbound is None:
        return report
    if not binary:
        raw = await asyncio.to_thread(to_crlf, raw) if len(raw) > 65536 else to_crlf(raw)
    when = internal_date if internal_date is not None else time.time()
    if filters is not None and not filters.empty:
        from postoffice.filtering import dispositions

        incoming = IncomingMessage(envelope, raw, way, judgement, special_use)
        await filters.check_message(incoming)
        if incoming.refusal is not None:
            dispositions.refuse_all(report, envelope, incoming.refusal)
            return report
        raw = incoming.settle_header()
        decided = {
            account_id: AccountDisposition(
                account_id, addresses[account_id], tuple(reached_by[account_id]),
                [Filing(mailbox, incoming.special_use)])
            for account_id in targets
        }
        await filters.decide(incoming, decided)
        plan = dispositions.DispositionPlan(
            incoming, raw, decided, reached_by, forwarded, outbound, submitted,
            per_recipient=per_recipient, when=when, return_path=return_path,
            enforce_quota=enforce_quota, srs=srs, flags=flags)
        await plan.carry_out(store, directory, report)
        return report
    queue = None
    if outbound is not None:
        queue = (NewMessage(await store.put_blob(raw, queue_only=True), raw=raw), outbound)
    if return_path and targets:
        raw = b"Return-Path: <" + envelope.sender.encode("utf-8", "replace") + b">\r\n" + raw
    try:
        message = NewMessage(await store.put_blob(raw), flags, when, raw) if targets else queue[0]  # type: ignore[index]
    except BaseException:  # a full disk: the queue copy's temporary file goes too
        await store.discard_staged([queue[0].blob] if queue is not None else [])
        raise
    results, report.queue_id = await store.deliver(message, list(targets.values()), queue)
    if report.queue_id is not None:  # the row is committed with the local copies
        for entry in submitted:
            report.queued.setdefault(entry.address, []).append(entry.address)
        for recipient, outside in forwarded.items():
            report.queued.setdefault(recipient, []).extend(outside)
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


def _with_forwards(
    outbound: OutboundMessage | None, forwards: Iterable[QueuedRecipient], envelope: Envelope
) -> OutboundMessage | None:
    """One queue row for every outside address of one message: the submission's own remote
    recipients (if any) plus the alias targets elsewhere, each address once."""
    extra = list(forwards)
    if not extra:
        return outbound
    if outbound is None:
        return OutboundMessage(envelope.sender, tuple(extra), envelope.envid, envelope.ret)
    known = {entry.address.lower() for entry in outbound.recipients}
    added = tuple(entry for entry in extra if entry.address.lower() not in known)
    return dataclasses.replace(outbound, recipients=outbound.recipients + added)


async def rewritten_sender(outbound: OutboundMessage, srs: SenderRewriter, directory: Directory,
                            forwarder: str) -> OutboundMessage:
    """`outbound` with an SRS sender in the domain of `forwarder` (the recipient whose alias
    forwards: its domain's SPF names this server), unless the sender is null or ours."""
    sender = outbound.sender
    domain = sender.rpartition("@")[2]
    try:
        our_domain = canonical_domain(forwarder.rpartition("@")[2])
    except DirectoryError:  # <postmaster> without a domain
        return outbound
    if not domain or await directory.is_local_domain(domain):
        return outbound
    try:
        if not srs.loaded:  # the first time: a file read, or the secret made and fsynced
            await asyncio.to_thread(srs.load)
        rewritten = srs.forward(sender, our_domain)
    except Exception:  # an unreadable secret must not lose the message: it goes unrewritten
        log.exception("SRS rewriting of <%s> failed; forwarded with the original sender", sender)
        return outbound
    return dataclasses.replace(outbound, sender=rewritten)
