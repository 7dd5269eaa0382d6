"""`mailauth.verdict.decide`: results in, what the MX does out (table-driven, no I/O)."""
from __future__ import annotations

import pytest

from postoffice.mailauth.results import (
    ArcResult,
    AuthenticationResults,
    DkimResult,
    DmarcResult,
    SpfResult,
)
from postoffice.mailauth.verdict import decide

SPF_PASS = SpfResult("pass", "mailfrom", "a@x.example", "x.example")
SPF_FAIL = SpfResult("fail", "mailfrom", "a@x.example", "x.example")
SPF_TEMP = SpfResult("temperror", "mailfrom", "a@x.example", "x.example", problem="DNS timeout")
DKIM_FAIL = DkimResult("fail", "bank.example", "s1")
DKIM_TEMP = DkimResult("temperror", "bank.example", "s1", problem="DNS timeout")


def dmarc(result: str, disposition: str = "none", policy: str | None = None, *, testing: bool = False,
          problem: str = "") -> DmarcResult:
    return DmarcResult(result, "bank.example", "bank.example", policy or disposition, disposition,  # type: ignore[arg-type]
                       testing=testing, problem=problem)


def temperror(policy: str | None, problem: str, *, testing: bool = False) -> DmarcResult:
    """What mailauth.dmarc gives on DNS trouble: the policy when the record was read, else None."""
    return DmarcResult("temperror", "bank.example", "bank.example" if policy else "", policy, "none",  # type: ignore[arg-type]
                       testing=testing, problem=problem)


def results(dm: DmarcResult | None, spf: SpfResult | None = SPF_FAIL, dkim: tuple[DkimResult, ...] = (DKIM_FAIL,),
            arc: ArcResult | None = None) -> AuthenticationResults:
    return AuthenticationResults("mx.example", spf=spf, dkim=dkim, dmarc=dm, arc=arc)


@pytest.mark.parametrize(("found", "action", "code", "enhanced"), [
    (results(None), "deliver", 250, "2.0.0"),  # no From domain checked
    (results(dmarc("none")), "deliver", 250, "2.0.0"),  # no DMARC record
    (results(dmarc("permerror")), "deliver", 250, "2.0.0"),  # a broken record counts as none
    (results(dmarc("pass", "none", "reject")), "deliver", 250, "2.0.0"),
    (results(dmarc("fail", "none", "none")), "deliver", 250, "2.0.0"),  # p=none: monitoring only
    (results(dmarc("fail", "none", "reject", testing=True)), "deliver", 250, "2.0.0"),
    (results(dmarc("fail", "reject")), "reject", 550, "5.7.1"),
    (results(dmarc("fail", "quarantine")), "junk", 250, "2.0.0"),
    (results(temperror(None, "DMARC policy lookup: DNS timeout")), "defer", 451, "4.7.0"),
    (results(temperror("reject", "SPF temperror for bank.example")), "defer", 451, "4.7.24"),
    (results(temperror("quarantine", "DKIM temperror for bank.example")), "defer", 451, "4.7.0"),
    (results(temperror("quarantine", "DKIM temperror for bank.example", testing=True)), "deliver", 250, "2.0.0"),
    (results(temperror("none", "SPF temperror for bank.example")), "deliver", 250, "2.0.0"),
    # SPF and DKIM alone decide nothing, temporary failures included
    (results(dmarc("none"), spf=SPF_TEMP, dkim=(DKIM_TEMP,)), "deliver", 250, "2.0.0"),
    (results(None, spf=SPF_FAIL, dkim=(DKIM_FAIL,)), "deliver", 250, "2.0.0"),
])
def test_only_dmarc_refuses_defers_or_quarantines(found: AuthenticationResults, action: str, code: int,
                                                  enhanced: str) -> None:
    verdict = decide(found)
    assert (verdict.action, verdict.code, verdict.enhanced) == (action, code, enhanced)


def test_a_reject_names_the_domain_and_its_policy() -> None:
    verdict = decide(results(dmarc("fail", "reject")))
    assert verdict.text == ("Message rejected: bank.example publishes a DMARC policy of reject and this"
                            " message failed SPF and DKIM alignment")


def test_a_deferral_says_what_failed_for_which_domain() -> None:
    verdict = decide(results(temperror("reject", "DKIM temperror for bank.example: DNS timeout")))
    assert verdict.text == "Temporary DNS failure checking DKIM for bank.example, try again later"
    verdict = decide(results(temperror(None, "DMARC policy lookup: DNS timeout")))
    assert verdict.text == "Temporary DNS failure checking its DMARC policy for bank.example, try again later"


def test_a_trusted_arc_chain_overrides_reject_and_quarantine_only() -> None:
    arc = ArcResult("pass", 2, ("lists.example", "forwarder.example"))
    for disposition in ("reject", "quarantine"):
        verdict = decide(results(dmarc("fail", disposition), arc=arc), arc_override=True)
        assert verdict.action == "deliver" and "forwarder.example" in verdict.reason
        assert verdict.override == "trusted_forwarder"  # what the aggregate report records
        assert decide(results(dmarc("fail", disposition), arc=arc)).override == ""
    assert decide(results(temperror(None, "DMARC policy lookup"), arc=arc), arc_override=True).action == "defer"


@pytest.mark.parametrize("problem", ["no From header field", "2 From header fields (RFC 5322 allows one)",
                                     "From holds addresses in 5 domains; at most 4 are evaluated, so none is"])
def test_a_message_without_one_usable_author_domain_is_rejected(problem: str) -> None:
    # dmarc.py answers permerror with no from_domain; it used to be delivered like a broken record.
    verdict = decide(results(DmarcResult("permerror", "", problem=problem), spf=SPF_PASS))
    assert (verdict.action, verdict.code, verdict.enhanced) == ("reject", 550, "5.7.1")
    assert problem in verdict.reason and "From" in verdict.text
    # A broken record of a real From domain still counts as no record.
    assert decide(results(DmarcResult("permerror", "bank.example", "bank.example",
                                      problem="unusable"))).action == "deliver"
