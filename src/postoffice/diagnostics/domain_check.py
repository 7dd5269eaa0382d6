"""`check domain D`: what the world sees of a mail domain, from live DNS, as findings.

    report = await check_domain(DomainCheck.from_services(services), "example.org")
    report.findings     # [Finding("mx-missing", OK, ...), Finding("spf-mx-not-covered", ERROR, ...), ...]
    report.servers      # ["ns1.example.org (192.0.2.53)"]: the authoritative server that answered

The domain's own records come from its authoritative servers (zone_view.py); the checks are
domain_mx.py (MX, reverse DNS, blocklists), domain_spf.py, domain_dkim.py and domain_policy.py
(DMARC, MTA-STS, postmaster@). DKIM and postmaster@ are checked only for a domain served here
(they compare with our keys and our directory). The live connections to each MX address (port
25, STARTTLS, certificate) are diagnostics/tls_probe.py's probe_mx; ``connect=False`` leaves them
out. Findings come in a stable order; `ok` ones say what was covered. The CLI
(cli/check_cmds.py) and the daily check inside `serve` (daily_check.py) both call this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from postoffice.diagnostics.checks import Finding
from postoffice.diagnostics.domain_dkim import check_dkim
from postoffice.diagnostics.domain_mx import MxHost, blocklist_listings, mx_hosts, reverse_dns
from postoffice.diagnostics.domain_policy import check_dmarc, check_mta_sts, check_postmaster
from postoffice.diagnostics.domain_spf import check_spf
from postoffice.diagnostics.tls_probe import probe_mx
from postoffice.diagnostics.zone_view import ZoneResolver, zone_view
from postoffice.queue.mta_sts import MtaSts

if TYPE_CHECKING:
    from postoffice.config import Config
    from postoffice.directory import Directory
    from postoffice.mailauth.resolver import DnsResolver
    from postoffice.queue.signing import MessageSigner
    from postoffice.services import Services

@dataclass
class DomainCheck:
    """What `check_domain` needs: the configured resolver and, for a domain served here, the
    directory and DKIM signer; the settings of `[dns]` and `[outbound]` that apply."""

    resolver: DnsResolver
    directory: Directory | None = None
    signer: MessageSigner | None = None
    blocklists: tuple[str, ...] = ()
    authoritative_port: int = 53
    mx_port: int = 25
    ca_file: str = ""  # [outbound] ca_file: also trusted for the MTA-STS policy and the MX certificates
    https_port: int = 443  # where MTA-STS policies are fetched
    helo_name: str = ""  # what the live probe says in EHLO ([server] hostname)
    connect: bool = True  # probe each MX address live (port 25, STARTTLS, certificate)
    connect_timeout: float = 20.0

    @classmethod
    def from_services(cls, services: Services, *, connect: bool = True) -> DomainCheck:
        config = services.config
        return cls(services.resolver, services.directory, services.signer, config.dns.blocklists,
                   config.dns.authoritative_port, config.outbound.mx_port,
                   str(config.outbound.ca_file or ""), helo_name=config.server.hostname, connect=connect)


@dataclass(frozen=True)
class DomainReport:
    """The findings about one domain, and which DNS servers gave the answers."""

    domain: str
    findings: list[Finding]
    servers: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.domain}: DNS answers from {', '.join(self.servers) or 'the configured resolver'}"


async def check_domain(check: DomainCheck, domain: str) -> DomainReport:
    domain = domain.lower().rstrip(".")
    view = await zone_view(check.resolver, domain, port=check.authoritative_port)
    resolver = view.resolver
    findings = list(view.findings)
    hosts, found = await mx_hosts(resolver, domain)
    findings += found
    findings += await _live(check, hosts)
    findings += await reverse_dns(resolver, hosts)
    findings += await check_spf(resolver, domain, hosts)
    local = check.directory is not None and await check.directory.is_local_domain(domain)
    if local and check.signer is not None:
        findings += await check_dkim(resolver, domain, check.signer)
    findings += await check_dmarc(resolver, domain)
    # Hosts without an address (said above) cannot be reached with or without a policy.
    findings += await check_mta_sts(_mta_sts(check, resolver), domain, [h for h in hosts if h.addresses])
    if local and check.directory is not None:
        findings += await check_postmaster(check.directory, domain)
    findings += await blocklist_listings(resolver, hosts, check.blocklists)
    return DomainReport(domain, findings, view.servers)


def _mta_sts(check: DomainCheck, resolver: ZoneResolver) -> MtaSts:
    from postoffice.queue.destination_tls import verified_context

    # No cache file: the check wants what is published now, not what delivery remembered.
    return MtaSts(resolver, ssl_context=verified_context(check.ca_file or None), port=check.https_port,
                  timeout=10.0, retry_seconds=0.0)


async def _live(check: DomainCheck, hosts: list[MxHost]) -> list[Finding]:
    """The connection findings (mx-unreachable, mx-no-starttls, tls-*) of each MX address: each
    address is its own server to a sender, so each is probed."""
    if not check.connect:
        return []
    findings: list[Finding] = []
    for host in hosts:
        for address in host.addresses:
            findings += await probe_mx(host.name, check.mx_port, address=str(address),
                                       ca_file=Path(check.ca_file) if check.ca_file else None,
                                       helo_name=check.helo_name or None, timeout=check.connect_timeout)
    return findings


async def check_domain_with_config(config: Config, domain: str, *, connect: bool = True) -> DomainReport:
    """For the CLI: open the data directory's services (store, directory, keys) and check."""
    from postoffice.services import open_services

    async with open_services(config) as services:
        return await check_domain(DomainCheck.from_services(services, connect=connect), domain)
