"""iprev (RFC 8601 §3) against the loopback DNS servers: PTR records in
tests/zones/127.in-addr.arpa.zone and 8.b.d.0.1.0.0.2.ip6.arpa.zone."""
from __future__ import annotations

import dns.message
import dns.rcode
import pytest

from dns_server import BrokenDnsServer, DnsServers
from postoffice.mailauth.iprev import check_iprev
from postoffice.mailauth.resolver import DnsResolver

pytestmark = pytest.mark.timeout(60)


def resolver_for(dns_server: DnsServers, cache_entries: int = 1000) -> DnsResolver:
    return DnsResolver((dns_server.address,), timeout=1.0, cache_entries=cache_entries)


@pytest.mark.parametrize(("address", "result", "name"), [
    ("127.0.0.1", "pass", "mail.example.test"),
    ("127.0.0.10", "pass", "host.example.test"),
    ("::ffff:127.0.0.10", "pass", "host.example.test"),  # an IPv4 client on an IPv6 socket
    ("127.0.0.15", "pass", "both.example.test"),  # its other name SERVFAILs: one that leads back wins
    ("127.0.0.16", "pass", "via-cname.example.test"),  # the A comes through a CNAME into provider.test
    ("2001:db8::10", "pass", "host6.example.test"),  # AAAA for an IPv6 client
    ("127.0.0.11", "fail", ""),  # its name's address is another one
    ("127.0.0.17", "fail", ""),  # its name does not exist
    ("127.0.0.12", "permerror", ""),  # no PTR record
    ("2001:db8::99", "permerror", ""),
    ("127.0.0.14", "temperror", ""),  # its name times out
])
async def test_iprev_results(dns_server: DnsServers, address: str, result: str, name: str) -> None:
    got = await check_iprev(resolver_for(dns_server), address)
    assert (got.result, got.name) == (result, name)
    assert got.address == address.removeprefix("::ffff:")
    assert bool(got.problem) == (result != "pass")


async def test_the_problem_says_what_was_found(dns_server: DnsServers) -> None:
    resolver = resolver_for(dns_server)
    assert (await check_iprev(resolver, "127.0.0.11")).problem == (
        "the name of 127.0.0.11 (liar.example.test) does not lead back to it")
    assert (await check_iprev(resolver, "127.0.0.12")).problem == "no PTR record for 127.0.0.12"
    assert "DNS timeout for A slow.timeout.test" in (await check_iprev(resolver, "127.0.0.14")).problem


async def test_at_most_ten_names_are_followed(dns_server: DnsServers) -> None:
    # 127.0.0.13 has twelve PTR names, none with an address.
    names = [f"n{i}.example.test" for i in range(1, 13)]
    before = sum(dns_server.queries(n, "A") for n in names)
    result = await check_iprev(resolver_for(dns_server, cache_entries=0), "127.0.0.13")
    assert result.result == "fail"
    assert sum(dns_server.queries(n, "A") for n in names) - before == 10


async def test_a_failing_reverse_lookup_is_a_temperror() -> None:
    def servfail(query: bytes, _transport: str) -> bytes:
        response = dns.message.make_response(dns.message.from_wire(query))
        response.set_rcode(dns.rcode.SERVFAIL)
        return response.to_wire()

    with BrokenDnsServer(servfail) as server:
        result = await check_iprev(DnsResolver((server.address,), timeout=1.0), "192.0.2.1")
    assert result.result == "temperror"
    assert result.problem == ("DNS lookup of PTR 1.2.0.192.in-addr.arpa failed:"
                              f" SERVFAIL from 127.0.0.1:{server.port}")
