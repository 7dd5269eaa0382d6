"""One outbound SMTP connection: the async driver around the sans-IO client core.

    session = SmtpSession("mx1.example.org", "192.0.2.25", helo_name="mail.example.test")
    outcomes = await session.deliver(message, raw, ("bob@example.org",))   # Transport.deliver
    outcomes = await session.deliver(other, raw2, ("carol@example.org",))  # same connection, RSET first
                                                                            # (a new one if that fails)
    await session.close()                                                   # QUIT
    session.tls                                                             # the TlsOutcome seen

The protocol lives in ``smtp.proto.client``; this module moves bytes, keeps time and handles
TLS. Routing (which host, which address, which policy) is the caller's.

Implementation notes:

- Never raises for the peer's trouble: a refused connection, a timeout, garbage, EOF or a TLS
  failure makes every recipient of the message ``deferred`` with a plain reason naming the host
  and address, and the session is then broken (the next ``deliver`` connects again).
- Timeouts are RFC 5321 §4.5.3.2's (banner 5 min, MAIL 5, RCPT 5, DATA 2, each data block 3,
  final dot 10), all in :class:`Timeouts` so tests shrink them. A deadline covers a whole
  reply, so a peer trickling one byte a second cannot stretch it.
- Memory per session is bounded by the core's reply limits (64 KiB) plus one read (64 KiB) plus
  one piece of content; a 10 MB banner is an error after 64 KiB.
- ``TlsPolicy.implicit`` (a smarthost on port 465): TLS from the first byte, never plaintext.
- STARTTLS is used whenever offered (TLS 1.2 or later). Opportunistic mode verifies nothing but
  records the version and cipher; if STARTTLS is refused or the handshake fails, the session
  connects again and goes on in plaintext. With ``TlsPolicy.require`` (MTA-STS enforce, a
  smarthost, DANE) there is no plaintext fallback: no STARTTLS, a failed handshake or a
  certificate that does not validate for the host name means deferred. ``verify`` without
  ``require`` (MTA-STS testing) falls back to unverified TLS, then plaintext, and records why.
  With ``TlsPolicy.tlsa`` (DANE, queue/dane.py) the certificate is checked against those
  records instead of the WebPKI.
- 2xx per recipient is delivered, 4xx deferred, 5xx failed (RFC 5321 §4.2.1). A message this
  peer cannot take (8-bit without 8BITMIME, UTF-8 without SMTPUTF8, over its SIZE) fails at
  once with the reason: 8-bit is never converted to 7-bit here because the message may be
  DKIM-signed already.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

from postoffice.mailauth.dns_types import TlsaRecord
from postoffice.message.lines import to_crlf
from postoffice.net.streams import close_stream
from postoffice.queue.dane import dane_verdict
from postoffice.queue.outcomes import OutcomeKind, RecipientOutcome, SmtpReply, TlsOutcome
from postoffice.smtp.proto.client import (
    AuthDone,
    ClientEvent,
    Closed,
    ContentWanted,
    EhloDone,
    Greeting,
    OutgoingMessage,
    OutgoingRecipient,
    ProtocolError,
    Replied,
    SmtpClientConnection,
    StartTlsReply,
    TransactionDone,
    needs_smtputf8,
)
from postoffice.smtp.proto.events import NEED_DATA
from postoffice.smtp.proto.replies import Reply
from postoffice.store.interface import QueuedMessage

__all__ = ["REQUIRETLS_STATUS", "AccessTokens", "Credentials", "SmtpSession", "Timeouts", "TlsPolicy",
           "TokenUnavailable", "smtp_reply"]

_READ_SIZE = 65536
# A kept connection idle longer than this is probed with RSET before the next MAIL (the peer
# may have closed it meanwhile); straight after a transaction, MAIL follows at once (RFC 5321
# §4.1.1.4: the end of the data ended the transaction), saving a round trip per message.
RSET_AFTER_IDLE = 2.0
REQUIRETLS_STATUS = "5.7.30"  # RFC 8689 §5: REQUIRETLS support required
_E = TypeVar("_E", bound=ClientEvent)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait, per RFC 5321 §4.5.3.2 unless noted."""

    connect: float = 30.0  # not in the RFC; a host that does not answer SYN in 30 s is down
    banner: float = 300.0  # §4.5.3.2.1 initial 220
    mail: float = 300.0  # §4.5.3.2.2
    rcpt: float = 300.0  # §4.5.3.2.3
    data_init: float = 120.0  # §4.5.3.2.4 DATA's 354
    data_block: float = 180.0  # §4.5.3.2.5 each write of content
    final_dot: float = 600.0  # §4.5.3.2.6
    command: float = 300.0  # EHLO, STARTTLS, AUTH, RSET, BDAT chunks: as MAIL
    tls_handshake: float = 60.0
    quit: float = 10.0  # the goodbye need not be waited for long

    @classmethod
    def scaled(cls, reply: float = 300.0, connect: float = 30.0) -> Timeouts:
        """`[outbound] reply_timeout` and `connect_timeout`: every reply timeout in the RFC's
        proportions to its 5 minutes (DATA's 354 0.4x, a data block 0.6x, the final dot 2x);
        the TLS handshake as long as a reply, at most its usual minute."""
        f = reply / 300.0
        return cls(connect=connect, banner=reply, mail=reply, rcpt=reply, data_init=120.0 * f,
                   data_block=180.0 * f, final_dot=600.0 * f, command=reply,
                   tls_handshake=min(60.0, reply), quit=min(10.0, reply))


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    """How to protect the session. ``require``: never in plaintext. ``verify``: the certificate
    must validate for the host name (with ``context``, or the system's CAs when None)."""

    require: bool = False
    verify: bool = False
    context: ssl.SSLContext | None = None
    policy: Literal["none", "opportunistic", "mta-sts", "dane", "smarthost"] = "opportunistic"
    attempt: bool = True  # False: no STARTTLS at all (policy "none")
    tlsa: tuple[TlsaRecord, ...] = ()  # DANE: the certificate must match one of these
    note: str = ""  # recorded in the TlsOutcome's failure when nothing else went wrong
    implicit: bool = False  # TLS from the first byte (port 465, RFC 8314), never plaintext


