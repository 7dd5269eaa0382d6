"""PROXY protocol v1/v2 header parsing: bytes in, ProxyResult / NeedMore / error out."""
from __future__ import annotations

import ipaddress
import struct

import pytest

from postoffice.net.proxy import (
    V1_MAX_LENGTH,
    V2_MAX_LENGTH,
    V2_SIGNATURE,
    Endpoint,
    NeedMore,
    ProxyHeaderError,
    ProxyResult,
    _crc32c,
    parse_proxy_header,
)


def v2(command: int = 1, family: int = 0x11, addresses: bytes | None = None,
       tlvs: bytes = b"", version: int = 2, length: int | None = None) -> bytes:
    """A v2 header; by default TCP over IPv4 from 192.0.2.1:51234 to 198.51.100.7:25."""
    if addresses is None:
        addresses = (ipaddress.IPv4Address("192.0.2.1").packed
                     + ipaddress.IPv4Address("198.51.100.7").packed + struct.pack("!HH", 51234, 25))
    body = addresses + tlvs
    size = len(body) if length is None else length
    return V2_SIGNATURE + bytes([version << 4 | command, family]) + struct.pack("!H", size) + body


def v6_addresses() -> bytes:
    return (ipaddress.IPv6Address("2001:db8::1").packed + ipaddress.IPv6Address("2001:db8::2").packed
            + struct.pack("!HH", 443, 993))


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def with_crc(header: bytes, *, corrupt: bool = False) -> bytes:
    """Append a CRC32C TLV and fill in its checksum (proxy-protocol.txt §2.2.3)."""
    size = struct.unpack_from("!H", header, 14)[0] + 7
    blank = header[:14] + struct.pack("!H", size) + header[16:] + tlv(0x03, b"\0\0\0\0")
    checksum = _crc32c(blank) ^ (1 if corrupt else 0)
    return blank[:-4] + checksum.to_bytes(4, "big")


TCP4 = b"PROXY TCP4 192.0.2.1 198.51.100.7 51234 25\r\n"
TCP6 = b"PROXY TCP6 2001:db8::1 2001:DB8::2 443 993\r\n"
SRC4, DST4 = Endpoint("192.0.2.1", 51234), Endpoint("198.51.100.7", 25)
SRC6, DST6 = Endpoint("2001:db8::1", 443), Endpoint("2001:db8::2", 993)

GOOD = [
    ("v1_tcp4", TCP4, ProxyResult(1, len(TCP4), SRC4, DST4)),
    ("v1_tcp6", TCP6, ProxyResult(1, len(TCP6), SRC6, DST6)),
    ("v1_port_zero", b"PROXY TCP4 192.0.2.1 198.51.100.7 0 65535\r\n",
     ProxyResult(1, 43, Endpoint("192.0.2.1", 0), Endpoint("198.51.100.7", 65535))),
    ("v1_unknown_short", b"PROXY UNKNOWN\r\n", ProxyResult(1, 15, None, None)),
    ("v1_unknown_with_junk", b"PROXY UNKNOWN whatever the sender likes\r\n",
     ProxyResult(1, 41, None, None)),
    ("v1_mapped_ipv6", b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n",
     ProxyResult(1, 37, Endpoint("::ffff:c000:201", 1), Endpoint("::1", 2))),
    ("v1_longest", b"PROXY UNKNOWN " + b"f" * (V1_MAX_LENGTH - 16) + b"\r\n",
     ProxyResult(1, V1_MAX_LENGTH, None, None)),
    ("v2_tcp4", v2(), ProxyResult(2, 28, SRC4, DST4)),
    ("v2_tcp6", v2(family=0x21, addresses=v6_addresses()), ProxyResult(2, 52, SRC6, DST6)),
    ("v2_local", v2(command=0, family=0x00, addresses=b""), ProxyResult(2, 16, None, None)),
    ("v2_local_with_addresses", v2(command=0), ProxyResult(2, 28, None, None)),
    ("v2_local_with_garbage_block", v2(command=0, family=0x00, addresses=b"\xff\xff"),
     ProxyResult(2, 18, None, None)),
    ("v2_unspec", v2(family=0x00, addresses=b""), ProxyResult(2, 16, None, None)),
    ("v2_udp_falls_back", v2(family=0x12), ProxyResult(2, 28, None, None)),
    ("v2_unix_falls_back", v2(family=0x31, addresses=bytes(216)), ProxyResult(2, 232, None, None)),
    ("v2_tlvs", v2(tlvs=tlv(0x04, b"") + tlv(0xEA, b"vpce-1234")),
     ProxyResult(2, 28 + 3 + 12, SRC4, DST4, ((0x04, b""), (0xEA, b"vpce-1234")))),
    ("v2_crc32c", with_crc(v2()), ProxyResult(2, 35, SRC4, DST4, ((0x03, with_crc(v2())[-4:]),))),
]


@pytest.mark.parametrize(("data", "expected"), [case[1:] for case in GOOD],
                         ids=[case[0] for case in GOOD])
def test_good_headers(data: bytes, expected: ProxyResult) -> None:
    assert parse_proxy_header(data) == expected
    # The client's bytes that follow are not part of the header.
    assert parse_proxy_header(data + b"EHLO x\r\n") == expected


