"""DNS blocklists (RFC 5782) against the loopback DNS servers: tests/zones/dnsbl.test.zone is a
list as it should be, badlist.test one that lists everything, and names under timeout.test never
answer."""
from __future__ import annotations

import logging
import time
from ipaddress import IPv4Address, IPv6Address

import pytest

from dns_server import DnsServers
from postoffice.filtering.dnsbl import Listing, check_blocklists, query_name
from postoffice.mailauth.resolver import DnsResolver

pytestmark = pytest.mark.timeout(60)
LIST = "dnsbl.test"


def resolver_for(dns_server: DnsServers, cache_entries: int = 1000) -> DnsResolver:
    return DnsResolver((dns_server.address,), timeout=1.0, cache_entries=cache_entries)


def test_query_names_reverse_the_octets_or_the_nibbles() -> None:
    assert query_name(IPv4Address("192.0.2.99"), "zen.example") == "99.2.0.192.zen.example"
    assert query_name(IPv6Address("2001:db8:1:2:3:4:567:89ab"), "list.example") == (
        "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.list.example")


async def test_a_listed_address_comes_with_its_codes_and_reason(dns_server: DnsServers) -> None:
    resolver = resolver_for(dns_server)
    assert await check_blocklists(resolver, "127.0.0.2", [LIST]) == [Listing(
        LIST, "127.0.0.2", (IPv4Address("127.0.0.2"),), "127.0.0.2 is listed: see https://dnsbl.test/?127.0.0.2")]
    [both] = await check_blocklists(resolver, "127.0.0.3", [LIST])
    assert sorted(both.codes) == [IPv4Address("127.0.0.3"), IPv4Address("127.0.0.10")]
    assert both.reason == ""
    [ipv6] = await check_blocklists(resolver, "2001:db8::2", [LIST])
    assert ipv6.codes == (IPv4Address("127.0.0.4"),) and ipv6.address == "2001:db8::2"
    [mapped] = await check_blocklists(resolver, "::ffff:127.0.0.2", [LIST])
    assert mapped.address == "127.0.0.2"


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "the test entry a list must not list"),
    ("127.0.0.7", "no entry"),
    ("127.0.0.5", "an answer outside 127/8"),
    ("127.0.0.6", "127.0.0.1 as the answer"),
    ("2001:db8::3", "no entry"),
])
async def test_what_is_not_a_listing(dns_server: DnsServers, address: str, why: str) -> None:
    assert await check_blocklists(resolver_for(dns_server), address, [LIST]) == [], why


async def test_the_lists_error_code_is_logged_not_a_listing(dns_server: DnsServers,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    resolver = resolver_for(dns_server)
    with caplog.at_level(logging.WARNING, logger="postoffice.filtering.dnsbl"):
        assert await check_blocklists(resolver, "127.0.0.4", [LIST]) == []
        [listing] = await check_blocklists(resolver, "127.0.0.9", [LIST])
    assert listing.codes == (IPv4Address("127.0.0.255"),)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert warnings[0].startswith("blocklist dnsbl.test answered with its error code 127.255.255.254 for 127.0.0.4")
    assert "127.255.255.252" in warnings[1]


async def test_a_reason_cannot_break_an_smtp_reply(dns_server: DnsServers) -> None:
    [listing] = await check_blocklists(resolver_for(dns_server), "127.0.0.8", [LIST])
    assert listing.reason == "spam source 554 5.7.1 injected line and end"
    assert all(" " <= c <= "~" for c in listing.reason)


async def test_a_list_that_lists_its_test_entry_is_ignored_with_one_warning(
        dns_server: DnsServers, caplog: pytest.LogCaptureFixture) -> None:
    resolver = resolver_for(dns_server, cache_entries=0)  # its health is remembered all the same
    test_entry, listed = "1.0.0.127.badlist.test", "2.0.0.127.badlist.test"
    asked = dns_server.queries(test_entry, "A"), dns_server.queries(listed, "A")
    with caplog.at_level(logging.WARNING, logger="postoffice.filtering.dnsbl"):
        for address in ("127.0.0.2", "127.0.0.20", "2001:db8::2"):
            listings = await check_blocklists(resolver, address, ["badlist.test", LIST])
            assert [listing.zone for listing in listings] == ([LIST] if address != "127.0.0.20" else [])
    assert [r.getMessage() for r in caplog.records] == [
        "blocklist badlist.test lists its test entry 127.0.0.1, which a working list never does"
        " (RFC 5782 §5): it is ignored until it stops; remove it from [dns] blocklists"]
    assert dns_server.queries(test_entry, "A") == asked[0] + 1
    assert dns_server.queries(listed, "A") == asked[1]  # not even asked


async def test_a_list_that_does_not_answer_lists_nothing(dns_server: DnsServers,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    resolver = resolver_for(dns_server)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="postoffice.filtering.dnsbl"):
        listings = await check_blocklists(resolver, "127.0.0.2", ["list.timeout.test", "list.servfail.test", LIST])
    assert [listing.zone for listing in listings] == [LIST]
    assert time.monotonic() - started < 1.0 * 2 + 2.0  # the lists are asked at once, not in turn
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "blocklist list.timeout.test could not be asked about 127.0.0.2: DNS timeout" in said
    assert "blocklist list.servfail.test could not be asked about 127.0.0.2" in said


async def test_listings_are_cached_through_the_resolver(dns_server: DnsServers) -> None:
    resolver = resolver_for(dns_server)
    asked = [dns_server.queries("8.0.0.127.dnsbl.test", rrtype) for rrtype in ("A", "TXT")]
    for _ in range(3):
        assert len(await check_blocklists(resolver, "127.0.0.8", [LIST])) == 1
    assert [dns_server.queries("8.0.0.127.dnsbl.test", rrtype) for rrtype in ("A", "TXT")] == [
        asked[0] + 1, asked[1] + 1]