class TokenUnavailable(Exception):
    """An `AccessTokens` source could not give a token; the message says why in plain words."""


class AccessTokens(Protocol):
    """OAuth access tokens for XOAUTH2 (queue/smarthost.py has the command and file sources)."""

    async def get(self, *, fresh: bool = False) -> str:
        """The current token; ``fresh``: the last one was refused, get a new one. Raises
        `TokenUnavailable` when there is none."""
        ...


@dataclass(frozen=True, slots=True)
class Credentials:
    """For a smarthost: AUTH PLAIN when offered, else LOGIN (RFC 4954); with ``tokens``, XOAUTH2
    with an OAuth access token instead of the password, a fresh token once if the first is
    refused. Only over TLS unless ``allow_plaintext`` (a relay on loopback)."""

    user: str
    password: str = field(default="", repr=False)  # never in a log line or a traceback
    allow_plaintext: bool = False
    tokens: AccessTokens | None = field(default=None, repr=False)


class _StaleConnection(Exception):
    """A reused connection turned out closed (or closing) before it took any of the message."""


class _SessionFailed(Exception):
    """The connection is unusable; ``reason`` names the host. ``reply`` when the peer said why."""

    def __init__(self, reason: str, reply: Reply | None = None, kind: OutcomeKind = "deferred") -> None:
        super().__init__(reason)
        self.reason = reason
        self.reply = reply
        self.kind: OutcomeKind = kind


def smtp_reply(reply: Reply) -> SmtpReply:
    """The queue's record of a peer's reply: code, enhanced code, the lines joined by spaces."""
    return SmtpReply(reply.code, reply.enhanced or "", " ".join(line for line in reply.lines if line))


