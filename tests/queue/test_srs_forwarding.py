"""An alias to an outside address, end to end over real sockets (issue 15, "Alias forward"): mail
from an outside sender reaches the alias's target with an SRS sender of our domain, and a bounce
to that SRS address, sent back to our port 25, goes on to the original sender; forged or expired
SRS addresses are refused at RCPT. Nothing accepted is left behind: each message is delivered,
queued or bounced.

DNS is the loopback NSD + Unbound (tests/zones/forward.test.zone): sender.forward.test (SPF
127.0.0.0/8) and inbox.forward.test both have their MX at 127.0.0.46, where an aiosmtpd sink
listens on `[outbound] mx_port`; the server's own queue runner and remote transport send."""
from __future__ import annotations

import asyncio
import re
import smtplib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from dns_server import DnsServers
from live_server import LiveServer
from postoffice.delivery import Envelope as DeliveryEnvelope
from postoffice.delivery import deliver_message
from postoffice.queue.runner import QueueRunner
from postoffice.queue.transports import remote_transport
from postoffice.store.interface import OutboundMessage, QueuedMessage, QueuedRecipient

SINK = "127.0.0.46"  # mx.forward.test
CAROL = "carol@sender.forward.test"  # the original sender, outside
TARGET = "dest@inbox.forward.test"  # where our alias forwards
REFUSED = "gone@inbox.forward.test"  # the sink answers 550 for it
WAIT = 60.0


