"""The outbound SMTP session over real sockets: postoffice's own port 25, aiosmtpd, and bad
peers written here as small asyncio servers (queue/smtp_session.py)."""
from __future__ import annotations

import asyncio
import imaplib
import socket
import ssl
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from outbound_kit import Postfix

from live_server import PASSWORD, LiveServer
from postoffice.config import load_config
from postoffice.queue.outcomes import RecipientOutcome, SmtpReply
from postoffice.queue.smtp_session import Credentials, SmtpSession, Timeouts, TlsPolicy
from postoffice.store.interface import OutboundMessage, QueuedMessage, QueuedRecipient

BODY = (b"From: Sender <sender@remote.example>\r\nTo: alice@example.test\r\nSubject: outbound\r\n\r\n"
        b"Hello.\r\n.A line with a dot\r\n..two dots\r\n")
EIGHT_BIT = ("From: sender@remote.example\r\nSubject: caf\u00e9?\r\n\r\nCaf\u00e9 cr\u00e8me.\r\n").encode()
SHORT = Timeouts(connect=5, banner=5, mail=5, rcpt=5, data_init=5, data_block=5, final_dot=5, command=5,
                 tls_handshake=5, quit=2)


def queued(*recipients: str, sender: str = "sender@remote.example", size: int = 0,
           notify: tuple[str, ...] = ()) -> QueuedMessage:
    envelope = OutboundMessage(sender, tuple(QueuedRecipient(r, notify) for r in recipients))
    return QueuedMessage(1, "", size, envelope, 0.0, 0.0, 0, None)


def kinds(outcomes: tuple[RecipientOutcome, ...]) -> list[tuple[str, str]]:
    return [(o.recipient, o.kind) for o in outcomes]


# --- postoffice's own MX -------------------------------------------------------------------------


@pytest.fixture
def mx(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["smtp", "imap"],
                      limits={"max_message_size": 1_000_000, "max_connections_per_ip": 1000}).start()
    live.add_user("alice@example.test")
    yield live
    live.stop()


def imap_messages(server: LiveServer) -> list[bytes]:
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    try:
        client.login("alice@example.test", PASSWORD)
        client.select("INBOX")
        _, data = client.fetch("1:*", "(BODY.PEEK[])")
        return [part[1] for part in data if isinstance(part, tuple)]
    finally:
        client.logout()


async def test_postoffice_mx_gets_two_messages_over_starttls_and_imap_reads_them(mx: LiveServer) -> None:
    session = SmtpSession("mail.example.test", "127.0.0.1", mx.ports["smtp"], helo_name="out.remote.example",
                          timeouts=SHORT)
    try:
        first = await session.deliver(queued("alice@example.test", "nobody@example.test"), BODY,
                                      ("alice@example.test", "nobody@example.test"))
        assert kinds(first) == [("alice@example.test", "delivered"), ("nobody@example.test", "failed")]
        assert first[1].reply is not None and (first[1].reply.code, first[1].reply.enhanced) == (550, "5.1.1")
        assert first[0].host == "mail.example.test" and first[0].address == "127.0.0.1"
        # The same connection again (RSET first); 8-bit content goes with BODY=8BITMIME.
        second = await session.deliver(queued("alice@example.test"), EIGHT_BIT, ("alice@example.test",))
        assert kinds(second) == [("alice@example.test", "delivered")]
    finally:
        await session.close()
    tls = session.tls
    assert tls is not None and tls.used and tls.version in ("TLSv1.2", "TLSv1.3") and tls.cipher
    assert not tls.verified and tls.policy == "opportunistic" and first[0].tls == tls
    stored = await asyncio.to_thread(imap_messages, mx)
    assert len(stored) == 2
    assert stored[0].endswith(BODY) and stored[1].endswith(EIGHT_BIT)  # dots and 8-bit octets intact
    assert b"with ESMTPS" in stored[0]  # the receiving side saw TLS too


