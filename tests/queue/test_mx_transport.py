"""The remote transport (queue/mx_transport.py) over real sockets: MX routing through the loopback
NSD + Unbound (tests/zones/routing.test.zone, example.test.zone), the SMTP client sessions of
queue/smtp_session.py, aiosmtpd peers on 127.0.0.41/42 and a second postoffice as the MX."""
from __future__ import annotations

import asyncio
import imaplib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from dns_server import DnsServers
from live_server import PASSWORD, LiveServer, _initialised_copy
from postoffice.config import load_config
from postoffice.config_values import ProviderLimits
from postoffice.mailauth.dkim import verify_dkim
from postoffice.mailauth.dkimkeys import dkim_public_record, domain_key_files
from postoffice.mailauth.resolver import DnsResolver
from postoffice.queue.mx_transport import MxTransport, OutboundSession, smtp_sessions
from postoffice.queue.outcomes import RecipientOutcome
from postoffice.queue.routing import Target
from postoffice.queue.shaping import MessageRate, limits_for
from postoffice.queue.signing import MessageSigner
from postoffice.queue.smtp_session import Timeouts, TlsPolicy
from postoffice.services import open_services
from postoffice.setup.domain_keys import create_domain_keys
from postoffice.store.interface import OutboundMessage, QueuedMessage, QueuedRecipient

SHORT = Timeouts(connect=5, banner=5, mail=5, rcpt=5, data_init=5, data_block=5, final_dot=5, command=5,
                 tls_handshake=5, quit=2)
# The signing test's zone of its own: tests/zones/sender.test is read by other tests.
SIGNING_DOMAIN = "signing-mx.test"
BODY = b"From: Sender <sender@sender.test>\r\nTo: bob@hosted-a.routing.test\r\nSubject: out\r\n\r\nHello.\r\n"
MX1, MX2 = "127.0.0.41", "127.0.0.42"  # mx1.routing.test, mx2.routing.test
TEST_SECONDS = 120


def queued(*recipients: str, sender: str = "sender@sender.test") -> QueuedMessage:
    return QueuedMessage(1, "", 0, OutboundMessage(sender, tuple(QueuedRecipient(r) for r in recipients)),
                         0.0, 0.0, 0, None)


def kinds(outcomes: tuple[RecipientOutcome, ...]) -> list[tuple[str, str]]:
    return [(o.recipient, o.kind) for o in outcomes]


def port_free_on(*hosts: str) -> int:
    """A TCP port free on every one of ``hosts`` now."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind((hosts[0], 0))
            port = int(first.getsockname()[1])
            try:
                for host in hosts[1:]:
                    with socket.socket() as other:
                        other.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on " + ", ".join(hosts))


class Peer:
    """An aiosmtpd MX that records what it got, on which connection, and how many at once."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.envelopes: list[Envelope] = []
        self.connections: set[tuple[str, int]] = set()
        self.active = 0
        self.most_at_once = 0

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        self.connections.add(session.peer)
        self.active += 1
        self.most_at_once = max(self.most_at_once, self.active)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        self.envelopes.append(envelope)
        return "250 2.0.0 OK"


@pytest.fixture
def port() -> int:
    return port_free_on(MX1, MX2)


@asynccontextmanager
async def peers(port: int, *hosts: str, shared: Peer | None = None) -> AsyncIterator[Peer]:
    peer = shared or Peer()
    controllers = [Controller(peer, hostname=host, port=port) for host in hosts]
    for controller in controllers:
        await asyncio.to_thread(controller.start)
    try:
        yield peer
    finally:
        for controller in controllers:
            await asyncio.to_thread(controller.stop)


class Sessions:
    """The usual factory (SmtpSession per target), counting the sessions it opened."""

    def __init__(self) -> None:
        self.opened: list[Target] = []
        self.factory = smtp_sessions(helo_name="out.sender.test", timeouts=SHORT)

    def __call__(self, target: Target, tls: TlsPolicy) -> OutboundSession:
        self.opened.append(target)
        return self.factory(target, tls)


def transport(dns_server: DnsServers, port: int, sessions: Sessions, **options: object) -> MxTransport:
    resolver = DnsResolver((dns_server.address,), timeout=3.0)
    return MxTransport(resolver, open_session=sessions, mx_port=port, **options)  # type: ignore[arg-type]


