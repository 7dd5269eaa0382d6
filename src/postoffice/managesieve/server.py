"""The ManageSieve connection driver (RFC 5804): socket bytes <-> the sans-IO core, and the listener.

Port 4190 (`[listen] managesieve`), STARTTLS (§2.2, capabilities re-issued after it). Login is
IMAP's: the same SASL mechanisms (auth/sasl.py), passwords only over TLS or from loopback
(DESIGN §4), the same failed-login slow-down and login cache (auth/login.py), the same
per-IP and per-user connection limits and line/login deadlines (net/listener.py). Scripts are
checked with the Sieve compiler (filtering/sieve) in a thread, kept in the store
(store/sieve_interface.py) within `[sieve] max_script_size` and `max_scripts`; delivery runs
the account's active one.
"""

from __future__ import annotations

import contextlib
import logging

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
    decode_initial_response,
    decode_response,
    encode_challenge,
    mechanisms_offered,
    start_sasl,
)
from postoffice.config import ListenAddress, UnixAddress
from postoffice.filtering.sieve import CAPABILITIES
from postoffice.managesieve import proto as p
from postoffice.managesieve.scripts import ScriptCommands
from postoffice.net.deadlines import Expiry, InputTimeout
from postoffice.net.listener import Connection, start_listener
from postoffice.net.running import ListenerFactory, RunningListener
from postoffice.services import Services
from postoffice.store.interface import AccountRecord

log = logging.getLogger(__name__)

READ_SIZE = 65536
IDLE_TIMEOUT = 30 * 60.0  # Dovecot's managesieve default; RFC 5804 names none
MAX_ERRORS = 20  # refused commands in a row before the connection is closed
# Replies to pipelined commands are written together up to this much: a packet of GETSCRIPTs
# must not pile up megabytes per command in memory before the first is sent.
FLUSH_AT = 256 * 1024
PROTOCOL = "managesieve"
TIMEOUT_BYE = {
    Expiry.IDLE: p.bye("Disconnected for inactivity"),
    Expiry.LINE: p.bye("Command not completed in time"),
    Expiry.LOGIN: p.bye("Not logged in in time"),
}


