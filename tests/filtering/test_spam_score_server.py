"""The spam score end to end (issue 17, "What it must show"): a real postoffice, smtplib on
port 25, imaplib to read what was filed where. DNS answers NXDOMAIN to everything here
(live_server.quiet_dns): SPF none, no DMARC record, no PTR for the client, as for a small
sender without any of them; tests/filtering/test_spam_score_dns.py uses real zones."""
from __future__ import annotations

import email.utils
import imaplib
import ipaddress
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

ALICE = "alice@example.test"
BOSS = "carol.boss@example.test"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["smtp", "submission", "lmtp", "imap"]).start()
    live.add_user(ALICE)
    live.add_user(BOSS)
    yield live
    live.stop()


def issue_message(sender: str = '"Carol Boss" <carol.boss.office@sender.example>', *, dated: bool = True) -> bytes:
    """The issue's message: Reply-To on a free-mail domain other than From's, a display name
    imitating one of our users (Carol Boss, carol.boss@example.test), an .exe attachment."""
    ids = f"Date: {email.utils.formatdate()}\r\nMessage-ID: {email.utils.make_msgid()}\r\n" if dated else ""
    return (f"From: {sender}\r\nReply-To: carol.boss.private@gmail.com\r\nTo: {ALICE}\r\n"
            f"Subject: Urgent payment\r\n{ids}MIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="sep"\r\n\r\n'
            "--sep\r\nContent-Type: text/plain\r\n\r\nPlease pay the attached invoice today.\r\n"
            '--sep\r\nContent-Type: application/octet-stream; name="invoice.exe"\r\n'
            'Content-Disposition: attachment; filename="invoice.exe"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
            "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA\r\n--sep--\r\n").encode()


def clean_message() -> bytes:
    return (f"From: Bob <bob@sender.example>\r\nTo: {ALICE}\r\nSubject: Lunch\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: {email.utils.make_msgid()}\r\n\r\n"
            "Lunch at noon?\r\n").encode()


def send(server: LiveServer, raw: bytes, sender: str = "bounce@sender.example") -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as client:
        client.ehlo("mx.sender.example")
        assert client.mail(sender)[0] == 250
        assert client.rcpt(ALICE)[0] == 250
        code, text = client.data(raw)
        return code, text.decode()


def headers_in(server: LiveServer, mailbox: str) -> list[dict[str, str]]:
    """The X-Spam fields (unfolded) of every message in ALICE's MAILBOX, read through IMAP."""
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    try:
        imap.login(ALICE, PASSWORD)
        typ, data = imap.select(mailbox, readonly=True)
        assert typ == "OK", (mailbox, data)
        found = []
        for number in range(1, int(data[0] or 0) + 1):
            typ, fetched = imap.fetch(str(number), "(BODY.PEEK[HEADER.FIELDS (X-Spam-Score X-Spam-Status X-Spam-Rules)])")
            assert typ == "OK"
            block = fetched[0][1].decode().replace("\r\n\t", " ").strip()
            found.append(dict(line.split(": ", 1) for line in block.split("\r\n")))
        return found
    finally:
        imap.logout()


def rules(fields: dict[str, str]) -> list[str]:
    return [item.split("=", 1)[0] for item in fields["X-Spam-Rules"].split(", ") if "=" in item]


def test_the_issue_message_lands_in_junk_with_the_rules_named(server: LiveServer) -> None:
    code, _ = send(server, issue_message())
    assert code == 250
    assert headers_in(server, "INBOX") == []
    (stored,) = server.messages(ALICE, "Junk")
    names = [line.split(b":", 1)[0] for line in stored.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
             if line[:1] not in b" \t"]
    assert names[:8] == [b"Return-Path", b"Authentication-Results", b"Received-SPF", b"Received",
                         b"X-Spam-Score", b"X-Spam-Status", b"X-Spam-Rules", b"From"]
    (fields,) = headers_in(server, "Junk")
    assert {"REPLYTO_FREEMAIL", "FROM_NAME_LOCAL_USER", "EXECUTABLE_ATTACHMENT"} <= set(rules(fields))
    assert float(fields["X-Spam-Score"]) >= 5.0
    assert fields["X-Spam-Status"].startswith("Yes, score=")
    assert "(invoice.exe)" in fields["X-Spam-Rules"]
    assert "reply-to gmail.com is free mail, from sender.example" in fields["X-Spam-Rules"]


def test_a_clean_message_is_in_the_inbox_with_a_low_score(server: LiveServer) -> None:
    assert send(server, clean_message())[0] == 250
    (fields,) = headers_in(server, "INBOX")
    assert float(fields["X-Spam-Score"]) < 2.5
    assert fields["X-Spam-Status"].startswith("No, score=")
    # what the quiet DNS leaves: no SPF record, no signature, no DMARC record, no PTR
    assert set(rules(fields)) == {"SPF_NONE", "DKIM_NONE", "DMARC_NONE", "IPREV_FAIL"}


def test_a_big_message_is_scored_too(server: LiveServer) -> None:
    """Above 64 KB the parse and the rules run in a thread (spam_stage.THREAD_BYTES)."""
    filler = ("This is a long letter. " * 40 + "\r\n") * 200  # about 180 KB of text
    raw = issue_message().replace(b"Please pay the attached invoice today.", filler.encode())
    assert len(raw) > 150_000
    assert send(server, raw)[0] == 250
    (fields,) = headers_in(server, "Junk")
    assert "EXECUTABLE_ATTACHMENT" in rules(fields)


