"""MX routing (queue/routing.py) against the real loopback DNS (NSD + Unbound, tests/zones/
routing.test.zone) and, for the ordering statistics, the in-memory resolver."""
from __future__ import annotations

import asyncio
import random
from collections import Counter
from ipaddress import IPv4Address, IPv6Address

import pytest
from tests.mailauth.memory_resolver import MemoryResolver

from dns_server import DnsServers
from postoffice.mailauth.resolver import DnsResolver
from postoffice.queue.routing import MAX_MX_HOSTS, Family, Route, route

TIMEOUT = 60  # seconds a test may take at most: a hung lookup fails rather than hangs


def routed(dns_server: DnsServers, domain: str, local_hosts: tuple[str, ...] = ()) -> Route:
    async def run() -> Route:
        resolver = DnsResolver((dns_server.address,), timeout=3.0)
        return await asyncio.wait_for(route(resolver, domain, mx_port=2525, local_hosts=local_hosts),
                                      TIMEOUT)
    return asyncio.run(run())


def addresses(found: Route, prefer: Family = "ipv6") -> list[tuple[str, str]]:
    return [(t.host, str(t.address)) for t in found.targets(prefer)]


def test_mx_hosts_in_preference_order_with_their_addresses(dns_server: DnsServers) -> None:
    found = routed(dns_server, "Equal.Routing.Test.")
    assert found.problem is None and not found.implicit
    assert found.domain == "equal.routing.test" and found.port == 2525
    names = [h.name for h in found.hosts]
    assert sorted(names[:3]) == ["mx1.routing.test", "mx2.routing.test", "mx3.routing.test"]
    assert names[3] == "backup.routing.test"
    assert [h.preference for h in found.hosts] == [10, 10, 10, 20]
    mx3 = next(h for h in found.hosts if h.name == "mx3.routing.test")
    assert mx3.ipv4 == (IPv4Address("127.0.0.43"),) and mx3.ipv6 == (IPv6Address("2001:db8::43"),)
    targets = found.targets("ipv4")
    assert all(t.port == 2525 for t in targets) and len(targets) == 5
    assert [str(t.address) for t in targets if t.host == "mx3.routing.test"] == ["127.0.0.43", "2001:db8::43"]
    assert [str(t.address) for t in found.targets("ipv6") if t.host == "mx3.routing.test"] == [
        "2001:db8::43", "127.0.0.43"]
    assert "2001:db8::43" not in {str(t.address) for t in found.targets("ipv4-only")}
    assert [str(t.address) for t in found.targets("ipv6-only")] == ["2001:db8::43"]
    assert targets[-1].host == "backup.routing.test"
    assert found.destination == "backup.routing.test,mx1.routing.test,mx2.routing.test,mx3.routing.test"


def test_domains_of_one_provider_are_one_destination(dns_server: DnsServers) -> None:
    a, b = routed(dns_server, "hosted-a.routing.test"), routed(dns_server, "hosted-b.routing.test")
    assert [h.name for h in a.hosts] == ["mx1.routing.test", "mx2.routing.test"]
    assert [h.name for h in b.hosts] == ["mx2.routing.test", "mx1.routing.test"]
    assert a.destination == b.destination == "mx1.routing.test,mx2.routing.test"
    assert routed(dns_server, "equal.routing.test").destination != a.destination


def test_null_mx_fails_at_once_without_address_lookups(dns_server: DnsServers) -> None:
    before = dns_server.queries()
    found = routed(dns_server, "nullmx.routing.test")
    assert found.problem is not None and found.problem.kind == "failed"
    assert found.problem.reason == "nullmx.routing.test does not accept mail (null MX)"
    assert found.problem.status == "5.1.10"  # RFC 7505 §4.2
    assert found.hosts == () and found.targets() == ()
    assert dns_server.queries() - before == 1  # the MX question only


def test_a_null_mx_beside_real_ones_is_ignored(dns_server: DnsServers) -> None:
    found = routed(dns_server, "mixednull.routing.test")
    assert found.problem is None
    assert addresses(found) == [("mx1.routing.test", "127.0.0.41")]
    assert any("null MX" in s for s in found.skipped)


def test_implicit_mx_is_the_domains_own_address(dns_server: DnsServers) -> None:
    found = routed(dns_server, "implicit.routing.test")
    assert found.problem is None and found.implicit
    assert addresses(found, "ipv4") == [("implicit.routing.test", "127.0.0.44"),
                                        ("implicit.routing.test", "2001:db8::44")]
    assert found.destination == "implicit.routing.test"


def test_no_mx_and_no_address_fails(dns_server: DnsServers) -> None:
    found = routed(dns_server, "bare.routing.test")
    assert found.problem is not None and found.problem.kind == "failed"
    assert found.problem.reason == "bare.routing.test has no MX record and no address (RFC 5321 §5.1)"


def test_a_domain_that_does_not_exist_fails(dns_server: DnsServers) -> None:
    found = routed(dns_server, "no-such-domain.routing.test")
    assert found.problem is not None and found.problem.kind == "failed"
    assert found.problem.status == "5.1.2"
    assert "no-such-domain.routing.test does not exist" in found.problem.reason


def test_an_mx_lookup_that_times_out_is_deferred_with_the_reason(dns_server: DnsServers) -> None:
    found = routed(dns_server, "anything.timeout.test")
    assert found.problem is not None and found.problem.kind == "deferred"
    assert found.problem.status == "4.4.3"
    assert "MX lookup for anything.timeout.test failed for now" in found.problem.reason
    assert "timeout" in found.problem.reason