class ManageSieveConnection:
    def __init__(self, conn: Connection, services: Services) -> None:
        self.conn = conn
        self.services = services
        config = services.config
        self.proto = p.ManageSieveServerConnection(tls=conn.tls, max_line=config.limits.max_line_length,
                                                   max_literal=config.sieve.max_script_size)
        self.out: list[bytes] = []
        self.exchange: SaslExchange | None = None
        self.mechanism = ""
        self.account: AccountRecord | None = None
        self.errors = 0

    # --- I/O ----------------------------------------------------------------------------------

    async def run(self) -> None:
        self.out.append(self.capabilities() + p.ok("postoffice ManageSieve ready"))
        try:
            await self.flush()
            while self.proto.state is not p.SieveState.LOGOUT:
                try:
                    data = await self.conn.read_input(READ_SIZE, idle=IDLE_TIMEOUT,
                                                      open_line=self.proto.open_line)
                except InputTimeout as timeout:
                    self.out.append(TIMEOUT_BYE.get(timeout.expiry, TIMEOUT_BYE[Expiry.IDLE]))
                    break
                except (ConnectionError, OSError):
                    break
                self.proto.receive_data(data)
                await self.process()
                await self.flush()
                if not data or self.conn.writer.is_closing():
                    break
        finally:
            await self.flush()

    async def flush(self) -> None:
        if not self.out:
            return
        parts, self.out = self.out, []
        self.conn.bytes_out += sum(map(len, parts))
        try:
            self.conn.writer.writelines(parts)
            await self.conn.writer.drain()
        except (ConnectionError, OSError):
            self.conn.writer.close()

    @property
    def offered(self) -> tuple[str, ...]:
        conn = self.conn
        return mechanisms_offered(conn.tls, conn.is_loopback, self.services.config.auth.plaintext_on_loopback)

    def capabilities(self) -> bytes:
        """RFC 5804 §1.7: what the server offers now (SASL and STARTTLS depend on the state)."""
        caps: list[tuple[str, str | None]] = [
            ("IMPLEMENTATION", "postoffice"),
            ("SASL", " ".join(self.offered) if self.account is None else ""),
            ("SIEVE", " ".join(CAPABILITIES)),
            ("MAXREDIRECTS", str(self.services.config.sieve.max_redirects)),
        ]
        if not self.conn.tls and self.account is None:
            caps.append(("STARTTLS", None))
        if self.account is not None:
            caps.append(("OWNER", self.account.address))
        caps += [("UNAUTHENTICATE", None), ("VERSION", "1.0")]
        return p.capability_lines(caps)

    # --- events -------------------------------------------------------------------------------

    async def process(self) -> None:
        while not isinstance(event := self.proto.next_event(), p.NeedData):
            if not isinstance(event, p.AuthResponse):
                self.conn.commands += 1
            if isinstance(event, p.CommandError):
                self.out.append(event.reply)
                if event.fatal:
                    return
                self.errors += 1
                if self.errors >= MAX_ERRORS:
                    self.out.append(p.bye("Too many errors"))
                    self.proto.close()
                    return
                continue
            self.errors = 0
            await self.handle(event)
            if self.conn.writer.is_closing():
                return
            if sum(map(len, self.out)) >= FLUSH_AT:
                await self.flush()  # drain() waits for the client to read: back-pressure

    async def handle(self, event: p.Event) -> None:
        match event:
            case p.Capability():
                self.out.append(self.capabilities() + p.ok())
            case p.Noop(tag=tag):
                self.out.append(p.ok("Done", None if tag is None else f"TAG {p.string(tag).decode()}"))
            case p.Logout():
                self.out.append(p.ok("Logout completed"))
            case p.StartTls():
                await self.start_tls()
            case p.Authenticate(mechanism=mechanism, initial_response=initial):
                await self.authenticate(mechanism, initial)
            case p.AuthResponse(data=data):
                await self.auth_step(data)
            case p.Unauthenticate():
                self.account = None
                self.conn.user = None
                self.proto.unauthenticated()
                self.out.append(p.ok("Logged out; log in again"))
            case _ if self.account is not None:
                self.out.append(await ScriptCommands(self.services, self.account, self.conn.id).run(event))

    # --- STARTTLS and login ---------------------------------------------------------------------

    async def start_tls(self) -> None:
        try:
            context = self.services.tls.current()
        except Exception as exc:  # no usable certificate: say so, stay in plaintext
            log.error("ManageSieve STARTTLS unavailable: %s", exc)
            self.proto.tls_refused()
            self.out.append(p.no("TLS is not available right now", "TRYLATER"))
            return
        self.out.append(p.ok("Begin TLS negotiation now"))
        await self.flush()
        try:
            await self.conn.start_tls(context)
        except Exception as exc:
            log.log(logging.DEBUG if isinstance(exc, ConnectionError) else logging.INFO,
                    "%s: TLS handshake failed: %s", self.conn.id, exc)
            self.conn.writer.close()
            self.proto.close()
            return
        self.proto.tls_started()
        # RFC 5804 §2.2: the capabilities again, now without STARTTLS and with the SASL list.
        self.out.append(self.capabilities() + p.ok("TLS negotiation successful"))

    async def authenticate(self, mechanism: str, initial: bytes | None) -> None:
        self.mechanism = mechanism
        try:
            self.exchange = start_sasl(mechanism, None if initial is None else decode_initial_response(initial),
                                       offered=self.offered)
            await self.auth_outcome(self.exchange.begin())
        except SaslError as exc:
            self.auth_error(exc)

    async def auth_step(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            self.proto.end_auth_exchange()
            return
        try:
            await self.auth_outcome(exchange.step(decode_response(data)))
        except SaslError as exc:
            self.auth_error(exc)

    async def auth_outcome(self, outcome: SaslChallenge | SaslCredentials) -> None:
        if isinstance(outcome, SaslChallenge):
            # §2.1: a challenge is a string holding the base64 data.
            self.out.append(p.string(encode_challenge(outcome.data)) + b"\r\n")
            self.proto.begin_auth_exchange()
            return
        self.proto.end_auth_exchange()
        self.exchange = None
        await self.login(outcome.authcid, outcome.password)

    def auth_error(self, exc: SaslError) -> None:
        self.exchange = None
        self.proto.end_auth_exchange()
        if isinstance(exc, UnsupportedMechanism):
            self.out.append(p.no("Unsupported authentication mechanism"))
        elif isinstance(exc, SaslCancelled):
            self.out.append(p.no("Authentication cancelled"))
        elif isinstance(exc, EncryptionRequired):
            # §1.3: the mechanism needs TLS here.
            self.out.append(p.no("Plaintext login is not allowed here: use STARTTLS first", "ENCRYPT-NEEDED"))
        elif isinstance(exc, AuthorizationRefused):
            logevents.login(self.conn.protocol, self.conn.peer_ip, "", self.mechanism, "failed",
                            self.conn.id, "authorization identity refused")
            self.out.append(p.no("Authentication failed"))
        else:
            self.out.append(p.no(f"Cannot decode the authentication data: {exc.reason}"))

    async def login(self, user: str, password: str) -> None:
        services = self.services
        ip = self.conn.peer_ip
        account = await check_login(services.directory, services.login_throttle, ip, user, password,
                                    protocol=self.conn.protocol, mechanism=self.mechanism,
                                    conn=self.conn.id, log_success=False)
        if account is LoginRefused.TRY_LATER:
            self.out.append(p.no("Cannot check passwords right now; try again in a moment", "TRYLATER"))
            return
        if account is LoginRefused.FAILED:
            self.out.append(p.no("Authentication failed"))
            return
        if (too_many := self.conn.log_in(PROTOCOL, account.address)) is not None:
            logevents.login(self.conn.protocol, ip, user, self.mechanism, "refused", self.conn.id, too_many)
            self.out.append(p.no(too_many, "TRYLATER"))
            return
        logevents.login(self.conn.protocol, ip, user, self.mechanism, "ok", self.conn.id)
        self.conn.deadlines.end(Expiry.LOGIN)
        self.conn.user = account.address
        self.account = account
        self.proto.auth_succeeded()
        self.out.append(p.ok("Logged in"))


async def start_managesieve_listener(services: Services, address: ListenAddress | UnixAddress) -> RunningListener:
    if isinstance(address, UnixAddress):
        raise ValueError(f"managesieve listens on host:port only, not {address}.")

    async def handle(conn: Connection) -> None:
        await ManageSieveConnection(conn, services).run()

    async def refuse(conn: Connection, refusal: Refusal) -> None:
        # §1.7: a server may answer the connection with BYE instead of its capabilities.
        with contextlib.suppress(ConnectionError, OSError):
            conn.writer.write(p.bye(refusal.value, "TRYLATER"))
            await conn.writer.drain()

    limits = services.config.limits
    listener = await start_listener(
        address.host, address.port, handle, limiter=services.connection_limiter, on_refused=refuse,
        name=PROTOCOL, line_timeout=limits.line_timeout, login_timeout=limits.login_timeout,
    )
    return RunningListener(PROTOCOL, listener.address, listener.close, listener.sockets)


def listener_factories() -> dict[str, ListenerFactory]:
    return {PROTOCOL: start_managesieve_listener}


__all__ = ["ManageSieveConnection", "listener_factories", "start_managesieve_listener"]