def test_a_message_above_the_refuse_threshold_gets_550_at_data(
        server: LiveServer, events: pytest.LogCaptureFixture) -> None:
    # The issue's message from a look-alike of our own domain (exarnple.test), without a Date.
    code, text = send(server, issue_message('"Carol Boss" <carol.boss@exarnple.test>', dated=False))
    assert code == 550
    assert text.startswith("5.7.1 Message refused as spam: score ")
    assert "refused from 15" in text and "EXECUTABLE_ATTACHMENT=4.0 (invoice.exe)" in text
    assert "LOOKALIKE_DOMAIN" in text
    assert server.messages(ALICE) == []  # nothing stored anywhere: the sender was told
    deadline = time.monotonic() + 20
    while not (lines := [r.getMessage() for r in events.records if "smtp transaction" in r.getMessage()]):
        assert time.monotonic() < deadline, "no transaction log line"
        time.sleep(0.05)
    assert "result=550" in lines[0] and " spam=1" in lines[0]


def test_forged_spam_fields_from_the_sender_are_replaced_by_ours(server: LiveServer) -> None:
    forged = b"X-Spam-Status: No, score=-10\r\nX-Spam-Score: -10\r\n" + issue_message()
    assert send(server, forged)[0] == 250
    (stored,) = server.messages(ALICE, "Junk")
    head = stored.split(b"\r\n\r\n", 1)[0]
    assert head.count(b"X-Spam-Status:") == 1 and b"X-Spam-Status: Yes" in head
    assert b"score=-10" not in head


def test_weights_and_thresholds_come_from_config(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", ["smtp", "imap"],
                      spam={"weights": (("EXECUTABLE_ATTACHMENT", 0.0), ("REPLYTO_FREEMAIL", 0.5)),
                            "junk_threshold": 5.5}).start()
    try:
        live.add_user(ALICE)
        live.add_user(BOSS)
        assert send(live, issue_message())[0] == 250
        assert headers_in(live, "Junk") == []
        (fields,) = headers_in(live, "INBOX")
        assert "EXECUTABLE_ATTACHMENT" not in rules(fields)
        assert "REPLYTO_FREEMAIL=0.5" in fields["X-Spam-Rules"]
        assert fields["X-Spam-Status"] == "No, score=4.8 junk=5.5 refuse=15"
    finally:
        live.stop()


SPAMTEST_SCRIPT = """require ["spamtest", "fileinto", "mailbox", "relational", "comparator-i;ascii-numeric"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "7" { fileinto :create "Suspect"; }
"""


def test_sieve_spamtest_sees_the_score(server: LiveServer) -> None:
    """RFC 5235: the issue's message (score about 11 of 15: spamtest 8) is filed by the user's
    script; the clean one (spamtest 2) stays in the INBOX."""
    assert server.services is not None
    store = server.services.store
    account = server.call(server.services.directory.get_user(ALICE))
    assert account is not None
    server.call(store.put_sieve_script(account.id, "spam", SPAMTEST_SCRIPT))
    server.call(store.activate_sieve_script(account.id, "spam"))
    assert send(server, issue_message())[0] == 250
    assert send(server, clean_message())[0] == 250
    (filed,) = headers_in(server, "Suspect")
    assert "EXECUTABLE_ATTACHMENT" in rules(filed)
    assert [fields["X-Spam-Status"][:3] for fields in headers_in(server, "INBOX")] == ["No,"]


def test_submission_is_not_scored(server: LiveServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as client:
        client.ehlo("client.example")
        client.login(BOSS, PASSWORD)
        raw = issue_message(f'"Carol Boss" <{BOSS}>')
        client.sendmail(BOSS, [ALICE], raw)
    (stored,) = server.messages(ALICE)
    assert b"X-Spam-" not in stored.split(b"\r\n\r\n", 1)[0]


def test_lmtp_is_not_scored(server: LiveServer) -> None:
    with smtplib.LMTP("127.0.0.1", server.ports["lmtp"], timeout=30) as client:
        client.sendmail("bounce@sender.example", [ALICE], issue_message())
    (stored,) = server.messages(ALICE)
    assert b"X-Spam-" not in stored.split(b"\r\n\r\n", 1)[0]


def test_mail_through_a_trusted_relay_is_not_scored(tmp_path: Path) -> None:
    """A filtering appliance in [smtp] trusted_networks scored the message itself."""
    live = LiveServer(tmp_path / "data", ["smtp"],
                      smtp={"trusted_networks": (ipaddress.ip_network("127.0.0.0/8"),)}).start()
    try:
        live.add_user(ALICE)
        received = b"Received: from mx.sender.example (mx.sender.example [192.0.2.7]) by filter.example.test\r\n"
        assert send(live, received + issue_message())[0] == 250
        (stored,) = live.messages(ALICE)
        assert b"X-Spam-" not in stored.split(b"\r\n\r\n", 1)[0]
    finally:
        live.stop()


def test_scoring_off_leaves_messages_unscored(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", ["smtp"], spam={"enabled": False}).start()
    try:
        live.add_user(ALICE)
        assert send(live, issue_message())[0] == 250
        (stored,) = live.messages(ALICE)
        assert b"X-Spam-" not in stored.split(b"\r\n\r\n", 1)[0]
    finally:
        live.stop()
