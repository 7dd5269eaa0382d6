"""`check message`: "is this email real?" against the loopback DNS server. message.test signs its
mail (a key made for the run and published in the zone) and sends from 127.0.0.50, with SPF -all
and DMARC p=reject; scam.message.test is a real, authenticated domain that dresses up as someone
else; paypal.com has no records here (only .test zones are served)."""
from __future__ import annotations

from pathlib import Path

import pytest
from tests.diagnostics.message_kit import TRUSTED, compose, received, signed

from dns_server import DnsServers
from postoffice.diagnostics.checks import Severity
from postoffice.diagnostics.lookalike import brand_in_name, lookalike_of
from postoffice.diagnostics.message_check import MessageReport, check_message
from postoffice.mailauth.dkim_crypto import SigningKey
from postoffice.mailauth.resolver import DnsResolver

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def resolver(dns_server: DnsServers) -> DnsResolver:
    return DnsResolver((dns_server.address,), timeout=2.0)


async def judge(resolver: DnsResolver, raw: bytes) -> MessageReport:
    return await check_message(resolver, raw, trusted_hosts=[TRUSTED], local_domains=["example.org"])


def ids(report: MessageReport, severity: Severity) -> set[str]:
    return {f.id for f in report.findings if f.severity is severity}


async def test_a_signed_message_from_the_senders_server_is_genuine(
        resolver: DnsResolver, dkim_key: SigningKey) -> None:
    raw = received(signed(compose("Alice <alice@message.test>"), dkim_key), "127.0.0.50",
                   "alice@message.test")
    report = await judge(resolver, raw)
    assert report.verdict == "genuine", report.findings
    assert ids(report, Severity.OK) == {"message-dkim", "message-spf", "message-dmarc"}
    assert report.client_ip == "127.0.0.50" and report.from_domain == "message.test"
    assert report.spf is not None and report.spf.decided_by == "mx"
    assert report.dmarc is not None and report.dmarc.dkim_aligned and report.dmarc.spf_aligned


async def test_the_same_message_altered_after_signing_is_not_genuine(
        resolver: DnsResolver, dkim_key: SigningKey) -> None:
    raw = signed(compose("Alice <alice@message.test>"), dkim_key).replace(b"Friday", b"Monday")
    report = await judge(resolver, received(raw, "127.0.0.66", "alice@message.test"))
    assert report.verdict == "forged"
    assert "message-dmarc" in ids(report, Severity.ERROR)
    assert "message-dkim" in ids(report, Severity.WARNING)


async def test_a_forged_paypal_from_an_unlisted_address(resolver: DnsResolver) -> None:
    # paypal.com has no records in the test DNS (only .test zones are served): what makes this
    # forged is that mail from a brand's own domain always authenticates, and this does not.
    raw = received(compose("PayPal <service@paypal.com>"), "127.0.0.66", "service@paypal.com",
                   helo="mail.scam.message.test")
    report = await judge(resolver, raw)
    assert report.verdict == "forged"
    assert ids(report, Severity.ERROR) == {"message-brand-unauthenticated"}
    [finding] = [f for f in report.findings if f.id == "message-brand-unauthenticated"]
    assert "paypal.com (PayPal)" in finding.problem and finding.fix


async def test_an_unsigned_message_from_a_server_the_domain_does_not_list(resolver: DnsResolver) -> None:
    raw = received(compose("Alice <alice@message.test>"), "127.0.0.66", "alice@message.test",
                   helo="mail.scam.message.test")
    report = await judge(resolver, raw)
    assert report.verdict == "forged"
    assert ids(report, Severity.ERROR) == {"message-spf", "message-dmarc"}
    [dmarc] = [f for f in report.findings if f.id == "message-dmarc"]
    assert "p=reject" in dmarc.problem and dmarc.fix
    assert report.spf is not None and report.spf.decided_by == "-all"


@pytest.mark.parametrize(("author", "expected"), [
    ('"service@paypal.com" <billing@scam.message.test>', "message-display-name-address"),
    ('"PayPaI Service" <billing@scam.message.test>', "message-display-name-brand"),
])
async def test_display_name_spoofing_is_forged_though_the_sender_authenticates(
        resolver: DnsResolver, author: str, expected: str) -> None:
    raw = received(compose(author), "127.0.0.66", "billing@scam.message.test",
                   helo="mail.scam.message.test")
    report = await judge(resolver, raw)
    assert report.dmarc is not None and report.dmarc.result == "pass"  # its own domain is genuine
    assert report.verdict == "forged" and expected in ids(report, Severity.ERROR)


