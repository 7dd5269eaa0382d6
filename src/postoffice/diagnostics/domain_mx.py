"""`check domain`: the MX hosts, their addresses, reverse DNS and blocklist listings.

Findings: mx-missing, mx-cname, mx-ip-literal, mx-no-address, ptr-missing, ptr-mismatch (per
address, IPv4 and IPv6 apart), dnsbl-listed, dnsbl-unanswered. `mx_hosts` returns the hosts with their addresses
for the checks that build on them (SPF coverage, MTA-STS, the live connections).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from ipaddress import ip_address

from postoffice.diagnostics.checks import Finding, Severity
from postoffice.diagnostics.zone_view import ZoneResolver
from postoffice.filtering.dnsbl import ask_blocklist
from postoffice.mailauth.dns_types import DnsTemporaryError, IPAddress
from postoffice.mailauth.iprev import check_iprev

E, W, OK = Severity.ERROR, Severity.WARNING, Severity.OK


@dataclass
class MxHost:
    name: str
    preference: int
    addresses: list[IPAddress] = field(default_factory=list)


def dns_failed(what: str, error: DnsTemporaryError, subject: str) -> Finding:
    """A temporary DNS failure: nothing can be concluded about WHAT now."""
    return Finding("dns-failed", E, f"DNS could not answer about {what}: {error}.",
                   "Try again in a few minutes; if it persists, check that the domain's name servers answer.",
                   subject=subject)


async def mx_hosts(resolver: ZoneResolver, domain: str) -> tuple[list[MxHost], list[Finding]]:
    """The MX hosts of DOMAIN (with addresses) and the mx-* findings."""
    try:
        answer = await resolver.mx(domain)
    except DnsTemporaryError as error:
        return [], [dns_failed(f"the MX records of {domain}", error, domain)]
    records = sorted(answer.records, key=lambda r: (r.preference, r.host))
    if not records:
        return [], [Finding("mx-missing", E, f"{domain} has no MX record, so other servers deliver its mail to "
                            "its A record, if it has one, or not at all.",
                            f"Publish an MX record for {domain} naming this server's host name "
                            "(`postoffice domain records` shows it).", subject=domain)]
    if any(not r.host for r in records):
        return [], [Finding("mx-missing", E, f"{domain} publishes a null MX (\".\"), which says it accepts no mail.",
                            f"Replace the null MX of {domain} by an MX record naming this server's host name.",
                            subject=domain)]
    hosts: list[MxHost] = []
    findings: list[Finding] = []
    for record in records:
        host = MxHost(record.host, record.preference)
        findings += await _check_host(resolver, domain, host)
        hosts.append(host)
    if not any(f.severity is E for f in findings):
        names = ", ".join(f"{h.name} ({h.preference})" for h in hosts)
        findings.insert(0, Finding("mx-missing", OK, f"{domain} has MX records: {names}.", subject=domain))
    return hosts, findings


async def _check_host(resolver: ZoneResolver, domain: str, host: MxHost) -> list[Finding]:
    literal = _ip_literal(host.name)
    if literal:
        return [Finding("mx-ip-literal", E, f"The MX record of {domain} names the address {literal} instead of a "
                        "host name; senders treat it as a name that does not exist.",
                        f"Give the server a host name with an A record for {literal} and name that in the MX "
                        "record.", subject=host.name)]
    findings = []
    try:
        alias = (await resolver.cname(host.name)).records
        for ask in (resolver.a, resolver.aaaa):
            host.addresses.extend((await ask(host.name)).records)
    except DnsTemporaryError as error:
        return [dns_failed(f"the MX host {host.name}", error, host.name)]
    if alias:
        findings.append(Finding("mx-cname", E, f"The MX host {host.name} is a CNAME (to {alias[0]}), which "
                                "RFC 5321 forbids and some senders refuse.",
                                f"Name {alias[0]} in the MX record directly, or give {host.name} its own A/AAAA "
                                "records.", subject=host.name))
    if not host.addresses:
        findings.append(Finding("mx-no-address", E, f"The MX host {host.name} has no A or AAAA record, so no "
                                "sender can reach it.",
                                f"Publish an A record (and AAAA for IPv6) for {host.name} with this server's "
                                "address.", subject=host.name))
    elif not alias:
        shown = ", ".join(map(str, host.addresses))
        findings.append(Finding("mx-no-address", OK, f"The MX host {host.name} has the addresses {shown}.",
                                subject=host.name))
    return findings


def _ip_literal(name: str) -> str:
    text = name.strip("[]").removeprefix("ipv6:").removeprefix("IPv6:")
    try:
        return str(ip_address(text))
    except ValueError:
        return ""


async def reverse_dns(resolver: ZoneResolver, hosts: list[MxHost]) -> list[Finding]:
    """ptr-missing / ptr-mismatch for each MX address: forward-confirmed reverse DNS, which many
    receivers require of the servers that send to them."""
    findings = []
    for address in _addresses(hosts):
        version = f"IPv{address.version}"
        result = await check_iprev(resolver, address)
        if result.result == "pass":
            findings.append(Finding("ptr-mismatch", OK, f"The {version} address {address} has the reverse name "
                                    f"{result.name}, which leads back to it.", subject=str(address)))
        elif result.result == "permerror":
            findings.append(Finding("ptr-missing", E, f"The {version} address {address} has no reverse DNS (PTR) "
                                    "record; many receivers refuse mail from such addresses.",
                                    f"Ask the provider of {address} for a PTR record naming this server's host "
                                    "name (the name of its MX/A record).", subject=str(address)))
        elif result.result == "fail":
            findings.append(Finding("ptr-mismatch", E, f"The reverse DNS of the {version} address {address} "
                                    f"is not confirmed: {result.problem}.",
                                    f"Make the PTR record of {address} name a host whose A/AAAA record is "
                                    f"{address} (this server's host name), or fix that host's address record.",
                                    subject=str(address)))
        else:
            findings.append(Finding("dns-failed", E, f"The reverse DNS of {address} could not be checked: "
                                    f"{result.problem}.", "Try again in a few minutes.", subject=str(address)))
    return findings


async def blocklist_listings(resolver: ZoneResolver, hosts: list[MxHost], zones: tuple[str, ...]) -> list[Finding]:
    """dnsbl-listed for each MX address on one of ZONES (`[dns] blocklists`); dnsbl-unanswered
    (a warning) where a list did not say: it refuses this resolver (Spamhaus refuses public
    resolvers) or could not be asked. Silence is never reported as "not listed"."""
    if not zones:
        return []
    findings = []
    for address in _addresses(hosts):
        answers = await asyncio.gather(*(ask_blocklist(resolver.recursive, address, zone) for zone in zones))
        answered = []
        for answer in answers:
            listing = answer.listing
            if listing is not None:
                reason = f" ({listing.reason})" if listing.reason else ""
                findings.append(Finding(
                    "dnsbl-listed", E, f"The MX address {address} is listed on the blocklist "
                    f"{listing.zone}{reason}; receivers using it refuse this server's mail.",
                    f"Find and stop what sent spam from {address}, then ask {listing.zone} to "
                    "delist it (its web site has a lookup and a removal form).",
                    subject=f"{address} {listing.zone}"))
            elif answer.problem:
                findings.append(Finding(
                    "dnsbl-unanswered", W, f"Whether the MX address {address} is on {answer.zone} is "
                    f"unknown: {answer.problem}.",
                    f"Look {address} up on {answer.zone}'s web site, or run `postoffice check blocklists "
                    f"{address}` on a machine whose resolver the list answers.",
                    subject=f"{address} {answer.zone}"))
            else:
                answered.append(answer.zone)
        if answered and len(answered) == len(zones):
            findings.append(Finding("dnsbl-listed", OK, f"The MX address {address} is on none of the blocklists "
                                    f"checked ({', '.join(zones)}).", subject=str(address)))
    return findings


def _addresses(hosts: list[MxHost]) -> list[IPAddress]:
    return list(dict.fromkeys(a for h in hosts for a in h.addresses))
