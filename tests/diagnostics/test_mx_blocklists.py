"""check domain's blocklist finding: a list that refuses to answer (its error code, as Spamhaus
gives public resolvers) or cannot be asked is a warning that says so, never "on none of the
blocklists". Real NSD/Unbound on loopback, tests/zones/dnsbl.test.zone."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address

from dns_server import DnsServers
from postoffice.diagnostics.checks import Severity
from postoffice.diagnostics.domain_mx import MxHost, blocklist_listings
from postoffice.diagnostics.zone_view import ZoneResolver
from postoffice.mailauth.resolver import DnsResolver


def _findings(dns_server: DnsServers, address: str) -> list[tuple[str, Severity]]:
    async def run() -> list[tuple[str, Severity]]:
        resolver = ZoneResolver("", DnsResolver(nameservers=(dns_server.address,), timeout=2), None)
        host = MxHost("mx.example.test", 10, [ip_address(address)])
        return [(f.id, f.severity) for f in await blocklist_listings(resolver, [host], ("dnsbl.test",))]
    return asyncio.run(asyncio.wait_for(run(), 60))


def test_a_list_that_refuses_to_answer_is_a_warning_not_a_clean_bill(dns_server: DnsServers) -> None:
    # 127.0.0.4 gets the list's error code 127.255.255.254: the list did not say.
    assert _findings(dns_server, "127.0.0.4") == [("dnsbl-unanswered", Severity.WARNING)]


def test_listed_and_not_listed_addresses(dns_server: DnsServers) -> None:
    assert _findings(dns_server, "127.0.0.2") == [("dnsbl-listed", Severity.ERROR)]
    assert _findings(dns_server, "127.0.0.7") == [("dnsbl-listed", Severity.OK)]
