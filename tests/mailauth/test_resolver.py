"""DnsResolver against real DNS servers on loopback (tests/dns_server.py: NSD behind Unbound,
zones from tests/zones/): typed answers, CNAME chains across zones, the three outcomes, the cache
counted in the questions Unbound received."""
from __future__ import annotations

import asyncio
import time
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from dns_server import DnsServers, free_port
from live_server import LiveServer
from postoffice.config import ListenAddress
from postoffice.mailauth.dns_types import DnsTemporaryError, MxRecord
from postoffice.mailauth.resolver import DnsResolver

pytestmark = pytest.mark.timeout(60)


def resolver_for(dns_server: DnsServers, timeout: float = 3.0, cache_entries: int = 1000) -> DnsResolver:
    return DnsResolver((dns_server.address,), timeout=timeout, cache_entries=cache_entries)


async def test_each_record_type_comes_typed(dns_server: DnsServers) -> None:
    resolver = resolver_for(dns_server)
    assert (await resolver.a("mail.example.test")).records == (IPv4Address("127.0.0.1"),)
    assert (await resolver.aaaa("MAIL.Example.Test.")).records == (IPv6Address("2001:db8::25"),)
    assert sorted((await resolver.mx("example.test")).records, key=lambda m: m.preference) == [
        MxRecord(10, "mail.example.test"), MxRecord(20, "mx.provider.test")]
    assert (await resolver.mx("nullmx.example.test")).records == (MxRecord(0, ""),)
    # RFC 7208 §3.3: the strings of one record are joined without a separator; records stay apart.
    assert sorted((await resolver.txt("multi.example.test")).records) == [
        "second record", "v=spf1 ip4:127.0.0.0/8 -all"]
    assert (await resolver.txt("utf8.example.test")).records == ("café",)
    assert (await resolver.ptr(IPv4Address("127.0.0.10"))).records == ("host.example.test",)
    assert (await resolver.ptr(IPv6Address("2001:db8::10"))).records == ("host6.example.test",)
    answer = await resolver.a("mail.example.test")
    assert answer.exists and 0 < answer.ttl <= 300


async def test_cname_chains_across_zones_are_followed(dns_server: DnsServers) -> None:
    resolver = resolver_for(dns_server)
    # A DKIM key published as a CNAME into the provider's zone.
    key = await resolver.txt("sel._domainkey.example.test")
    assert key.records and key.records[0].startswith("v=DKIM1; k=ed25519;")
    # example.test -> provider.test -> example.test
    assert (await resolver.a("chain.example.test")).records == (IPv4Address("127.0.0.1"),)
    # RFC 2317-style PTR through a CNAME within the reverse zone.
    assert (await resolver.ptr(IPv4Address("127.0.0.17"))).records == ("host17.provider.test",)
    # A CNAME to a name that does not exist is NXDOMAIN (RFC 6604: the rcode is the target's).
    dangling = await resolver.a("dangling.example.test")
    assert not dangling and not dangling.exists


async def test_nxdomain_and_nodata_are_told_apart(dns_server: DnsServers) -> None:
    resolver = resolver_for(dns_server)
    nxdomain = await resolver.txt("no-such-name.example.test")
    assert nxdomain.records == () and nxdomain.exists is False
    assert 0 < nxdomain.ttl <= 60  # the zone's SOA minimum (RFC 2308)
    nodata = await resolver.txt("nodata.example.test")
    assert nodata.records == () and nodata.exists is True
    outside = await resolver.a("nothing.invalid")  # no zone at all: the root says NXDOMAIN
    assert outside.exists is False


async def test_names_that_cannot_exist_are_nxdomain_without_asking(dns_server: DnsServers) -> None:
    resolver = resolver_for(dns_server)
    asked = dns_server.queries()
    for name in ("a" * 64 + ".example.test", ".".join(["abcdefghi"] * 30) + ".test", "a..example.test"):
        answer = await resolver.txt(name)
        assert answer.records == () and answer.exists is False, name
    assert dns_server.queries() == asked
    assert resolver.stats.queries == 0


async def test_the_empty_name_and_at_are_not_read_as_the_root(dns_server: DnsServers) -> None:
    # dnspython reads "" (what "." becomes in the cache key) and "@" as the root: a caller
    # whose name expanded to nothing (an SPF macro, a blank config entry) asked the root servers.
    resolver = resolver_for(dns_server)
    asked = dns_server.queries()
    for name in ("", ".", "@", "@."):
        for lookup in (resolver.txt, resolver.a, resolver.mx):
            answer = await lookup(name)
            assert answer.records == () and answer.exists is False, name
    assert dns_server.queries() == asked and resolver.stats.queries == 0


