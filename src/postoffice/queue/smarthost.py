"""The smarthost `Transport` (queue/outcomes.py): every message it gets goes to one relay, over
TLS, logged in, instead of to the recipients' MX hosts (`[outbound] smarthost`, `routes`,
`sender_routes`; queue/transports.py picks which relay a recipient takes).

    login = RelayLogin("me@example.net", password_file=Path("/etc/postoffice/relay-password"))
    relay = SmarthostTransport(ListenAddress("smtp.example.net", 587), resolver,
                               helo_name="mail.example.org", login=login)
    outcomes = await relay.deliver(message, raw, ("bob@example.com", "carol@example.org"))
    await relay.close()                    # QUIT the connections kept for reuse

Rules, and why:
- TLS always, verified against the relay's name with the system's CAs (or ``context``, for
  tests): STARTTLS on 587 (``implicit_tls=False``), TLS from the first byte on 465. Without
  TLS nothing is sent, least of all the password (SmtpSession's ``TlsPolicy.require``).
- The password is read when a connection is opened, from ``password_file`` (its first line),
  else from the environment variable POSTOFFICE_SMARTHOST_PASSWORD: never from argv or the
  config file, never in a reason, a log line or a repr. A password changed on disk is used from
  the next connection on. AUTH PLAIN if offered, else LOGIN.
- XOAUTH2 (Google Workspace, Microsoft 365): an OAuth access token from ``CommandTokens`` (a
  command run without a shell, its first line of output, kept for 45 minutes) or
  ``FileTokens`` (a file another program keeps fresh); a refused token is replaced once.
- A missing password or token, or a relay name that does not resolve, defers every recipient
  with the reason: the mail waits for the configuration to be fixed and is never bounced for
  it. The relay's own replies decide as anywhere: 2xx delivered, 4xx deferred, 5xx failed.
- Connections are reused (at most ``max_messages_per_connection`` messages each, closed after
  ``idle_seconds`` unused); at most ``concurrency`` deliveries to the relay at once (more wait).
- Every recipient gets an outcome; nothing here raises for the network's or the relay's trouble.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

from postoffice.config_values import ListenAddress
from postoffice.mailauth.dns_types import DnsTemporaryError, IPAddress, Resolver
from postoffice.queue.outcomes import RecipientOutcome, try_next_server
from postoffice.queue.smtp_session import (
    AccessTokens,
    Credentials,
    SmtpSession,
    Timeouts,
    TlsPolicy,
    TokenUnavailable,
)
from postoffice.store.interface import QueuedMessage

__all__ = ["PASSWORD_VARIABLE", "TOKEN_MAX_AGE", "CommandTokens", "FileTokens", "RelayLogin",
           "SmarthostTransport"]

PASSWORD_VARIABLE = "POSTOFFICE_SMARTHOST_PASSWORD"
TOKEN_MAX_AGE = 45 * 60.0  # Google's and Microsoft's access tokens live an hour
_MAX_ADDRESSES = 4  # relay addresses tried per delivery before deferring
_MAX_SECRET = 64 * 1024  # a password or token file larger than this is not one


class LoginUnavailable(Exception):
    """No credentials can be had now; the message says why, in plain words, without them."""


@dataclass(frozen=True, slots=True)
class RelayLogin:
    """Who we are at the relay: ``user`` with a password (``password_file``, else the
    environment variable), or with XOAUTH2 access tokens from ``tokens``."""

    user: str
    password_file: Path | None = None
    tokens: AccessTokens | None = field(default=None, repr=False)

    async def credentials(self) -> Credentials:
        """Fresh credentials for a new connection; `LoginUnavailable` says why there are none."""
        if self.tokens is not None:
            return Credentials(self.user, tokens=self.tokens)
        if self.password_file is not None:
            return Credentials(self.user, await _first_line(self.password_file, "smarthost password file"))
        password = os.environ.get(PASSWORD_VARIABLE, "")
        if not password:
            raise LoginUnavailable(f"no password for the smarthost user {self.user}: set "
                                   f"[outbound] smarthost_password_file or {PASSWORD_VARIABLE}")
        return Credentials(self.user, password)


class CommandTokens:
    """XOAUTH2 tokens printed by a command (``smarthost_token_command``): split like a shell
    would (shlex) but run without one, with no input, for at most ``timeout`` seconds; its
    first line of output is the token. Run again after ``max_age`` or when a token is refused."""

    def __init__(self, command: str, *, max_age: float = TOKEN_MAX_AGE, timeout: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.command = command
        self.max_age = max_age
        self.timeout = timeout
        self.clock = clock
        self.runs = 0  # how often the command ran (tests, and a log would want it)
        self._token = ""
        self._since = 0.0
        self._lock = asyncio.Lock()  # one run at a time; the others wait for its token

    async def get(self, *, fresh: bool = False) -> str:
        async with self._lock:
            if fresh or not self._token or self.clock() - self._since >= self.max_age:
                self._token = ""
                self._token = await self._run()
                self._since = self.clock()
            return self._token

    async def _run(self) -> str:
        try:
            argv = shlex.split(self.command)
        except ValueError as error:
            raise TokenUnavailable(f"the token command cannot be read: {error}") from None
        if not argv:
            raise TokenUnavailable("the token command is empty")
        name = argv[0]
        self.runs += 1
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
        except OSError as error:
            raise TokenUnavailable(f"the token command {name} cannot be run: "
                                   f"{error.strerror or error}") from None
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await process.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise TokenUnavailable(f"the token command {name} printed no token within "
                                   f"{self.timeout:g} s") from None
        if process.returncode != 0:
            said = err.decode(errors="replace").strip().splitlines()
            raise TokenUnavailable(f"the token command {name} failed (exit status {process.returncode})"
                                   + (f": {said[0][:200]}" if said else ""))
        return _token(out, f"the token command {name}")


class FileTokens:
    """XOAUTH2 tokens from a file another program keeps fresh (``smarthost_token_file``): read
    again for every connection, so a renewed token is used at once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def get(self, *, fresh: bool = False) -> str:
        try:
            data = await asyncio.to_thread(_read_small, self.path)
        except OSError as error:
            raise TokenUnavailable(f"the token file {self.path} cannot be read: "
                                   f"{error.strerror or error}") from None
        return _token(data, f"the token file {self.path}")