class SmtpSession:
    """An SMTP client session to one host and address; reusable for several messages."""

    def __init__(
        self,
        host: str,
        address: str,
        port: int = 25,
        *,
        helo_name: str,
        tls: TlsPolicy | None = None,
        credentials: Credentials | None = None,
        source_ipv4: str | None = None,
        source_ipv6: str | None = None,
        timeouts: Timeouts | None = None,
        chunk_size: int = 1 << 20,
    ) -> None:
        self.host = host
        self.address = address
        self.port = port
        self.helo_name = helo_name
        self.tls_policy = tls or TlsPolicy()
        self.credentials = credentials
        self.source_ipv4 = source_ipv4
        self.source_ipv6 = source_ipv6
        self.timeouts = timeouts or Timeouts()
        self.chunk_size = chunk_size
        self.tls: TlsOutcome | None = None  # what the last connection negotiated
        self._conn: SmtpClientConnection | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._used = False  # a transaction ran on this connection
        self._last_done = 0.0  # time.monotonic() when the last transaction ended
        self._content_sent = False  # the running transaction has sent (some of) the message

    @property
    def name(self) -> str:
        """How reasons name the peer: ``mx1.example.org [192.0.2.25]:25``."""
        return f"{self.host} [{self.address}]:{self.port}"

    # -- Transport ------------------------------------------------------------------------------

    async def deliver(self, message: QueuedMessage, raw: bytes,
                      recipients: tuple[str, ...]) -> tuple[RecipientOutcome, ...]:
        """Send ``raw`` to ``recipients``; one outcome each, never an exception for the peer."""
        try:
            reused = self._conn is not None and self._used
            if reused and (self._connection().reset_needed
                           or time.monotonic() - self._last_done > RSET_AFTER_IDLE):
                reused = False
                try:
                    await self._rset()
                except (_SessionFailed, OSError, EOFError):
                    await self._abort()  # the peer closed an idle connection: a new one
            if self._conn is None:
                await self._open()
            if reused:  # straight after a finished transaction: MAIL needs no RSET first
                try:
                    return await self._transaction(message, raw, recipients, stale_check=True)
                except _StaleConnection:
                    await self._abort()  # closed (or closing) meanwhile, before any content
                    await self._open()
            return await self._transaction(message, raw, recipients)
        except _SessionFailed as failure:
            await self._abort()
            return self._all(recipients, failure.kind, failure.reply, failure.reason)
        except (OSError, EOFError) as error:  # ssl.SSLError is an OSError
            waiting = self._conn.waiting_for if self._conn else None
            await self._abort()
            return self._all(recipients, "deferred", None,
                             f"connection to {self.name} failed: {_describe(error)}{_while(waiting)}")

    async def close(self) -> None:
        """QUIT and close; never raises."""
        conn = self._conn
        if conn is not None and not conn.finished:
            with contextlib.suppress(Exception):
                conn.quit()
                async with asyncio.timeout(self.timeouts.quit):
                    await self._flush()
                    await self._expect(Replied)
        await self._abort()

    # -- connection set-up --------------------------------------------------------------------------

    async def _open(self) -> None:
        """Connect, banner, EHLO, STARTTLS and EHLO again, AUTH; plaintext again once if
        opportunistic TLS failed."""
        policy = self.tls_policy
        self.tls = None
        try:
            await self._connect_and_greet(starttls=policy.attempt)
        except _TlsFailed as failure:
            await self._abort()
            if policy.require or policy.implicit:
                self.tls = self._tls_outcome(used=False, failure=failure.reason)
                raise _SessionFailed(f"TLS with {self.name} failed and {_requirer(policy)} requires "
                                     f"TLS: {failure.reason}") from None
            if failure.certificate:  # MTA-STS testing: unverified TLS still beats plaintext
                with contextlib.suppress(_TlsFailed):
                    await self._connect_and_greet(starttls=True, context=_context(False))
                    self.tls = self._tls_outcome_with(failure.reason)
                    await self._authenticate()
                    return
                await self._abort()
            await self._connect_and_greet(starttls=False)
            self.tls = self._tls_outcome(used=False, failure=failure.reason)
        await self._authenticate()

    async def _connect_and_greet(self, *, starttls: bool, context: ssl.SSLContext | None = None) -> None:
        await self._connect()
        conn = self._connection()
        greeting = await self._expect(Greeting)
        if greeting.reply.code != 220:
            raise _SessionFailed(f"{self.name} refused the session", greeting.reply)
        await self._ehlo()
        if conn.tls:  # implicit TLS: protected from the first byte
            return
        caps = conn.capabilities
        if not starttls or not caps.starttls:
            if self.tls_policy.require:
                raise _SessionFailed(f"{self.name} does not offer STARTTLS and "
                                     f"{_requirer(self.tls_policy)} requires TLS")
            self.tls = self._tls_outcome(
                used=False, failure="STARTTLS not offered" if starttls else "STARTTLS not tried")
            return
        conn.starttls()
        reply = (await self._expect(StartTlsReply)).reply
        if reply.code != 220:
            raise _TlsFailed(f"STARTTLS refused: {smtp_reply(reply)}")
        await self._start_tls(context)
        conn.tls_started()
        await self._ehlo()

    async def _connect(self) -> None:
        family = ipaddress.ip_address(self.address).version
        source = self.source_ipv4 if family == 4 else self.source_ipv6
        policy = self.tls_policy
        context = (policy.context or _context(policy.verify)) if policy.implicit else None
        try:
            async with asyncio.timeout(self.timeouts.connect):
                self._reader, self._writer = await asyncio.open_connection(
                    self.address, self.port, local_addr=(source, 0) if source else None,
                    limit=_READ_SIZE, ssl=context, server_hostname=self.host if context else None,
                    ssl_handshake_timeout=self.timeouts.tls_handshake if context else None)
        except TimeoutError:
            raise _SessionFailed(f"no connection to {self.name} within "
                                 f"{self.timeouts.connect:g} s") from None
        except ssl.SSLError as error:  # implicit TLS: the handshake is part of connecting
            raise _tls_failure(error, self.host) from None
        except OSError as error:
            raise _SessionFailed(f"connection to {self.name} failed: {_describe(error)}") from None
        self._conn = SmtpClientConnection(self.helo_name)
        self._used = False
        if context is not None:
            self._conn.tls = True
            self._record_tls(self._writer, context)

    async def _ehlo(self) -> None:
        done = await self._expect(EhloDone)
        if not done.reply.is_positive:
            refused = "EHLO" if done.extended else "EHLO and HELO"
            raise _SessionFailed(f"{self.name} refused {refused}", done.reply)

    async def _start_tls(self, context: ssl.SSLContext | None = None) -> None:
        writer = self._stream()[1]
        policy = self.tls_policy
        context = context or policy.context or _context(policy.verify and not policy.tlsa)
        try:
            async with asyncio.timeout(self.timeouts.tls_handshake):
                # The MX name, for SNI and the name check (an IP address is matched against the
                # certificate's IP names and sent without SNI, RFC 6066 §3).
                await writer.start_tls(context, server_hostname=self.host,
                                       ssl_handshake_timeout=self.timeouts.tls_handshake)
        except TimeoutError:
            raise _TlsFailed(f"no TLS handshake within {self.timeouts.tls_handshake:g} s") from None
        except (ssl.SSLError, OSError, EOFError) as error:
            raise _tls_failure(error, self.host) from None
        self._record_tls(writer, context)

    def _record_tls(self, writer: asyncio.StreamWriter, context: ssl.SSLContext) -> None:
        """What the handshake gave, checked against DANE's TLSA records when the policy has some."""
        policy = self.tls_policy
        ssl_object = writer.get_extra_info("ssl_object")
        cipher = ssl_object.cipher() if ssl_object is not None else None
        verified = context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        note = policy.note
        if policy.tlsa and ssl_object is not None:
            accepted, problem = dane_verdict(policy.tlsa, _peer_chain(ssl_object), self.host)
            if not accepted:
                raise _TlsFailed(f"DANE: {problem}", certificate=True)
            verified, note = not problem, problem or note
        self.tls = self._tls_outcome(
            used=True, version=ssl_object.version() if ssl_object is not None else "",
            cipher=cipher[0] if cipher else "", verified=verified, failure=note)

    async def _authenticate(self) -> None:
        credentials = self.credentials
        if credentials is None:
            return
        conn = self._connection()
        if not conn.tls and not credentials.allow_plaintext:
            raise _SessionFailed(f"{self.name}: no TLS, so the password is not sent")
        offered = conn.capabilities.auth
        if credentials.tokens is not None:
            await self._xoauth2(credentials.user, credentials.tokens, offered)
            return
        mechanism = next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
        if mechanism is None:
            raise _SessionFailed(f"{self.name} offers no AUTH PLAIN or LOGIN "
                                 f"(offers: {' '.join(sorted(offered)) or 'no AUTH'})")
        conn.authenticate(mechanism, credentials.user, credentials.password)
        reply = (await self._expect(AuthDone)).reply
        if reply.code != 235:
            raise _SessionFailed(f"{self.name} refused the login of {credentials.user}", reply)

    async def _xoauth2(self, user: str, tokens: AccessTokens, offered: frozenset[str]) -> None:
        if "XOAUTH2" not in offered:
            raise _SessionFailed(f"{self.name} offers no AUTH XOAUTH2 "
                                 f"(offers: {' '.join(sorted(offered)) or 'no AUTH'})")
        conn = self._connection()
        for fresh in (False, True):  # a refused token may only have expired: one new token
            try:
                token = await tokens.get(fresh=fresh)
            except TokenUnavailable as error:
                raise _SessionFailed(f"no OAuth token for {user} at {self.name}: {error}") from None
            conn.authenticate("XOAUTH2", user, token)
            reply = (await self._expect(AuthDone)).reply
            if reply.code == 235 or reply.code == 421:
                break
        if reply.code != 235:
            raise _SessionFailed(f"{self.name} refused the OAuth token of {user}", reply)

    # -- one message ------------------------------------------------------------------------------

    async def _rset(self) -> None:
        conn = self._connection()
        conn.rset()
        reply = (await self._expect(Replied)).reply
        if not reply.is_positive:
            raise _SessionFailed(f"{self.name} refused RSET", reply)

    async def _transaction(self, message: QueuedMessage, raw: bytes, recipients: tuple[str, ...],
                           *, stale_check: bool = False) -> tuple[RecipientOutcome, ...]:
        """One transaction. With `stale_check` (a reused connection, not probed with RSET), a
        connection that fails before any content went, or a 421 for every recipient, raises
        `_StaleConnection`: nothing was accepted, so the message goes again on a new one."""
        self._content_sent = False
        try:
            return await self._send(message, raw, recipients, stale_check)
        except (_SessionFailed, OSError, EOFError) as error:
            if stale_check and not self._content_sent:
                raise _StaleConnection from error
            raise

    async def _send(self, message: QueuedMessage, raw: bytes, recipients: tuple[str, ...],
                    stale_check: bool) -> tuple[RecipientOutcome, ...]:
        conn = self._connection()
        content = to_crlf(raw)
        if content and not content.endswith(b"\r\n"):
            content += b"\r\n"
        outgoing = _outgoing(message, content, recipients)
        refusal = conn.refusal(outgoing)
        if outgoing.requiretls and (refusal is None or not refusal.permanent) and not (
                self.tls is not None and self.tls.verified and conn.capabilities.requiretls):
            return tuple(  # RFC 8689 §4.2.1: verified TLS and the extension, or not here
                RecipientOutcome(r, "deferred", reason=f"{self.name}: the message requires TLS "
                                 "(REQUIRETLS) and this server does not offer it over verified TLS",
                                 host=self.host, address=self.address, tls=self.tls,
                                 status=REQUIRETLS_STATUS) for r in recipients)
        if refusal is not None:
            return self._all(recipients, "failed" if refusal.permanent else "deferred", None,
                             f"{self.name}: {refusal.reason}")
        conn.send_mail(outgoing)
        self._used = True
        offset = 0
        while True:
            event = await self._next_event()
            if isinstance(event, ContentWanted):
                self._content_sent = True
                piece = content[offset:offset + self.chunk_size]
                offset += len(piece)
                conn.send_content(piece, last=offset >= len(content))
                await self._flush(self.timeouts.data_block)
            elif isinstance(event, TransactionDone):
                self._last_done = time.monotonic()
                if stale_check and all(reply.code == 421 for _, reply in event.replies):
                    raise _StaleConnection  # RFC 5321 §3.8: closing; nothing was accepted
                outcomes = tuple(self._outcome(address, reply) for address, reply in event.replies)
                if any(reply.code == 421 for _, reply in event.replies):
                    await self._abort()  # RFC 5321 §3.8: the server is closing
                return outcomes
            else:
                raise self._unexpected(event)

    # -- I/O ------------------------------------------------------------------------------------

    async def _expect(self, kind: type[_E]) -> _E:
        event = await self._next_event()
        if not isinstance(event, kind):
            raise self._unexpected(event)
        return event

    async def _next_event(self) -> ClientEvent:
        """The next event, reading as needed. A deadline covers each reply (trickling does not
        extend it); it starts again only when a reply made the core send a command."""
        conn = self._connection()
        reader = self._stream()[0]
        loop = asyncio.get_running_loop()
        deadline = 0.0
        while True:
            event = conn.next_event()
            sent = await self._flush()  # what the replies made the core say next
            if event is not NEED_DATA:
                return event
            if sent or not deadline:
                waiting = conn.waiting_for or "a reply"
                limit = self._timeout_for(waiting)
                deadline = loop.time() + limit
            try:
                async with asyncio.timeout_at(deadline):
                    data = await reader.read(_READ_SIZE)
            except TimeoutError:
                raise _SessionFailed(f"{self.name} did not answer within {limit:g} s "
                                     f"(waiting for the {_phase(waiting)})") from None
            conn.receive_data(data)

    async def _flush(self, timeout: float | None = None) -> bool:
        """Write what the core has to send; False when there was nothing."""
        data = self._connection().data_to_send()
        if not data:
            return False
        writer = self._stream()[1]
        writer.write(data)
        limit = timeout or self.timeouts.command
        try:
            async with asyncio.timeout(limit):
                await writer.drain()
        except TimeoutError:
            raise _SessionFailed(f"{self.name} took no data for {limit:g} s") from None
        return True

    def _timeout_for(self, waiting: str) -> float:
        t = self.timeouts
        return {"greeting": t.banner, "MAIL": t.mail, "RCPT": t.rcpt, "DATA": t.data_init,
                "end of data": t.final_dot, "QUIT": t.quit}.get(waiting, t.command)

    def _unexpected(self, event: ClientEvent) -> _SessionFailed:
        if isinstance(event, ProtocolError):
            return _SessionFailed(f"{self.name} broke the SMTP protocol: {event.reason}")
        if isinstance(event, Closed):
            waiting = self._conn.waiting_for if self._conn else None
            return _SessionFailed(f"{self.name} closed the connection{_while(waiting)}")
        return _SessionFailed(f"{self.name}: unexpected {type(event).__name__}")

    async def _abort(self) -> None:
        writer = self._writer
        self._conn = self._reader = self._writer = None
        await close_stream(writer)

    def _connection(self) -> SmtpClientConnection:
        if self._conn is None:
            raise _SessionFailed(f"not connected to {self.name}")
        return self._conn

    def _stream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            raise _SessionFailed(f"not connected to {self.name}")
        return self._reader, self._writer

    # -- outcomes -------------------------------------------------------------------------------

    def _tls_outcome_with(self, failure: str) -> TlsOutcome | None:
        """The outcome of the TLS just negotiated, saying why it is not the verified kind."""
        tls = self.tls
        return None if tls is None else TlsOutcome(tls.used, tls.version, tls.cipher, tls.verified,
                                                   tls.policy, failure)

    def _tls_outcome(self, *, used: bool, version: str = "", cipher: str = "", verified: bool = False,
                     failure: str = "") -> TlsOutcome:
        return TlsOutcome(used=used, version=version, cipher=cipher, verified=verified,
                          policy=self.tls_policy.policy, failure=failure)

    def _outcome(self, address: str, reply: Reply) -> RecipientOutcome:
        kind: OutcomeKind = "delivered" if reply.is_positive else (
            "failed" if reply.code >= 500 else "deferred")
        return RecipientOutcome(address, kind, reply=smtp_reply(reply), host=self.host,
                                address=self.address, tls=self.tls)

    def _all(self, recipients: Sequence[str], kind: OutcomeKind, reply: Reply | None,
             reason: str) -> tuple[RecipientOutcome, ...]:
        return tuple(
            RecipientOutcome(r, kind, reply=smtp_reply(reply) if reply else None, reason=reason,
                             host=self.host, address=self.address, tls=self.tls)
            for r in recipients)


