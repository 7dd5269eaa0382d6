"""DMARC (DMARCbis, RFC 9989) from the RFC's own text: record syntax (§4.7), the DNS Tree Walk
and Organizational Domain (§4.10), alignment (with the RFC's examples), sp/np, t=, DNS trouble,
and the author domain ("Extract Author Domain", "Denial of DMARC Processing Attacks"). DNS is
served from memory."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.mailauth.memory_resolver import MemoryResolver

from postoffice.mailauth.dmarc import (
    AuthorDomains,
    author_domains,
    check_dmarc,
    check_dmarc_author,
    parse_dmarc_record,
)
from postoffice.mailauth.dns_types import DnsAnswer
from postoffice.mailauth.results import AuthenticationResults, DkimResult, SpfResult


def spf(result: str, domain: str) -> SpfResult:
    return SpfResult(result, "mailfrom", f"bounce@{domain}", domain)  # type: ignore[arg-type]


def dkim(result: str, domain: str) -> DkimResult:
    return DkimResult(result, domain, "sel")  # type: ignore[arg-type]


def dmarc_zone(records: dict[str, str | list[str]], **extra: dict[str, Any]) -> MemoryResolver:
    zone: dict[str, dict[str, Any]] = {
        f"_dmarc.{d}": {"TXT": [r] if isinstance(r, str) else r} for d, r in records.items()}
    zone.update(extra)
    return MemoryResolver(zone)


def txt_queries(resolver: MemoryResolver) -> list[str]:
    return [name for (name, rrtype) in resolver.queries if rrtype == "TXT"]


# --- record syntax (§4.7 and its Formal Definition) -----------------------------------------------


def test_record_with_every_tag() -> None:
    r = parse_dmarc_record("v = DMARC1 ; p = Quarantine ; sp=none; np=REJECT; adkim=s; aspf=s; "
                           "t=y; psd=n; rua=mailto:a@example.org, mailto:b@example.net; "
                           "ruf=mailto:f@example.org; fo=1:d; unknown=whatever;")
    assert r is not None
    assert (r.p, r.sp, r.np, r.adkim, r.aspf, r.testing, r.psd) == (
        "quarantine", "none", "reject", "s", "s", True, "n")
    assert r.rua == ("mailto:a@example.org", "mailto:b@example.net")
    assert r.ruf == ("mailto:f@example.org",)
    assert r.fo == ("1", "d")
    assert r.invalid_policy == ""


@pytest.mark.parametrize("text", [
    "p=reject; v=DMARC1",  # v must come first
    "v=DMARC2; p=reject",
    "v=dmarc1; p=reject",  # the value is case-sensitive
    "v=spf1 -all",
    "",
    "p=reject",
])
def test_not_a_dmarc_record(text: str) -> None:
    assert parse_dmarc_record(text) is None


def test_bad_values_fall_back_to_defaults() -> None:
    r = parse_dmarc_record("v=DMARC1; p=reject; adkim=x; aspf=; t=maybe; psd=q; fo=9")
    assert r is not None
    assert (r.adkim, r.aspf, r.testing, r.psd, r.fo) == ("r", "r", False, "u", ("0",))


def test_first_of_a_repeated_tag_wins() -> None:
    r = parse_dmarc_record("v=DMARC1; p=none; p=reject")
    assert r is not None and r.p == "none"


@pytest.mark.parametrize("text, testing", [
    ("v=DMARC1; p=reject; pct=0", True),  # "Removal of the pct Tag": t=y replaces pct=0
    ("v=DMARC1; p=reject; pct=0; t=n", False),  # an explicit t= wins
    ("v=DMARC1; p=reject; pct=50", False),  # other pct values are ignored
    ("v=DMARC1; p=reject; pct=100", False),
    ("v=DMARC1; p=reject; t=Y", True),
])
def test_pct_is_read_only_as_its_t_equivalent(text: str, testing: bool) -> None:
    r = parse_dmarc_record(text)
    assert r is not None and r.testing is testing


def test_invalid_uris_are_dropped() -> None:
    r = parse_dmarc_record("v=DMARC1; p=none; rua=not a uri, mailto:ok@example.org,, bad")
    assert r is not None and r.rua == ("mailto:ok@example.org",)


def test_invalid_policy_is_none_with_rua_and_unusable_without() -> None:
    with_rua = parse_dmarc_record("v=DMARC1; p=rejct; rua=mailto:d@example.org")
    without = parse_dmarc_record("v=DMARC1; p=rejct")
    missing = parse_dmarc_record("v=DMARC1; sp=reject")
    assert with_rua is not None and without is not None and missing is not None
    applied = with_rua.applicable()
    assert applied is not None and applied.p == "none"
    assert without.applicable() is None and "p=rejct" in without.invalid_policy
    assert missing.applicable() is None and "no p=" in missing.invalid_policy


def test_a_100_kb_record_is_parsed_quickly() -> None:
    text = "v=DMARC1; p=reject; " + "x=" + "a" * 100_000 + "; rua=" + "mailto:a@b.c," * 2000
    started = time.monotonic()
    r = parse_dmarc_record(text)
    assert r is not None and r.p == "reject" and len(r.rua) == 2000
    assert time.monotonic() - started < 2.0  # generous: linear work, milliseconds in practice


@pytest.mark.parametrize("tag", ["p=", "rua=", "x="])
def test_spaces_before_a_bad_character_are_parsed_quickly(tag: str) -> None:
    # A value that could start with spaces made "p=<30,000 spaces>\x01" backtrack quadratically
    # (about 15 s on the event loop; a 64 KB TXT record took a minute).
    started = time.monotonic()
    r = parse_dmarc_record(f"v=DMARC1; {tag}" + " " * 30_000 + "\x01; p=reject")
    assert time.monotonic() - started < 2.0  # generous: linear work, milliseconds in practice
    assert r is not None and r.p == "reject"  # the broken tag is skipped


# --- alignment ("Identifier Alignment Explained" and its examples) --------------------------------


async def test_spf_identical_domain_aligns() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=reject; aspf=s"})
    r = await check_dmarc(res, "example.com", spf("pass", "example.com"), [])
    assert (r.result, r.spf_aligned, r.dkim_aligned, r.disposition) == ("pass", True, False, "none")
    assert r.policy == "reject" and r.policy_domain == "example.com"


async def test_spf_child_of_from_domain_aligns_relaxed_not_strict() -> None:
    relaxed = dmarc_zone({"example.com": "v=DMARC1; p=reject"})
    strict = dmarc_zone({"example.com": "v=DMARC1; p=reject; aspf=s"})
    ok = await check_dmarc(relaxed, "example.com", spf("pass", "child.example.com"), [])
    assert ok.result == "pass" and ok.spf_aligned
    bad = await check_dmarc(strict, "example.com", spf("pass", "child.example.com"), [])
    assert bad.result == "fail" and bad.disposition == "reject" and not bad.spf_aligned


async def test_spf_unrelated_domain_does_not_align() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=quarantine"})
    r = await check_dmarc(res, "child.example.com", spf("pass", "example.net"), [])
    assert (r.result, r.disposition) == ("fail", "quarantine")
    assert "example.net not aligned" in r.problem


async def test_only_spf_pass_counts() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=reject"})
    for result in ("fail", "softfail", "neutral", "none", "permerror"):
        r = await check_dmarc(res, "example.com", spf(result, "example.com"), [])
        assert r.result == "fail", result


async def test_dkim_parent_domain_aligns_relaxed_not_strict() -> None:
    relaxed = dmarc_zone({"example.com": "v=DMARC1; p=reject"})
    strict = dmarc_zone({"example.com": "v=DMARC1; p=reject; adkim=s"})
    ok = await check_dmarc(relaxed, "child.example.com", None, [dkim("pass", "example.com")])
    assert ok.result == "pass" and ok.dkim_aligned and ok.policy_domain == "example.com"
    bad = await check_dmarc(strict, "child.example.com", None, [dkim("pass", "example.com")])
    assert bad.result == "fail"


async def test_any_aligned_passing_signature_is_enough() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=reject"})
    sigs = [dkim("pass", "sample.net"), dkim("fail", "example.com"), dkim("pass", "Example.COM")]
    r = await check_dmarc(res, "example.com", spf("fail", "example.com"), sigs)
    assert r.result == "pass" and r.dkim_aligned and not r.spf_aligned


async def test_failing_signature_of_the_right_domain_does_not_align() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=reject"})
    r = await check_dmarc(res, "example.com", None, [dkim("fail", "example.com")])
    assert r.result == "fail" and "no DKIM pass" in r.problem


async def test_a_public_suffix_signature_never_aligns() -> None:
    # "d=com" cannot align: "com" has no record, so it is not an Organizational Domain.
    res = dmarc_zone({"example.com": "v=DMARC1; p=reject"})
    r = await check_dmarc(res, "example.com", None, [dkim("pass", "com")])
    assert r.result == "fail"


async def test_unrelated_identifier_costs_no_tree_walk() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=reject"})
    await check_dmarc(res, "example.com", spf("pass", "mailer.example.net"), [])
    assert not any(q.endswith("example.net") for q in txt_queries(res))


# --- the DNS Tree Walk and the Organizational Domain (§4.10) -----------------------------------


async def test_policy_of_the_organizational_domain_and_relaxed_alignment_between_siblings() -> None:
    # The RFC's first Organizational Domain example: records at mail.example.com and
    # example.com -> example.com.
    res = dmarc_zone({"mail.example.com": "v=DMARC1; p=none",
                      "example.com": "v=DMARC1; p=reject; sp=quarantine"},
                     **{"a.mail.example.com": {"A": ["192.0.2.1"]}})
    r = await check_dmarc(res, "a.mail.example.com", None, [dkim("pass", "other.example.com")])
    assert (r.result, r.policy_domain) == ("pass", "example.com")
    failed = await check_dmarc(res, "a.mail.example.com", None, [])
    assert (failed.result, failed.policy, failed.disposition) == ("fail", "quarantine", "quarantine")
    assert txt_queries(res)[:4] == ["_dmarc.a.mail.example.com", "_dmarc.mail.example.com",
                                    "_dmarc.example.com", "_dmarc.com"]


async def test_psd_n_makes_its_domain_the_organizational_domain() -> None:
    # The RFC's second example: psd=n at mail.example.com.
    res = dmarc_zone({"mail.example.com": "v=DMARC1; p=reject; psd=n",
                      "example.com": "v=DMARC1; p=none"})
    r = await check_dmarc(res, "a.mail.example.com", None, [dkim("pass", "example.com")])
    assert (r.result, r.policy_domain, r.disposition) == ("fail", "mail.example.com", "reject")
    ok = await check_dmarc(res, "a.mail.example.com", None, [dkim("pass", "b.mail.example.com")])
    assert ok.result == "pass"
    # The walk stopped at the psd=n record: _dmarc.com was never asked.
    assert "_dmarc.com" not in txt_queries(res)


async def test_psd_y_makes_the_name_below_it_the_organizational_domain() -> None:
    # The RFC's last example: only _dmarc.com, with psd=y -> example.com; its policy applies
    # (PSD policy, §4.10.1), as sp= for an existing subdomain.
    res = dmarc_zone({"com": "v=DMARC1; p=reject; sp=quarantine; psd=y"},
                     **{"a.mail.example.com": {"A": ["192.0.2.1"]}})
    r = await check_dmarc(res, "a.mail.example.com", None, [dkim("pass", "other.example.com")])
    assert (r.result, r.policy_domain) == ("pass", "com")
    bad = await check_dmarc(res, "a.mail.example.com", None, [dkim("pass", "example.net")])
    assert (bad.result, bad.disposition) == ("fail", "quarantine")
    sibling = await check_dmarc(res, "a.mail.example.com", None, [dkim("pass", "evil.com")])
    assert sibling.result == "fail"


async def test_psd_record_is_not_used_when_the_organizational_domain_has_one() -> None:
    res = dmarc_zone({"com": "v=DMARC1; p=reject; psd=y", "example.com": "v=DMARC1; p=none"})
    r = await check_dmarc(res, "mail.example.com", None, [])
    assert (r.result, r.policy_domain, r.disposition) == ("fail", "example.com", "none")


async def test_long_name_walk_jumps_to_seven_labels_and_asks_eight_names() -> None:
    # §4.10: the RFC's own 12-label example, queried in exactly these eight names.
    res = dmarc_zone({})
    r = await check_dmarc(res, "a.b.c.d.e.f.g.h.i.j.mail.example.com", None, [])
    assert r.result == "none"
    assert txt_queries(res) == [
        "_dmarc.a.b.c.d.e.f.g.h.i.j.mail.example.com", "_dmarc.g.h.i.j.mail.example.com",
        "_dmarc.h.i.j.mail.example.com", "_dmarc.i.j.mail.example.com",
        "_dmarc.j.mail.example.com", "_dmarc.mail.example.com", "_dmarc.example.com",
        "_dmarc.com"]


async def test_a_hundred_label_name_costs_eight_queries() -> None:
    res = dmarc_zone({})
    name = ".".join(["x"] * 98) + ".example.com"
    await check_dmarc(res, name, spf("pass", "y." + name), [dkim("pass", "z." + name)])
    assert sum(1 for (_, t) in res.queries if t == "TXT") <= 8


async def test_zone_cut_beyond_eight_labels_is_never_found() -> None:
    # "A Note on Large, Complex Organizations": the psd=n record at b.c.d.e.f.g.example.com is
    # not on the walk.
    res = dmarc_zone({"b.c.d.e.f.g.example.com": "v=DMARC1; p=none; psd=n",
                      "example.com": "v=DMARC1; p=reject"},
                     **{"mail.a.b.c.d.e.f.g.example.com": {"A": ["192.0.2.1"]}})
    r = await check_dmarc(res, "mail.a.b.c.d.e.f.g.example.com", None, [])
    assert (r.result, r.policy_domain, r.disposition) == ("fail", "example.com", "reject")
    assert "_dmarc.b.c.d.e.f.g.example.com" not in txt_queries(res)


async def test_several_records_at_a_name_count_as_none() -> None:
    res = dmarc_zone({"example.com": ["v=DMARC1; p=reject", "v=DMARC1; p=none"]})
    r = await check_dmarc(res, "example.com", None, [])
    assert r.result == "none" and r.policy is None


async def test_other_txt_records_beside_the_dmarc_one_are_ignored() -> None:
    res = dmarc_zone({"example.com": ["v=spf1 -all", "hello", "v=DMARC1; p=reject"]})
    r = await check_dmarc(res, "example.com", None, [])
    assert (r.result, r.disposition) == ("fail", "reject")


async def test_no_record_anywhere_is_none() -> None:
    res = dmarc_zone({})
    r = await check_dmarc(res, "mail.example.org", spf("fail", "x.example"), [])
    assert (r.result, r.policy, r.disposition) == ("none", None, "none")


# --- the applicable policy: p, sp, np (§4.7, §4.10.1) and t= ----------------------------------


def policy_zone() -> MemoryResolver:
    return dmarc_zone({"example.com": "v=DMARC1; p=reject; sp=quarantine; np=none"},
                      **{"exists.example.com": {"MX": [(10, "mx.example.com")]},
                         "example.com": {"A": ["192.0.2.1"]}})


async def test_p_applies_to_the_domain_itself() -> None:
    r = await check_dmarc(policy_zone(), "example.com", None, [])
    assert (r.policy, r.disposition) == ("reject", "reject")


async def test_sp_applies_to_an_existing_subdomain() -> None:
    r = await check_dmarc(policy_zone(), "exists.example.com", None, [])
    assert (r.policy, r.disposition, r.policy_domain) == ("quarantine", "quarantine", "example.com")


async def test_np_applies_to_a_nonexistent_subdomain() -> None:
    r = await check_dmarc(policy_zone(), "nx.example.com", None, [])
    assert (r.policy, r.disposition) == ("none", "none")


async def test_without_sp_and_np_subdomains_get_p() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=reject"})
    r = await check_dmarc(res, "nx.example.com", None, [])
    assert (r.policy, r.disposition) == ("reject", "reject")
    assert not any(t == "A" for (_, t) in res.queries)  # no np=: existence does not matter


async def test_np_without_sp_falls_back_to_p_for_existing_subdomains() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=quarantine; np=reject"},
                     **{"exists.example.com": {"A": ["192.0.2.1"]}})
    assert (await check_dmarc(res, "exists.example.com", None, [])).disposition == "quarantine"
    assert (await check_dmarc(res, "nx.example.com", None, [])).disposition == "reject"


async def test_existence_is_not_asked_for_a_passing_message() -> None:
    res = policy_zone()
    r = await check_dmarc(res, "nx.example.com", None, [dkim("pass", "example.com")])
    assert r.result == "pass"
    assert not any(t == "A" for (_, t) in res.queries)


@pytest.mark.parametrize("record, disposition", [
    ("v=DMARC1; p=reject; t=y", "quarantine"),
    ("v=DMARC1; p=quarantine; t=y", "none"),
    ("v=DMARC1; p=none; t=y", "none"),
    ("v=DMARC1; p=reject; pct=0", "quarantine"),
    ("v=DMARC1; p=reject; t=n", "reject"),
])
async def test_testing_mode_applies_one_step_less(record: str, disposition: str) -> None:
    r = await check_dmarc(dmarc_zone({"example.com": record}), "example.com", None, [])
    assert r.result == "fail" and r.disposition == disposition
    assert r.testing is ("t=y" in record or "pct=0" in record)


async def test_invalid_policy_with_rua_is_treated_as_none() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=bogus; rua=mailto:d@example.com"})
    r = await check_dmarc(res, "example.com", None, [])
    assert (r.result, r.policy, r.disposition) == ("fail", "none", "none")


@pytest.mark.parametrize("record", ["v=DMARC1; p=bogus", "v=DMARC1; p=reject; sp=all",
                                    "v=DMARC1", "v=DMARC1; p"])
async def test_unusable_record_without_rua_is_permerror(record: str) -> None:
    r = await check_dmarc(dmarc_zone({"example.com": record}), "example.com", None, [])
    assert (r.result, r.disposition, r.policy_domain) == ("permerror", "none", "example.com")
    assert "unusable" in r.problem


# --- DNS trouble ("Apply Policy If Appropriate"): temperror, never a fail -------------------------


async def test_policy_lookup_timeout_is_temperror() -> None:
    res = MemoryResolver({"_dmarc.example.com": {"TIMEOUT": [1]}})
    r = await check_dmarc(res, "example.com", None, [])
    assert (r.result, r.disposition) == ("temperror", "none")
    assert "timeout" in r.problem.lower()


class SlowResolver(MemoryResolver):
    """Every TXT answer takes `delay` seconds, as from a distant, slow name server."""

    def __init__(self, records: MemoryResolver, delay: float) -> None:
        super().__init__({})
        self.records, self.delay = records, delay

    async def txt(self, name: str) -> DnsAnswer[str]:
        await asyncio.sleep(self.delay)
        return await self.records.txt(name)


async def test_an_evaluation_that_takes_too_long_is_temperror() -> None:
    # Eight passing DKIM domains under the author's own organisational domain, each walked up
    # to eight labels: ~70 sequential queries, each up to the resolver's timeout, used to hold
    # the session for minutes.
    author = "a.b.c.d.e.f.g.h.example.com"
    slow = SlowResolver(dmarc_zone({"example.com": "v=DMARC1; p=reject"}), 0.1)
    signatures = [dkim("pass", f"x{i}.b.c.d.e.f.g.h.example.com") for i in range(8)]
    started = time.monotonic()
    r = await check_dmarc(slow, author, None, signatures, time_limit=0.5)
    assert r.result == "temperror" and "took more than 0.5 s" in r.problem, r
    assert time.monotonic() - started < 5
    r = await check_dmarc(slow, author, None, [dkim("fail", "example.com")])
    assert (r.result, r.disposition) == ("fail", "reject")


async def test_timeout_during_the_walk_is_temperror() -> None:
    res = MemoryResolver({"_dmarc.com": {"TIMEOUT": [1]}})
    r = await check_dmarc(res, "mail.example.com", None, [])
    assert r.result == "temperror"


async def test_spf_temperror_of_an_aligned_domain_is_temperror_not_fail() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=reject"})
    r = await check_dmarc(res, "example.com", spf("temperror", "example.com"), [])
    assert (r.result, r.disposition, r.policy) == ("temperror", "none", "reject")


async def test_dkim_temperror_of_an_aligned_domain_is_temperror() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=reject"})
    r = await check_dmarc(res, "news.example.com", None, [dkim("temperror", "example.com")])
    assert r.result == "temperror"


async def test_temperror_of_an_unrelated_domain_does_not_save_a_forgery() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=reject"})
    r = await check_dmarc(res, "example.com", spf("temperror", "example.net"),
                          [dkim("temperror", "evil.example")])
    assert (r.result, r.disposition) == ("fail", "reject")


async def test_aligned_pass_wins_over_a_temperror() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=reject"})
    r = await check_dmarc(res, "example.com", spf("temperror", "example.com"),
                          [dkim("pass", "example.com")])
    assert r.result == "pass"


async def test_existence_check_timeout_is_temperror() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=reject; np=quarantine"},
                     **{"nx.example.com": {"TIMEOUT": [1]}})
    r = await check_dmarc(res, "nx.example.com", None, [])
    assert r.result == "temperror"


async def test_a_from_domain_that_is_not_a_name_is_permerror() -> None:
    r = await check_dmarc(dmarc_zone({}), "exa mple..com", None, [])
    assert r.result == "permerror"


# --- the author domain ("Extract Author Domain", "Denial of DMARC Processing Attacks") ------------


def test_one_from_address() -> None:
    msg = b"From: Service <service@PayPal.COM.>\r\nTo: x@y\r\n\r\nFrom: body@evil.example\r\n"
    assert author_domains(msg) == AuthorDomains(("paypal.com",))


def test_several_addresses_in_one_domain_are_one_author_domain() -> None:
    msg = b"From: a@example.com, \"B\" <b@Example.com>\r\n\r\n"
    assert author_domains(msg) == AuthorDomains(("example.com",))


def test_several_domains_are_all_returned_with_a_problem() -> None:
    a = author_domains(b"From: a@example.com, b@example.net\r\n\r\n")
    assert a.domains == ("example.com", "example.net") and "2 domains" in a.problem


def test_two_from_fields_are_a_problem() -> None:
    a = author_domains(b"From: me@evil.example\r\nSubject: x\r\nFrom: service@paypal.com\r\n\r\n")
    assert a.domains == ("evil.example", "paypal.com")
    assert "2 From header fields" in a.problem


@pytest.mark.parametrize("message", [
    b"To: x@example.com\r\n\r\nbody",
    b"From: undisclosed-recipients:;\r\n\r\n",
    b"From: nobody\r\n\r\n",
    b"From: a@[192.0.2.1]\r\n\r\n",
])
def test_no_usable_author_domain(message: bytes) -> None:
    a = author_domains(message)
    assert a.domains == () and a.problem


def test_u_label_becomes_an_a_label() -> None:
    a = author_domains("From: k@Bücher.example\r\n\r\n".encode())
    assert a.domains == ("xn--bcher-kva.example",)


async def test_second_from_field_does_not_hide_a_forged_domain() -> None:
    # "Denial of DMARC Processing Attacks": evaluate each author domain, the strictest failing
    # policy wins.
    res = dmarc_zone({"paypal.com": "v=DMARC1; p=reject"})
    author = author_domains(b"From: me@evil.example\r\nFrom: service@paypal.com\r\n\r\n")
    r = await check_dmarc_author(res, author, spf("pass", "evil.example"), [])
    assert (r.result, r.from_domain, r.disposition) == ("fail", "paypal.com", "reject")
    assert "2 From header fields" in r.problem


async def test_no_author_domain_is_permerror() -> None:
    r = await check_dmarc_author(dmarc_zone({}), author_domains(b"To: a@b\r\n\r\n"), None, [])
    assert (r.result, r.from_domain) == ("permerror", "")
    assert "no From" in r.problem


async def test_too_many_author_domains_is_permerror() -> None:
    author = AuthorDomains(tuple(f"d{i}.example" for i in range(5)), "From holds 5 domains")
    r = await check_dmarc_author(dmarc_zone({}), author, None, [])
    assert r.result == "permerror" and "at most 4" in r.problem


async def test_result_renders_in_authentication_results() -> None:
    res = dmarc_zone({"example.com": "v=DMARC1; p=reject; t=y"})
    r = await check_dmarc(res, "example.com", spf("pass", "example.net"), [])
    header = AuthenticationResults("mx.example.org", dmarc=r).header_value()
    assert "dmarc=fail (p=REJECT dis=QUARANTINE t=y; no aligned pass" in header
    assert "header.from=example.com" in header


# --- fuzz: the parsers never raise ------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from("v=DMARC1;p rejectsnoquaty,:!mailto@x.y\t\x00é"),
               max_size=120))
def test_fuzz_record_parser_never_raises(text: str) -> None:
    parse_dmarc_record(text)
    parse_dmarc_record("v=DMARC1;" + text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_author_domains_never_raises(data: bytes) -> None:
    a = author_domains(b"From: " + data + b"\r\n\r\n")
    assert a.domains or a.problem


def test_the_characters_a_from_domain_may_not_hold_are_those_of_the_reference() -> None:
    # _valid_name scans with one regex; every code point is judged as the per-character rule did.
    import sys

    from postoffice.mailauth.dmarc import _valid_name
    for point in range(sys.maxunicode + 1):
        c = chr(point)
        assert _valid_name(f"a{c}b.example") == (not (c.isspace() or c in '@;"\\')), hex(point)
