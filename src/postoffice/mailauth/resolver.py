"""The project's only DNS client: `DnsResolver`, the `Resolver` of mailauth/dns_types.py on
dnspython's asyncio resolver, with a bounded cache.

    resolver = DnsResolver.from_config(config.dns)       # or DnsResolver([ListenAddress(...)], 5.0)
    answer = await resolver.txt("_dmarc.example.org")    # DnsAnswer: records, exists, ttl
    # raises DnsTemporaryError for SERVFAIL, REFUSED, a timeout or a malformed answer

Invariants, and why:
- Three outcomes kept apart (RFC 7208 §2.6, RFC 6376 §6.1.2, RFC 8601 §2.7): records; a permanent
  absence (NXDOMAIN: ``exists`` False; NODATA: ``exists`` True), which is an empty answer; and a
  temporary failure, which is `DnsTemporaryError` and nothing else. Any exception out of dnspython,
  the socket layer or a malformed answer becomes `DnsTemporaryError` with a plain message, so a
  caller never sees a traceback for the network's trouble.
- A name that cannot exist in DNS (a label over 63 octets, a name over 255, an empty label: what
  an SPF macro expansion can produce) is answered as NXDOMAIN without asking anyone; so are the
  empty name and "@", which dnspython would read as the root.
- Each question finishes within ``timeout`` seconds (dnspython's lifetime, guarded once more).
- Truncated UDP answers are asked again over TCP (dnspython), so records up to the 64 KB DNS
  message limit work; anything larger cannot be a DNS message and fails as malformed.
- CNAME chains come resolved from the recursive server; dnspython follows them in the answer (16
  links at most). Names are asked absolute: no search list from resolv.conf applies.
- Cache (``cache_entries``, LRU; 0 = off): answers for their TTL (at most a day), absences for
  the SOA minimum (RFC 2308, at most 3 hours), temporary failures never. Memory is bounded by
  the entry count and by ~1 KB per entry on average (64 KB at least); an answer bigger than a
  sixteenth of that is not kept.
- Identical questions asked while one is on the wire wait for that one (one upstream query for
  the many DKIM signatures or SPF includes naming the same record).
- Questions carry the AD flag (RFC 6840 §5.7), so a validating resolver says whether it
  validated the answer; an answer is ``authenticated`` only when every configured server is on
  this machine (loopback), since the AD bit crosses a network unprotected (RFC 6698 §4.1).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, TypeVar, cast

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from postoffice.config import DnsConfig, ListenAddress
from postoffice.mailauth.dns_types import (
    DnsAnswer,
    DnsTemporaryError,
    IPAddress,
    MxRecord,
    TlsaRecord,
)

log = logging.getLogger(__name__)
R = TypeVar("R")
MAX_TTL = 86_400  # a day: a record changed at the source is seen again by then
MAX_NEGATIVE_TTL = 3 * 3600  # RFC 2308 §5
BYTES_PER_ENTRY = 1024  # the cache's memory budget per entry, on average
MIN_BYTES = 64 * 1024
_PER_TRY_SECONDS = 2.0  # a lost UDP datagram is asked again after this, within the timeout
Convert = Callable[[dns.resolver.Answer], tuple[Any, ...]]
_Key = tuple[str, int]


@dataclass
class ResolverStats:
    """Counts since start: questions sent upstream, answered from the cache, joined to one on
    the wire, and temporary failures."""

    queries: int = 0
    cache_hits: int = 0
    coalesced: int = 0
    failures: int = 0


class AnswerCache:
    """LRU of answers until their expiry, bounded by entries and by bytes."""

    def __init__(self, entries: int) -> None:
        self.max_entries = entries
        # At least 64 KB, so a small cache still holds a few big keys; one answer at most 1/16.
        self.max_bytes = max(entries * BYTES_PER_ENTRY, MIN_BYTES) if entries > 0 else 0
        self.bytes = 0
        self._entries: OrderedDict[_Key, tuple[float, int, DnsAnswer[Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: _Key, now: float) -> DnsAnswer[Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, size, answer = entry
        if now >= expires:
            del self._entries[key]
            self.bytes -= size
            return None
        self._entries.move_to_end(key)
        return answer

    def put(self, key: _Key, answer: DnsAnswer[Any], now: float) -> None:
        ttl = min(answer.ttl, MAX_TTL if answer.records else MAX_NEGATIVE_TTL)
        size = _size(key, answer)
        if ttl <= 0 or self.max_entries <= 0 or size > self.max_bytes // 16:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (now + ttl, size, answer)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, evicted, _) = self._entries.popitem(last=False)
            self.bytes -= evicted


def _size(key: _Key, answer: DnsAnswer[Any]) -> int:
    """Roughly what an entry holds in memory (enough to bound it, not to account for it)."""
    return 200 + len(key[0]) + sum(len(str(record)) + 60 for record in answer.records)


class DnsResolver:
    """Asks the configured DNS servers (or those of /etc/resolv.conf) and caches their answers."""

    def __init__(self, nameservers: Sequence[ListenAddress] = (), timeout: float = 5.0,
                 cache_entries: int = 10_000, *, resolv_conf: str = "/etc/resolv.conf") -> None:
        self.timeout = timeout
        self.stats = ResolverStats()
        self.cache = AnswerCache(cache_entries)
        self._pending: dict[_Key, asyncio.Future[DnsAnswer[Any]]] = {}
        self._problem = ""  # why no question can be asked (no servers), said in every failure
        if nameservers:
            self._dns = dns.asyncresolver.Resolver(configure=False)
            self._dns.nameservers = [dns.nameserver.Do53Nameserver(a.host, a.port) for a in nameservers]
        else:
            try:
                self._dns = dns.asyncresolver.Resolver(resolv_conf, configure=True)
            except (dns.exception.DNSException, OSError) as error:
                self._dns = dns.asyncresolver.Resolver(configure=False)
                self._problem = (f"no DNS server to ask: {resolv_conf} cannot be used"
                                 f" ({_plain(error)}); set [dns] nameservers")
                log.warning("%s", self._problem)
        self.local = _all_loopback(self._dns.nameservers)  # whose AD bit may be believed
        self._dns.flags = dns.flags.RD | dns.flags.AD
        self._dns.cache = None  # ours caches typed answers, bounded
        self._dns.lifetime = timeout
        self._dns.timeout = min(timeout, _PER_TRY_SECONDS)
        self._dns.retry_servfail = False
        self._dns.use_edns(0, 0, 1232)  # the DNS Flag Day 2020 size: no fragmented UDP

    @classmethod
    def from_config(cls, config: DnsConfig) -> DnsResolver:
        return cls(config.nameservers, config.timeout, config.cache_entries)

    # -- the Resolver protocol -------------------------------------------------------------------

    async def txt(self, name: str) -> DnsAnswer[str]:
        return await self._answer(name, dns.rdatatype.TXT, _txt)

    async def a(self, name: str) -> DnsAnswer[IPv4Address]:
        return await self._answer(name, dns.rdatatype.A, _a)

    async def aaaa(self, name: str) -> DnsAnswer[IPv6Address]:
        return await self._answer(name, dns.rdatatype.AAAA, _aaaa)

    async def mx(self, name: str) -> DnsAnswer[MxRecord]:
        return await self._answer(name, dns.rdatatype.MX, _mx)

    async def tlsa(self, name: str) -> DnsAnswer[TlsaRecord]:
        """TLSA records (RFC 6698), e.g. of "_25._tcp.mx1.example.org" (the TlsaResolver protocol)."""
        return await self._answer(name, dns.rdatatype.TLSA, _tlsa)

    async def ptr(self, address: IPAddress) -> DnsAnswer[str]:
        return await self._answer(reverse_name(address), dns.rdatatype.PTR, _ptr)

    async def ns(self, name: str) -> DnsAnswer[str]:
        """The name servers of zone ``name`` (host names), for `check domain`."""
        return await self._answer(name, dns.rdatatype.NS, _ns)

    async def cname(self, name: str) -> DnsAnswer[str]:
        """The CNAME target at ``name`` itself (one step), e.g. to tell an MX name that is an alias."""
        return await self._answer(name, dns.rdatatype.CNAME, _cname)

    # -- cache, coalescing, the question itself ------------------------------------------------------

    async def _answer(self, name: str, rdtype: dns.rdatatype.RdataType, convert: Convert) -> DnsAnswer[R]:
        key = (name.lower().rstrip("."), int(rdtype))
        cached = self.cache.get(key, time.monotonic())
        if cached is not None:
            self.stats.cache_hits += 1
            return cast(DnsAnswer[R], cached)
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._ask(key, rdtype, convert))
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._finished(key, done))
        else:
            self.stats.coalesced += 1
        # shield: a caller that gives up (its session closed) does not cancel the others' question.
        return cast(DnsAnswer[R], await asyncio.shield(pending))

    def _finished(self, key: _Key, done: asyncio.Future[DnsAnswer[Any]]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]
        if not done.cancelled() and done.exception() is None:  # exception(): marks it retrieved
            self.cache.put(key, done.result(), time.monotonic())

    async def _ask(self, key: _Key, rdtype: dns.rdatatype.RdataType, convert: Convert) -> DnsAnswer[Any]:
        name, what = key[0], f"{dns.rdatatype.to_text(rdtype)} {key[0] or '.'}"
        if name in ("", "@"):  # dnspython would read either as the root: nobody means that
            return DnsAnswer((), exists=False)
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException:
            return DnsAnswer((), exists=False)  # not a possible DNS name: nothing is there
        if self._problem:
            self.stats.failures += 1
            raise DnsTemporaryError(f"DNS lookup of {what} failed: {self._problem}")
        self.stats.queries += 1
        try:
            async with asyncio.timeout(self.timeout + 1):  # dnspython keeps its lifetime; in case
                answer = await self._dns.resolve(qname, rdtype, raise_on_no_answer=False, search=False)
            if answer.response.flags & dns.flags.TC:  # over TCP (dnspython retries UDP's): bogus
                raise dns.message.Truncated
            return DnsAnswer(convert(answer), exists=True, ttl=answer.chaining_result.minimum_ttl,
                             authenticated=self.local and bool(answer.response.flags & dns.flags.AD))
        except dns.resolver.NXDOMAIN as absent:
            return DnsAnswer((), exists=False, ttl=_negative_ttl(absent, qname))
        except dns.resolver.YXDOMAIN:  # a DNAME made the name too long: it cannot exist
            return DnsAnswer((), exists=False)
        except (dns.exception.Timeout, TimeoutError):
            problem = f"DNS timeout for {what} after {self.timeout:g} s"
        except dns.resolver.NoNameservers as failed:
            problem = f"DNS lookup of {what} failed: {_server_errors(failed)}"
        except Exception as error:  # any other trouble is the network's: never a crash of ours
            problem = f"DNS lookup of {what} failed: {_plain(error)}"
        self.stats.failures += 1
        raise DnsTemporaryError(problem)


def reverse_name(address: IPAddress | str) -> str:
    """The PTR name of an address, without the final dot: d.c.b.a.in-addr.arpa, or the nibbles
    under ip6.arpa; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is asked as the IPv4 one, as
    dnspython's reversename does. The stdlib's reverse_pointer is that, for a tenth of the cost."""
    ip = ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.reverse_pointer


def _negative_ttl(absent: dns.resolver.NXDOMAIN, qname: dns.name.Name) -> int:
    """The SOA minimum of the NXDOMAIN answer (RFC 2308 §5), 0 (do not cache) without one."""
    try:
        response: dns.message.QueryMessage = absent.kwargs["responses"][qname]
        if not any(rrset.rdtype == dns.rdatatype.SOA for rrset in response.authority):
            return 0
        return int(response.resolve_chaining().minimum_ttl)
    except Exception:  # an odd negative answer is still an absence, just not cached
        return 0


def _server_errors(failed: dns.resolver.NoNameservers) -> str:
    """What each server said, e.g. "SERVFAIL from 127.0.0.1:53; a malformed answer (FormError) from ..."."""
    said = []
    for server, _tcp, _port, error, _response in failed.kwargs.get("errors", []):
        said.append(f"{error if isinstance(error, str) else _plain(error)} from {_server(server)}")
    return "; ".join(dict.fromkeys(said)) or "no server answered"


def _server(text: str) -> str:
    """dnspython's "Do53:127.0.0.1@53" as "127.0.0.1:53" ("[::1]:53"), as [dns] nameservers has it."""
    host, _, port = text.removeprefix("Do53:").rpartition("@")
    if not host:
        return text
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _plain(error: BaseException) -> str:
    if isinstance(error, dns.message.Truncated):
        return "a truncated answer over TCP"
    if isinstance(error, dns.exception.FormError | dns.message.ChainTooLong | EOFError | ValueError):
        return f"a malformed answer ({type(error).__name__})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return str(error) or type(error).__name__