@pytest.mark.parametrize(("domain", "imitated"), [
    ("paypa1.com", "paypal.com"),
    ("xn--pypal-4ve.com", "paypal.com"),  # "pаypal.com" with a Cyrillic а
    ("micros0ft.com", "microsoft.com"),
    ("amazom.com", "amazon.com"),
    ("exmaple.org", "example.org"),  # a local domain, two letters swapped
])
async def test_lookalike_from_domains_are_forged(resolver: DnsResolver, domain: str,
                                                 imitated: str) -> None:
    raw = received(compose(f"Billing <billing@{domain}>"), "127.0.0.66", f"billing@{domain}")
    report = await judge(resolver, raw)
    assert report.verdict == "forged"
    [finding] = [f for f in report.findings if f.id == "message-lookalike-domain"]
    assert f"imitates {imitated}" in finding.problem


def test_lookalikes_leave_the_real_domains_and_their_subdomains_alone() -> None:
    for domain in ("paypal.com", "mail.paypal.com", "example.org", "message.test", "ups.com",
                   "ufs.com", "apples-and-pears.test"):
        assert lookalike_of(domain, ["example.org"]) is None, domain
    assert lookalike_of("rnicrosoft.com") == "microsoft.com"
    assert brand_in_name("Alice Smith") is None and brand_in_name("pineapple") is None


async def test_a_forwarded_message_failing_spf_is_genuine_when_dkim_passes(
        resolver: DnsResolver, dkim_key: SigningKey) -> None:
    raw = received(signed(compose("Alice <alice@message.test>"), dkim_key), "127.0.0.66",
                   "alice@message.test", helo="forwarder.example.test")
    report = await judge(resolver, raw)
    assert report.spf is not None and report.spf.result == "fail"
    assert report.verdict == "genuine", report.findings
    [spf] = [f for f in report.findings if f.id == "message-spf"]
    assert spf.severity is Severity.OK and "SPF fail" in spf.problem


async def test_reply_to_another_domain_is_suspicious(resolver: DnsResolver,
                                                     dkim_key: SigningKey) -> None:
    raw = signed(compose("Alice <alice@message.test>", extra="Reply-To: refunds@elsewhere.test\r\n"),
                 dkim_key)
    report = await judge(resolver, received(raw, "127.0.0.50", "alice@message.test"))
    assert report.verdict == "suspicious"
    assert ids(report, Severity.WARNING) == {"message-reply-to-other-domain"}


async def test_a_link_whose_text_shows_another_host(resolver: DnsResolver,
                                                    dkim_key: SigningKey) -> None:
    html = ('<p>Please <a href="https://www.message.test/account">www.message.test</a> or'
            ' <a href="http://login.evil.test/paypal">https://www.paypal.com/signin</a>'
            ' or <a href="https://paypa1.com/x">here</a></p>')
    raw = signed(compose("Alice <alice@message.test>", html=html), dkim_key)
    report = await judge(resolver, received(raw, "127.0.0.50", "alice@message.test"))
    [mismatch] = [f for f in report.findings if f.id == "message-link-mismatch"]
    assert "shows www.paypal.com but leads to login.evil.test" in mismatch.problem
    assert mismatch.severity is Severity.WARNING
    [lookalike] = [f for f in report.findings if f.id == "message-lookalike-domain"]
    assert lookalike.subject == "paypa1.com"
    assert report.verdict == "forged"


async def test_without_a_received_field_of_ours_spf_is_not_checked(
        resolver: DnsResolver, dkim_key: SigningKey) -> None:
    raw = received(signed(compose("Alice <alice@message.test>"), dkim_key), "127.0.0.50",
                   "alice@message.test", by="mx.somewhere-else.test")
    report = await judge(resolver, raw)
    assert report.spf is None and report.client_ip == ""
    assert ids(report, Severity.WARNING) == {"message-spf-unchecked"}
    assert report.verdict == "suspicious"  # DKIM and DMARC still pass


async def test_garbage_gives_findings_not_a_traceback(resolver: DnsResolver, tmp_path: Path) -> None:
    report = await judge(resolver, b"\x00\xff not a message at all \r\n\r\n<a href=")
    assert report.verdict == "forged" and "message-no-from" in ids(report, Severity.ERROR)
