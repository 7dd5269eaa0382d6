"""`postoffice check blocklists IP|DOMAIN`: is an address or a domain on a DNS blocklist?

    report = await check_listings(resolver, "192.0.2.1", ip_lists=("zen.spamhaus.org",))
    report = await check_listings(resolver, "example.org")   # its MX addresses, and the domain
    report.findings   # per list: dnsbl-listed (with the list's reason and where to ask for
                      # removal), dnsbl-not-listed, or dnsbl-unanswered (and why)

An address is asked of the address lists (`[dns] blocklists`); a domain is asked of the domain
lists (`[dns] domain_blocklists`, DBL-style) and the addresses of its MX hosts (the servers
that usually send its mail too) of the address lists. With no list configured the defaults
below are used, and the report names them. The questions are filtering/dnsbl.py's, the same the
port-25 check asks (RFC 5782).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from ipaddress import ip_address

from postoffice.diagnostics.checks import Finding, Severity
from postoffice.filtering.dnsbl import ListAnswer, ask_blocklist, ask_domain_list
from postoffice.mailauth.dns_types import DnsTemporaryError, Resolver

__all__ = ["DEFAULT_DOMAIN_LISTS", "DEFAULT_IP_LISTS", "ListingReport", "check_listings",
           "delisting_hint"]

# Widely used lists that answer small sites free of charge (Spamhaus: not through public
# resolvers such as 8.8.8.8, which it refuses with 127.255.255.254).
DEFAULT_IP_LISTS = ("zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org",
                    "psbl.surriel.com")
DEFAULT_DOMAIN_LISTS = ("dbl.spamhaus.org", "multi.surbl.org")
MAX_MX_HOSTS = 10
# Where each list's operator takes removal requests, by the zone's parent domain.
DELISTING = {
    "spamhaus.org": "look the address up at https://check.spamhaus.org/ and follow its removal"
                    " steps (a PBL listing means a home or dynamic range: send through your"
                    " provider's relay, or ask the provider for a static address)",
    "spamcop.net": "SpamCop listings expire by themselves 24 hours after the last report"
                   " (https://www.spamcop.net/bl.shtml); stop what was reported first",
    "barracudacentral.org": "ask for removal at https://www.barracudacentral.org/rbl/removal-request",
    "surriel.com": "remove it at https://psbl.org/ (look the address up, then use the link)",
    "surbl.org": "see https://www.surbl.org/surbl-analysis and its removal form",
    "uribl.com": "ask for removal at https://admin.uribl.com/",
    "mailspike.net": "look the address up at https://mailspike.org/iplookup.html",
}


@dataclass
class ListingReport:
    subject: str
    ip_lists: tuple[str, ...]
    domain_lists: tuple[str, ...]
    defaults_used: bool  # no list configured: the defaults above were asked
    answers: list[ListAnswer] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def delisting_hint(zone: str) -> str:
    """Where to ask list ZONE for removal, in one sentence."""
    for parent, hint in DELISTING.items():
        if zone == parent or zone.endswith("." + parent):
            return f"Find and fix the cause first (an open relay, a hacked account or web form, a missing PTR), then {hint}."
    return ("Find and fix the cause first (an open relay, a hacked account or web form, a missing"
            f" PTR), then look for the removal form on the web site of {zone} (its reason text"
            " often names the page).")


async def check_listings(resolver: Resolver, subject: str, *, ip_lists: tuple[str, ...] = (),
                         domain_lists: tuple[str, ...] = ()) -> ListingReport:
    """Ask every list about SUBJECT, an IP address or a domain (see the module notes)."""
    subject = subject.strip().lower().rstrip(".")
    defaults = not ip_lists and not domain_lists
    report = ListingReport(subject, ip_lists or DEFAULT_IP_LISTS,
                           domain_lists or DEFAULT_DOMAIN_LISTS, defaults)
    try:
        ip_address(subject)
        addresses = [subject]
    except ValueError:
        addresses = await _mx_addresses(resolver, subject, report.findings)
        report.answers += await asyncio.gather(*(ask_domain_list(resolver, subject, zone)
                                                 for zone in report.domain_lists))
    report.answers += await asyncio.gather(*(ask_blocklist(resolver, address, zone)
                                             for address in addresses for zone in report.ip_lists))
    report.findings += [_finding(answer) for answer in report.answers]
    return report


async def _mx_addresses(resolver: Resolver, domain: str, findings: list[Finding]) -> list[str]:
    """The addresses of DOMAIN's MX hosts (or of the domain itself without MX, RFC 5321 §5.1)."""
    try:
        mx = await resolver.mx(domain)
        hosts = [r.host for r in sorted(mx.records, key=lambda r: r.preference) if r.host]
        hosts = hosts[:MAX_MX_HOSTS] if mx else [domain]
        found: list[str] = []
        for host in hosts:
            for answer in await asyncio.gather(resolver.a(host), resolver.aaaa(host)):
                found += [str(a) for a in answer.records if str(a) not in found]
    except DnsTemporaryError as error:
        findings.append(Finding("dnsbl-unanswered", Severity.WARNING,
                                f"The mail servers of {domain} could not be looked up: {error}.",
                                "Try again later.", domain))
        return []
    if not found:
        findings.append(Finding("dnsbl-no-address", Severity.WARNING,
                                f"{domain} has no mail server address to look up on the address lists.",
                                f"Check the MX records of {domain} (postoffice check domain {domain}).",
                                domain))
    return found


def _finding(answer: ListAnswer) -> Finding:
    where = f"{answer.subject} on {answer.zone}"
    if answer.listing is not None:
        codes = ", ".join(str(c) for c in answer.listing.codes)
        reason = f": {answer.listing.reason}" if answer.listing.reason else ""
        return Finding("dnsbl-listed", Severity.ERROR,
                       f"{answer.subject} is listed on {answer.zone} (code {codes}){reason}; many"
                       " receivers refuse mail from it.", delisting_hint(answer.zone), where)
    if answer.problem:
        fix = ("Use a DNS resolver of your own ([dns] nameservers, e.g. unbound on this machine):"
               " lists refuse public resolvers; then try again." if "error code" in answer.problem
               else "Try again later; remove the list from [dns] blocklists if it keeps failing.")
        return Finding("dnsbl-unanswered", Severity.WARNING,
                       f"Whether {answer.subject} is listed is unknown: {answer.problem}.", fix, where)
    return Finding("dnsbl-listed", Severity.OK, f"{answer.subject} is not listed on {answer.zone}.",
                   subject=where)
