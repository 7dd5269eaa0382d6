"""Carrying out what the filters decided for each account, in one store transaction.

`DispositionPlan.carry_out` turns the accounts' dispositions (filtering/pipeline.py) into one
`DeliveryPlan` (store/delivery_memory_interface.py) and fills the `DeliveryReport`:

- Rejections (Sieve reject/ereject, RFC 5429): a recipient whose every account rejects (and
  that forwards nowhere) is refused in the dialogue when the caller can refuse it alone (LMTP,
  RFC 2033 §4.2), or over SMTP when every recipient of the message is refused (§2.1: one reply
  for all); otherwise the sender gets a rejection notice (an MDN, RFC 3798) through the queue,
  and a null sender gets nothing (RFC 5429 §2.1: never to the null sender), which is logged.
- Copies: one per filing (mailbox, flags, :create); an account whose filters edited the header
  gets its own blob, identical contents share one.
- Redirects (RFC 5228 §4.2): one queue row per account, the sender rewritten with SRS for
  outside senders, `X-Sieve-Redirected-From` added; a message that already carries the
  account's own address there is not redirected again (a loop) but kept.
- Auto-replies (vacation) and notices: queue rows from the null sender or the account.
- Nothing disappears: an account left with no copy, no logged discard, no rejection and no
  redirect is kept in its default mailbox; every non-default outcome is logged, one line per
  account (`filter outcome`, docs/logging.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from postoffice import logevents
from postoffice.directory import Directory
from postoffice.filtering.pipeline import (
    PARSED_MESSAGE,
    AccountDisposition,
    Filing,
    IncomingMessage,
    Refusal,
)
from postoffice.filtering.rejection_notice import rejection_notice
from postoffice.message.mime_model import MessageMetadata
from postoffice.queue.srs import SenderRewriter
from postoffice.store.delivery_memory_interface import DeliveryPlan, MemoryEntry, PlannedCopy
from postoffice.store.interface import (
    DeliveryTarget,
    MailStore,
    NewMessage,
    OutboundMessage,
    QueuedRecipient,
    QuotaExceeded,
)

if TYPE_CHECKING:  # delivery.py imports this module
    from postoffice.delivery import DeliveryReport, Envelope

log = logging.getLogger(__name__)

REDIRECTED_FROM = "X-Sieve-Redirected-From"
REJECTED = "5.7.1"


def refuse_all(report: DeliveryReport, envelope: Envelope, refusal: Refusal) -> None:
    """A message stage refused the message: every recipient still in play hears it."""
    for recipient in envelope.recipients:
        if recipient not in report.unknown and recipient not in report.not_local:
            report.refused[recipient] = refusal


@dataclass
class DispositionPlan:
    incoming: IncomingMessage
    raw: bytes  # the message as stored, header fields of the stages included, no Return-Path
    decided: Mapping[int, AccountDisposition]
    reached_by: Mapping[int, list[str]]  # account -> the recipients that reach it
    forwarded: Mapping[str, list[str]]  # recipient -> outside addresses its alias leads to
    outbound: OutboundMessage | None  # the forwards and a submission's remote recipients
    submitted: Sequence[QueuedRecipient]
    per_recipient: bool = False
    when: float | None = None
    return_path: bool = True
    enforce_quota: bool = True
    srs: SenderRewriter | None = None
    flags: frozenset[str] = frozenset()

    async def carry_out(self, store: MailStore, directory: Directory, report: DeliveryReport) -> None:
        envelope = self.incoming.envelope
        dropped = self._settle_rejections(report)
        contents: list[bytes] = []
        parses: dict[int, MessageMetadata] = {}  # index in contents -> its parse, made already
        content_index: dict[bytes, int] = {}  # content -> its index (dict hashing, not SHA-256, on the loop)
        copies: list[PlannedCopy] = []
        copy_accounts: list[int] = []
        queue: list[tuple[bytes, OutboundMessage, str]] = []  # bytes, envelope, what (for the report)
        remember: list[MemoryEntry] = []
        if self.outbound is not None:
            queue.append((self.raw, self.outbound, "outbound"))
        for account_id, account in self.decided.items():
            if account_id in dropped:
                continue
            body = account.content if account.content is not None else self.raw
            if account.redirects:  # first: a loop refused becomes a keep
                row = await self._redirect_row(account, directory)
                if row is not None:
                    queue.append((self._redirected(body, account), row, f"redirect:{account_id}"))
            self._keep_if_nothing(account)
            if account.filings:
                stored = self._with_return_path(body)
                index = content_index.setdefault(stored, len(contents))
                if index == len(contents):
                    contents.append(stored)
                    if (parsed := self._parsed(body)) is not None:
                        parses[index] = parsed.with_fields_inserted(0, len(stored) - len(body))
                for filing in account.filings:
                    copies.append(PlannedCopy(self._target(account_id, filing), index, filing.create))
                    copy_accounts.append(account_id)
            for reply in account.replies:
                queue.append((reply.raw, OutboundMessage(reply.sender, (QueuedRecipient(reply.recipient),)),
                              f"{reply.kind}:{account_id}"))
            if account.rejection is not None and envelope.sender:
                notice = rejection_notice(account.address, envelope.sender, self.raw, account.rejection)
                queue.append((notice, OutboundMessage("", (QueuedRecipient(envelope.sender),)),
                              f"rejection notice:{account_id}"))
            remember += [MemoryEntry(account_id, r.kind, r.key, r.expires) for r in account.remember]
        if not copies and not queue and not remember:
            self._report_without_copies(report, dropped)
            return
        new_contents: list[NewMessage] = []
        new_queue: list[tuple[NewMessage, OutboundMessage]] = []
        try:
            for index, content in enumerate(contents):
                blob = await store.put_blob(content, parsed=parses.get(index))
                new_contents.append(NewMessage(blob, self.flags, self.when, content))
            for raw, row, _ in queue:
                new_queue.append((NewMessage(await store.put_blob(raw, queue_only=True), raw=raw), row))
        except BaseException:  # a full disk: the files staged so far go at once (deliver_plan does the rest)
            await store.discard_staged([m.blob for m in new_contents] + [m.blob for m, _ in new_queue])
            raise
        result = await store.deliver_plan(DeliveryPlan(new_contents, copies, new_queue, remember))
        report.queue_ids = list(result.queue_ids)
        for index in result.fell_back:  # as Pigeonhole: the copy is kept, and the log says why
            missing = copies[index].target.mailbox
            self.decided[copy_accounts[index]].outcome.append(f"fileinto {missing!r}: no such mailbox, filed into INBOX")
        if self.outbound is not None:
            report.queue_id = result.queue_ids[0]
            for entry in self.submitted:
                report.queued.setdefault(entry.address, []).append(entry.address)
            for recipient, outside in self.forwarded.items():
                report.queued.setdefault(recipient, []).extend(outside)
        for account_id, target_result in zip(copy_accounts, result.results, strict=True):
            address = self.decided[account_id].address
            for recipient in self.reached_by[account_id]:
                if target_result.error is None and target_result.uid is not None:
                    report.delivered.setdefault(recipient, []).append((address, target_result.uid))
                elif isinstance(target_result.error, QuotaExceeded):
                    if recipient not in report.over_quota:
                        report.over_quota.append(recipient)
                else:
                    report.failed[recipient] = str(target_result.error)
        self._report_without_copies(report, dropped)

    # --- rejections ---------------------------------------------------------------------------

    def _settle_rejections(self, report: DeliveryReport) -> set[int]:
        """Refuse in the dialogue what can be refused there; returns the accounts whose copy
        is thereby settled (nothing else is done for them: the message was not accepted)."""
        rejecting = {aid for aid, account in self.decided.items() if account.rejection is not None}
        if not rejecting:
            return set()
        recipients: dict[str, list[int]] = {}
        for account_id, reaching in self.reached_by.items():
            for recipient in reaching:
                recipients.setdefault(recipient, []).append(account_id)
        refusable = {rc for rc, accounts in recipients.items()
                     if rc not in self.forwarded and all(a in rejecting for a in accounts)}
        if not self.per_recipient:
            everyone = set(recipients) | set(self.forwarded)
            if self.submitted or refusable != everyone:
                refusable = set()  # one reply for all (SMTP): notices instead
        for recipient in refusable:
            reason = self.decided[recipients[recipient][0]].rejection or "Rejected"
            report.refused[recipient] = Refusal(550, REJECTED, _reply_text(reason), "sieve")
        dropped = {aid for aid in rejecting if all(rc in refusable for rc in self.reached_by[aid])}
        for account_id in dropped:
            account = self.decided[account_id]
            _log_outcome(account, self.incoming, ["reject (in the dialogue)"])
        return dropped

    # --- copies -------------------------------------------------------------------------------

    @staticmethod
    def _keep_if_nothing(account: AccountDisposition) -> None:
        if account.filings or account.discarded_by or account.rejection is not None or account.redirects:
            return
        # A stage cancelled the keep without saying how the copy went: it is kept (§2.10.2).
        log.warning("filters left no copy for %s without a discard; kept in INBOX", account.address)
        account.filings.append(Filing())
        account.outcome.append("keep (nothing else decided)")

    def _target(self, account_id: int, filing: Filing) -> DeliveryTarget:
        return DeliveryTarget(account_id, filing.mailbox, filing.flags, filing.special_use, self.enforce_quota)

    def _parsed(self, body: bytes) -> MessageMetadata | None:
        """A stage's parse of `body` (PARSED_MESSAGE), when `body` is the very bytes it parsed."""
        parsed = self.incoming.facts.get(PARSED_MESSAGE)
        return parsed[1] if isinstance(parsed, tuple) and parsed[0] is body else None

    def _with_return_path(self, raw: bytes) -> bytes:
        if not self.return_path:
            return raw
        return b"Return-Path: <" + self.incoming.envelope.sender.encode("utf-8", "replace") + b">\r\n" + raw

    # --- redirects ----------------------------------------------------------------------------

    async def _redirect_row(self, account: AccountDisposition, directory: Directory) -> OutboundMessage | None:
        own = account.address.lower()
        if any(own in value.lower() for value in self.incoming.header(REDIRECTED_FROM)):
            # RFC 5228 §4.2: implementations SHOULD take measures against mail loops.
            account.outcome.append("redirect refused: a loop (already redirected by this account)")
            if not account.filings and not account.discarded_by:
                account.filings.append(Filing())
            account.redirects.clear()
            return None
        sender = self.incoming.envelope.sender
        row = OutboundMessage(sender, tuple(QueuedRecipient(address) for address in account.redirects))
        if self.srs is not None and sender:
            from postoffice.delivery import rewritten_sender

            row = await rewritten_sender(row, self.srs, directory, account.address)
        return row

    @staticmethod
    def _redirected(body: bytes, account: AccountDisposition) -> bytes:
        return f"{REDIRECTED_FROM}: {account.address}\r\n".encode() + body

    # --- the report ---------------------------------------------------------------------------

    def _report_without_copies(self, report: DeliveryReport, dropped: set[int]) -> None:
        """Accounts settled without a local copy; and one log line per account filtered."""
        for account_id, account in self.decided.items():
            if account_id in dropped:
                continue
            what = _settled_without_copy(account, self.incoming.envelope.sender)
            if what is not None:
                for recipient in self.reached_by[account_id]:
                    report.filtered.setdefault(recipient, []).append(f"{account.address}: {what}")
            actions = _actions(account, self.incoming.envelope.sender)
            if actions:
                _log_outcome(account, self.incoming, actions)


