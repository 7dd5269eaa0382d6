"""RFC 3464 reports as built by queue/dsn.py, parsed back with the stdlib email package, beside
real DSNs from the corpora."""
from __future__ import annotations

import email
import email.policy
from email.message import Message
from pathlib import Path

import pytest

from postoffice.queue.dsn import FULL_RETURN_LIMIT, DsnRecipient, build_dsn, wants_notice
from postoffice.queue.outcomes import SmtpReply

ORIGINAL = b"From: <alice@example.org>\r\nTo: <bob@example.net>\r\nSubject: lunch\r\n\r\nSee you at noon.\r\n"
BOUNCE = DsnRecipient("bob@example.net", "failed", "5.1.1", original="rfc822;Bob@example.net",
                      reply=SmtpReply(550, "5.1.1", "<bob@example.net>: Recipient address rejected"),
                      remote_mta="mx.example.net", last_attempt=1_700_000_100.0)


def build(original: bytes = ORIGINAL, recipients: list[DsnRecipient] | None = None, ret: str | None = None) -> Message:
    raw = build_dsn(reporting_mta="mail.example.org", original=original, recipients=recipients or [BOUNCE],
                    ret=ret, envid="QQ314159", arrival=1_700_000_000.0, now=1_700_000_200.0,
                    sender_note="alice@example.org")
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def groups(report: Message) -> list[Message]:
    (status,) = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
    return status.get_payload()  # type: ignore[return-value]


def test_a_bounce_has_the_three_parts_and_every_field_parsed_back() -> None:
    report = build()
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["From"] == "Mail Delivery System <MAILER-DAEMON@mail.example.org>"
    assert report["To"] == "<alice@example.org>"
    assert report["Auto-Submitted"] == "auto-replied" and report["Message-ID"] and report["Date"]
    text, _status, original = report.get_payload()  # type: ignore[misc]
    assert text.get_content_type() == "text/plain"
    words = text.get_payload(decode=True).decode()
    assert "The server mx.example.net said the address does not exist (550 5.1.1)" in words
    assert "Check the address for typing mistakes" in words
    per_message, per_rcpt = groups(report)
    assert per_message["Reporting-MTA"] == "dns; mail.example.org"
    assert per_message["Original-Envelope-Id"] == "QQ314159"
    assert per_message["Arrival-Date"] == "Tue, 14 Nov 2023 22:13:20 -0000"
    assert per_rcpt["Original-Recipient"] == "rfc822;Bob@example.net"
    assert per_rcpt["Final-Recipient"] == "rfc822; bob@example.net"
    assert per_rcpt["Action"] == "failed" and per_rcpt["Status"] == "5.1.1"
    assert per_rcpt["Remote-MTA"] == "dns; mx.example.net"
    assert per_rcpt["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected"
    assert per_rcpt["Last-Attempt-Date"]
    assert original.get_content_type() == "message/rfc822"
    assert original.get_payload()[0]["Subject"] == "lunch"  # type: ignore[index]


@pytest.mark.parametrize(("ret", "size", "returned"), [
    (None, 100, "message/rfc822"),
    (None, FULL_RETURN_LIMIT + 1, "text/rfc822-headers"),
    ("HDRS", 100, "text/rfc822-headers"),
    ("FULL", FULL_RETURN_LIMIT * 3, "message/rfc822"),
])
def test_ret_and_size_decide_whether_the_whole_original_comes_back(ret: str | None, size: int, returned: str) -> None:
    original = ORIGINAL + b"x" * size + b"\r\n"
    part = build(original, ret=ret).get_payload()[2]  # type: ignore[index]
    assert part.get_content_type() == returned
    if returned == "text/rfc822-headers":
        assert b"x" * 100 not in part.as_bytes() and b"Subject: lunch" in part.as_bytes()


def test_delay_and_success_notices_carry_only_the_header() -> None:
    delayed = DsnRecipient("bob@example.net", "delayed", "4.4.1", reason="connection refused by mx.example.net",
                           will_retry_until=1_700_400_000.0)
    report = build(recipients=[delayed], ret="FULL")
    assert report["Subject"] == "Delayed Mail (still being retried)"
    assert report.get_payload()[2].get_content_type() == "text/rfc822-headers"  # type: ignore[index]
    (per_rcpt,) = groups(report)[1:]
    assert per_rcpt["Action"] == "delayed" and per_rcpt["Will-Retry-Until"]
    assert per_rcpt["Diagnostic-Code"] == "X-Postoffice; connection refused by mx.example.net"
    assert "Nothing needs doing now" in report.get_payload()[0].get_payload(decode=True).decode()  # type: ignore[index]


def test_a_peer_reply_with_line_breaks_cannot_add_fields() -> None:
    hostile = DsnRecipient("bob@example.net", "failed", "5.0.0",
                           reply=SmtpReply(554, "", "no\r\nAction: delivered\r\nStatus: 2.0.0"))
    (per_rcpt,) = groups(build(recipients=[hostile]))[1:]
    assert per_rcpt["Action"] == "failed" and per_rcpt["Status"] == "5.0.0"
    assert per_rcpt["Diagnostic-Code"].startswith("smtp; 554 no")


@pytest.mark.parametrize(("notify", "action", "wanted"), [
    ((), "failed", True), ((), "delayed", True), ((), "delivered", False),
    (("NEVER",), "failed", False), (("NEVER",), "delayed", False),
    (("SUCCESS",), "delivered", True), (("SUCCESS",), "failed", False),
    (("FAILURE",), "delayed", False), (("FAILURE", "DELAY"), "delayed", True),
    (("success", "failure"), "relayed", True),
])
def test_notify_decides_which_notices_are_sent(notify: tuple[str, ...], action: str, wanted: bool) -> None:
    assert wants_notice(notify, action) is wanted  # type: ignore[arg-type]


def test_ours_read_like_the_real_dsns_of_the_corpus(corpora: Path) -> None:
    """The same view a mail program gets of the corpus's DSNs: a multipart/report of
    delivery-status whose second part parses into a per-message group (Reporting-MTA) and
    per-recipient groups (Final-Recipient, Action, Status)."""
    samples = sorted((corpora / "mime-enmime" / "dsn").glob("*.raw"))
    assert samples
    checked = 0
    for sample in samples:
        theirs = email.message_from_bytes(sample.read_bytes(), policy=email.policy.compat32)
        if theirs.get_content_type() != "multipart/report":
            continue
        checked += 1
        their_groups = groups(theirs)
        for report in (theirs, build()):
            assert report.get_param("report-type") == "delivery-status"
            per_message, *per_rcpt = groups(report)
            assert per_message["Reporting-MTA"].lower().startswith("dns;")
            for g in per_rcpt:
                assert g["Final-Recipient"] and g["Action"] and g["Status"]
        assert len(their_groups) >= 2
    assert checked >= 3
