"""SMTP ingest throughput of postoffice and reference servers, side by side; one result line.

Every target is started and stopped by this script, in the same run, and fed the same load:
--count messages of about 5 KB (4.6-5.6 KB), each to 1-3 of user1..user100@bench.test, over
--connections concurrent plain SMTP sessions (no TLS, no AUTH), --per-connection messages per
session: [RSET] MAIL RCPT.. DATA, pipelined in one write when the server offers PIPELINING,
then the message, then the next transaction. A message counts only when the server answers 250
to its data (for postoffice that means durable in every recipient's mailbox).

Targets (--targets, in this order by default):

1. postoffice: `python -m postoffice serve` on a copy of a cached data directory (init + 100
   users, built once under --cache-dir, because argon2 makes `user add` slow), its [listen]
   section rewritten so that only smtp listens, on a free 127.0.0.1 port, and `[dns]
   nameservers` a server in this process on 127.0.0.1 that answers NXDOMAIN at once (port 25
   judges every message; its DNS never leaves loopback). Peak RSS is that of
   the server's process tree, polled every 50 ms. The default limits stay: 20 connections per
   IP, so the client spreads its sessions over source addresses 127.0.0.2, 127.0.0.3, ...
   (10 sessions each), as an MX sees many peers.
2. aiosmtpd+fsync, the floor: a minimal aiosmtpd server whose DATA handler writes each message
   to its own file and fsyncs it (in the event loop, as the simplest handler does) before 250.
3. postfix->dovecot: the reference Postfix (127.0.0.1:20025) delivering over LMTP to the
   reference Dovecot (127.0.0.1:20024), set up with ../shared/reference's scripts; the time runs
   from the start of the load until postfix_queue_count.sh says 0 (end to end, in mailboxes).
4. postfix discard: the same Postfix, queueing (fsync) and then discarding; acceptance rate.
5. postoffice+auth: postoffice with the whole port-25 mail authentication pipeline judging
   every message against real DNS records: each message DKIM-signed (RSA-2048) by one of 50
   sender domains, sent from an address their SPF names, with DMARC p=reject, iprev and one
   DNS blocklist, served by NSD behind Unbound on loopback (tests/dns_server.py) and asked
   through `[dns] nameservers`; the caches are warmed by a first, untimed pass. Its line adds
   the median cost per message of the checks alone (measured in this process on the same
   records, with postoffice's DNS cache warm and with it off, each with the connect-time checks;
   and the CPU per message on an open connection, cache warm, without them, as the server runs
   a session's later messages), and the ratio against postfix->dovecot, whose target is >= 2.0x.
6. filtering off / filtering on (issue 17): postoffice as in 1., with `[spam] enabled = false`
   and no Sieve script, then with the spam score and a 30-rule Sieve script active for every
   user (bench/ingest_filters.py); no DNS. The line says what filtering adds per message one
   message at a time, side by side (before the loads both servers run at once and each of 300
   messages goes to one, then the other): median latency and server CPU, target <= 2 ms for
   both; and, beside it, the CPU and median latency under the c=50 load (queueing included).

The load generator is asyncio on raw sockets (uvloop when installed) in this process; its CPU
time, the server's and the whole machine's are printed to stderr for each target, so one can
see whether the client was the bottleneck. Progress goes to stderr too; stdout gets one line:

smtp_ingest: N=20000 c=50 postoffice 1,234 msg/s rss 95 MB | aiosmtpd+fsync 630 msg/s | ...
  | vs floor 1.96x vs postfix+dovecot 3.74x | target >=1.0x postfix+dovecot: PASS

A target that cannot run is reported as "unavailable" (postoffice does not listen on smtp) or
"not installed" (aiosmtpd, Postfix or Dovecot missing) and the others still run.
Exit status: 0 PASS, 1 FAIL, 2 no verdict (a target unavailable, failed or incomplete).

Example: .venv/bin/python bench/smtp_ingest.py --count 2000 --targets postoffice,aiosmtpd
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import random
import re
import shutil
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

from benchkit import (
    CACHE_DIR,
    DOMAIN,
    DOVECOT_LMTP_PORT,
    MB,
    PASSWORD,
    PER_SOURCE_IP,
    REFERENCE,
    REFERENCE_DOVECOT_BASE,
    REFERENCE_DOVECOT_CONF,
    BenchError,
    Cleanups,
    Monitor,
    Server,
    Unavailable,
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
    run_sh,
    run_targets,
    scratch_dir,
    set_toml_keys,
    setup_reference_dovecot,
    source_address,
    source_digest,
    spawn_dovecot,
    start_postoffice,
    stop_process,
    store_counts,
    tail,
    wait_for_ports,
)
from ingest_filters import SIEVE_RULES, configure_filtering, paired_latencies

USERS = 100
SENDER = b"bench@remote.test"
REPLY_TIMEOUT = 120.0  # one transaction, from MAIL to the reply to the data
QUEUE_TIMEOUT = 900.0

TARGETS = ("postoffice", "aiosmtpd", "postfix-lmtp", "postfix-discard", "postoffice-auth",
           "postoffice-nofilter", "postoffice-filter")
LABELS = {
    "postoffice": "postoffice",
    "postoffice-nofilter": "filtering off",
    "postoffice-filter": "filtering on",
    "postoffice-auth": "postoffice+auth",
    "aiosmtpd": "aiosmtpd+fsync",
    "postfix-lmtp": "postfix->dovecot",
    "postfix-discard": "postfix discard",
}

POSTFIX_BASE = Path("/tmp/reference-postfix")
POSTFIX_CONF = POSTFIX_BASE / "etc"
POSTFIX_PORT = 20025
POSTFIX_QUEUES = ("incoming", "active", "deferred", "maildrop", "hold", "bounce", "defer", "trace", "corrupt")

# The floor, run as `python -c AIOSMTPD_SERVER PORT SPOOL_DIR`; prints "ready" once listening.
AIOSMTPD_SERVER = r"""
import asyncio, itertools, os, signal, sys
from aiosmtpd.smtp import SMTP

port, spool = int(sys.argv[1]), sys.argv[2]
names = itertools.count()

class Handler:
    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content
        fd = os.open(os.path.join(spool, f"{next(names)}.eml"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        return "250 2.0.0 Ok: stored"

async def main():
    loop = asyncio.get_running_loop()
    handler = Handler()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="floor.bench.test", ident="floor", loop=loop), "127.0.0.1", port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("ready", "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio", flush=True)
    await stop.wait()
    server.close()

try:
    import uvloop
except ImportError:
    asyncio.run(main())
else:
    uvloop.run(main())
"""

# --- the load ---------------------------------------------------------------------------------

ONE_AT_A_TIME = 300  # messages sent one at a time to filtering off and on, side by side
HEADER_ESTIMATE = 300  # bytes of header per message, roughly; bodies make up the rest


@dataclass
class Workload:
    count: int
    bodies: list[bytes]  # "\r\n" + body lines + ".\r\n", dot-stuffed; the part after the headers
    recipients: list[tuple[int, ...]]  # user numbers per message
    date: bytes
    token: bytes

    @property
    def total_recipients(self) -> int:
        return sum(len(r) for r in self.recipients)

    def mean_size(self) -> float:
        sample = [len(self.message(i)) for i in range(min(self.count, 500))]
        return sum(sample) / len(sample)

    def mail_from(self, i: int) -> bytes:
        return _MAIL

    def message(self, i: int) -> bytes:
        """Message i as sent after 354: headers, body, the final dot."""
        to = ", ".join(f"user{u}@{DOMAIN}" for u in self.recipients[i]).encode()
        n = str(i).encode()
        return b"".join((
            b"From: Bench Sender <", SENDER, b">\r\nTo: ", to, b"\r\nSubject: bench message ", n,
            b" about the weekly status\r\nDate: ", self.date, b"\r\nMessage-ID: <", n, b".",
            self.token, b"@remote.test>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n",
            self.bodies[i % len(self.bodies)],
        ))


def make_workload(count: int, seed: int) -> Workload:
    rng = random.Random(seed)
    bodies = message_bodies(rng, HEADER_ESTIMATE)
    recipients = [tuple(rng.sample(range(1, USERS + 1), rng.randint(1, 3))) for _ in range(count)]
    return Workload(count, bodies, recipients, formatdate(localtime=True).encode(),
                    f"{os.getpid()}.{int(time.time())}".encode())


@dataclass
class LoadResult:
    accepted: int = 0
    rejected: int = 0  # a final non-250 reply to the message (or to MAIL/DATA)
    lost: int = 0  # in flight when a connection failed
    rcpt_refused: int = 0
    seconds: float = 0.0
    first_ok: float = 0.0
    last_ok: float = 0.0
    started: float = 0.0
    latencies: list[float] = field(default_factory=list)
    sessions: int = 0
    pipelining: bool | None = None
    greeting: str = ""
    problems: list[str] = field(default_factory=list)
    client_cpu: float = 0.0
    machine: dict[str, float] = field(default_factory=dict)

    def note(self, text: str) -> None:
        if len(self.problems) < 10:
            self.problems.append(text)


class SmtpFailure(Exception):
    pass


class Session:
    """One client connection: send bytes, read (possibly multi-line) replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def reply(self) -> tuple[int, bytes]:
        while True:
            line = await self.reader.readuntil(b"\n")
            if len(line) < 4 or line[3:4] != b"-":
                break
        try:
            return int(line[:3]), line
        except ValueError:
            raise SmtpFailure(f"bad reply {line[:80]!r}") from None

    async def reply_lines(self) -> tuple[int, list[bytes]]:
        lines = []
        while True:
            line = await self.reader.readuntil(b"\n")
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                break
        return int(lines[-1][:3]), lines

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


_RCPT = [b""] + [f"RCPT TO:<user{u}@{DOMAIN}>\r\n".encode() for u in range(1, USERS + 1)]
_MAIL = b"MAIL FROM:<" + SENDER + b">\r\n"


class Load:
    def __init__(self, work: Workload, host: str, port: int, connections: int, per_connection: int) -> None:
        self.work = work
        self.host = host
        self.port = port
        self.connections = connections
        self.per_connection = per_connection
        self.next = 0
        self.result = LoadResult()

    def take(self) -> int | None:
        if self.next >= self.work.count:
            return None
        self.next += 1
        return self.next - 1

    async def worker(self, number: int) -> None:
        source = source_address(number)
        failures = 0
        while self.next < self.work.count and failures < 5:
            try:
                await self.session(source)
                failures = 0
            except (OSError, EOFError, asyncio.IncompleteReadError, SmtpFailure, TimeoutError,
                    asyncio.LimitOverrunError) as exc:
                failures += 1
                self.result.note(f"session {number}: {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.1 * failures)

    async def session(self, source: str) -> None:
        res = self.result
        async with asyncio.timeout(REPLY_TIMEOUT):
            reader, writer = await asyncio.open_connection(self.host, self.port, local_addr=(source, 0))
        s = Session(reader, writer)
        in_flight = False
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                code, greeting = await s.reply()
                if code != 220:
                    raise SmtpFailure(f"greeting {greeting.decode(errors='replace').strip()}")
                res.greeting = res.greeting or greeting.decode(errors="replace").strip()
                writer.write(b"EHLO client.remote.test\r\n")
                code, lines = await s.reply_lines()
                if code != 250:
                    raise SmtpFailure(f"EHLO: {lines[-1].decode(errors='replace').strip()}")
            pipelining = any(line[4:].strip().upper() == b"PIPELINING" for line in lines)
            res.pipelining = pipelining
            res.sessions += 1
            done = 0
            while done < self.per_connection:
                i = self.take()
                if i is None:
                    break
                in_flight = True
                async with asyncio.timeout(REPLY_TIMEOUT):
                    await self.transaction(s, i, rset=done > 0, pipelining=pipelining)
                in_flight = False
                done += 1
            async with asyncio.timeout(10):
                writer.write(b"QUIT\r\n")
                await s.reply()
        except BaseException:
            if in_flight:
                res.lost += 1
            raise
        finally:
            s.close()

    async def transaction(self, s: Session, i: int, *, rset: bool, pipelining: bool) -> None:
        res = self.result
        rcpts = [_RCPT[u] for u in self.work.recipients[i]]
        commands = ([b"RSET\r\n"] if rset else []) + [self.work.mail_from(i), *rcpts, b"DATA\r\n"]
        began = time.perf_counter()
        replies: list[tuple[int, bytes]] = []
        if pipelining:
            s.writer.write(b"".join(commands))
            for _ in commands:
                replies.append(await s.reply())
        else:
            for command in commands:
                s.writer.write(command)
                replies.append(await s.reply())
        if rset:
            replies.pop(0)
        mail, data = replies[0], replies[-1]
        refused = sum(1 for code, _ in replies[1:-1] if code // 100 != 2)
        res.rcpt_refused += refused
        if data[0] != 354:
            res.rejected += 1
            first_bad = next((line for code, line in replies if code // 100 not in (2, 3)), data[1])
            res.note(f"message {i}: {first_bad.decode(errors='replace').strip()}")
            if mail[0] // 100 == 4 or data[0] == 421:
                raise SmtpFailure(f"MAIL/DATA: {first_bad.decode(errors='replace').strip()}")
            return
        s.writer.write(self.work.message(i) if refused < len(rcpts) else b".\r\n")
        code, line = await s.reply()
        if code == 250:
            now = time.perf_counter()
            res.accepted += 1
            res.latencies.append(now - began)
            res.last_ok = now
            if not res.first_ok:
                res.first_ok = now
        else:
            res.rejected += 1
            res.note(f"message {i}: {line.decode(errors='replace').strip()}")
            if code == 421:
                raise SmtpFailure(line.decode(errors="replace").strip())

    async def run(self, progress: Callable[[LoadResult], str] | None = None) -> LoadResult:
        res = self.result
        cpu0, machine0 = time.process_time(), psutil.cpu_times()
        res.started = time.perf_counter()
        reporter = asyncio.create_task(self._report(progress)) if progress else None
        try:
            await asyncio.gather(*(self.worker(n) for n in range(self.connections)))
        finally:
            if reporter:
                reporter.cancel()
        res.seconds = (res.last_ok or time.perf_counter()) - res.started
        res.client_cpu = time.process_time() - cpu0
        res.machine = cpu_delta(machine0, psutil.cpu_times())
        return res

    async def _report(self, progress: Callable[[LoadResult], str]) -> None:
        while True:
            await asyncio.sleep(5)
            log(progress(self.result))


def run_load(work: Workload, port: int, args: argparse.Namespace, label: str,
             monitor: Monitor | None = None, on_started: Callable[[], None] | None = None) -> LoadResult:
    """Drive the load against 127.0.0.1:port, on uvloop when installed."""
    load = Load(work, "127.0.0.1", port, args.connections, args.per_connection)

    def progress(res: LoadResult) -> str:
        elapsed = time.perf_counter() - res.started
        rss = f", server RSS {monitor.peak / MB:,.0f} MB" if monitor else ""
        return (f"{label}: {res.accepted:,}/{work.count:,} accepted after {elapsed:.0f} s "
                f"({res.accepted / max(elapsed, 1e-9):,.0f} msg/s){rss}")

    async def main() -> LoadResult:
        poller = asyncio.create_task(monitor.poll()) if monitor else None
        if on_started:
            on_started()
        try:
            return await load.run(progress)
        finally:
            if poller:
                poller.cancel()

    return run_async(main)


# --- target: postoffice -----------------------------------------------------------------------

def postoffice_template(cache: Path, env: dict[str, str]) -> Path:
    """A data dir with bench.test and user1..user100, built once per store/config version."""
    def build(data: Path) -> None:
        run_postoffice(env, "init", "--data", str(data), "--domain", DOMAIN, "--hostname", f"mail.{DOMAIN}")
        for u in range(1, USERS + 1):
            run_postoffice(env, "user", "add", f"user{u}@{DOMAIN}", "--password-stdin", "--data", str(data),
                           stdin=PASSWORD + "\n")
            if u % 25 == 0:
                log(f"postoffice: {u} users added")

    key = source_digest("store", "setup", "config.py", "directory.py", "cli/directory_cmds.py")
    return cached_template(cache / f"smtp-template-{key}", build, f" with {USERS} users", "once; argon2 is slow")


@dataclass
class TargetResult:
    rate: float
    load: LoadResult
    rss: int | None = None
    server_cpu: float | None = None
    # (wall, CPU) medians: (DNS cache warm, cache off, warm on an open connection)
    checks: tuple[tuple[float, float], tuple[float, float], tuple[float, float]] | None = None


def start_configured(args: argparse.Namespace, env: dict[str, str], cleanups: Cleanups, label: str,
                     prepare: Callable[[Path], None] | None = None) -> tuple[Server, Path, int]:
    """A postoffice of the bench's template, as `prepare(data)` changes it: (server, data, port)."""
    template = postoffice_template(args.cache_dir, env)
    tmp = scratch_dir("smtp-ingest-postoffice-", label, args.keep, cleanups)
    data = tmp / "data"
    copy_data_dir(template, data)
    # Port 25 judges every message (SPF, DKIM, DMARC, iprev): its DNS questions go to a resolver
    # on loopback that answers NXDOMAIN at once (the tests' quiet DNS), never the machine's.
    set_toml_keys(data / "postoffice.toml", {"dns": {"nameservers": [str(_quiet_dns(cleanups))]}})
    if prepare is not None:
        prepare(data)
    port = free_port()
    return start_postoffice(data, env, {"smtp": port}, cleanups), data, port


def bench_postoffice(work: Workload, args: argparse.Namespace, env: dict[str, str],
                     cleanups: Cleanups, label: str = "postoffice",
                     prepare: Callable[[Path], None] | None = None) -> TargetResult:
    """postoffice with its default configuration, or as `prepare(data)` changes it."""
    server, data, port = start_configured(args, env, cleanups, label, prepare)
    monitor = Monitor(server.proc.pid, reaped=False)
    monitor.sample()
    log(f"postoffice: listening; RSS at start {monitor.peak / MB:.0f} MB")
    profiler = _start_profiler(args, server.proc.pid, cleanups) if args.py_spy else None
    cpu0 = monitor.cpu()
    res = run_load(work, port, args, label, monitor)
    server_cpu = monitor.cpu_when_idle() - cpu0  # the indexing that trails the load included
    monitor.sample()
    if profiler is not None:
        _finish_profiler(profiler)
    finish_postoffice(server)
    try:
        rows, blobs = store_counts(data, "SELECT COUNT(*) FROM messages", "SELECT COUNT(*) FROM blobs")
    except sqlite3.Error:
        pass  # a store schema with other names
    else:
        log(f"postoffice: store holds {rows:,} message rows (expected {_expected_rcpts(work, res):,}) "
            f"and {blobs:,} blobs")
    return TargetResult(res.accepted / res.seconds if res.seconds else 0.0, res, monitor.peak, server_cpu)


def _quiet_dns(cleanups: Cleanups) -> object:
    """The address of a DNS server in this process, on 127.0.0.1, answering NXDOMAIN to all."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from dns_server import BrokenDnsServer
    from live_server import nxdomain

    server = BrokenDnsServer(nxdomain).__enter__()
    cleanups.append(lambda: server.__exit__(None, None, None))
    return server.address


def _expected_rcpts(work: Workload, res: LoadResult) -> int:
    """Recipient count of the accepted messages, exact when all were accepted."""
    return work.total_recipients if res.accepted == work.count else -1


def _start_profiler(args: argparse.Namespace, pid: int, cleanups: Cleanups) -> subprocess.Popen:
    out = Path(args.py_spy)
    fmt = {".json": "speedscope", ".txt": "raw"}.get(out.suffix, "flamegraph")
    exe = os.environ.get("PY_SPY") or shutil.which("py-spy") or "py-spy"
    argv = [exe, "record", "--pid", str(pid), "--duration", str(args.py_spy_duration), "--rate", "100",
            "--subprocesses", "-o", str(out), "--format", fmt]
    log(f"postoffice: profiling: {' '.join(argv)}")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    cleanups.append(lambda: stop_process(proc, "py-spy"))
    return proc


def _finish_profiler(proc: subprocess.Popen) -> None:
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stop_process(proc, "py-spy")
        return
    log(f"py-spy exited with {proc.returncode}: {err.decode(errors='replace').strip()[-300:]}")


# --- target: aiosmtpd floor -------------------------------------------------------------------

def bench_aiosmtpd(work: Workload, args: argparse.Namespace, env: dict[str, str],
                   cleanups: Cleanups) -> TargetResult:
    probe = subprocess.run([sys.executable, "-c", "import aiosmtpd"], capture_output=True, env=env)
    if probe.returncode != 0:
        raise Unavailable("aiosmtpd is not installed (pip install aiosmtpd, or the [test] extra)", "not installed")
    tmp = scratch_dir("smtp-ingest-aiosmtpd-", "aiosmtpd", args.keep, cleanups)
    spool = tmp / "spool"
    spool.mkdir()
    port = free_port()
    os.sync()
    proc = subprocess.Popen([sys.executable, "-c", AIOSMTPD_SERVER, str(port), str(spool)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=(tmp / "server.log").open("wb"),
                            env=env, start_new_session=True)
    cleanups.append(lambda: stop_process(proc, "aiosmtpd"))
    assert proc.stdout is not None
    ready = proc.stdout.readline().decode().split()
    if not ready or ready[0] != "ready" or not port_open(port):
        stop_process(proc, "aiosmtpd")
        raise BenchError(f"the aiosmtpd server did not start: {tail(tmp / 'server.log')}")
    log(f"aiosmtpd: pid {proc.pid} on 127.0.0.1:{port} ({ready[1]}), writing + fsyncing into {spool}")
    monitor = Monitor(proc.pid, reaped=False)
    cpu0 = monitor.cpu()
    res = run_load(work, port, args, "aiosmtpd", monitor)
    server_cpu = monitor.cpu_when_idle() - cpu0
    stop_process(proc, "aiosmtpd")
    stored = sum(1 for _ in spool.iterdir())
    if stored != res.accepted:
        log(f"aiosmtpd: {stored:,} files for {res.accepted:,} accepted messages")
    return TargetResult(res.accepted / res.seconds if res.seconds else 0.0, res, monitor.peak, server_cpu)


# --- targets: Postfix (-> Dovecot LMTP) -------------------------------------------------------

def _reference_missing(need_dovecot: bool) -> str | None:
    tools = ["postfix", "postconf"] + (["dovecot", "doveconf"] if need_dovecot else [])
    missing = [t for t in tools if not shutil.which(t, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")]
    scripts = ["postfix-setup.sh", "postfix_queue_count.sh"] + (["dovecot-setup.sh", "dovecot.conf"] if need_dovecot else [])
    missing += [str(REFERENCE / s) for s in scripts if not (REFERENCE / s).exists()]
    if os.geteuid() != 0:
        missing.append("root (Postfix and Dovecot need it)")
    return ", ".join(missing) or None


def queue_count() -> int:
    done = subprocess.run(["sh", str(REFERENCE / "postfix_queue_count.sh"), str(POSTFIX_BASE / "spool")],
                          capture_output=True, text=True)
    return int(done.stdout.strip() or 0)


def _postfix_master_pid() -> int | None:
    try:
        pid = int((POSTFIX_BASE / "spool" / "pid" / "master.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if psutil.pid_exists(pid) else None


def _clear_postfix_queue() -> None:
    spool = POSTFIX_BASE / "spool"
    for name in POSTFIX_QUEUES:
        for path in (spool / name).rglob("*") if (spool / name).is_dir() else ():
            if path.is_file():
                path.unlink(missing_ok=True)


def _maildir_count() -> int:
    mail = REFERENCE_DOVECOT_BASE / "mail"
    if not mail.is_dir():
        return 0
    return sum(1 for sub in ("new", "cur") for d in mail.glob(f"*/Maildir/{sub}") for _ in d.iterdir())


def start_postfix(mode: str, cleanups: Cleanups) -> None:
    if port_open(POSTFIX_PORT) or _postfix_master_pid():
        raise Unavailable(f"127.0.0.1:{POSTFIX_PORT} is in use (another Postfix running?); leaving it alone",
                          "port busy")
    run_sh(str(REFERENCE / "postfix-setup.sh"), mode)
    _clear_postfix_queue()
    os.sync()
    done = subprocess.run(["postfix", "-c", str(POSTFIX_CONF), "start"], capture_output=True, text=True,
                          start_new_session=True)

    def stop() -> None:
        pid = _postfix_master_pid()
        subprocess.run(["postfix", "-c", str(POSTFIX_CONF), "stop"], capture_output=True)
        deadline = time.monotonic() + 30
        while pid and psutil.pid_exists(pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    cleanups.append(stop)
    if done.returncode != 0:
        raise BenchError(f"`postfix start` exited with {done.returncode}: {(done.stdout + done.stderr).strip()[-500:]}")
    wait_for_ports((POSTFIX_PORT,), "Postfix")
    log(f"postfix ({mode}): master pid {_postfix_master_pid()}, smtpd on 127.0.0.1:{POSTFIX_PORT}")


def start_dovecot(cleanups: Cleanups) -> None:
    setup_reference_dovecot()
    proc = spawn_dovecot(REFERENCE_DOVECOT_CONF, REFERENCE_DOVECOT_BASE / "log", (DOVECOT_LMTP_PORT,), cleanups)
    log(f"dovecot: pid {proc.pid}, LMTP on 127.0.0.1:{DOVECOT_LMTP_PORT}")


def wait_queue_empty(label: str, started: float) -> float:
    """Poll postfix_queue_count.sh until 0; returns the perf_counter time it was first seen at 0."""
    deadline = time.monotonic() + QUEUE_TIMEOUT
    next_report = time.monotonic() + 5
    while True:
        n = queue_count()
        now = time.perf_counter()
        if n == 0:
            return now
        if time.monotonic() > deadline:
            raise BenchError(f"{label}: {n:,} messages still queued after {QUEUE_TIMEOUT:.0f} s")
        if time.monotonic() >= next_report:
            deferred = sum(1 for p in (POSTFIX_BASE / "spool" / "deferred").rglob("*") if p.is_file())
            log(f"{label}: {n:,} still queued ({deferred:,} deferred) {now - started:.0f} s after the load began")
            next_report = time.monotonic() + 5
        time.sleep(0.1)


def bench_postfix(work: Workload, args: argparse.Namespace, cleanups: Cleanups,
                  lmtp: bool) -> TargetResult:
    missing = _reference_missing(need_dovecot=lmtp)
    if missing:
        raise Unavailable(f"missing: {missing}", "not installed")
    label = "postfix->dovecot" if lmtp else "postfix discard"
    if lmtp:
        start_dovecot(cleanups)
    start_postfix("lmtp" if lmtp else "discard", cleanups)
    res = run_load(work, POSTFIX_PORT, args, label)
    accept_rate = res.accepted / res.seconds if res.seconds else 0.0
    log(f"{label}: accepted {res.accepted:,} in {res.seconds:.1f} s ({accept_rate:,.0f} msg/s); "
        "waiting for the queue to empty ...")
    empty = wait_queue_empty(label, res.started)
    end_to_end = empty - res.started
    log(f"{label}: queue empty {end_to_end:.1f} s after the load began "
        f"({res.accepted / end_to_end:,.0f} msg/s end to end)")
    if lmtp:
        delivered = _maildir_count()
        expected = _expected_rcpts(work, res)
        log(f"dovecot: {delivered:,} messages in the Maildirs (expected {expected:,})")
        if not args.keep:
            cleanups.append(lambda: shutil.rmtree(REFERENCE_DOVECOT_BASE / "mail", ignore_errors=True))
        return TargetResult(res.accepted / end_to_end, res)
    return TargetResult(accept_rate, res)


# --- target: postoffice with mail authentication (issue 14) ----------------------------------

AUTH_DOMAINS = 50
AUTH_ZONE = "bench-senders.test"
AUTH_BLOCKLIST = f"bl.{AUTH_ZONE}"  # lists nothing: every question is NXDOMAIN, as for most clients
AUTH_SELECTOR = "bench"
AUTH_SIGNED = 1000  # distinct signed messages, reused in turn (signing is the client's work)
AUTH_WARMUP = 500  # untimed messages first: postoffice's DNS cache and Unbound's are then warm
CHECK_SAMPLES = 200  # messages whose checks are timed in this process, per cache state


def _auth_domain(k: int) -> str:
    return f"s{k}.{AUTH_ZONE}"


@dataclass
class SignedWorkload:
    """The same load, each message From and MAIL FROM one of the sender domains and signed by it."""

    base: Workload
    signed: list[bytes]  # headers + body as sent after 354, DKIM-Signature first

    def __getattr__(self, name: str) -> object:
        return getattr(self.base, name)

    @property
    def count(self) -> int:
        return self.base.count

    def mail_from(self, i: int) -> bytes:
        return f"MAIL FROM:<bench@{_auth_domain(i % AUTH_SIGNED % AUTH_DOMAINS)}>\r\n".encode()

    def message(self, i: int) -> bytes:
        return self.signed[i % AUTH_SIGNED]


def _auth_setup(work: Workload, cleanups: Cleanups, clients: int) -> tuple[object, SignedWorkload]:
    """The loopback DNS servers with the sender domains' records, and the signed load."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        from dns_server import DnsServers
        from postoffice.mailauth.dkim import sign_message
        from postoffice.mailauth.dkim_crypto import load_signing_key
    except ImportError as exc:
        raise Unavailable(f"cannot import what the checks need: {exc}", "unavailable") from None
    if not (shutil.which("nsd", path="/usr/sbin:/sbin:" + os.environ.get("PATH", ""))
            and shutil.which("unbound", path="/usr/sbin:/sbin:" + os.environ.get("PATH", ""))):
        raise Unavailable("NSD and Unbound are needed for the loopback DNS (apt-get install nsd unbound)",
                          "not installed")
    log(f"postoffice+auth: making {AUTH_DOMAINS} RSA-2048 DKIM keys and the sender zone")
    keys, records = [], []
    for k in range(AUTH_DOMAINS):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = base64.b64encode(private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
        chunks = " ".join(f'"{public[i:i + 200]}"' for i in range(0, len(public), 200))
        name = f"s{k}"
        records += [f'{name} TXT "v=spf1 ip4:127.0.0.0/24 -all"',
                    f'_dmarc.{name} TXT "v=DMARC1; p=reject"',
                    f'{AUTH_SELECTOR}._domainkey.{name} TXT "v=DKIM1; k=rsa; p=" {chunks}']
        keys.append(load_signing_key(private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())))
    hosts = [f"client{n} A 127.0.0.{n}" for n in range(2, 3 + clients)]
    servers = DnsServers(Path(tempfile.mkdtemp(prefix="postoffice-bench-dns-")))
    servers.start()
    cleanups.append(servers.stop)
    servers.add_zone(AUTH_ZONE, "\n".join(records + hosts) + "\n")
    servers.add_zone("127.in-addr.arpa", "\n".join(f"{n}.0.0 PTR client{n}.{AUTH_ZONE}." for n in range(2, 3 + clients)) + "\n")
    started = time.process_time()
    signed = []
    for j in range(min(AUTH_SIGNED, work.count)):
        k = j % AUTH_DOMAINS
        raw = work.message(j).replace(b"From: Bench Sender <" + SENDER + b">",
                                      f"From: Bench Sender <bench@{_auth_domain(k)}>".encode(), 1)
        head, _, body = raw.partition(b"\r\n\r\n")
        plain = head + b"\r\n\r\n" + re.sub(rb"(?m)^\.\.", b".", body[:-3])  # undo dot-stuffing, drop ".\r\n"
        signed.append(sign_message(plain, _auth_domain(k), AUTH_SELECTOR, keys[k]) + raw)
    log(f"postoffice+auth: {len(signed)} messages signed ({(time.process_time() - started) * 1000 / len(signed):.2f} ms"
        " CPU each, client side, before the load)")
    return servers, SignedWorkload(work, signed)


async def _time_checks(data: Path, nameserver: object, work: SignedWorkload, cache: bool,
                       reuse: bool = False) -> tuple[float, float]:
    """Median wall and CPU seconds of the checks of one message (connect, MAIL FROM, data), as
    the server runs them, here in this process: postoffice's DNS cache on (warmed by a first
    pass) or off (every question goes to Unbound, which has the answers cached). `reuse`: one
    connection per client address, so only MAIL FROM and the data's checks are per message, as
    in the server (the connect-time ones, iprev and the blocklist, run once per connection)."""
    from postoffice.config import load_config
    from postoffice.mailauth.resolver import DnsResolver
    from postoffice.smtp.inbound_checks import InboundChecks

    config = load_config(data)
    resolver = DnsResolver((nameserver,), timeout=config.dns.timeout, cache_entries=10_000 if cache else 0)
    services = type("BenchServices", (), {"config": config, "resolver": resolver})()
    walls, cpus = [], []
    connections: dict[str, InboundChecks] = {}
    for rnd in range(2 if cache else 1):
        for i in range(CHECK_SAMPLES):
            raw = work.message(i)
            data_bytes = re.sub(rb"(?m)^\.\.", b".", raw[:-3])
            mail_from = work.mail_from(i)[11:-3].decode()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            client = source_address(i % 50)
            checks = connections.get(client) if reuse else None
            if checks is None:
                checks = InboundChecks(services, client)  # type: ignore[arg-type]
                await checks.at_connect()
                if reuse:
                    connections[client] = checks
            mail = await checks.at_mail("client.remote.test", mail_from)
            judged = await checks.after_data("client.remote.test", mail_from, mail, data_bytes)
            if rnd == (1 if cache else 0):
                walls.append(time.perf_counter() - wall0)
                cpus.append(time.process_time() - cpu0)
            if judged.verdict.action != "deliver" or judged.results.dmarc is None or judged.results.dmarc.result != "pass":
                raise BenchError(f"postoffice+auth: the checks did not pass message {i}: "
                                 f"{judged.results.header_value()!r}")
    walls.sort()
    cpus.sort()
    return walls[len(walls) // 2], cpus[len(cpus) // 2]


def bench_postoffice_auth(work: Workload, args: argparse.Namespace, env: dict[str, str],
                          cleanups: Cleanups) -> TargetResult:
    clients = 1 + (args.connections - 1) // PER_SOURCE_IP
    servers, signed = _auth_setup(work, cleanups, clients)
    template = postoffice_template(args.cache_dir, env)
    tmp = scratch_dir("smtp-ingest-postoffice-auth-", "postoffice+auth", args.keep, cleanups)
    data = tmp / "data"
    copy_data_dir(template, data)
    nameserver = servers.address  # type: ignore[attr-defined]
    set_toml_keys(data / "postoffice.toml", {"dns": {"nameservers": [str(nameserver)], "blocklists": [AUTH_BLOCKLIST]}})
    warm = run_async(lambda: _time_checks(data, nameserver, signed, cache=True))
    cold = run_async(lambda: _time_checks(data, nameserver, signed, cache=False))
    open_connection = run_async(lambda: _time_checks(data, nameserver, signed, cache=True, reuse=True))
    log(f"postoffice+auth: checks per message, median: DNS cache warm {warm[0] * 1000:.2f} ms"
        f" ({warm[1] * 1000:.2f} ms CPU), cache off {cold[0] * 1000:.2f} ms ({cold[1] * 1000:.2f} ms CPU);"
        f" on an open connection (no connect-time checks), cache warm {open_connection[0] * 1000:.2f} ms"
        f" ({open_connection[1] * 1000:.2f} ms CPU)")
    port = free_port()
    server = start_postoffice(data, env, {"smtp": port}, cleanups)
    monitor = Monitor(server.proc.pid, reaped=False)
    warmup = SignedWorkload(make_workload(min(AUTH_WARMUP, work.count), args.seed + 1), signed.signed)
    warmup_args = argparse.Namespace(**{**vars(args), "per_connection": 10})
    first = run_load(warmup, port, warmup_args, "postoffice+auth warm-up")  # type: ignore[arg-type]
    if first.accepted < warmup.count:
        raise BenchError(f"postoffice+auth: the warm-up got {first.accepted}/{warmup.count} accepted: "
                         + " | ".join(first.problems[:3]))
    profiler = _start_profiler(args, server.proc.pid, cleanups) if args.py_spy else None
    cpu0 = monitor.cpu()
    res = run_load(signed, port, args, "postoffice+auth", monitor)  # type: ignore[arg-type]
    server_cpu = monitor.cpu_when_idle() - cpu0
    monitor.sample()
    if profiler is not None:
        _finish_profiler(profiler)
    finish_postoffice(server)
    text = server.log_path.read_text(errors="replace")
    log(f"postoffice+auth: {text.count('action=deliver')} messages logged delivered, "
        f"{text.count('dmarc=pass')} with dmarc=pass")
    result = TargetResult(res.accepted / res.seconds if res.seconds else 0.0, res, monitor.peak, server_cpu)
    result.checks = (warm, cold, open_connection)
    return result


# --- main -------------------------------------------------------------------------------------

def _filtering_one_at_a_time(args: argparse.Namespace, env: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Filtering off and on side by side, one message at a time: both servers run at once and
    each message goes to one, then the other (which first alternates), so both see the same
    machine (the fsync behind every 250 varies by several ms from minute to minute). Per
    target: (median transaction latency, server CPU per message with the work trailing it), in
    seconds; {} when a server failed."""
    with cleanup_stack() as cleanups:
        ports, monitors = {}, {}
        for target in ("postoffice-nofilter", "postoffice-filter"):
            on = target == "postoffice-filter"
            server, _, ports[target] = start_configured(args, env, cleanups, f"{LABELS[target]}, one at a time",
                                                        lambda data, on=on: configure_filtering(data, on))
            monitors[target] = Monitor(server.proc.pid, reaped=False)
        work = make_workload(ONE_AT_A_TIME, args.seed + 2)
        cpu0 = {target: monitor.cpu() for target, monitor in monitors.items()}
        try:
            medians = paired_latencies(work, ports, SENDER.decode())
        except (OSError, smtplib.SMTPException, BenchError) as exc:
            log(f"filtering one at a time: {exc}")
            return {}
        for monitor in monitors.values():  # both quiet first, then both read at once: the
            monitor.cpu_when_idle()          # second must not accrue while the first settles
        cpu = {target: (monitor.cpu() - cpu0[target]) / work.count for target, monitor in monitors.items()}
        for target in monitors:
            log(f"{LABELS[target]}, one at a time: median latency {medians[target] * 1000:.2f} ms,"
                f" server CPU {cpu[target] * 1000:.2f} ms per message")
        return {target: (medians[target], cpu[target]) for target in monitors}


def _filtering_cost(results: dict[str, TargetResult | str], count: int, connections: int,
                    one_at_a_time: dict[str, tuple[float, float]]) -> str | None:
    """Issue 17's line: what filtering on (the score and a 30-rule Sieve script per user, no DNS)
    adds per message beside filtering off. The target (at most 2 ms) is judged one message at
    a time, side by side: the median latency, and the server CPU per message. Under the c=50
    load the median latency is mostly waiting behind others, and the CPU per message grows
    with the contention of two SMTP processes, the indexer and the client for two cores (it
    ranged from 1.3 to 3.4 ms between runs of the same code): both are shown beside it."""
    off, on = results.get("postoffice-nofilter"), results.get("postoffice-filter")
    if not (isinstance(off, TargetResult) and isinstance(on, TargetResult)):
        return None
    if off.load.accepted < count or on.load.accepted < count or off.server_cpu is None or on.server_cpu is None:
        return "filtering: n/a (a run was incomplete)"
    if len(one_at_a_time) != 2:
        return "filtering: n/a (the one-at-a-time run failed)"
    added = (on.server_cpu / on.load.accepted - off.server_cpu / off.load.accepted) * 1000
    latency = (statistics.median(on.load.latencies) - statistics.median(off.load.latencies)) * 1000
    (on_latency, on_cpu), (off_latency, off_cpu) = one_at_a_time["postoffice-filter"], one_at_a_time["postoffice-nofilter"]
    alone, alone_cpu = (on_latency - off_latency) * 1000, (on_cpu - off_cpu) * 1000
    verdict = "PASS" if alone <= 2.0 and alone_cpu <= 2.0 else "FAIL"
    return (f"filtering on (score + {SIEVE_RULES}-rule Sieve) adds, one message at a time,"
            f" {alone:+.2f} ms median latency and {alone_cpu:.2f} ms CPU per message"
            f" (target <=2 ms: {verdict}); under c={connections}: {added:.2f} ms CPU per message,"
            f" {latency:+.1f} ms median latency with queueing ({on.rate:,.0f} vs {off.rate:,.0f} msg/s)")


def describe(label: str, work: Workload, r: TargetResult) -> None:
    res = r.load
    lat = sorted(res.latencies)

    def pct(p: float) -> str:
        return f"{lat[min(len(lat) - 1, int(p * len(lat)))] * 1000:,.0f}" if lat else "-"

    m = res.machine
    busy = busy_share(m)
    log(f"{label}: {res.accepted:,} accepted, {res.rejected:,} rejected, {res.lost:,} lost, "
        f"{res.rcpt_refused:,} RCPT refused; {res.seconds:.1f} s of load; {res.sessions:,} sessions, "
        f"PIPELINING {'used' if res.pipelining else 'not offered'}; "
        f"transaction latency p50 {pct(0.5)} ms, p99 {pct(0.99)} ms, max {pct(1.0)} ms")
    wall = res.seconds or 1e-9
    server = f"server CPU {r.server_cpu:.1f} s with the work trailing the load ({100 * r.server_cpu / wall:.0f}% of a core), " if r.server_cpu is not None else ""
    log(f"{label}: client CPU {res.client_cpu:.1f} s ({100 * res.client_cpu / wall:.0f}% of a core), {server}"
        f"machine ({psutil.cpu_count()} CPUs) {100 * busy:.0f}% busy, "
        f"iowait {100 * m.get('iowait', 0) / m['total'] if m.get('total') else 0:.0f}% during the load")
    if res.problems:
        log(f"{label}: first problems: " + " | ".join(res.problems[:5]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="SMTP ingest throughput of postoffice, an aiosmtpd+fsync floor, Postfix->Dovecot "
                    "LMTP and Postfix discard, each started and stopped here, in one run; prints one "
                    "result line, PASS if postoffice >= Postfix->Dovecot. Progress on stderr. "
                    "Exit status: 0 PASS, 1 FAIL, 2 no verdict.",
        epilog="Example: .venv/bin/python bench/smtp_ingest.py --count 2000 --targets postoffice,aiosmtpd",
    )
    parser.add_argument("--count", type=int, default=20_000, help="messages to send (default 20000)")
    parser.add_argument("--connections", type=int, default=50, help="concurrent SMTP sessions (default 50)")
    parser.add_argument("--per-connection", type=int, default=100,
                        help="messages per session before QUIT and a new connection (default 100)")
    add_targets_argument(parser, TARGETS)
    parser.add_argument("--seed", type=int, default=42, help="seed for sizes and recipients (default 42)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the data directories, spools and delivered mail (paths on stderr)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                        help="where the postoffice data dir template is kept (default /tmp/postoffice-bench)")
    parser.add_argument("--py-spy", metavar="OUT",
                        help="profile the postoffice server under load (postoffice and postoffice+auth; run one "
                             "of them, the second would overwrite OUT) with `py-spy record` (on PATH or $PY_SPY) "
                             "into OUT (worker processes included): .json = speedscope, .txt = collapsed stacks, else a flame graph SVG")
    parser.add_argument("--py-spy-duration", type=int, default=20, help="seconds to profile (default 20)")
    args = parser.parse_args(argv)
    targets = parse_targets(parser, args.targets, TARGETS)
    if args.count < 1 or args.connections < 1 or args.per_connection < 1:
        parser.error("--count, --connections and --per-connection must be at least 1")
    if args.connections > PER_SOURCE_IP * 250:
        parser.error(f"--connections: at most {PER_SOURCE_IP * 250}")

    env = postoffice_env()

    work = make_workload(args.count, args.seed)
    log(f"{args.count:,} messages, mean {work.mean_size() / 1000:.1f} KB, {work.total_recipients:,} recipients "
        f"({work.total_recipients / args.count:.2f} per message), {args.connections} sessions of up to "
        f"{args.per_connection} messages, from 127.0.0.2..127.0.0.{2 + (args.connections - 1) // PER_SOURCE_IP}")

    def run(target: str, cleanups: Cleanups) -> TargetResult:
        if target == "postoffice":
            return bench_postoffice(work, args, env, cleanups)
        if target == "aiosmtpd":
            return bench_aiosmtpd(work, args, env, cleanups)
        if target == "postoffice-auth":
            return bench_postoffice_auth(work, args, env, cleanups)
        if target in ("postoffice-nofilter", "postoffice-filter"):
            on = target == "postoffice-filter"
            return bench_postoffice(work, args, env, cleanups, LABELS[target],
                                    lambda data: configure_filtering(data, on))
        return bench_postfix(work, args, cleanups, lmtp=target == "postfix-lmtp")

    one_at_a_time: dict[str, tuple[float, float]] = {}
    if {"postoffice-nofilter", "postoffice-filter"} <= set(targets):
        one_at_a_time = _filtering_one_at_a_time(args, env)
    results: dict[str, TargetResult | str] = run_targets(
        targets, run, labels=LABELS, show_type=False, before="load",
        describe=lambda label, r: describe(label, work, r))

    parts = [f"smtp_ingest: N={args.count} c={args.connections}"]
    for target in targets:
        r = results[target]
        label = LABELS[target]
        if isinstance(r, str):
            parts.append(f"{label} {r}")
            continue
        text = f"{label} {r.rate:,.0f} msg/s"
        if target.startswith("postoffice") and r.rss is not None:
            text += f" rss {r.rss / MB:,.0f} MB"
        if r.checks is not None:
            (warm, warm_cpu), (cold, cold_cpu), (_, open_cpu) = r.checks
            text += (f" (checks p50 {warm * 1000:.1f} ms, {warm_cpu * 1000:.1f} ms CPU with the DNS cache warm;"
                     f" {cold * 1000:.1f} ms, {cold_cpu * 1000:.1f} ms CPU with it off;"
                     f" {open_cpu * 1000:.2f} ms CPU per message on an open connection)")
        if r.load.accepted < args.count:
            text += f" (INCOMPLETE: {r.load.accepted:,}/{args.count:,} accepted)"
        parts.append(text)

    def rate(target: str) -> float | None:
        r = results.get(target)
        return r.rate if isinstance(r, TargetResult) and r.load.accepted == args.count and r.rate else None

    po, floor, ref = rate("postoffice"), rate("aiosmtpd"), rate("postfix-lmtp")
    ratios = []
    if po and floor:
        ratios.append(f"vs floor {po / floor:.2f}x")
    if po and ref:
        ratios.append(f"vs postfix+dovecot {po / ref:.2f}x")
    auth = rate("postoffice-auth")
    if auth and ref:
        ratios.append(f"postoffice+auth vs postfix+dovecot {auth / ref:.2f}x (target >=2.0x:"
                      f" {'PASS' if auth >= 2 * ref else 'FAIL'})")
    if ratios:
        parts.append(" ".join(ratios))
    if (filter_line := _filtering_cost(results, args.count, args.connections, one_at_a_time)) is not None:
        parts.append(filter_line)
    if po and ref:
        verdict = "PASS" if po >= ref else "FAIL"
        status = 0 if verdict == "PASS" else 1
    else:
        verdict = "n/a (" + ("postoffice" if not po else "postfix+dovecot") + " has no complete result)"
        status = 2
    parts.append(f"target >=1.0x postfix+dovecot: {verdict}")
    print(" | ".join(parts), flush=True)
    return status


if __name__ == "__main__":
    run_main(main, "smtp_ingest")
