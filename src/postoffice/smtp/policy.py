"""What each SMTP listener accepts: typed policy hooks returning a Reply, or None for "yes".

- `InboundPolicy` (port 25, the MX): the local block list first (access_lists.py: a blocked
  client refused at connect with 554 5.7.1, a blocked sender at MAIL with 554 5.7.1, a blocked
  recipient at RCPT with 550 5.7.1; allow entries win); then mail for local domains only;
  unknown users refused at RCPT with 550 5.1.1 and broken aliases (loops, too deep) with
  550 5.4.6 (never accept-then-bounce); anything else is relaying: 554 5.7.1, whatever tricks
  the address holds (`%`, `!`, source routes). The null sender is fine (bounces). Aliases to
  outside addresses are queued, with an SRS sender when the sender is not ours (`[outbound]
  srs`); a valid SRS address of ours leads to its original sender (directory.py, queue/srs.py).
- `SubmissionPolicy` (587/465, RFC 6409): AUTH first; MAIL FROM and From: must belong to the
  account; local recipients delivered at once, remote ones queued, in one transaction.
- `LmtpPolicy` (RFC 2033): local recipients only, one reply per recipient after DATA.

A client in `[smtp] relay_networks` (`state.relay`, smtp/relay.py: scanners, printers) may send
on port 25 and on the submission ports without AUTH or TLS, to anyone, as a logged-in user
would, except that any sender address is taken: MAIL FROM within its per-minute share (else
451 4.7.1), remote recipients queued, the message DKIM-signed when its author domain is ours,
one `smtp relay` log line per accepted message. Its mail is not judged (SPF, DMARC, DNSBL).

Mail accepted for `[dmarc] report_address` (port 25 or LMTP) has its DMARC aggregate reports
read into the store once it is delivered (dmarc_inbox.py); that never changes the reply.

Every path answers 250 for a recipient only when `DeliveryReport.accepted` says all its copies
are durable (in mailboxes or the outbound queue); a recipient the report does not account for
is a bug in delivery: logged at ERROR and answered 451, so the client keeps the message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from postoffice import logevents
from postoffice.access_lists import refusal_text
from postoffice.delivery import DeliveryReport, DsnRequest, Envelope, deliver_message
from postoffice.directory import Resolution
from postoffice.dmarc_inbox import read_incoming_reports
from postoffice.smtp.headers import (
    ReceivedInfo,
    add_missing_ids,
    from_addresses,
    new_queue_id,
    received_header,
)
from postoffice.smtp.proto import replies as r
from postoffice.store.interface import (
    AccessEntry,
    DmarcEvaluation,
    OutboundMessage,
    QueuedRecipient,
)

if TYPE_CHECKING:
    from postoffice.services import Services
    from postoffice.smtp.inbound_checks import Judgement
    from postoffice.smtp.session import Envelope as SmtpEnvelope
    from postoffice.smtp.session import Recipient, SessionState

log = logging.getLogger(__name__)

MAILBOX_FULL = r.Reply(452, "4.2.2", "Mailbox full, try again later")
RELAY_DENIED = r.Reply(554, "5.7.1", "Relay access denied: this server only accepts mail for its own domains")
UNKNOWN_USER = r.Reply(550, "5.1.1", "No such user here")
AUTH_REQUIRED = r.Reply(530, "5.7.0", "Authentication required")
SENDER_NOT_OWNED = r.Reply(553, "5.7.1", "Sender address not owned by the authenticated user")
FROM_NOT_OWNED = r.Reply(553, "5.7.1", "From: header address not owned by the authenticated user")
DELIVERY_FAILED = r.Reply(451, "4.3.0", "Local delivery failed, try again later")
UNACCOUNTED = r.Reply(451, "4.3.0", "Delivery failed internally, try again later")


def alias_problem(problem: str) -> r.Reply:
    """RFC 3463 X.4.6 (routing loop detected) for an alias that cannot be expanded."""
    return r.Reply(550, "5.4.6", problem)


class SmtpPolicy(Protocol):
    lmtp: bool
    offers_auth: bool
    checks_mail_auth: bool  # SPF, DKIM, DMARC... (smtp/inbound_checks.py): port 25 only

    async def on_connect(self, state: SessionState) -> r.Reply | None:
        """Before the greeting: a reply refuses the connection (554, RFC 5321 §3.1)."""
        ...
    async def on_helo(self, state: SessionState, domain: str) -> r.Reply | None: ...
    async def on_mail(self, state: SessionState, address: str, params: object) -> r.Reply | None: ...
    async def on_rcpt(self, state: SessionState, address: str, params: object) -> tuple[r.Reply | None, Recipient | None]: ...
    async def on_message(self, state: SessionState, envelope: SmtpEnvelope) -> list[r.Reply]: ...


async def outbound_signature(services: Services, raw: bytes, sender: str) -> bytes:
    """`raw` DKIM-signed for its way out when its author domain is ours (queue/signing.py);
    unchanged when `[outbound] smarthost_dkim_sign` is off for a relay that signs itself, or
    when signing fails (the message still goes, unsigned, and the log says why)."""
    outbound = services.config.outbound
    if outbound.smarthost is not None and not outbound.smarthost_dkim_sign:
        return raw
    try:
        return await services.signer.sign(raw, sender)
    except Exception:
        log.exception("DKIM signing failed; the message goes unsigned")
        return raw


def received_info(state: SessionState, envelope: SmtpEnvelope, protocol: str, *, show_user: bool = False) -> ReceivedInfo:
    conn = state.conn
    return ReceivedInfo(
        helo=state.helo, peer_ip=conn.peer_ip, hostname=state.services.config.server.hostname,
        protocol=protocol, esmtp=state.esmtp, tls_version=conn.tls_version, tls_cipher=conn.tls_cipher,
        auth_user=state.account.address if (show_user and state.account) else None,
        authenticated=state.account is not None, queue_id=new_queue_id(),
        recipient=envelope.recipients[0].address if len(envelope.recipients) == 1 else None,
    )


def _over_quota(recipient: Recipient) -> bool:
    return any(a.quota and a.used >= a.quota for a in recipient.accounts)


def _resolved(envelope: SmtpEnvelope) -> dict[str, Resolution]:
    return {rc.address: rc.resolution for rc in envelope.recipients if rc.resolution is not None}


def _binary(envelope: SmtpEnvelope) -> bool:
    return getattr(envelope.params, "body", None) == "BINARYMIME"


def delivery_envelope(envelope: SmtpEnvelope, recipients: list[Recipient]) -> Envelope:
    """The envelope for `deliver_message`, with the RFC 3461 parameters forwards carry on."""
    return Envelope(
        envelope.sender, tuple(rc.address for rc in recipients),
        envid=getattr(envelope.params, "envid", None), ret=getattr(envelope.params, "ret", None),
        dsn={rc.address: DsnRequest(tuple(getattr(rc.params, "notify", ()) or ()), getattr(rc.params, "orcpt", None))
             for rc in recipients},
    )


def _unaccounted(report: DeliveryReport, recipients: list[str]) -> bool:
    lost = report.unaccounted(recipients)
    if lost:
        log.error("delivery accounted for no copy of %d recipient(s) (%s); answering 451",
                  len(lost), ", ".join(lost[:5]))
    return bool(lost)


def _report_reply(report: DeliveryReport, recipients: list[str], queue_id: str) -> r.Reply:
    """One reply for the whole message (SMTP): 250 only if every recipient is accepted.
    A partly failed delivery asks the client to retry: a duplicate is better than a loss."""
    if _unaccounted(report, recipients):
        return UNACCOUNTED
    refusals = [report.refused[rc] for rc in recipients if rc in report.refused]
    if refusals and len(refusals) == len(recipients):  # a filter refused the message (for all)
        return r.Reply(refusals[0].code, refusals[0].enhanced, refusals[0].text)
    if not all(report.accepted(rc) for rc in recipients):
        return DELIVERY_FAILED
    return r.Reply(250, "2.0.0", f"Ok: queued as {queue_id}")


def _blocked(state: SessionState, stage: str, entry: AccessEntry, code: int, what: str, *,
             sender: str | None = None, recipient: str | None = None) -> r.Reply:
    conn = state.conn
    logevents.blocked(conn.protocol, conn.peer_ip, conn.id, stage, f"{entry.kind} {entry.value}",
                      sender=sender, recipient=recipient)
    return r.Reply(code, "5.7.1", refusal_text(entry, what))


class InboundPolicy:
    lmtp = False
    offers_auth = False
    checks_mail_auth = True

    async def on_connect(self, state: SessionState) -> r.Reply | None:
        # One snapshot of the block and allow lists for the whole session (re-read per connection).
        state.access = access = await state.services.access_lists.current()
        entry = access.blocked_client(state.conn.peer_ip)
        if entry is not None:
            return _blocked(state, "connect", entry, 554, state.conn.peer_ip)
        return None

    async def on_helo(self, state: SessionState, domain: str) -> r.Reply | None:
        return None

    async def on_mail(self, state: SessionState, address: str, params: object) -> r.Reply | None:
        entry = state.access.blocked_sender(state.conn.peer_ip, address) if state.access else None
        if entry is not None:
            return _blocked(state, "mail", entry, 554, entry.value, sender=address)
        if state.relay:
            return state.services.relay_networks.start_message(state.conn.peer_ip)
        return None

    async def on_rcpt(self, state: SessionState, address: str, params: object) -> tuple[r.Reply | None, Recipient | None]:
        from postoffice.smtp.session import Recipient

        sender = state.envelope.sender if state.envelope else ""
        entry = state.access.blocked_recipient(state.conn.peer_ip, sender, address) if state.access else None
        if entry is not None:
            return _blocked(state, "rcpt", entry, 550, entry.value, sender=sender, recipient=address), None
        resolution = await state.services.directory.resolve_recipient(address)
        if not resolution.local_domain:
            if state.relay:
                return None, Recipient(address, params, (), local=False)  # queued for delivery out
            return RELAY_DENIED, None
        if resolution.problem:
            return alias_problem(resolution.problem), None
        if not resolution.exists:
            return UNKNOWN_USER, None
        recipient = Recipient(address, params, resolution.accounts, resolution=resolution)
        if _over_quota(recipient):
            return MAILBOX_FULL, None
        if state.services.config.greylist.enabled and (deferred := await _greylisted(state, address)):
            return deferred, None
        return None, recipient

    async def on_message(self, state: SessionState, envelope: SmtpEnvelope) -> list[r.Reply]:
        if state.relay:
            return await _send_on(state, envelope, bytes(envelope.data))
        info = received_info(state, envelope, "SMTP")
        data, special_use, recording, judged = bytes(envelope.data), None, None, None
        if state.checks is not None:
            judged = state.judgement = await state.checks.after_data(
                state.helo, envelope.sender, envelope.mail_checks, data)
            verdict = judged.verdict
            if verdict.action == "reject":
                await _record_dmarc(state, envelope, judged)
            if verdict.action in ("reject", "defer"):  # a deferred message is judged when it comes again
                return [r.Reply(verdict.code, verdict.enhanced, verdict.text)]
            # Written while the message is: the store's writer commits the two together or side by
            # side, instead of one after the other before the reply.
            recording = asyncio.ensure_future(_record_dmarc(state, envelope, judged))
            # RFC 8601 §5, RFC 7208 §9.1: above the Received field of this hop.
            data = judged.headers + received_header(info) + judged.message
            special_use = "\\Junk" if verdict.action == "junk" else None
        else:
            data = received_header(info) + data
        report = await deliver_message(
            state.services.store, state.services.directory,
            delivery_envelope(envelope, envelope.recipients), data,
            special_use=special_use,
            enforce_quota=False,  # checked at RCPT: refusing now would lose accepted mail
            binary=_binary(envelope), resolved=_resolved(envelope), srs=state.services.forwarding_srs,
            filters=state.services.filters, way="smtp", judgement=judged,
        )
        state.delivery = (report, info.queue_id)
        if recording is not None:
            await recording
        await read_incoming_reports(state.services, (rc.address for rc in envelope.recipients), data, report)
        return [_report_reply(report, [rc.address for rc in envelope.recipients], info.queue_id)]


async def _greylisted(state: SessionState, recipient: str) -> r.Reply | None:
    """filtering/greylist.py's answer for a valid local recipient; the sessions it never
    greylists are named here, where the session's state is known."""
    envelope = state.envelope
    sender = envelope.sender if envelope else ""
    skip = ("authenticated" if state.account is not None
            else "relay_networks" if state.relay
            else "trusted_networks" if state.checks is not None and state.checks.trusted_relay
            else "allow-listed" if state.access is not None and state.access.is_allowed(state.conn.peer_ip, sender)
            else None)
    spf = envelope.mail_checks.spf if envelope else None
    return await state.services.greylist.check_recipient(
        state.conn.peer_ip, sender, recipient, skip=skip, spf_pass=spf is not None and spf.result == "pass")


