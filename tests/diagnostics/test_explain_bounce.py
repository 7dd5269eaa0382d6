"""`postoffice explain bounce`: real bounces from many kinds of servers (tests/diagnostics/bounces/,
origins and licences in its README) read for their recipients, status codes, refusing servers and
replies, each explained in plain words.

The expected values in SAMPLES were read off each sample by hand (the Final-/Original-Recipient,
Status, Remote-MTA and Diagnostic-Code of the report, or the notice's text), not copied from the
parser's output."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cli_run import po
from postoffice.diagnostics.bounce_explain import explain
from postoffice.diagnostics.bounce_parse import BouncedRecipient, NotABounce, parse_bounce
from postoffice.queue.dsn import DsnRecipient, build_dsn
from postoffice.queue.outcomes import SmtpReply

BOUNCES = Path(__file__).parent / "bounces"

# file: (kind of server that wrote the bounce, [(recipient, status, remote MTA, cause kind)])
SAMPLES: dict[str, tuple[str, list[tuple[str, str, str, str]]]] = {
    # Postfix, text only: "<addr>: host H[ip] said: 550 5.1.1 ..."
    "flufl-postfix-01.eml": ("Postfix", [("xxxxx@local.ie", "5.1.1", "mail.local.ie", "user-unknown")]),
    "flufl-postfix-02.eml": ("Postfix", [("yyyyy@digicool.com", "5.0.0", "", "domain-not-found")]),
    # Postfix with an RFC 3464 report; Status 5.0.0, the reply has no enhanced code
    "flufl-dsn-10.eml": ("Postfix", [("anne.person@dom.ain", "5.0.0", "mx.dom.ain", "user-unknown")]),
    "flufl-dsn-16.eml": ("Postfix", [("userx@example.com", "5.0.0", "mx.pastors.com", "user-unknown")]),
    "sisimai-mimecast-01.eml": ("Postfix (refused by Mimecast)",
                                [("sabatora@example.com", "5.0.0", "us-smtp-inbound-1.mimecast.com", "blocklisted")]),
    "sisimai-yahooinc-01.eml": ("Postfix (refused by Yahoo/AOL)",
                                [("kijitora@aol.example.jp", "5.7.9", "mx-aol.mail.gm0.yahoodns.net",
                                  "spam-or-policy")]),
    # Exim 2/3: "SMTP error from remote mailer after RCPT TO: ... host H [ip]: 553 5.1.1 ..."
    "flufl-exim-01.eml": ("Exim", [("userx@its.example.nl", "5.1.1", "mailhost1.et.example.nl", "user-unknown")]),
    # Exim 4.72: two recipients, each with "host H [ip]: 550 ..." under it
    "sisimai-exim-02.eml": ("Exim", [("kijitora@example.jp", "5.1.1", "mx.example.jp", "user-unknown"),
                                     ("sabatora@example.jp", "5.2.1", "mx.example.jp", "user-unknown")]),
    # qmail and its relatives (GoDaddy, Yahoo's old servers, newmail.ru)
    "flufl-qmail-01.eml": ("qmail", [("userx@example.de", "5.0.0", "", "permanent-failure")]),
    "flufl-qmail-02.eml": ("qmail (GoDaddy)", [("userx@example.com", "5.0.0", "", "mailbox-full")]),
    "flufl-newmailru-01.eml": ("qmail (newmail.ru)", [("zzzzz@newmail.ru", "5.0.0", "", "mailbox-full")]),
    "flufl-yahoo-01.eml": ("Yahoo", [("userx@example.com", "4.4.1", "", "connection-timed-out")]),
    "flufl-yahoo-03.eml": ("Yahoo", [("userx@example.com", "5.0.0", "", "mailbox-disabled")]),
    "flufl-simple-05.eml": ("Yahoo (sbcglobal.net)", [("userx@example.net", "5.0.0", "", "user-unknown")]),
    # Sendmail: text ("had permanent fatal errors", "expanded from") and RFC 3464
    "flufl-sendmail-01.eml": ("Sendmail", [("zzzzz@nfg.nl", "5.0.0", "", "mail-loop")]),
    "flufl-dsn-11.eml": ("Sendmail", [("joem@example.com", "5.1.1", "", "user-unknown")]),
    "flufl-dsn-14.eml": ("Sendmail gateway", [("userx@example.com.dk", "5.1.1", "10.0.0.103", "user-unknown")]),
    # Microsoft Exchange 5.5 (Internet Mail Service), 2000/2003 and 2007
    "flufl-groupwise-01.eml": ("Exchange 5.5", [("userx@example.EDU", "5.0.0", "", "user-unknown")]),
    "flufl-microsoft-01.eml": ("Exchange 5.5 (X.400 address)", [("userx@example.COM", "5.0.0", "", "user-unknown")]),
    "flufl-dsn-13.eml": ("Exchange 2000/2003", [("userx@example.com", "5.1.1", "", "user-unknown")]),
    "sisimai-exchange2007-02.eml": ("Exchange 2007",
                                    [("john.smith@eu.a.b.c", "5.2.3", "", "message-too-large")]),
    # Gmail: text only, the remote reply quoted in a sentence
    "sisimai-google-02.eml": ("Gmail", [("aougoueioaldljgoiuiorghladkgke@example.fr", "5.1.1", "", "user-unknown")]),
    # Lotus Domino
    "sisimai-domino-01.eml": ("Lotus Domino", [("kijitora@example.jp", "5.0.0", "", "user-unknown")]),
    # Netscape Messaging Server: an empty report, two recipients in the text
    "flufl-netscape-01.eml": ("Netscape Messaging Server", [
        ("aaaaa@corel.com", "5.0.0", "", "connection-timed-out"),
        ("bbbbb@corel.com", "5.0.0", "", "connection-timed-out"),
    ]),
    # Sun/iPlanet (go.com), PMDF, NTMail, X.400 gateways, TeamWARE, SMTP32, HotPOP
    "flufl-dsn-01.eml": ("Sun Internet Mail Server", [("userx@example.com", "5.0.0", "", "mailbox-full")]),
    "flufl-dsn-04.eml": ("PMDF", [("userx@example.ch", "5.0.0", "", "permanent-failure")]),
    "flufl-dsn-03.eml": ("NTMail", [("userx@example.be", "5.0.0", "", "message-too-large")]),
    "flufl-dsn-02.eml": ("X.400 gateway (hud.ac.uk)", [("zzzzz@example.uk", "4.4.7", "", "connection-timed-out")]),
    "flufl-dsn-09.eml": ("X.400 gateway (btconnect)", [("userx@example.com", "5.0.0", "", "permanent-failure")]),
    "flufl-dsn-05.eml": ("Delay warning (atlas.cz)", [("userx@example.cz", "4.4.1", "", "connection-timed-out")]),
    "flufl-dsn-12.eml": ("TeamWARE", [("userx@example.jp", "5.1.1", "", "user-unknown")]),
    "flufl-smtp32-01.eml": ("SMTP32 (IMail)", [("userx@example.ph", "5.0.0", "", "permanent-failure")]),
    "flufl-hotpop-01.eml": ("HotPOP", [("userx@example.com", "5.0.0", "", "mailbox-full")]),
}

NOT_BOUNCES = {
    "flufl-qmail-08.eml": "an auto-reply",
    "flufl-groupwise-03.eml": "a reply from a person, with attachments",
}


def _entries(name: str) -> list[BouncedRecipient]:
    return parse_bounce((BOUNCES / name).read_bytes())


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_real_bounce_gives_recipient_status_and_server(name: str) -> None:
    _, expected = SAMPLES[name]
    found = [(e.recipient, e.status, e.remote_mta) for e in _entries(name)]
    assert found == [(recipient, status, remote) for recipient, status, remote, _ in expected]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_real_bounce_is_explained(name: str) -> None:
    _, expected = SAMPLES[name]
    assert [explain(e).kind for e in _entries(name)] == [kind for *_, kind in expected]


def test_samples_cover_25_bounces_from_8_kinds_of_server() -> None:
    files = {p.name for p in BOUNCES.glob("*.eml")}
    assert set(SAMPLES) | set(NOT_BOUNCES) <= files
    assert len(SAMPLES) >= 25
    kinds = {kind.split(" (")[0] for kind, _ in SAMPLES.values()}
    assert len(kinds) >= 8, kinds
    readme = (BOUNCES / "README.md").read_text()
    assert all(name in readme for name in files), "every sample's origin and licence is in the README"


def test_replies_are_the_servers_words() -> None:
    [postfix] = _entries("flufl-postfix-01.eml")
    assert postfix.reply == "550 5.1.1 <xxxxx@local.ie>... User unknown"
    [exim] = _entries("flufl-exim-01.eml")
    assert exim.reply == "553 5.1.1 unknown or illegal user: userx@its.example.nl"
    [gmail] = _entries("sisimai-google-02.eml")
    assert gmail.reply == "550 550 5.1.1 user unknown (UserSearch) (state 14)."
    [exchange] = _entries("sisimai-exchange2007-02.eml")
    assert exchange.reply == "550 5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient"
    [sendmail] = _entries("flufl-dsn-11.eml")  # no Diagnostic-Code: the transcript's reply
    assert sendmail.reply == "550 <joem@example.com>... User unknown"
    [delayed] = _entries("flufl-dsn-05.eml")
    assert delayed.action == "delayed"


@pytest.mark.parametrize("name", sorted(NOT_BOUNCES))
def test_a_message_that_is_no_bounce_says_so(name: str) -> None:
    with pytest.raises(NotABounce):
        _entries(name)


def _report(action: str, recipient_field: str = "rfc822; bob@example.org", kind: str = "delivery-status",
            extra: str = "") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.net\r\nSubject: Delivery Status Notification\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nA report.\r\n"
        f"--b\r\nContent-Type: message/{kind}\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: {recipient_field}\r\nAction: {action}\r\nStatus: 2.0.0\r\n{extra}\r\n"
        "--b--\r\n"
    ).encode()


def test_a_bounce_forwarded_as_an_attachment_is_read() -> None:
    bounce = (BOUNCES / "flufl-postfix-01.eml").read_bytes()
    forwarded = (b"From: alice@example.com\r\nTo: postmaster@example.com\r\nSubject: Fwd: what is this?\r\n"
                 b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="f"\r\n\r\n'
                 b"--f\r\nContent-Type: text/plain\r\n\r\nMy mail to xxxxx came back.\r\n"
                 b"--f\r\nContent-Type: message/rfc822\r\n\r\n" + bounce + b"\r\n--f--\r\n")
    [entry] = parse_bounce(forwarded)
    assert (entry.recipient, entry.status, entry.remote_mta) == ("xxxxx@local.ie", "5.1.1", "mail.local.ie")


def test_a_success_notice_is_no_bounce() -> None:
    with pytest.raises(NotABounce, match="delivered"):
        parse_bounce(_report("delivered"))


def test_global_delivery_status_with_a_utf8_address() -> None:
    """RFC 6533: message/global-delivery-status, utf-8 address type with \\x{..} escapes."""
    raw = _report("failed", "utf-8; j\\x{F6}rg@b\\x{FC}cher.example",
                  "global-delivery-status",
                  "Remote-MTA: dns; mx.b\u00fccher.example\r\nDiagnostic-Code: smtp; 550 5.1.1 No such user\r\n")
    [entry] = parse_bounce(raw.replace(b"Status: 2.0.0", b"Status: 5.1.1"))
    assert (entry.recipient, entry.status, entry.remote_mta) == ("j\u00f6rg@b\u00fccher.example", "5.1.1",
                                                                 "mx.b\u00fccher.example")
    assert entry.reply == "550 5.1.1 No such user"


def test_postoffices_own_bounce_is_read_back() -> None:
    """The DSN our queue sends (queue/dsn.py) gives back what went into it."""
    original = b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
    notices = [
        DsnRecipient("bob@example.org", "failed", "5.1.1", reply=SmtpReply(550, "5.1.1", "no such user here"),
                     remote_mta="mx.example.org"),
        DsnRecipient("carol@example.org", "failed", "5.2.2", reply=SmtpReply(552, "5.2.2", "mailbox full"),
                     remote_mta="mx.example.org"),
    ]
    raw = build_dsn(reporting_mta="mail.example.com", original=original, recipients=notices, ret=None,
                    envid=None, arrival=time.time(), sender_note="alice@example.com")
    entries = parse_bounce(raw)
    assert [(e.recipient, e.status, e.remote_mta, e.reply) for e in entries] == [
        ("bob@example.org", "5.1.1", "mx.example.org", "550 5.1.1 no such user here"),
        ("carol@example.org", "5.2.2", "mx.example.org", "552 5.2.2 mailbox full"),
    ]
    assert [explain(e).kind for e in entries] == ["user-unknown", "mailbox-full"]


# Replies as the big receivers word them (their postmaster pages and real bounces), one per cause
# the issue names; the reply decides before the status code.
EXPLAINED = [
    ("550 Verification failed for <noreply@example.com> 550-Called: 192.0.2.25 550-Sent: RCPT TO:"
     "<noreply@example.com> 550-Response: 550 5.1.1 user unknown 550 Sender verify failed", "5.1.1",
     "sender-verification-failed"),
    ("550 5.1.1 The email account that you tried to reach does not exist.", "5.1.1", "user-unknown"),
    ("452 4.2.2 The email account that you tried to reach is over quota.", "4.2.2", "mailbox-full"),
    ("554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", "5.7.1",
     "blocklisted"),
    ("550 5.7.23 The message was rejected because of Sender Policy Framework violation", "5.7.23", "spf-fail"),
    ("550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy.",
     "5.7.26", "dmarc-reject"),
    ("550 5.7.20 No passing DKIM signature found", "5.7.20", "dkim-fail"),
    ("530 5.7.0 Must issue a STARTTLS command first.", "5.7.0", "tls-required"),
    ("552 5.3.4 Message size exceeds fixed limit", "5.3.4", "message-too-large"),
    ("451 4.7.1 Greylisting in action, please come back later", "4.7.1", "greylisted"),
    ("454 4.7.1 <bob@example.org>: Relay access denied", "4.7.1", "relay-denied"),
    ("421 4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP "
     "address.", "4.7.28", "rate-limited"),
    ("Host or domain name not found. Name service error for name=example.invalid type=MX: Host not found",
     "5.4.4", "domain-not-found"),
    ("connect to mx.example.org[192.0.2.9]:25: Connection timed out", "4.4.1", "connection-timed-out"),
    ("", "5.7.1", "spam-or-policy"),
    ("", "4.3.0", "temporary-failure"),
]


@pytest.mark.parametrize(("reply", "status", "kind"), EXPLAINED)
def test_common_causes_are_explained(reply: str, status: str, kind: str) -> None:
    explanation = explain(BouncedRecipient("bob@example.org", status, "", reply, "failed"))
    assert explanation.kind == kind
    assert explanation.cause.endswith(".") and explanation.fix.endswith(".")


def test_cli_prints_one_paragraph_per_recipient() -> None:
    result = po("explain", "bounce", str(BOUNCES / "flufl-netscape-01.eml"))
    paragraphs = result.stdout.strip().split("\n\n")
    assert [p.split(":", 1)[0] for p in paragraphs] == ["aaaaa@corel.com", "bbbbb@corel.com"]
    assert all("Cause:" in p and "Fix:" in p for p in paragraphs)


def test_cli_json_is_a_list_with_the_documented_keys() -> None:
    result = po("explain", "bounce", str(BOUNCES / "flufl-postfix-01.eml"), "--json")
    [entry] = json.loads(result.stdout)
    assert list(entry) == ["recipient", "status", "remote_mta", "reply", "cause", "fix"]
    assert (entry["recipient"], entry["status"], entry["remote_mta"]) == ("xxxxx@local.ie", "5.1.1", "mail.local.ie")
    assert "does not exist" in entry["cause"]


def test_cli_on_a_message_that_is_no_bounce_exits_1_with_one_sentence(tmp_path: Path) -> None:
    result = po("explain", "bounce", str(BOUNCES / "flufl-qmail-08.eml"), check=False)
    assert result.returncode == 1
    assert "not a bounce" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    missing = po("explain", "bounce", str(tmp_path / "missing.eml"), check=False)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_broken_and_truncated_input_is_no_bounce_or_a_bounce_never_a_crash() -> None:
    """Every sample cut short at many points, and bytes that are no message at all: parse_bounce
    returns recipients or raises NotABounce, nothing else (the CLI's one sentence)."""
    samples = [p.read_bytes() for p in sorted(BOUNCES.glob("*.eml"))]
    cases = [b"", b"\r\n", b"\x00\xff" * 50, b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\n"
             b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: ;\r\nAction:\r\n--x"]
    for raw in samples:
        cases += [raw[:cut] for cut in range(0, len(raw), max(1, len(raw) // 40))]
    for raw in cases:
        try:
            entries = parse_bounce(raw)
        except NotABounce:
            continue
        assert all(e.recipient and e.status for e in entries)
