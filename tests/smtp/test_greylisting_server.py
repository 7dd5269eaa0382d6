"""Greylisting (RFC 6647) on a live server's port 25, over real sockets: off by default; first
try and an early retry get 451 4.7.1, a retry after the delay passes and the triplet is then
remembered; authenticated submission, allow-listed clients and unknown users are not greylisted."""
from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dns_server import DnsServers
from live_server import PASSWORD, LiveServer
from postoffice.store.interface import AccessEntry
from smtp_client import RawSmtp

MESSAGE = b"From: <x@remote.example>\r\nTo: <bob@example.test>\r\nSubject: hi\r\n\r\nHello.\r\n"
DELAY = 1.5


@pytest.fixture
def greylisting(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["smtp", "submission"],
                      limits={"max_connections_per_ip": 1000},
                      greylist={"enabled": True, "delay": DELAY}).start()
    live.add_user("alice@example.test")
    live.add_user("bob@example.test")
    yield live
    live.stop()


def submit(server: LiveServer) -> smtplib.SMTP:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    client = smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=10)
    client.starttls(context=context)
    return client


def rcpt(server: LiveServer, sender: str = "x@remote.example", to: str = "bob@example.test") -> tuple[int, str]:
    """One transaction up to RCPT on a new connection; the RCPT reply."""
    raw = RawSmtp(server.ports["smtp"])
    try:
        assert raw.cmd("EHLO client.remote.example")[0] == 250
        assert raw.cmd(f"MAIL FROM:<{sender}>")[0] == 250
        return raw.cmd(f"RCPT TO:<{to}>")
    finally:
        raw.close()


def send(server: LiveServer, sender: str = "x@remote.example") -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as client:
        return client.sendmail(sender, ["bob@example.test"], MESSAGE)


def test_greylisting_is_off_by_default(server: LiveServer) -> None:
    assert server.services is not None and not server.services.config.greylist.enabled
    assert send(server) == {}
    assert len(server.messages("bob@example.test")) == 1


def test_first_try_and_early_retry_get_451_then_a_retry_after_the_delay_passes(greylisting: LiveServer) -> None:
    code, text = rcpt(greylisting)
    assert code == 451, text
    assert text.startswith("451 4.7.1 Greylisted") and "try again in 2 seconds" in text
    assert rcpt(greylisting)[0] == 451  # too early: still greylisted
    with pytest.raises(smtplib.SMTPRecipientsRefused):  # smtplib sees the 451 too
        send(greylisting)
    assert greylisting.messages("bob@example.test") == []
    time.sleep(DELAY + 0.5)
    assert send(greylisting) == {}  # the retry after the delay passes...
    assert send(greylisting) == {}  # ... and the triplet is remembered: no new delay
    assert len(greylisting.messages("bob@example.test")) == 2
    # Another sender from the same network is a new triplet; VERP-style numbers are not.
    assert rcpt(greylisting, sender="y@remote.example")[0] == 451
    assert rcpt(greylisting, to="alice@example.test")[0] == 451


def test_verp_senders_are_one_triplet(greylisting: LiveServer) -> None:
    assert rcpt(greylisting, sender="bounce-1234@list.example")[0] == 451
    time.sleep(DELAY + 0.5)
    assert rcpt(greylisting, sender="bounce-98765@list.example")[0] == 250


def test_unknown_user_gets_550_not_451(greylisting: LiveServer) -> None:
    code, text = rcpt(greylisting, to="nobody@example.test")
    assert code == 550 and "5.1.1" in text


def test_authenticated_submission_is_never_greylisted(greylisting: LiveServer) -> None:
    with submit(greylisting) as client:
        client.login("alice@example.test", PASSWORD)
        mine = MESSAGE.replace(b"x@remote.example", b"alice@example.test")
        assert client.sendmail("alice@example.test", ["bob@example.test"], mine) == {}
    assert len(greylisting.messages("bob@example.test")) == 1


def test_allow_listed_client_is_never_greylisted(greylisting: LiveServer) -> None:
    assert greylisting.services is not None
    greylisting.call(greylisting.services.store.add_access_entry(AccessEntry("allow", "ip", "127.0.0.1", "")))
    assert rcpt(greylisting)[0] == 250
    assert send(greylisting) == {}


def test_allow_listed_sender_is_never_greylisted(greylisting: LiveServer) -> None:
    assert greylisting.services is not None
    greylisting.call(greylisting.services.store.add_access_entry(
        AccessEntry("allow", "domain", "partner.example", "")))
    assert rcpt(greylisting, sender="orders@partner.example")[0] == 250
    assert rcpt(greylisting, sender="x@remote.example")[0] == 451


def test_providers_pass_only_when_spf_passes_for_them(tmp_path: Path, dns_server: DnsServers) -> None:
    """tests/zones/sender.test.zone: good.sender.test's SPF allows 127.0.0.10, reject.sender.test's
    does not. With sender.test as a provider, only the first skips greylisting."""
    live = LiveServer(tmp_path / "data", ["smtp"], dns={"nameservers": (dns_server.address,), "timeout": 5.0},
                      limits={"max_connections_per_ip": 1000},
                      greylist={"enabled": True, "delay": 600.0, "skip_providers": ("sender.test",)}).start()
    try:
        live.add_user("bob@example.test")
        for sender, expected in (("news@good.sender.test", 250), ("news@reject.sender.test", 451),
                                 ("news@elsewhere.example", 451)):
            with smtplib.SMTP("127.0.0.1", live.ports["smtp"], local_hostname="host.example.test", timeout=30,
                              source_address=("127.0.0.10", 0)) as client:
                client.ehlo()
                assert client.mail(sender)[0] == 250
                assert client.rcpt("bob@example.test")[0] == expected, sender
    finally:
        live.stop()