_DISPOSITIONS = {"reject": "reject", "junk": "quarantine"}


async def _record_dmarc(state: SessionState, envelope: SmtpEnvelope, judged: Judgement) -> None:
    """What an aggregate report needs about this message (RFC 7489 §7.2), for From domains that
    publish a DMARC policy; a failure to record it is logged and changes nothing else."""
    results = judged.results
    dmarc = results.dmarc
    if dmarc is None or dmarc.policy is None or not envelope.recipients:
        return
    evaluation = DmarcEvaluation.of(
        source_ip=judged.client_ip, mail_from=envelope.sender, recipient=envelope.recipients[0].address,
        dmarc=dmarc, spf=results.spf, dkim=results.dkim,
        disposition=_DISPOSITIONS.get(judged.verdict.action, "none"), reason=judged.verdict.override)
    try:
        await state.services.store.record_dmarc_evaluation(evaluation)
    except Exception:
        log.exception("recording the DMARC evaluation of a message from %s failed", judged.client_ip)


class SubmissionPolicy:
    lmtp = False
    offers_auth = True
    checks_mail_auth = False  # our own users' mail, authenticated

    async def on_connect(self, state: SessionState) -> r.Reply | None:
        return None  # our own users, judged by their login; the MX's block list is not theirs

    async def on_helo(self, state: SessionState, domain: str) -> r.Reply | None:
        return None

    async def on_mail(self, state: SessionState, address: str, params: object) -> r.Reply | None:
        if state.account is None:
            if state.relay:  # a device that cannot log in, sending as whoever it is set up to
                return state.services.relay_networks.start_message(state.conn.peer_ip)
            return AUTH_REQUIRED
        if address and not await state.services.directory.may_send_as(state.account, address):
            return SENDER_NOT_OWNED
        return None

    async def on_rcpt(self, state: SessionState, address: str, params: object) -> tuple[r.Reply | None, Recipient | None]:
        from postoffice.smtp.session import Recipient

        resolution = await state.services.directory.resolve_recipient(address)
        if not resolution.local_domain:
            return None, Recipient(address, params, (), local=False)  # queued for delivery out
        if resolution.problem:
            return alias_problem(resolution.problem), None
        if not resolution.exists:
            return UNKNOWN_USER, None
        return None, Recipient(address, params, resolution.accounts, resolution=resolution)

    async def on_message(self, state: SessionState, envelope: SmtpEnvelope) -> list[r.Reply]:
        services = state.services
        data = bytes(envelope.data)
        if state.account is None:  # MAIL required AUTH, or a relay_networks client
            assert state.relay
            return await _send_on(state, envelope, data)
        for address in from_addresses(data):
            if not await services.directory.may_send_as(state.account, address):
                return [FROM_NOT_OWNED]
        return await _send_on(state, envelope, data)


