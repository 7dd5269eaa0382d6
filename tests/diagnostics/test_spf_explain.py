"""`check spf` explained against the loopback DNS server: tests/zones/spf.test.zone holds one
record per fault; records given as text need no DNS at all."""
from __future__ import annotations

import pytest

from dns_server import DnsServers
from postoffice.diagnostics.checks import Severity
from postoffice.diagnostics.spf_explain import SpfReport, explain_spf
from postoffice.mailauth.resolver import DnsResolver

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def resolver(dns_server: DnsServers) -> DnsResolver:
    return DnsResolver((dns_server.address,), timeout=2.0)


def errors(report: SpfReport) -> list[str]:
    return [f.id for f in report.findings if f.severity is Severity.ERROR]


def ids(report: SpfReport) -> set[str]:
    return {f.id for f in report.findings}


def meaning(report: SpfReport, term: str) -> str:
    [found] = [t for t in report.terms if t.text == term]
    return found.meaning


@pytest.mark.parametrize(("record", "words"), [
    ("v=spf1 mx -all", "fail"),
    ("v=spf1 mx ~all", "softfail"),
    ("v=spf1 mx ?all", "neutral"),
    ("v=spf1 mx +all", "Everyone may send"),
])
async def test_each_all_qualifier_is_said_in_plain_words(resolver: DnsResolver, record: str,
                                                        words: str) -> None:
    report = await explain_spf(resolver, record)
    assert words in meaning(report, record.split()[-1])
    assert [t.text for t in report.terms] == ["mx", record.split()[-1]]


async def test_plus_all_is_an_error_and_neutral_all_a_warning(resolver: DnsResolver) -> None:
    assert errors(await explain_spf(resolver, "v=spf1 mx +all")) == ["spf-plus-all"]
    neutral = await explain_spf(resolver, "v=spf1 mx ?all")
    assert errors(neutral) == [] and "spf-neutral-all" in ids(neutral)
    assert "spf-no-all" in ids(await explain_spf(resolver, "v=spf1 mx"))
    clean = await explain_spf(resolver, "v=spf1 mx -all")
    assert ids(clean) == {"spf-ok"}


async def test_plus_a_only_adds_the_domains_own_addresses(resolver: DnsResolver) -> None:
    report = await explain_spf(resolver, "v=spf1 +a include:spf.protection.outlook.com ~all")
    text = meaning(report, "a")
    assert "only" in text and "own addresses" in text and "Office 365" in text
    assert "Microsoft 365" in meaning(report, "include:spf.protection.outlook.com")


async def test_a_record_as_text_with_a_syntax_error(resolver: DnsResolver) -> None:
    report = await explain_spf(resolver, "v=spf1 ip4:192.0.2.300 -all")
    [finding] = report.findings
    assert (finding.id, finding.severity) == ("spf-syntax", Severity.ERROR)
    assert "ip4:192.0.2.300" in finding.problem and finding.fix
    assert errors(await explain_spf(resolver, "v=spf2 mx -all")) == ["spf-syntax"]


async def test_macros_exp_and_networks_are_explained(resolver: DnsResolver) -> None:
    report = await explain_spf(resolver, "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::1 "
                                         "exists:%{i}._spf.%{d} -all exp=why.%{d}")
    assert "256 addresses" in meaning(report, "ip4:192.0.2.0/24")
    assert "the address 2001:db8::1" in meaning(report, "ip6:2001:db8::1")
    assert "%{i} is the client's IP address" in meaning(report, "exists:%{i}._spf.%{d}")
    assert "refusal" in meaning(report, "exp=why.%{d}")
    assert report.lookups == 1  # exists counts; exp= does not


async def test_a_clean_domain_counts_its_lookups_through_includes(resolver: DnsResolver) -> None:
    report = await explain_spf(resolver, "good.spf.test")
    assert errors(report) == []
    assert report.record.startswith("v=spf1 a mx")
    assert report.lookups == 3  # a, mx, include (the provider's record has only ip4)
    assert [(t.text, t.depth) for t in report.terms] == [
        ("a", 0), ("mx", 0), ("ip4:127.0.0.20", 0), ("include:_spf.provider.spf.test", 0),
        ("ip4:127.0.0.30/31", 1), ("-all", 1), ("~all", 0)]
    assert [f.id for f in report.findings] == ["spf-ok"]


@pytest.mark.parametrize(("domain", "expected"), [
    ("many.spf.test", "spf-too-many-lookups"),
    ("multiple.spf.test", "spf-multiple"),
    ("syntax.spf.test", "spf-syntax"),
    ("plusall.spf.test", "spf-plus-all"),
    ("nospf.spf.test", "spf-missing"),
    ("missinginclude.spf.test", "spf-include-missing"),
    ("loop.spf.test", "spf-include-loop"),
    ("void.spf.test", "spf-too-many-void-lookups"),
])
async def test_each_broken_domain_reports_its_fault_as_its_only_error(
        resolver: DnsResolver, domain: str, expected: str) -> None:
    report = await explain_spf(resolver, domain)
    assert errors(report) == [expected], report.findings


async def test_too_many_lookups_counts_the_whole_chain(resolver: DnsResolver) -> None:
    report = await explain_spf(resolver, "many.spf.test")
    assert report.lookups == 11
    assert max(t.depth for t in report.terms) == 11
    assert report.terms[0].lookups == 11  # the first include pulls in the whole chain


async def test_redirect_follows_the_target(resolver: DnsResolver) -> None:
    report = await explain_spf(resolver, "redirect.spf.test")
    assert errors(report) == [] and report.lookups == 4
    assert report.terms[0].text == "redirect=good.spf.test" and report.terms[0].lookups == 4


@pytest.mark.parametrize(("ip", "result", "decided_by"), [
    ("127.0.0.21", "pass", "a"),
    ("127.0.0.22", "pass", "mx"),
    ("127.0.0.20", "pass", "ip4:127.0.0.20"),
    ("127.0.0.31", "pass", "include:_spf.provider.spf.test > ip4:127.0.0.30/31"),
    ("127.0.0.99", "softfail", "~all"),
])
async def test_ip_gives_the_result_and_the_term_that_decided(
        resolver: DnsResolver, ip: str, result: str, decided_by: str) -> None:
    report = await explain_spf(resolver, "good.spf.test", ip=ip)
    assert report.result is not None
    assert (report.result.result, report.result.decided_by) == (result, decided_by)
    [finding] = [f for f in report.findings if f.id == "spf-result"]
    assert decided_by in finding.problem
    assert finding.severity is (Severity.OK if result == "pass" else Severity.WARNING)


async def test_ip_against_a_record_given_as_text(resolver: DnsResolver) -> None:
    report = await explain_spf(resolver, "v=spf1 ip4:127.0.0.20 include:_spf.provider.spf.test -all",
                               ip="127.0.0.66", sender="someone@good.spf.test")
    assert report.result is not None and report.result.result == "fail"
    assert report.result.decided_by == "-all" and report.result.domain == "good.spf.test"
    assert "spf-result" in errors(report)
    passing = await explain_spf(resolver, "v=spf1 mx -all", ip="127.0.0.22",
                                sender="someone@good.spf.test")
    assert passing.result is not None and passing.result.result == "pass"
    assert errors(passing) == []
