"""The listener over real loopback sockets: plain, implicit TLS, STARTTLS, limits, PROXY, close."""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from postoffice.auth.limits import ConnectionLimiter, Refusal
from postoffice.net import listener as listener_module
from postoffice.net.accept_balance import AcceptBoard
from postoffice.net.listener import Connection, Listener, start_listener
from postoffice.net.proxy import V2_SIGNATURE
from postoffice.net.tls import ReloadingServerContext, create_self_signed_certificate

Handler = Callable[[Connection], Awaitable[None]]


@pytest.fixture
def cert_file(tmp_path: Path) -> Path:
    create_self_signed_certificate(tmp_path / "cert.pem", tmp_path / "key.pem", "mail.test")
    return tmp_path / "cert.pem"


@pytest.fixture
def tls(cert_file: Path) -> ReloadingServerContext:
    return ReloadingServerContext(cert_file, cert_file.with_name("key.pem"))


@pytest.fixture
def client_context(cert_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert_file))


@asynccontextmanager
async def serving(handler: Handler, **options: Any) -> AsyncIterator[Listener]:
    listener = await start_listener("127.0.0.1", 0, handler, name="test", **options)
    try:
        yield listener
    finally:
        await listener.close(grace=1.0)


async def echo(conn: Connection) -> None:
    while line := await conn.reader.readline():
        conn.writer.write(line)
        await conn.writer.drain()


def tagged(tag: bytes) -> Handler:
    """Writes `tag` on a line first, then echoes."""
    async def handler(conn: Connection) -> None:
        conn.writer.write(tag + b"\r\n")
        await echo(conn)
    return handler


async def talk(listener: Listener, lines: list[bytes], **options: Any) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port, **options)
    try:
        replies = []
        for line in lines:
            writer.write(line)
            replies.append(await asyncio.wait_for(reader.readline(), 5))
        return replies
    finally:
        writer.close()


# --- plain and implicit TLS ----------------------------------------------------------------------

async def test_plain_echo_and_connection_details() -> None:
    seen: list[Connection] = []

    async def handler(conn: Connection) -> None:
        seen.append(conn)
        nodelay = conn.writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP,
                                                                  socket.TCP_NODELAY)
        conn.writer.write(b"nodelay %d\r\n" % bool(nodelay))
        await echo(conn)

    async with serving(handler) as listener:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", listener.address)
        assert listener.port != 0
        assert await talk(listener, [b"hello\r\n", b"again\r\n"]) == [b"nodelay 1\r\n",
                                                                     b"hello\r\n"]
    conn = seen[0]
    assert re.fullmatch(r"[0-9a-f]{6,}", conn.id)
    assert (conn.peer_ip, conn.local_ip, conn.local_port) == ("127.0.0.1", "127.0.0.1",
                                                              listener.port)
    assert conn.peer_port > 0 and conn.is_loopback
    assert (conn.tls, conn.tls_version, conn.tls_cipher) == (False, None, None)


