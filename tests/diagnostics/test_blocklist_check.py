"""`check blocklists` against the loopback DNS server: dnsbl.test lists 127.0.0.2 (with a reason)
and answers 127.0.0.4 with its error code, dbl.test lists the domain spammy.message.test, the
MX of listed.message.test is 127.0.0.2, and lists under timeout.test never answer."""
from __future__ import annotations

import pytest

from dns_server import DnsServers
from postoffice.diagnostics.blocklist_check import (
    DEFAULT_DOMAIN_LISTS,
    DEFAULT_IP_LISTS,
    ListingReport,
    check_listings,
    delisting_hint,
)
from postoffice.diagnostics.checks import Severity
from postoffice.mailauth.resolver import DnsResolver

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def resolver(dns_server: DnsServers) -> DnsResolver:
    return DnsResolver((dns_server.address,), timeout=1.0)


def by_severity(report: ListingReport) -> dict[str, list[str]]:
    return {s.value: [f.subject for f in report.findings if f.severity is s] for s in Severity}


async def test_a_listed_address_with_the_lists_reason_and_where_to_ask(resolver: DnsResolver) -> None:
    report = await check_listings(resolver, "127.0.0.2", ip_lists=("dnsbl.test", "bl.example.test"))
    assert by_severity(report) == {"error": ["127.0.0.2 on dnsbl.test"],
                                   "warning": [], "ok": ["127.0.0.2 on bl.example.test"]}
    [listed] = [f for f in report.findings if f.severity is Severity.ERROR]
    assert listed.id == "dnsbl-listed"
    assert "see https://dnsbl.test/?127.0.0.2" in listed.problem and "127.0.0.2)" in listed.problem
    assert "removal form on the web site of dnsbl.test" in listed.fix


async def test_a_list_that_cannot_answer_is_unknown_not_clean(resolver: DnsResolver) -> None:
    report = await check_listings(resolver, "127.0.0.4", ip_lists=("dnsbl.test", "list.timeout.test"))
    assert [(f.id, f.severity) for f in report.findings] == [
        ("dnsbl-unanswered", Severity.WARNING), ("dnsbl-unanswered", Severity.WARNING)]
    refused, silent = report.findings
    assert "error code 127.255.255.254" in refused.problem and "resolver of your own" in refused.fix
    assert "could not be asked" in silent.problem


async def test_a_domain_on_a_domain_list_and_its_mail_server_on_an_address_list(
        resolver: DnsResolver) -> None:
    spammy = await check_listings(resolver, "spammy.message.test", ip_lists=("dnsbl.test",),
                                  domain_lists=("dbl.test",))
    assert [f.subject for f in spammy.findings if f.severity is Severity.ERROR] == [
        "spammy.message.test on dbl.test"]
    assert "no mail server address" in spammy.findings[0].problem  # it has no MX nor A
    listed = await check_listings(resolver, "listed.message.test", ip_lists=("dnsbl.test",),
                                  domain_lists=("dbl.test",))
    assert by_severity(listed) == {"error": ["127.0.0.2 on dnsbl.test"], "warning": [],
                                   "ok": ["listed.message.test on dbl.test"]}
    refused = await check_listings(resolver, "refused.message.test", ip_lists=("dnsbl.test",),
                                   domain_lists=("dbl.test",))
    assert not [f for f in refused.findings if f.severity is Severity.ERROR]  # 127.0.1.255


async def test_without_configured_lists_the_defaults_are_asked_and_named(resolver: DnsResolver) -> None:
    report = await check_listings(resolver, "127.0.0.7")
    assert report.defaults_used and report.ip_lists == DEFAULT_IP_LISTS
    assert report.domain_lists == DEFAULT_DOMAIN_LISTS
    assert [f.subject for f in report.findings] == [f"127.0.0.7 on {z}" for z in DEFAULT_IP_LISTS]


def test_delisting_hints_name_the_lists_own_pages() -> None:
    assert "https://check.spamhaus.org/" in delisting_hint("zen.spamhaus.org")
    assert "24 hours" in delisting_hint("bl.spamcop.net")
    assert "barracudacentral.org/rbl/removal-request" in delisting_hint("b.barracudacentral.org")
