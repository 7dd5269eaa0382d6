"""What every DNS user in postoffice sees: the `Resolver` protocol and its typed answers.

SPF, DKIM, DMARC, ARC, iprev, blocklists, MX routing and MTA-STS/DANE all ask DNS the
same few questions and must tell the same three outcomes apart, because each maps them to its own
results (RFC 7208 §2.6, RFC 6376 §6.1.2, RFC 8601 §2.7):

- an answer with records,
- a permanent absence: the name does not exist (NXDOMAIN, ``exists`` False) or has no records of
  that type (NODATA, ``exists`` True), both an empty `DnsAnswer`,
- a temporary failure: SERVFAIL, REFUSED, a timeout, an unreachable server: `DnsTemporaryError`.

The real implementation (dnspython, cache, timeouts) is `mailauth.resolver`; tests of the
evaluators may pass any object with these methods. Names are ASCII (A-labels), compared
case-insensitively, with or without the trailing dot; answers give names lower-case without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Generic, Protocol, TypeVar

R = TypeVar("R")
IPAddress = IPv4Address | IPv6Address


class DnsTemporaryError(Exception):
    """The question could not be answered now (SERVFAIL, REFUSED, timeout): try again later.

    The message names the query and the cause in plain words, e.g.
    "DNS timeout for TXT example.org after 5 s".
    """


@dataclass(frozen=True, slots=True)
class DnsAnswer(Generic[R]):
    """The records of one type at one name (after CNAMEs), or none.

    ``exists`` is False only for NXDOMAIN; ``ttl`` is the smallest TTL of the answer (or of the
    SOA minimum for a negative answer), as far as the resolver knows it. ``authenticated``: a
    DNSSEC-validating resolver on this machine vouched for it (the AD bit, RFC 4035 §3.2.3,
    trusted only over loopback, RFC 6698 §4.1); DANE (RFC 7672) uses TLSA records only then.
    """

    records: tuple[R, ...] = ()
    exists: bool = True
    ttl: int = 0
    authenticated: bool = False

    def __bool__(self) -> bool:
        return bool(self.records)

    def __len__(self) -> int:
        return len(self.records)


@dataclass(frozen=True, slots=True)
class MxRecord:
    preference: int
    host: str  # lower-case, no trailing dot; "" for the null MX "." (RFC 7505)


@dataclass(frozen=True, slots=True)
class TlsaRecord:
    """RFC 6698 §2.1: certificate usage, selector, matching type, association data."""

    usage: int  # 2 DANE-TA, 3 DANE-EE (0 and 1 are not for SMTP, RFC 7672 §3.1.3)
    selector: int  # 0 the whole certificate, 1 its SubjectPublicKeyInfo
    matching_type: int  # 0 exact, 1 SHA-256, 2 SHA-512
    data: bytes


class TlsaResolver(Protocol):
    """The resolver DANE needs: TLSA records with the ``authenticated`` flag."""

    async def tlsa(self, name: str) -> DnsAnswer[TlsaRecord]: ...


class Resolver(Protocol):
    """The DNS questions mail authentication and delivery ask. Every method raises
    `DnsTemporaryError` for a temporary failure and returns an empty `DnsAnswer` for a
    permanent absence."""

    async def txt(self, name: str) -> DnsAnswer[str]:
        """TXT records, each record's character-strings joined without separator (RFC 7208
        §3.3, RFC 6376 §3.6.2.2), decoded as UTF-8 with surrogateescape."""
        ...

    async def a(self, name: str) -> DnsAnswer[IPv4Address]: ...

    async def aaaa(self, name: str) -> DnsAnswer[IPv6Address]: ...

    async def mx(self, name: str) -> DnsAnswer[MxRecord]: ...

    async def ptr(self, address: IPAddress) -> DnsAnswer[str]:
        """The names at the address's reverse name (in-addr.arpa / ip6.arpa)."""
        ...
