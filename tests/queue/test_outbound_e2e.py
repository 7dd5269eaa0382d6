"""Outbound delivery end to end over real sockets (issue 15, "What it must show"): two real
`postoffice serve` processes, alpha on 127.0.0.2 and bravo on 127.0.0.3, DNS from the loopback
NSD + Unbound (tests/zones/outbound.test.zone, and each instance's DKIM keys as `init` made them).
A user submits on alpha's port 587 with smtplib; alpha's queue runner routes by MX and sends from
127.0.0.2 to port `mx_port` of the peer's address. Peers: bravo, a greylisting server, a stopped
server, a null-MX domain, and a Debian Postfix.

The instances are shared by the module (starting them is most of its time); every test uses its
own recipients and subjects, so none depends on another having run.
"""
from __future__ import annotations

import itertools
import re
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from outbound_kit import Instance, Postfix, eventually, header_fields, shared_port, with_subject

from cli_run import po
from dns_server import DnsServers

ALPHA, BRAVO = "alpha.outbound.test", "bravo.outbound.test"
ALICE, BOB = f"alice@{ALPHA}", f"bob@{BRAVO}"
ADDRESSES = {"alpha": "127.0.0.2", "bravo": "127.0.0.3", "greylist": "127.0.0.4", "stopped": "127.0.0.5",
             "postfix": "127.0.0.6"}
# Retries after 2 s then every 4 s, giving up after 20 s: the schedule of days, shrunk to a test's time.
RETRY_SCHEDULE = (2.0, 4.0)
MAX_QUEUE_TIME = 20.0
DELIVERY_TIMEOUT = 60.0  # generous: two cores shared by many test runs


@pytest.fixture(scope="module")
def port() -> int:
    """The SMTP port every peer listens on (each on its own address): alpha's `mx_port`."""
    return shared_port(ADDRESSES.values())


@pytest.fixture(scope="module")
def instances(dns_server: DnsServers, port: int, tmp_path_factory: pytest.TempPathFactory,
              ) -> Iterator[tuple[Instance, Instance]]:
    base = tmp_path_factory.mktemp("outbound")
    with socket.socket() as probe:
        probe.bind((ADDRESSES["alpha"], 0))
        submission = int(probe.getsockname()[1])
    alpha = Instance(base / "alpha", ALPHA, ADDRESSES["alpha"], port, dns_server.nameserver, users=(ALICE,),
                     submission_port=submission,
                     outbound=f"retry_schedule = {list(RETRY_SCHEDULE)}\nmax_queue_time = {MAX_QUEUE_TIME}\n"
                              "backoff_seconds = 1.0\nmax_backoff_seconds = 2.0")
    bravo = Instance(base / "bravo", BRAVO, ADDRESSES["bravo"], port, dns_server.nameserver, users=(BOB,))
    for instance in (alpha, bravo):
        dns_server.add_zone(*instance.dkim_zone())
    alpha.start()
    try:
        bravo.start()
    except BaseException:
        alpha.stop()
        raise
    try:
        yield alpha, bravo
    finally:
        logs = [instance.stop() for instance in (alpha, bravo)]
        for log in logs:
            assert "Traceback" not in log, log


