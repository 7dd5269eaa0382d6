"""Parsing SPF records (RFC 7208 §4.5, §4.6, §5, §6, §12 ABNF) into typed terms.

    record = parse_record("v=spf1 ip4:192.0.2.0/24 include:_spf.example.com -all")
    record.directives[0]   # Directive(qualifier="+", name="ip4", network=IPv4Network(...), ...)

`is_spf_record` picks the SPF record among a name's TXT records (§4.5: "v=spf1" then a space or
the end, case-insensitively). `parse_record` checks the whole record before anything is evaluated
(§4.6: a syntax error anywhere is a permerror, even after a matching mechanism) and raises
`SpfSyntaxError` with a plain-language reason. Domain-specs are checked as written (§7.1: they end
in a macro or a valid top label), never after expansion; their macros are parsed here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Address, IPv6Network

from postoffice.mailauth.results import SpfCode
from postoffice.mailauth.spf_macro import (
    Macro,
    MacroToken,
    SpfSyntaxError,
    parse_macro_string,
)

Qualifier = str  # "+", "-", "~" or "?"
QUALIFIER_RESULTS: dict[Qualifier, SpfCode] = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
MAX_RECORD_LENGTH = 8192
# §4.6.4: the terms that cause DNS queries and count against the limit of 10.
DNS_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})

_VERSION = re.compile(r"v=spf1(?: |$)", re.IGNORECASE)
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9\-_.]*)=(.*)", re.DOTALL)
_MECHANISM = re.compile(r"([+\-~?]?)([^:/]*)(.*)", re.DOTALL)
_DOMAIN_AND_CIDR = re.compile(r"(?::(.*?))?(?:/(\d+))?(?://(\d+))?", re.DOTALL)
# §7.1 toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
_DOMAIN_END = re.compile(
    r".*\.(?:[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9\-]*[A-Za-z0-9])\.?",
    re.DOTALL,
)
_IP4 = re.compile(r":([0-9.]+)(?:/(\d+))?", re.DOTALL)
_OCTET = re.compile(r"25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]")
_IP6 = re.compile(r":([0-9A-Fa-f:.]+)(?:/(\d+))?", re.DOTALL)


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """A domain-spec as written and as parsed macro tokens."""

    text: str
    tokens: tuple[MacroToken, ...]

    @property
    def uses_validated_name(self) -> bool:
        return any(isinstance(t, Macro) and t.letter == "p" for t in self.tokens)


@dataclass(frozen=True, slots=True)
class Directive:
    """A qualifier and a mechanism (§4.6.2, §5)."""

    text: str  # as written, without the qualifier, for results and logs
    qualifier: Qualifier
    name: str  # lower case: one of MECHANISMS
    domain: DomainSpec | None = None  # include/a/mx/ptr/exists target; None: the current domain
    cidr4: int = 32  # a/mx: dual-cidr-length; ip4: the prefix length
    cidr6: int = 128  # a/mx: dual-cidr-length; ip6: the prefix length
    version: int = 0  # ip4/ip6: 4 or 6, with the network as ints (a check is two operations)
    network_value: int = 0
    network_mask: int = 0

    @property
    def network(self) -> IPv4Network | IPv6Network | None:
        """ip4/ip6: the network, for display; None for the other mechanisms."""
        if self.version == 4:
            return IPv4Network((self.network_value, self.cidr4))
        if self.version == 6:
            return IPv6Network((self.network_value, self.cidr6))
        return None

    def network_contains(self, version: int, address: int) -> bool:
        """ip4/ip6: the address (an int, of IP version ``version``) is in ``network``."""
        return version == self.version and address & self.network_mask == self.network_value


@dataclass(frozen=True, slots=True)
class SpfRecord:
    directives: tuple[Directive, ...]
    redirect: DomainSpec | None = None
    explanation: DomainSpec | None = None  # exp=


def is_spf_record(text: str) -> bool:
    """§4.5: starts with "v=spf1" followed by a space or the end (case-insensitive)."""
    return _VERSION.match(text) is not None


def parse_record(text: str) -> SpfRecord:
    """Every term of an SPF record (one that `is_spf_record`), or `SpfSyntaxError`."""
    if len(text) > MAX_RECORD_LENGTH:
        # §3.4 asks for records under 450 octets; parsing 100 KB of terms would hold the event
        # loop for a noticeable time, for a record no DNS answer over UDP could carry.
        raise SpfSyntaxError(f"the record is {len(text)} characters long; more than "
                             f"{MAX_RECORD_LENGTH} are refused")
    if not text.isascii():
        raise SpfSyntaxError("the record contains non-ASCII characters")  # §3.1: 7-bit only
    directives: list[Directive] = []
    modifiers: dict[str, DomainSpec] = {}
    # §4.6.1: terms are separated by one or more spaces (only spaces: a tab or CR is part of a
    # term, and makes it invalid).
    for term in text.split(" ")[1:]:
        if not term:
            continue
        modifier = _MODIFIER.fullmatch(term)
        if modifier:
            name, value = modifier.group(1).lower(), modifier.group(2)
            if name in ("redirect", "exp"):
                if name in modifiers:
                    raise SpfSyntaxError(f"{name}= appears more than once")  # §6
                modifiers[name] = parse_domain_spec(value, term)
            else:
                parse_macro_string(value)  # §6: unknown modifiers are ignored, if well-formed
            continue
        directives.append(_parse_directive(term))
    return SpfRecord(tuple(directives), modifiers.get("redirect"), modifiers.get("exp"))


def parse_domain_spec(text: str, term: str) -> DomainSpec:
    """§7.1 domain-spec = macro-string domain-end."""
    if not text:
        raise SpfSyntaxError(f"empty domain in {term!r}")
    tokens = parse_macro_string(text)
    if isinstance(tokens[-1], str) and not _ends_like_domain(text):
        raise SpfSyntaxError(f"{text!r} in {term!r} does not end in a valid top-level label")
    return DomainSpec(text, tokens)


def _ends_like_domain(text: str) -> bool:
    # The tokens end in a literal: the text must end "." toplabel ["."] after the last macro.
    last_macro = text.rfind("}")
    tail = text[last_macro + 1:] if last_macro >= 0 else text
    return _DOMAIN_END.fullmatch(tail) is not None


def _cidr(digits: str | None, maximum: int, term: str) -> int:
    if digits is None:
        return maximum
    # §5.6: ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT); no leading zeros, within range.
    if (len(digits) > 1 and digits[0] == "0") or len(digits) > 3 or int(digits) > maximum:
        raise SpfSyntaxError(f"bad prefix length /{digits} in {term!r}")
    return int(digits)


def _parse_directive(term: str) -> Directive:
    match = _MECHANISM.fullmatch(term)
    assert match is not None  # the pattern matches any string
    qualifier, raw_name, rest = match.group(1) or "+", match.group(2), match.group(3)
    name = raw_name.lower()
    text = term[len(match.group(1)):]
    if name not in MECHANISMS:
        raise SpfSyntaxError(f"unknown mechanism {raw_name!r} in {term!r}")
    if name == "all":
        if rest:
            raise SpfSyntaxError(f"'all' takes no argument: {term!r}")
        return Directive(text, qualifier, name)
    if name in ("ip4", "ip6"):
        return _parse_ip(term, text, qualifier, name, rest)
    if name in ("include", "exists"):
        if not rest.startswith(":"):
            raise SpfSyntaxError(f"{name} needs ':' and a domain: {term!r}")
        return Directive(text, qualifier, name, parse_domain_spec(rest[1:], term))
    if name == "ptr":
        if rest and not rest.startswith(":"):
            raise SpfSyntaxError(f"ptr takes only a domain: {term!r}")
        domain = parse_domain_spec(rest[1:], term) if rest else None
        return Directive(text, qualifier, name, domain)
    # a, mx: [ ":" domain-spec ] [ dual-cidr-length ]
    parts = _DOMAIN_AND_CIDR.fullmatch(rest)
    if parts is None:
        raise SpfSyntaxError(f"bad argument in {term!r}")
    domain_text, c4, c6 = parts.groups()
    domain = parse_domain_spec(domain_text, term) if domain_text is not None else None
    return Directive(text, qualifier, name, domain, _cidr(c4, 32, term), _cidr(c6, 128, term))


def _parse_ip(term: str, text: str, qualifier: Qualifier, name: str, rest: str) -> Directive:
    parts = (_IP4 if name == "ip4" else _IP6).fullmatch(rest)
    if parts is None:
        raise SpfSyntaxError(f"bad address in {term!r}")
    address, digits = parts.groups()
    bits = 32 if name == "ip4" else 128
    prefix = _cidr(digits, bits, term)
    if name == "ip4":
        # §5.6 ip4-network: four decimal octets without leading zeros (a quick path: records
        # may hold thousands of these).
        octets = address.split(".")
        if len(octets) != 4 or any(not _OCTET.fullmatch(o) for o in octets):
            raise SpfSyntaxError(f"bad address in {term!r}")
        value = int.from_bytes(bytes(int(o) for o in octets), "big")
    else:
        try:
            value = int(IPv6Address(address))
        except ValueError:
            raise SpfSyntaxError(f"bad address in {term!r}") from None
    mask = ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1)
    return Directive(text, qualifier, name, None, prefix, prefix, int(name[2]), value & mask, mask)
