"""Hostile and broken SMTP peers against the real queue runner: a `postoffice serve` process
sends one queued message to each of them (recipients `user@[127.0.0.N]`, `[outbound] mx_port`
the peers' shared port) and `queue show --json` must name what each one did, as a deferral,
while the process stays up, its memory bounded and no worker stuck (issue 15, "Bad input from
peers").

The peers are small asyncio servers written here, one per loopback address, served by
peer_host.PeerHost from a thread of this test process; the timeouts are shrunk through
`[outbound] reply_timeout` (5 s: DATA's 354 gets 2 s, a block of data 3 s, the end of data
10 s, the TLS handshake 5 s)."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from peer_host import Handler, PeerHost, Record, greet, take_mail, trickle

from cli_run import po
from serve_process import Serve, enqueue, init_data

SENDER = "alice@example.org"
REPLY_TIMEOUT = 5.0  # generous: the peers and serve share two loaded cores
TEST_SECONDS = 120


def peers(host: Callable[[], PeerHost]) -> dict[str, tuple[Handler | None, str]]:
    """Address -> (handler, what `queue show` must say). ``host()`` gives the records later."""

    def rec(address: str) -> Record:
        return host().records[address]

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await reader.read(100)

    async def slow_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await trickle(writer, b"220 slow.example ESMTP\r\n")

    async def slow_ehlo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 slow.example ESMTP\r\n")
        await reader.readline()
        await trickle(writer, b"250-slow.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n", every=0.25)

    async def drops_mid_data(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer)
        for answer in (b"250 ok\r\n", b"250 ok\r\n", b"354 go ahead\r\n"):
            await reader.readline()
            writer.write(answer)
        await reader.readexactly(1000)  # some of the content, then gone
        writer.transport.abort()

    async def starttls_then_junk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer, b"250-STARTTLS\r\n")
        command = await reader.readline()
        if command == b"STARTTLS\r\n":
            writer.write(b"220 2.0.0 go ahead\r\n")
            await reader.read(10)  # the ClientHello
            writer.write(b"this is not TLS\r\n" * 4)
            await reader.read(100)
            return
        writer.write(b"451 4.7.0 only with TLS, come back later\r\n")  # MAIL in plaintext
        await reader.read(100)

    async def starttls_then_hangup(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer, b"250-STARTTLS\r\n")
        if await reader.readline() == b"STARTTLS\r\n":
            writer.write(b"220 2.0.0 go ahead\r\n")
            await reader.read(10)
            return  # mid-handshake
        # The plaintext retry: closed after EHLO's reply (a server that only works in TLS).

    async def endless_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = b"220-" + b"x" * 1020 + b"\r\n"
        record = rec("127.0.0.66")
        while record.written < 100 * 2**20:  # 100 MB unless the sender stops listening
            writer.write(line * 64)
            await writer.drain()
            record.written += len(line) * 64

    async def no_line_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record = rec("127.0.0.67")
        writer.write(b"220 ")
        while record.written < 100 * 2**20:
            writer.write(b"y" * 65536)
            await writer.drain()
            record.written += 65536

    async def endless_ehlo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 peer.example ESMTP\r\n")
        await reader.readline()
        while True:
            writer.write(b"250-X-MORE\r\n" * 100)
            await writer.drain()
            await asyncio.sleep(0.01)

    async def long_banner_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 " + b"long.example ESMTP " * 32 + b"\r\n")  # 612 octets: over RFC 5321's 512
        await reader.readline()
        writer.write(b"250-long.example\r\n250 8BITMIME\r\n")
        await take_mail(reader, writer, rec("127.0.0.69"))

    async def ok_to_data(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer)
        for answer in (b"250 ok\r\n", b"250 ok\r\n", b"250 2.0.0 queued as 12345\r\n"):
            await reader.readline()
            writer.write(answer)
        await reader.read(100000)

    async def closes_after_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 peer.example ESMTP\r\n")
        await writer.drain()
        # Hang up without an answer once EHLO is in: closing with EHLO unread would make the
        # kernel send a reset instead, and which one we saw depended on timing (seen in CI).
        await reader.readline()

    async def busy_ehlo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 peer.example ESMTP\r\n")
        await reader.readline()
        writer.write(b"421 4.7.0 peer.example too busy, try later\r\n")
        await reader.read(100)

    async def stops_reading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer)
        for answer in (b"250 ok\r\n", b"250 ok\r\n", b"354 go ahead\r\n"):
            await reader.readline()
            writer.write(answer)
        await asyncio.sleep(TEST_SECONDS)  # never reads the content

    async def control_characters(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer)
        await reader.readline()
        writer.write(b"250 ok\r\n")
        await reader.readline()
        writer.write(b"451 4.3.0 \x1b[31mred\x1b[0m \xff\xfe not UTF-8\x07\r\n")
        await take_mail(reader, writer, rec("127.0.0.74"))

    async def code_600(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"600 peer.example ESMTP\r\n")
        await reader.read(100)

    async def slow_final_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer)
        for answer in (b"250 ok\r\n", b"250 ok\r\n", b"354 go ahead\r\n"):
            await reader.readline()
            writer.write(answer)
        await reader.readuntil(b"\r\n.\r\n")
        await trickle(writer, b"250 2.0.0 taken, slowly\r\n")

    async def tls_silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer, b"250-STARTTLS\r\n")
        if await reader.readline() == b"STARTTLS\r\n":
            writer.write(b"220 2.0.0 go ahead\r\n")
            await asyncio.sleep(TEST_SECONDS)  # reads the ClientHello, never answers it
            return
        writer.write(b"451 4.7.0 only with TLS, come back later\r\n")
        await reader.read(100)

    async def tls_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer, b"250-STARTTLS\r\n")
        if await reader.readline() == b"STARTTLS\r\n":
            writer.write(b"220 2.0.0 go ahead\r\n")
            await writer.drain()
            writer.transport.abort()  # before the ClientHello arrives
            return
        writer.write(b"450 4.2.0 no, try later\r\n")  # MAIL in plaintext
        await reader.read(100)

    async def good(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer)
        await take_mail(reader, writer, rec("127.0.0.77"))

    within = f"did not answer within {REPLY_TIMEOUT:g} s"
    return {
        "127.0.0.61": (garbage, "broke the SMTP protocol: not an SMTP reply: 'HTTP/1.1 400 Bad Request'"),
        "127.0.0.62": (slow_banner, f"{within} (waiting for the banner)"),
        "127.0.0.63": (slow_ehlo, f"{within} (waiting for the reply to EHLO)"),
        "127.0.0.64": (drops_mid_data, "(waiting for the reply to the end of data)"),
        "127.0.0.65": (starttls_then_junk, "451 4.7.0 only with TLS, come back later"),
        "127.0.0.66": (endless_banner, "broke the SMTP protocol: a reply longer than 65536 bytes or 200 lines"),
        "127.0.0.67": (no_line_end, "broke the SMTP protocol: a reply line longer than 4096 bytes"),
        "127.0.0.68": (endless_ehlo, "broke the SMTP protocol: a reply longer than 65536 bytes or 200 lines"),
        "127.0.0.69": (long_banner_line, ""),  # delivered
        "127.0.0.70": (ok_to_data, "broke the SMTP protocol: a 250 reply to DATA instead of 354 "
                                   "(the message was not sent)"),
        "127.0.0.71": (closes_after_banner, "closed the connection (waiting for the reply to EHLO)"),
        "127.0.0.72": (busy_ehlo, "refused EHLO: 421 4.7.0 peer.example too busy, try later"),
        "127.0.0.73": (stops_reading, f"took no data for {REPLY_TIMEOUT * 0.6:g} s"),
        "127.0.0.74": (control_characters, "451 4.3.0 [31mred [0m \ufffd\ufffd not UTF-8"),
        "127.0.0.75": (code_600, "broke the SMTP protocol: not an SMTP reply: '600 peer.example ESMTP'"),
        "127.0.0.76": (slow_final_reply, f"did not answer within {REPLY_TIMEOUT * 2:g} s "
                                         "(waiting for the reply to the end of data)"),
        "127.0.0.77": (good, ""),  # delivered while the others misbehave
        "127.0.0.78": (starttls_then_hangup, "closed the connection (waiting for the reply to MAIL)"),
        "127.0.0.79": (tls_silence, "451 4.7.0 only with TLS, come back later"),
        "127.0.0.80": (tls_then_close, "450 4.2.0 no, try later"),
        "127.0.0.81": (None, f"no connection to 127.0.0.81 [127.0.0.81]:{{port}} within {REPLY_TIMEOUT:g} s"),
    }


def message(address: str, size: int = 2000) -> bytes:
    body = b"".join(b"line %06d of the body of a message for a bad peer\r\n" % n for n in range(size // 50 + 1))
    return (f"From: <{SENDER}>\r\nTo: <bob@[{address}]>\r\nSubject: to {address}\r\n"
            f"Message-ID: <{address}@example.org>\r\n\r\n").encode() + body


# The content a peer must not take (or take only partly) is big; the others get a small one.
SIZES = {"127.0.0.64": 300_000, "127.0.0.73": 12_000_000}


@pytest.fixture
def host() -> Iterator[PeerHost]:
    holder: list[PeerHost] = []
    table = peers(lambda: holder[0])
    with PeerHost({address: handler for address, (handler, _) in table.items()}) as started:
        holder.append(started)
        yield started


def queue_json(data: Path, *args: str) -> object:
    return json.loads(po("queue", *args, "--json", data=data).stdout)


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


def test_every_bad_peer_is_a_deferral_saying_what_it_did_and_the_runner_carries_on(
        tmp_path: Path, host: PeerHost) -> None:
    expected = {address: reason.replace("{port}", str(host.port))
                for address, (_, reason) in peers(lambda: host).items()}
    data = init_data(tmp_path / "data", (SENDER,), outbound=f"""
        mx_port = {host.port}
        retry_schedule = [3600]
        concurrency = {len(expected) + 2}
        reply_timeout = {REPLY_TIMEOUT}
        connect_timeout = {REPLY_TIMEOUT}
        delay_warning_after = 0""")
    ids = dict(zip(expected, enqueue(data, [
        (SENDER, message(address, SIZES.get(address, 2000)), [f"bob@[{address}]"]) for address in expected]),
        strict=True))
    server = Serve(data).started()
    try:
        started = time.monotonic()
        deadline = started + TEST_SECONDS
        while time.monotonic() < deadline:
            entries = {e["id"]: e for e in queue_json(data, "list")}  # type: ignore[union-attr]
            if all(e["attempts"] >= 1 for e in entries.values()):
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        assert server.proc.poll() is None, "serve died"
        rss = peak_rss(server.proc.pid)
        shown = {address: queue_json(data, "show", str(ids[address])) if ids[address] in entries else None
                 for address in expected}
    finally:
        log = server.stop()
    assert "Traceback" not in log, log
    # Every attempt ended within the shrunk timeouts (10 s at most, one attempt each, in parallel),
    # not when the peers chose: nothing waits for a trickle or a never-ending reply.
    assert elapsed < 60, f"the attempts took {elapsed:.0f} s"
    for address, reason in expected.items():
        entry = shown[address]
        if not reason:  # the well-behaved ones (one of them with a 612-octet banner line)
            assert entry is None, f"{address}: still queued: {entry}"
            (content,) = host.records[address].messages
            assert f"Message-ID: <{address}@example.org>".encode() in content
            continue
        assert isinstance(entry, dict), f"{address}: delivered, but it should have been deferred"
        (attempt,) = entry["attempts"]
        assert attempt["outcome"] == "deferred", (address, attempt)
        assert reason in attempt["reply"], (address, attempt["reply"])
        assert entry["recipients"] == [{"address": f"bob@[{address}]", "status": "pending"}]
        assert reason in entry["last_error"]
    for address, tls in (("127.0.0.65", "TLS handshake failed: "), ("127.0.0.78", "TLS handshake failed: "),
                         ("127.0.0.80", "TLS handshake failed: "),
                         ("127.0.0.79", f"no TLS handshake within {REPLY_TIMEOUT:g} s")):
        (attempt,) = shown[address]["attempts"]  # type: ignore[index]
        assert attempt["tls"].startswith(f"none ({tls}"), attempt  # then plaintext; the TLS column says why
    assert host.records["127.0.0.65"].connections == 2  # TLS, then once in plaintext
    assert host.records["127.0.0.70"].messages == []
    assert "\x1b" not in shown["127.0.0.74"]["attempts"][0]["reply"]  # type: ignore[index]
    # The endless banners were cut off after their first 64 KiB, not read to the end (100 MB):
    # what the peer could write before being hung up on is what the sockets' buffers hold.
    assert host.records["127.0.0.66"].written < 32 * 2**20
    assert host.records["127.0.0.67"].written < 32 * 2**20
    assert rss < 400 * 2**20, f"serve's peak RSS {rss / 2**20:.0f} MB"
