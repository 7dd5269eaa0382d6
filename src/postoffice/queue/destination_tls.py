"""Which TLS each MX host of a destination gets: DANE (RFC 7672), MTA-STS (RFC 8461),
REQUIRETLS (RFC 8689), or opportunistic STARTTLS. `MxTransport` asks once per domain.

    policies = TlsPolicies(mta_sts=MtaSts(resolver, cache_file=...), dane=resolver)
    plan = await policies.plan("example.org", requiretls=False)      # DomainTls
    if plan.refusal: ...                        # no MX host may be used: defer with that reason
    targets = [t for t in route.targets(...) if plan.allows(t.host)]
    tls = await plan.for_host("mx1.example.org")                      # a TlsPolicy for the session

Order, and why:
- DANE first (RFC 8461 §2: a sender doing both prefers DANE): validated, usable TLSA records of
  the MX host mean TLS is required and the certificate must match them; validated but unusable
  ones mean TLS required without authentication (RFC 7672 §2.2). No validated answer: no DANE.
- Then MTA-STS: ``enforce`` uses only the MX hosts the policy names, with TLS required and a
  certificate valid (WebPKI) for the MX name; ``testing`` tries a verified session, falls back
  to unverified TLS (or plaintext) and records why; no policy (or a fetch failure without a
  cached policy, §5) leaves opportunistic STARTTLS.
- A REQUIRETLS message (RFC 8689 §4.2.1) needs verified TLS whatever the domain publishes:
  DANE-authenticated, or a certificate valid for the MX name. (That the peer offers REQUIRETLS
  is checked by the SMTP session.)
- Every choice shows in the ``TlsOutcome`` recorded per attempt: its ``policy`` and, when a
  policy could not be used, the ``failure`` saying why.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field

from postoffice.mailauth.dns_types import TlsaResolver
from postoffice.queue.dane import DaneLookup, dane_records
from postoffice.queue.mta_sts import MtaSts, PolicyLookup
from postoffice.queue.smtp_session import TlsPolicy

__all__ = ["DomainTls", "TlsPolicies", "verified_context"]


def verified_context(ca_file: str | None = None) -> ssl.SSLContext:
    """WebPKI verification (the system's CAs, plus ``ca_file`` when given), TLS 1.2 or later."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass
class DomainTls:
    """The TLS plan for one domain's delivery attempt."""

    domain: str
    sts: PolicyLookup | None
    requiretls: bool
    context: ssl.SSLContext
    dane: TlsaResolver | None
    dane_port: int = 25
    _hosts: dict[str, TlsPolicy] = field(default_factory=dict)

    @property
    def enforced(self) -> bool:
        return self.sts is not None and self.sts.policy is not None and self.sts.policy.mode == "enforce"

    def allows(self, host: str) -> bool:
        """Whether MX host ``host`` may get the mail (MTA-STS enforce names it, RFC 8461 §4.1)."""
        if not self.enforced or self.sts is None or self.sts.policy is None:
            return True
        return self.sts.policy.allows(host)

    def refusal(self, hosts: list[str]) -> str:
        """Why none of ``hosts`` may be used, or ""."""
        if any(self.allows(h) for h in hosts) or self.sts is None or self.sts.policy is None:
            return ""
        return (f"the MTA-STS policy of {self.domain} (mode enforce, mx {', '.join(self.sts.policy.mx)}) "
                f"names none of its MX hosts ({', '.join(hosts)}); not sent")

    async def for_host(self, host: str) -> TlsPolicy:
        known = self._hosts.get(host)
        if known is None:
            known = self._hosts[host] = await self._for_host(host)
        return known

    async def _for_host(self, host: str) -> TlsPolicy:
        ask_dane = self.dane is not None and not _is_address(host)  # an address has no TLSA name
        found = await dane_records(self.dane, host, self.dane_port) if ask_dane and self.dane else DaneLookup(host)
        if found.usable:
            return TlsPolicy(require=True, verify=True, policy="dane", tlsa=found.records)
        sts = self.sts.policy if self.sts is not None else None
        note = found.problem or (self.sts.problem if self.sts is not None else "")
        if found.required and not self.requiretls:  # validated but unusable TLSA: TLS, unauthenticated
            return TlsPolicy(require=True, verify=False, policy="dane", note=found.problem)
        if sts is not None and sts.mode == "enforce":
            return TlsPolicy(require=True, verify=True, context=self.context, policy="mta-sts", note=note)
        if sts is not None and sts.mode == "testing":
            if not sts.allows(host):
                note = f"MTA-STS testing: {host} is not named by the policy of {self.domain}"
            return TlsPolicy(require=self.requiretls, verify=True, context=self.context,
                             policy="mta-sts", note=note)
        if self.requiretls:
            return TlsPolicy(require=True, verify=True, context=self.context, policy="opportunistic",
                             note=note)
        return TlsPolicy(note=note)


class TlsPolicies:
    """MTA-STS and DANE as ``[outbound] mta_sts`` and ``dane`` turn them on."""

    def __init__(self, *, mta_sts: MtaSts | None = None, dane: TlsaResolver | None = None,
                 context: ssl.SSLContext | None = None, dane_port: int = 25) -> None:
        self.mta_sts = mta_sts
        self.dane = dane
        self.context = context or verified_context()
        self.dane_port = dane_port

    async def plan(self, domain: str, *, requiretls: bool = False) -> DomainTls:
        literal = domain.startswith("[")  # an address literal publishes no policy (RFC 5321 §4.1.3)
        sts = await self.mta_sts.lookup(domain) if self.mta_sts is not None and not literal else None
        return DomainTls(domain, sts, requiretls, self.context, self.dane, self.dane_port)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
