"""iprev: forward-confirmed reverse DNS of the connecting address (RFC 8601 §3).

    result = await check_iprev(resolver, "192.0.2.1")   # IprevResult(result="pass", name=...)

The address's PTR names are looked up, then the addresses of each name (A for an IPv4 client,
AAAA for IPv6); the address passes when one of its names leads back to it. Results:
- pass: a name leads back (``name`` is that name);
- fail: names were found but none leads back (each answered, none with the address);
- temperror: a lookup failed for now (SERVFAIL, timeout) and no name led back;
- permerror: the address has no PTR record (NXDOMAIN or no data).
At most 10 names are followed (the limit RFC 7208 §5.5 sets for the same walk), so a hostile
reverse zone costs at most 11 questions; they are asked at once.
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv6Address, ip_address

from postoffice.mailauth.dns_types import DnsAnswer, DnsTemporaryError, IPAddress, Resolver
from postoffice.mailauth.results import IprevResult

MAX_NAMES = 10


async def check_iprev(resolver: Resolver, address: IPAddress | str) -> IprevResult:
    client = _plain_address(address)
    shown = str(client)
    try:
        names = (await resolver.ptr(client)).records
    except DnsTemporaryError as error:
        return IprevResult("temperror", shown, problem=str(error))
    names = tuple(dict.fromkeys(n for n in names if n))[:MAX_NAMES]
    if not names:
        return IprevResult("permerror", shown, problem=f"no PTR record for {shown}")
    answers: list[DnsAnswer[IPv4Address] | DnsAnswer[IPv6Address] | BaseException]
    if len(names) == 1:  # the usual case: no task to run one lookup beside nothing
        try:
            answers = [await _addresses(resolver, names[0], client)]
        except DnsTemporaryError as error:
            answers = [error]
    else:
        answers = await asyncio.gather(*(_addresses(resolver, name, client) for name in names),
                                       return_exceptions=True)
    for name, answer in zip(names, answers, strict=True):
        if isinstance(answer, DnsAnswer) and client in answer.records:
            return IprevResult("pass", shown, name=name)
    failures = [a for a in answers if isinstance(a, BaseException)]
    for failure in failures:
        if not isinstance(failure, DnsTemporaryError):
            raise failure  # our bug, not the network's: let it show
    if failures:
        return IprevResult("temperror", shown, problem=str(failures[0]))
    return IprevResult("fail", shown, problem=f"the name{'s' if len(names) > 1 else ''} of {shown}"
                       f" ({', '.join(names)}) do{'' if len(names) > 1 else 'es'} not lead back to it")


async def _addresses(resolver: Resolver, name: str, client: IPAddress
                     ) -> DnsAnswer[IPv4Address] | DnsAnswer[IPv6Address]:
    if isinstance(client, IPv4Address):
        return await resolver.a(name)
    return await resolver.aaaa(name)


def _plain_address(address: IPAddress | str) -> IPAddress:
    """An IPv4 client seen through an IPv6 socket (::ffff:a.b.c.d) is the IPv4 address."""
    parsed = ip_address(address)
    if isinstance(parsed, IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed
