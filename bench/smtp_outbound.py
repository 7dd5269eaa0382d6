"""Outbound delivery end to end: postoffice against Postfix + OpenDKIM, side by side; one result line.

The job, the same for every target in the same run: --count messages of about 5 KB (4.6-5.6 KB,
one recipient each, at one of 10 sink domains in turn) submitted by the bench's own asyncio
client over --connections sessions, each session EHLO, STARTTLS, EHLO, AUTH PLAIN (when offered),
then --per-connection transactions pipelined as MAIL RCPT DATA in one write, then QUIT. The
server DKIM-signs each message for the sender's domain (bench.test, RSA-2048), looks up the
recipient domain's MX through the loopback DNS and relays it to that domain's sink. The time
runs from the first connection of the load until the sinks hold every accepted message (the
sinks note the CLOCK_MONOTONIC time of each arrival); msg/s = messages / that time.

- DNS: NSD behind Unbound on loopback (the tests' tests/dns_server.py; Debian nsd, unbound)
  serving d0..d9.outbound-bench.test, each with an MX host of its own on 127.0.0.201..210,
  and bench.test's DKIM key records (for the check below).
- Sinks: one process (this script with --sink, on uvloop when installed), a minimal SMTP
  receiver on port P of each of the 10 addresses: EHLO offers PIPELINING, 8BITMIME and SIZE
  (no STARTTLS, so both targets send in clear after trying); every message is answered 250,
  counted per domain by its X-Bench-Seq header (a duplicate counts once and is reported), and
  checked for a DKIM-Signature with d=bench.test. The first message of each domain is kept
  and verified afterwards (mailauth/dkim.py against the published keys): every one must
  pass. The sinks' CPU time is on stderr, to show they are not the bottleneck.
- postoffice: `postoffice serve` on a copy of a cached data dir template (init --domain
  bench.test, which makes its DKIM keys, plus the user sender@bench.test), only `submission`
  listening, `[dns] nameservers` = the loopback Unbound, `[outbound] mx_port` = P, every other
  key (concurrency included) at its default. Before the timed load one untimed session logs
  in once, so the verified-login cache holds the password (a steady-state server; argon2 on
  50 simultaneous first logins would measure the password scheme). Peak RSS: the serve
  process tree, polled every 50 ms during the load.
- postfix+opendkim: a private Postfix instance (Debian postfix; config, queue and log in a
  scratch directory, main.cf modelled on ../shared/reference/postfix-setup.sh) accepting on a
  free 127.0.0.1 port with STARTTLS offered (the postoffice template's certificate), relaying
  for 127.0.0.0/8 (mynetworks: no SASL, so its clients skip AUTH, a small saving for Postfix),
  with OpenDKIM (Debian opendkim) as its milter on a loopback port signing bench.test with an
  RSA-2048 key, relaxed/relaxed. Postfix looks MX records up itself (smtp_host_lookup = dns)
  with the libc resolver, which only reads /etc/resolv.conf and only port 53: Postfix and
  OpenDKIM run in a private mount namespace (unshare -m) where /etc/resolv.conf names a second
  Unbound on 127.0.0.253:53 that forwards every question to the loopback Unbound above, so no
  DNS question leaves the loopback. Where the namespace cannot be made (no CAP_SYS_ADMIN) the
  relaying uses transport_maps to the 10 sink addresses instead (no MX lookups), and the line
  says `(transport_maps)`. Peak RSS: the Postfix master's process tree plus OpenDKIM.
  Defaults otherwise (20 connections per destination, connection caching on demand).

The client (on uvloop when installed) and the sinks run beside the servers, on the same
machine: stderr shows their CPU time, the server's and how busy the machine was. Progress goes to
stderr; stdout gets one line: per target the end-to-end rate, the server's CPU time per message,
its peak RSS and PSS, and the 1-minute load average at the end of its run. For example (the
shared 2-core machine, busy with other work; see bench/README.md):

smtp_outbound: N=10000 c=50 | postoffice 30 msg/s 9.2 ms CPU/msg rss 109 MB (pss 89 MB, load 11.9)
  | postfix+opendkim 118 msg/s 6.3 ms CPU/msg rss 1,484 MB (pss 273 MB, load 37.3)
  | 0.25x postfix+opendkim | target >=1.0x: FAIL

--set SECTION.KEY=VALUE changes a key of postoffice's config for an experiment (the line
names it), e.g. --set outbound.concurrency=100.

A target that cannot run is "unavailable" or "not installed" and the other still runs.
Exit status: 0 PASS, 1 FAIL, 2 no verdict (a target unavailable, failed or incomplete).

Example: .venv/bin/python bench/smtp_outbound.py --count 2000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import cast

from benchkit import (
    CACHE_DIR,
    DOMAIN,
    MB,
    PASSWORD,
    PER_SOURCE_IP,
    BenchError,
    Cleanups,
    Monitor,
    Unavailable,
    add_profile_argument,
    add_targets_argument,
    busy_share,
    cached_template,
    cleanup_stack,
    copy_data_dir,
    cpu_delta,
    finish_postoffice,
    free_port,
    log,
    message_bodies,
    parse_targets,
    port_open,
    postoffice_env,
    psutil,  # imported there, with a hint when it is missing
    run_async,
    run_main,
    run_postoffice,
    run_targets,
    scratch_dir,
    set_toml_keys,
    source_address,
    source_digest,
    start_postoffice,
    stop_process,
    tail,
    wait_for_ports,
)

TARGETS = ("postoffice", "postfix")
LABELS = {"postoffice": "postoffice", "postfix": "postfix+opendkim"}
SENDER = f"sender@{DOMAIN}"
SINK_ZONE = "outbound-bench.test"
SINK_DOMAINS = tuple(f"d{k}.{SINK_ZONE}" for k in range(10))
SINK_ADDRESSES = tuple(f"127.0.0.{201 + k}" for k in range(10))
POSTFIX_RESOLVER = "127.0.0.253"  # the second Unbound, on port 53, that Postfix's resolv.conf names
OPENDKIM_SELECTOR = "opendkim"
REPLY_TIMEOUT = 120.0  # one transaction, from MAIL to the reply to the data
STALL_SECONDS = 120.0  # no new message at the sinks this long after the load: give up waiting
SBIN = "/usr/sbin:/sbin:" + os.environ.get("PATH", "")
TESTS = Path(__file__).resolve().parent.parent / "tests"

HEADER_ESTIMATE = 330  # bytes of header per message, roughly; bodies make up the rest


# --- the load ---------------------------------------------------------------------------------

@dataclass
class Workload:
    count: int
    bodies: list[bytes]  # "\r\n" + dot-stuffed body lines + ".\r\n": the part after the headers
    date: bytes
    token: bytes

    def recipient(self, i: int) -> str:
        return f"user{i // 10 % 100}@{SINK_DOMAINS[i % len(SINK_DOMAINS)]}"

    def message(self, i: int) -> bytes:
        """Message i as sent after 354: headers, body, the final dot."""
        n = str(i).encode()
        return b"".join((
            b"From: Bench Sender <", SENDER.encode(), b">\r\nTo: <", self.recipient(i).encode(),
            b">\r\nSubject: outbound bench message ", n, b" about the weekly status\r\nDate: ", self.date,
            b"\r\nMessage-ID: <", n, b".", self.token, b"@", DOMAIN.encode(), b">\r\nX-Bench-Seq: ", n,
            b"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
            b"Content-Transfer-Encoding: 7bit\r\n", self.bodies[i % len(self.bodies)],
        ))

    def mean_size(self) -> float:
        sample = [len(self.message(i)) for i in range(min(self.count, 500))]
        return sum(sample) / len(sample)


def make_workload(count: int, seed: int) -> Workload:
    rng = random.Random(seed)
    bodies = message_bodies(rng, HEADER_ESTIMATE)
    return Workload(count, bodies, formatdate(localtime=True).encode(), f"{os.getpid()}.{int(time.time())}".encode())


@dataclass
class LoadResult:
    accepted: int = 0
    rejected: int = 0
    lost: int = 0  # in flight when a session failed
    sessions: int = 0
    started: float = 0.0  # time.monotonic() of the first connection
    submitted: float = 0.0  # seconds until the last message was accepted
    tls: str = ""
    auth: bool | None = None
    pipelining: bool | None = None
    latencies: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    client_cpu: float = 0.0

    def note(self, text: str) -> None:
        if len(self.problems) < 10:
            self.problems.append(text)


class SmtpFailure(Exception):
    pass


def _client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False  # the servers' certificates are self-signed
    context.verify_mode = ssl.CERT_NONE
    return context


class Load:
    """--connections sessions taking messages from one counter until all are sent."""

    def __init__(self, work: Workload, port: int, connections: int, per_connection: int,
                 user: str | None) -> None:
        self.work = work
        self.port = port
        self.connections = connections
        self.per_connection = per_connection
        self.auth = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()) if user else None
        self.next = 0
        self.context = _client_context()
        self.result = LoadResult()

    def take(self) -> int | None:
        if self.next >= self.work.count:
            return None
        self.next += 1
        return self.next - 1

    async def worker(self, number: int) -> None:
        failures = 0
        while self.next < self.work.count and failures < 5:
            try:
                await self.session(source_address(number))
                failures = 0
            except (OSError, EOFError, asyncio.IncompleteReadError, SmtpFailure, TimeoutError,
                    asyncio.LimitOverrunError, ssl.SSLError) as exc:
                failures += 1
                self.result.note(f"session {number}: {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.1 * failures)

    async def session(self, source: str, messages: int | None = None) -> None:
        """One connection: greeting, EHLO, STARTTLS, EHLO, AUTH, transactions, QUIT."""
        res = self.result
        async with asyncio.timeout(REPLY_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))
        in_flight = False
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                await _expect(reader, 220, "greeting")
                writer.write(b"EHLO client.bench.test\r\n")
                caps = await _expect(reader, 250, "EHLO")
                if b"STARTTLS" not in caps:
                    raise SmtpFailure("the server does not offer STARTTLS")
                writer.write(b"STARTTLS\r\n")
                await _expect(reader, 220, "STARTTLS")
                await writer.start_tls(self.context)
                tls = writer.get_extra_info("ssl_object")
                res.tls = res.tls or (f"{tls.version()} {tls.cipher()[0]}" if tls else "?")
                writer.write(b"EHLO client.bench.test\r\n")
                caps = await _expect(reader, 250, "EHLO after STARTTLS")
                offers_auth = re.search(rb"(?m)^250[- ]AUTH[ =].*PLAIN", caps) is not None
                if self.auth is not None and offers_auth:
                    writer.write(b"AUTH PLAIN " + self.auth + b"\r\n")
                    await _expect(reader, 235, "AUTH")
                res.auth = self.auth is not None and offers_auth
            pipelining = re.search(rb"(?m)^250[- ]PIPELINING", caps) is not None
            res.pipelining = pipelining
            res.sessions += 1
            for _ in range(self.per_connection if messages is None else messages):
                i = self.take() if messages is None else None
                if i is None:
                    break
                in_flight = True
                async with asyncio.timeout(REPLY_TIMEOUT):
                    await self.transaction(reader, writer, i, pipelining)
                in_flight = False
            async with asyncio.timeout(10):
                writer.write(b"QUIT\r\n")
                await _reply(reader)
        except BaseException:
            if in_flight:
                res.lost += 1
            raise
        finally:
            writer.close()

    async def transaction(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int,
                          pipelining: bool) -> None:
        res = self.result
        commands = [f"MAIL FROM:<{SENDER}>\r\n".encode(), f"RCPT TO:<{self.work.recipient(i)}>\r\n".encode(),
                    b"DATA\r\n"]
        began = time.monotonic()
        replies = []
        if pipelining:
            writer.write(b"".join(commands))
            for _ in commands:
                replies.append(await _reply(reader))
        else:
            for command in commands:
                writer.write(command)
                replies.append(await _reply(reader))
        if replies[-1][0] != 354:
            res.rejected += 1
            bad = next((text for code, text in replies if code // 100 not in (2, 3)), replies[-1][1])
            res.note(f"message {i}: {bad.decode(errors='replace').strip()}")
            if replies[-1][0] == 421:
                raise SmtpFailure(bad.decode(errors="replace").strip())
            if replies[-1][0] // 100 == 2:
                writer.write(b".\r\n")  # DATA was accepted after a refusal: end it empty
                await _reply(reader)
            return
        writer.write(self.work.message(i))
        code, text = await _reply(reader)
        if code == 250:
            res.accepted += 1
            now = time.monotonic()
            res.latencies.append(now - began)
            res.submitted = now - res.started
        else:
            res.rejected += 1
            res.note(f"message {i}: {text.decode(errors='replace').strip()}")
            if code == 421:
                raise SmtpFailure(text.decode(errors="replace").strip())


async def _reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One reply, its lines joined."""
    lines = []
    while True:
        line = await reader.readuntil(b"\n")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            break
    try:
        return int(lines[-1][:3]), b"".join(lines)
    except ValueError:
        raise SmtpFailure(f"bad reply {lines[-1][:80]!r}") from None


