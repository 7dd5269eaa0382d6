"""The SMTP/LMTP connection driver: socket bytes <-> the sans-IO core, policy decides.

Implementation notes (invariants):
- Replies to pipelined commands are collected and written only when the client's input is
  drained (RFC 2920 §3.1), so a client that pipelines pays one round trip per group.
- 250 after DATA/BDAT LAST is sent only after `policy.on_message` returned, which returns only
  after the message is durable (delivery.deliver_message).
- After 220 to STARTTLS the core has thrown away anything the client pipelined behind it
  (CVE-2011-0411); the TLS handshake reads from the socket, never from our buffer.
- Errors are counted; past `max_errors` the connection ends with 421 (RFC 5321 §4.3.2).
- Idle timeouts: `command_timeout` between commands, `data_timeout` while reading message data
  (RFC 5321 §4.5.3.2); on expiry 421 4.4.2 and close. Since every byte restarts those, fixed
  deadlines bound a client that trickles (net/deadlines.py): a command line within `[limits]
  line_timeout` of its first byte, a transaction (MAIL FROM to the end of the data) within
  `transaction_timeout`, and on the submission ports AUTH within `[limits] login_timeout` of
  connecting; also 421 4.4.2.
- A failed AUTH is answered only after the throttle's delay for that IP and account.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from postoffice import logevents
from postoffice.access_lists import AccessSnapshot
from postoffice.auth.limits import LoginThrottle
from postoffice.auth.login import LoginRefused, check_login
from postoffice.auth.sasl import (
    AuthorizationRefused,
    SaslCancelled,
    SaslChallenge,
    SaslCredentials,
    SaslError,
    SaslExchange,
    UnsupportedMechanism,
    decode_initial_response,
    decode_response,
    encode_challenge,
    mechanisms_offered,
    start_sasl,
)
from postoffice.delivery import DeliveryReport
from postoffice.directory import Resolution
from postoffice.net.deadlines import Expiry, InputTimeout
from postoffice.net.listener import Connection
from postoffice.net.tls import ReloadingServerContext
from postoffice.services import Services
from postoffice.smtp.headers import MAX_RECEIVED, received_count
from postoffice.smtp.inbound_checks import InboundChecks, Judgement, MailChecks
from postoffice.smtp.policy import SmtpPolicy
from postoffice.smtp.proto import events as ev
from postoffice.smtp.proto import replies as r
from postoffice.smtp.proto.server import SmtpServerConnection
from postoffice.store.interface import AccountRecord, StorageFull

log = logging.getLogger(__name__)

READ_SIZE = 65536
TIMEOUT_REPLY = {  # RFC 5321 §4.5.3.2 and §3.8: 421, then close
    Expiry.IDLE: r.TIMEOUT,
    Expiry.LINE: r.Reply(421, "4.4.2", "Command line not completed in time, closing connection"),
    Expiry.LOGIN: r.Reply(421, "4.4.2", "Not authenticated in time, closing connection"),
    Expiry.TRANSACTION: r.Reply(421, "4.4.2", "Message not completed in time, closing connection"),
}


# Events that are not a command of their own, for the session's command count.
_NOT_COMMANDS = (ev.DataChunk, ev.DataComplete, ev.AuthResponse)


def _outcome(attempt: dict[str, object], report: DeliveryReport | None) -> dict[str, object]:
    """One RCPT for the transaction line: its RCPT reply, or what delivery did with it."""
    address = attempt["address"]
    if report is None or attempt["status"] != "accepted" or not isinstance(address, str):
        return attempt
    if copies := report.delivered.get(address):
        return {"address": address, "status": "delivered", "uid": [uid for _, uid in copies]}
    if report.queued.get(address):
        return {"address": address, "status": "queued", "queue_row": report.queue_id}
    if address in report.over_quota:
        return {"address": address, "status": "over quota"}
    if address in report.failed:
        return {"address": address, "status": "failed"}
    return {"address": address, "status": "unknown" if address in report.unknown else "not delivered"}


@dataclass
class Recipient:
    address: str
    params: object  # smtp.proto RcptParams
    accounts: tuple[AccountRecord, ...] = ()
    local: bool = True
    resolution: Resolution | None = None  # from RCPT time, reused at delivery


@dataclass
class Envelope:
    """One mail transaction (RFC 5321 §3.3), reset by RSET, HELO/EHLO and after each message."""

    sender: str
    params: object  # smtp.proto MailParams
    recipients: list[Recipient] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    # Every RCPT with its reply, refused ones too, for the transaction's log line.
    attempts: list[dict[str, object]] = field(default_factory=list)
    mail_checks: MailChecks = field(default_factory=MailChecks)  # SPF at MAIL FROM (port 25)


@dataclass
class SessionState:
    """One connection: what policies may look at."""

    conn: Connection
    services: Services
    helo: str = ""
    esmtp: bool = False
    account: AccountRecord | None = None
    envelope: Envelope | None = None
    errors: int = 0
    # Set by the policy's on_message: what delivery did and the queue id the client was told.
    delivery: tuple[DeliveryReport, str] | None = None
    # The block and allow lists as on_connect found them (port 25 only; None elsewhere).
    access: AccessSnapshot | None = None
    # Port 25 only: the connection's mail authentication checks, and the last message's results.
    checks: InboundChecks | None = None
    # The client is in `[smtp] relay_networks` (smtp/relay.py): it may send anywhere unauthenticated.
    relay: bool = False
    judgement: Judgement | None = None

    @property
    def tls(self) -> bool:
        return self.conn.tls


class SmtpSession:
    def __init__(
        self,
        conn: Connection,
        services: Services,
        policy: SmtpPolicy,
        *,
        tls: ReloadingServerContext | None,
        throttle: LoginThrottle,
    ) -> None:
        self.conn = conn
        self.services = services
        self.policy = policy
        self.tls = tls
        self.throttle = throttle
        config = services.config
        self.hostname = config.server.hostname
        self.state = SessionState(conn, services)
        self.state.relay = not policy.lmtp and services.relay_networks.covers(conn.peer_ip)
        self.core = SmtpServerConnection(
            max_line=max(config.limits.max_line_length, 1000),
            max_message_size=config.limits.max_message_size,
            lmtp=policy.lmtp,
        )
        self._out: list[bytes] = []
        self._closing = False
        self._sasl: SaslExchange | None = None
        self._sasl_mechanism = ""
        self._sasl_user: str | None = None
        self._refused: r.Reply | None = None  # the 554 that replaced the greeting

    # --- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._converse()
        finally:
            self._abandon_transaction()  # a client gone (or timed out) mid-transaction

    async def _converse(self) -> None:
        refusal = await self.policy.on_connect(self.state)
        # A relay_networks device is our own, like a logged-in user: its mail is not judged.
        if refusal is None and self.policy.checks_mail_auth and not self.state.relay:
            access = self.state.access
            checks = self.state.checks = InboundChecks(self.services, self.conn.peer_ip)
            refusal = await checks.at_connect(allowed=access is not None and access.is_allowed(self.conn.peer_ip))
            if refusal is not None:
                logevents.blocked(self.conn.protocol, self.conn.peer_ip, self.conn.id, "connect",
                                  f"dnsbl {checks.dnsbl.removeprefix('listed:')}")
        if refusal is not None:
            # RFC 5321 §3.1: 554 instead of 220, then every command but QUIT gets 503.
            self._refused = refusal
            self._send_raw(refusal.to_bytes())
        else:
            self._send_raw(self.core.greeting(self.hostname))
        await self._flush()
        smtp = self.services.config.smtp
        while not self._closing:
            idle = smtp.data_timeout if self.core.in_data else smtp.command_timeout
            try:
                data = await self.conn.read_input(READ_SIZE, idle=idle, open_line=self.core.open_line)
            except InputTimeout as timeout:
                log.debug("%s: %s timeout", self.conn.id, timeout.expiry.value)
                self._reply(TIMEOUT_REPLY[timeout.expiry])
                await self._flush()
                return
            except (ConnectionError, OSError):
                return
            self.core.receive_data(data)
            if not data:
                self._closing = True
            await self._process_events()
            await self._flush()

    async def _process_events(self) -> None:
        while not self._closing:
            event = self.core.next_event()
            if event is ev.NEED_DATA:
                return
            await self._handle(event)
            if self._closing:
                return
            if isinstance(event, ev.StartTlsRequested) and self.conn.tls:
                return  # the handshake changed the transport: read afresh

    def _reply(self, reply: r.Reply) -> None:
        self._out.append(self.core.send(reply))

    def _send_raw(self, data: bytes) -> None:
        self._out.append(data)

    async def _flush(self) -> None:
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        self.conn.bytes_out += len(data)
        try:
            self.conn.writer.write(data)
            await self.conn.writer.drain()
        except (ConnectionError, OSError):
            self._closing = True

    # --- events ---------------------------------------------------------------------------

    async def _handle(self, event: object) -> None:
        state = self.state
        if not isinstance(event, _NOT_COMMANDS):
            self.conn.commands += 1
        if self._refused is not None and not isinstance(event, ev.Quit | ev.DataChunk):
            event = ev.CommandError(r.Reply(503, "5.5.1", "Bad sequence of commands: " + " ".join(self._refused.lines)))
        match event:
            case ev.Ehlo(domain=domain, extended=extended):
                self._abandon_transaction()
                state.helo, state.esmtp, state.envelope = domain, extended, None
                self.conn.deadlines.end(Expiry.TRANSACTION)
                reply = await self.policy.on_helo(state, domain)
                if reply is not None:
                    self._reply(reply)
                elif extended:
                    self._reply(self.core.ehlo_reply(self.hostname, self._extensions()))
                else:
                    self._reply(r.Reply(250, None, self.hostname))
            case ev.MailFrom(address=address, params=params):
                reply = await self.policy.on_mail(state, address, params)
                if reply is None:
                    state.envelope = Envelope(address, params)
                    self.conn.deadlines.start(Expiry.TRANSACTION, self.services.config.smtp.transaction_timeout)
                    if state.checks is not None:
                        state.envelope.mail_checks = await state.checks.at_mail(state.helo, address)
                    reply = r.SENDER_OK
                self._reply(reply)
            case ev.RcptTo(address=address, params=params):
                envelope = state.envelope
                assert envelope is not None  # the core only emits RcptTo inside a transaction
                if len(envelope.recipients) >= self.services.config.limits.max_recipients:
                    envelope.attempts.append({"address": address, "status": "refused",
                                              "reply": r.TOO_MANY_RECIPIENTS.code})
                    self._reply(r.TOO_MANY_RECIPIENTS)
                    return
                reply, recipient = await self.policy.on_rcpt(state, address, params)
                if recipient is not None:
                    envelope.recipients.append(recipient)
                reply = reply or r.RCPT_OK
                envelope.attempts.append({"address": address,
                                          "status": "accepted" if recipient is not None else "refused",
                                          "reply": reply.code})
                self._reply(reply)
            case ev.DataRequested():
                self._reply(r.START_DATA)
            case ev.DataChunk(data=chunk):
                if state.envelope is not None:
                    state.envelope.data += chunk
            case ev.DataComplete(too_large=too_large) | ev.BdatComplete(last=True, too_large=too_large):
                await self._message_complete(too_large)
            case ev.BdatComplete(size=size, too_large=too_large):
                self._reply(r.MESSAGE_TOO_BIG if too_large else r.Reply(250, "2.0.0", f"{size} octets received"))
            case ev.StartTlsRequested():
                await self._start_tls()
            case ev.AuthRequested(mechanism=mechanism, initial_response=initial):
                await self._auth_start(mechanism, initial)
            case ev.AuthResponse(data=data):
                await self._auth_step(data)
            case ev.Rset():
                self._abandon_transaction()
                state.envelope = None
                self.conn.deadlines.end(Expiry.TRANSACTION)
                self._reply(r.OK)
            case ev.Noop():
                self._reply(r.OK)
            case ev.Vrfy() | ev.Expn():
                self._reply(r.VRFY_CANNOT)  # never reveals users (RFC 5321 §3.5.3, §7.3)
            case ev.Help():
                self._reply(r.HELP)
            case ev.Quit():
                self._abandon_transaction()
                self._reply(r.CLOSING)
                self._closing = True
            case ev.CommandError(reply=reply, fatal=fatal):
                state.errors += 1
                self._reply(reply)
                if fatal:
                    self._closing = True
                elif state.errors >= self.services.config.smtp.max_errors:
                    self._reply(r.TOO_MANY_ERRORS)
                    self._closing = True
            case _:
                log.warning("%s: unexpected SMTP event %r", self.conn.id, event)

    def _extensions(self) -> list[str]:
        config = self.services.config
        extensions = [
            "PIPELINING", f"SIZE {config.limits.max_message_size}", "8BITMIME", "SMTPUTF8",
            "ENHANCEDSTATUSCODES", "CHUNKING", "BINARYMIME", "DSN",
        ]
        if self.tls is not None and not self.conn.tls and not self.policy.lmtp:
            extensions.append("STARTTLS")
        if self.conn.tls and not self.policy.lmtp:
            extensions.append("REQUIRETLS")  # RFC 8689 §4: offered only under TLS
        if self.policy.offers_auth and self.state.account is None:
            mechanisms = mechanisms_offered(
                self.conn.tls, self.conn.is_loopback, config.auth.plaintext_on_loopback
            )
            if mechanisms:
                extensions.append("AUTH " + " ".join(mechanisms))
        return extensions

    async def _message_complete(self, too_large: bool) -> None:
        envelope = self.state.envelope
        self.state.envelope = None
        self.conn.deadlines.end(Expiry.TRANSACTION)
        if envelope is None:
            self._reply(r.BAD_SEQUENCE)
            return
        if too_large:
            self._reply(r.MESSAGE_TOO_BIG)
            self._log_transaction(envelope, [r.MESSAGE_TOO_BIG])
            return
        if received_count(envelope.data) > MAX_RECEIVED:
            log.info("%s: message from <%s> refused: more than %d Received: fields (a mail loop)",
                     self.conn.id, envelope.sender, MAX_RECEIVED)
            replies = [r.TOO_MANY_HOPS] * (len(envelope.recipients) if self.policy.lmtp else 1)
        else:
            self.state.delivery = None
            replies = await self._deliver(envelope)
        for reply in replies:
            self._reply(reply)
        self._log_transaction(envelope, replies)

    def _abandon_transaction(self) -> None:
        """The transaction ends without a message (RSET, EHLO, QUIT, the client gone)."""
        envelope = self.state.envelope
        if envelope is not None:
            self.state.envelope = None
            self._log_transaction(envelope, None)

    def _log_transaction(self, envelope: Envelope, replies: list[r.Reply] | None) -> None:
        """One line per transaction: who, from, each RCPT with what became of it, the result."""
        state, conn = self.state, self.conn
        report, queue_id = state.delivery or (None, None)
        judgement, state.judgement = state.judgement, None
        state.delivery = None
        if replies is None:
            result = "abandoned"
        else:
            result = " ".join(str(reply.code) for reply in replies)
            if not any(reply.code == 250 for reply in replies):
                queue_id = None  # the client was told no queue id
        logevents.smtp_transaction(
            conn.protocol, conn.peer_ip, conn.id, helo=state.helo, tls=conn.tls_version,
            user=state.account.address if state.account else None, sender=envelope.sender,
            recipients=[_outcome(attempt, report) for attempt in envelope.attempts],
            size=len(envelope.data) if replies is not None else None, result=result,
            queue_id=queue_id, reverse_name=self._reverse_name(),
            auth=self._auth_fields(judgement) if state.checks is not None else None)

    def _reverse_name(self) -> str | None:
        iprev = self.state.checks.iprev if self.state.checks is not None else None
        return iprev.name if iprev is not None and iprev.result == "pass" and iprev.name else None

    def _auth_fields(self, judgement: Judgement | None) -> dict[str, str]:
        """The mail authentication results of port 25 for the log line; "none" before a message."""
        checks = self.state.checks
        assert checks is not None
        fields = judgement.log_fields() if judgement is not None else {}
        fields["dnsbl"] = checks.dnsbl
        return fields

    async def _deliver(self, envelope: Envelope) -> list[r.Reply]:
        """The policy's replies, or a temporary error for every reply it owed when the message
        could not be stored: the client keeps the message and tries again (never a dropped
        connection, never a 250 for something not on disk)."""
        try:
            return await self.policy.on_message(self.state, envelope)
        except StorageFull as exc:
            log.warning("%s: message from <%s> to %d recipient(s) refused: %s",
                        self.conn.id, envelope.sender, len(envelope.recipients), exc)
            failure = r.INSUFFICIENT_STORAGE
        except Exception:
            log.exception("%s: storing a message from <%s> failed", self.conn.id, envelope.sender)
            failure = r.LOCAL_ERROR
        # RFC 2033 §4.2: after DATA, LMTP answers once per accepted recipient.
        return [failure] * (len(envelope.recipients) if self.policy.lmtp else 1)

    async def _start_tls(self) -> None:
        if self.tls is None or self.conn.tls or self.policy.lmtp:
            self._reply(r.Reply(502, "5.5.1", "STARTTLS not available"))
            return
        self._reply(r.READY_FOR_TLS)  # the core drops whatever was pipelined after STARTTLS
        await self._flush()
        try:
            await self.conn.start_tls(self.tls.current())
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            # A client that simply went away is routine; a failed negotiation may interest the admin.
            log.log(logging.DEBUG if isinstance(exc, ConnectionError) else logging.INFO,
                    "%s: TLS handshake failed: %s", self.conn.id, exc)
            self._closing = True
            return
        self.core.tls_started()
        # RFC 3207 §4.2: everything learnt before TLS is forgotten, authentication included.
        self.state.helo, self.state.esmtp, self.state.envelope, self.state.account = "", False, None, None

    # --- AUTH (RFC 4954) --------------------------------------------------------------------

    async def _auth_start(self, mechanism: str, initial: bytes | None) -> None:
        state = self.state
        config = self.services.config
        if not self.policy.offers_auth:
            self._reply(r.Reply(502, "5.5.1", "AUTH is only offered on the submission ports"))
            return
        if state.account is not None:
            self._reply(r.Reply(503, "5.5.1", "Already authenticated"))
            return
        offered = mechanisms_offered(self.conn.tls, self.conn.is_loopback, config.auth.plaintext_on_loopback)
        if not offered:
            self._reply(r.ENCRYPTION_REQUIRED)
            return
        try:
            decoded = decode_initial_response(initial) if initial is not None else None
            self._sasl_mechanism = mechanism.upper()
            self._sasl = start_sasl(mechanism, decoded, offered=offered)
            outcome = self._sasl.begin()
        except UnsupportedMechanism:
            self._reply(r.Reply(504, "5.5.4", "Unrecognized authentication type"))
            return
        except SaslError as exc:
            await self._auth_outcome(exc)
            return
        await self._auth_outcome(outcome)

    async def _auth_step(self, line: bytes) -> None:
        exchange = self._sasl
        if exchange is None:
            self._reply(r.BAD_SEQUENCE)
            return
        try:
            outcome: SaslChallenge | SaslCredentials | SaslError = exchange.step(decode_response(line))
        except SaslError as exc:
            outcome = exc
        await self._auth_outcome(outcome)

    async def _auth_outcome(self, outcome: SaslChallenge | SaslCredentials | SaslError) -> None:
        if isinstance(outcome, SaslChallenge):
            self._reply(r.Reply(334, None, encode_challenge(outcome.data).decode("ascii")))
            return
        self._sasl = None
        if isinstance(outcome, SaslCancelled):
            self._reply(r.Reply(501, "5.0.0", "Authentication cancelled"))
            return
        if isinstance(outcome, AuthorizationRefused):
            await self._auth_failed(None)
            return
        if isinstance(outcome, SaslError):
            self._reply(r.Reply(501, "5.5.2", "Cannot decode the response"))
            return
        account = await check_login(self.services.directory, self.throttle, self.conn.peer_ip,
                                    outcome.authcid, outcome.password, protocol=self.conn.protocol,
                                    mechanism=self._sasl_mechanism, conn=self.conn.id)
        if account is LoginRefused.TRY_LATER:
            self._reply(r.Reply(454, "4.7.0", "Temporary authentication failure, try again"))  # RFC 4954 §6
            return
        if account is LoginRefused.FAILED:
            self._reply(r.AUTH_FAILED)  # check_login waited the throttle's delay already
            return
        if (too_many := self.conn.log_in("smtp", account.address)) is not None:
            logevents.login(self.conn.protocol, self.conn.peer_ip, outcome.authcid, self._sasl_mechanism,
                            "refused", self.conn.id, too_many)
            self._reply(r.Reply(454, "4.7.0", too_many))  # RFC 4954 §6: temporary failure
            return
        self.state.account = account
        self.conn.user = account.address
        self.conn.deadlines.end(Expiry.LOGIN)
        self._reply(r.AUTH_OK)

    async def _auth_failed(self, user: str | None) -> None:
        """RFC 4954 535; answered only after the throttle's delay for this IP and account."""
        self.throttle.record_failure(self.conn.peer_ip, user)
        logevents.login(self.conn.protocol, self.conn.peer_ip, user or "", self._sasl_mechanism,
                        "failed", self.conn.id, "authorization identity refused")
        self._reply(r.AUTH_FAILED)
        await self.throttle.wait_before_reply(self.conn.peer_ip, user)
        await self._flush()