class _TlsFailed(Exception):
    def __init__(self, reason: str, *, certificate: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.certificate = certificate  # the handshake worked; the certificate did not pass


def _tls_failure(error: BaseException, host: str) -> _TlsFailed:
    if isinstance(error, ssl.SSLCertVerificationError):
        return _TlsFailed(f"certificate not valid for {host}: {error.verify_message or error.reason}",
                          certificate=True)
    return _TlsFailed(f"TLS handshake failed: {_describe(error)}")


def _requirer(policy: TlsPolicy) -> str:
    """Who asked for TLS, for reasons: "the MTA-STS policy", "DANE", ..."""
    return {"mta-sts": "the MTA-STS policy", "dane": "DANE (TLSA records)",
            "smarthost": "the smarthost policy"}.get(policy.policy, "policy")


def _peer_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The certificates the server sent, its own first (all of them on Python 3.13+)."""
    chain = getattr(ssl_object, "get_unverified_chain", None)
    if chain is not None:
        found = chain()
        if found:
            return [bytes(c) for c in found]  # DER, as Python 3.13 gives them
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _outgoing(message: QueuedMessage, content: bytes, recipients: tuple[str, ...]) -> OutgoingMessage:
    envelope = message.envelope
    by_address = {r.address: r for r in envelope.recipients}
    outgoing = []
    for address in recipients:
        queued = by_address.get(address)
        outgoing.append(OutgoingRecipient(address, queued.notify if queued else (),
                                          queued.orcpt if queued else None))
    return OutgoingMessage(
        sender=envelope.sender, recipients=tuple(outgoing), size=len(content),
        eight_bit=not content.isascii(),
        smtputf8=needs_smtputf8(envelope.sender, recipients, content),
        ret=envelope.ret, envid=envelope.envid, requiretls=envelope.requiretls)


def _context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:  # opportunistic (RFC 7435): any certificate beats plaintext
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _phase(waiting: str | None) -> str:
    return {"greeting": "banner", "end of data": "reply to the end of data"}.get(
        waiting or "", f"reply to {waiting}")


def _while(waiting: str | None) -> str:
    return f" (waiting for the {_phase(waiting)})" if waiting else ""


def _describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    text = getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error)
    return str(text) or type(error).__name__
