"""DNS blocklists (RFC 5782): is the connecting address listed?

    listings = await check_blocklists(resolver, "192.0.2.99", ("zen.spamhaus.org",))
    # [Listing(zone="zen.spamhaus.org", address="192.0.2.99", codes=(127.0.0.2,), reason="...")]

The question for 192.0.2.99 is the A record of 99.2.0.192.<zone> (IPv6: the 32 nibbles of the
address reversed, RFC 5782 §2.4), asked of every list at once. What counts, and why:
- Only answers within 127.0.0.2-127.0.0.255 are listings (RFC 5782 §2.1, the return codes lists
  use). 127.255.255.x is how lists report an error with the asker (Spamhaus: a public resolver or
  over quota): logged as a warning, never a listing, since the list said nothing about the client.
  Anything else is ignored.
- A listed address's TXT record at the same name is the list's reason, printable ASCII, at most
  200 characters (it may end up in an SMTP reply: nothing in it can break the reply's lines).
- A list that lists its test entry 127.0.0.1 (RFC 5782 §5: it must not) is misbehaving, often
  a list shut down that now lists the world: it is ignored, with one warning, until it stops. Its
  health is checked once per hour per list and resolver.
- A list that cannot be asked now (timeout, SERVFAIL) lists nothing: a temporary failure never
  refuses mail on its own. It is logged at info.
Every question goes through the resolver, so answers are cached for their TTL.

Domain lists (DBL-style, e.g. dbl.spamhaus.org: the A record of <domain>.<zone>) are asked by
`ask_domain_list`; their listings are any 127.x.y.z but 127.0.0.0, 127.0.0.1 (URIBL and SURBL:
"query refused"), 127.0.1.255 (Spamhaus DBL: "an IP address asked") and the 127.255.255.x
errors. `ask_blocklist` and `ask_domain_list` also say why a list said nothing (`ListAnswer`),
for `postoffice check blocklists`; the port-25 check uses `check_blocklists`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address

from postoffice.mailauth.dns_types import DnsTemporaryError, IPAddress, Resolver

log = logging.getLogger(__name__)
LISTED = IPv4Network("127.0.0.0/24")  # .0 and .1 excepted
DOMAIN_LISTED = IPv4Network("127.0.0.0/8")  # but these:
DOMAIN_NOT_LISTED = frozenset({IPv4Address("127.0.0.0"), IPv4Address("127.0.0.1"),
                               IPv4Address("127.0.1.255")})
LIST_ERRORS = IPv4Network("127.255.255.0/24")
TEST_ENTRY = IPv4Address("127.0.0.1")
HEALTH_SECONDS = 3600.0
MAX_REASON = 200


@dataclass(frozen=True, slots=True)
class Listing:
    zone: str
    address: str
    codes: tuple[IPv4Address, ...]  # the list's return codes, e.g. 127.0.0.2 (what it lists for)
    reason: str = ""  # its TXT record, cleaned; "" when it has none


@dataclass(frozen=True, slots=True)
class ListAnswer:
    """What one list said about one address or domain: a listing, or nothing and why not
    (``problem``: the list could not be asked, refused to answer, or misbehaves)."""

    zone: str
    subject: str
    listing: Listing | None = None
    problem: str = ""


# Per resolver (a test may run several): zone -> (misbehaving, when to check again).
_health: weakref.WeakKeyDictionary[Resolver, dict[str, tuple[bool, float]]] = weakref.WeakKeyDictionary()


async def check_blocklists(resolver: Resolver, address: IPAddress | str,
                           zones: tuple[str, ...] | list[str]) -> list[Listing]:
    """The listings of `address` in `zones`, in the order of `zones`; [] when none lists it."""
    client = ip_address(address)
    if isinstance(client, IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    found = await asyncio.gather(*(_check_one(resolver, client, zone.lower().rstrip("."))
                                   for zone in zones))
    return [listing for listing in found if listing is not None]


def query_name(address: IPAddress, zone: str) -> str:
    """99.2.0.192.zone for 192.0.2.99; the nibbles reversed for IPv6 (RFC 5782 §2.1, §2.4)."""
    reverse = address.reverse_pointer  # "99.2.0.192.in-addr.arpa" / "...ip6.arpa"
    return reverse.rsplit(".", 2)[0] + "." + zone


async def _check_one(resolver: Resolver, client: IPAddress, zone: str) -> Listing | None:
    return (await _ask_one(resolver, client, zone)).listing


async def ask_blocklist(resolver: Resolver, address: IPAddress | str, zone: str) -> ListAnswer:
    """What list ZONE says about ADDRESS, with the reason when it says nothing."""
    client = ip_address(address)
    if isinstance(client, IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    return await _ask_one(resolver, client, zone.lower().rstrip("."))


async def ask_domain_list(resolver: Resolver, domain: str, zone: str) -> ListAnswer:
    """What domain list ZONE (DBL-style) says about DOMAIN."""
    domain, zone = domain.lower().rstrip("."), zone.lower().rstrip(".")
    return await _ask(resolver, f"{domain}.{zone}", domain, zone, _is_domain_listing)


async def _ask_one(resolver: Resolver, client: IPAddress, zone: str) -> ListAnswer:
    if await _misbehaving(resolver, zone):
        return ListAnswer(zone, str(client), problem=f"{zone} lists its test entry 127.0.0.1,"
                          " which a working list never does (RFC 5782 §5): its answers are ignored")
    return await _ask(resolver, query_name(client, zone), str(client), zone, _is_listing)


async def _ask(resolver: Resolver, name: str, subject: str, zone: str,
               is_listing: Callable[[IPv4Address], bool]) -> ListAnswer:
    try:
        answer = await resolver.a(name)
    except DnsTemporaryError as error:
        log.info("blocklist %s could not be asked about %s: %s", zone, subject, error)
        return ListAnswer(zone, subject, problem=f"{zone} could not be asked: {error}")
    codes = tuple(code for code in answer.records if is_listing(code))
    errors = [code for code in answer.records if code in LIST_ERRORS]
    problem = ""
    if errors:
        log.warning("blocklist %s answered with its error code %s for %s: it refuses to answer"
                    " this server (a public resolver or a query limit); see the list's"
                    " documentation", zone, ", ".join(map(str, errors)), subject)
        problem = (f"{zone} answered with its error code {', '.join(map(str, errors))}: it refuses"
                   " to answer this resolver (a public resolver, or over its query limit)")
    if not codes:
        return ListAnswer(zone, subject, problem=problem)
    return ListAnswer(zone, subject, Listing(zone, subject, codes, await _reason(resolver, name)))


def _is_listing(code: IPv4Address) -> bool:
    return code in LISTED and code not in (LISTED.network_address, TEST_ENTRY)


def _is_domain_listing(code: IPv4Address) -> bool:
    return code in DOMAIN_LISTED and code not in DOMAIN_NOT_LISTED and code not in LIST_ERRORS


async def _reason(resolver: Resolver, name: str) -> str:
    try:
        texts = (await resolver.txt(name)).records
    except DnsTemporaryError:
        return ""
    text = " ".join(texts)
    cleaned = "".join(c if " " <= c <= "~" else " " for c in text)
    return " ".join(cleaned.split())[:MAX_REASON]


async def _misbehaving(resolver: Resolver, zone: str) -> bool:
    """Does the list list 127.0.0.1? Asked once per HEALTH_SECONDS; unknown counts as healthy."""
    known = _health.setdefault(resolver, {})
    now = time.monotonic()
    state = known.get(zone)
    if state is not None and now < state[1]:
        return state[0]
    try:
        answer = await resolver.a(query_name(TEST_ENTRY, zone))
    except DnsTemporaryError:
        return False  # ask again next time
    bad = any(_is_listing(code) for code in answer.records)
    if bad and not (state and state[0]):
        log.warning("blocklist %s lists its test entry 127.0.0.1, which a working list never does"
                    " (RFC 5782 §5): it is ignored until it stops; remove it from [dns] blocklists",
                    zone)
    elif not bad and state and state[0]:
        log.warning("blocklist %s no longer lists 127.0.0.1: it is used again", zone)
    known[zone] = (bad, now + HEALTH_SECONDS)
    return bad
