"""MTA-STS policy discovery (RFC 8461 §3, §5): which TLS a recipient domain asks of its senders.

    sts = MtaSts(resolver, cache_file=data_dir / "mta-sts-cache.json")  # ssl_context= for tests
    found = await sts.lookup("example.org")     # PolicyLookup: policy (or None), where from, problem
    found.policy.mode, found.policy.allows("mx1.example.org")

Steps, and why:
- The TXT record ``_mta-sts.<domain>`` says whether a policy exists and its ``id``. When the id
  is the cached policy's and that has not expired, the cache answers without HTTPS (§3.3, §5.1).
- Otherwise the policy is fetched from ``https://mta-sts.<domain>/.well-known/mta-sts.txt``:
  the host's addresses through the project's resolver, a certificate valid for that name
  (WebPKI, or the ``ssl_context`` a test gives), HTTP 200 with text/plain, no redirects (§3.3),
  at most 64 KiB, all within ``timeout`` seconds. Everything runs on the event loop's sockets:
  nothing blocks it.
- A fetch failure (or no TXT record, or DNS trouble) falls back to a cached policy that has not
  expired (§5.1); without one the domain has no policy and mail goes opportunistically (§5:
  "senders ... MUST NOT ... fail delivery because of a missing policy"). A failed fetch is not
  repeated for ``retry_seconds`` (default 5 min), so a dead policy server does not slow every
  delivery to its domain.
- The cache lives in memory and in ``cache_file`` (JSON, written atomically off the loop when a
  new policy arrives), so a restart keeps it: a domain that switched to enforce cannot be
  downgraded by an attacker blocking the HTTPS fetch after our restart. At most
  ``max_entries`` domains are kept (expired ones dropped first, then the oldest).
- Fetches for one domain asked at once share one request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Literal

from postoffice.mailauth.dns_types import DnsTemporaryError, Resolver
from postoffice.net.streams import close_stream
from postoffice.queue.mta_sts_policy import MtaStsPolicy, PolicyError, parse_policy, policy_id

__all__ = ["MtaSts", "PolicyLookup"]

log = logging.getLogger(__name__)
MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 §3.3 suggests this limit
_MAX_HEADER_BYTES = 16 * 1024
_CACHE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class PolicyLookup:
    """What `MtaSts.lookup` found. ``policy`` None: no policy applies (send opportunistically)."""

    domain: str
    policy: MtaStsPolicy | None
    source: Literal["fetched", "cached", "none"] = "none"
    problem: str = ""  # why a published policy could not be fetched, in plain words


@dataclass(frozen=True, slots=True)
class _Cached:
    id: str
    policy: MtaStsPolicy
    fetched: float  # wall clock

    def fresh(self, now: float) -> bool:
        return now < self.fetched + self.policy.max_age


class _FetchFailed(Exception):
    pass


class MtaSts:
    def __init__(self, resolver: Resolver, *, cache_file: Path | None = None,
                 ssl_context: ssl.SSLContext | None = None, port: int = 443, timeout: float = 20.0,
                 retry_seconds: float = 300.0, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.resolver = resolver
        self.cache_file = cache_file
        self.context = ssl_context or _webpki_context()
        self.port = port
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._cache: dict[str, _Cached] = {}
        self._failed: dict[str, tuple[float, str]] = {}  # domain -> (until, problem)
        self._loaded = cache_file is None
        self._load_lock = asyncio.Lock()
        self._save_lock = asyncio.Lock()
        self._pending: dict[str, asyncio.Future[PolicyLookup]] = {}

    async def lookup(self, domain: str) -> PolicyLookup:
        """The policy that applies to mail for ``domain`` now; never raises for the network."""
        domain = domain.lower().rstrip(".")
        await self._load()
        pending = self._pending.get(domain)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(domain))
            self._pending[domain] = pending
            pending.add_done_callback(lambda _: self._pending.pop(domain, None))
        return await asyncio.shield(pending)

    async def _lookup(self, domain: str) -> PolicyLookup:
        now = self.clock()
        cached = self._cache.get(domain)
        if cached is not None and not cached.fresh(now):
            cached = None
        try:
            identity = policy_id((await self.resolver.txt(f"_mta-sts.{domain}")).records)
        except DnsTemporaryError as error:
            return self._fallback(domain, cached, f"the _mta-sts TXT lookup failed: {error}")
        if identity is None:  # no policy published: a cached one still holds until it expires
            return self._fallback(domain, cached, "")
        if cached is not None and cached.id == identity:
            return PolicyLookup(domain, _effective(cached.policy), "cached")
        failed = self._failed.get(domain)
        if failed is not None and failed[0] > now:
            return self._fallback(domain, cached, failed[1])
        try:
            policy = parse_policy(await self._fetch(domain))
        except (_FetchFailed, PolicyError) as error:
            problem = f"the MTA-STS policy of {domain} could not be fetched: {error}"
            log.info("%s", problem)
            if len(self._failed) >= self.max_entries:  # bounded: drop the ones already over
                self._failed = {d: f for d, f in self._failed.items() if f[0] > now}
            self._failed[domain] = (now + self.retry_seconds, problem)
            return self._fallback(domain, cached, problem)
        self._failed.pop(domain, None)
        self._remember(domain, _Cached(identity, policy, now))
        await self._save()
        return PolicyLookup(domain, _effective(policy), "fetched")

    def _fallback(self, domain: str, cached: _Cached | None, problem: str) -> PolicyLookup:
        if cached is not None:
            return PolicyLookup(domain, _effective(cached.policy), "cached", problem)
        return PolicyLookup(domain, None, "none", problem)

    # -- HTTPS ---------------------------------------------------------------------------------------

    async def _fetch(self, domain: str) -> str:
        host = f"mta-sts.{domain}"
        try:
            async with asyncio.timeout(self.timeout):
                addresses = await self._addresses(host)
                if not addresses:
                    raise _FetchFailed(f"{host} has no address")
                problems = []
                for address in addresses[:3]:
                    try:
                        return await self._get(host, str(address))
                    except OSError as error:  # the next address may answer
                        problems.append(f"[{address}]: {_plain(error)}")
                raise _FetchFailed(f"no connection to {host}: " + "; ".join(problems))
        except TimeoutError:
            raise _FetchFailed(f"no answer from {host} within {self.timeout:g} s") from None

    async def _addresses(self, host: str) -> list[IPv4Address | IPv6Address]:
        found: list[IPv4Address | IPv6Address] = []
        problems = []
        for ask in (self.resolver.a, self.resolver.aaaa):
            try:
                found.extend((await ask(host)).records)
            except DnsTemporaryError as error:
                problems.append(str(error))
        if not found and problems:
            raise _FetchFailed("; ".join(problems))
        return found

    async def _get(self, host: str, address: str) -> str:
        try:
            reader, writer = await asyncio.open_connection(
                address, self.port, ssl=self.context, server_hostname=host, limit=_MAX_HEADER_BYTES)
        except ssl.SSLCertVerificationError as error:
            raise _FetchFailed(f"the certificate of {host} is not valid: "
                               f"{error.verify_message or error.reason}") from None
        except ssl.SSLError as error:
            raise _FetchFailed(f"TLS with {host} failed: {_plain(error)}") from None
        try:
            writer.write(f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\n"
                         "Accept: text/plain\r\nUser-Agent: postoffice\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            return await _read_response(reader, host)
        finally:
            await close_stream(writer)

    # -- the cache -----------------------------------------------------------------------------------

    def _remember(self, domain: str, entry: _Cached) -> None:
        self._cache.pop(domain, None)
        self._cache[domain] = entry
        if len(self._cache) > self.max_entries:
            now = self.clock()
            for name in [n for n, c in self._cache.items() if not c.fresh(now)]:
                del self._cache[name]
            while len(self._cache) > self.max_entries:
                del self._cache[next(iter(self._cache))]  # the oldest fetched

    async def _load(self) -> None:
        if self._loaded:
            return
        async with self._load_lock:
            if self._loaded or self.cache_file is None:
                return
            entries = await asyncio.to_thread(_read_cache, self.cache_file)
            for domain, entry in entries.items():
                self._cache.setdefault(domain, entry)
            self._loaded = True

    async def _save(self) -> None:
        if self.cache_file is None:
            return
        now = self.clock()
        snapshot = {d: c for d, c in self._cache.items() if c.fresh(now)}
        async with self._save_lock:
            try:
                await asyncio.to_thread(_write_cache, self.cache_file, snapshot)
            except OSError as error:  # the policy still applies from memory
                log.warning("the MTA-STS cache %s could not be written: %s", self.cache_file, error)


def _effective(policy: MtaStsPolicy) -> MtaStsPolicy | None:
    return None if policy.mode == "none" else policy  # §5: "none" means no policy applies


async def _read_response(reader: asyncio.StreamReader, host: str) -> str:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise _FetchFailed(f"{host} sent a header over {_MAX_HEADER_BYTES} bytes") from None
    except asyncio.IncompleteReadError:
        raise _FetchFailed(f"{host} closed the connection before a complete answer") from None
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1."):
        raise _FetchFailed(f"{host} did not answer in HTTP")
    if status[1] != "200":  # §3.3: a redirect is not followed
        raise _FetchFailed(f"{host} answered HTTP {' '.join(status[1:])[:80]}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "text/plain":
        raise _FetchFailed(f"{host} served the policy as {media or 'no media type'}, not text/plain")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader, host)
    else:
        body = await reader.read(MAX_POLICY_BYTES + 1)
        while body and len(body) <= MAX_POLICY_BYTES:
            more = await reader.read(MAX_POLICY_BYTES + 1 - len(body))
            if not more:
                break
            body += more
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) < len(body):
            body = body[: int(length)]
    if len(body) > MAX_POLICY_BYTES:
        raise _FetchFailed(f"the policy of {host} is over {MAX_POLICY_BYTES} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise _FetchFailed(f"the policy of {host} is not UTF-8 text") from None


async def _read_chunked(reader: asyncio.StreamReader, host: str) -> bytes:
    body = b""
    try:
        while True:
            size_line = (await reader.readuntil(b"\r\n")).split(b";")[0].strip()
            size = int(size_line, 16)
            if size == 0:
                return body
            if len(body) + size > MAX_POLICY_BYTES:
                raise _FetchFailed(f"the policy of {host} is over {MAX_POLICY_BYTES} bytes")
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise _FetchFailed(f"{host} sent a malformed chunked answer") from None


def _read_cache(path: Path) -> dict[str, _Cached]:
    try:
        stored = json.loads(path.read_text())
        entries = {}
        for domain, item in stored.get("policies", {}).items():
            policy = MtaStsPolicy(item["mode"], tuple(item["mx"]), int(item["max_age"]))
            entries[str(domain)] = _Cached(str(item["id"]), policy, float(item["fetched"]))
        return entries
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        log.warning("the MTA-STS cache %s cannot be read (%s); starting without it", path, error)
        return {}


def _write_cache(path: Path, entries: dict[str, _Cached]) -> None:
    """Atomically: a temporary file, fsynced, renamed over the old one."""
    stored = {"format": _CACHE_FORMAT, "policies": {
        d: {"id": c.id, "mode": c.policy.mode, "mx": list(c.policy.mx), "max_age": c.policy.max_age,
            "fetched": c.fetched} for d, c in entries.items()}}
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as file:
        json.dump(stored, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _webpki_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _plain(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    text = getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error)
    return str(text) or type(error).__name__