async def test_connection_ids_are_unique() -> None:
    ids: list[str] = []

    async def handler(conn: Connection) -> None:
        ids.append(conn.id)

    async with serving(handler) as listener:
        for _ in range(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            await reader.read()  # the listener closes the connection when the handler returns
            writer.close()
    assert len(set(ids)) == 20


async def test_implicit_tls_echo(tls: ReloadingServerContext,
                                 client_context: ssl.SSLContext) -> None:
    seen: list[Connection] = []

    async def handler(conn: Connection) -> None:
        seen.append(conn)
        await echo(conn)

    async with serving(handler, tls=tls) as listener:
        replies = await talk(listener, [b"secret\r\n"], ssl=client_context,
                             server_hostname="localhost")
    assert replies == [b"secret\r\n"]
    assert seen[0].tls and seen[0].tls_version in ("TLSv1.2", "TLSv1.3")
    assert seen[0].tls_cipher


async def test_implicit_tls_picks_up_a_renewed_certificate(tls: ReloadingServerContext,
                                                          cert_file: Path) -> None:
    async def serial() -> int:
        # A fresh context each time: both certificates have the same subject name.
        context = ssl.create_default_context(cafile=str(cert_file))
        _, writer = await asyncio.open_connection("127.0.0.1", listener.port, ssl=context,
                                                  server_hostname="localhost")
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        return x509.load_der_x509_certificate(der).serial_number

    async with serving(echo, tls=tls) as listener:
        before = await serial()
        create_self_signed_certificate(cert_file, cert_file.with_name("key.pem"), "mail.test")
        assert tls.reload()
        assert await serial() != before


async def test_failed_tls_handshake_does_not_reach_the_handler(
        tls: ReloadingServerContext) -> None:
    calls: list[Connection] = []

    async def handler(conn: Connection) -> None:
        calls.append(conn)

    async with serving(handler, tls=tls) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"EHLO this is not TLS\r\n" * 20)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert calls == []


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("proxy_protocol", [False, True], ids=["direct", "proxied"])
async def test_ipv6_listener(proxy_protocol: bool) -> None:
    seen: list[Connection] = []

    async def handler(conn: Connection) -> None:
        seen.append(conn)
        await echo(conn)

    listener = await start_listener("::1", 0, handler, proxy_protocol=proxy_protocol)
    try:
        assert listener.address == f"[::1]:{listener.port}"
        reader, writer = await asyncio.open_connection("::1", listener.port)
        writer.write((b"PROXY UNKNOWN\r\n" if proxy_protocol else b"") + b"six\r\n")
        assert await reader.readline() == b"six\r\n"
        writer.close()
    finally:
        await listener.close()
    assert seen[0].peer_ip == "::1" and seen[0].is_loopback


async def test_burst_of_fifty_connections() -> None:
    async with serving(echo) as listener:
        results = await asyncio.gather(*(talk(listener, [b"%d\r\n" % n]) for n in range(50)))
    assert results == [[b"%d\r\n" % n] for n in range(50)]


async def test_shared_listener_and_a_second_one_on_its_sockets(tls: ReloadingServerContext,
                                                               client_context: ssl.SSLContext) -> None:
    """With an accept board: accepted by our own loop, counted on the board; a second listener
    serves the same sockets (as a `[pop3] processes` worker does), TLS included, and goes on
    when the first one is gone."""
    board = AcceptBoard.create(2)
    first = await start_listener("127.0.0.1", 0, tagged(b"first"), tls=tls, board=board, name="first")
    port = first.port
    # The second one gets its own descriptors of the sockets, as a worker process does.
    duplicates = [s.dup() for s in first.sockets]
    try:
        replies = await asyncio.gather(*(talk(first, [b"x\r\n"], ssl=client_context, server_hostname="localhost")
                                         for _ in range(10)))
        assert replies == [[b"first\r\n"]] * 10  # slot 1 is not accepting: all are taken here
    finally:
        await first.close(grace=1.0)
    assert board.count(0) == 0  # every connection counted out again
    second_board = AcceptBoard(os.dup(board.fd), 2, 1)
    second_board.accepting()
    second = await start_listener("", 0, tagged(b"second"), tls=tls, sockets=duplicates, board=second_board,
                                  name="second")
    try:
        assert second.port == port
        assert await talk(second, [b"x\r\n"], ssl=client_context, server_hostname="localhost") == [b"second\r\n"]
    finally:
        await second.close(grace=1.0)
    with pytest.raises(ValueError, match="PROXY"):
        await start_listener("127.0.0.1", 0, echo, board=board, proxy_protocol=True)
    second_board.close()
    board.close()