async def test_verified_tls_checks_the_mx_name_and_never_falls_back_to_plaintext(mx: LiveServer) -> None:
    cert = load_config(mx.data_dir).tls.cert_file
    context = ssl.create_default_context(cafile=str(cert))

    async def send(host: str) -> tuple[tuple[RecipientOutcome, ...], SmtpSession]:
        session = SmtpSession(host, "127.0.0.1", mx.ports["smtp"], helo_name="out.remote.example",
                              tls=TlsPolicy(require=True, verify=True, context=context, policy="mta-sts"),
                              timeouts=SHORT)
        try:
            return await session.deliver(queued("alice@example.test"), BODY, ("alice@example.test",)), session
        finally:
            await session.close()

    for host in ("mail.example.test", "127.0.0.1"):  # an address is checked against the IP names
        good, session = await send(host)
        assert kinds(good) == [("alice@example.test", "delivered")]
        assert session.tls is not None and session.tls.verified and session.tls.policy == "mta-sts"
    bad, session = await send("wrong.example.test")
    assert kinds(bad) == [("alice@example.test", "deferred")]
    assert "certificate not valid for wrong.example.test" in bad[0].reason
    assert "policy requires TLS" in bad[0].reason
    assert session.tls is not None and not session.tls.used
    assert len(mx.messages("alice@example.test")) == 2  # nothing went in clear


# --- aiosmtpd: no CHUNKING, AUTH ----------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 2.0.0 OK queued"


def authenticator(server: object, session: object, envelope: object, mechanism: str, auth_data: object) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"relay" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture
def aiosmtpd_relay() -> Iterator[tuple[Controller, Recorder]]:
    recorder = Recorder()
    with socket.socket() as probe:  # aiosmtpd's Controller checks its port itself, so no port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(recorder, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False, enable_SMTPUTF8=True)
    controller.start()
    yield controller, recorder
    controller.stop()


@pytest.mark.parametrize("password", ["s3cret", "wrong"])
async def test_aiosmtpd_relay_with_auth_and_data(aiosmtpd_relay: tuple[Controller, Recorder],
                                                 password: str) -> None:
    controller, recorder = aiosmtpd_relay
    session = SmtpSession("relay.test", "127.0.0.1", controller.port, helo_name="out.example.test", timeouts=SHORT,
                          credentials=Credentials("relay", password, allow_plaintext=True))
    try:
        outcomes = await session.deliver(queued("bob@remote.example", "carol@remote.example"), EIGHT_BIT + BODY,
                                         ("bob@remote.example", "carol@remote.example"))
    finally:
        await session.close()

    if password == "wrong":
        assert kinds(outcomes) == [("bob@remote.example", "deferred"), ("carol@remote.example", "deferred")]
        assert outcomes[0].reply == SmtpReply(535, "5.7.8", "Authentication credentials invalid")
        assert "refused the login of relay" in outcomes[0].reason and not recorder.envelopes
        return
    assert kinds(outcomes) == [("bob@remote.example", "delivered"), ("carol@remote.example", "delivered")]
    assert outcomes[0].reply == SmtpReply(250, "2.0.0", "OK queued")
    (envelope,) = recorder.envelopes
    assert envelope.rcpt_tos == ["bob@remote.example", "carol@remote.example"]
    assert "BODY=8BITMIME" in envelope.mail_options and f"SIZE={len(EIGHT_BIT + BODY)}" in envelope.mail_options
    assert envelope.original_content == EIGHT_BIT + BODY  # DATA dot-stuffed and unstuffed again


# --- bad peers -------------------------------------------------------------------------------------------

Peer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def bad_peer(handle: Peer) -> AsyncIterator[tuple[int, list[int]]]:
    """A one-off SMTP peer on 127.0.0.1; yields its port and a list counting connections."""
    connections: list[int] = []
    handlers: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        try:
            await handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # stopped at the end of the test (asyncio would log it)
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:
        server.close()
        for task in handlers:  # a slow peer may still be trickling: stop it with the test
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


async def ehlo_dialogue(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, extensions: bytes) -> None:
    writer.write(b"220 bad.example ESMTP\r\n")
    await reader.readline()
    writer.write(b"250-bad.example\r\n" + extensions + b"250 SIZE 10000000\r\n")


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    await reader.read(100)


async def one_byte_a_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    for byte in b"220 slow.example ESMTP\r\n":
        writer.write(bytes((byte,)))
        await writer.drain()
        await asyncio.sleep(1)