async def test_the_next_mx_takes_the_mail_when_the_best_one_refuses(dns_server: DnsServers, port: int) -> None:
    sessions = Sessions()
    mx = transport(dns_server, port, sessions)
    async with peers(port, MX2) as peer:  # nothing listens on mx1 (preference 5)
        outcomes = await asyncio.wait_for(mx.deliver(queued("bob@hosted-a.routing.test"), BODY,
                                                     ("bob@hosted-a.routing.test",)), TEST_SECONDS)
        await mx.close()
    assert kinds(outcomes) == [("bob@hosted-a.routing.test", "delivered")]
    assert (outcomes[0].host, outcomes[0].address) == ("mx2.routing.test", MX2)
    assert [(t.host, str(t.address)) for t in sessions.opened] == [("mx1.routing.test", MX1),
                                                                   ("mx2.routing.test", MX2)]
    assert [e.rcpt_tos for e in peer.envelopes] == [["bob@hosted-a.routing.test"]]
    assert peer.envelopes[0].content.replace(b"\r\n", b"\n") == BODY.replace(b"\r\n", b"\n")


async def test_route_problems_answer_every_recipient_without_a_connection(dns_server: DnsServers,
                                                                          port: int) -> None:
    sessions = Sessions()
    mx = transport(dns_server, port, sessions)
    recipients = ("a@nullmx.routing.test", "b@nullmx.routing.test", "c@no-such.routing.test",
                  "d@x.timeout.test")
    outcomes = await asyncio.wait_for(mx.deliver(queued(*recipients), BODY, recipients), TEST_SECONDS)
    assert [(o.recipient, o.kind, o.status) for o in outcomes] == [
        ("a@nullmx.routing.test", "failed", "5.1.10"), ("b@nullmx.routing.test", "failed", "5.1.10"),
        ("c@no-such.routing.test", "failed", "5.1.2"), ("d@x.timeout.test", "deferred", "4.4.3")]
    assert outcomes[0].reason == "nullmx.routing.test does not accept mail (null MX)"
    assert sessions.opened == []


async def test_a_reply_decides_and_is_not_retried_at_the_next_mx(dns_server: DnsServers, port: int) -> None:
    class Greylisting(Peer):
        async def handle_RCPT(self, server: object, session: Session, envelope: Envelope, address: str,
                              options: list[str]) -> str:
            return "451 4.7.1 Greylisted, try again later"

    sessions = Sessions()
    mx = transport(dns_server, port, sessions)
    async with peers(port, MX1, shared=Greylisting()), peers(port, MX2) as second:
        outcomes = await asyncio.wait_for(mx.deliver(queued("bob@hosted-a.routing.test"), BODY,
                                                     ("bob@hosted-a.routing.test",)), TEST_SECONDS)
        await mx.close()
    assert kinds(outcomes) == [("bob@hosted-a.routing.test", "deferred")]
    assert outcomes[0].reply is not None and (outcomes[0].reply.code, outcomes[0].reply.enhanced) == (451, "4.7.1")
    assert second.envelopes == [] and len(sessions.opened) == 1


async def test_a_destination_that_keeps_refusing_is_backed_off_as_a_whole(dns_server: DnsServers,
                                                                         port: int) -> None:
    sessions = Sessions()
    mx = transport(dns_server, port, sessions, failures_before_backoff=2, backoff_seconds=300)
    for _ in range(2):  # nothing listens on mx1 or mx2
        outcomes = await asyncio.wait_for(mx.deliver(queued("bob@hosted-a.routing.test"), BODY,
                                                     ("bob@hosted-a.routing.test",)), TEST_SECONDS)
        assert kinds(outcomes) == [("bob@hosted-a.routing.test", "deferred")]
        assert "refused" in outcomes[0].reason, outcomes[0].reason
    assert len(sessions.opened) == 4  # two addresses, twice
    destination = "mx1.routing.test,mx2.routing.test"
    assert 200 < mx.backed_off(destination) <= 300

    # hosted-b is another domain of the same provider (same MX hosts): backed off too, at once
    started = time.monotonic()
    outcomes = await asyncio.wait_for(mx.deliver(queued("carol@hosted-b.routing.test"), BODY,
                                                 ("carol@hosted-b.routing.test",)), TEST_SECONDS)
    assert kinds(outcomes) == [("carol@hosted-b.routing.test", "deferred")]
    assert outcomes[0].status == "4.4.1"
    assert "could be reached in 2 deliveries in a row" in outcomes[0].reason
    assert len(sessions.opened) == 4 and time.monotonic() - started < 10
    # another provider is not affected
    assert mx.backed_off("backup.routing.test,mx1.routing.test,mx2.routing.test,mx3.routing.test") == 0


async def test_concurrency_is_limited_per_destination_not_per_domain(dns_server: DnsServers, port: int) -> None:
    slow = Peer(delay=0.5)
    mx = transport(dns_server, port, Sessions(), concurrency=2)
    async with peers(port, MX1, MX2, shared=slow):
        recipients = [f"u{n}@hosted-{'ab'[n % 2]}.routing.test" for n in range(6)]
        outcomes = await asyncio.wait_for(asyncio.gather(*(
            mx.deliver(queued(r), BODY, (r,)) for r in recipients)), TEST_SECONDS)
        await mx.close()
    assert [o[0].kind for o in outcomes] == ["delivered"] * 6  # throttled, never refused
    assert slow.most_at_once == 2
    assert len(slow.envelopes) == 6