async def test_the_less_busy_sharer_takes_the_connections() -> None:
    """Two listeners on one socket, as two processes would be: while the first serves more
    (its count on the board), every new connection goes to the second."""
    board = AcceptBoard.create(2)
    other = AcceptBoard(os.dup(board.fd), 2, 1)
    other.accepting()
    busy = await start_listener("127.0.0.1", 0, tagged(b"busy"), board=board, name="busy")
    idle = await start_listener("", 0, tagged(b"idle"), sockets=[s.dup() for s in busy.sockets], board=other,
                                name="idle")
    try:
        board.add(5)  # as if it served five sessions already
        for _ in range(6):
            assert await talk(busy, [b"x\r\n"]) == [b"idle\r\n"]
    finally:
        board.add(-5)
        await busy.close(grace=1.0)
        await idle.close(grace=1.0)
    other.close()
    board.close()


# --- STARTTLS ------------------------------------------------------------------------------------

def starttls_handler(tls: ReloadingServerContext, report: list[str]) -> Handler:
    """A toy protocol: STARTTLS, then report what the first line after the upgrade was."""
    async def handler(conn: Connection) -> None:
        assert await conn.reader.readline() == b"STARTTLS\r\n"
        conn.writer.write(b"220 go ahead\r\n")
        dropped = await conn.start_tls(tls.current())
        gc.collect()  # the replaced plaintext writer must not take the socket with it
        line = await conn.reader.readline()
        report.append(f"{conn.tls_version} dropped={dropped} line={line!r}")
        conn.writer.write(b"250 " + line)
        await conn.writer.drain()
    return handler


