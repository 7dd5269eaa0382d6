"""An in-memory `Resolver` for the evaluators' conformance suites (SPF, DKIM, ARC vectors).

The suites come with their own DNS data (openspf `zonedata`, dkimpy `dns-records.txt`, ValiMail
`txt-records`); they are served from memory here so thousands of cases run in seconds. End-to-end
tests use the real DNS server on loopback instead (tests/zones/).

`records` maps a name (any case, with or without the trailing dot) to {type: [values]}; types are
"TXT", "A", "AAAA", "MX" (value (preference, host)), "PTR", or "TIMEOUT" (any value: every
question about the name raises DnsTemporaryError). A name that is absent is NXDOMAIN; a name
present without that type is NODATA. `queries` counts every question asked, for limit tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from postoffice.mailauth.dns_types import DnsAnswer, DnsTemporaryError, IPAddress, MxRecord


def _key(name: str) -> str:
    return name.lower().removesuffix(".")


class MemoryResolver:
    def __init__(self, records: Mapping[str, Mapping[str, Iterable[Any]]]) -> None:
        self.records = {_key(n): {t.upper(): list(v) for t, v in types.items()} for n, types in records.items()}
        self.queries: Counter[tuple[str, str]] = Counter()

    def _lookup(self, name: str, rrtype: str) -> tuple[list[Any], bool]:
        name = _key(name)
        self.queries[(name, rrtype)] += 1
        types = self.records.get(name)
        if types is None:
            return [], False
        if "TIMEOUT" in types:
            raise DnsTemporaryError(f"DNS timeout for {rrtype} {name}")
        return types.get(rrtype, []), True

    async def txt(self, name: str) -> DnsAnswer[str]:
        values, exists = self._lookup(name, "TXT")
        joined = ["".join(v) if isinstance(v, list | tuple) else str(v) for v in values]
        return DnsAnswer(tuple(joined), exists)

    async def a(self, name: str) -> DnsAnswer[IPv4Address]:
        values, exists = self._lookup(name, "A")
        return DnsAnswer(tuple(IPv4Address(v) for v in values), exists)

    async def aaaa(self, name: str) -> DnsAnswer[IPv6Address]:
        values, exists = self._lookup(name, "AAAA")
        return DnsAnswer(tuple(IPv6Address(v) for v in values), exists)

    async def mx(self, name: str) -> DnsAnswer[MxRecord]:
        values, exists = self._lookup(name, "MX")
        return DnsAnswer(tuple(MxRecord(int(p), _key(h)) for p, h in values), exists)

    async def ptr(self, address: IPAddress) -> DnsAnswer[str]:
        values, exists = self._lookup(ip_address(address).reverse_pointer, "PTR")
        return DnsAnswer(tuple(_key(v) for v in values), exists)
