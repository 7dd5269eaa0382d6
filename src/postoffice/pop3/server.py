"""The POP3 connection driver: socket bytes <-> `Pop3ServerConnection`, and the listeners.

Ports 110 (STLS, RFC 2595) and 995 (implicit TLS, RFC 8314). Passwords (USER/PASS, AUTH PLAIN
and LOGIN with an initial response, RFC 5034) only over TLS or from loopback (DESIGN §4); a
refused or failed login answers with the RFC 3206 codes [AUTH] and [SYS/TEMP], a maildrop held
by another session with [IN-USE] (RFC 2449 §8.1.1). Replies to pipelined commands (RFC 2449
§6.6) are written together when the input is drained; RETR and TOP stream as they are read.
An idle session is closed after ten minutes without entering UPDATE (RFC 1939 §3); a command
line must be complete within `[limits] line_timeout` of its first byte, and the login must
succeed within `[limits] login_timeout` of connecting (net/deadlines.py), however slowly the
client trickles its bytes.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import socket
from collections.abc import Sequence

from postoffice import logevents
from postoffice.auth.limits import Refusal
from postoffice.auth.login import LoginRefused, check_login
from postoffice.auth.sasl import (
    AuthorizationRefused,
    EncryptionRequired,
    SaslCancelled,
    SaslChallenge,
    SaslCredentials,
    SaslError,
    SaslExchange,
    UnsupportedMechanism,
    decode_response,
    mechanisms_offered,
    start_sasl,
)
from postoffice.config import ListenAddress, UnixAddress
from postoffice.net.deadlines import Expiry, InputTimeout
from postoffice.net.listener import Connection, start_listener
from postoffice.net.running import ListenerFactory, RunningListener
from postoffice.pop3 import proto as p
from postoffice.pop3.maildrop import DropMessage, NoSuchMessage
from postoffice.pop3.session import MaildropInUse, Pop3Maildrop
from postoffice.services import Services
from postoffice.store.interface import BlobDamaged, StorageFull

log = logging.getLogger(__name__)

READ_SIZE = 65536
WHOLE_MESSAGE = 256 * 1024  # smaller messages are read in one go; larger ones are streamed
FLUSH_AT = 1024 * 1024  # pipelined replies are written together up to this much
AUTOLOGOUT = 10 * 60.0  # RFC 1939 §3: at least ten minutes
MAX_ERRORS = 20  # refused commands in a row before the connection is closed
LIVE = (p.Pop3State.AUTHORIZATION, p.Pop3State.TRANSACTION)
# RFC 1939 §3: a timed-out session is closed without entering UPDATE (nothing is deleted).
TIMEOUT_ERR = {
    Expiry.IDLE: p.err("Autologout: idle for too long; nothing was deleted"),
    Expiry.LINE: p.err("Command not completed in time; nothing was deleted"),
    Expiry.LOGIN: p.err("Not logged in in time"),
}


class Pop3Connection:
    def __init__(self, conn: Connection, services: Services) -> None:
        self.conn = conn
        self.services = services
        self.proto = p.Pop3ServerConnection(tls=conn.tls, stls=not conn.tls)
        self.out: list[bytes] = []
        self.user: str | None = None
        self.exchange: SaslExchange | None = None
        self.mechanism = ""  # of the AUTH exchange under way, for the login line
        self.maildrop: Pop3Maildrop | None = None
        self.errors = 0
        self.closing = False
        self.out_size = 0

    # --- I/O ----------------------------------------------------------------------------------

    async def run(self) -> None:
        self.out.append(p.greeting("postoffice POP3 ready"))
        try:
            await self.flush()
            while self.proto.state in LIVE:
                try:
                    data = await self.conn.read_input(READ_SIZE, idle=AUTOLOGOUT,
                                                      open_line=self.proto.open_line)
                except InputTimeout as timeout:
                    log.debug("%s: %s timeout", self.conn.id, timeout.expiry.value)
                    self.out.append(TIMEOUT_ERR.get(timeout.expiry, TIMEOUT_ERR[Expiry.IDLE]))
                    break
                except (ConnectionError, OSError):
                    break
                self.proto.receive_data(data)
                await self.process()
                await self.flush()
                if not data or self.closing or self.conn.writer.is_closing():
                    break
        finally:
            if self.maildrop is not None:
                self.maildrop.close()
            await self.flush()
            if self.closing:
                await self.linger()

    async def linger(self, seconds: float = 2.0, limit: int = 1 << 20) -> None:
        """Before closing on a client that is still sending, read and drop what it sends for a
        moment: closing with unread input makes the kernel reset the connection, which can
        destroy the error reply on its way (a "lingering close", as HTTP servers do)."""
        with contextlib.suppress(Exception):
            if self.conn.writer.can_write_eof():
                self.conn.writer.write_eof()
            async with asyncio.timeout(seconds):
                dropped = 0
                while dropped < limit and (data := await self.conn.reader.read(READ_SIZE)):
                    dropped += len(data)

    async def flush(self) -> None:
        if self.out:
            parts, self.out = self.out, []
            self.out_size = 0
            await self.send(*parts)

    async def send(self, *parts: bytes) -> None:
        self.conn.bytes_out += sum(map(len, parts))
        try:
            # Not joined: uvloop writes the pieces with one writev, without copying them.
            self.conn.writer.writelines(parts)
            await self.conn.writer.drain()
        except (ConnectionError, OSError):
            self.conn.writer.close()

    @property
    def plaintext_ok(self) -> bool:
        return bool(self.offered)

    @property
    def offered(self) -> tuple[str, ...]:
        conn = self.conn
        return mechanisms_offered(conn.tls, conn.is_loopback, self.services.config.auth.plaintext_on_loopback)

    # --- events -------------------------------------------------------------------------------

    async def process(self) -> None:
        while (event := self.proto.next_event()) is not p.NEED_DATA:
            if not isinstance(event, p.AuthResponse):
                self.conn.commands += 1
            if isinstance(event, p.CommandError):
                self.errors += 1
                self.out.append(event.reply)
                if self.errors >= MAX_ERRORS:
                    self.out.append(p.err("Too many errors; closing the connection"))
                    self.closing = True  # after the replies are written
                    return
                if self.exchange is not None and not self.proto.in_auth_exchange:
                    self.exchange = None  # an over-long line ended the AUTH exchange
                continue
            self.errors = 0
            await self.handle(event)
            if self.conn.writer.is_closing():
                return

    async def handle(self, event: p.Event) -> None:
        drop = self.maildrop
        match event:
            case p.Capa():
                sasl = self.offered if self.proto.state is p.Pop3State.AUTHORIZATION else ()
                lines = p.capabilities(stls=self.proto.stls_available, user=self.plaintext_ok, sasl=sasl)
                self.out.append(p.multiline(p.ok("Capability list follows"), lines))
            case p.Stls():
                await self.start_tls()
            case p.User(name=name):
                if not self.plaintext_ok:
                    self.proto.auth_failed()
                    self.out.append(p.err("Plaintext login is not allowed here: use STLS first", "AUTH"))
                else:
                    self.user = name
                    self.out.append(p.ok("Send your password"))
            case p.Pass(password=password):
                await self.login(self.user or "", password, "USER")
            case p.Apop():
                self.proto.auth_failed()
                self.out.append(p.err("APOP is not offered: log in with USER/PASS or AUTH over TLS"))
            case p.Auth(mechanism=None):
                self.out.append(p.multiline(p.ok("Mechanisms follow"), [m.encode() for m in self.offered]))
            case p.Auth(mechanism=mechanism, initial_response=initial):
                await self.authenticate(mechanism or "", initial)
            case p.AuthResponse(line=line):
                await self.auth_step(line)
            case p.Quit():
                await self.quit()
            case p.Noop():
                self.out.append(p.ok())
            case _ if drop is not None:
                await self.transaction(event, drop)

    async def transaction(self, event: p.Event, drop: Pop3Maildrop) -> None:
        messages = drop.drop
        try:
            match event:
                case p.Stat():
                    count, size = messages.stat()
                    self.out.append(p.ok(f"{count} {size}"))
                case p.List(msg=None):
                    count, size = messages.stat()
                    lines = [f"{n} {s}".encode() for n, s in messages.listing()]
                    self.out.append(p.multiline(p.ok(f"{count} messages ({size} octets)"), lines))
                case p.List(msg=int(n)):
                    self.out.append(p.ok(f"{n} {messages.get(n).size}"))
                case p.Uidl(msg=None):
                    lines = [f"{n} {uidl}".encode() for n, uidl in messages.uid_listing()]
                    self.out.append(p.multiline(p.ok("Unique-ID listing follows"), lines))
                case p.Uidl(msg=int(n)):
                    self.out.append(p.ok(f"{n} {messages.uidl(messages.get(n).uid)}"))
                case p.Retr(msg=n):
                    message = messages.get(n)
                    await self.stream(drop, n, message, p.ok(f"{message.size} octets"), None)
                case p.Top(msg=n, lines=lines):
                    await self.stream(drop, n, messages.get(n), p.ok("Top of message follows"), lines)
                case p.Dele(msg=n):
                    messages.delete(n)
                    self.out.append(p.ok(f"Message {n} deleted"))
                case p.Rset():
                    messages.reset()
                    count, size = messages.stat()
                    self.out.append(p.ok(f"Maildrop has {count} messages ({size} octets)"))
        except NoSuchMessage as exc:
            self.out.append(p.err(exc.reason))

    async def stream(self, drop: Pop3Maildrop, n: int, message: DropMessage, first: bytes, top: int | None) -> None:
        """RETR/TOP: the +OK line and the content. A message of usual size is read in one step
        and queued with the other replies (one write for a pipelined batch); a large one is
        streamed as it is read, so it is never in memory whole."""
        if message.size <= WHOLE_MESSAGE:
            try:
                raw = await drop.read_small(n, WHOLE_MESSAGE)
            except BlobDamaged as exc:
                self.refuse_damaged(drop, n, message, exc)
                return
            content, end = drop.encode_message(message, raw, top)
            self.out += (first, content, end)
            self.out_size += len(content)
            if self.out_size >= FLUSH_AT:
                await self.flush()
            return
        try:
            handle = await self.services.store.open_blob(drop.blob_of(message.uid), message.size)
        except BlobDamaged as exc:
            self.refuse_damaged(drop, n, message, exc)
            return
        self.out.append(first)
        await self.flush()
        drop.note_streamed(n)
        try:
            await drop.send_message(message, handle, self.send, top)
        except BlobDamaged as exc:
            # Part of it is sent: no reply can follow, and a terminator would pass the short
            # message off as complete. Closing makes the client drop it.
            log.error("%s: %s; closing the connection mid-message", self.conn.id, self.damage(drop, message, exc))
            self.conn.writer.close()

    def refuse_damaged(self, drop: Pop3Maildrop, n: int, message: DropMessage, exc: BlobDamaged) -> None:
        log.error("%s: %s", self.conn.id, self.damage(drop, message, exc))
        self.out.append(p.err(f"Message {n} could not be read intact; the server log has the details", "SYS/PERM"))

    @staticmethod
    def damage(drop: Pop3Maildrop, message: DropMessage, exc: BlobDamaged) -> str:
        return exc.where(f"INBOX #{drop.mailbox_id} of {drop.account.address}", message.uid)

    # --- authorization ------------------------------------------------------------------------

    async def start_tls(self) -> None:
        try:
            context = self.services.tls.current()
        except Exception as exc:  # no usable certificate: say so, stay in plaintext
            log.error("STLS unavailable: %s", exc)
            self.proto.tls_refused()
            self.out.append(p.err("TLS is not available right now", "SYS/TEMP"))
            return
        self.out.append(p.ok("Begin TLS negotiation"))
        await self.flush()
        try:
            await self.conn.start_tls(context)
        except Exception as exc:
            # A client that simply went away is routine; a failed negotiation may interest the admin.
            log.log(logging.DEBUG if isinstance(exc, ConnectionError) else logging.INFO,
                    "%s: TLS handshake failed: %s", self.conn.id, exc)
            self.conn.writer.close()
            return
        self.proto.tls_started()
        self.user = None

    async def authenticate(self, mechanism: str, initial: bytes | None) -> None:
        try:
            ir = None if initial is None else (b"" if initial == b"=" else binascii.a2b_base64(initial))
            self.mechanism = mechanism.upper()
            self.exchange = start_sasl(mechanism, ir, offered=self.offered)
            await self.auth_outcome(self.exchange.begin())
        except Exception as exc:
            self.auth_error(exc)

    async def auth_step(self, line: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # cannot happen: the core only sends responses during an exchange
            self.proto.end_auth_exchange()
            return
        try:
            await self.auth_outcome(exchange.step(decode_response(line)))
        except Exception as exc:
            self.auth_error(exc)

    async def auth_outcome(self, outcome: SaslChallenge | SaslCredentials) -> None:
        if isinstance(outcome, SaslChallenge):
            self.out.append(p.auth_challenge(outcome.data))
            self.proto.begin_auth_exchange()
            return
        self.proto.end_auth_exchange()
        self.exchange = None
        await self.login(outcome.authcid, outcome.password, self.mechanism)

    def auth_error(self, exc: Exception) -> None:
        self.exchange = None
        self.proto.auth_failed()
        if isinstance(exc, UnsupportedMechanism):
            self.out.append(p.err("Unsupported authentication mechanism"))
        elif isinstance(exc, SaslCancelled):
            self.out.append(p.err("Authentication cancelled"))
        elif isinstance(exc, EncryptionRequired):
            self.out.append(p.err("Plaintext login is not allowed here: use STLS first", "AUTH"))
        elif isinstance(exc, AuthorizationRefused):
            logevents.login(self.conn.protocol, self.conn.peer_ip, "", self.mechanism, "failed",
                            self.conn.id, "authorization identity refused")
            self.out.append(p.err("Invalid credentials", "AUTH"))
        elif isinstance(exc, SaslError | binascii.Error | ValueError):
            self.out.append(p.err("Cannot decode the authentication data"))
        else:
            raise exc

    async def login(self, user: str, password: str, mechanism: str) -> None:
        services = self.services
        ip = self.conn.peer_ip
        self.user = None
        if not self.plaintext_ok:
            self.proto.auth_failed()
            self.out.append(p.err("Plaintext login is not allowed here: use STLS first", "AUTH"))
            return
        account = await check_login(services.directory, services.login_throttle, ip, user, password,
                                    protocol=self.conn.protocol, mechanism=mechanism, conn=self.conn.id,
                                    log_success=False)
        if account is LoginRefused.TRY_LATER:
            self.proto.auth_failed()
            self.out.append(p.err("Cannot check passwords right now; try again in a moment", "SYS/TEMP"))
            return
        if account is LoginRefused.FAILED:
            self.proto.auth_failed()
            self.out.append(p.err("Invalid user name or password", "AUTH"))
            return
        self.conn.deadlines.end(Expiry.LOGIN)
        try:
            self.maildrop = await Pop3Maildrop.open(services, account)
        except MaildropInUse:
            logevents.login(self.conn.protocol, ip, user, mechanism, "refused", self.conn.id, "maildrop in use")
            self.proto.auth_failed()
            self.out.append(p.err("Another POP3 session is using this mailbox; try again later", "IN-USE"))
            return
        except Exception:
            log.exception("%s: opening the maildrop of %s failed", self.conn.id, account.address)
            logevents.login(self.conn.protocol, ip, user, mechanism, "refused", self.conn.id, "maildrop not opened")
            self.proto.auth_failed()
            self.out.append(p.err("The mailbox cannot be opened right now; try again later", "SYS/TEMP"))
            return
        if (too_many := self.conn.log_in("pop3", account.address)) is not None:
            logevents.login(self.conn.protocol, ip, user, mechanism, "refused", self.conn.id, too_many)
            self.maildrop.close()
            self.maildrop = None
            self.proto.auth_failed()
            self.out.append(p.err(too_many, "SYS/TEMP"))
            return
        self.proto.auth_succeeded()
        count, size = self.maildrop.drop.stat()
        self.out.append(p.ok(f"Logged in: {count} messages ({size} octets)"))
        self.conn.user = account.address
        logevents.login(self.conn.protocol, ip, user, mechanism, "ok", self.conn.id)

    async def quit(self) -> None:
        drop = self.maildrop
        if drop is None or self.proto.state is not p.Pop3State.UPDATE:
            self.out.append(p.ok("Goodbye"))
            return
        try:
            removed = await drop.update()
        except StorageFull as exc:  # RFC 1939 §6: -ERR, and the maildrop is as it was
            log.warning("%s: POP3 update of %s refused: %s", self.conn.id, drop.account.address, exc)
            self.out.append(p.err("Not enough disk space: no message was deleted; try again later", "SYS/TEMP"))
        except Exception:
            log.exception("%s: POP3 update of %s failed", self.conn.id, drop.account.address)
            self.out.append(p.err("Some deleted messages were not removed; try again", "SYS/TEMP"))
        else:
            self.out.append(p.ok(f"Goodbye: {removed} messages deleted"))
        finally:
            drop.close()


async def start_pop3_listener(services: Services, protocol: str, address: ListenAddress | UnixAddress | None,
                              sockets: Sequence[socket.socket] = ()) -> RunningListener:
    """Serve `protocol` ("pop3": STLS, "pop3s": implicit TLS) on `address`, or on `sockets` that
    another process listens on already (`[pop3] processes`)."""
    if isinstance(address, UnixAddress):
        raise ValueError(f"{protocol} listens on host:port only, not {address}.")

    async def handle(conn: Connection) -> None:
        await Pop3Connection(conn, services).run()

    async def refuse(conn: Connection, refusal: Refusal) -> None:
        conn.writer.write(p.err(refusal.value, "SYS/TEMP"))
        await conn.writer.drain()

    host, port = (address.host, address.port) if address is not None else ("", 0)
    limits = services.config.limits
    listener = await start_listener(
        host, port, handle, tls=services.tls if protocol == "pop3s" else None,
        limiter=services.connection_limiter, on_refused=refuse, name=protocol, sockets=sockets,
        board=services.accept_boards.get("pop3"), line_timeout=limits.line_timeout,
        login_timeout=limits.login_timeout,
    )
    return RunningListener(protocol, listener.address, listener.close, listener.sockets)


def _factory(protocol: str) -> ListenerFactory:
    async def start(services: Services, address: ListenAddress | UnixAddress) -> RunningListener:
        return await start_pop3_listener(services, protocol, address)

    return start


def listener_factories() -> dict[str, ListenerFactory]:
    return {"pop3": _factory("pop3"), "pop3s": _factory("pop3s")}