async def _send_on(state: SessionState, envelope: SmtpEnvelope, data: bytes) -> list[r.Reply]:
    """Mail from our own side (a logged-in user, or a relay_networks device): local recipients
    delivered at once, remote ones queued DKIM-signed, in one transaction."""
    services = state.services
    account = state.account
    data = add_missing_ids(data, services.config.server.hostname)
    info = received_info(state, envelope, "SMTP", show_user=services.config.smtp.received_shows_user)
    raw = received_header(info) + data
    remote = [rc for rc in envelope.recipients if not rc.local]
    outbound = None
    if remote:
        mail_params = envelope.params
        outbound = OutboundMessage(
            sender=envelope.sender,
            recipients=tuple(
                QueuedRecipient(rc.address, tuple(getattr(rc.params, "notify", ()) or ()), getattr(rc.params, "orcpt", None))
                for rc in remote
            ),
            envid=getattr(mail_params, "envid", None), ret=getattr(mail_params, "ret", None),
            auth_account=account.id if account is not None else None,
            requiretls=getattr(mail_params, "requiretls", False),
        )
        # Signed once, as it will be sent (the queued copy; local copies carry it too, as
        # at every large provider): retries and every destination send these bytes.
        raw = await outbound_signature(services, raw, envelope.sender)
    report = await deliver_message(
        services.store, services.directory,
        delivery_envelope(envelope, [rc for rc in envelope.recipients if rc.local]), raw,
        outbound=outbound, enforce_quota=False, binary=_binary(envelope), resolved=_resolved(envelope),
        srs=services.forwarding_srs, filters=services.filters, way="submission",
    )
    state.delivery = (report, info.queue_id)
    recipients = [rc.address for rc in envelope.recipients]
    reply = _report_reply(report, recipients, info.queue_id)
    if account is None and reply.code == 250:
        conn = state.conn
        logevents.relayed(conn.protocol, conn.peer_ip, conn.id, sender=envelope.sender, recipients=recipients,
                          queue_id=info.queue_id, queue_row=report.queue_id)
    return [reply]