@pytest.mark.parametrize(("data", "expected"), [case[1:] for case in GOOD],
                         ids=[case[0] for case in GOOD])
def test_every_prefix_asks_for_more_without_overreading(data: bytes,
                                                        expected: ProxyResult) -> None:
    for end in range(len(data)):
        result = parse_proxy_header(data[:end])
        assert isinstance(result, NeedMore), (end, result)
        assert end < result.at_least <= len(data)


BAD = [
    ("not_proxy", b"EHLO mail.example.org\r\n"),
    ("lowercase", b"proxy TCP4 192.0.2.1 198.51.100.7 1 2\r\n"),
    ("v1_bad_prefix_early", b"PROX!"),
    ("v1_bare_lf", b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n"),
    ("v1_bare_cr", b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2\rX"),
    ("v1_cr_inside", b"PROXY UNKNOWN a\rb\r\n"),
    ("v1_no_crlf_in_107", b"PROXY UNKNOWN " + b"f" * 200),
    ("v1_too_long", b"PROXY UNKNOWN " + b"f" * (V1_MAX_LENGTH - 15) + b"\r\n"),
    ("v1_unknownx", b"PROXY UNKNOWNX\r\n"),
    ("v1_udp4", b"PROXY UDP4 192.0.2.1 198.51.100.7 1 2\r\n"),
    ("v1_two_spaces", b"PROXY TCP4  192.0.2.1 198.51.100.7 1 2\r\n"),
    ("v1_trailing_space", b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2 \r\n"),
    ("v1_missing_port", b"PROXY TCP4 192.0.2.1 198.51.100.7 1\r\n"),
    ("v1_tab", b"PROXY TCP4 192.0.2.1\t198.51.100.7 1 2\r\n"),
    ("v1_leading_zero_address", b"PROXY TCP4 192.0.2.01 198.51.100.7 1 2\r\n"),
    ("v1_leading_zero_port", b"PROXY TCP4 192.0.2.1 198.51.100.7 01 2\r\n"),
    ("v1_port_too_big", b"PROXY TCP4 192.0.2.1 198.51.100.7 65536 2\r\n"),
    ("v1_negative_port", b"PROXY TCP4 192.0.2.1 198.51.100.7 -1 2\r\n"),
    ("v1_port_plus", b"PROXY TCP4 192.0.2.1 198.51.100.7 +1 2\r\n"),
    ("v1_ipv6_in_tcp4", b"PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n"),
    ("v1_ipv4_in_tcp6", b"PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n"),
    ("v1_zone_index", b"PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n"),
    ("v1_three_octets", b"PROXY TCP4 192.0.2 198.51.100.7 1 2\r\n"),
    ("v1_non_ascii", "PROXY TCP4 192.0.2.1 198.51.100.7 1 ２\r\n".encode()),
    ("v1_unicode_digits_address", "PROXY TCP4 १.2.3.4 198.51.100.7 1 2\r\n".encode()),
    ("v2_bad_signature", V2_SIGNATURE[:11] + b"X" + v2()[12:]),
    ("v2_bad_signature_early", b"\r\n\r\nX"),
    ("v2_version_1", v2(version=1)),
    ("v2_version_3", v2(version=3)),
    ("v2_command_2", v2(command=2)),
    ("v2_family_4", v2(family=0x41)),
    ("v2_transport_3", v2(family=0x13)),
    ("v2_short_ipv4_block", v2(addresses=bytes(11))),
    ("v2_short_ipv6_block", v2(family=0x21, addresses=bytes(12))),
    ("v2_short_unix_block", v2(family=0x31, addresses=bytes(108))),
    ("v2_tlv_truncated_header", v2(tlvs=b"\x04\x00")),
    ("v2_tlv_overruns", v2(tlvs=b"\x04\x00\x05abc")),
    ("v2_crc32c_mismatch", with_crc(v2(), corrupt=True)),
    ("v2_crc32c_wrong_size", v2(tlvs=tlv(0x03, b"\0\0\0"))),
]


@pytest.mark.parametrize("data", [case[1] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_headers_are_refused(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError) as caught:
        parse_proxy_header(data)
    assert caught.value.reason


@pytest.mark.parametrize(("data", "at_least"), [
    (b"", 15),
    (b"P", 15),
    (b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2", 38),
    (b"PROXY UNKNOWN\r", 15),
    (b"\r", 16),
    (V2_SIGNATURE, 16),
    (v2()[:16], 28),
    (v2()[:27], 28),
    (V2_SIGNATURE + b"\x21\x11\xff\xff", V2_MAX_LENGTH),
])
def test_truncated_input_needs_more(data: bytes, at_least: int) -> None:
    assert parse_proxy_header(data) == NeedMore(at_least)


def test_longest_v2_header_is_accepted() -> None:
    padding = tlv(0x04, bytes(0xFFFF - 12 - 3))
    header = v2(tlvs=padding)
    assert len(header) == V2_MAX_LENGTH
    result = parse_proxy_header(header + b"more")
    assert isinstance(result, ProxyResult) and result.length == V2_MAX_LENGTH


def test_crc32c_matches_the_rfc_3720_check_value() -> None:
    assert _crc32c(b"123456789") == 0xE3069283
    assert _crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
