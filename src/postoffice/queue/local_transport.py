"""The transport for recipients in our own domains: `delivery.deliver_message`, no network.

A queued message reaches a local recipient when an alias, a forward or a bounce named one, or
when a domain was added after the message was queued. The report of `deliver_message` maps to
outcomes with the replies our own SMTP server would have given, so `queue show` and bounces read
the same as for a remote server. A local alias that forwards elsewhere queues the copy again,
with an SRS sender when `srs` is given (`[outbound] srs`), as at SMTP time. `filters` (the
filtering pipeline) runs as for any way in; a recipient a filter refuses fails with its reply.
"""

from __future__ import annotations

from postoffice.delivery import DsnRequest, Envelope, deliver_message
from postoffice.directory import Directory
from postoffice.filtering.pipeline import FilterPipeline
from postoffice.queue.outcomes import RecipientOutcome, SmtpReply
from postoffice.queue.srs import SenderRewriter
from postoffice.store.interface import MailStore, QueuedMessage, StorageFull


class LocalTransport:
    def __init__(self, store: MailStore, directory: Directory, hostname: str, *,
                 srs: SenderRewriter | None = None, filters: FilterPipeline | None = None) -> None:
        self.store = store
        self.filters = filters
        self.directory = directory
        self.hostname = hostname
        self.srs = srs

    async def deliver(self, message: QueuedMessage, raw: bytes,
                      recipients: tuple[str, ...]) -> tuple[RecipientOutcome, ...]:
        by_address = {r.address: r for r in message.envelope.recipients}
        envelope = Envelope(
            message.envelope.sender, recipients, message.envelope.envid, message.envelope.ret,
            {a: DsnRequest(by_address[a].notify, by_address[a].orcpt) for a in recipients if a in by_address},
        )
        try:
            report = await deliver_message(self.store, self.directory, envelope, raw, enforce_quota=True,
                                           srs=self.srs, filters=self.filters, way="local", per_recipient=True)
        except StorageFull as exc:
            reply = SmtpReply(452, "4.3.1", f"Not enough disk space here ({exc})")
            return tuple(self._outcome(a, "deferred", reply) for a in recipients)
        outcomes = []
        for address in recipients:
            refusal = report.refused.get(address)
            if refusal is not None:  # a filter (a Sieve reject): the sender gets a bounce
                kind = "failed" if refusal.code >= 500 else "deferred"
                outcomes.append(self._outcome(address, kind, SmtpReply(refusal.code, refusal.enhanced, refusal.text)))
            elif report.accepted(address):
                outcomes.append(self._outcome(address, "delivered", SmtpReply(250, "2.0.0", "Delivered")))
            elif address in report.unknown:
                outcomes.append(self._outcome(address, "failed", SmtpReply(550, "5.1.1", "No such user here")))
            elif address in report.over_quota:
                outcomes.append(self._outcome(address, "deferred", SmtpReply(452, "4.2.2", "Mailbox full")))
            elif address in report.not_local:
                # The domain was removed while the message waited: no longer ours to deliver.
                outcomes.append(self._outcome(address, "failed", SmtpReply(550, "5.1.2", "Domain no longer served here")))
            else:
                reason = report.failed.get(address, "delivery failed")
                outcomes.append(self._outcome(address, "deferred", SmtpReply(451, "4.3.0", reason)))
        return tuple(outcomes)

    def _outcome(self, address: str, kind: str, reply: SmtpReply) -> RecipientOutcome:
        return RecipientOutcome(address, kind, reply, host=self.hostname)  # type: ignore[arg-type]
