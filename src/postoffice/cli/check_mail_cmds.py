"""`postoffice check spf | message | blocklists`: a record explained, "is this email real?", and
whether an address or domain is on a blocklist; registered in the `check` group (check_cmds.py).

They work with or without a data directory: with one (`--data`, POSTOFFICE_DATA, ./data) its
`[dns]` settings choose the DNS servers and blocklists, without one the system's resolver
(/etc/resolv.conf) and the default lists are used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from postoffice.cli.common import (
    DATA,
    DataDir,
    JsonFlag,
    console,
    fail,
    initialised,
    load,
    run_async,
)
from postoffice.config import DnsConfig
from postoffice.mailauth.resolver import DnsResolver


def dns_config(data: Path) -> DnsConfig | None:
    """The `[dns]` section of the data directory's config, or None when there is none."""
    return load(data).dns if initialised(data) else None


def resolver_for(dns: DnsConfig | None) -> DnsResolver:
    return DnsResolver.from_config(dns) if dns is not None else DnsResolver()


def check_spf_command(
    subject: Annotated[str, typer.Argument(
        metavar="RECORD-OR-DOMAIN",
        help='An SPF record in quotes ("v=spf1 a mx ~all") or a domain whose record is read from DNS.')],
    ip: Annotated[str | None, typer.Option(
        "--ip", help="Also give the RFC 7208 result for this sending address, and the term that decided.")] = None,
    sender: Annotated[str | None, typer.Option(
        "--sender", help="With --ip: the envelope sender (MAIL FROM); default postmaster@ the domain.")] = None,
    helo: Annotated[str | None, typer.Option("--helo", help="With --ip: the HELO name; default the domain.")] = None,
    data: DataDir = DATA,
    json: JsonFlag = False,
) -> None:
    """Explain an SPF record term by term, count its DNS lookups and find its mistakes.

    Says what each term means (~all vs -all vs ?all vs +all, what an include: pulls in, why +a
    adds only the domain's own address), counts the DNS lookups through every include: and
    redirect= against the limits receivers apply (10 lookups, 2 that find nothing), and flags
    syntax errors, several records, +all, ptr and terms after all. With --ip: the result
    (pass, fail, softfail, neutral, none, permerror, temperror) and the term that decided.
    Exit status 1 when anything is an error (and for --ip, when that address fails).

    Example: postoffice check spf example.org --ip 192.0.2.1

    Example: postoffice check spf "v=spf1 a mx include:_spf.google.com ~all"
    """
    from postoffice.cli.check_cmds import show_findings
    from postoffice.diagnostics.spf_explain import explain_spf, looks_like_record

    if ip is None and (sender or helo):
        fail("--sender and --helo only matter with --ip ADDRESS: add the address to check.")
    resolver = resolver_for(dns_config(data))
    report = run_async(explain_spf(resolver, subject, ip=ip, sender=sender, helo=helo))
    if json:
        show_findings(report.findings, json=True, **report.as_json())
    if looks_like_record(subject):
        console.print(f"SPF record: {report.record}", soft_wrap=True, highlight=False)
    elif report.record:
        console.print(f"SPF record of {report.subject}: {report.record}", soft_wrap=True,
                      highlight=False)
    if report.terms:
        table = Table("term", "lookups", "meaning", expand=False)
        for term in report.terms:
            where = f"  (in {term.record_of})" if term.depth else ""
            table.add_row("  " * term.depth + term.text + where, str(term.lookups), term.meaning)
        console.print(table)
        console.print(f"DNS lookups: {report.lookups} of the 10 allowed; lookups that found nothing:"
                      f" {report.void_lookups} of 2.", soft_wrap=True)
    if report.result is not None:
        decided = f" (decided by {report.result.decided_by})" if report.result.decided_by else ""
        console.print(f"{report.ip}: SPF {report.result.result}{decided}", soft_wrap=True,
                      highlight=False)
    show_findings(report.findings, json=False)


