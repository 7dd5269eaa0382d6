"""The spam score's rules, one by one: a message that fires each and one that does not; the
weights, the thresholds, the header fields, spamtest's scale (filtering/score.py, issue 17)."""
from __future__ import annotations

import base64
import io
import zipfile

import pytest

from postoffice.config import load_config
from postoffice.filtering.dnsbl import Listing
from postoffice.filtering.score import RuleHit, SpamScore, SpamSettings, score_message
from postoffice.filtering.score_rules import ScoreContext, name_key
from postoffice.filtering.score_weights import DEFAULT_WEIGHTS, RULES
from postoffice.filtering.sieve.extensions import spamtest_value
from postoffice.filtering.spam_stage import settings_of, without_spam_fields
from postoffice.filtering.uri_blocklists import MAX_DOMAINS, UriListing, link_domains
from postoffice.mailauth.results import (
    ArcResult,
    AuthenticationResults,
    DkimResult,
    DmarcResult,
    IprevResult,
    SpfResult,
)
from postoffice.message.mime import parse_message

OURS = frozenset({"example.test"})
LOCAL = ScoreContext(local_domains=OURS, local_names={name_key("alice.boss"): "alice.boss@example.test"})
DATED = "Date: Sun, 6 Dec 2026 21:00:00 +0000\r\nMessage-ID: <1@sender.example>\r\n"


def message(headers: str = "", body: str = "Hello.\r\n", *, sender: str = "Bob <bob@sender.example>",
            dated: bool = True) -> bytes:
    return (f"From: {sender}\r\nTo: alice@example.test\r\nSubject: hi\r\n{DATED if dated else ''}"
            f"{headers}\r\n{body}").encode()


def with_attachment(name: str, content: bytes, kind: str = "application/octet-stream") -> bytes:
    encoded = base64.encodebytes(content).decode().replace("\n", "\r\n")
    return message('MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n',
                   "--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
                   f'--b\r\nContent-Type: {kind}; name="{name}"\r\nContent-Disposition: attachment;'
                   f' filename="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}--b--\r\n')


def names(raw: bytes, context: ScoreContext = LOCAL, settings: SpamSettings | None = None) -> list[str]:
    return list(score_message(raw, context, settings or SpamSettings()).names())


def auth(**results: object) -> ScoreContext:
    return ScoreContext(results=AuthenticationResults("mail.example.test", **results),  # type: ignore[arg-type]
                        local_domains=OURS)


SPF_PASS = SpfResult("pass", "mailfrom", "bob@sender.example", "sender.example")
DKIM_OK = (DkimResult("pass", domain="sender.example"),)
DMARC_OK = DmarcResult("pass", "sender.example")
CLEAN = {"spf": SPF_PASS, "dkim": DKIM_OK, "dmarc": DMARC_OK, "arc": ArcResult("none"),
         "iprev": IprevResult("pass", "192.0.2.1", "mx.sender.example")}


def test_a_clean_authenticated_message_fires_only_dkim_pass() -> None:
    score = score_message(message(), auth(**CLEAN), SpamSettings())
    assert score.names() == ("DKIM_PASS",)
    assert score.score == -0.5 and not score.is_junk


@pytest.mark.parametrize(("spf", "rule"), [("fail", "SPF_FAIL"), ("softfail", "SPF_SOFTFAIL"),
                                           ("none", "SPF_NONE"), ("permerror", "SPF_PERMERROR"),
                                           ("pass", None), ("neutral", None), ("temperror", None)])
def test_spf_results(spf: str, rule: str | None) -> None:
    result = SpfResult(spf, "mailfrom", "bob@sender.example", "sender.example")  # type: ignore[arg-type]
    fired = [n for n in names(message(), auth(**CLEAN | {"spf": result})) if n.startswith("SPF_")]
    assert fired == ([rule] if rule else [])