async def drops_mid_data(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await ehlo_dialogue(reader, writer, b"")
    for answer in (b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"):
        await reader.readline()
        writer.write(answer)
    await reader.read(10)
    writer.transport.abort()


async def ten_megabyte_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    line = b"220-" + b"x" * 1020 + b"\r\n"
    for _ in range(10 * 1024):
        writer.write(line)
        await writer.drain()


@pytest.mark.parametrize(
    ("peer", "reason"),
    [
        (garbage, "127.0.0.1]:{port} broke the SMTP protocol: not an SMTP reply: 'HTTP/1.1 400"),
        (one_byte_a_second, "127.0.0.1]:{port} did not answer within 2 s (waiting for the banner)"),
        (drops_mid_data, "(waiting for the reply to the end of data)"),  # "closed" or "reset", by timing
        (ten_megabyte_banner, "broke the SMTP protocol: a reply longer than 65536 bytes"),
    ],
    ids=["garbage", "1-byte-per-second", "drops-mid-data", "10MB-banner"],
)
async def test_a_bad_peer_is_a_deferral_with_a_clear_reason(peer: Peer, reason: str) -> None:
    timeouts = Timeouts(connect=2, banner=2, mail=2, rcpt=2, data_init=2, data_block=2, final_dot=2,
                        command=2, tls_handshake=2, quit=1)
    async with bad_peer(peer) as (port, _):
        session = SmtpSession("bad.example", "127.0.0.1", port, helo_name="out.example.test", timeouts=timeouts)
        tracemalloc.start()
        started = time.monotonic()
        try:
            async with asyncio.timeout(30):
                outcomes = await session.deliver(queued("bob@bad.example"), BODY * 1000, ("bob@bad.example",))
                await session.close()
        finally:
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    (outcome,) = outcomes
    assert outcome.kind == "deferred" and outcome.reply is None
    assert reason.format(port=port) in outcome.reason and f"bad.example [127.0.0.1]:{port}" in outcome.reason
    assert elapsed < 15  # bounded by the shrunk timeouts, not by the peer
    assert peak < 8 * 2**20  # the 10 MB banner is never held (the message itself is ~120 KB)


async def test_a_refused_connection_is_a_deferral_naming_the_host() -> None:
    async with bad_peer(garbage) as (port, _):
        pass  # closed again: nobody listens on the port now
    session = SmtpSession("gone.example", "127.0.0.1", port, helo_name="out.example.test", timeouts=SHORT)
    (outcome,) = await session.deliver(queued("bob@gone.example"), BODY, ("bob@gone.example",))
    assert (outcome.kind, outcome.reason) == ("deferred", f"connection to gone.example [127.0.0.1]:{port} "
                                                          "failed: connection refused")


def starttls_then_broken_handshake(deliveries: list[bytes]) -> Peer:
    """Offers STARTTLS, says 220 and answers the ClientHello with junk; without STARTTLS
    (the second connection) it takes the message."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await ehlo_dialogue(reader, writer, b"250-STARTTLS\r\n250-PIPELINING\r\n")
        command = await reader.readline()
        if command == b"STARTTLS\r\n":
            writer.write(b"220 2.0.0 go ahead\r\n")
            await reader.read(10)  # the ClientHello
            writer.write(b"this is not TLS\r\n" * 4)
            await writer.drain()
            await reader.read(100)
            return
        writer.write(b"250 ok\r\n")  # MAIL
        await reader.readline()
        writer.write(b"250 ok\r\n")  # RCPT
        await reader.readline()
        writer.write(b"354 go\r\n")  # DATA
        content = await reader.readuntil(b"\r\n.\r\n")
        deliveries.append(content)
        writer.write(b"250 2.0.0 taken\r\n")
        await reader.readline()
        writer.write(b"221 bye\r\n")
    return handle


@pytest.mark.parametrize("require", [False, True])
async def test_starttls_failing_falls_back_to_plaintext_only_without_a_policy(require: bool) -> None:
    deliveries: list[bytes] = []
    async with bad_peer(starttls_then_broken_handshake(deliveries)) as (port, connections):
        session = SmtpSession("tls.example", "127.0.0.1", port, helo_name="out.example.test", timeouts=SHORT,
                              tls=TlsPolicy(require=require))
        async with asyncio.timeout(30):
            (outcome,) = await session.deliver(queued("bob@tls.example"), BODY, ("bob@tls.example",))
            await session.close()
    assert session.tls is not None and not session.tls.used
    assert "TLS handshake failed" in session.tls.failure
    if require:
        assert outcome.kind == "deferred" and "policy requires TLS" in outcome.reason
        assert (len(connections), deliveries) == (1, [])
    else:
        assert outcome.kind == "delivered" and outcome.reply == SmtpReply(250, "2.0.0", "taken")
        assert len(connections) == 2 and deliveries == [BODY.replace(b"\r\n.", b"\r\n..") + b".\r\n"]


# --- Postfix as a real receiving MX ------------------------------------------------------------------

@pytest.fixture
def postfix_mx() -> Iterator[tuple[int, Path]]:
    """A Postfix instance of the test's own on 127.0.0.1 (STARTTLS, mail for postfix.test
    discarded after queueing); yields its port and log file."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    postfix = Postfix("127.0.0.1", port, "postfix.test").start()
    try:
        yield port, postfix.log
    finally:
        postfix.stop()


def wait_for_log(path: Path, texts: tuple[str, ...], timeout: float = 90) -> str:
    """The log once every text is in it (Postfix's queue manager is slow on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        log = path.read_text(errors="replace") if path.exists() else ""
        if all(text in log for text in texts) or time.monotonic() > deadline:
            return log
        time.sleep(0.2)


async def test_postfix_gets_our_messages_over_tls_and_logs_it(postfix_mx: tuple[int, Path]) -> None:
    port, log_file = postfix_mx
    session = SmtpSession("mx.postfix.test", "127.0.0.1", port, helo_name="out.example.test", timeouts=SHORT)
    try:
        first = await session.deliver(queued("bob@postfix.test", notify=("SUCCESS",)), BODY, ("bob@postfix.test",))
        second = await session.deliver(queued("carol@postfix.test"), EIGHT_BIT, ("carol@postfix.test",))
    finally:
        await session.close()
    assert kinds(first + second) == [("bob@postfix.test", "delivered"), ("carol@postfix.test", "delivered")]
    assert first[0].reply is not None and first[0].reply.enhanced == "2.0.0" and "queued as" in first[0].reply.text
    assert session.tls is not None and session.tls.used and session.tls.version in ("TLSv1.2", "TLSv1.3")
    log = await asyncio.to_thread(wait_for_log, log_file, ("to=<bob@postfix.test>", "to=<carol@postfix.test>"))
    # smtpd's summary of our session: the second MAIL straight after the first message, no RSET
    assert "starttls=1 mail=2 rcpt=2 bdat=2 quit=1" in log
    assert log.count("Anonymous TLS connection established from") == 1  # both messages, one connection
    assert "to=<bob@postfix.test>" in log and "to=<carol@postfix.test>" in log


def sink(deliveries: list[tuple[str, bytes]], close_after_one: bool = False,
         extensions: bytes = b"250-PIPELINING\r\n250-8BITMIME\r\n") -> Peer:
    """A plain SMTP peer (no CHUNKING) that records (peer address, content)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await ehlo_dialogue(reader, writer, extensions)
        while command := await reader.readline():
            verb = command[:4].upper()
            if verb == b"DATA":
                writer.write(b"354 go\r\n")
                content = await reader.readuntil(b"\r\n.\r\n")
                deliveries.append((writer.get_extra_info("peername")[0], content))
                writer.write(b"250 2.0.0 taken\r\n")
                if close_after_one:
                    await writer.drain()
                    return
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                return
            else:
                writer.write(b"250 ok\r\n")
    return handle


async def test_an_idle_connection_the_peer_closed_is_replaced_for_the_next_message() -> None:
    deliveries: list[tuple[str, bytes]] = []
    async with bad_peer(sink(deliveries, close_after_one=True)) as (port, connections):
        session = SmtpSession("sink.example", "127.0.0.1", port, helo_name="out.example.test", timeouts=SHORT)
        async with asyncio.timeout(30):
            first = await session.deliver(queued("bob@sink.example"), BODY, ("bob@sink.example",))
            await asyncio.sleep(0.1)  # the peer is gone by now
            second = await session.deliver(queued("carol@sink.example"), BODY, ("carol@sink.example",))
            await session.close()
    assert kinds(first + second) == [("bob@sink.example", "delivered"), ("carol@sink.example", "delivered")]
    assert len(connections) == 2 and len(deliveries) == 2


def command_log(verbs: list[bytes], *, closing_after_one: bool = False) -> Peer:
    """A plain SMTP peer that notes each command's verb; it refuses RCPT TO:<nobody@...>, and
    with `closing_after_one` answers 421 to the MAIL after the first message and hangs up."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await ehlo_dialogue(reader, writer, b"250-PIPELINING\r\n250-8BITMIME\r\n")
        taken = accepted = 0
        while command := await reader.readline():
            verb = command[:4].upper()
            verbs.append(verb)
            if verb == b"DATA" and not accepted:
                writer.write(b"554 5.5.1 no valid recipients\r\n")
            elif verb == b"DATA":
                accepted = 0
                writer.write(b"354 go\r\n")
                await reader.readuntil(b"\r\n.\r\n")
                taken += 1
                writer.write(b"250 2.0.0 taken\r\n")
            elif verb == b"MAIL" and closing_after_one and taken:
                writer.write(b"421 4.3.2 shutting down\r\n")
                await writer.drain()
                return
            elif verb == b"RCPT" and b"<nobody@" in command:
                writer.write(b"550 5.1.1 no such user\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                return
            else:
                accepted += verb == b"RCPT"
                writer.write(b"250 ok\r\n")
    return handle


async def test_mail_follows_a_finished_transaction_without_rset_and_an_unfinished_one_with_it() -> None:
    # RFC 5321 §4.1.1.4: the end of the data ends the transaction, so the next MAIL may follow
    # at once (a round trip per message saved); a transaction that ended without data (every
    # recipient refused) leaves the server's state to be reset first.
    verbs: list[bytes] = []
    async with bad_peer(command_log(verbs)) as (port, connections):
        session = SmtpSession("sink.example", "127.0.0.1", port, helo_name="out.example.test", timeouts=SHORT)
        async with asyncio.timeout(30):
            outcomes = []
            for rcpt in ("bob@sink.example", "carol@sink.example", "nobody@sink.example", "dave@sink.example"):
                outcomes += await session.deliver(queued(rcpt), BODY, (rcpt,))
            await session.close()
    assert kinds(tuple(outcomes)) == [("bob@sink.example", "delivered"), ("carol@sink.example", "delivered"),
                                      ("nobody@sink.example", "failed"), ("dave@sink.example", "delivered")]
    assert len(connections) == 1
    assert b" ".join(v for v in verbs if v != b"EHLO") == (
        b"MAIL RCPT DATA MAIL RCPT DATA MAIL RCPT DATA RSET MAIL RCPT DATA QUIT")


async def test_a_kept_connection_the_peer_closes_with_421_at_the_next_mail_is_replaced() -> None:
    # Without an RSET to probe it, the reused connection's 421 comes back to MAIL: nothing was
    # taken, so the message goes on a new connection instead of waiting for a retry.
    verbs: list[bytes] = []
    async with bad_peer(command_log(verbs, closing_after_one=True)) as (port, connections):
        session = SmtpSession("sink.example", "127.0.0.1", port, helo_name="out.example.test", timeouts=SHORT)
        async with asyncio.timeout(30):
            first = await session.deliver(queued("bob@sink.example"), BODY, ("bob@sink.example",))
            second = await session.deliver(queued("carol@sink.example"), BODY, ("carol@sink.example",))
            await session.close()
    assert kinds(first + second) == [("bob@sink.example", "delivered"), ("carol@sink.example", "delivered")]
    assert len(connections) == 2


async def test_the_source_address_is_the_one_given() -> None:
    deliveries: list[tuple[str, bytes]] = []
    async with bad_peer(sink(deliveries)) as (port, _):
        session = SmtpSession("sink.example", "127.0.0.1", port, helo_name="out.example.test", timeouts=SHORT,
                              source_ipv4="127.0.0.2", source_ipv6="::1")
        async with asyncio.timeout(30):
            (outcome,) = await session.deliver(queued("bob@sink.example"), BODY, ("bob@sink.example",))
            await session.close()
    assert outcome.kind == "delivered" and deliveries[0][0] == "127.0.0.2"


@pytest.mark.parametrize(
    ("extensions", "content", "reason"),
    [
        (b"", b"Subject: x\r\n\r\ncaf\xc3\xa9\r\n",
         "8-bit content and the receiving server does not offer 8BITMIME (no 7-bit conversion"),
        (b"250-8BITMIME\r\n", EIGHT_BIT,
         "needs SMTPUTF8 (a non-ASCII address or header) and the receiving server does not offer it"),
    ],
    ids=["8bit-body", "utf8-header"],
)
async def test_content_the_peer_cannot_take_fails_with_the_reason(extensions: bytes, content: bytes,
                                                                  reason: str) -> None:
    deliveries: list[tuple[str, bytes]] = []
    async with bad_peer(sink(deliveries, extensions=extensions)) as (port, _):
        session = SmtpSession("old.example", "127.0.0.1", port, helo_name="out.example.test", timeouts=SHORT)
        async with asyncio.timeout(30):
            (outcome,) = await session.deliver(queued("bob@old.example"), content, ("bob@old.example",))
            await session.close()
    assert outcome.kind == "failed" and outcome.reason.startswith(f"old.example [127.0.0.1]:{port}: ")
    assert reason in outcome.reason
    assert deliveries == []