class LmtpPolicy(InboundPolicy):
    """Local delivery we were asked to make: no block list (the front MTA applied its own)."""

    lmtp = True
    checks_mail_auth = False  # the MTA in front of us judged the message

    async def on_connect(self, state: SessionState) -> r.Reply | None:
        return None  # state.access stays None: MAIL and RCPT check nothing either

    async def on_rcpt(self, state: SessionState, address: str, params: object) -> tuple[r.Reply | None, Recipient | None]:
        from postoffice.smtp.session import Recipient

        resolution = await state.services.directory.resolve_recipient(address)
        if resolution.problem:
            return alias_problem(resolution.problem), None
        if not resolution.exists:  # LMTP hands us only what is ours: anything else is unknown
            return UNKNOWN_USER, None
        return None, Recipient(address, params, resolution.accounts, resolution=resolution)

    async def on_message(self, state: SessionState, envelope: SmtpEnvelope) -> list[r.Reply]:
        """RFC 2033 §4.2: one reply per accepted recipient, in RCPT order."""
        info = received_info(state, envelope, "LMTP")
        raw = received_header(info) + bytes(envelope.data)
        report = await deliver_message(
            state.services.store, state.services.directory,
            delivery_envelope(envelope, envelope.recipients), raw,
            binary=_binary(envelope), resolved=_resolved(envelope), srs=state.services.forwarding_srs,
            filters=state.services.filters, way="lmtp", per_recipient=True,
        )
        state.delivery = (report, info.queue_id)
        await read_incoming_reports(state.services, (rc.address for rc in envelope.recipients), raw, report)
        replies = []
        for rc in envelope.recipients:
            refusal = report.refused.get(rc.address)
            if refusal is not None:
                replies.append(r.Reply(refusal.code, refusal.enhanced, refusal.text))
            elif _unaccounted(report, [rc.address]):
                replies.append(UNACCOUNTED)
            elif rc.address in report.over_quota:
                replies.append(MAILBOX_FULL)
            elif rc.address in report.failed:
                replies.append(DELIVERY_FAILED)
            elif report.accepted(rc.address):
                done = "delivered" if report.delivered.get(rc.address) else "queued for forwarding"
                replies.append(r.Reply(250, "2.1.5", f"<{rc.address}> {done}"))
            else:
                replies.append(UNKNOWN_USER)
        return replies
