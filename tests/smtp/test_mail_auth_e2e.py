"""Mail authentication on port 25, end to end (issue 14): a real postoffice, stdlib SMTP and IMAP
clients from loopback addresses, and the real DNS servers of tests/dns_server.py (NSD behind
Unbound) serving tests/zones/sender.test.zone, with DKIM keys made for this run.

Clients: 127.0.0.10 (PTR host.example.test, forward-confirmed: iprev pass; in the SPF record of
good.sender.test) and 127.0.0.2 (listed in the test blocklist dnsbl.test)."""
from __future__ import annotations

import base64
import email.utils
import imaplib
import ipaddress
import smtplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dns_server import ZONES, DnsServers
from live_server import PASSWORD, LiveServer
from postoffice import logevents
from postoffice.mailauth.dkim import sign_message
from postoffice.mailauth.dkim_crypto import SigningKey, load_signing_key
from postoffice.store.interface import AccessEntry

ALICE = "alice@example.test"
AUTHSERV_ID = "mail.example.test"  # live_server's host name
GOOD, LISTED = "127.0.0.10", "127.0.0.2"
SELECTOR = "e2e"


@pytest.fixture(scope="module")
def dkim_key(dns_server: DnsServers) -> SigningKey:
    """An RSA-2048 key for good.sender.test, published in the zone for this run."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    record = " ".join(f'"{part}"' for part in ["v=DKIM1; k=rsa; p=", *(public[i:i + 200] for i in range(0, len(public), 200))])
    zone = "\n".join(line for line in (ZONES / "sender.test.zone").read_text().splitlines()
                     if not line.startswith(("$ORIGIN", "$TTL")))
    dns_server.add_zone("sender.test", f"{zone}\n{SELECTOR}._domainkey.good TXT {record}\n")
    return load_signing_key(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def start(tmp_path: Path, dns_server: DnsServers, **overrides: dict[str, object]) -> LiveServer:
    dns = {"nameservers": (dns_server.address,), "timeout": 1.0} | overrides.pop("dns", {})
    live = LiveServer(tmp_path / "data", ["smtp", "submission", "lmtp", "imap"], dns=dns,
                      limits={"max_connections_per_ip": 1000}, **overrides).start()
    live.add_user(ALICE)
    return live


@pytest.fixture
def server(tmp_path: Path, dns_server: DnsServers, dkim_key: SigningKey) -> Iterator[LiveServer]:
    live = start(tmp_path, dns_server)
    yield live
    live.stop()


def message(author: str, subject: str = "Your statement", body: bytes = b"Hello Alice.\r\n") -> bytes:
    return (f"From: {author}\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: {email.utils.make_msgid()}\r\n\r\n").encode() + body


def signed(raw: bytes, key: SigningKey, domain: str = "good.sender.test") -> bytes:
    return sign_message(raw, domain, SELECTOR, key) + raw


def send(server: LiveServer, raw: bytes, mail_from: str = "news@good.sender.test", *, ip: str = GOOD,
         helo: str = "host.example.test") -> tuple[int, str]:
    """One transaction on port 25 from `ip`; the reply to the data."""
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname=helo, timeout=30,
                      source_address=(ip, 0)) as client:
        client.ehlo()
        assert client.mail(mail_from)[0] == 250
        assert client.rcpt(ALICE)[0] == 250
        code, text = client.data(raw)
        return code, text.decode()


def header_fields(stored: bytes, name: str) -> list[str]:
    """The unfolded values of every `name` field of a stored message."""
    head = stored.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = head.replace("\r\n\t", " ").replace("\r\n ", " ")
    return [line.split(":", 1)[1].strip() for line in unfolded.split("\r\n")
            if line.split(":", 1)[0].strip().lower() == name.lower()]


def our_results(stored: bytes) -> str:
    (ours,) = [v for v in header_fields(stored, "Authentication-Results") if v.startswith(AUTHSERV_ID + ";")]
    return ours


def transaction_lines(caplog: pytest.LogCaptureFixture, count: int = 1, timeout: float = 20) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        found = [rec.args[0].fields for rec in caplog.records
                 if isinstance(rec.args, tuple) and rec.args and isinstance(rec.args[0], logevents.Event)
                 and rec.args[0].name == "smtp transaction"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# --- the verdicts ---------------------------------------------------------------------------------

def test_a_signed_message_from_an_address_in_spf_passes_spf_dkim_and_dmarc(
        server: LiveServer, dkim_key: SigningKey, events: pytest.LogCaptureFixture) -> None:
    code, _ = send(server, signed(message("News <news@good.sender.test>"), dkim_key))
    assert code == 250
    (stored,) = server.messages(ALICE)
    results = our_results(stored)
    assert "spf=pass smtp.mailfrom=news@good.sender.test" in results
    assert "dkim=pass header.d=good.sender.test" in results and f"header.s={SELECTOR}" in results
    assert "dmarc=pass (p=REJECT dis=NONE) header.from=good.sender.test" in results
    assert "iprev=pass (host.example.test) policy.iprev=127.0.0.10" in results
    assert "arc=none" in results
    (received_spf,) = header_fields(stored, "Received-SPF")
    assert received_spf.startswith("pass") and "client-ip=127.0.0.10" in received_spf
    # RFC 8601 §5 and RFC 7208 §9.1: above this hop's Received field
    names = [line.split(b":", 1)[0] for line in stored.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if line[:1] not in b" \t"]
    assert names[:4] == [b"Return-Path", b"Authentication-Results", b"Received-SPF", b"Received"]
    # folded as clients would fold them (getmail and others refold longer lines)
    ours = stored.split(b"\r\nReceived: ")[0].split(b"\r\n")[1:]
    assert len(ours) > 4 and all(len(line) <= 78 for line in ours), ours
    (line,) = transaction_lines(events)
    assert {k: line[k] for k in ("ip", "from", "spf", "dkim", "dmarc", "arc", "iprev", "dnsbl", "action", "result")} == {
        "ip": GOOD, "from": "news@good.sender.test", "spf": "pass", "dkim": "pass:good.sender.test",
        "dmarc": "pass:good.sender.test", "arc": "none", "iprev": "pass", "dnsbl": "none", "action": "deliver",
        "result": "250"}
    assert line["name"] == "host.example.test"


def test_the_same_message_altered_in_transit_fails_dkim(server: LiveServer, dkim_key: SigningKey) -> None:
    raw = signed(message("News <news@good.sender.test>", body=b"Pay 10 EUR.\r\n"), dkim_key)
    code, _ = send(server, raw.replace(b"Pay 10 EUR.", b"Pay 9999 EUR."))
    assert code == 250  # SPF passes and aligns: DMARC passes all the same
    results = our_results(server.messages(ALICE)[0])
    assert "dkim=fail (the body hash did not verify) header.d=good.sender.test" in results
    assert "dmarc=pass" in results and "spf=pass" in results


def test_a_forged_from_of_a_reject_domain_is_refused_with_550_5_7_1(
        server: LiveServer, dkim_key: SigningKey, events: pytest.LogCaptureFixture) -> None:
    # Sent from an address SPF allows for the envelope's domain, which does not align with From.
    code, text = send(server, signed(message("Security <security@reject.sender.test>"), dkim_key))
    assert (code, text) == (550, "5.7.1 Message rejected: reject.sender.test publishes a DMARC policy of"
                                 " reject and this message failed SPF and DKIM alignment")
    assert server.messages(ALICE) == [] and server.messages(ALICE, "Junk") == []
    (line,) = transaction_lines(events)
    assert (line["dmarc"], line["action"], line["result"]) == ("fail:reject.sender.test", "reject", "550")
    # what an aggregate report to reject.sender.test will say about it
    assert server.services is not None
    (seen,) = server.call(server.services.store.dmarc_evaluations())
    assert (seen.source_ip, seen.header_from, seen.envelope_from, seen.dmarc, seen.disposition, seen.policy,
            seen.spf, seen.spf_domain, seen.spf_aligned) == (
        GOOD, "reject.sender.test", "good.sender.test", "fail", "reject", "reject", "pass", "good.sender.test", False)


def test_a_forged_from_of_a_quarantine_domain_lands_in_junk(server: LiveServer, dkim_key: SigningKey) -> None:
    code, _ = send(server, message("Billing <billing@quarantine.sender.test>", subject="Invoice overdue"))
    assert code == 250
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    try:
        imap.login(ALICE, PASSWORD)
        assert imap.select("INBOX")[1] == [b"0"]
        assert imap.select("Junk")[1] == [b"1"]
        typ, data = imap.fetch("1", "(BODY.PEEK[HEADER])")
        assert typ == "OK"
        header = data[0][1]
        assert b"Subject: Invoice overdue" in header
        assert b"dmarc=fail (p=QUARANTINE dis=QUARANTINE" in header
    finally:
        imap.logout()


def test_a_junk_mailbox_that_was_deleted_is_made_again_for_quarantined_mail(server: LiveServer) -> None:
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    try:
        imap.login(ALICE, PASSWORD)
        assert imap.delete("Junk")[0] == "OK"
        assert send(server, message("Billing <billing@quarantine.sender.test>"))[0] == 250
        typ, listed = imap.list('""', "Junk")
        assert typ == "OK" and listed[0] is not None and b"\\Junk" in listed[0]
        assert imap.select("Junk")[1] == [b"1"]
    finally:
        imap.logout()


def test_a_dns_timeout_gives_temperror_and_451_never_a_verdict(
        server: LiveServer, dkim_key: SigningKey, events: pytest.LogCaptureFixture) -> None:
    """The From domain's DMARC record cannot be fetched (nothing under timeout.test answers):
    SPF and DKIM pass for another domain, so only its policy could say; 451, to try again."""
    raw = signed(message("Alerts <alerts@bank.timeout.test>"), dkim_key)
    started = time.monotonic()
    code, text = send(server, raw)
    assert (code, text) == (451, "4.7.0 Temporary DNS failure checking its DMARC policy for bank.timeout.test,"
                                 " try again later")
    assert time.monotonic() - started < 20  # [dns] timeout is 1 s here
    assert server.messages(ALICE) == []
    (line,) = transaction_lines(events)
    assert (line["spf"], line["dkim"], line["dmarc"], line["action"], line["result"]) == (
        "pass", "pass:good.sender.test", "temperror:bank.timeout.test", "defer", "451")
    assert server.services is not None
    assert server.call(server.services.store.dmarc_evaluations()) == []  # it is judged when it comes again


def test_an_spf_timeout_is_temperror_in_the_header_when_dkim_decides(
        server: LiveServer, dkim_key: SigningKey) -> None:
    code, _ = send(server, signed(message("News <news@good.sender.test>"), dkim_key),
                   mail_from="bounces@mail.timeout.test")
    assert code == 250  # DKIM passes and aligns: the SPF trouble cannot change the verdict
    results = our_results(server.messages(ALICE)[0])
    assert "spf=temperror" in results and "smtp.mailfrom=bounces@mail.timeout.test" in results
    assert "dkim=pass" in results and "dmarc=pass" in results


# --- headers --------------------------------------------------------------------------------------

def test_incoming_authentication_results_claiming_our_name_are_removed(server: LiveServer) -> None:
    forged = (b"Authentication-Results: mail.example.test; dkim=pass header.d=paypal.com; dmarc=pass\r\n"
              b"Authentication-Results: (trust me)\r\n MAIL.Example.Test; spf=pass smtp.mailfrom=paypal.com\r\n"
              b"Authentication-Results: mx.other.example; spf=fail smtp.mailfrom=x@paypal.com\r\n")
    code, _ = send(server, forged + message("PayPal <service@paypal.com>"))
    assert code == 250
    (stored,) = server.messages(ALICE)
    fields = header_fields(stored, "Authentication-Results")
    assert len(fields) == 2
    assert fields[0].startswith(AUTHSERV_ID + ";") and "paypal.com; dmarc" not in fields[0]
    assert fields[1] == "mx.other.example; spf=fail smtp.mailfrom=x@paypal.com"
    assert b"header.d=paypal.com" not in stored


def test_submission_and_lmtp_mail_is_not_judged(server: LiveServer) -> None:
    raw = message(f"Alice <{ALICE}>")
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as client:
        client.login(ALICE, PASSWORD)
        assert client.sendmail(ALICE, [ALICE], raw) == {}
    with smtplib.LMTP("127.0.0.1", server.ports["lmtp"], timeout=30) as client:
        assert client.sendmail("news@reject.sender.test", [ALICE], message("x <x@reject.sender.test>")) == {}
    stored = server.messages(ALICE)
    assert len(stored) == 2
    for copy in stored:
        assert header_fields(copy, "Authentication-Results") == [] and header_fields(copy, "Received-SPF") == []


# --- blocklists and trusted relays -------------------------------------------------------------------

def greeting(server: LiveServer, ip: str) -> bytes:
    with socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=30, source_address=(ip, 0)) as sock:
        sock.settimeout(30)
        return sock.makefile("rb").readline()


def test_a_dnsbl_listed_client_is_refused_at_connect(
        tmp_path: Path, dns_server: DnsServers, dkim_key: SigningKey, events: pytest.LogCaptureFixture) -> None:
    live = start(tmp_path, dns_server, dns={"blocklists": ("dnsbl.test",)})
    try:
        assert greeting(live, LISTED) == (b"554 5.7.1 Service unavailable; client [127.0.0.2] is listed by dnsbl.test:"
                                          b" 127.0.0.2 is listed: see https://dnsbl.test/?127.0.0.2\r\n")
        assert greeting(live, GOOD).startswith(b"220 ")
        code, _ = send(live, signed(message("News <news@good.sender.test>"), dkim_key))
        assert code == 250
    finally:
        live.stop()
    refused = [rec.args[0].fields for rec in events.records if isinstance(rec.args, tuple) and rec.args
               and isinstance(rec.args[0], logevents.Event) and rec.args[0].name == "smtp blocked"]
    assert [(r["ip"], r["stage"], r["entry"]) for r in refused] == [(LISTED, "connect", "dnsbl dnsbl.test")]
    (line,) = transaction_lines(events)
    assert line["dnsbl"] == "none"


def test_an_allow_listed_client_passes_despite_a_dnsbl_listing(
        tmp_path: Path, dns_server: DnsServers, dkim_key: SigningKey, events: pytest.LogCaptureFixture) -> None:
    live = start(tmp_path, dns_server, dns={"blocklists": ("dnsbl.test",)})
    try:
        assert live.services is not None
        live.call(live.services.store.add_access_entry(AccessEntry("allow", "ip", LISTED, "our partner's relay")))
        assert greeting(live, LISTED).startswith(b"220 ")
        assert send(live, signed(message("News <news@good.sender.test>"), dkim_key), ip=LISTED)[0] == 250
    finally:
        live.stop()
    (line,) = transaction_lines(events)
    assert (line["ip"], line["dnsbl"], line["dmarc"]) == (LISTED, "allowed", "pass:good.sender.test")


def test_a_trusted_relay_is_judged_by_the_client_its_received_field_names(
        tmp_path: Path, dns_server: DnsServers, dkim_key: SigningKey) -> None:
    live = start(tmp_path, dns_server, smtp={"trusted_networks": (ipaddress.ip_network("127.0.0.1/32"),)})
    try:
        relayed = (b"Received: from host.example.test (host.example.test [127.0.0.10])\r\n"
                   b"\tby filter.example.test (Postfix) with ESMTP id 4Abc; Mon, 7 Dec 2026 10:00:00 +0000\r\n"
                   + message("News <news@good.sender.test>"))
        assert send(live, relayed, ip="127.0.0.1", helo="filter.example.test")[0] == 250
        assert send(live, message("News <news@good.sender.test>"), ip="127.0.0.3")[0] == 550
        results = our_results(live.messages(ALICE)[0])
        assert "iprev=pass (host.example.test) policy.iprev=127.0.0.10" in results
        assert "spf=pass smtp.mailfrom=news@good.sender.test" in results and "dmarc=pass" in results
    finally:
        live.stop()
