"""`check domain D`: what the world sees of a mail domain, from live DNS, as findings.

`check_domain` runs every check and returns the findings in a stable order; the CLI and the
daily check inside `serve` (daily_check.py) both call it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from postoffice.config import Config
from postoffice.diagnostics.checks import Finding, Severity
from postoffice.mailauth.dns_types import DnsTemporaryError, Resolver


@dataclass(frozen=True)
class DomainReport:
    """The findings about one domain, and which DNS servers gave the answers."""

    domain: str
    findings: list[Finding]
    servers: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.domain}: answers from {', '.join(self.servers) or 'the configured resolver'}"


async def check_domain(resolver: Resolver, domain: str) -> list[Finding]:
    try:
        mx = await resolver.mx(domain)
    except DnsTemporaryError as error:
        return [Finding("dns-failed", Severity.ERROR, f"DNS could not answer for {domain}: {error}.",
                        "Try again later; if it persists, check that the domain's name servers answer.")]
    if not mx:
        return [Finding("mx-missing", Severity.ERROR, f"{domain} has no MX record, so other servers "
                        "deliver its mail to its A record or not at all.",
                        f"Publish an MX record for {domain} naming this server's host name.")]
    return [Finding("mx-missing", Severity.OK, f"{domain} has MX records.", subject=domain)]


async def check_domain_with_config(config: Config, domain: str, *, connect: bool = True) -> DomainReport:
    from postoffice.mailauth.resolver import DnsResolver

    resolver = DnsResolver.from_config(config.dns)
    return DomainReport(domain, await check_domain(resolver, domain))