async def test_connections_are_reused_for_several_messages(dns_server: DnsServers, port: int) -> None:
    sessions = Sessions()
    mx = transport(dns_server, port, sessions, max_messages_per_connection=3)
    async with peers(port, MX1) as peer:
        for n in range(4):
            outcomes = await asyncio.wait_for(mx.deliver(queued(f"u{n}@hosted-a.routing.test"), BODY,
                                                         (f"u{n}@hosted-a.routing.test",)), TEST_SECONDS)
            assert kinds(outcomes) == [(f"u{n}@hosted-a.routing.test", "delivered")]
        await mx.close()
    assert len(peer.envelopes) == 4
    assert len(sessions.opened) == 2 and len(peer.connections) == 2  # 3 messages, then a new one


async def test_connections_unused_for_a_while_are_closed(dns_server: DnsServers, port: int) -> None:
    class Counting(Peer):
        quits = 0

        async def handle_QUIT(self, server: object, session: Session, envelope: Envelope) -> str:
            Counting.quits += 1
            return "221 Bye"

    mx = transport(dns_server, port, Sessions(), idle_seconds=0.5)
    async with peers(port, MX1, MX2, shared=Counting()):
        outcomes = await asyncio.wait_for(mx.deliver(queued("a@hosted-a.routing.test"), BODY,
                                                     ("a@hosted-a.routing.test",)), TEST_SECONDS)
        assert kinds(outcomes) == [("a@hosted-a.routing.test", "delivered")]
        assert Counting.quits == 0  # kept for the next message
        await asyncio.sleep(1.5)
        # any later delivery (here one that needs no connection) closes what idled too long
        await asyncio.wait_for(mx.deliver(queued("b@nullmx.routing.test"), BODY,
                                          ("b@nullmx.routing.test",)), TEST_SECONDS)
        for _ in range(100):
            if Counting.quits:
                break
            await asyncio.sleep(0.1)
        assert Counting.quits == 1
        await mx.close()


# --- end to end: a second postoffice as the MX, the message DKIM-signed ---------------------------


@pytest.fixture
def receiver(tmp_path: Path, dns_server: DnsServers) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "receiver", ["smtp", "imap"], dns={"nameservers": (dns_server.address,)}).start()
    live.add_user("alice@example.test")
    yield live
    live.stop()


def txt_strings(value: str) -> str:
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


def imap_messages(server: LiveServer) -> list[bytes]:
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    try:
        client.login("alice@example.test", PASSWORD)
        client.select("INBOX")
        _, data = client.fetch("1:*", "(BODY.PEEK[])")
        return [part[1] for part in data if isinstance(part, tuple)]
    finally:
        client.logout()


async def test_a_message_reaches_another_postoffice_by_mx_dkim_signed(
        tmp_path: Path, dns_server: DnsServers, receiver: LiveServer) -> None:
    sender = tmp_path / "sender"
    _initialised_copy(sender)
    config = load_config(sender)
    async with open_services(config) as services:
        await services.directory.add_domain(SIGNING_DOMAIN)
        create_domain_keys(sender, SIGNING_DOMAIN, config.dkim.selector)
        records = "".join(f"{s}._domainkey TXT {txt_strings(dkim_public_record(p))}\n"
                          for s, p in domain_key_files(sender, SIGNING_DOMAIN, config.dkim.selector))
        # On this thread, not asyncio.to_thread: NSD is started with PR_SET_PDEATHSIG, which
        # fires when the starting *thread* exits, so a worker thread's exit would stop NSD.
        dns_server.add_zone(SIGNING_DOMAIN, records + '@ TXT "v=spf1 ip4:127.0.0.0/8 -all"\n')
        signer = MessageSigner(sender, default_selector=config.dkim.selector,
                               is_local_domain=services.directory.is_local_domain)
        message = BODY.replace(b"bob@hosted-a.routing.test", b"alice@example.test").replace(
            b"sender@sender.test", f"sender@{SIGNING_DOMAIN}".encode())
        signed = await signer.sign(message, f"sender@{SIGNING_DOMAIN}")
        # example.test's best MX is mail.example.test = 127.0.0.1, where the receiver listens
        mx = transport(dns_server, receiver.ports["smtp"], Sessions())
        outcomes = await asyncio.wait_for(mx.deliver(queued("alice@example.test", sender=f"sender@{SIGNING_DOMAIN}"), signed,
                                                     ("alice@example.test",)), TEST_SECONDS)
        await mx.close()
    assert kinds(outcomes) == [("alice@example.test", "delivered")]
    assert outcomes[0].host == "mail.example.test" and outcomes[0].tls is not None and outcomes[0].tls.used
    stored = await asyncio.to_thread(imap_messages, receiver)
    assert len(stored) == 1
    assert stored[0].endswith(signed)  # as signed: nothing rewrote it on the way
    assert b"with ESMTPS" in stored[0]  # the receiver saw TLS
    # The receiver's own verdict (its port 25 checks SPF and DKIM through the loopback DNS)
    header = stored[0].split(b"\r\n\r\n")[0].replace(b"\r\n\t", b" ").replace(b"\r\n ", b" ")
    verdict = b"".join(line for line in header.split(b"\r\n")
                       if line.lower().startswith(b"authentication-results:"))
    assert verdict.count(b"dkim=pass") == 2 and f"header.d={SIGNING_DOMAIN}".encode() in verdict, verdict
    assert b"spf=pass" in verdict, verdict
    # and the same through our verifier: both signatures pass.
    resolver = DnsResolver((dns_server.address,), timeout=3.0)
    results = await verify_dkim(resolver, stored[0])
    assert sorted((r.result, r.domain, r.algorithm) for r in results) == [
        ("pass", SIGNING_DOMAIN, "ed25519-sha256"), ("pass", SIGNING_DOMAIN, "rsa-sha256")]


