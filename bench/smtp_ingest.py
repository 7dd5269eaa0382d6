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

Beside this script: bench/ingest_load.py (the workload, the load generator, what the postoffice
targets share), bench/ingest_auth.py (target 5), bench/ingest_filters.py (target 6's filtering).

Example: .venv/bin/python bench/smtp_ingest.py --count 2000 --targets postoffice,aiosmtpd
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchkit import (
    CACHE_DIR,
    DOVECOT_LMTP_PORT,
    MB,
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
    cleanup_stack,
    copy_data_dir,
    finish_postoffice,
    free_port,
    log,
    parse_targets,
    port_open,
    postoffice_env,
    psutil,  # imported there, with a hint when it is missing
    run_main,
    run_sh,
    run_targets,
    scratch_dir,
    set_toml_keys,
    setup_reference_dovecot,
    spawn_dovecot,
    start_postoffice,
    stop_process,
    store_counts,
    tail,
    wait_for_ports,
)
from ingest_auth import bench_postoffice_auth
from ingest_filters import SIEVE_RULES, configure_filtering, paired_latencies
from ingest_load import (
    SENDER,
    TargetResult,
    Workload,
    expected_rcpts,
    finish_profiler,
    make_workload,
    postoffice_template,
    run_load,
    start_profiler,
)

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

ONE_AT_A_TIME = 300  # messages sent one at a time to filtering off and on, side by side


# --- target: postoffice -----------------------------------------------------------------------

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
    profiler = start_profiler(args, server.proc.pid, cleanups) if args.py_spy else None
    cpu0 = monitor.cpu()
    res = run_load(work, port, args, label, monitor)
    server_cpu = monitor.cpu_when_idle() - cpu0  # the indexing that trails the load included
    monitor.sample()
    if profiler is not None:
        finish_profiler(profiler)
    finish_postoffice(server)
    try:
        rows, blobs = store_counts(data, "SELECT COUNT(*) FROM messages", "SELECT COUNT(*) FROM blobs")
    except sqlite3.Error:
        pass  # a store schema with other names
    else:
        log(f"postoffice: store holds {rows:,} message rows (expected {expected_rcpts(work, res):,}) "
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
        expected = expected_rcpts(work, res)
        log(f"dovecot: {delivered:,} messages in the Maildirs (expected {expected:,})")
        if not args.keep:
            cleanups.append(lambda: shutil.rmtree(REFERENCE_DOVECOT_BASE / "mail", ignore_errors=True))
        return TargetResult(res.accepted / end_to_end, res)
    return TargetResult(accept_rate, res)


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
