"""`postoffice dmarc reports`: what other servers report about mail claiming our domains."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from postoffice.cli.common import (
    DATA,
    DataDir,
    JsonFlag,
    console,
    fail,
    load,
    print_json,
    with_services,
)
from postoffice.directory import DirectoryError, canonical_domain

dmarc_app = typer.Typer(help="DMARC: reports about mail sent in the name of your domains.", no_args_is_help=True)


def _day(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


@dmarc_app.command("reports")
def dmarc_reports(
    domain: Annotated[str | None, typer.Option("--domain", help="Only this domain (and its subdomains).")] = None,
    data: DataDir = DATA,
    json: JsonFlag = False,
) -> None:
    """Who sends mail as your domains and whether it passes DMARC, from the aggregate reports
    other servers (Gmail, Outlook, ...) mailed to report_address (dmarc section of
    postoffice.toml): one line per domain
    and sending IP, with the organisations that reported it, the messages they saw, how many
    passed (aligned DKIM or SPF) or failed, and how many they quarantined or rejected. An IP you
    do not recognise with failures is someone else sending as you (or a service you forgot to
    authorise in SPF/DKIM).

    Example: postoffice dmarc reports --domain example.org
    """
    if domain is not None:
        try:
            domain = canonical_domain(domain)
        except DirectoryError as error:
            fail(str(error))
    address = load(data).dmarc.report_address
    sources = with_services(data, lambda s: s.store.dmarc_report_summary(domain))
    if json:
        print_json([
            {"domain": s.domain, "source_ip": s.source_ip, "reporters": list(s.reporters), "reports": s.reports,
             "messages": s.messages, "pass": s.passed, "fail": s.failed, "quarantined": s.quarantined,
             "rejected": s.rejected, "begin": s.first, "end": s.last}
            for s in sources
        ])
        return
    if not sources:
        where = (f"they are read from mail to {address}" if address else
                 "set [dmarc] report_address in postoffice.toml to an address of yours (a user or alias)")
        console.print(f"No DMARC aggregate reports{' for ' + domain if domain else ''} yet: {where}, which your "
                      "DMARC record names as rua=mailto:ADDRESS.", soft_wrap=True)
        return
    first, last = min(s.first for s in sources), max(s.last for s in sources)
    console.print(f"DMARC aggregate reports from {_day(first)} to {_day(last)}:", soft_wrap=True)
    table = Table("domain", "source IP", "reported by", "messages", "pass", "fail", "quarantined", "rejected")
    for s in sources:
        table.add_row(s.domain, s.source_ip, ", ".join(s.reporters), str(s.messages), str(s.passed),
                      str(s.failed), str(s.quarantined), str(s.rejected))
    console.print(table)