def test_an_mx_host_whose_lookup_times_out_is_skipped_for_the_next(dns_server: DnsServers) -> None:
    found = routed(dns_server, "half.routing.test")
    assert found.problem is None
    assert addresses(found) == [("mx2.routing.test", "127.0.0.42")]
    assert any(s.startswith("mx.timeout.test (") and "for now" in s for s in found.skipped)


def test_when_the_only_mx_host_times_out_it_is_deferred(dns_server: DnsServers) -> None:
    found = routed(dns_server, "stuck.routing.test")
    assert found.problem is not None and found.problem.kind == "deferred"
    assert "mx.timeout.test" in found.problem.reason
    assert found.destination == "mx.timeout.test"


def test_mx_hosts_without_addresses_fail(dns_server: DnsServers) -> None:
    found = routed(dns_server, "gone.routing.test")
    assert found.problem is not None and found.problem.kind == "failed"
    assert found.problem.status == "5.4.4"
    assert found.problem.reason == ("no mail server of gone.routing.test has an address "
                                    "(nowhere.routing.test, noaddr.routing.test)")
    assert "nowhere.routing.test (no such host in DNS)" in found.skipped
    assert "noaddr.routing.test (no A or AAAA record)" in found.skipped


def test_an_ipv6_only_mx_has_only_ipv6_targets(dns_server: DnsServers) -> None:
    found = routed(dns_server, "v6only.routing.test")
    assert addresses(found, "ipv4") == [("mx6.routing.test", "2001:db8::46")]
    assert found.targets("ipv4-only") == ()


def test_an_mx_host_that_is_a_cname_keeps_its_mx_name(dns_server: DnsServers) -> None:
    found = routed(dns_server, "cname.routing.test")
    assert addresses(found) == [("alias.routing.test", "127.0.0.42")]


def test_mx_hosts_that_are_ip_addresses_are_skipped(dns_server: DnsServers) -> None:
    found = routed(dns_server, "literal.routing.test")
    assert addresses(found) == [("mx1.routing.test", "127.0.0.41")]
    assert any(s.startswith("127.0.0.45 (an IP address") for s in found.skipped)
    only = routed(dns_server, "literal-only.routing.test")
    assert only.problem is not None and only.problem.kind == "failed"
    assert "no usable MX host for literal-only.routing.test" in only.problem.reason


def test_an_mx_list_that_leads_back_to_us_is_a_loop(dns_server: DnsServers) -> None:
    loop = routed(dns_server, "loop.routing.test", local_hosts=("SELF.routing.test.",))
    assert loop.problem is not None and loop.problem.kind == "failed" and loop.problem.status == "5.4.6"
    assert "loops back to this server" in loop.problem.reason
    backup = routed(dns_server, "selfbackup.routing.test", local_hosts=("self.routing.test",))
    assert addresses(backup) == [("mx1.routing.test", "127.0.0.41")]


@pytest.mark.parametrize(("domain", "expected"), [
    ("[127.0.0.7]", ["127.0.0.7"]),
    ("[IPv6:::1]", ["::1"]),
])
def test_address_literals_go_to_that_address_without_dns(domain: str, expected: list[str]) -> None:
    resolver = MemoryResolver({})
    found = asyncio.run(route(resolver, domain, mx_port=25))
    assert found.problem is None
    assert [str(t.address) for t in found.targets()] == expected
    assert not resolver.queries


@pytest.mark.parametrize("domain", ["[::1]", "[127.0.0.300]", "[example]"])
def test_malformed_address_literals_fail(domain: str) -> None:
    found = asyncio.run(route(MemoryResolver({}), domain, mx_port=25))
    assert found.problem is not None and found.problem.kind == "failed"


def _memory_domain(hosts: dict[str, int]) -> MemoryResolver:
    records: dict[str, dict[str, list[object]]] = {
        "spread.test": {"MX": [(pref, name) for name, pref in hosts.items()]}}
    for number, name in enumerate(hosts, 1):
        records[name] = {"A": [f"192.0.2.{number}", f"192.0.2.{number + 100}"]}
    return MemoryResolver(records)


def test_equal_preferences_are_randomised_and_worse_ones_always_come_later() -> None:
    resolver = _memory_domain({"a.spread.test": 10, "b.spread.test": 10, "c.spread.test": 10,
                               "z.spread.test": 50})
    rng = random.Random(1505)
    firsts: Counter[str] = Counter()
    first_address: Counter[str] = Counter()
    for _ in range(300):
        found = asyncio.run(route(resolver, "spread.test", mx_port=25, rng=rng))
        names = [h.name for h in found.hosts]
        assert names[-1] == "z.spread.test"
        assert sorted(names[:3]) == ["a.spread.test", "b.spread.test", "c.spread.test"]
        firsts[names[0]] += 1
        first_address[str(found.targets()[0].address)] += 1
    # each of three equals first about 100 times in 300; far from 0 or 300 (p of failing ~1e-9)
    assert set(firsts) == {"a.spread.test", "b.spread.test", "c.spread.test"}
    assert all(50 < n < 150 for n in firsts.values()), firsts
    # a host's addresses are shuffled too: both of the first host's addresses lead sometimes
    assert len(first_address) == 6, first_address


def test_only_the_best_hosts_of_a_huge_mx_set_are_looked_up() -> None:
    resolver = _memory_domain({f"h{n}.spread.test": n for n in range(200)})
    found = asyncio.run(route(resolver, "spread.test", mx_port=25))
    assert [h.name for h in found.hosts] == [f"h{n}.spread.test" for n in range(MAX_MX_HOSTS)]
    assert sum(n for (name, kind), n in resolver.queries.items() if kind == "A") == MAX_MX_HOSTS
    assert len(found.destination.split(",")) == 200  # the key still names the whole set