class SmarthostTransport:
    """Sends every message it is given to one relay (see the module docstring)."""

    def __init__(self, relay: ListenAddress, resolver: Resolver, *, helo_name: str,
                 implicit_tls: bool = False, login: RelayLogin | None = None,
                 context: ssl.SSLContext | None = None, timeouts: Timeouts | None = None,
                 concurrency: int = 5, max_messages_per_connection: int = 100,
                 idle_seconds: float = 5.0, source_ipv4: str = "", source_ipv6: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        if concurrency < 1 or max_messages_per_connection < 1:
            raise ValueError("concurrency and max_messages_per_connection must be at least 1")
        self.relay = relay
        self.resolver = resolver
        self.helo_name = helo_name
        self.login = login
        self.tls = TlsPolicy(require=True, verify=True, context=context, policy="smarthost",
                             implicit=implicit_tls)
        self.timeouts = timeouts
        self.max_messages_per_connection = max_messages_per_connection
        self.idle_seconds = idle_seconds
        self.source_ipv4 = source_ipv4
        self.source_ipv6 = source_ipv6
        self.clock = clock
        self.opened = 0  # connections made (tests check reuse with it)
        self._slots = asyncio.Semaphore(concurrency)
        self._idle: list[tuple[SmtpSession, int, float]] = []  # session, messages sent, since
        self._closing: set[asyncio.Task[None]] = set()  # sessions being closed in the background

    def __repr__(self) -> str:
        return f"SmarthostTransport({self.relay})"

    async def deliver(self, message: QueuedMessage, raw: bytes,
                      recipients: tuple[str, ...]) -> tuple[RecipientOutcome, ...]:
        async with self._slots:
            kept = self._take()
            if kept is None:
                return await self._deliver_new(message, raw, recipients)
            # A kept session connects again by itself when the relay dropped it meanwhile.
            session, uses = kept
            outcomes = await session.deliver(message, raw, recipients)
            await self._done(session, uses + 1, outcomes)
            return outcomes

    async def close(self) -> None:
        """QUIT every kept connection."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(session.close() for session, _, _ in idle), *self._closing)

    async def _deliver_new(self, message: QueuedMessage, raw: bytes,
                           recipients: tuple[str, ...]) -> tuple[RecipientOutcome, ...]:
        try:
            addresses = await self._addresses()
            credentials = await self.login.credentials() if self.login is not None else None
        except LoginUnavailable as error:
            return _deferred(recipients, str(error), "4.3.5")  # our configuration, not theirs
        except _NoAddress as error:
            return _deferred(recipients, str(error), error.status)
        outcomes: tuple[RecipientOutcome, ...] = ()
        for address in addresses[:_MAX_ADDRESSES]:
            session = SmtpSession(self.relay.host, str(address), self.relay.port,
                                  helo_name=self.helo_name, tls=self.tls, credentials=credentials,
                                  source_ipv4=self.source_ipv4 or None,
                                  source_ipv6=self.source_ipv6 or None, timeouts=self.timeouts)
            self.opened += 1
            outcomes = await session.deliver(message, raw, recipients)
            if not _unanswered(outcomes):
                await self._done(session, 1, outcomes)
                return outcomes
            await session.close()  # no answer at this address: the relay's next one, if any
        return outcomes

    async def _addresses(self) -> list[IPAddress]:
        """The relay's addresses, IPv4 first (machines that need a smarthost are mostly home
        and cloud hosts, where IPv4 is the family that works)."""
        host = self.relay.host
        with contextlib.suppress(ValueError):
            return [ip_address(host)]
        if host.lower() == "localhost":  # RFC 6761 §6.3: never asked of DNS
            return [IPv4Address("127.0.0.1"), IPv6Address("::1")]
        v4, v6 = await asyncio.gather(self.resolver.a(host), self.resolver.aaaa(host),
                                      return_exceptions=True)
        found: list[IPAddress] = []
        problems = []
        for answer in (v4, v6):
            if isinstance(answer, DnsTemporaryError):
                problems.append(str(answer))
            elif isinstance(answer, BaseException):
                raise answer  # our bug, not the network's: do not hide it
            else:
                found.extend(answer.records)
        if found:
            return found
        if problems:
            raise _NoAddress(f"the address lookup of the smarthost {host} failed for now: "
                             f"{'; '.join(problems)}", "4.4.3")
        raise _NoAddress(f"the smarthost {host} has no address in DNS (check [outbound] "
                         "smarthost and routes)", "4.4.4")

    def _take(self) -> tuple[SmtpSession, int] | None:
        now = self.clock()
        while self._idle:
            session, uses, since = self._idle.pop()
            if now - since <= self.idle_seconds:
                return session, uses
            self._close_later(session)  # unused too long: the relay may have hung up
        return None

    async def _done(self, session: SmtpSession, uses: int,
                    outcomes: tuple[RecipientOutcome, ...]) -> None:
        """Keep the session for the next message, unless it is used up or broken."""
        broken = any(try_next_server(o) for o in outcomes)
        if broken or uses >= self.max_messages_per_connection:
            await session.close()
        else:
            self._idle.append((session, uses, self.clock()))

    def _close_later(self, session: SmtpSession) -> None:
        task = asyncio.ensure_future(session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


class _NoAddress(Exception):
    def __init__(self, reason: str, status: str) -> None:
        super().__init__(reason)
        self.status = status


def _unanswered(outcomes: tuple[RecipientOutcome, ...]) -> bool:
    """No reply at all from this address (no connection, a failed handshake): the relay's next
    address may answer. A reply, even a refusal, decides."""
    return all(o.kind == "deferred" and o.reply is None for o in outcomes)


def _deferred(recipients: tuple[str, ...], reason: str, status: str) -> tuple[RecipientOutcome, ...]:
    return tuple(RecipientOutcome(r, "deferred", reason=reason, status=status) for r in recipients)


def _read_small(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(_MAX_SECRET)


async def _first_line(path: Path, what: str) -> str:
    """The first line of a secret file, without its line end (spaces are kept: they may be
    part of a password)."""
    try:
        data = await asyncio.to_thread(_read_small, path)
    except OSError as error:
        raise LoginUnavailable(f"the {what} {path} cannot be read: {error.strerror or error}") from None
    line = data.decode("utf-8", errors="replace").split("\n", 1)[0].removesuffix("\r")
    if not line:
        raise LoginUnavailable(f"the {what} {path} is empty")
    return line


def _token(data: bytes, source: str) -> str:
    lines = data.decode("ascii", errors="replace").strip().splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise TokenUnavailable(f"{source} gave no token")
    if not token.isprintable() or "\ufffd" in token:
        raise TokenUnavailable(f"{source} gave something that is not an access token")
    return token