@pytest.mark.parametrize(("dkim", "rule"), [
    ((), "DKIM_NONE"),
    ((DkimResult("fail", domain="sender.example"),), "DKIM_FAIL"),
    ((DkimResult("pass", domain="mail.sender.example"),), "DKIM_PASS"),
    # a broken extra signature beside a good one is common (lists): the pass counts
    ((DkimResult("fail", domain="list.example"), DkimResult("pass", domain="sender.example")), "DKIM_PASS"),
    ((DkimResult("pass", domain="bulk-mailer.example"),), None),  # not the From domain's
])
def test_dkim_results(dkim: tuple[DkimResult, ...], rule: str | None) -> None:
    fired = [n for n in names(message(), auth(**CLEAN | {"dkim": dkim})) if n.startswith("DKIM_")]
    assert fired == ([rule] if rule else [])


def test_dkim_pass_has_a_negative_weight() -> None:
    assert DEFAULT_WEIGHTS["DKIM_PASS"] < 0


@pytest.mark.parametrize(("dmarc", "rule"), [
    (DmarcResult("fail", "sender.example", policy="none"), "DMARC_FAIL"),
    (DmarcResult("none", "sender.example"), "DMARC_NONE"),
    (DMARC_OK, None), (None, None),
])
def test_dmarc_results(dmarc: DmarcResult | None, rule: str | None) -> None:
    fired = [n for n in names(message(), auth(**CLEAN | {"dmarc": dmarc})) if n.startswith("DMARC_")]
    assert fired == ([rule] if rule else [])


@pytest.mark.parametrize(("arc", "fires"), [(ArcResult("fail", problem="seal broken"), True),
                                            (ArcResult("pass"), False), (ArcResult("none"), False)])
def test_arc_results(arc: ArcResult, fires: bool) -> None:
    assert ("ARC_FAIL" in names(message(), auth(**CLEAN | {"arc": arc}))) is fires


@pytest.mark.parametrize(("iprev", "fires"), [("fail", True), ("permerror", True), ("pass", False),
                                              ("temperror", False)])
def test_iprev_results(iprev: str, fires: bool) -> None:
    result = IprevResult(iprev, "192.0.2.1")  # type: ignore[arg-type]
    assert ("IPREV_FAIL" in names(message(), auth(**CLEAN | {"iprev": result}))) is fires


def test_dnsbl_listing_from_connect_time() -> None:
    listing = Listing("bl.example", "192.0.2.99", ())
    score = score_message(message(), ScoreContext(dnsbl=(listing,)), SpamSettings())
    assert [(h.name, h.detail) for h in score.rules] == [("DNSBL_LISTED", "192.0.2.99 on bl.example")]
    assert "DNSBL_LISTED" not in names(message(), ScoreContext())


@pytest.mark.parametrize(("reply_to", "rule"), [
    ("Reply-To: billing@other.example\r\n", "REPLYTO_OTHER_DOMAIN"),
    ("Reply-To: bob.sender.payments@gmail.com\r\n", "REPLYTO_FREEMAIL"),
    ("Reply-To: support@help.sender.example\r\n", None),  # the same organisation
    ("Reply-To: Bob <bob@sender.example>\r\n", None),
    ("", None),
])
def test_reply_to_on_another_domain(reply_to: str, rule: str | None) -> None:
    fired = [n for n in names(message(reply_to)) if n.startswith("REPLYTO_")]
    assert fired == ([rule] if rule else [])


def test_reply_to_on_free_mail_weighs_more_and_the_list_is_configurable() -> None:
    assert DEFAULT_WEIGHTS["REPLYTO_FREEMAIL"] > DEFAULT_WEIGHTS["REPLYTO_OTHER_DOMAIN"]
    raw = message("Reply-To: x@mailbox.example\r\n")
    assert "REPLYTO_OTHER_DOMAIN" in names(raw)
    assert "REPLYTO_FREEMAIL" in names(raw, ScoreContext(freemail=frozenset({"mailbox.example"})))


