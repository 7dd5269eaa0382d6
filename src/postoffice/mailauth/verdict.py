"""What an MX does with a message once SPF, DKIM, ARC and DMARC have spoken: `decide`.

Pure: typed results in, a `Verdict` out; the SMTP service turns it into a reply or a mailbox.
Only DMARC refuses or quarantines: SPF and DKIM alone never do (RFC 7208 §8.4 and RFC 6376
§6.3 leave it to local policy; a forwarded message fails SPF and a mailing list breaks DKIM,
and DMARC is where a domain owner says which failures matter). The rules, in order:

0. ``permerror`` without a From domain (dmarc.py's answer for a message with no From field,
   several From fields, no usable author domain or too many of them): 550 5.7.1. RFC 7489
   §6.6.1 and DMARCbis ("Denial of DMARC Processing Attacks") say such messages are typically
   rejected: most are abusive, and delivering them would let a forger skip DMARC by breaking
   the very field it protects.
1. No DMARC record (``none``), a broken one (``permerror``, RFC 7489 §6.6.3: as if absent) or a
   ``pass``: deliver.
2. ``temperror``: the policy record could not be fetched, or an SPF or DKIM identifier that
   could have aligned ended in ``temperror`` (mailauth.dmarc never turns that into ``fail``).
   When the policy is unknown, or is ``reject``/``quarantine`` (one step less under ``t=y``):
   451, 4.7.24 when SPF was the trouble (RFC 7372 §3.2), else 4.7.0. Accepting would let a
   forgery through whenever DNS hiccups; a 5xx would lose real mail for a transient problem; the
   sender retries. A ``p=none`` domain's message is delivered.
3. ``fail`` whose disposition (DMARCbis: ``p``/``sp``/``np``, one step less under ``t=y``) is
   ``none``: deliver, the header says dmarc=fail.
4. ``fail`` with ``reject`` or ``quarantine`` when a chain sealed by a trusted ARC sealer
   vouches for the message (``[smtp] trusted_arc_sealers``, RFC 8617 §7.2): deliver.
5. ``fail`` with ``reject``: 550 5.7.1 naming the domain's policy (DMARCbis §8.3; RFC 7372
   suggests 5.7.1 for a policy refusal).
6. ``fail`` with ``quarantine``: deliver into each recipient's Junk mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from postoffice.mailauth.results import AuthenticationResults, DmarcResult

Action = Literal["deliver", "junk", "reject", "defer"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one message; `code`/`enhanced`/`text` form the SMTP reply for a
    refusal or a deferral (unused when the message is delivered)."""

    action: Action
    reason: str  # short, for the log: "dmarc pass", "dmarc reject (example.com)"
    code: int = 250
    enhanced: str = "2.0.0"
    text: str = ""
    # RFC 7489 §7.2 PolicyOverrideType for the aggregate report: "trusted_forwarder" when a
    # trusted ARC chain overrode the DMARC policy, "" otherwise.
    override: str = ""


def decide(results: AuthenticationResults, *, arc_override: bool = False) -> Verdict:
    """The verdict for a message with these results (see the module docstring for the rules).

    `arc_override`: a passing ARC chain sealed by a trusted sealer vouches for the message.
    """
    dmarc = results.dmarc
    if dmarc is not None and dmarc.result == "permerror" and not dmarc.from_domain:
        return Verdict(
            "reject", f"dmarc permerror, no author domain ({dmarc.problem})", 550, "5.7.1",
            "Message rejected: it needs exactly one From header field with an address in one"
            " domain, so that its author domain can be checked (DMARC)")
    if dmarc is None or dmarc.result in ("none", "permerror"):
        return Verdict("deliver", f"dmarc {dmarc.result if dmarc else 'none'}")
    if dmarc.result == "pass":
        return Verdict("deliver", "dmarc pass")
    domain = dmarc.policy_domain or dmarc.from_domain
    if dmarc.result == "temperror":
        return _temperror(dmarc)
    disposition = dmarc.disposition
    if disposition == "none":
        return Verdict("deliver", f"dmarc fail, policy none ({domain})")
    if arc_override:
        sealer = results.arc.sealers[-1] if results.arc and results.arc.sealers else "a trusted sealer"
        return Verdict("deliver", f"dmarc fail, {disposition} overridden by the ARC chain of {sealer}",
                       override="trusted_forwarder")
    if disposition == "reject":
        return Verdict(
            "reject", f"dmarc reject ({domain})", 550, "5.7.1",
            f"Message rejected: {domain} publishes a DMARC policy of reject and this message"
            " failed SPF and DKIM alignment")
    return Verdict("junk", f"dmarc quarantine ({domain})")


_ONE_STEP_LESS: dict[str | None, str | None] = {"reject": "quarantine", "quarantine": "none", "none": "none"}


def _temperror(dmarc: DmarcResult) -> Verdict:
    policy = _ONE_STEP_LESS[dmarc.policy] if dmarc.testing else dmarc.policy
    if policy == "none":
        return Verdict("deliver", f"dmarc temperror, policy none ({dmarc.from_domain})")
    spf_trouble = dmarc.problem.startswith("SPF")
    what = "its DMARC policy" if policy is None else ("SPF" if spf_trouble else "DKIM" if dmarc.problem.startswith("DKIM") else "DMARC")
    return Verdict(
        "defer", f"dmarc temperror ({dmarc.from_domain}): {dmarc.problem}", 451, "4.7.24" if spf_trouble else "4.7.0",
        f"Temporary DNS failure checking {what} for {dmarc.from_domain}, try again later")
