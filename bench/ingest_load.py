"""The load of bench/smtp_ingest.py: the workload, the asyncio SMTP client that drives it, the result
of a target, and what both postoffice targets share (the data dir template with user1..user100,
py-spy)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

from benchkit import (
    DOMAIN,
    MB,
    PASSWORD,
    Cleanups,
    Monitor,
    cached_template,
    cpu_delta,
    log,
    message_bodies,
    psutil,  # imported there, with a hint when it is missing
    run_async,
    run_postoffice,
    source_address,
    source_digest,
    stop_process,
)

USERS = 100
SENDER = b"bench@remote.test"
REPLY_TIMEOUT = 120.0  # one transaction, from MAIL to the reply to the data
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


# --- what the postoffice targets share --------------------------------------------------------

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


def expected_rcpts(work: Workload, res: LoadResult) -> int:
    """Recipient count of the accepted messages, exact when all were accepted."""
    return work.total_recipients if res.accepted == work.count else -1


def start_profiler(args: argparse.Namespace, pid: int, cleanups: Cleanups) -> subprocess.Popen:
    out = Path(args.py_spy)
    fmt = {".json": "speedscope", ".txt": "raw"}.get(out.suffix, "flamegraph")
    exe = os.environ.get("PY_SPY") or shutil.which("py-spy") or "py-spy"
    argv = [exe, "record", "--pid", str(pid), "--duration", str(args.py_spy_duration), "--rate", "100",
            "--subprocesses", "-o", str(out), "--format", fmt]
    log(f"postoffice: profiling: {' '.join(argv)}")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    cleanups.append(lambda: stop_process(proc, "py-spy"))
    return proc


def finish_profiler(proc: subprocess.Popen) -> None:
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stop_process(proc, "py-spy")
        return
    log(f"py-spy exited with {proc.returncode}: {err.decode(errors='replace').strip()[-300:]}")