def check_blocklists_command(
    subject: Annotated[str, typer.Argument(
        metavar="IP-OR-DOMAIN", help="An address (192.0.2.1, 2001:db8::1) or a domain (example.org).")],
    data: DataDir = DATA,
    json: JsonFlag = False,
) -> None:
    """Is an address or a domain on a DNS blocklist? Each list's answer, its reason and where to ask for removal.

    An address is looked up on the lists of [dns] blocklists; a domain on those of [dns] domain_blocklists, and the addresses of its MX hosts on [dns] blocklists. Without a configured list, the defaults are asked (zen.spamhaus.org, bl.spamcop.net, b.barracudacentral.org, psbl.surriel.com; dbl.spamhaus.org, multi.surbl.org) and the report says so. Spamhaus refuses to answer public resolvers (8.8.8.8, 1.1.1.1): such answers show as unanswered, not as clean. Exit status 1 when listed anywhere.

    Example: postoffice check blocklists 192.0.2.1

    Example: postoffice check blocklists example.org --json
    """
    from postoffice.cli.check_cmds import show_findings
    from postoffice.diagnostics.blocklist_check import check_listings

    dns = dns_config(data)
    ip_lists = dns.blocklists if dns is not None else ()
    domain_lists = dns.domain_blocklists if dns is not None else ()
    report = run_async(check_listings(resolver_for(dns), subject, ip_lists=ip_lists,
                                      domain_lists=domain_lists))
    title = f"{report.subject}: asked " + ", ".join((*report.ip_lists, *report.domain_lists))
    if report.defaults_used:
        title += " (the defaults: no list in [dns] blocklists or domain_blocklists)"
    show_findings(report.findings, json=json, title=title, subject=report.subject,
                  ip_lists=list(report.ip_lists), domain_lists=list(report.domain_lists),
                  defaults_used=report.defaults_used)


def check_message_command(
    file: Annotated[Path, typer.Argument(metavar="FILE.eml", help="The message as saved by the mail program (.eml, headers included).")],
    trusted_host: Annotated[list[str] | None, typer.Option(
        "--trusted-host", help="Host name in the 'by' part of the Received field your mail server added (repeatable); default: [server] hostname.")] = None,
    data: DataDir = DATA,
    json: JsonFlag = False,
) -> None:
    """Is this email real? A verdict (genuine, suspicious, forged) with the reasons.

    Checks DKIM, SPF for the client named by the newest Received field your server added (--trusted-host, default the host name in postoffice.toml), DMARC alignment and ARC; then impersonation: a display name holding an address or a brand (PayPal, Microsoft, ...) of another domain, Reply-To in another domain, look-alike domains (paypa1.com, IDN homoglyphs, one-letter changes of your domains and of popular ones) and links whose text shows another host than they lead to. Save the message with its headers ("Save as .eml", "Show original" / "View source"). Exit status 1 when forged.

    Example: postoffice check message suspicious.eml

    Example: postoffice check message saved.eml --trusted-host mx.example.org --json
    """
    from postoffice.cli.check_cmds import show_findings
    from postoffice.cli.common import with_services
    from postoffice.diagnostics.message_check import check_message

    try:
        raw = file.read_bytes()
    except OSError as error:
        fail(f"{file} cannot be read ({error.strerror or error}); give the path of a saved message (.eml).")
    dns = dns_config(data)
    trusted = list(trusted_host or ())
    local: list[str] = []
    if dns is not None:
        trusted = trusted or [load(data).server.hostname]
        local = [d.name for d in with_services(data, lambda s: s.directory.list_domains())]
    if not trusted:
        fail("No trusted host: give --trusted-host with the name your mail server writes in its"
             " Received fields (or --data with your postoffice data directory).")
    report = run_async(check_message(resolver_for(dns), raw, trusted_hosts=trusted, local_domains=local))
    title = f"{file.name}: {report.verdict.upper()}"
    if report.from_address:
        title += f" (From {report.from_address}"
        title += f", sent from {report.client_ip})" if report.client_ip else ")"
    if json:
        show_findings(report.findings, json=True, **report.as_json())
    show_findings(report.findings, json=False, title=title)