async def _expect(reader: asyncio.StreamReader, code: int, what: str) -> bytes:
    got, text = await _reply(reader)
    if got != code:
        raise SmtpFailure(f"{what}: {text.decode(errors='replace').strip()[:200]}")
    return text


# --- the sinks --------------------------------------------------------------------------------

class SinkProtocol(asyncio.Protocol):
    """A minimal SMTP receiver: every message accepted, counted by the sink state."""

    def __init__(self, state: SinkState) -> None:
        self.state = state
        self.buf = bytearray()
        self.in_data = False
        self.scanned = 0
        self.domains: list[str] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        self.state.connections += 1
        self.transport.write(b"220 sink.bench.test ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out: list[bytes] = []
        closing = False
        while buf and not closing:
            if self.in_data:
                if buf.startswith(b".\r\n"):  # an empty message
                    content, consumed = b"", 3
                else:
                    end = buf.find(b"\r\n.\r\n", max(self.scanned - 4, 0))
                    if end < 0:
                        self.scanned = len(buf)
                        if len(buf) > 60_000_000:
                            closing = True
                            out.append(b"552 5.3.4 Too big\r\n")
                        break
                    content, consumed = bytes(buf[:end + 2]), end + 5
                self.state.message(content, self.domains)
                del buf[:consumed]
                self.in_data = False
                self.scanned = 0
                out.append(b"250 2.0.0 Ok\r\n")
                continue
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > 4096:
                    out.append(b"500 5.5.2 Line too long\r\n")
                    closing = True
                break
            line = bytes(buf[:nl + 1])
            del buf[:nl + 1]
            reply = self.command(line)
            closing = reply.startswith(b"221")
            out.append(reply)
        if self.transport is None:
            return
        if out:
            self.transport.write(b"".join(out))
        if closing:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def command(self, line: bytes) -> bytes:
        verb = line[:4].upper()
        if verb == b"EHLO":
            return b"250-sink.bench.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n"
        if verb == b"HELO":
            return b"250 sink.bench.test\r\n"
        if verb == b"MAIL":
            self.domains = []
            return b"250 2.1.0 Ok\r\n"
        if verb == b"RCPT":
            address = line[line.find(b"<") + 1:line.rfind(b">")]
            self.domains.append(address.rpartition(b"@")[2].decode(errors="replace").lower())
            return b"250 2.1.5 Ok\r\n"
        if verb == b"DATA":
            if not self.domains:
                return b"503 5.5.1 No recipients\r\n"
            self.in_data = True
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if verb in (b"RSET", b"NOOP"):
            self.domains = [] if verb == b"RSET" else self.domains
            return b"250 2.0.0 Ok\r\n"
        if verb == b"QUIT":
            return b"221 2.0.0 Bye\r\n"
        return b"502 5.5.1 Not implemented\r\n"


_SEQ = re.compile(rb"(?im)^x-bench-seq:[ \t]*(\d+)")
_SIGNATURE = re.compile(rb"(?im)^dkim-signature:")
_SIGNER = re.compile(rb"(?i)(?:^|[;\s])d=\s*" + re.escape(DOMAIN.encode()) + rb"\s*(?:;|$)")


class SinkState:
    """What the sinks received, over every connection."""

    def __init__(self, save: Path) -> None:
        self.save = save
        self.seen: set[int] = set()
        self.per_domain: dict[str, int] = {}
        self.duplicates = 0
        self.unsigned = 0
        self.unnumbered = 0
        self.connections = 0
        self.last = 0.0  # time.monotonic() of the last new message

    def message(self, data: bytes, domains: list[str]) -> None:
        head = data[:data.find(b"\r\n\r\n") + 2]
        if not any(_SIGNER.search(s) for s in _signatures(head)):
            self.unsigned += 1
        found = _SEQ.search(head)
        if found is None:
            self.unnumbered += 1
            return
        seq = int(found.group(1))
        if seq in self.seen:
            self.duplicates += 1
            return
        self.seen.add(seq)
        self.last = time.monotonic()
        for domain in domains:
            if domain not in self.per_domain:
                (self.save / f"{domain}.eml").write_bytes(data)  # the first one: its signature is verified later
            self.per_domain[domain] = self.per_domain.get(domain, 0) + 1

    def stats(self) -> dict[str, object]:
        return {"distinct": len(self.seen), "last": self.last, "duplicates": self.duplicates,
                "unsigned": self.unsigned, "unnumbered": self.unnumbered, "per_domain": self.per_domain,
                "connections": self.connections}


def _signatures(head: bytes) -> list[bytes]:
    """Each DKIM-Signature field's value, unfolded, without white space."""
    fields = []
    for m in _SIGNATURE.finditer(head):
        end = m.end()
        while True:
            nl = head.find(b"\r\n", end)
            if nl < 0 or nl + 2 >= len(head) or head[nl + 2:nl + 3] not in (b" ", b"\t"):
                break
            end = nl + 2
        fields.append(re.sub(rb"\s+", b"", head[m.end():nl if nl >= 0 else len(head)]))
    return fields


def sink_main(port: int, save: Path) -> None:
    """The sink process: listen on every sink address, answer `stats` lines on stdin with a JSON
    line on stdout, stop at EOF or SIGTERM."""
    state = SinkState(save)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = [await loop.create_server(lambda: SinkProtocol(state), address, port, backlog=1024)
                   for address in SINK_ADDRESSES]
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        pending = bytearray()

        def on_stdin() -> None:
            chunk = os.read(0, 4096)
            if not chunk:
                loop.remove_reader(0)
                stop.set()
                return
            pending.extend(chunk)
            while b"\n" in pending:
                del pending[:pending.index(b"\n") + 1]
                sys.stdout.write(json.dumps(state.stats()) + "\n")
                sys.stdout.flush()

        loop.add_reader(0, on_stdin)
        print("ready", "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio", flush=True)
        await stop.wait()
        for server in servers:
            server.close()

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


class Sinks:
    """The sink process, seen from the bench."""

    def __init__(self, port: int, save: Path, log_path: Path, env: dict[str, str], cleanups: Cleanups) -> None:
        self.port = port
        self.save = save
        self._lock = threading.Lock()
        self.proc = subprocess.Popen([sys.executable, __file__, "--sink", str(port), str(save)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_path.open("wb"),
                                     start_new_session=True)
        cleanups.append(lambda: stop_process(self.proc, "sinks"))
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().decode().split()
        if not ready or ready[0] != "ready":
            raise BenchError(f"the sinks did not start: {tail(log_path)}")
        self.monitor = Monitor(self.proc.pid, reaped=False)
        log(f"sinks: pid {self.proc.pid} ({ready[1]}) on {SINK_ADDRESSES[0]}..{SINK_ADDRESSES[-1]} port {port}")

    def stats(self) -> dict[str, object]:
        with self._lock:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(b"stats\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise BenchError("the sinks exited")
        stats: dict[str, object] = json.loads(line)
        return stats


# --- one run: load, then wait for the sinks -----------------------------------------------------

@dataclass
class Outcome:
    load: LoadResult
    delivered: int
    seconds: float  # first connection -> last new message at a sink
    stats: dict[str, object]
    server_cpu: float
    sink_cpu: float
    machine: dict[str, float]
    loadavg: float
    rss: int = 0
    pss: int = 0  # peak PSS: shared pages divided among the processes that map them
    verified: str = ""


def run_job(work: Workload, port: int, args: argparse.Namespace, label: str, sinks: Sinks, monitor: Monitor,
            user: str | None) -> Outcome:
    """Warm up (one login, untimed), then the load; returns once the sinks hold every accepted
    message or nothing new arrived for STALL_SECONDS after the load."""
    warm = Load(work, port, 1, 0, user)
    run_async(lambda: warm.session(source_address(0), messages=0))
    if warm.result.problems:
        raise BenchError(f"{label}: the warm-up session failed: {warm.result.problems[0]}")
    load = Load(work, port, args.connections, args.per_connection, user)
    res = load.result
    cpu0, sink0, machine0 = monitor.cpu(), sinks.monitor.cpu(), psutil.cpu_times()
    monitor.start()

    async def main() -> dict[str, object]:
        client0 = time.thread_time()  # the event loop's thread: the client, not the RSS polls
        res.started = time.monotonic()
        workers = asyncio.gather(*(load.worker(n) for n in range(args.connections)))
        workers.add_done_callback(lambda _: setattr(res, "client_cpu", time.thread_time() - client0))
        stats: dict[str, object] = {}
        last_change, last_seen, next_report = time.monotonic(), -1, time.monotonic() + 5
        while True:
            await asyncio.sleep(0.25)
            stats = await asyncio.to_thread(sinks.stats)
            distinct = int(stats["distinct"])  # type: ignore[call-overload]
            now = time.monotonic()
            if distinct != last_seen:
                last_seen, last_change = distinct, now
            if now >= next_report:
                next_report = now + 5
                log(f"{label}: {res.accepted:,}/{work.count:,} accepted, {distinct:,} at the sinks after "
                    f"{now - res.started:.0f} s, server RSS {monitor.peak / MB:,.0f} MB")
            if workers.done():
                if distinct >= res.accepted:
                    break
                if now - last_change > STALL_SECONDS:
                    log(f"{label}: nothing new at the sinks for {STALL_SECONDS:.0f} s; "
                        f"{res.accepted - distinct:,} accepted messages missing")
                    break
        await workers
        return stats

    try:
        stats = run_async(main)
    finally:
        monitor.stop()
    machine = cpu_delta(machine0, psutil.cpu_times())
    delivered = int(stats["distinct"])  # type: ignore[call-overload]
    last = float(stats["last"])  # type: ignore[arg-type]
    seconds = last - res.started if last else 0.0
    return Outcome(res, delivered, seconds, stats, monitor.cpu() - cpu0, sinks.monitor.cpu() - sink0, machine,
                   os.getloadavg()[0], monitor.peak, monitor.peak_pss)


def verify_saved(save: Path, nameserver: object) -> str:
    """Verify the DKIM signatures of the messages the sinks kept (one per domain): "" when each has
    a passing signature of bench.test, else what failed."""
    from postoffice.mailauth.dkim import verify_dkim
    from postoffice.mailauth.resolver import DnsResolver

    async def check() -> list[str]:
        resolver = DnsResolver((nameserver,), timeout=5.0)  # type: ignore[arg-type]
        bad = []
        files = sorted(save.glob("*.eml"))
        for path in files:
            results = await verify_dkim(resolver, path.read_bytes())
            if not any(r.result == "pass" and r.domain == DOMAIN for r in results):
                bad.append(f"{path.stem}: " + (", ".join(f"{r.algorithm} {r.result} {r.problem}".strip()
                                                          for r in results) or "no signature"))
        return bad if files else ["no message kept"]

    return "; ".join(run_async(check))


def describe(label: str, work: Workload, out: Outcome) -> None:
    res = out.load
    lat = sorted(res.latencies)

    def pct(p: float) -> str:
        return f"{lat[min(len(lat) - 1, int(p * len(lat)))] * 1000:,.0f}" if lat else "-"

    stats = out.stats
    wall = out.seconds if out.seconds > 0 else 1e-9
    log(f"{label}: {res.accepted:,} accepted ({res.accepted / max(res.submitted, 1e-9):,.0f} msg/s over "
        f"{res.submitted:.1f} s), {res.rejected:,} rejected, {res.lost:,} lost; {res.sessions:,} sessions, "
        f"{res.tls or 'no TLS'}, AUTH {'used' if res.auth else 'not offered'}, PIPELINING "
        f"{'used' if res.pipelining else 'not offered'}; submission latency p50 {pct(0.5)} ms, p99 {pct(0.99)} ms")
    log(f"{label}: sinks got {out.delivered:,} distinct messages in {out.seconds:.1f} s over "
        f"{stats['connections']} connections, {stats['duplicates']} duplicates, {stats['unsigned']} without a "
        f"bench.test DKIM-Signature, {stats['unnumbered']} without X-Bench-Seq; per domain "
        f"{sorted(dict(stats['per_domain']).values())}")  # type: ignore[call-overload]
    log(f"{label}: server CPU {out.server_cpu:.1f} s ({100 * out.server_cpu / wall:.0f}% of a core, "
        f"{1000 * out.server_cpu / max(out.delivered, 1):.2f} ms/msg), client {res.client_cpu:.1f} s, "
        f"sinks {out.sink_cpu:.1f} s ({100 * out.sink_cpu / wall:.0f}% of a core); machine "
        f"({psutil.cpu_count()} CPUs) {100 * busy_share(out.machine):.0f}% busy, load average {out.loadavg:.1f}; "
        f"server peak RSS {out.rss / MB:,.0f} MB, PSS {out.pss / MB:,.0f} MB")
    log(f"{label}: DKIM of the kept messages: {out.verified or 'every one passes'}")
    if res.problems:
        log(f"{label}: first problems: " + " | ".join(res.problems[:5]))


# --- the loopback DNS -------------------------------------------------------------------------

class Dns:
    """tests/dns_server.py's NSD + Unbound with the sink domains, and bench.test's key records."""

    def __init__(self, cleanups: Cleanups) -> None:
        sys.path.insert(0, str(TESTS))
        try:
            from dns_server import DnsServers
        except ImportError as exc:
            raise Unavailable(f"cannot import tests/dns_server.py: {exc}") from None
        if not (shutil.which("nsd", path=SBIN) and shutil.which("unbound", path=SBIN)):
            raise Unavailable("NSD and Unbound make the loopback DNS (apt-get install nsd unbound)", "not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="postoffice-bench-dns-"))
        cleanups.append(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.servers = DnsServers(self.dir / "servers")
        self.servers.start()
        cleanups.append(self.servers.stop)
        self.keys: list[str] = []
        records = []
        for k, domain in enumerate(SINK_DOMAINS):
            name = domain.removesuffix("." + SINK_ZONE)
            records += [f"{name} MX 10 mx.{name}", f"mx.{name} A {SINK_ADDRESSES[k]}"]
        self.servers.add_zone(SINK_ZONE, "\n".join(records) + "\n")
        self.address = self.servers.address
        log(f"dns: Unbound on {self.address} (NSD on port {self.servers.nsd_port}) serving {SINK_ZONE}")

    def publish_key(self, selector: str, algorithm: str, public: bytes) -> None:
        """Serve bench.test's DKIM key record `selector` (all keys so far, one zone)."""
        text = base64.b64encode(public).decode()
        chunks = " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))
        self.keys.append(f'{selector}._domainkey TXT "v=DKIM1; k={algorithm}; p=" {chunks}')
        self.servers.add_zone(DOMAIN, "\n".join(self.keys) + "\n")


def publish_postoffice_keys(dns: Dns, data: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    for path in sorted((data / "keys").glob(f"{DOMAIN}.*.pem")):
        selector = path.name.removeprefix(f"{DOMAIN}.").removesuffix(".pem")
        key = serialization.load_pem_private_key(path.read_bytes(), None)
        if isinstance(key, rsa.RSAPrivateKey):
            dns.publish_key(selector, "rsa", key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            dns.publish_key(selector, "ed25519", key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw))


# --- target: postoffice -----------------------------------------------------------------------

def postoffice_template(cache: Path, env: dict[str, str]) -> Path:
    """A data dir with bench.test (and its DKIM keys) and the user sender@bench.test."""
    def build(data: Path) -> None:
        run_postoffice(env, "init", "--data", str(data), "--domain", DOMAIN, "--hostname", f"mail.{DOMAIN}")
        run_postoffice(env, "user", "add", SENDER, "--password-stdin", "--data", str(data), stdin=PASSWORD + "\n")

    key = source_digest("store", "setup", "config.py", "directory.py", "cli/directory_cmds.py", "mailauth/dkimkeys.py")
    return cached_template(cache / f"outbound-template-{key}", build, " with bench.test and its sender")


def bench_postoffice(work: Workload, args: argparse.Namespace, env: dict[str, str], dns: Dns,
                     cleanups: Cleanups) -> Outcome:
    template = postoffice_template(args.cache_dir, env)
    tmp = scratch_dir("smtp-outbound-postoffice-", "postoffice", args.keep, cleanups)
    data = tmp / "data"
    copy_data_dir(template, data)
    publish_postoffice_keys(dns, data)
    (tmp / "kept").mkdir()
    sinks = Sinks(args.sink_port, tmp / "kept", tmp / "sinks.log", env, cleanups)
    keys: dict[str, dict[str, object]] = {"dns": {"nameservers": [str(dns.address)]},
                                          "outbound": {"mx_port": args.sink_port}}
    for section, key, value in args.set:
        keys.setdefault(section, {})[key] = value
    set_toml_keys(data / "postoffice.toml", keys)
    port = free_port()
    server = start_postoffice(data, env, {"submission": port}, cleanups, profile=args.profile)
    monitor = Monitor(server.proc.pid, reaped=False)
    out = run_job(work, port, args, "postoffice", sinks, monitor, SENDER)
    finish_postoffice(server, args.profile)
    out.verified = verify_saved(tmp / "kept", dns.address)
    return out


# --- target: Postfix + OpenDKIM ---------------------------------------------------------------

POSTFIX_MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:{port} inet n -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _postfix_missing() -> str | None:
    missing = [t for t in ("postfix", "postconf", "opendkim", "unbound") if not shutil.which(t, path=SBIN)]
    if os.geteuid() != 0:
        missing.append("root (Postfix needs it)")
    return ", ".join(missing) or None


def _write_dkim_key(base: Path) -> bytes:
    """An RSA-2048 key for OpenDKIM in base/dkim.key; returns the public key (DER)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = base / "dkim.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def in_namespace(resolv_conf: Path | None, argv: list[str]) -> list[str]:
    """argv run (exec'd, same pid) in a private mount namespace whose /etc/resolv.conf is
    `resolv_conf`, so that whatever it asks the libc resolver stays on loopback; argv as it is
    without one."""
    if resolv_conf is None:
        return argv
    command = " ".join(f'"{a}"' for a in argv)
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            f'mount --bind "{resolv_conf}" /etc/resolv.conf && exec {command}']


def start_opendkim(base: Path, port: int, resolv_conf: Path | None, cleanups: Cleanups) -> subprocess.Popen:
    conf = base / "opendkim.conf"
    conf.write_text(
        "Syslog no\nMode s\nBackground no\nUMask 007\n"
        f"Domain {DOMAIN}\nSelector {OPENDKIM_SELECTOR}\nKeyFile {base / 'dkim.key'}\n"
        "Canonicalization relaxed/relaxed\nSignatureAlgorithm rsa-sha256\n"
        "InternalHosts 127.0.0.0/8\nRequireSafeKeys no\n"
        f"Socket inet:{port}@127.0.0.1\nPidFile {base / 'opendkim.pid'}\n")
    log_path = base / "opendkim.log"
    proc = subprocess.Popen(in_namespace(resolv_conf, [shutil.which("opendkim", path=SBIN) or "opendkim",
                                                       "-f", "-x", str(conf)]),
                            stdin=subprocess.DEVNULL, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    cleanups.append(lambda: stop_process(proc, "opendkim"))
    wait_for_ports((port,), "opendkim", proc, (log_path,))
    return proc


def start_resolver_for_postfix(base: Path, upstream: object, cleanups: Cleanups) -> None:
    """A second Unbound on POSTFIX_RESOLVER:53 (the libc resolver knows no other port) that
    forwards every question to the loopback Unbound."""
    if port_open(53, POSTFIX_RESOLVER):
        raise Unavailable(f"{POSTFIX_RESOLVER}:53 is in use (another run of this script?); leaving it alone",
                          "port busy")
    d = base / "unbound"
    d.mkdir()
    conf = d / "unbound.conf"
    host, _, port = str(upstream).rpartition(":")
    conf.write_text(
        "server:\n"
        f"  interface: {POSTFIX_RESOLVER}@53\n  port: 53\n"
        f'  username: ""\n  chroot: ""\n  directory: "{d}"\n  pidfile: "{d}/unbound.pid"\n'
        f'  logfile: "{d}/unbound.log"\n  use-syslog: no\n  do-daemonize: no\n  verbosity: 1\n'
        "  num-threads: 1\n  access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  do-ip6: no\n"
        "  qname-minimisation: no\n  module-config: \"iterator\"\n"
        + "".join(f'  local-zone: "{zone}" nodefault\n' for zone in ("test.", "127.in-addr.arpa.", "localhost."))
        + f'forward-zone:\n  name: "."\n  forward-addr: {host}@{port}\n')
    proc = subprocess.Popen([shutil.which("unbound", path=SBIN) or "unbound", "-d", "-c", str(conf)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=(d / "stderr.log").open("wb"), start_new_session=True)
    cleanups.append(lambda: stop_process(proc, "unbound (postfix's)"))
    deadline = time.monotonic() + 15
    while not port_open(53, POSTFIX_RESOLVER):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"the second Unbound did not listen on {POSTFIX_RESOLVER}:53: "
                             f"{tail(d / 'stderr.log')} {tail(d / 'unbound.log')}")
        time.sleep(0.1)


def _namespace_works() -> bool:
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount --bind /dev/null /etc/resolv.conf"], capture_output=True)
    return probe.returncode == 0


def bench_postfix(work: Workload, args: argparse.Namespace, env: dict[str, str], dns: Dns,
                  cleanups: Cleanups) -> Outcome:
    missing = _postfix_missing()
    if missing:
        raise Unavailable(f"missing: {missing} (apt-get install postfix opendkim unbound)", "not installed")
    tmp = scratch_dir("smtp-outbound-postfix-", "postfix+opendkim", args.keep, cleanups)
    tmp.chmod(0o755)  # Postfix's unprivileged daemons reach data/ and the spool below it
    base = tmp / "postfix"
    for sub in ("etc", "spool", "data", "log"):
        (base / sub).mkdir(parents=True)
    shutil.chown(base / "data", "postfix")
    template = postoffice_template(args.cache_dir, env)  # its certificate serves Postfix's STARTTLS
    for name in ("cert.pem", "key.pem"):
        shutil.copy(template / "tls" / name, base / "etc" / name)
    dns.publish_key(OPENDKIM_SELECTOR, "rsa", _write_dkim_key(base))
    via_dns = _namespace_works()
    resolv_conf = base / "resolv.conf" if via_dns else None
    if resolv_conf is not None:
        start_resolver_for_postfix(base, dns.address, cleanups)
        resolv_conf.write_text(f"nameserver {POSTFIX_RESOLVER}\noptions timeout:2 attempts:2\n")
        routing = "smtp_host_lookup = dns\n"
    else:
        log("postfix: no private mount namespace here (unshare -m failed): relaying by transport_maps, "
            "without MX lookups")
        (base / "etc" / "transport").write_text("".join(
            f"{d} smtp:[{a}]:{args.sink_port}\n" for d, a in zip(SINK_DOMAINS, SINK_ADDRESSES, strict=True)))
        routing = f"transport_maps = texthash:{base / 'etc' / 'transport'}\nsmtpd_peername_lookup = no\n"
    milter = free_port()
    opendkim = start_opendkim(base, milter, resolv_conf, cleanups)
    (tmp / "kept").mkdir()
    sinks = Sinks(args.sink_port, tmp / "kept", tmp / "sinks.log", env, cleanups)
    port = free_port()
    (base / "etc" / "main.cf").write_text(
        f"compatibility_level = 3.6\nqueue_directory = {base / 'spool'}\ndata_directory = {base / 'data'}\n"
        "mail_owner = postfix\nsetgid_group = postdrop\n"
        f"myhostname = postfix.{DOMAIN}\nmydomain = {DOMAIN}\nmyorigin = $mydomain\n"
        "inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmydestination =\nmynetworks = 127.0.0.0/8\n"
        "smtpd_relay_restrictions = permit_mynetworks, reject\n"
        "local_transport = error:local delivery disabled\nalias_maps =\nalias_database =\n"
        "biff = no\nappend_dot_mydomain = no\nsmtpd_banner = $myhostname ESMTP\n"
        f"smtpd_tls_cert_file = {base / 'etc' / 'cert.pem'}\nsmtpd_tls_key_file = {base / 'etc' / 'key.pem'}\n"
        "smtpd_tls_security_level = may\nsmtp_tls_security_level = may\n"
        f"smtpd_milters = inet:127.0.0.1:{milter}\nnon_smtpd_milters = $smtpd_milters\n"
        "milter_default_action = tempfail\n"
        f"smtp_tcp_port = {args.sink_port}\n" + routing +
        f"maillog_file_prefixes = {tmp}\nmaillog_file = {base / 'log' / 'postfix.log'}\n")
    (base / "etc" / "master.cf").write_text(POSTFIX_MASTER_CF.format(port=port))
    etc = str(base / "etc")
    subprocess.run(["postfix", "-c", etc, "set-permissions"], capture_output=True)
    check = subprocess.run(["postfix", "-c", etc, "check"], capture_output=True, text=True)
    if check.returncode != 0:
        raise BenchError(f"`postfix check` failed: {(check.stdout + check.stderr).strip()[-500:]}")
    start = in_namespace(resolv_conf, ["postfix", "-c", etc, "start"])
    os.sync()
    done = subprocess.run(start, capture_output=True, text=True, start_new_session=True)
    pid_file = base / "spool" / "pid" / "master.pid"

    def master_pid() -> int | None:
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def stop() -> None:
        pid = master_pid()
        subprocess.run(["postfix", "-c", etc, "stop"], capture_output=True)
        deadline = time.monotonic() + 30
        while pid and psutil.pid_exists(pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    cleanups.append(stop)
    if done.returncode != 0:
        raise BenchError(f"`postfix start` exited with {done.returncode}: {(done.stdout + done.stderr).strip()[-500:]}")
    wait_for_ports((port,), "Postfix", logs=(base / "log" / "postfix.log",))
    pid = master_pid()
    if pid is None:
        raise BenchError("Postfix started but its master.pid names no process")
    log(f"postfix: master pid {pid}, smtpd on 127.0.0.1:{port}, OpenDKIM pid {opendkim.pid} on {milter}, "
        + (f"MX lookups through {POSTFIX_RESOLVER}:53 -> {dns.address}" if via_dns else "transport_maps"))
    monitor = TreesMonitor(pid, opendkim.pid)
    out = run_job(work, port, args, "postfix+opendkim", sinks, monitor, None)
    out.verified = verify_saved(tmp / "kept", dns.address)
    problems = [line for line in (base / "log" / "postfix.log").read_text(errors="replace").splitlines()
                if re.search(r"\b(warning|error|fatal|panic):", line)]
    if problems:
        log(f"postfix: {len(problems)} warning/error line(s) in its log; first: {problems[0][:300]}")
    out.stats["routing"] = "dns" if via_dns else "transport_maps"
    return out


class TreesMonitor(Monitor):
    """Monitor's sums over several process trees (Postfix's master and OpenDKIM)."""

    def __init__(self, pid: int, *others: int) -> None:
        super().__init__(pid, reaped=True)
        self.others = [psutil.Process(p) for p in others]

    def members(self) -> list[psutil.Process]:
        found = super().members()
        for proc in self.others:
            try:
                found += [proc, *proc.children(recursive=True)]
            except psutil.Error:
                pass
        return found


# --- main -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Outbound delivery end to end: messages submitted on 587 (STARTTLS, AUTH), DKIM-signed "
                    "and relayed by MX through a loopback DNS to 10 sink domains, by postoffice and by "
                    "Postfix + OpenDKIM in the same run; prints one result line, PASS if postoffice >= "
                    "Postfix + OpenDKIM. Progress on stderr. Exit status: 0 PASS, 1 FAIL, 2 no verdict.",
        epilog="Example: .venv/bin/python bench/smtp_outbound.py --count 2000")
    parser.add_argument("--count", type=int, default=10_000, help="messages to send (default 10000)")
    parser.add_argument("--connections", type=int, default=50, help="concurrent submission sessions (default 50)")
    parser.add_argument("--per-connection", type=int, default=100,
                        help="messages per session before QUIT and a new connection (default 100)")
    add_targets_argument(parser, TARGETS)
    parser.add_argument("--sink-port", type=int, default=0,
                        help="the sinks' port on 127.0.0.201..210 (default: a free one)")
    parser.add_argument("--seed", type=int, default=42, help="seed for the message sizes (default 42)")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs, spools and logs (paths on stderr)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                        help="where the postoffice data dir template is kept (default /tmp/postoffice-bench)")
    add_profile_argument(parser)
    parser.add_argument("--set", action="append", type=_config_setting, default=[], metavar="SECTION.KEY=VALUE",
                        help="change a key of postoffice's config for an experiment, e.g. outbound.concurrency=50 "
                             "(VALUE in TOML/JSON syntax, else a string); repeatable; shown in the line")
    parser.add_argument("--sink", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sink:
        sink_main(int(args.sink[0]), Path(args.sink[1]))
        return 0
    targets = parse_targets(parser, args.targets, TARGETS)
    if args.count < 1 or args.connections < 1 or args.per_connection < 1:
        parser.error("--count, --connections and --per-connection must be at least 1")
    if args.connections > PER_SOURCE_IP * 250:
        parser.error(f"--connections: at most {PER_SOURCE_IP * 250}")
    args.sink_port = args.sink_port or _free_sink_port()

    env = postoffice_env()
    work = make_workload(args.count, args.seed)
    log(f"{args.count:,} messages, mean {work.mean_size() / 1000:.1f} KB, one recipient each at "
        f"{len(SINK_DOMAINS)} domains, {args.connections} sessions of up to {args.per_connection} messages")

    with cleanup_stack() as dns_cleanups:  # the loopback DNS serves every target, started by the first
        dns: list[Dns] = []

        def run(target: str, cleanups: Cleanups) -> Outcome:
            if not dns:
                dns.append(Dns(dns_cleanups))
            if target == "postoffice":
                return bench_postoffice(work, args, env, dns[0], cleanups)
            return bench_postfix(work, args, env, dns[0], cleanups)

        results: dict[str, Outcome | str] = run_targets(
            targets, run, labels=LABELS, show_type=False, before="load",
            describe=lambda label, out: describe(label, work, out))

    parts = [f"smtp_outbound: N={args.count} c={args.connections}"
             + "".join(f" {section}.{key}={json.dumps(value)}" for section, key, value in args.set)]
    rates: dict[str, float] = {}
    for target in targets:
        r = results[target]
        label = LABELS[target]
        if target == "postfix" and isinstance(r, Outcome) and r.stats.get("routing") == "transport_maps":
            label += " (transport_maps)"
        if isinstance(r, str):
            parts.append(f"{label} {r}")
            continue
        rate = r.delivered / r.seconds if r.seconds > 0 else 0.0
        cpu = 1000 * r.server_cpu / max(r.delivered, 1)
        text = (f"{label} {rate:,.0f} msg/s {cpu:.1f} ms CPU/msg rss {r.rss / MB:,.0f} MB"
                f" (pss {r.pss / MB:,.0f} MB, load {r.loadavg:.1f})")
        if r.delivered < args.count or r.stats.get("unsigned") or r.verified:
            text += (f" (INCOMPLETE: {r.delivered:,}/{args.count:,} delivered, "
                     f"{r.stats.get('unsigned')} unsigned{', DKIM: ' + r.verified if r.verified else ''})")
        else:
            rates[target] = rate
        parts.append(text)
    po, ref = rates.get("postoffice"), rates.get("postfix")
    if po and ref:
        parts.append(f"{po / ref:.2f}x postfix+opendkim")
        verdict, status = ("PASS", 0) if po >= ref else ("FAIL", 1)
    else:
        verdict = "n/a (" + ("postoffice" if not po else "postfix+opendkim") + " has no complete result)"
        status = 2
    parts.append(f"target >=1.0x: {verdict}")
    print(" | ".join(parts), flush=True)
    return status


def _config_setting(text: str) -> tuple[str, str, object]:
    """--set SECTION.KEY=VALUE: (section, key, value), the value read as JSON when it is."""
    name, sep, raw = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not (sep and dot and section and key):
        raise argparse.ArgumentTypeError(f"expected SECTION.KEY=VALUE, got {text!r}")
    try:
        value: object = json.loads(raw)
    except ValueError:
        value = raw
    return section, key, value


def _free_sink_port() -> int:
    """A port free on every sink address."""
    for _ in range(50):
        port = free_port()
        try:
            for address in SINK_ADDRESSES:
                with socket.socket() as s:
                    s.bind((address, port))
        except OSError:
            continue
        return port
    raise BenchError("no port free on every sink address")


if __name__ == "__main__":
    if "--sink" in sys.argv:
        sys.exit(main())
    run_main(main, "smtp_outbound")
