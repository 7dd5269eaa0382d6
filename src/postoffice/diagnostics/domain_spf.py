"""`check domain`: the domain's SPF record, and whether it lets the MX addresses send.

Findings: spf-missing, spf-multiple, spf-syntax, spf-too-many-lookups, spf-plus-all,
spf-mx-not-covered. The record is parsed by mailauth/spf_record.py and each MX address is
evaluated with mailauth/spf.py's check_host, as a receiver would; the DNS lookups through
includes and redirects (RFC 7208 §4.6.4) are counted by `check spf`'s walk (spf_explain.py).
"""

from __future__ import annotations

from postoffice.diagnostics.checks import Finding, Severity
from postoffice.diagnostics.domain_mx import MxHost, dns_failed
from postoffice.diagnostics.spf_explain import explain_spf
from postoffice.mailauth.dns_types import DnsTemporaryError, Resolver
from postoffice.mailauth.spf import MAX_DNS_TERMS, check_host
from postoffice.mailauth.spf_macro import SpfSyntaxError
from postoffice.mailauth.spf_record import is_spf_record, parse_record

E, W, OK = Severity.ERROR, Severity.WARNING, Severity.OK


async def check_spf(resolver: Resolver, domain: str, hosts: list[MxHost]) -> list[Finding]:
    try:
        records = [r for r in (await resolver.txt(domain)).records if is_spf_record(r)]
    except DnsTemporaryError as error:
        return [dns_failed(f"the TXT records of {domain}", error, domain)]
    if not records:
        return [Finding("spf-missing", E, f"{domain} has no SPF record, so receivers cannot tell this server's "
                        "mail from forgeries and many file it as spam.",
                        f'Publish the TXT record "v=spf1 mx ~all" at {domain} (`postoffice domain records` '
                        "shows it).", subject=domain)]
    if len(records) > 1:
        return [Finding("spf-multiple", E, f"{domain} has {len(records)} SPF records; receivers treat that as "
                        "an error (permerror) and the domain's mail fails SPF.",
                        f"Merge them into one TXT record starting with v=spf1 at {domain} and delete the others.",
                        subject=domain)]
    record_text = records[0]
    try:
        record = parse_record(record_text)
    except SpfSyntaxError as error:
        return [Finding("spf-syntax", E, f"The SPF record of {domain} is not valid ({error}); receivers treat "
                        "it as an error and the domain's mail fails SPF.",
                        f'Correct the record at {domain}, e.g. "v=spf1 mx ~all".', subject=record_text)]
    findings = [Finding("spf-syntax", OK, f'{domain} has one valid SPF record: "{record_text}".', subject=domain)]
    # The lookups counted as `check spf` counts them (through includes and redirects).
    walked = await explain_spf(resolver, record_text, sender=f"postmaster@{domain}")
    unread = [f for f in walked.findings if f.id == "spf-dns-error"]
    if unread:
        return [*findings, dns_failed(f"the records {domain}'s SPF record includes",
                                      DnsTemporaryError(unread[0].problem), domain)]
    lookups = walked.lookups
    if lookups > MAX_DNS_TERMS:
        return [*findings, Finding(
            "spf-too-many-lookups", E, f"The SPF record of {domain} needs {lookups} DNS lookups (includes counted), "
            f"more than the {MAX_DNS_TERMS} receivers allow, so its mail fails SPF (permerror).",
            "Remove includes you no longer use, or replace some by the ip4:/ip6: ranges they stand for.",
            subject=domain)]
    findings.append(Finding("spf-too-many-lookups", OK, f"The SPF record of {domain} needs {lookups} DNS "
                            f"lookups (at most {MAX_DNS_TERMS} allowed).", subject=domain))
    if any(d.name == "all" and d.qualifier == "+" for d in record.directives):
        findings.append(Finding("spf-plus-all", E, f"The SPF record of {domain} ends in +all, which lets every "
                                "server on the Internet send as the domain.",
                                "Replace +all by ~all (or -all once all your senders are listed).", subject=domain))
    findings += await _mx_coverage(resolver, domain, hosts)
    return findings


async def _mx_coverage(resolver: Resolver, domain: str, hosts: list[MxHost]) -> list[Finding]:
    """Mail from this server leaves from the MX addresses: SPF must pass for each."""
    findings = []
    for address in dict.fromkeys(a for h in hosts for a in h.addresses):
        result = await check_host(resolver, address, domain, f"postmaster@{domain}", domain)
        if result.result == "pass":
            findings.append(Finding("spf-mx-not-covered", OK, f"SPF passes for the MX address {address} "
                                    f"(by {result.mechanism}).", subject=str(address)))
        elif result.result == "temperror":
            findings.append(dns_failed(f"SPF for {address}", DnsTemporaryError(result.problem), str(address)))
        else:
            findings.append(Finding(
                "spf-mx-not-covered", E, f"The SPF record of {domain} gives {result.result} for the MX address "
                f"{address}, so mail this server sends as {domain} fails SPF.",
                f"Add mx (or ip{address.version}:{address}) to the SPF record of {domain} before its all term.",
                subject=str(address)))
    return findings