async def test_starttls_discards_plaintext_pipelined_before_the_handshake(
        tls: ReloadingServerContext, client_context: ssl.SSLContext) -> None:
    report: list[str] = []
    async with serving(starttls_handler(tls, report)) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        # An attacker in the middle appends a command that would run "inside" the TLS session.
        writer.write(b"STARTTLS\r\nMAIL FROM:<evil@example.net>\r\n")
        assert await reader.readline() == b"220 go ahead\r\n"
        await writer.start_tls(client_context, server_hostname="localhost")
        writer.write(b"EHLO client.example\r\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"250 EHLO client.example\r\n"
        writer.close()
    assert report == [r"TLSv1.3 dropped=30 line=b'EHLO client.example\r\n'"]


def blocking_starttls_client(port: int, context: ssl.SSLContext) -> bytes:
    """A stdlib client: STARTTLS, a pipelined line, then a real TLS handshake."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"STARTTLS\r\nQUIT\r\n")
        assert sock.recv(100) == b"220 go ahead\r\n"
        with context.wrap_socket(sock, server_hostname="localhost") as tls_sock:
            tls_sock.sendall(b"NOOP\r\n")
            return tls_sock.recv(100)


async def test_starttls_with_a_stdlib_client(tls: ReloadingServerContext,
                                             client_context: ssl.SSLContext) -> None:
    report: list[str] = []
    async with serving(starttls_handler(tls, report)) as listener:
        reply = await asyncio.to_thread(blocking_starttls_client, listener.port, client_context)
    assert reply == b"250 NOOP\r\n"
    assert report == [r"TLSv1.3 dropped=6 line=b'NOOP\r\n'"]


async def test_starttls_handshake_failure_ends_only_that_connection(
        tls: ReloadingServerContext, caplog: pytest.LogCaptureFixture) -> None:
    report: list[str] = []
    async with serving(starttls_handler(tls, report)) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"STARTTLS\r\n")
        assert await reader.readline() == b"220 go ahead\r\n"
        writer.write(b"this is no ClientHello\r\n" * 10)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, not hanging
        writer.close()
        for _ in range(50):
            if listener.active_connections == 0:
                break
            await asyncio.sleep(0.02)
        assert listener.active_connections == 0
    assert report == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_starttls_twice_is_a_driver_bug(tls: ReloadingServerContext,
                                              client_context: ssl.SSLContext) -> None:
    errors: list[BaseException] = []

    async def handler(conn: Connection) -> None:
        try:
            await conn.start_tls(tls.current())
        except RuntimeError as error:
            errors.append(error)

    async with serving(handler, tls=tls) as listener:
        await talk(listener, [], ssl=client_context, server_hostname="localhost")
        await asyncio.sleep(0.1)
    assert len(errors) == 1 and "already" in str(errors[0])


# --- limits, isolation, close --------------------------------------------------------------------

async def test_connections_over_the_per_ip_limit_are_refused() -> None:
    limiter = ConnectionLimiter(max_per_ip=2)
    release = asyncio.Event()
    refused: list[Connection] = []

    async def handler(conn: Connection) -> None:
        conn.writer.write(b"220 welcome\r\n")
        await release.wait()

    async def on_refused(conn: Connection, refusal: Refusal) -> None:
        refused.append(conn)
        conn.writer.write(b"421 4.7.0 %s\r\n" % refusal.value.encode())

    async with serving(handler, limiter=limiter, on_refused=on_refused) as listener:
        held = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(2)]
        for reader, _ in held:
            assert await reader.readline() == b"220 welcome\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        assert await reader.read() == b"421 4.7.0 Too many connections from your address\r\n"
        writer.close()
        assert limiter.count("127.0.0.1") == 2
        release.set()
        for reader, writer in held:
            assert await reader.read() == b""
            writer.close()
        await asyncio.sleep(0.05)
        assert limiter.count("127.0.0.1") == 0
        assert await talk(listener, [])  == []  # a slot is free again
    assert len(refused) == 1 and refused[0].peer_ip == "127.0.0.1"


async def test_refusal_on_an_implicit_tls_port_is_readable(
        tls: ReloadingServerContext, client_context: ssl.SSLContext) -> None:
    limiter = ConnectionLimiter(max_per_ip=1)
    limiter.try_acquire("127.0.0.1")  # someone else holds the only slot

    async def on_refused(conn: Connection, refusal: Refusal) -> None:
        conn.writer.write(b"* BYE Too many connections\r\n")

    async with serving(echo, tls=tls, limiter=limiter, on_refused=on_refused) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port,
                                                       ssl=client_context,
                                                       server_hostname="localhost")
        assert await reader.readline() == b"* BYE Too many connections\r\n"
        writer.close()


async def test_handler_exception_is_logged_and_isolated(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(conn: Connection) -> None:
        line = await conn.reader.readline()
        if line == b"crash\r\n":
            raise ValueError("boom")
        await asyncio.sleep(0.1)  # still running while the other one crashes
        conn.writer.write(b"fine " + line)

    async with serving(handler) as listener:
        crash_reader, crash_writer = await asyncio.open_connection("127.0.0.1", listener.port)
        good = asyncio.create_task(talk(listener, [b"hi\r\n"]))
        crash_writer.write(b"crash\r\n")
        assert await asyncio.wait_for(crash_reader.read(), 5) == b""  # writer was closed
        crash_writer.close()
        assert await good == [b"fine hi\r\n"]
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert re.search(r"test: connection [0-9a-f]{6,} from 127\.0\.0\.1 failed",
                     failures[0].getMessage())
    assert failures[0].exc_info and isinstance(failures[0].exc_info[1], ValueError)


async def test_client_disconnects_are_not_errors(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(conn: Connection) -> None:
        await conn.reader.readexactly(100)

    async with serving(handler) as listener:
        _, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"short")
        writer.close()
        await asyncio.sleep(0.1)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("proxy_protocol", [False, True], ids=["direct", "proxied"])
async def test_close_lets_handlers_finish_within_grace(proxy_protocol: bool) -> None:
    finished: list[str] = []

    async def handler(conn: Connection) -> None:
        await conn.reader.readline()
        await asyncio.sleep(0.2)
        conn.writer.write(b"done\r\n")
        finished.append(conn.id)

    listener = await start_listener("127.0.0.1", 0, handler, proxy_protocol=proxy_protocol)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write((b"PROXY UNKNOWN\r\n" if proxy_protocol else b"") + b"go\r\n")
    await asyncio.sleep(0.05)
    assert listener.active_connections == 1
    await listener.close(grace=5)
    assert len(finished) == 1 and listener.active_connections == 0
    assert await reader.read() == b"done\r\n"
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", listener.port)


async def test_close_cancels_handlers_after_grace() -> None:
    cancelled: list[str] = []

    async def handler(conn: Connection) -> None:
        try:
            await conn.reader.readline()  # the client never sends anything
        except asyncio.CancelledError:
            conn.writer.write(b"* BYE shutting down\r\n")
            cancelled.append(conn.id)
            raise

    listener = await start_listener("127.0.0.1", 0, handler)
    clients = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(3)]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await listener.close(grace=0.2)
    assert 0.2 <= time.monotonic() - started < 2
    assert len(cancelled) == 3 and listener.active_connections == 0
    for reader, writer in clients:
        assert await reader.read() == b"* BYE shutting down\r\n"
        writer.close()


# --- PROXY protocol ------------------------------------------------------------------------------

def v2_header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    family = 0x21 if ":" in source[0] else 0x11
    addresses = (socket.inet_pton(socket.AF_INET6 if family == 0x21 else socket.AF_INET,
                                  source[0])
                 + socket.inet_pton(socket.AF_INET6 if family == 0x21 else socket.AF_INET,
                                    destination[0])
                 + source[1].to_bytes(2, "big") + destination[1].to_bytes(2, "big"))
    return V2_SIGNATURE + bytes([0x21, family]) + len(addresses).to_bytes(2, "big") + addresses


async def peer_of(listener: Listener, header: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(header + b"WHO\r\n")
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def report_peer(conn: Connection) -> None:
    line = await conn.reader.readline()
    conn.writer.write(b"%s %s:%d %s:%d loopback=%d\r\n" % (
        line.strip(), conn.peer_ip.encode(), conn.peer_port, conn.local_ip.encode(),
        conn.local_port, conn.is_loopback))


@pytest.mark.parametrize(("header", "expected"), [
    (b"PROXY TCP4 203.0.113.9 192.0.2.25 40000 25\r\n",
     b"WHO 203.0.113.9:40000 192.0.2.25:25 loopback=0\r\n"),
    (b"PROXY TCP6 2001:db8::9 2001:db8::25 40000 587\r\n",
     b"WHO 2001:db8::9:40000 2001:db8::25:587 loopback=0\r\n"),
    (v2_header(("198.51.100.4", 1234), ("192.0.2.25", 993)),
     b"WHO 198.51.100.4:1234 192.0.2.25:993 loopback=0\r\n"),
    (v2_header(("2001:db8::4", 1234), ("2001:db8::1", 143)),
     b"WHO 2001:db8::4:1234 2001:db8::1:143 loopback=0\r\n"),
    (v2_header(("::ffff:198.51.100.4", 1234), ("::ffff:192.0.2.25", 25)),
     b"WHO 198.51.100.4:1234 192.0.2.25:25 loopback=0\r\n"),
], ids=["v1_tcp4", "v1_tcp6", "v2_ipv4", "v2_ipv6", "v2_mapped_ipv4"])
async def test_proxy_header_gives_the_client_address(header: bytes, expected: bytes) -> None:
    async with serving(report_peer, proxy_protocol=True) as listener:
        assert await peer_of(listener, header) == expected


async def test_proxy_local_and_unknown_keep_the_socket_address() -> None:
    local = V2_SIGNATURE + b"\x20\x00\x00\x00"
    async with serving(report_peer, proxy_protocol=True) as listener:
        for header in (local, b"PROXY UNKNOWN\r\n"):
            reply = await peer_of(listener, header)
            assert re.fullmatch(rb"WHO 127\.0\.0\.1:\d+ 127\.0\.0\.1:\d+ loopback=1\r\n", reply)


async def test_proxy_limits_count_the_real_client() -> None:
    limiter = ConnectionLimiter(max_per_ip=1)
    limiter.try_acquire("203.0.113.9")

    async def on_refused(conn: Connection, refusal: Refusal) -> None:
        conn.writer.write(b"421 busy %s\r\n" % conn.peer_ip.encode())

    async with serving(report_peer, proxy_protocol=True, limiter=limiter,
                       on_refused=on_refused) as listener:
        refused = await peer_of(listener, b"PROXY TCP4 203.0.113.9 192.0.2.25 1 25\r\n")
        allowed = await peer_of(listener, b"PROXY TCP4 203.0.113.10 192.0.2.25 1 25\r\n")
    assert refused == b"421 busy 203.0.113.9\r\n"
    assert allowed.startswith(b"WHO 203.0.113.10:1 ")


@pytest.mark.parametrize("garbage", [
    b"EHLO mail.example.org\r\n",
    b"PROXY TCP4 203.0.113.9 192.0.2.25 40000\r\n",
    b"PROXY TCP4 203.0.113.9 192.0.2.25 40000 25\n",
    b"PROXY UNKNOWN " + b"x" * 200,
    V2_SIGNATURE + b"\x21\x11\x00\x04abcd",
    b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x00",
])
async def test_bad_proxy_header_closes_without_calling_the_handler(
        garbage: bytes, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[Connection] = []

    async def handler(conn: Connection) -> None:
        calls.append(conn)

    async with serving(handler, proxy_protocol=True) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(garbage)
        try:
            assert await asyncio.wait_for(reader.read(), 5) == b""
        except ConnectionResetError:
            pass  # closing with unread bytes makes the kernel send a reset: closed all the same
        writer.close()
    assert calls == []
    assert any("closing connection from 127.0.0.1" in r.getMessage() for r in caplog.records)


async def test_missing_proxy_header_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listener_module, "PROXY_HEADER_TIMEOUT", 0.2)
    async with serving(echo, proxy_protocol=True) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # a client waiting to be greeted
        assert time.monotonic() - started < 2
        writer.close()


def tls_after_header(port: int, context: ssl.SSLContext, header: bytes) -> bytes:
    """Send the PROXY header and the ClientHello in one segment, as a load balancer may."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        first = True
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = outgoing.read()
                sock.sendall(header + pending if first else pending)
                first = False
                incoming.write(sock.recv(65536))
        tls.write(b"WHO\r\n")
        sock.sendall(outgoing.read())
        reply = b""
        while not reply.endswith(b"\n"):
            try:
                reply += tls.read(1000)
            except ssl.SSLWantReadError:
                incoming.write(sock.recv(65536))
        return reply


async def test_proxy_header_then_implicit_tls_in_one_segment(
        tls: ReloadingServerContext, client_context: ssl.SSLContext) -> None:
    async with serving(report_peer, proxy_protocol=True, tls=tls) as listener:
        for header in (b"PROXY TCP4 203.0.113.9 192.0.2.25 40000 993\r\n",
                       v2_header(("203.0.113.9", 40000), ("192.0.2.25", 993))):
            reply = await asyncio.to_thread(tls_after_header, listener.port, client_context,
                                            header)
            assert reply == b"WHO 203.0.113.9:40000 192.0.2.25:993 loopback=0\r\n"


# --- uvloop --------------------------------------------------------------------------------------

def test_everything_under_uvloop(tls: ReloadingServerContext,
                                 client_context: ssl.SSLContext) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        report: list[str] = []
        async with serving(starttls_handler(tls, report)) as listener:
            reply = await asyncio.to_thread(blocking_starttls_client, listener.port,
                                            client_context)
            assert reply == b"250 NOOP\r\n"
        assert report == [r"TLSv1.3 dropped=6 line=b'NOOP\r\n'"]
        async with serving(echo, tls=tls) as listener:
            assert await talk(listener, [b"x\r\n"], ssl=client_context,
                              server_hostname="localhost") == [b"x\r\n"]
        async with serving(report_peer, proxy_protocol=True, tls=tls) as listener:
            reply = await asyncio.to_thread(tls_after_header, listener.port, client_context,
                                            b"PROXY TCP4 203.0.113.9 192.0.2.25 40000 993\r\n")
            assert reply.startswith(b"WHO 203.0.113.9:40000 ")

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert "uvloop" in type(runner.get_loop()).__module__
        runner.run(scenario())