async def test_a_timeout_is_a_temporary_error_within_the_configured_time(dns_server: DnsServers) -> None:
    resolver = resolver_for(dns_server, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(DnsTemporaryError, match=r"DNS timeout for TXT slow\.timeout\.test after 1 s"):
        await resolver.txt("slow.timeout.test")
    assert time.monotonic() - started < 1.0 + 1.5  # the guard is timeout + 1 s; loose for load


async def test_servfail_is_a_temporary_error(dns_server: DnsServers) -> None:
    resolver = resolver_for(dns_server)
    with pytest.raises(DnsTemporaryError, match=r"TXT x\.servfail\.test failed: SERVFAIL from 127\.0\.0\.1"):
        await resolver.txt("x.servfail.test")
    assert resolver.stats.failures == 1


async def test_a_server_that_is_not_there_is_a_temporary_error() -> None:
    resolver = DnsResolver((ListenAddress("127.0.0.1", free_port()),), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(DnsTemporaryError, match=r"^DNS (timeout for|lookup of) A example\.test"):
        await resolver.a("example.test")
    assert time.monotonic() - started < 1.0 + 1.5


async def test_cached_answers_and_absences_ask_no_question(dns_server: DnsServers) -> None:
    resolver = resolver_for(dns_server)
    for name in ("multi.example.test", "missing-1.example.test", "nodata.example.test"):
        first = await resolver.txt(name)
        asked = dns_server.queries(name, "TXT")
        for _ in range(5):
            assert await resolver.txt(name.upper()) == first
        assert dns_server.queries(name, "TXT") == asked, name
    assert resolver.stats.queries == 3 and resolver.stats.cache_hits == 15
    # A temporary failure is not remembered: the next question is asked again.
    for _ in range(2):
        with pytest.raises(DnsTemporaryError):
            await resolver.txt("again.servfail.test")
    assert dns_server.queries("again.servfail.test", "TXT") == 2


async def test_without_a_cache_every_question_is_asked(dns_server: DnsServers) -> None:
    resolver = resolver_for(dns_server, cache_entries=0)
    asked = dns_server.queries("host.example.test", "A")
    for _ in range(3):
        await resolver.a("host.example.test")
    assert dns_server.queries("host.example.test", "A") == asked + 3


async def test_an_answer_is_asked_again_once_its_ttl_ran_out(dns_server: DnsServers) -> None:
    resolver = resolver_for(dns_server)
    await resolver.a("short.example.test")  # TTL 1 s
    asked = dns_server.queries("short.example.test", "A")
    await asyncio.sleep(1.5)
    assert (await resolver.a("short.example.test")).records == (IPv4Address("127.0.0.30"),)
    assert dns_server.queries("short.example.test", "A") == asked + 1


async def test_the_cache_keeps_at_most_its_entries_dropping_the_least_recent(dns_server: DnsServers) -> None:
    resolver = resolver_for(dns_server, cache_entries=5)
    names = [f"bounded-{i}.example.test" for i in range(20)]
    for name in names:
        await resolver.txt(name)
    assert len(resolver.cache) == 5
    assert resolver.cache.bytes <= resolver.cache.max_bytes
    before = resolver.stats.queries
    await resolver.txt(names[-1])  # still cached
    assert resolver.stats.queries == before
    await resolver.txt(names[0])  # dropped long ago
    assert resolver.stats.queries == before + 1
    assert dns_server.queries(names[0], "TXT") == 2


async def test_identical_questions_at_once_make_one_query(dns_server: DnsServers) -> None:
    resolver = resolver_for(dns_server, cache_entries=0)
    answers = await asyncio.gather(*(resolver.txt("sel._domainkey.example.test") for _ in range(50)))
    assert len({a.records for a in answers}) == 1 and answers[0].records
    assert resolver.stats.queries == 1 and resolver.stats.coalesced == 49
    # One that gives up does not take the answer from the others.
    first = asyncio.ensure_future(resolver.txt("coalesced.example.test"))
    second = asyncio.ensure_future(resolver.txt("coalesced.example.test"))
    await asyncio.sleep(0)
    first.cancel()
    assert (await second).exists is False
    assert dns_server.queries("coalesced.example.test", "TXT") == 1


async def test_a_60_kb_txt_answer_comes_over_tcp(dns_server: DnsServers) -> None:
    # 240 strings of 250 bytes in one record: far beyond UDP's 1232 bytes, so Unbound answers
    # truncated over UDP and the resolver asks again over TCP.
    strings = [f"{i:03d}" + "x" * 247 for i in range(240)]
    dns_server.add_zone("big.test", "key TXT " + " ".join(f'"{s}"' for s in strings) + "\n")
    resolver = resolver_for(dns_server)
    answer = await resolver.txt("key.big.test")
    assert answer.records == ("".join(strings),)
    assert len(answer.records[0]) == 60_000


def test_services_own_one_resolver_built_from_the_config(dns_server: DnsServers, tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", [], dns={"nameservers": (dns_server.address,), "timeout": 2.0,
                                                    "cache_entries": 7}).start()
    try:
        assert server.services is not None
        resolver = server.services.resolver
        assert resolver is server.services.resolver
        assert resolver.timeout == 2.0 and resolver.cache.max_entries == 7
        answer = server.call(resolver.a("mail.example.test"))
        assert answer.records == (IPv4Address("127.0.0.1"),)
    finally:
        server.stop()


@pytest.mark.parametrize("content", [None, "# no nameserver line\nsearch example.test\n"])
async def test_without_servers_in_resolv_conf_every_question_says_what_to_set(
        tmp_path: Path, content: str | None, caplog: pytest.LogCaptureFixture) -> None:
    resolv_conf = tmp_path / "resolv.conf"
    if content is not None:
        resolv_conf.write_text(content)
    resolver = DnsResolver(resolv_conf=str(resolv_conf))
    assert f"{resolv_conf} cannot be used" in caplog.text
    with pytest.raises(DnsTemporaryError, match=r"^DNS lookup of A example\.test failed: no DNS server to"
                       r" ask: .* cannot be used \(.*\); set \[dns\] nameservers$"):
        await resolver.a("example.test")
    assert resolver.stats.queries == 0
