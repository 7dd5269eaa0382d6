"""IMAP IDLE push latency and memory per idle connection, postoffice and Dovecot; one result line.

The load (from the issue): --connections IMAP connections, each LOGIN, SELECT INBOX, IDLE (all on
the INBOX of user1, or spread over --users users); then one message is delivered over LMTP to
every one of those users, and the script times how long each connection takes to see its
`* n EXISTS`, from the moment the client sent the message's final dot. It reports p50, p99 and
the maximum over all connections, and the server's memory per idle connection: (RSS of the
server's process tree with all connections idle - RSS before the first connection) / connections.

Targets:

1. postoffice: a copy of the data dir template bench/imap_stress.py builds (100 users, 50
   messages each), listening on imap and lmtp on free 127.0.0.1 ports, started with RLIMIT_NOFILE
   raised to --connections + 1000. The users get argon2id hashes of minimal cost by default
   (--hash fast): 10,000 logins with the default argon2id cost (64 MiB, 3 passes) take about
   0.25 s of CPU each, over 40 minutes on 2 cores, and measure the password scheme, not IDLE.
2. dovecot: the reference configuration (see imap_stress.py; base /tmp/reference-dovecot-
   imapbench, free ports) with one imap process per connection (`service imap { process_limit =
   N+100, client_limit = 1 }`), default_process_limit and default_client_limit and
   mail_max_userip_connections raised to fit. Every idle imap process watches the Maildir with
   inotify, so fs.inotify.max_user_instances is raised to 4N+1000 for the run (and restored
   after; --no-sysctl leaves it, and Dovecot then falls back to polling every 30 s). Dovecot's
   processes take far more memory: the script stops opening connections when the machine has
   less than --min-free-mb available, or after --dovecot-max, and says how many it held. For
   Dovecot the RSS sum counts the shared libraries once per process, so the PSS-based figure is
   printed beside it.

The clients are --procs processes of asyncio (uvloop when installed), each holding its share of
the connections, spread over source addresses 127.0.0.2, ... (10 each; postoffice allows 20 per
IP). Timestamps are CLOCK_MONOTONIC, the same in every process. stdout gets one line:

imap_idle: n=10000 | postoffice p50 80 ms p99 210 ms max 300 ms 38 KB/conn | dovecot (2,000 conns)
  p50 ... 350 KB/conn | PASS

PASS when postoffice's p99 < 500 ms and its memory < 60 KB per idle connection (KB = 1000 bytes).
Exit status: 0 PASS, 1 FAIL, 2 no verdict (postoffice unavailable, or connections failed).

Example: .venv/bin/python bench/imap_idle.py --connections 1000 --targets postoffice
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import (
    CACHE_DIR,
    DOMAIN,
    DOVECOT_PASSWORD,
    DOVECOT_USERS,
    MB,
    PASSWORD,
    BenchError,
    Cleanups,
    Monitor,
    Unavailable,
    add_profile_argument,
    add_targets_argument,
    copy_data_dir,
    crlf,
    fill_maildir,
    finish_postoffice,
    free_port,
    load_messages,
    log,
    parse_targets,
    postoffice_env,
    prepare_mbox,
    psutil,  # imported there, with a hint when it is missing
    run_async,
    run_main,
    run_targets,
    scratch_dir,
    set_nofile,
    source_address,
    start_postoffice,
    unindexed_note,
    wait_idle,
)
from imap_stress import (
    DOVECOT_BASE,
    REPLY_TIMEOUT,
    STOP_TIMEOUT,
    Dovecot,
    ImapConnection,
    ImapError,
    postoffice_template,
    quote,
    setup_dovecot,
    start_dovecot,
    stop_dovecot,
    warm_up,
)

KB = 1000
TEMPLATE_USERS = 100
TEMPLATE_MESSAGES = 50
CONNECT_PARALLEL = 64  # connections being set up at once, per client process
PUSH_TIMEOUT = 120.0
SETTLE_TIMEOUT = 120.0  # after the connections are open, wait at most this long for an idle server
INOTIFY = Path("/proc/sys/fs/inotify/max_user_instances")


# --- the client processes ---------------------------------------------------------------------

@dataclass
class Opened:
    ok: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    stopped_early: bool = False


class IdleClient:
    """One process's connections: open them, keep them in IDLE, time the EXISTS."""

    def __init__(self, port: int, indexes: list[int], users: list[tuple[str, str]], min_free: int) -> None:
        self.port = port
        self.indexes = indexes
        self.users = users
        self.min_free = min_free
        self.conns: list[ImapConnection] = []
        self.seen: list[list[float]] = []  # per connection: when each new EXISTS arrived
        self.exists: list[int] = []
        self.tasks: list[asyncio.Task] = []
        self.opened = Opened()
        self.changed = asyncio.Event()

    async def open_all(self) -> Opened:
        sem = asyncio.Semaphore(CONNECT_PARALLEL)
        stop = asyncio.Event()

        async def one(index: int) -> None:
            async with sem:
                if stop.is_set():
                    return
                if self.min_free and psutil.virtual_memory().available < self.min_free:
                    stop.set()
                    self.opened.stopped_early = True
                    return
                user, password = self.users[index % len(self.users)]
                try:
                    async with asyncio.timeout(REPLY_TIMEOUT):
                        conn = await ImapConnection.connect(self.port, source_address(index))
                        try:
                            for text in (b"LOGIN " + quote(user) + b" " + quote(password), b"SELECT INBOX"):
                                reply = await conn.command(text)
                                if reply.status != "OK":
                                    raise ImapError(f"{text.split()[0].decode()}: {reply.text[:200]}")
                            conn.tag += 1
                            conn.writer.write(b"a%d IDLE\r\n" % conn.tag)
                            line, _ = await conn.read_line()
                            while line.startswith(b"* "):
                                line, _ = await conn.read_line()
                            if not line.startswith(b"+"):
                                raise ImapError(f"IDLE: {line[:200]!r}")
                        except BaseException:
                            conn.close()
                            raise
                except (OSError, ImapError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    self.opened.error_count += 1
                    if len(self.opened.errors) < 5:
                        self.opened.errors.append(f"connection {index} ({user}): {type(exc).__name__}: {exc}")
                    return
                slot = len(self.conns)
                self.conns.append(conn)
                self.seen.append([])
                self.exists.append(conn.exists)
                self.tasks.append(asyncio.create_task(self.watch(slot)))
                self.opened.ok += 1

        await asyncio.gather(*(one(i) for i in self.indexes))
        return self.opened

    async def watch(self, slot: int) -> None:
        conn = self.conns[slot]
        try:
            while True:
                line, _ = await conn.read_line()
                now = time.perf_counter()
                if line.startswith(b"* ") and line.endswith(b" EXISTS\r\n"):
                    n = int(line.split()[1])
                    if n > self.exists[slot]:
                        self.exists[slot] = n
                        self.seen[slot].append(now)
                        self.changed.set()
        except (OSError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            return

    async def wait_push(self, delivery: int, timeout: float) -> tuple[list[float], int]:
        """Arrival times of EXISTS number `delivery` (0-based), and how many never came."""
        deadline = time.perf_counter() + timeout
        while True:
            done = sum(1 for s in self.seen if len(s) > delivery)
            if done == len(self.seen) or time.perf_counter() >= deadline:
                break
            self.changed.clear()
            try:
                async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                    await self.changed.wait()
            except TimeoutError:
                pass
        times = [s[delivery] for s in self.seen if len(s) > delivery]
        return times, len(self.seen) - len(times)

    async def close_all(self) -> None:
        for task in self.tasks:
            task.cancel()
        for conn in self.conns:
            conn.close()
        await asyncio.sleep(0)


def client_process(port: int, indexes: list[int], users: list[tuple[str, str]], min_free: int,
                   pipe: Connection) -> None:
    """Commands from the parent over `pipe`: "open" -> Opened; ("wait", k) -> (times, missing);
    "close" -> None, then exit."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        client = IdleClient(port, indexes, users, min_free)
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command == "open":
                pipe.send(await client.open_all())
            elif isinstance(command, tuple) and command[0] == "wait":
                pipe.send(await client.wait_push(command[1], PUSH_TIMEOUT))
            else:
                await client.close_all()
                pipe.send(None)
                return

    try:
        run_async(main)
    except Exception as exc:
        pipe.send(BenchError(f"client process: {type(exc).__name__}: {exc}"))


# --- delivery ---------------------------------------------------------------------------------

async def lmtp_deliver(port: int, recipients: list[str], message: bytes) -> tuple[float, float, list[str]]:
    """One LMTP transaction; (time the final dot was sent, time the last reply came, problems)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    problems: list[str] = []

    async def reply() -> bytes:
        while True:
            line = await reader.readuntil(b"\n")
            if line[3:4] != b"-":
                return line

    try:
        await reply()
        writer.write(b"LHLO bench.test\r\n")
        await reply()
        writer.write(b"MAIL FROM:<bench@remote.test>\r\n")
        await reply()
        for rcpt in recipients:
            writer.write(b"RCPT TO:<%s>\r\n" % rcpt.encode())
            line = await reply()
            if not line.startswith(b"2"):
                problems.append(f"RCPT {rcpt}: {line.decode(errors='replace').strip()}")
        writer.write(b"DATA\r\n")
        line = await reply()
        if not line.startswith(b"354"):
            raise BenchError(f"LMTP DATA: {line.decode(errors='replace').strip()}")
        body = message.replace(b"\r\n.", b"\r\n..")
        writer.write(body if body.endswith(b"\r\n") else body + b"\r\n")
        await writer.drain()
        sent = time.perf_counter()
        writer.write(b".\r\n")
        for rcpt in recipients:
            line = await reply()
            if not line.startswith(b"250"):
                problems.append(f"delivery to {rcpt}: {line.decode(errors='replace').strip()}")
        answered = time.perf_counter()
        writer.write(b"QUIT\r\n")
        return sent, answered, problems
    finally:
        writer.close()


# --- one target -------------------------------------------------------------------------------

@dataclass
class IdleResult:
    conns: int
    latencies: list[float]  # seconds, all deliveries
    missing: int
    ack: list[float]  # LMTP final reply after the dot, per delivery
    rss_before: int
    rss_idle: int
    pss_before: int
    pss_idle: int
    open_seconds: float
    stopped_early: bool
    open_errors: list[str]
    open_error_count: int
    server_cpu_push: float

    def pct(self, p: float) -> float:
        v = sorted(self.latencies)
        return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")

    @property
    def per_conn(self) -> float:
        return (self.rss_idle - self.rss_before) / self.conns if self.conns else float("nan")

    @property
    def per_conn_pss(self) -> float:
        return (self.pss_idle - self.pss_before) / self.conns if self.conns else float("nan")


def measure(label: str, imap_port: int, lmtp_port: int, users: list[tuple[str, str]], recipients: list[str],
            message: bytes, connections: int, args: argparse.Namespace, monitor: Monitor,
            min_free: int, idle_note: Callable[[], str] | None = None) -> IdleResult:
    # one warm connection first, so that the code paths are loaded before "before" is taken
    problems = run_async(lambda: warm_up(imap_port, users[:1], parallel=1))
    if problems:
        raise BenchError(f"{label}: warm-up: {problems[0]}")
    wait_idle(monitor, label, idle_note)
    time.sleep(1.0)
    rss_before, pss_before = monitor.rss(), monitor.pss()
    log(f"{label}: before connecting: RSS {rss_before / MB:,.1f} MB, PSS {pss_before / MB:,.1f} MB")

    procs_n = max(1, min(args.procs, connections))
    ctx = multiprocessing.get_context("fork")
    pipes, procs = [], []
    for p in range(procs_n):
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=client_process,
                           args=(imap_port, list(range(p, connections, procs_n)), users, min_free, child_end),
                           daemon=True)
        proc.start()
        pipes.append(parent_end)
        procs.append(proc)

    def ask(command: object, timeout: float) -> list:
        for pipe in pipes:
            pipe.send(command)
        answers = []
        for pipe in pipes:
            if not pipe.poll(timeout):
                raise BenchError(f"{label}: a client process did not answer {command!r} within {timeout:.0f} s")
            answer = pipe.recv()
            if isinstance(answer, Exception):
                raise BenchError(str(answer))
            answers.append(answer)
        return answers

    try:
        started = time.perf_counter()
        log(f"{label}: opening {connections:,} connections (LOGIN, SELECT INBOX, IDLE) from {procs_n} "
            f"client processes ...")
        opened: list[Opened] = ask("open", 3600)
        open_seconds = time.perf_counter() - started
        ok = sum(o.ok for o in opened)
        errors = [e for o in opened for e in o.errors]
        error_count = sum(o.error_count for o in opened)
        stopped = any(o.stopped_early for o in opened)
        log(f"{label}: {ok:,} connections idle after {open_seconds:.1f} s ({ok / open_seconds:,.0f}/s)"
            + (f"; {error_count:,} failed, first: {errors[0]}" if error_count else "")
            + ("; stopped early: the machine ran low on memory" if stopped else ""))
        if not ok:
            raise BenchError(f"{label}: no connection reached IDLE" + (f": {errors[0]}" if errors else ""))
        wait_idle(monitor, label, timeout=SETTLE_TIMEOUT)
        time.sleep(1.0)
        rss_idle = monitor.rss()
        t = time.monotonic()
        pss_idle = monitor.pss()
        log(f"{label}: {ok:,} idle: RSS {rss_idle / MB:,.1f} MB ({(rss_idle - rss_before) / ok / KB:,.1f} KB/conn), "
            f"PSS {pss_idle / MB:,.1f} MB ({(pss_idle - pss_before) / ok / KB:,.1f} KB/conn; "
            f"{len(monitor.members()):,} server processes; PSS read in {time.monotonic() - t:.1f} s)")
        latencies: list[float] = []
        acks: list[float] = []
        missing = 0
        cpu0 = monitor.cpu()
        for k in range(args.deliveries):
            if k:
                time.sleep(2.0)
            sent, answered, problems = run_async(lambda: lmtp_deliver(lmtp_port, recipients, message))
            if problems:
                raise BenchError(f"{label}: delivery failed: {'; '.join(problems[:3])}")
            answers = ask(("wait", k), PUSH_TIMEOUT + 60)
            times = [t - sent for a in answers for t in a[0]]
            lost = sum(a[1] for a in answers)
            latencies += times
            acks.append(answered - sent)
            missing += lost
            v = sorted(times)
            if v:
                log(f"{label}: delivery {k + 1}: LMTP answered {1000 * (answered - sent):,.0f} ms after the dot; "
                    f"EXISTS at {len(v):,}/{ok:,} connections: first {1000 * v[0]:,.0f} ms, p50 "
                    f"{1000 * v[len(v) // 2]:,.0f} ms, p99 {1000 * v[min(len(v) - 1, int(0.99 * len(v)))]:,.0f} ms, "
                    f"max {1000 * v[-1]:,.0f} ms" + (f"; {lost:,} never got it within {PUSH_TIMEOUT:.0f} s" if lost else ""))
            else:
                log(f"{label}: delivery {k + 1}: no connection saw EXISTS within {PUSH_TIMEOUT:.0f} s")
        server_cpu = monitor.cpu() - cpu0
        log(f"{label}: server CPU for the push{'es' if args.deliveries > 1 else ''}: {server_cpu:.2f} s")
        ask("close", 120)
    finally:
        for pipe in pipes:
            pipe.close()
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return IdleResult(ok, latencies, missing, acks, rss_before, rss_idle, pss_before, pss_idle, open_seconds,
                      stopped, errors, error_count, server_cpu)


def bench_postoffice(mbox: Path, message: bytes, args: argparse.Namespace,
                     cleanups: Cleanups) -> IdleResult:
    env = postoffice_env()
    template = postoffice_template(args.cache_dir, env, TEMPLATE_USERS, mbox, TEMPLATE_MESSAGES, args.hash)
    tmp = scratch_dir("imap-idle-postoffice-", "postoffice", args.keep, cleanups)
    data = tmp / "data"
    copy_data_dir(template, data)
    imap_port, lmtp_port = free_port(), free_port()
    server = start_postoffice(data, env, {"imap": imap_port, "lmtp": lmtp_port}, cleanups,
                              profile=args.profile, nofile=args.connections + 1000, stop_timeout=STOP_TIMEOUT)
    users = [(f"user{u}@{DOMAIN}", PASSWORD) for u in range(1, args.users + 1)]
    recipients = [u for u, _ in users]
    result = measure("postoffice", imap_port, lmtp_port, users, recipients, message, args.connections, args,
                     server.monitor, 0, unindexed_note(data))
    finish_postoffice(server, args.profile)
    return result


def dovecot_extra(n: int) -> str:
    limit = n + 200
    return f"""default_process_limit = {limit}
default_client_limit = {limit}
mail_max_userip_connections = {limit}
service imap {{
  process_limit = {n + 100}
  client_limit = 1
}}
service imap-login {{
  process_min_avail = 4
}}
service anvil {{
  client_limit = {2 * limit + 100}
}}
service auth {{
  client_limit = {4 * limit + 100}
}}
"""


def bench_dovecot(messages: list[bytes], message: bytes, args: argparse.Namespace,
                  cleanups: Cleanups) -> IdleResult:
    n = min(args.connections, args.dovecot_max or args.connections)
    if args.users > DOVECOT_USERS:
        raise Unavailable(f"the reference Dovecot has {DOVECOT_USERS} users, not {args.users}")
    dovecot: Dovecot = setup_dovecot(DOVECOT_BASE, dovecot_extra(n))
    if not args.keep:
        cleanups.append(lambda: shutil.rmtree(dovecot.mail, ignore_errors=True))
    for u in range(1, args.users + 1):
        fill_maildir(dovecot.mail, f"user{u}", messages)
    if not args.no_sysctl:
        try:
            old = int(INOTIFY.read_text())
            want = 4 * n + 1000  # an imap process may hold more than one instance for a while
            if old < want:
                INOTIFY.write_text(f"{want}\n")
                log(f"dovecot: fs.inotify.max_user_instances raised from {old} to {want} for the run")
                cleanups.append(lambda: INOTIFY.write_text(f"{old}\n"))
        except (OSError, ValueError) as exc:
            log(f"dovecot: could not raise fs.inotify.max_user_instances: {exc}")
    start_dovecot(dovecot, cleanups, nofile=4 * n + 1000)
    cleanups.append(lambda: stop_dovecot(dovecot))
    users = [(f"user{u}", DOVECOT_PASSWORD) for u in range(1, args.users + 1)]
    recipients = [f"user{u}@{DOMAIN}" for u in range(1, args.users + 1)]
    assert dovecot.monitor is not None
    return measure("dovecot", dovecot.imap_port, dovecot.lmtp_port, users, recipients, message, n, args,
                   dovecot.monitor, args.min_free_mb * MB)


# --- main -------------------------------------------------------------------------------------

TARGETS = ("postoffice", "dovecot")


def summary(label: str, r: IdleResult, requested: int, pss_too: bool) -> str:
    name = label if r.conns == requested else f"{label} ({r.conns:,} conns)"
    if not r.latencies:
        return f"{name} no EXISTS within {PUSH_TIMEOUT:.0f} s"
    text = (f"{name} p50 {1000 * r.pct(0.5):,.0f} ms p99 {1000 * r.pct(0.99):,.0f} ms "
            f"max {1000 * r.pct(1.0):,.0f} ms {r.per_conn / KB:,.0f} KB/conn")
    if pss_too:
        text += f" (pss {r.per_conn_pss / KB:,.0f} KB/conn)"
    if r.missing:
        text += f" ({r.missing:,} never saw EXISTS)"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="IMAP IDLE: --connections idle connections, one LMTP delivery, time until every "
                    "connection saw EXISTS (p50/p99/max) and server memory per idle connection, for "
                    "postoffice and the reference Dovecot, each started and stopped here; prints one "
                    "result line, PASS if postoffice's p99 < 500 ms and < 60 KB/conn. Progress on stderr. "
                    "Exit status: 0 PASS, 1 FAIL, 2 no verdict.",
        epilog="Example: .venv/bin/python bench/imap_idle.py --connections 1000 --targets postoffice",
    )
    parser.add_argument("--connections", type=int, default=10_000, help="idle connections (default 10000)")
    parser.add_argument("--users", type=int, default=1, help="spread the connections over user1..userN (default 1)")
    parser.add_argument("--deliveries", type=int, default=1,
                        help="messages delivered one after the other; latencies of all are pooled (default 1)")
    parser.add_argument("--procs", type=int, default=4, help="client processes (default 4)")
    add_targets_argument(parser, TARGETS)
    parser.add_argument("--hash", choices=("argon2", "fast"), default="fast",
                        help="postoffice users' password hashes: fast = argon2id of minimal cost (default), "
                             "argon2 = as `user add` makes them (0.25 s of CPU per login)")
    parser.add_argument("--dovecot-max", type=int, default=0,
                        help="open at most this many connections to Dovecot (default: --connections)")
    parser.add_argument("--min-free-mb", type=int, default=2000,
                        help="stop opening Dovecot connections when less memory is available (default 2000)")
    parser.add_argument("--no-sysctl", action="store_true",
                        help="do not raise fs.inotify.max_user_instances for Dovecot")
    parser.add_argument("--seed", type=int, default=42, help="gen_mbox.py seed of the INBOX messages (default 42)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and the Maildirs")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                        help="where the mbox and the data dir template are kept (default /tmp/postoffice-bench)")
    add_profile_argument(parser)
    args = parser.parse_args(argv)
    targets = parse_targets(parser, args.targets, TARGETS)
    if args.connections < 1 or not 1 <= args.users <= TEMPLATE_USERS or args.deliveries < 1:
        parser.error(f"--connections and --deliveries must be positive, --users 1..{TEMPLATE_USERS}")
    nofile = set_nofile(args.connections + 4096)
    if nofile < args.connections + 100:
        log(f"warning: RLIMIT_NOFILE is {nofile}; the clients may run out of file descriptors")
    head = f"imap_idle: n={args.connections}"
    try:
        mbox = prepare_mbox(args.cache_dir, TEMPLATE_MESSAGES, args.seed)
        messages = load_messages(mbox)
    except (BenchError, OSError) as exc:
        print(f"{head} | ERROR: {str(exc).splitlines()[0]}", flush=True)
        return 2
    message = crlf(b"From: Bench Sender <bench@remote.test>\nTo: user1@bench.test\nSubject: idle push test\n"
                   b"Message-ID: <idle-push-%d@remote.test>\nDate: Thu, 01 Jan 2026 00:00:00 +0000\n\n"
                   b"Something new arrived.\n" % time.time_ns())
    log(f"{args.connections:,} connections over {args.users} user(s), {args.deliveries} delivery(ies), "
        f"{args.procs} client processes; RLIMIT_NOFILE here {nofile:,}")

    results: dict[str, IdleResult | str] = run_targets(targets, lambda target, cleanups: (
        bench_postoffice(mbox, message, args, cleanups) if target == "postoffice"
        else bench_dovecot(messages, message, args, cleanups)))

    parts = [head]
    for target in targets:
        r = results[target]
        if isinstance(r, str):
            parts.append(f"{target} {r}")
        else:
            parts.append(summary(target, r, args.connections, pss_too=target == "dovecot"))
    po = results.get("postoffice")
    if isinstance(po, IdleResult) and po.conns == args.connections and po.latencies and not po.missing:
        p99_ok = po.pct(0.99) < 0.5
        mem_ok = po.per_conn < 60 * KB
        verdict = "PASS" if p99_ok and mem_ok else "FAIL (" + ", ".join(
            ([] if p99_ok else ["p99 >= 500 ms"]) + ([] if mem_ok else [">= 60 KB/conn"])) + ")"
        status = 0 if verdict == "PASS" else 1
    elif isinstance(po, IdleResult) and po.conns == args.connections:
        verdict, status = "FAIL (connections missed the EXISTS)", 1
    else:
        verdict, status = "n/a (postoffice did not hold every connection)", 2
    parts.append(verdict)
    print(" | ".join(parts), flush=True)
    if isinstance(po, IdleResult) and len(po.latencies) > 1:
        log(f"postoffice: mean push latency {1000 * statistics.fmean(po.latencies):,.0f} ms")
    return status


if __name__ == "__main__":
    run_main(main, "imap_idle")