def _settled_without_copy(account: AccountDisposition, sender: str) -> str | None:
    if account.filings:
        return None
    if account.rejection is not None:
        return "rejected, notice sent" if sender else "rejected (null sender: no notice)"
    if account.redirects:
        return "redirected"
    return f"discarded by {account.discarded_by}"


def _actions(account: AccountDisposition, sender: str) -> list[str]:
    """The outcome in words when it is not the plain default keep."""
    actions = list(account.outcome)
    if account.plain_keep and not actions:
        return []
    for filing in account.filings:
        where = filing.special_use or filing.mailbox
        flags = f" flags {' '.join(sorted(filing.flags))}" if filing.flags else ""
        actions.append(f"{'keep' if account.keep_implicit else 'fileinto'} {where}{flags}")
    if account.discarded_by and not account.filings:
        actions.append(f"discard ({account.discarded_by})")
    actions += [f"redirect {address}" for address in account.redirects]
    actions += [f"{reply.kind} to {reply.recipient}" for reply in account.replies]
    if account.rejection is not None:
        actions.append("reject, notice to the sender" if sender else "reject (null sender: no notice)")
    if account.content is not None:
        actions.append("header edited")
    return actions


def _log_outcome(account: AccountDisposition, incoming: IncomingMessage, actions: list[str]) -> None:
    message_id = next(iter(incoming.header("message-id")), "")
    logevents.filter_outcome(account.address, incoming.envelope.sender, message_id.strip(), actions)


def _reply_text(reason: str) -> str:
    """The reason on one SMTP reply line: printable ASCII, bounded."""
    text = " ".join(reason.split())
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:400]
    return text or "Message rejected by the recipient's filter"