@pytest.mark.parametrize(("sender", "fires"), [
    ('"support@bank.example" <x@sender.example>', True),
    ("=?utf-8?q?service=40bank=2Eexample?= <x@sender.example>", True),  # RFC 2047-encoded
    ('"bob@sender.example" <bob@sender.example>', False),
    ("Bob <bob@sender.example>", False),
])
def test_display_name_showing_another_address(sender: str, fires: bool) -> None:
    assert ("FROM_NAME_OTHER_ADDRESS" in names(message(sender=sender))) is fires


@pytest.mark.parametrize(("sender", "fires"), [
    ('"Alice Boss" <ceo.office@sender.example>', True),
    ('"BOSS, Alice" <x@sender.example>', True),
    ('"Alice Boss" <alice.boss@example.test>', False),  # from our own domain: herself
    ('"Alice" <x@sender.example>', False),  # one word is too common to mean anything
    ('"Bob Boss" <x@sender.example>', False),
])
def test_display_name_imitating_a_local_user(sender: str, fires: bool) -> None:
    assert ("FROM_NAME_LOCAL_USER" in names(message(sender=sender))) is fires


@pytest.mark.parametrize(("sender", "fires"), [
    ('"PayPal Service" <service@secure-payments.example>', True),
    ('"PayPal" <service@paypal.com>', False),
    ('"Paula Pal" <paula@sender.example>', False),
])
def test_display_name_claiming_a_brand(sender: str, fires: bool) -> None:
    assert ("FROM_NAME_BRAND" in names(message(sender=sender))) is fires


@pytest.mark.parametrize(("domain", "fires"), [
    ("exarnple.test", True),  # "rn" looks like "m"
    ("xn--pypal-4ve.com", True),  # a Cyrillic "а" in paypal.com
    ("paypa1.com", True),
    ("example.test", False), ("mail.example.test", False), ("sender.example", False),
])
def test_lookalike_sender_domains(domain: str, fires: bool) -> None:
    assert ("LOOKALIKE_DOMAIN" in names(message(sender=f"Service <x@{domain}>"))) is fires


def test_missing_date_and_message_id() -> None:
    assert {"MISSING_DATE", "MISSING_MESSAGE_ID"} <= set(names(message(dated=False)))
    assert not {"MISSING_DATE", "MISSING_MESSAGE_ID"} & set(names(message()))


def test_a_from_dmarc_cannot_judge_fires_from_unusable() -> None:
    """No From, two From fields (each may name another domain), or a From without an address:
    DMARC has no author domain to apply a policy to (dmarc=permerror)."""
    no_from = b"To: alice@example.test\r\nSubject: hi\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nHello.\r\n"
    two = message("From: PayPal <service@paypal.com>\r\n")
    group = message(sender="undisclosed-senders:;")
    for raw, detail in ((no_from, "no From field"), (two, "2 From fields"), (group, "no address with a domain in From")):
        fired = {hit.name: hit.detail for hit in score_message(raw, LOCAL, SpamSettings()).rules}
        assert fired.get("FROM_UNUSABLE") == detail, (raw, fired)
    assert "FROM_UNUSABLE" not in names(message())
    assert "FROM_UNUSABLE" not in names(message(sender="a@b.example, c@d.example"))  # several addresses, one field


def test_html_only() -> None:
    html = message("MIME-Version: 1.0\r\nContent-Type: text/html\r\n", "<p>Hello</p>\r\n")
    both = message('MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="a"\r\n',
                   "--a\r\nContent-Type: text/plain\r\n\r\nHello\r\n"
                   "--a\r\nContent-Type: text/html\r\n\r\n<p>Hello</p>\r\n--a--\r\n")
    assert "HTML_ONLY" in names(html)
    assert "HTML_ONLY" not in names(both)
    assert "HTML_ONLY" not in names(message())