class Sink:
    """The MX of both outside domains: keeps every envelope, refuses `REFUSED` with 550 5.1.1."""

    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        self.refused_from: list[str] = []  # MAIL FROM of the transactions whose RCPT was refused

    async def handle_RCPT(self, server: object, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.lower() == REFUSED:
            self.refused_from.append(envelope.mail_from)
            return "550 5.1.1 <gone@inbox.forward.test>: no such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), content))
        return "250 2.0.0 OK"

    def to(self, address: str) -> list[tuple[str, list[str], bytes]]:
        return [e for e in self.envelopes if address in e[1]]


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    port = free_port(SINK)
    controller = Controller(handler, hostname=SINK, port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def server(tmp_path: Path, dns_server: DnsServers, sink: tuple[Sink, int]) -> Iterator[LiveServer]:
    _, port = sink
    live = LiveServer(tmp_path / "data", ["smtp"], dns={"nameservers": (dns_server.address,)},
                      outbound={"mx_port": port, "retry_schedule": (0.5,)},
                      limits={"max_connections_per_ip": 1000}).start()
    live.add_user("alice@example.test")
    services = live.services
    assert services is not None
    live.call(services.directory.add_alias("friends@example.test", [TARGET]))
    live.call(services.directory.add_alias("oldfriend@example.test", [REFUSED]))
    runner = QueueRunner(services.store, services.directory, services.config.outbound,
                         services.config.server.hostname, remote=remote_transport(services), poll_interval=0.05)

    async def start() -> None:
        asyncio.get_running_loop().create_task(runner.run())
    live.call(start())
    yield live
    live.call(runner.stop(grace=5))
    live.stop()


def wait_until(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {WAIT} s")


def queue(server: LiveServer) -> list[QueuedMessage]:
    assert server.services is not None
    return server.call(server.services.store.list_queue())


def send(server: LiveServer, sender: str, recipient: str, body: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as smtp:
        smtp.ehlo("mx.forward.test")
        assert smtp.sendmail(sender, [recipient], body) == {}


def letter(sender: str, to: str, subject: str) -> bytes:
    return (f"From: Carol <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@sender.forward.test>\r\n\r\nHello.\r\n").encode()


SRS0 = re.compile(r"SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=sender\.forward\.test=carol@example\.test")


def test_an_alias_forwards_with_an_srs_sender_and_the_bounce_comes_back_to_the_sender(
        server: LiveServer, sink: tuple[Sink, int]) -> None:
    peer, _ = sink
    send(server, CAROL, "friends@example.test", letter(CAROL, "friends@example.test", "forward me"))
    wait_until(lambda: peer.to(TARGET), "the forwarded message reaching the alias's target")
    ((mail_from, rcpts, content),) = peer.to(TARGET)
    assert SRS0.fullmatch(mail_from), mail_from  # our domain, so SPF at the target judges us
    assert rcpts == [TARGET] and b"Subject: forward me" in content
    wait_until(lambda: queue(server) == [], "the queue emptying (delivered, not left behind)")

    # The target's server bounces it: to the SRS address, from the null sender, to our port 25.
    dsn = (f"From: MAILER-DAEMON@inbox.forward.test\r\nTo: <{mail_from}>\r\nSubject: Undelivered\r\n"
           "Message-ID: <bounce.1@inbox.forward.test>\r\n\r\nYour message could not be delivered.\r\n").encode()
    send(server, "", mail_from, dsn)
    wait_until(lambda: peer.to(CAROL), "the bounce reaching the original sender")
    ((bounce_from, bounce_rcpts, bounce),) = peer.to(CAROL)
    assert bounce_from in ("", "<>") and bounce_rcpts == [CAROL]  # still a bounce: nobody bounces it again
    assert b"Subject: Undelivered" in bounce
    wait_until(lambda: queue(server) == [], "the queue emptying")


def test_a_forward_refused_downstream_bounces_to_the_original_sender(
        server: LiveServer, sink: tuple[Sink, int]) -> None:
    """Our own queue bounces to the SRS sender it wrote: that DSN must reach the original sender,
    not be dropped as mail for an unknown local user."""
    peer, _ = sink
    send(server, CAROL, "oldfriend@example.test", letter(CAROL, "oldfriend@example.test", "to a gone friend"))
    wait_until(lambda: peer.to(CAROL), "the delivery report reaching the original sender")
    assert peer.refused_from and all(SRS0.fullmatch(s) for s in peer.refused_from), peer.refused_from
    ((report_from, _, report),) = peer.to(CAROL)
    assert report_from in ("", "<>")  # aiosmtpd keeps the null sender as "<>"
    assert b"multipart/report" in report and b"5.1.1" in report and REFUSED.encode() in report
    wait_until(lambda: queue(server) == [], "the queue emptying")


def test_a_queued_message_for_a_forwarding_alias_leaves_with_an_srs_sender(
        server: LiveServer, sink: tuple[Sink, int]) -> None:
    """The queue's local delivery (a message queued before its domain was ours, or by the
    runner itself) forwards as SMTP does: with an SRS sender."""
    peer, _ = sink
    services = server.services
    assert services is not None
    outbound = OutboundMessage(CAROL, (QueuedRecipient("friends@example.test"),))
    server.call(deliver_message(services.store, services.directory, DeliveryEnvelope(CAROL, ()),
                                letter(CAROL, "friends@example.test", "queued first"), outbound=outbound))
    wait_until(lambda: peer.to(TARGET), "the forwarded message reaching the alias's target")
    ((mail_from, _, content),) = peer.to(TARGET)
    assert SRS0.fullmatch(mail_from), mail_from
    assert b"Subject: queued first" in content
    wait_until(lambda: queue(server) == [], "the queue emptying")


def test_forged_and_expired_srs_addresses_are_refused_at_rcpt(server: LiveServer) -> None:
    assert server.services is not None
    srs = server.services.directory.srs
    assert srs is not None
    valid = srs.forward(CAROL, "example.test")
    forged = valid.replace("=carol@", "=mallory@")
    expired = srs.forward(CAROL, "example.test", now=time.time() - 30 * 86400)
    guessed = "SRS0=AAAA=AA=sender.forward.test=carol@example.test"
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as smtp:
        smtp.ehlo("mx.forward.test")
        assert smtp.mail("")[0] == 250
        for address in (forged, expired, guessed, "srs0=bad@example.test"):
            code, text = smtp.rcpt(address)
            assert (code, text[:5]) == (550, b"5.1.1"), (address, code, text)
        assert smtp.rcpt(valid)[0] == 250  # the genuine one, in the same transaction
        smtp.rset()
    # A mail system that folds the case of the address on the way is still understood.
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as smtp:
        smtp.ehlo("mx.forward.test")
        assert smtp.mail("")[0] == 250
        assert smtp.rcpt(valid.lower())[0] == 250
        smtp.rset()
    assert queue(server) == []  # refused and abandoned: nothing was taken
