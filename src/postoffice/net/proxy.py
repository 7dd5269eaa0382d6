"""PROXY protocol v1 and v2 headers (HAProxy's proxy-protocol.txt), sans-IO.

A load balancer that forwards TCP connections puts one header in front of the client's bytes,
naming the client's address and port. DESIGN §4 makes this opt-in per listener: the spec (§1)
forbids guessing whether a header is there, because then anyone could claim any address.

:func:`parse_proxy_header` takes the bytes received so far and returns a :class:`ProxyResult`,
or :class:`NeedMore` saying how many bytes it needs at least; it raises
:class:`ProxyHeaderError` for anything the spec does not allow. ``NeedMore.at_least`` never
asks for a byte beyond the header, so a reader that reads exactly that many bytes leaves the
client's first bytes (a TLS ClientHello, say) unread in the socket.

Implementation notes:

- v1 (§2.1) is one US-ASCII line of at most 107 bytes ending in CRLF. Addresses must be in
  canonical form: no leading zeros in IPv4 numbers or ports, no IPv6 zone index. A lone CR or
  LF is an error. "UNKNOWN" may be followed by anything before the CRLF, which is ignored.
- v2 (§2.2) is a 16-byte fixed part plus ``len`` bytes, so at most 16 + 65535 bytes. LOCAL
  (health checks), AF_UNSPEC, AF_UNIX and DGRAM carry no address we can use, and the spec says
  to fall back to the socket's own endpoints for them: ``source`` is None.
- v2 TLVs (§2.2.1-§2.2.8) after the addresses must fill the header exactly; a CRC32C TLV must
  match (§2.2.3). The TLVs are handed back raw for whoever wants them (PP2_TYPE_SSL, ...).
"""
from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "V1_MAX_LENGTH", "V2_MAX_LENGTH", "V2_SIGNATURE", "Endpoint", "NeedMore", "ProxyHeaderError",
    "ProxyResult", "parse_proxy_header",
]

V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107          # "PROXY UNKNOWN <39> <39> 65535 65535\r\n", §2.1
V1_MIN_LENGTH = 15           # "PROXY UNKNOWN\r\n"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED_LENGTH = 16
V2_MAX_LENGTH = V2_FIXED_LENGTH + 0xFFFF

# v2 byte 13: version 2 in the high nibble; byte 14: address family and transport.
_LOCAL, _PROXY = 0x0, 0x1
_AF_UNSPEC, _AF_INET, _AF_INET6, _AF_UNIX = 0x0, 0x1, 0x2, 0x3
_UNSPEC, _STREAM, _DGRAM = 0x0, 0x1, 0x2
_ADDRESS_LENGTH = {_AF_UNSPEC: 0, _AF_INET: 12, _AF_INET6: 36, _AF_UNIX: 216}
PP2_TYPE_CRC32C = 0x03

_PORT = re.compile(r"0|[1-9][0-9]{0,4}")


class Endpoint(NamedTuple):
    ip: str
    port: int


@dataclass(frozen=True, slots=True)
class ProxyResult:
    """A complete header of ``length`` bytes; the client's own bytes start at ``data[length:]``.

    ``source`` and ``destination`` are None when the header says to use the connection's real
    endpoints (v1 UNKNOWN, v2 LOCAL, or an address family we cannot use).
    """

    version: int
    length: int
    source: Endpoint | None
    destination: Endpoint | None
    tlvs: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class NeedMore:
    """The header is incomplete; call again once ``at_least`` bytes in total have arrived."""

    at_least: int