def _txt(answer: dns.resolver.Answer) -> tuple[str, ...]:
    # RFC 7208 §3.3, RFC 6376 §3.6.2.2: a record's strings are joined without a separator.
    return tuple(b"".join(r.strings).decode("utf-8", "surrogateescape") for r in answer)


def _a(answer: dns.resolver.Answer) -> tuple[IPv4Address, ...]:
    return tuple(IPv4Address(r.address) for r in answer)


def _aaaa(answer: dns.resolver.Answer) -> tuple[IPv6Address, ...]:
    return tuple(IPv6Address(r.address) for r in answer)


def _mx(answer: dns.resolver.Answer) -> tuple[MxRecord, ...]:
    return tuple(MxRecord(int(r.preference), _host(r.exchange)) for r in answer)


def _tlsa(answer: dns.resolver.Answer) -> tuple[TlsaRecord, ...]:
    return tuple(TlsaRecord(int(r.usage), int(r.selector), int(r.mtype), bytes(r.cert)) for r in answer)


def _all_loopback(nameservers: Sequence[object]) -> bool:
    """Whether every server (dnspython's strings or Nameserver objects) is on this machine."""
    hosts = [str(getattr(n, "address", n)) for n in nameservers]
    try:
        return bool(hosts) and all(ip_address(h).is_loopback for h in hosts)
    except ValueError:  # a DoH URL or a name: not a loopback address
        return False


def _ptr(answer: dns.resolver.Answer) -> tuple[str, ...]:
    return tuple(_host(r.target) for r in answer)


def _ns(answer: dns.resolver.Answer) -> tuple[str, ...]:
    return tuple(_host(r.target) for r in answer)


def _cname(answer: dns.resolver.Answer) -> tuple[str, ...]:
    # dnspython follows a CNAME for any type; asked for CNAME itself, the first record is it.
    return tuple(_host(r.target) for r in answer if r.rdtype == dns.rdatatype.CNAME)[:1]


def _host(name: dns.name.Name) -> str:
    """Lower-case without the trailing dot; "" for the root (the null MX, RFC 7505)."""
    return "" if name == dns.name.root else name.to_text(omit_final_dot=True).lower()
