"""`postoffice check ...`: diagnose a domain, a record, a message, a server; findings with the fix.

Every subcommand reports `Finding`s (diagnostics/checks.py) and prints them with `show_findings`,
so the terminal table, `--json` and the exit status (1 when anything is an error) are alike.
Other subcommands (spf, message, tls, blocklists) register here from their own modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from postoffice.cli.check_mail_cmds import (
    check_blocklists_command,
    check_message_command,
    check_spf_command,
)
from postoffice.cli.common import (
    DATA,
    DataDir,
    JsonFlag,
    console,
    fail,
    load,
    print_json,
    run_async,
)
from postoffice.cli.probe_cmds import check_tls_command
from postoffice.diagnostics.checks import Finding, Severity, exit_status, report_json

check_app = typer.Typer(help="Diagnose a domain's DNS and servers: each finding with its fix.",
                        no_args_is_help=True)

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.OK: "green"}


def show_findings(findings: Sequence[Finding], *, json: bool, title: str = "", **extra: Any) -> None:
    """Print FINDINGS (a table, or the `--json` object with EXTRA keys) and exit 1 on any error."""
    if json:
        print_json(report_json(findings, **extra))
    else:
        if title:
            console.print(title, soft_wrap=True)
        table = Table("", "id", "finding", show_lines=False, expand=False)
        table.columns[2].overflow = "fold"  # a long URL or host name wraps rather than being cut
        for finding in findings:
            text = finding.problem if not finding.fix else f"{finding.problem}\nFix: {finding.fix}"
            # escape: findings name config keys such as "[tls] cert_file", which are not styles
            table.add_row(f"[{_STYLE[finding.severity]}]{finding.severity.value}[/]", escape(finding.id),
                          escape(text))
        console.print(table, markup=True)
        counts = {s: sum(f.severity is s for f in findings) for s in Severity}
        console.print(f"errors: {counts[Severity.ERROR]}, warnings: {counts[Severity.WARNING]}, "
                      f"ok: {counts[Severity.OK]}", soft_wrap=True)
    raise typer.Exit(exit_status(findings))


@check_app.command("domain")
def check_domain_command(
    domain: Annotated[str, typer.Argument(help="The mail domain to check, e.g. example.org.")],
    no_connect: Annotated[bool, typer.Option(
        "--no-connect", help="DNS only: do not connect to the MX hosts (port 25, STARTTLS, certificate).")] = False,
    data: DataDir = DATA,
    json: JsonFlag = False,
) -> None:
    """Check a mail domain's DNS and MX hosts: each finding with its fix.

    Asks the domain's authoritative DNS servers: MX, reverse DNS of each MX address, SPF, DKIM (our keys published, a signed probe verifies), DMARC, MTA-STS,
    postmaster@, blocklists; and the MX hosts themselves (port 25, STARTTLS, certificate). Each
    finding has a stable id, a severity and the fix; exit status 1 when anything is an error.

    Example: postoffice check domain example.org --json
    """
    from postoffice.diagnostics.domain_check import check_domain_with_config
    from postoffice.directory import DirectoryError, canonical_domain

    try:
        domain = canonical_domain(domain)
    except DirectoryError as error:
        fail(str(error))
    config = load(data)
    report = run_async(check_domain_with_config(config, domain, connect=not no_connect))
    show_findings(report.findings, json=json, title=report.title, domain=domain, servers=report.servers)


check_app.command("spf")(check_spf_command)
check_app.command("message")(check_message_command)
check_app.command("blocklists")(check_blocklists_command)
check_app.command("tls")(check_tls_command)
