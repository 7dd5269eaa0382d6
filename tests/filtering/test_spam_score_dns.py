"""The spam score's DNS rules against the real DNS servers of tests/dns_server.py: links on a
URI blocklist (tests/zones/dbl.test.zone lists spammy.message.test) and a client on a scoring
DNSBL (tests/zones/dnsbl.test.zone lists 127.0.0.2), and a list that never answers."""
from __future__ import annotations

import email.utils
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dns_server import TIMEOUT_ZONE, DnsServers
from live_server import LiveServer

ALICE = "alice@example.test"
GOOD, LISTED = "127.0.0.10", "127.0.0.2"  # PTR host.example.test (forward-confirmed) / on dnsbl.test


def start(tmp_path: Path, dns_server: DnsServers, dns_timeout: float = 1.0, **spam: object) -> LiveServer:
    live = LiveServer(tmp_path / "data", ["smtp"], dns={"nameservers": (dns_server.address,), "timeout": dns_timeout},
                      limits={"max_connections_per_ip": 1000}, spam=spam).start()
    live.add_user(ALICE)
    return live


@pytest.fixture
def server(tmp_path: Path, dns_server: DnsServers) -> Iterator[LiveServer]:
    live = start(tmp_path, dns_server, uri_blocklists=("dbl.test",), blocklists=("dnsbl.test",))
    yield live
    live.stop()


def message(body: str) -> bytes:
    return (f"From: Bob <bob@sender.test>\r\nTo: {ALICE}\r\nSubject: News\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: {email.utils.make_msgid()}\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{body}\r\n").encode()


def send(server: LiveServer, raw: bytes, ip: str = GOOD) -> int:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="host.example.test", timeout=30,
                      source_address=(ip, 0)) as client:
        client.ehlo()
        assert client.mail("bob@sender.test")[0] == 250
        assert client.rcpt(ALICE)[0] == 250
        return client.data(raw)[0]


def spam_rules(stored: bytes) -> str:
    head = stored.split(b"\r\n\r\n", 1)[0].decode().replace("\r\n\t", " ")
    (rules,) = [line for line in head.split("\r\n") if line.startswith("X-Spam-Rules:")]
    return rules


def test_a_link_to_a_listed_domain_fires_uribl_listed(server: LiveServer) -> None:
    assert send(server, message("Offer: https://www.spammy.message.test/buy?now")) == 250
    (stored,) = server.messages(ALICE)
    assert "URIBL_LISTED=4.0 (spammy.message.test on dbl.test)" in spam_rules(stored)


def test_links_to_unlisted_domains_do_not(server: LiveServer) -> None:
    # refused.message.test answers 127.0.1.255, Spamhaus DBL's "you asked an IP": no listing
    assert send(server, message("See https://example.test/ and http://refused.message.test/")) == 250
    (stored,) = server.messages(ALICE)
    assert "URIBL_LISTED" not in spam_rules(stored)


def test_a_client_on_a_scoring_blocklist_is_scored_not_refused(server: LiveServer) -> None:
    assert send(server, message("Hello."), ip=LISTED) == 250
    (stored,) = server.messages(ALICE)
    assert "DNSBL_LISTED=3.0 (127.0.0.2 on dnsbl.test)" in spam_rules(stored)


def test_a_uri_blocklist_that_never_answers_delays_a_message_by_at_most_uri_timeout(
        tmp_path: Path, dns_server: DnsServers) -> None:
    # The resolver alone would wait its [dns] timeout (4 s here) for the list's answers.
    live = start(tmp_path, dns_server, dns_timeout=4.0, uri_blocklists=(TIMEOUT_ZONE,), uri_timeout=0.5)
    try:
        send(live, message("warm-up, no link"))  # SPF, DMARC and PTR answers into the cache
        started = time.monotonic()
        assert send(live, message("https://spammy.message.test/")) == 250
        assert time.monotonic() - started < 3.0
        stored = live.messages(ALICE)[-1]
        assert "URIBL_LISTED" not in spam_rules(stored)
        # The resolver's own questions end at its timeout: not left behind for a closed loop.
        time.sleep(max(0.0, started + 4.5 - time.monotonic()))
    finally:
        live.stop()