def message(subject: str, to: str) -> bytes:
    return (f"From: Alice <{ALICE}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@{ALPHA}>\r\nDate: Sun, 06 Dec 2026 12:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "Hello from alpha.\r\n").encode()


def subject() -> str:
    return f"e2e {uuid.uuid4().hex[:12]}"


def bounces_about(alpha: Instance, subject: str) -> list[bytes]:
    """Delivery reports in alice's INBOX that carry the message (or header) titled `subject`."""
    return [m for m in alpha.messages(ALICE)
            if b"multipart/report" in m.split(b"\r\n\r\n", 1)[0] and subject.encode() in m]


def queue_entry(alpha: Instance, recipient: str) -> int:
    """The id of alpha's queue entry for `recipient` (submission queues it before its 250)."""
    for entry in alpha.queue():
        if recipient in str(entry):
            return int(entry["id"])
    raise AssertionError(f"nothing queued for {recipient}: {alpha.queue()}")


def report_fields(dsn: bytes) -> str:
    """The message/delivery-status part of a report."""
    found = re.search(rb"Content-Type: message/delivery-status\r\n.*?\r\n\r\n(.*?)\r\n--", dsn, re.S)
    assert found, dsn.decode(errors="replace")
    return found.group(1).decode()


def test_mail_submitted_on_alpha_arrives_at_bravo_with_dkim_spf_and_dmarc_passing(
        instances: tuple[Instance, Instance]) -> None:
    alpha, bravo = instances
    title = subject()
    alpha.submit(ALICE, [BOB], message(title, BOB))
    (arrived,) = eventually(lambda: with_subject(bravo.messages(BOB), title), DELIVERY_TIMEOUT,
                            "delivery to bravo")
    (results,) = [r for r in header_fields(arrived, "Authentication-Results") if r.startswith(bravo.hostname)]
    # Both signatures verify with the keys init made (RSA-2048 and Ed25519, RFC 8463), SPF names
    # the address alpha sends from, and DMARC (p=reject) passes on both.
    assert re.search(rf"dkim=pass [^;]*header\.d={re.escape(ALPHA)}[^;]*header\.a=rsa-sha256", results), results
    assert re.search(rf"dkim=pass [^;]*header\.d={re.escape(ALPHA)}[^;]*header\.a=ed25519-sha256", results), results
    assert re.search(rf"spf=pass [^;]*smtp\.mailfrom={re.escape(ALICE)}", results), results
    assert re.search(rf"spf=pass [^;]*smtp\.helo={re.escape(alpha.hostname)}", results), results  # the EHLO name
    assert re.search(rf"dmarc=pass [^;]*header\.from={re.escape(ALPHA)}", results), results
    received = header_fields(arrived, "Received")[0]  # bravo's own, on top
    assert f"from {alpha.hostname} " in received and "[127.0.0.2]" in received, received
    assert re.search(r"with E?SMTPS", received), received  # alpha used STARTTLS to bravo
    assert eventually(lambda: alpha.queue() == [], 20, "alpha's queue emptying")
    # The administrator's record of it, as Postfix's "status=sent" line.
    sent = (rf'result=delivered host={re.escape(bravo.hostname)} ip=127\.0\.0\.3 tls="TLSv1\.[23] [^"]*"'
            r' attempt=1 delay=[\d.]+ reply="250 2\.0\.0 ')
    eventually(lambda: re.search(sent, delivery_log(alpha, BOB)), 10, "the delivery in alpha's log")


def delivery_log(instance: Instance, recipient: str) -> str:
    """The `queue delivery` lines about `recipient` in the instance's log (docs/logging.md)."""
    lines = [line for line in instance.log().splitlines()
             if "queue delivery: " in line and f" from={ALICE} rcpt={recipient} " in line]
    return "\n".join(lines)


def test_unknown_user_at_bravo_comes_back_to_the_senders_inbox_naming_550_5_1_1(
        instances: tuple[Instance, Instance]) -> None:
    alpha, bravo = instances
    title, nobody = subject(), f"nobody@{BRAVO}"
    alpha.submit(ALICE, [nobody], message(title, nobody))
    (dsn,) = eventually(lambda: bounces_about(alpha, title), DELIVERY_TIMEOUT, "the bounce in alice's INBOX")
    fields = report_fields(dsn)
    assert f"Final-Recipient: rfc822; {nobody}" in fields
    assert "Action: failed" in fields and "Status: 5.1.1" in fields, fields
    assert f"Remote-MTA: dns; {bravo.hostname}" in fields, fields
    assert re.search(r"Diagnostic-Code: smtp; 550 5\.1\.1 ", fields), fields  # bravo's own words
    assert header_fields(dsn, "To") == [f"<{ALICE}>"]
    assert "550 5.1.1" in dsn.split(b"Content-Type: message/delivery-status")[0].decode()  # the text part too
    eventually(lambda: re.search(r'result=bounced host=\S+ ip=127\.0\.0\.3 .* reply="550 5\.1\.1 ',
                                 delivery_log(alpha, nobody)), 10, "the bounce in alpha's log")


def test_a_stopped_peer_is_retried_on_schedule_then_the_message_bounces(instances: tuple[Instance, Instance]) -> None:
    alpha, _ = instances
    title, carol = subject(), "carol@stopped.outbound.test"
    alpha.submit(ALICE, [carol], message(title, carol))
    queue_id = queue_entry(alpha, carol)
    seen: dict[str, Any] = {}

    def gone() -> bool:
        entry = alpha.queue_show(queue_id)
        if entry is None:
            return True
        seen.update(entry)
        return False

    eventually(gone, MAX_QUEUE_TIME + DELIVERY_TIMEOUT, "giving up on the stopped peer", interval=0.2)
    attempts = [a for a in seen["attempts"] if a["recipient"] == carol]
    assert len(attempts) >= 2, seen
    for attempt in attempts:
        assert attempt["outcome"] == "deferred", attempt
        assert "127.0.0.5" in attempt["reply"] or "could be reached" in attempt["reply"], attempt
    assert "refused" in attempts[0]["reply"], attempts[0]
    # Each wait is the schedule's step, give or take a tenth, plus up to the runner's 1 s poll
    # (and a loaded machine's slack).
    gaps = [later["time"] - earlier["time"] for earlier, later in itertools.pairwise(attempts)]
    for n, gap in enumerate(gaps):
        step = RETRY_SCHEDULE[min(n, len(RETRY_SCHEDULE) - 1)]
        assert step * 0.9 - 0.1 <= gap <= step * 1.1 + 5, (gaps, attempts)
    (dsn,) = eventually(lambda: bounces_about(alpha, title), DELIVERY_TIMEOUT, "the bounce in alice's INBOX")
    fields = report_fields(dsn)
    assert f"Final-Recipient: rfc822; {carol}" in fields and "Action: failed" in fields, fields
    assert "Status: 4.4.7" in fields, fields  # RFC 3463: delivery time expired
    assert "127.0.0.5" in fields or "could be reached" in fields, fields
    words = dsn.split(b"Content-Type: message/delivery-status")[0].decode()
    assert "the server gave up" in words and words.count("gave up") == 1, words  # said once, in plain words
    assert "(still so after 20 seconds in the queue)" in words, words


def test_mail_for_bravo_while_it_is_stopped_arrives_once_it_is_back(instances: tuple[Instance, Instance]) -> None:
    alpha, bravo = instances
    title = subject()
    assert "Traceback" not in bravo.stop()
    try:
        alpha.submit(ALICE, [BOB], message(title, BOB))
        queue_id = queue_entry(alpha, BOB)
        entry = eventually(lambda: (e := alpha.queue_show(queue_id)) and e["attempts"] and e, DELIVERY_TIMEOUT,
                           "the first attempt")
        first = entry["attempts"][0]
        assert first["outcome"] == "deferred" and "refused" in first["reply"], first
        assert "127.0.0.3" in first["reply"], first  # the reason names the address tried
    finally:
        bravo.start()
    # Now rather than at the next step of the schedule (which may have come already: then the
    # entry is gone and `retry` says so).
    po("queue", "retry", str(queue_id), data=alpha.data, check=False)
    eventually(lambda: with_subject(bravo.messages(BOB), title), DELIVERY_TIMEOUT, "delivery once bravo is back")
    assert bounces_about(alpha, title) == []


class Greylister:
    """aiosmtpd handler of a greylisting MX: `451 4.7.1` to the first RCPT of each (client
    address, sender, recipient), `250` to the same triple later."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str, str]] = set()
        self.rcpt_replies: list[tuple[str, str, int]] = []  # (client, recipient, code)
        self.received: list[tuple[str, str, list[str], bytes]] = []  # (client, sender, recipients, content)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        client = str(session.peer[0])
        triple = (client, envelope.mail_from or "", address)
        if triple not in self.seen:
            self.seen.add(triple)
            self.rcpt_replies.append((client, address, 451))
            return "451 4.7.1 Greylisted, please try again later"
        self.rcpt_replies.append((client, address, 250))
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.received.append((str(session.peer[0]), envelope.mail_from or "", list(envelope.rcpt_tos), content))
        return "250 2.0.0 Accepted"


@pytest.fixture
def greylist_peer(port: int) -> Iterator[Greylister]:
    handler = Greylister()
    controller = Controller(handler, hostname=ADDRESSES["greylist"], port=port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


def test_a_greylisting_peer_gets_the_message_on_the_retry(instances: tuple[Instance, Instance],
                                                         greylist_peer: Greylister) -> None:
    alpha, _ = instances
    title, dave = subject(), "dave@greylist.outbound.test"
    started = time.monotonic()
    alpha.submit(ALICE, [dave], message(title, dave))
    eventually(lambda: greylist_peer.received, DELIVERY_TIMEOUT, "delivery to the greylisting peer")
    waited = time.monotonic() - started
    ((client, sender, recipients, content),) = greylist_peer.received
    assert (client, sender, recipients) == ("127.0.0.2", ALICE, [dave])
    assert title.encode() in content and b"DKIM-Signature:" in content
    assert greylist_peer.rcpt_replies == [("127.0.0.2", dave, 451), ("127.0.0.2", dave, 250)]
    assert waited >= RETRY_SCHEDULE[0] * 0.9 - 0.1  # the retry came on the schedule, not at once
    assert eventually(lambda: alpha.queue() == [] or None, 20, "alpha's queue emptying")
    assert bounces_about(alpha, title) == []


def test_a_null_mx_domain_bounces_at_once(instances: tuple[Instance, Instance]) -> None:
    alpha, _ = instances
    title, erin = subject(), "erin@nullmx.outbound.test"
    alpha.submit(ALICE, [erin], message(title, erin))
    (dsn,) = eventually(lambda: bounces_about(alpha, title), DELIVERY_TIMEOUT, "the bounce in alice's INBOX")
    fields = report_fields(dsn)
    # 5.1.10 (RFC 7505 §4.2) is the first attempt's verdict: a deferral would end in 4.4.7.
    assert f"Final-Recipient: rfc822; {erin}" in fields and "Action: failed" in fields, fields
    assert "Status: 5.1.10" in fields, fields
    assert "null MX" in dsn.decode(errors="replace")


@pytest.fixture
def postfix_peer(port: int) -> Iterator[Postfix]:
    postfix = Postfix(ADDRESSES["postfix"], port, "postfix.outbound.test").start()
    try:
        yield postfix
    finally:
        postfix.stop()


def test_postfix_as_receiving_mx_gets_our_message_over_tls(instances: tuple[Instance, Instance],
                                                          postfix_peer: Postfix) -> None:
    alpha, _ = instances
    title, frank = subject(), "frank@postfix.outbound.test"
    alpha.submit(ALICE, [frank], message(title, frank))
    log = eventually(lambda: (text := postfix_peer.log_text()) and f"to=<{frank}>" in text and text,
                     DELIVERY_TIMEOUT + 30, "Postfix taking the message")
    assert re.search(r"TLS connection established from \S*\[127\.0\.0\.2\]: TLSv1\.[23]", log), log
    assert f"from=<{ALICE}>" in log, log
    assert eventually(lambda: alpha.queue() == [] or None, 20, "alpha's queue emptying")
