"""DnsResolver against a broken DNS server (tests/dns_server.py BrokenDnsServer) that answers
with bytes a test writes: every malformed or hostile answer is a DnsTemporaryError (or the
RFC's outcome) within the configured time, never another exception."""
from __future__ import annotations

import struct
import time
from collections.abc import Callable

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from dns_server import BrokenDnsServer
from postoffice.mailauth.dns_types import DnsTemporaryError
from postoffice.mailauth.resolver import DnsResolver

pytestmark = pytest.mark.timeout(60)
TIMEOUT = 1.0


def reply(query: bytes, *records: str, rcode: int = dns.rcode.NOERROR, truncated: bool = False) -> bytes:
    """A well-formed reply to `query` with `records` ("name ttl IN TYPE data") in the answer."""
    request = dns.message.from_wire(query)
    response = dns.message.make_response(request)
    response.set_rcode(rcode)
    if truncated:
        response.flags |= dns.flags.TC
    for text in records:
        name, ttl, rdclass, rdtype, *data = text.split(" ", 4)
        response.answer.append(dns.rrset.from_text(name, int(ttl), rdclass, rdtype, *data))
    return response.to_wire(max_size=65535)


def over_tcp(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


def header(query: bytes, flags: int, qd: int, an: int, ns: int = 0, ar: int = 0) -> bytes:
    return query[:2] + struct.pack("!HHHHH", flags, qd, an, ns, ar)


def question_of(query: bytes) -> bytes:
    """The question section of a query made by dnspython (header 12 bytes, no EDNS beyond it)."""
    end = query.index(b"\0", 12) + 5
    return query[12:end]


MALFORMED: dict[str, Callable[[bytes, str], bytes | None]] = {
    "random bytes": lambda q, _t: bytes(range(7, 250, 3)),
    "shorter than a header": lambda q, _t: q[:5],
    "answer count without answers": lambda q, _t: header(q, 0x8180, 1, 3) + question_of(q),
    "compression pointer loop": lambda q, _t: (
        header(q, 0x8180, 1, 1) + question_of(q) + b"\xc0\x1c\xc0\x1c" + b"\x00\x10\x00\x01"),
    "rdata longer than the message": lambda q, _t: (
        header(q, 0x8180, 1, 1) + question_of(q) + b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c\xff\xff"
        + b"\x05hello"),
    "A record of five bytes": lambda q, _t: (
        header(q, 0x8180, 1, 1) + question_of(q) + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x05"
        + b"\x7f\x00\x00\x01\x01"),
    "NXDOMAIN with an answer": lambda q, _t: reply(q, "x.broken.test. 60 IN TXT hello", rcode=dns.rcode.NXDOMAIN),
    "CNAME loop": lambda q, _t: reply(q, "x.broken.test. 60 IN CNAME y.broken.test.",
                                      "y.broken.test. 60 IN CNAME x.broken.test."),
    "REFUSED": lambda q, _t: reply(q, rcode=dns.rcode.REFUSED),
    "an answer to another question": lambda q, _t: reply(
        dns.message.make_query("other.test", "TXT").to_wire(), "other.test. 60 IN TXT hi"),
    "silence": lambda q, _t: None,
    # Truncated over UDP, then over TCP a length of 65,535 followed by 100 KB: no DNS message can
    # hold that much, so it can only fail, and cleanly.
    "100 KB over TCP": lambda q, t: (reply(q, truncated=True) if t == "udp"
                                     else b"\xff\xff" + q[:2] + b"\x81\x80" + b"\x00" * 100_000),
    "truncated over TCP too": lambda q, t: (reply(q, truncated=True) if t == "udp"
                                            else over_tcp(reply(q, truncated=True))),
    "TCP answer cut short": lambda q, t: (reply(q, truncated=True) if t == "udp"
                                          else over_tcp(reply(q, "x.broken.test. 60 IN TXT hello"))[:-3]),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_answer_is_a_temporary_error(case: str) -> None:
    with BrokenDnsServer(MALFORMED[case]) as server:
        resolver = DnsResolver((server.address,), timeout=TIMEOUT)
        started = time.monotonic()
        with pytest.raises(DnsTemporaryError, match=r"^DNS (timeout for|lookup of) TXT x\.broken\.test"):
            await resolver.txt("x.broken.test")
        assert time.monotonic() - started < TIMEOUT + 1.5
        assert sum(server.received.values()) >= 1
        # Nothing of it was kept: the next question is asked again.
        before = sum(server.received.values())
        with pytest.raises(DnsTemporaryError):
            await resolver.txt("x.broken.test")
        assert sum(server.received.values()) > before


async def test_a_truncated_udp_answer_is_asked_again_over_tcp() -> None:
    big = " ".join(f'"{i:03d}{"y" * 250}"' for i in range(200))  # 50 KB in one record

    def respond(query: bytes, transport: str) -> bytes:
        if transport == "udp":
            return reply(query, truncated=True)
        return over_tcp(reply(query, f"x.broken.test. 60 IN TXT {big}"))

    with BrokenDnsServer(respond) as server:
        answer = await DnsResolver((server.address,), timeout=TIMEOUT).txt("x.broken.test")
    assert len(answer.records) == 1 and len(answer.records[0]) == 200 * 253
    assert server.received == {"udp": 1, "tcp": 1}


async def test_nxdomain_without_an_soa_is_an_absence_that_is_not_cached() -> None:
    with BrokenDnsServer(lambda q, _t: reply(q, rcode=dns.rcode.NXDOMAIN)) as server:
        resolver = DnsResolver((server.address,), timeout=TIMEOUT)
        for _ in range(2):
            answer = await resolver.txt("x.broken.test")
            assert answer.exists is False and answer.ttl == 0
    assert server.received["udp"] == 2


async def test_a_txt_string_that_is_not_utf8_keeps_its_bytes() -> None:
    with BrokenDnsServer(lambda q, _t: reply(q, 'x.broken.test. 60 IN TXT "v=spf1 \\255 -all"')) as server:
        answer = await DnsResolver((server.address,), timeout=TIMEOUT).txt("x.broken.test")
    assert answer.records == ("v=spf1 \udcff -all",)
    assert answer.records[0].encode("utf-8", "surrogateescape") == b"v=spf1 \xff -all"


async def test_the_cache_is_bounded_in_bytes_too() -> None:
    def respond(query: bytes, _transport: str) -> bytes:
        name = dns.message.from_wire(query).question[0].name.to_text()
        size = 20_000 if name.startswith("huge") else 3_000
        strings = " ".join(f'"{"k" * 250}"' for _ in range(size // 250))
        return reply(query, f"{name} 600 IN TXT {strings}", truncated=False)

    with BrokenDnsServer(respond) as server:
        resolver = DnsResolver((server.address,), timeout=5.0, cache_entries=100)  # 100 KB
        for i in range(200):
            assert len((await resolver.txt(f"key{i}.broken.test")).records[0]) == 3_000
        assert resolver.cache.bytes <= 100 * 1024
        assert 20 < len(resolver.cache) < 40  # the bytes bound it before the count does
        for _ in range(2):  # bigger than a sixteenth of the budget: never kept
            assert len((await resolver.txt("huge.broken.test")).records[0]) == 20_000
        assert resolver.stats.queries == 202
