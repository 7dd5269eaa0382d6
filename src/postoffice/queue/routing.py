"""Where mail for a domain goes: its MX hosts in the order to try them, with their addresses
(RFC 5321 §5.1, RFC 7505), and the destination key traffic shaping groups by.

    found = await route(resolver, "example.org", mx_port=25)
    if found.problem:                          # RouteProblem("failed" | "deferred", reason, status)
        ...                                    # bounce now, or retry on the schedule
    for target in found.targets(prefer="ipv4"):    # Target(host, address, port, preference)
        ...                                    # connect, in this order, until one answers
    found.destination                          # "alt1.aspmx.l.google.com,aspmx.l.google.com,..."

Pure on the injected `Resolver` (mailauth/dns_types.py): no sockets, no clock.

Rules, and where they come from:
- MX records in preference order, lowest first; hosts of equal preference in random order
  (RFC 5321 §5.1: "randomize them to spread the load"). The random source is a parameter so
  tests can fix it.
- No MX record but the domain exists (NODATA): the domain itself is the one host, preference 0
  (the "implicit MX", RFC 5321 §5.1). No address there either: permanent failure.
- A null MX (a single MX whose host is ".", RFC 7505 §3): permanent failure at once, status
  5.1.10 (RFC 7505 §4.2), without asking for any address. A "." among other MX records breaks
  RFC 7505's "MUST NOT advertise any other MX" and is ignored; the others are used.
- The domain does not exist (NXDOMAIN): permanent failure, 5.1.2. A temporary DNS failure
  (DnsTemporaryError) at the MX step: deferred, with the resolver's plain reason.
- Each MX host's A and AAAA are both asked, concurrently; a host may have either or both. A host
  name that is an IP address ("MX 10 192.0.2.1.") is not a host name (RFC 5321 §5.1 requires a
  domain name; Exim and Postfix refuse it too) and is skipped. An MX host that is a CNAME
  (against RFC 2181 §10.3, but common) works: the recursive resolver follows the chain and the
  MX name is kept as the host's name. A host without addresses is skipped; when no host has
  any: deferred if a lookup failed temporarily, else permanent failure (5.4.4).
- At most `MAX_MX_HOSTS` hosts are looked up (a record set of hundreds costs nothing more).
- `local_hosts`: our own names. An MX list that leads back to us is a loop (RFC 5321 §5.1: drop
  our own record and every one of equal or worse preference): permanent failure when nothing is
  left (5.4.6, as Postfix's "mail for X loops back to myself").
- A domain that is an address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]", RFC 5321 §4.1.3)
  is delivered to that address, with no DNS.

The destination key is the sorted set of MX host names (the domain for an implicit MX, the
address for a literal): every domain Google hosts shares one key, so concurrency limits and the
back-off of a failing destination apply to the provider, not to each of its customers' domains.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Literal, TypeVar

from postoffice.mailauth.dns_types import (
    DnsAnswer,
    DnsTemporaryError,
    IPAddress,
    MxRecord,
    Resolver,
)

__all__ = ["MAX_MX_HOSTS", "Family", "MxHost", "Route", "RouteProblem", "Target", "route"]

T = TypeVar("T")
MAX_MX_HOSTS = 10  # hosts whose addresses are looked up; Postfix tries at most 5 addresses anyway
Family = Literal["ipv6", "ipv4", "ipv6-only", "ipv4-only"]


@dataclass(frozen=True, slots=True)
class RouteProblem:
    """Why there is nowhere to deliver: ``failed`` bounces now, ``deferred`` retries later.
    ``status`` is the RFC 3463 code a bounce reports."""

    kind: Literal["failed", "deferred"]
    reason: str
    status: str


@dataclass(frozen=True, slots=True)
class MxHost:
    name: str  # the MX host name as published (lower-case), or the domain for an implicit MX
    preference: int
    ipv4: tuple[IPv4Address, ...] = ()
    ipv6: tuple[IPv6Address, ...] = ()
    problem: str = ""  # why it has no address (or only some), in plain words
    temporary: bool = False  # a lookup failed for now (a retry may find addresses)


@dataclass(frozen=True, slots=True)
class Target:
    """One address to connect to: ``host`` is the name to check the certificate against."""

    host: str
    address: IPAddress
    port: int
    preference: int


@dataclass(frozen=True, slots=True)
class Route:
    domain: str
    port: int
    hosts: tuple[MxHost, ...] = ()  # in the order to try, each with at least one address
    destination: str = ""  # the traffic-shaping key: sorted MX host names joined by ","
    implicit: bool = False  # no MX record: the domain's own address (RFC 5321 §5.1)
    problem: RouteProblem | None = None
    skipped: tuple[str, ...] = field(default=())  # hosts left out, each with its reason

    def targets(self, prefer: Family = "ipv6") -> tuple[Target, ...]:
        """Every address to try, host by host in MX order; within a host the preferred family
        first (some providers refuse IPv6 senders without a PTR record: "ipv4" for those), or
        only one family with "ipv4-only"/"ipv6-only"."""
        out: list[Target] = []
        for host in self.hosts:
            v4: tuple[IPAddress, ...] = host.ipv4
            v6: tuple[IPAddress, ...] = host.ipv6
            families = {"ipv6": (v6, v4), "ipv4": (v4, v6), "ipv6-only": (v6,),
                        "ipv4-only": (v4,)}[prefer]
            out.extend(Target(host.name, address, self.port, host.preference)
                       for addresses in families for address in addresses)
        return tuple(out)


# One source for the whole process: seeding a new one from the OS cost more than routing itself.
_SHUFFLE = random.Random()


async def route(resolver: Resolver, domain: str, *, mx_port: int = 25,
                       local_hosts: Iterable[str] = (), rng: random.Random | None = None) -> Route:
    """The hosts mail for ``domain`` goes to, or why there are none (see the module docstring).
    Never raises for DNS trouble: that is a deferred `RouteProblem`."""
    rng = rng or _SHUFFLE
    domain = domain.strip().lower().removesuffix(".")
    if domain.startswith("[") and domain.endswith("]"):
        return _literal_route(domain, mx_port)
    try:
        answer = await resolver.mx(domain)
    except DnsTemporaryError as error:
        return Route(domain, mx_port, problem=RouteProblem(
            "deferred", f"the MX lookup for {domain} failed for now: {error}", "4.4.3"))
    if not answer.exists:
        return Route(domain, mx_port, problem=RouteProblem(
            "failed", f"the domain {domain} does not exist (no such name in DNS)", "5.1.2"))
    records = list(answer.records)
    if records and all(r.host == "" for r in records):
        return Route(domain, mx_port, problem=RouteProblem(
            "failed", f"{domain} does not accept mail (null MX)", "5.1.10"))
    if not records:
        return await _implicit_route(resolver, domain, mx_port)
    return await _mx_route(resolver, domain, mx_port, records, frozenset(
        h.lower().removesuffix(".") for h in local_hosts), rng)


async def _mx_route(resolver: Resolver, domain: str, port: int, records: list[MxRecord],
                    local: frozenset[str], rng: random.Random) -> Route:
    skipped: list[str] = []
    usable: list[MxRecord] = []
    for record in records:
        if record.host == "":
            skipped.append(f"a null MX among other MX records of {domain} (ignored, RFC 7505 §3)")
        elif _is_address(record.host):
            skipped.append(f"{record.host} (an IP address, not a host name: RFC 5321 §5.1)")
        else:
            usable.append(record)
    ours = [r.preference for r in usable if r.host in local]
    if ours:  # RFC 5321 §5.1: only hosts better than ourselves
        usable = [r for r in usable if r.preference < min(ours)]
        if not usable:
            return Route(domain, port, problem=RouteProblem(
                "failed", f"mail for {domain} loops back to this server (it is its best MX) "
                          "but the domain is not served here", "5.4.6"), skipped=tuple(skipped))
    if not usable:
        return Route(domain, port, problem=RouteProblem(
            "failed", f"no usable MX host for {domain}: " + "; ".join(skipped), "5.4.4"),
            skipped=tuple(skipped))
    ordered = _by_preference(usable, rng)[:MAX_MX_HOSTS]
    destination = ",".join(sorted({r.host for r in usable}))
    hosts = await asyncio.gather(*(_resolve_host(resolver, r.host, r.preference, rng) for r in ordered))
    return _finish(domain, port, hosts, destination, implicit=False, skipped=skipped)


async def _implicit_route(resolver: Resolver, domain: str, port: int) -> Route:
    host = await _resolve_host(resolver, domain, 0, _SHUFFLE)  # one host: nothing to randomise
    if not (host.ipv4 or host.ipv6) and not host.temporary:
        return Route(domain, port, implicit=True, problem=RouteProblem(
            "failed", f"{domain} has no MX record and no address (RFC 5321 §5.1)", "5.4.4"))
    return _finish(domain, port, [host], domain, implicit=True, skipped=[])


def _finish(domain: str, port: int, hosts: list[MxHost], destination: str, *, implicit: bool,
            skipped: list[str]) -> Route:
    reachable = tuple(h for h in hosts if h.ipv4 or h.ipv6)
    skipped = skipped + [f"{h.name} ({h.problem})" for h in hosts if h.problem]
    if reachable:
        return Route(domain, port, reachable, destination, implicit, skipped=tuple(skipped))
    temporary = any(h.temporary for h in hosts)
    names = ", ".join(h.name for h in hosts)
    if temporary:
        problem = RouteProblem("deferred", f"the address lookup of the mail servers of {domain} "
                               f"failed for now: {'; '.join(skipped)}", "4.4.3")
    else:
        problem = RouteProblem("failed", f"no mail server of {domain} has an address ({names})",
                               "5.4.4")
    return Route(domain, port, (), destination, implicit, problem, tuple(skipped))


async def _resolve_host(resolver: Resolver, name: str, preference: int,
                        rng: random.Random) -> MxHost:
    """A and AAAA of one host, concurrently; each family shuffled (load spreading among a
    host's addresses, as round-robin DNS intends)."""
    v4, v6 = await asyncio.gather(resolver.a(name), resolver.aaaa(name), return_exceptions=True)
    problems = [f"{kind} lookup failed for now: {answer}" for kind, answer in (("A", v4), ("AAAA", v6))
                if isinstance(answer, DnsTemporaryError)]
    for answer in (v4, v6):
        if isinstance(answer, BaseException) and not isinstance(answer, DnsTemporaryError):
            raise answer  # our bug, not the network's: do not hide it
    ipv4 = _shuffled(v4.records if isinstance(v4, DnsAnswer) else (), rng)
    ipv6 = _shuffled(v6.records if isinstance(v6, DnsAnswer) else (), rng)
    if not problems and not ipv4 and not ipv6:
        exists = isinstance(v4, DnsAnswer) and v4.exists
        problems.append("no A or AAAA record" if exists else "no such host in DNS")
    return MxHost(name, preference, tuple(ipv4), tuple(ipv6), "; ".join(problems),
                  temporary=any(isinstance(a, DnsTemporaryError) for a in (v4, v6)))


def _by_preference(records: list[MxRecord], rng: random.Random) -> list[MxRecord]:
    groups: dict[int, list[MxRecord]] = {}
    for record in records:
        groups.setdefault(record.preference, []).append(record)
    ordered: list[MxRecord] = []
    for preference in sorted(groups):
        ordered.extend(_shuffled(groups[preference], rng))
    return ordered


def _shuffled(items: Iterable[T], rng: random.Random) -> list[T]:
    out = list(items)
    rng.shuffle(out)
    return out


def _is_address(host: str) -> bool:
    try:
        ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _literal_route(domain: str, port: int) -> Route:
    text = domain[1:-1]
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    try:
        address = ip_address(text)
    except ValueError:
        return Route(domain, port, problem=RouteProblem(
            "failed", f"{domain} is not a valid address literal (RFC 5321 §4.1.3)", "5.1.2"))
    if isinstance(address, IPv6Address) and not domain.lower().startswith("[ipv6:"):
        return Route(domain, port, problem=RouteProblem(
            "failed", f"{domain}: an IPv6 literal is written [IPv6:...] (RFC 5321 §4.1.3)", "5.1.2"))
    host = MxHost(str(address), 0, (address,) if isinstance(address, IPv4Address) else (),
                  (address,) if isinstance(address, IPv6Address) else ())
    return Route(domain, port, (host,), str(address), implicit=True)
