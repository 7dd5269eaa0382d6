"""Records of block/allow lists and DMARC report data (store/interface.py re-exports them)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from postoffice.mailauth.results import DkimResult, DmarcResult, SpfResult

# --- block/allow lists and DMARC report data (access_lists.py, mailauth/dmarc_reports.py) --------

AccessListName = Literal["block", "allow"]
AccessKind = Literal["ip", "cidr", "domain", "address"]


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One entry of the local block or allow list; access_lists.py says how each kind matches."""

    list: AccessListName
    kind: AccessKind
    value: str  # canonical: 192.0.2.7, 2001:db8::/32, example.com or user@example.com
    reason: str = ""
    created: float = 0.0


@dataclass(frozen=True, slots=True)
class DkimOutcome:
    domain: str
    selector: str
    result: str


@dataclass(frozen=True, slots=True)
class DmarcEvaluation:
    """What an aggregate report (RFC 7489 §7.2, appendix C) needs about one message received on
    port 25: recorded per message, so the reports we send later can be added up from these."""

    received: float
    source_ip: str
    header_from: str  # the RFC5322.From domain
    envelope_from: str  # the MAIL FROM domain; "" for the null sender
    envelope_to: str  # the first recipient's domain
    dmarc: str  # DmarcResult.result
    disposition: str  # what was done: none | quarantine | reject
    policy_domain: str = ""  # where the DMARC record was found
    policy: str = ""  # its p=/sp=/np= that applied; "" without a record
    spf: str = "none"  # the SPF result and the domain it was checked for
    spf_domain: str = ""
    spf_aligned: bool = False
    dkim: tuple[DkimOutcome, ...] = ()
    dkim_aligned: bool = False
    reason: str = ""  # a local override of the policy, e.g. "trusted_forwarder" (ARC), "sampled_out"

    @classmethod
    def of(cls, *, source_ip: str, mail_from: str, recipient: str, dmarc: DmarcResult, spf: SpfResult | None,
           dkim: Sequence[DkimResult], disposition: str, reason: str = "",
           received: float | None = None) -> DmarcEvaluation:
        """From the results the inbound checks computed; `disposition` is what was done (after
        local overrides), `reason` why it differs from the policy's (RFC 7489 PolicyOverrideType)."""
        return cls(
            received=time.time() if received is None else received, source_ip=source_ip,
            header_from=dmarc.from_domain, envelope_from=mail_from.rpartition("@")[2],
            envelope_to=recipient.rpartition("@")[2], dmarc=dmarc.result, disposition=disposition,
            policy_domain=dmarc.policy_domain, policy=dmarc.policy or "",
            spf=spf.result if spf else "none", spf_domain=spf.domain if spf else "", spf_aligned=dmarc.spf_aligned,
            dkim=tuple(DkimOutcome(d.domain, d.selector, d.result) for d in dkim), dkim_aligned=dmarc.dkim_aligned,
            reason=reason,
        )


@dataclass(frozen=True, slots=True)
class DmarcSourceSummary:
    """Incoming aggregate reports added up for one of our domains and one sending IP."""

    domain: str  # the domain whose policy the reports cover
    source_ip: str
    reporters: tuple[str, ...]  # org_name of each reporting organisation
    reports: int
    messages: int
    passed: int  # DMARC pass as reported (aligned DKIM or SPF)
    failed: int
    quarantined: int
    rejected: int
    first: int  # the earliest begin and latest end of the reports' date ranges
    last: int