class ProxyHeaderError(ValueError):
    """Not a valid PROXY header; the spec says to close the connection."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_proxy_header(data: bytes) -> ProxyResult | NeedMore:
    """Parse the PROXY header at the start of ``data`` (v1 or v2, told apart by the first byte)."""
    if not data:
        return NeedMore(V1_MIN_LENGTH)  # no valid header of either version is shorter
    if data[0] == V2_SIGNATURE[0]:
        return _parse_v2(data)
    if data[0] == V1_PREFIX[0]:
        return _parse_v1(data)
    raise ProxyHeaderError("the connection does not start with a PROXY protocol header")


# --- version 1 -----------------------------------------------------------------------------------

def _parse_v1(data: bytes) -> ProxyResult | NeedMore:
    head = data[:V1_MAX_LENGTH]
    if not head.startswith(V1_PREFIX[:len(head)]):
        raise ProxyHeaderError("the connection does not start with a PROXY protocol header")
    end = head.find(b"\n")
    if end < 0:
        if len(head) >= V1_MAX_LENGTH:
            raise ProxyHeaderError(f"the PROXY v1 line has no CRLF in {V1_MAX_LENGTH} bytes")
        if b"\r" in head[:-1]:
            raise ProxyHeaderError("the PROXY v1 line holds a CR without LF")
        return NeedMore(max(V1_MIN_LENGTH, len(head) + 1))
    if end == 0 or head[end - 1] != 0x0D or b"\r" in head[:end - 1]:
        raise ProxyHeaderError("the PROXY v1 line does not end in CRLF")
    try:
        line = head[:end - 1].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("the PROXY v1 line is not US-ASCII") from None
    length = end + 1
    fields = line.split(" ")
    if fields[1:2] == ["UNKNOWN"]:
        # §2.1: whatever follows UNKNOWN is ignored; use the connection's own endpoints.
        return ProxyResult(1, length, None, None)
    if len(fields) != 6 or fields[0] != "PROXY":
        raise ProxyHeaderError("the PROXY v1 line does not have six fields separated by spaces")
    _, family, src_ip, dst_ip, src_port, dst_port = fields
    if family not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"the PROXY v1 protocol {family[:10]!r} is not TCP4, TCP6 "
                               "or UNKNOWN")
    version = 4 if family == "TCP4" else 6
    return ProxyResult(1, length,
                       Endpoint(_v1_address(src_ip, version), _v1_port(src_port)),
                       Endpoint(_v1_address(dst_ip, version), _v1_port(dst_port)))


def _v1_address(text: str, version: int) -> str:
    try:
        # ipaddress refuses leading zeros in IPv4 numbers, as §2.1 asks.
        address = (ipaddress.IPv4Address(text) if version == 4 else ipaddress.IPv6Address(text))
    except ValueError:
        raise ProxyHeaderError(f"{text[:45]!r} is not an IPv{version} address") from None
    if "%" in text:  # a zone index names an interface on the sender's machine
        raise ProxyHeaderError(f"{text[:45]!r} carries a zone index")
    return str(address)


def _v1_port(text: str) -> int:
    if not _PORT.fullmatch(text) or int(text) > 0xFFFF:
        raise ProxyHeaderError(f"{text[:10]!r} is not a port number without leading zeros")
    return int(text)


# --- version 2 -----------------------------------------------------------------------------------

def _parse_v2(data: bytes) -> ProxyResult | NeedMore:
    if not V2_SIGNATURE.startswith(data[:len(V2_SIGNATURE)]):
        raise ProxyHeaderError("the connection does not start with a PROXY v2 signature")
    if len(data) < V2_FIXED_LENGTH:
        return NeedMore(V2_FIXED_LENGTH)
    version_command, family_transport, size = struct.unpack_from("!BBH", data, 12)
    if version_command >> 4 != 2:
        raise ProxyHeaderError(f"the PROXY v2 header has version {version_command >> 4}, not 2")
    command = version_command & 0x0F
    if command not in (_LOCAL, _PROXY):
        raise ProxyHeaderError(f"the PROXY v2 command {command} is neither LOCAL nor PROXY")
    family, transport = family_transport >> 4, family_transport & 0x0F
    if family not in _ADDRESS_LENGTH or transport not in (_UNSPEC, _STREAM, _DGRAM):
        raise ProxyHeaderError(f"the PROXY v2 address family byte {family_transport:#04x} "
                               "is not defined")
    length = V2_FIXED_LENGTH + size
    if len(data) < length:
        return NeedMore(length)
    header = data[:length]
    if command == _LOCAL:
        # §2.2: health checks from the proxy itself; skip whatever block follows.
        return ProxyResult(2, length, None, None, _tlvs(header, V2_FIXED_LENGTH, strict=False))
    address_length = _ADDRESS_LENGTH[family]
    if size < address_length:
        raise ProxyHeaderError(f"the PROXY v2 header is {size} bytes, too short for its "
                               f"{address_length}-byte address block")
    tlvs = _tlvs(header, V2_FIXED_LENGTH + address_length, strict=True)
    if family not in (_AF_INET, _AF_INET6) or transport != _STREAM:
        return ProxyResult(2, length, None, None, tlvs)  # §2.2: fall back to UNSPEC
    if family == _AF_INET:
        src, dst, sport, dport = struct.unpack_from("!4s4sHH", header, V2_FIXED_LENGTH)
    else:
        src, dst, sport, dport = struct.unpack_from("!16s16sHH", header, V2_FIXED_LENGTH)
    return ProxyResult(2, length, Endpoint(str(ipaddress.ip_address(src)), sport),
                       Endpoint(str(ipaddress.ip_address(dst)), dport), tlvs)


def _tlvs(header: bytes, offset: int, *, strict: bool) -> tuple[tuple[int, bytes], ...]:
    """The TLVs from ``offset`` to the end; for LOCAL the block may be anything (§2.2)."""
    found: list[tuple[int, bytes]] = []
    position = offset
    while position < len(header):
        if position + 3 > len(header):
            if strict:
                raise ProxyHeaderError("the PROXY v2 header ends inside a TLV")
            return ()
        kind, size = struct.unpack_from("!BH", header, position)
        value = header[position + 3:position + 3 + size]
        if len(value) != size:
            if strict:
                raise ProxyHeaderError("a PROXY v2 TLV runs past the end of the header")
            return ()
        if kind == PP2_TYPE_CRC32C:
            _check_crc32c(header, position + 3, value)
        found.append((kind, value))
        position += 3 + size
    return tuple(found)


def _check_crc32c(header: bytes, value_offset: int, value: bytes) -> None:
    # §2.2.3: the checksum covers the whole header with its own four bytes zeroed.
    if len(value) != 4:
        raise ProxyHeaderError("the PROXY v2 CRC32C TLV is not four bytes")
    zeroed = header[:value_offset] + b"\0\0\0\0" + header[value_offset + 4:]
    if _crc32c(zeroed) != int.from_bytes(value, "big"):
        raise ProxyHeaderError("the PROXY v2 CRC32C checksum does not match the header")


def _crc32c_table() -> tuple[int, ...]:
    # CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), RFC 4960 appendix B; zlib only
    # has the other CRC-32, and the checksum covers at most 64 KiB once per connection.
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