def _zip(*files: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in files:
            archive.writestr(name, b"MZ")
    return buffer.getvalue()


@pytest.mark.parametrize(("name", "content", "rule"), [
    ("invoice.exe", b"MZ\x90\x00", "EXECUTABLE_ATTACHMENT"),
    ("invoice.pdf.js", b"var x;", "EXECUTABLE_ATTACHMENT"),
    ("disk.ISO", b"\x00" * 10, "EXECUTABLE_ATTACHMENT"),
    ("shortcut.lnk", b"L\x00", "EXECUTABLE_ATTACHMENT"),
    ("budget.xlsm", b"PK", "MACRO_ATTACHMENT"),
    ("letter.docm", b"PK", "MACRO_ATTACHMENT"),
    ("scan.zip", _zip("readme.txt", "docs/scan.pdf.scr"), "ARCHIVED_EXECUTABLE"),
    ("photos.zip", _zip("a.jpg", "b.jpg"), None),
    ("broken.zip", b"PK\x03\x04 not really a zip", None),
    ("invoice.pdf", b"%PDF-1.4", None),
    ("letter.docx", b"PK", None),
])
def test_dangerous_attachments(name: str, content: bytes, rule: str | None) -> None:
    fired = [n for n in names(with_attachment(name, content)) if n.endswith(("_ATTACHMENT", "_EXECUTABLE"))]
    assert fired == ([rule] if rule else [])


def test_an_executable_content_type_without_a_name() -> None:
    raw = message('MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n',
                  "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: application/x-msdownload"
                  "\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQ\r\n--b--\r\n")
    assert "EXECUTABLE_ATTACHMENT" in names(raw)


def test_uri_listings_fire_one_rule_naming_them() -> None:
    context = ScoreContext(uri_listings=(UriListing("spammy.example", "dbl.example"),))
    score = score_message(message(), context, SpamSettings())
    assert [(h.name, h.detail) for h in score.rules] == [("URIBL_LISTED", "spammy.example on dbl.example")]


def test_link_domains_from_plain_html_and_encoded_text() -> None:
    html = base64.encodebytes(b'<a href="https://Click.Spammy.example/x?u=1">here</a> '
                              b'<img src="http://192.0.2.7/p.gif"> www.other.example').decode()
    raw = message('MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="a"\r\n',
                  "--a\r\nContent-Type: text/plain\r\n\r\nSee https://user@third.example:8080/ and"
                  " https://example.test/ours, not example.net in prose\r\n"
                  f"--a\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n{html}--a--\r\n")
    found = link_domains(raw, parse_message(raw).body, ignore=OURS)
    assert found == ["third.example", "click.spammy.example", "spammy.example", "other.example"]


def test_link_domains_are_bounded() -> None:
    body = " ".join(f"http://host{i}.example/" for i in range(500))
    raw = message(body=body)
    assert len(link_domains(raw, parse_message(raw).body)) == MAX_DOMAINS


def test_weights_from_config_change_the_total(tmp_path: pytest.TempPathFactory) -> None:
    raw = message("Reply-To: x@gmail.com\r\n", dated=False)
    default = score_message(raw, LOCAL, SpamSettings())
    (tmp_path / "postoffice.toml").write_text(  # type: ignore[operator]
        "[spam.weights]\nREPLYTO_FREEMAIL = 6.5\nMISSING_DATE = 0\nMISSING_MESSAGE_ID = -1\n")
    settings = settings_of(load_config(tmp_path).spam)  # type: ignore[arg-type]
    changed = score_message(raw, LOCAL, settings)
    assert default.score == pytest.approx(3.0 + 1.0 + 0.5)
    assert changed.score == pytest.approx(6.5 - 1.0)
    assert "MISSING_DATE" not in changed.names()  # weight 0: off, and not shown
    assert changed.is_junk and not default.is_junk


def test_every_rule_has_a_weight_and_a_reason() -> None:
    assert set(RULES) == set(DEFAULT_WEIGHTS)
    assert all(reason for _, reason in RULES.values())


def test_with_rule_adds_a_per_account_rule_once() -> None:
    score = SpamScore.of([RuleHit("MISSING_DATE", 1.0)], SpamSettings())
    bayes = score.with_rule(RuleHit("BAYES_SPAM", 3.5, "0.99")).with_rule(RuleHit("BAYES_SPAM", 4.5, "0.999"))
    assert bayes.score == 5.5 and bayes.is_junk
    assert bayes.names() == ("MISSING_DATE", "BAYES_SPAM")
    assert score.score == 1.0  # unchanged: scores are values


def test_header_fields_name_every_rule_heaviest_first() -> None:
    score = SpamScore.of([RuleHit("MISSING_DATE", 1.0), RuleHit("EXECUTABLE_ATTACHMENT", 4.0, "a.exe"),
                          RuleHit("DKIM_PASS", -0.5, "sender.example")], SpamSettings())
    assert score.header_fields() == (
        b"X-Spam-Score: 4.5\r\n"
        b"X-Spam-Status: No, score=4.5 junk=5 refuse=15\r\n"
        b"X-Spam-Rules: EXECUTABLE_ATTACHMENT=4.0 (a.exe),\r\n\tMISSING_DATE=1.0,\r\n"
        b"\tDKIM_PASS=-0.5 (sender.example)\r\n")
    assert SpamScore.of([], SpamSettings()).header_fields().endswith(b"X-Spam-Rules: none\r\n")


def test_details_from_the_message_cannot_inject_header_lines() -> None:
    # An RFC 2231 file name may hold any byte, CR and LF included, once decoded.
    raw = message('MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n',
                  "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: application/octet-stream"
                  "\r\nContent-Disposition: attachment; filename*=utf-8''a%0D%0AX-Evil%3A%20yes%0D%0A%28%C3%A9%29.exe"
                  "\r\n\r\nMZ\r\n--b--\r\n")
    score = score_message(raw, LOCAL, SpamSettings())
    fields = score.header_fields()
    assert "EXECUTABLE_ATTACHMENT" in score.names()
    assert fields.count(b"\r\n") == fields.count(b"\r\n\t") + 3  # three fields, folded lines only
    assert b"\nX-Evil" not in fields and b"(a??X-Evil: yes?????.exe)" in fields
    assert fields.isascii()


def test_refusal_text_names_the_score_and_the_heaviest_rules() -> None:
    score = SpamScore.of([RuleHit(f"R{i}", float(i)) for i in range(1, 7)], SpamSettings())
    assert score.is_refused
    assert score.refusal_text() == ("Message refused as spam: score 21.0, refused from 15"
                                    " (R6=6.0, R5=5.0, R4=4.0)")


@pytest.mark.parametrize(("score", "value", "percent"), [
    (-3.0, 1, 0), (0.0, 1, 0), (0.5, 1, 3), (1.0, 2, 7), (5.0, 4, 33), (7.5, 5, 50),
    (14.99, 10, 100), (15.0, 10, 100), (40.0, 10, 100),
])
def test_spamtest_scale(score: float, value: int, percent: int) -> None:
    result = SpamScore(score, (), 5.0, 15.0)
    assert result.spamtest_value() == value
    assert result.spamtest_percent() == percent
    # what a Sieve script's spamtest sees: the Sieve stage hands `percent` to the interpreter
    assert spamtest_value(result.percent, False) == str(value)
    assert spamtest_value(result.percent, True) == str(percent)


def test_forged_spam_fields_are_removed_with_their_continuation_lines() -> None:
    raw = (b"X-Spam-Status: No, score=-5\r\nFrom: a@b.example\r\nx-spam-rules : none,\r\n\tMORE\r\n"
           b"Subject: X-Spam-Score: 1\r\n\r\nX-Spam-Score: in the body stays\r\n")
    assert without_spam_fields(raw) == (b"From: a@b.example\r\nSubject: X-Spam-Score: 1\r\n\r\n"
                                        b"X-Spam-Score: in the body stays\r\n")
    assert without_spam_fields(message()) == message()
