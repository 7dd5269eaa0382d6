"""DNS as a domain's own servers publish it: what `check domain` asks, and who answered.

A recursive resolver may hold an answer for its TTL after the owner changed the zone, so `check
domain` asks the domain's authoritative servers directly for names in its zone: the NS records
of the nearest enclosing zone (through the configured resolver), their addresses, then the first
server that answers. Names outside the zone (an MX at a provider, reverse DNS, included SPF
records, blocklists) go to the configured resolver, as do names in the zone that are a CNAME to
elsewhere: an authoritative server does not follow those.

The port of the authoritative servers is `[dns] authoritative_port` (53; tests point it at their
loopback server). When no authoritative server answers, everything goes to the configured
resolver and a warning says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import TypeVar

from postoffice.config import ListenAddress
from postoffice.diagnostics.checks import Finding, Severity
from postoffice.mailauth.dns_types import DnsAnswer, DnsTemporaryError, IPAddress, MxRecord
from postoffice.mailauth.resolver import DnsResolver

R = TypeVar("R")
MAX_SERVERS = 6  # name servers tried before giving up on the zone's own answers
AUTHORITATIVE_TIMEOUT = 3.0


class ZoneResolver:
    """The `Resolver` protocol, asking ``authoritative`` for names in ``zone`` and ``recursive``
    for the others (and for in-zone names that are a CNAME out of the zone)."""

    def __init__(self, zone: str, recursive: DnsResolver, authoritative: DnsResolver | None) -> None:
        self.zone = zone
        self.recursive = recursive
        self.authoritative = authoritative

    def _server(self, name: str) -> DnsResolver | None:
        name = name.lower().rstrip(".")
        inside = name == self.zone or name.endswith("." + self.zone)
        return self.authoritative if inside and self.zone else None

    async def _ask(self, name: str, kind: str) -> DnsAnswer[R]:
        server = self._server(name)
        if server is None:
            answer: DnsAnswer[R] = await getattr(self.recursive, kind)(name)
            return answer
        answer = await getattr(server, kind)(name)
        if not answer.records and kind != "cname" and (await server.cname(name)).records:
            answer = await getattr(self.recursive, kind)(name)  # a CNAME out of the zone
        return answer

    async def txt(self, name: str) -> DnsAnswer[str]:
        return await self._ask(name, "txt")

    async def a(self, name: str) -> DnsAnswer[IPv4Address]:
        return await self._ask(name, "a")

    async def aaaa(self, name: str) -> DnsAnswer[IPv6Address]:
        return await self._ask(name, "aaaa")

    async def mx(self, name: str) -> DnsAnswer[MxRecord]:
        return await self._ask(name, "mx")

    async def cname(self, name: str) -> DnsAnswer[str]:
        return await self._ask(name, "cname")

    async def ptr(self, address: IPAddress) -> DnsAnswer[str]:
        return await self.recursive.ptr(address)  # reverse zones belong to the address's owner


@dataclass(frozen=True)
class ZoneView:
    resolver: ZoneResolver
    servers: list[str]  # "ns1.example.org (192.0.2.53)": who answered, for the report
    findings: list[Finding]


async def zone_view(recursive: DnsResolver, domain: str, *, port: int = 53,
                    timeout: float = AUTHORITATIVE_TIMEOUT) -> ZoneView:
    """Find ``domain``'s zone and an authoritative server of it that answers."""
    try:
        zone, names = await _zone_of(recursive, domain)
    except DnsTemporaryError as error:
        return _fallback(recursive, domain, f"its NS records could not be looked up ({error})")
    if not names:
        return _fallback(recursive, domain, "no NS records were found for it or a parent zone")
    tried: list[str] = []
    for host in names:
        for address in await _addresses(recursive, host):
            if len(tried) >= MAX_SERVERS:
                break
            server = DnsResolver((ListenAddress(str(address), port),), timeout=timeout)
            try:
                await server.mx(domain)  # any question the zone answers
            except DnsTemporaryError as error:
                tried.append(f"{host} ({address}): {error}")
                continue
            shown = f"{host} ({address})"
            return ZoneView(ZoneResolver(zone, recursive, server), [shown], [Finding(
                "dns-authoritative", Severity.OK,
                f"Answers about {zone} come from its authoritative server {shown}.", subject=zone)])
    why = "; ".join(tried) if tried else f"its name servers ({', '.join(names)}) have no address"
    return _fallback(recursive, domain, f"none of its name servers answered: {why}")


async def _zone_of(recursive: DnsResolver, domain: str) -> tuple[str, list[str]]:
    """The nearest zone at or above ``domain`` with NS records, and their names."""
    labels = domain.lower().rstrip(".").split(".")
    for start in range(len(labels) - 1):  # never the top-level domain's servers
        name = ".".join(labels[start:])
        answer = await recursive.ns(name)
        if answer.records:
            return name, sorted(set(answer.records))
    return "", []


async def _addresses(recursive: DnsResolver, host: str) -> list[IPAddress]:
    found: list[IPAddress] = []
    for ask in (recursive.a, recursive.aaaa):
        try:
            found.extend((await ask(host)).records)
        except DnsTemporaryError:
            continue
    return found


def _fallback(recursive: DnsResolver, domain: str, why: str) -> ZoneView:
    return ZoneView(ZoneResolver("", recursive, None), [], [Finding(
        "dns-authoritative", Severity.WARNING,
        f"The authoritative DNS servers of {domain} could not be asked: {why}; the answers below "
        "come from the configured resolver and may be up to a TTL old.",
        "Check that the domain's NS records name servers that answer on port 53 (and that this "
        "machine may reach them).", subject=domain)])
