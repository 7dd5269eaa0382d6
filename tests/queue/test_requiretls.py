"""REQUIRETLS (RFC 8689) on the way out (queue/mx_transport.py, queue/destination_tls.py,
queue/smtp_session.py): a message whose sender asked for it goes only over verified TLS to a
peer offering the extension, the parameter passed on; otherwise it fails with 5.7.30 (§5)."""
from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_mx_transport import Sessions, port_free_on
from test_queue_runner import ALICE, Running, message, queue, reports, status_groups, wait_until
from tls_peers import MX_GOOD, MX_WRONG, StartTlsPeer, TestCa

from dns_server import DnsServers
from live_server import LiveServer
from postoffice.config import load_config
from postoffice.delivery import Envelope, deliver_message
from postoffice.mailauth.resolver import DnsResolver
from postoffice.queue.destination_tls import TlsPolicies
from postoffice.queue.mx_transport import MxTransport
from postoffice.queue.outcomes import RecipientOutcome
from postoffice.store.interface import OutboundMessage, QueuedMessage, QueuedRecipient

BODY = b"From: <alice@sender.test>\r\nSubject: secret\r\n\r\nOnly over TLS.\r\n"


def required(recipient: str) -> QueuedMessage:
    envelope = OutboundMessage("alice@sender.test", (QueuedRecipient(recipient),), requiretls=True)
    return QueuedMessage(1, "", 0, envelope, 0.0, 0.0, 0, None)


async def send(dns_server: DnsServers, port: int, context: ssl.SSLContext, recipient: str) -> RecipientOutcome:
    resolver = DnsResolver((dns_server.address,), timeout=3.0)
    mx = MxTransport(resolver, open_session=Sessions(), mx_port=port,
                     tls_policies=TlsPolicies(dane=resolver, context=context))
    try:
        (outcome,) = await asyncio.wait_for(mx.deliver(required(recipient), BODY, (recipient,)), 60)
    finally:
        await mx.close()
    return outcome


@pytest.fixture
def receiver(tmp_path: Path, dns_server: DnsServers) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "receiver", ["smtp"], dns={"nameservers": (dns_server.address,)}).start()
    live.add_user("alice@example.test")
    yield live
    live.stop()


async def test_a_postoffice_mx_gets_it_over_verified_tls_with_the_extension(
        dns_server: DnsServers, receiver: LiveServer) -> None:
    # example.test's MX is mail.example.test (127.0.0.1), the receiver's certificate names it.
    trusted = ssl.create_default_context(cafile=str(load_config(receiver.data_dir).tls.cert_file))
    outcome = await send(dns_server, receiver.ports["smtp"], trusted, "alice@example.test")
    assert outcome.kind == "delivered", outcome
    assert outcome.tls is not None and outcome.tls.verified and outcome.tls.used
    assert len(receiver.messages("alice@example.test")) == 1


async def test_a_certificate_that_does_not_verify_fails_it_with_5_7_30(dns_server: DnsServers, tmp_path: Path) -> None:
    ca = TestCa(tmp_path / "ca")
    port = port_free_on(MX_WRONG)
    peer = StartTlsPeer(ca, MX_WRONG, port, "wrong.mtasts.test").start()  # not mx-wrong.mtasts.test
    try:
        outcome = await send(dns_server, port, ca.context(), "bob@plain-wrong.mtasts.test")
    finally:
        peer.stop()
    assert outcome.kind == "failed" and outcome.status == "5.7.30", outcome
    assert "REQUIRETLS could not be honoured" in outcome.reason and "certificate not valid" in outcome.reason
    assert peer.envelopes == []


async def test_a_peer_without_the_extension_fails_it_with_5_7_30(dns_server: DnsServers, tmp_path: Path) -> None:
    ca = TestCa(tmp_path / "ca")
    port = port_free_on(MX_GOOD)
    peer = StartTlsPeer(ca, MX_GOOD, port, "mx-good.mtasts.test").start()  # aiosmtpd: no REQUIRETLS
    try:
        outcome = await send(dns_server, port, ca.context(), "bob@plain-good.mtasts.test")
    finally:
        peer.stop()
    assert outcome.kind == "failed" and outcome.status == "5.7.30", outcome
    assert "does not offer it over verified TLS" in outcome.reason
    assert outcome.tls is not None and outcome.tls.verified  # TLS was fine; the extension was missing
    assert peer.envelopes == []


def test_the_runner_bounces_it_to_the_sender_with_status_5_7_30(tmp_path: Path, dns_server: DnsServers) -> None:
    server = LiveServer(tmp_path / "data", ["imap"], dns={"nameservers": (dns_server.address,)}).start()
    ca = TestCa(tmp_path / "ca")
    port = port_free_on(MX_GOOD)
    peer = StartTlsPeer(ca, MX_GOOD, port, "mx-good.mtasts.test").start()  # aiosmtpd: no REQUIRETLS
    try:
        server.add_user(ALICE)
        assert server.services is not None
        services = server.services
        recipient = "bob@plain-good.mtasts.test"

        async def put() -> None:
            outbound = OutboundMessage(ALICE, (QueuedRecipient(recipient),), requiretls=True)
            await deliver_message(services.store, services.directory, Envelope(ALICE, ()),
                                  message("must be private"), outbound=outbound)
        server.call(put())
        assert [q.envelope.requiretls for q in queue(server)] == [True]  # kept by the store
        resolver = DnsResolver((dns_server.address,), timeout=3.0)
        remote = MxTransport(resolver, open_session=Sessions(), mx_port=port,
                             tls_policies=TlsPolicies(dane=resolver, context=ca.context()))
        with Running(server, remote=remote):  # type: ignore[arg-type]
            wait_until(lambda: queue(server) == [], what="the queue emptying")
        server.call(remote.close())
        (bounce,) = reports(server, ALICE)
        _, failed = status_groups(bounce)
        assert (failed["Action"], failed["Status"]) == ("failed", "5.7.30"), failed
        assert "REQUIRETLS" in bounce.get_payload()[0].get_content()  # type: ignore[index]
        assert peer.envelopes == []
    finally:
        peer.stop()
        server.stop()