async def test_a_provider_named_by_mx_suffix_gets_its_own_limits(dns_server: DnsServers, port: int) -> None:
    # mx1/mx2.routing.test match the provider "routing.test": 1 connection at once, 2 messages
    # per connection, where the defaults would allow 5 and 100.
    slow = Peer(delay=0.3)
    sessions = Sessions()
    provider = ProviderLimits("routing.test", concurrency=1, messages_per_connection=2, messages_per_minute=0)
    mx = transport(dns_server, port, sessions, providers=(provider,))
    async with peers(port, MX1, MX2, shared=slow):
        recipients = [f"u{n}@hosted-{'ab'[n % 2]}.routing.test" for n in range(4)]
        outcomes = await asyncio.wait_for(asyncio.gather(*(
            mx.deliver(queued(r), BODY, (r,)) for r in recipients)), TEST_SECONDS)
        await mx.close()
    assert [o[0].kind for o in outcomes] == ["delivered"] * 4  # throttled, never refused
    assert slow.most_at_once == 1
    assert len(sessions.opened) == 2  # 2 messages per connection


async def test_a_provider_rate_limit_spreads_messages_and_defers_beyond_the_wait(
        dns_server: DnsServers, port: int) -> None:
    provider = ProviderLimits("routing.test", concurrency=5, messages_per_connection=100, messages_per_minute=60)
    mx = transport(dns_server, port, Sessions(), providers=(provider,), max_throttle_wait=1.5)
    async with peers(port, MX1, MX2) as peer:
        started = time.monotonic()
        first = [await asyncio.wait_for(mx.deliver(queued(f"u{n}@hosted-a.routing.test"), BODY,
                                                   (f"u{n}@hosted-a.routing.test",)), TEST_SECONDS)
                 for n in range(3)]
        took = time.monotonic() - started
        # 60 a minute with a burst of 6: the next ones wait a second each; a wait over 1.5 s defers
        late = await asyncio.gather(*(mx.deliver(queued(f"v{n}@hosted-a.routing.test"), BODY,
                                                 (f"v{n}@hosted-a.routing.test",)) for n in range(8)))
        await mx.close()
    assert [o[0].kind for o in first] == ["delivered"] * 3 and took < 60
    kinds_late = [o[0].kind for o in late]
    assert "deferred" in kinds_late and "delivered" in kinds_late, kinds_late
    deferred = next(o[0] for o in late if o[0].kind == "deferred")
    assert deferred.status == "4.4.5" and "60 messages a minute" in deferred.reason
    assert len(peer.envelopes) == 3 + kinds_late.count("delivered")


def test_limits_follow_the_longest_matching_mx_suffix() -> None:
    default = ProviderLimits("", 5, 100, 0)
    google = ProviderLimits("google.com", 10, 50, 600)
    special = ProviderLimits("eu.google.com", 2, 10, 60)
    assert limits_for(["ASPMX.L.Google.com."], [google, special], default=default) is google
    assert limits_for(["mx.eu.google.com"], [google, special], default=default) is special
    assert limits_for(["notgoogle.com"], [google], default=default) is default


def test_message_rate_allows_a_burst_then_spaces_messages() -> None:
    rate = MessageRate(600)  # one every 0.1 s, bursts of 60
    waits = [rate.reserve(100.0) for _ in range(62)]
    assert waits[:60] == [0.0] * 60 and waits[60] == pytest.approx(0.1) and waits[61] == pytest.approx(0.2)
    assert MessageRate(0).reserve(5.0) == 0.0  # no limit
