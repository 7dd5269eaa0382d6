"""POP3 download throughput of postoffice and the reference Dovecot, side by side; one result line.

The load (from the issue): --users clients at once, each downloading its own maildrop of
--messages messages with RETR 1..n. POP3 allows one session per maildrop (RFC 1939 §8, [IN-USE]),
so every client logs in as a different user, and every user holds the same messages:
../shared/reference/gen_mbox.py's mbox of --messages for --seed (bodies 0.5-40 KB, some with
attachments; cached under --cache-dir under the name bench/import_mbox.py uses).

Every target is filled, started, measured and stopped by this script, in the same run:

1. postoffice: a fresh data dir (`init`, then per user `user add` and `import mbox --into`), its
   [listen] section rewritten so that only pop3 listens, on a free 127.0.0.1 port, and
   [pop3] processes set to --pop3-processes (default 1, as shipped); then
   `python -m postoffice serve`. Blobs are stored once per content, so the users share them.
2. dovecot: the reference Dovecot 2.3 from ../shared/reference (dovecot-setup.sh, then
   `dovecot -F -c ...`), POP3 on 127.0.0.1:20110. The messages are written straight into the
   Maildirs of user1..userN (new/, LF line ends, `,S=<size>,W=<size with CRLF>` in the file
   name, as Dovecot's own delivery names them): one file per user and message.

Before the measured run each target gets one untimed login per user (USER, PASS, STAT, QUIT), so
Dovecot builds its indexes and moves new/ to cur/ as it would have at delivery, and the script
waits until the server is idle (postoffice builds its full-text index in the background after an
import). Then --users client processes (multiprocessing, so that the client is not the
bottleneck) start together: each connects and sends CAPA, USER, PASS, STAT and LIST; once all have
logged in (a barrier) each sends RETR 1..n (one at a time by default; --window N keeps N in flight
when the server offers PIPELINING) and QUIT, deleting nothing. The logins are not timed: they
measure the password scheme (argon2id in postoffice, PLAIN in the reference Dovecot), not POP3.
messages/s = RETRs / (the barrier .. the last reply to QUIT). Peak RSS is the sum over the
server's process tree (postoffice: the main process and its POP3 workers; Dovecot: the master and
all its children), polled
every 50 ms, during the download; the peak during the logins is shown beside it.

Every reply is checked, so that a broken server cannot look fast: each RETR must answer +OK with
content (dot-stuffing undone) of exactly the octets LIST gave, the LIST size must be that of the
source message with CRLF line ends, each message's X-Bench-Seq header must name a different
source message, and one message in SAMPLE_EVERY (a different one for each user, so with 20 users
each source message once) must be byte for byte the source message with CRLF line ends.

stdout gets one line, progress and details (CPU time of client and server, fill times) go to
stderr:

pop3_retr: users=20 msgs=2000 | postoffice 5,432 msg/s rss 108 MB (logins 498 MB) | dovecot 3,100 msg/s
  rss 136 MB (logins 140 MB) | 1.75x dovecot | PASS

Exit status: 0 PASS (postoffice >= 1.0x Dovecot), 1 FAIL, 2 no verdict (a target not installed,
unavailable, failed, or returned wrong content).

Example: .venv/bin/python bench/pop3_retr.py --users 4 --messages 500 --targets postoffice
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from pathlib import Path

from benchkit import (
    CACHE_DIR,
    DOMAIN,
    DOVECOT_PASSWORD,
    DOVECOT_POP3_PORT,
    DOVECOT_USERS,
    MB,
    PASSWORD,
    PER_SOURCE_IP,
    REFERENCE_DOVECOT_BASE,
    REFERENCE_DOVECOT_CONF,
    START_TIMEOUT,
    BenchError,
    Cleanups,
    Monitor,
    Unavailable,
    add_profile_argument,
    add_targets_argument,
    busy_share,
    cpu_delta,
    crlf,
    dovecot_log_problems,
    dovecot_missing,
    dovecot_version,
    fill_maildir,
    finish_postoffice,
    free_port,
    import_mbox,
    load_messages,
    log,
    parse_targets,
    postoffice_env,
    prepare_mbox,
    psutil,  # imported there, with a hint when it is missing
    run_main,
    run_postoffice,
    run_targets,
    scratch_dir,
    set_toml_keys,
    setup_reference_dovecot,
    source_address,
    spawn_dovecot,
    start_postoffice,
    stop_process,
    unindexed_note,
    wait_idle,
)

SAMPLE_EVERY = 20  # full byte comparison of one message in 20 per client
READ_SIZE = 256 * 1024
REPLY_TIMEOUT = 120.0
LOGIN_TIMEOUT = 600.0
IDLE_TIMEOUT = 300.0
TARGETS = ("postoffice", "dovecot")

DOVECOT_POP3 = Path("/usr/lib/dovecot/pop3")


# --- the messages -----------------------------------------------------------------------------

# Set before the client processes fork, read (never written) by them.
_EXPECTED: list[bytes] = []  # the source messages with CRLF line ends, as RETR must send them
_SEQ = re.compile(rb"\r\nX-Bench-Seq: *(\d+)\r\n")


# --- the client -------------------------------------------------------------------------------

class PopError(Exception):
    pass


class PopClient:
    """A raw-socket POP3 client with its own buffer: replies are found with bytes.find, and
    RETR content is checked in place, so the client needs little CPU per message."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.pos = 0

    def _fill(self) -> None:
        data = self.sock.recv(READ_SIZE)
        if not data:
            raise PopError("the server closed the connection")
        if self.pos > READ_SIZE:  # keep the 2 bytes before pos: searches start at the CRLF there
            del self.buf[: self.pos - 2]
            self.pos = 2
        self.buf += data

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n", self.pos)) < 0:
            self._fill()
        line = bytes(self.buf[self.pos:end])
        self.pos = end + 2
        return line

    def status(self, what: str) -> bytes:
        line = self.line()
        if not line.startswith(b"+OK"):
            raise PopError(f"{what}: {line[:200].decode(errors='replace')}")
        return line

    def multiline(self) -> tuple[int, int]:
        """After a +OK line: (start, end) of the dot-stuffed content in self.buf, the CRLF that
        ends the last line included; the terminating "." line is consumed."""
        start = self.pos
        search = start - 2  # the status line's CRLF: content may be empty, or start with "."
        while (end := self.buf.find(b"\r\n.\r\n", search)) < 0:
            scanned = len(self.buf) - start
            self._fill()  # may move the content to the front of the buffer
            start = self.pos
            search = max(start - 2, start + scanned - 4)
        self.pos = end + 5
        return start, end + 2

    def lines(self) -> list[bytes]:
        start, end = self.multiline()
        text = bytes(self.buf[start:end])
        return [line[1:] if line.startswith(b".") else line for line in text.split(b"\r\n")[:-1]]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


@dataclass
class ClientResult:
    user: str
    retrieved: int = 0
    octets: int = 0
    sampled: int = 0
    started: float = 0.0
    logged_in: float = 0.0
    download_started: float = 0.0
    finished: float = 0.0
    cpu: float = 0.0
    pipelining: bool = False
    stat: tuple[int, int] = (0, 0)
    problems: list[str] = field(default_factory=list)
    error: str | None = None

    def note(self, text: str) -> None:
        if len(self.problems) < 5:
            self.problems.append(text)


def run_client(index: int, user: str, password: str, port: int, window: int, retr: bool,
               start: Barrier, go: Barrier, results: multiprocessing.Queue) -> None:
    """One client process: at `start`, log in (USER, PASS, STAT, and LIST with `retr`); at `go`,
    download everything (with `retr`); QUIT. A failing client breaks the barriers."""
    res = ClientResult(user)
    sock = None
    try:
        start.wait(START_TIMEOUT)
        cpu0 = time.process_time()
        res.started = time.perf_counter()
        sock, c, sizes = _login(res, index, user, password, port, retr)
        res.logged_in = time.perf_counter()
        go.wait(LOGIN_TIMEOUT)
        res.download_started = time.perf_counter()
        if retr:
            _retrieve(res, c, index, sizes, res.stat[0], window if res.pipelining else 1)
        c.send(b"QUIT\r\n")
        c.status("QUIT")
        res.finished = time.perf_counter()
        res.cpu = time.process_time() - cpu0
    except (OSError, PopError, ValueError, threading.BrokenBarrierError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
        start.abort()
        go.abort()
    finally:
        if sock is not None:
            sock.close()
        results.put(res)


def _login(res: ClientResult, index: int, user: str, password: str, port: int,
           retr: bool) -> tuple[socket.socket, PopClient, list[int]]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT,
                                    source_address=(source_address(index), 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = PopClient(sock)
    try:
        c.status("greeting")
        c.send(b"CAPA\r\n")
        c.status("CAPA")
        capabilities = {line.split(b" ")[0].upper() for line in c.lines()}
        res.pipelining = b"PIPELINING" in capabilities
        c.send(f"USER {user}\r\n".encode())
        c.status("USER")
        c.send(f"PASS {password}\r\n".encode())
        c.status("PASS")
        c.send(b"STAT\r\n")
        parts = c.status("STAT").split()
        count, total = int(parts[1]), int(parts[2])
        res.stat = (count, total)
        sizes = [0] * (count + 1)
        if retr:
            c.send(b"LIST\r\n")
            c.status("LIST")
            for line in c.lines():
                number, size = line.split()
                sizes[int(number)] = int(size)
            if sum(sizes) != total:
                res.note(f"LIST sizes add up to {sum(sizes):,}, STAT said {total:,}")
            for n in range(1, count + 1):
                if n - 1 < len(_EXPECTED) and sizes[n] != len(_EXPECTED[n - 1]) and not res.problems:
                    res.note(f"LIST {n}: {sizes[n]:,} octets, not the {len(_EXPECTED[n - 1]):,} "
                             "of the source message with CRLF (or the order differs)")
    except BaseException:
        sock.close()
        raise
    return sock, c, sizes


def _retrieve(res: ClientResult, c: PopClient, index: int, sizes: list[int], count: int,
              window: int) -> None:
    expected = _EXPECTED
    seen = bytearray(len(expected))
    sent = 0
    for n in range(1, count + 1):
        # Keep up to `window` RETRs in flight, topped up in batches once half are answered
        # (window 1: send RETR n, read its reply, and so on).
        if sent < count and sent - n + 1 <= window // 2:
            upto = min(count, n + window - 1)
            c.send(b"".join(b"RETR %d\r\n" % m for m in range(sent + 1, upto + 1)))
            sent = upto
        line = c.line()
        if not line.startswith(b"+OK"):
            res.note(f"RETR {n}: {line[:120].decode(errors='replace')}")
            continue
        start, end = c.multiline()
        buf = c.buf
        stuffed = buf.count(b"\r\n..", start - 2, end)
        octets = end - start - stuffed
        res.retrieved += 1
        res.octets += octets
        if octets != sizes[n]:
            res.note(f"RETR {n}: {octets:,} octets, LIST said {sizes[n]:,}")
            continue
        match = _SEQ.search(buf, start - 2, min(end, start + 16384))
        seq = int(match.group(1)) if match else n - 1
        if not 0 <= seq < len(expected):
            res.note(f"RETR {n}: X-Bench-Seq {seq} out of range")
            continue
        if seen[seq]:
            res.note(f"RETR {n}: X-Bench-Seq {seq} seen twice")
        seen[seq] = 1
        if len(expected[seq]) != octets:
            res.note(f"RETR {n} (X-Bench-Seq {seq}): {octets:,} octets, the source has {len(expected[seq]):,}")
            continue
        if (n + index) % SAMPLE_EVERY == 0:
            content = bytes(buf[start:end])
            if stuffed:
                content = content.replace(b"\r\n..", b"\r\n.")
            if content.startswith(b".."):
                content = content[1:]
            if content != expected[seq]:
                res.note(f"RETR {n} (X-Bench-Seq {seq}): content differs from the source")
            res.sampled += 1
    missing = len(expected) - sum(seen)
    if missing and count == len(expected):
        res.note(f"{missing:,} source messages never retrieved")


@dataclass
class Phase:
    clients: list[ClientResult]
    login_seconds: float  # from the start until every client has logged in
    seconds: float  # the download: from the go barrier until the last QUIT reply
    retrieved: int
    octets: int
    client_cpu: float
    login_cpu: float  # the server's CPU time during the logins
    server_cpu: float  # ... and during the download
    login_rss: int  # the server's peak RSS during the logins
    rss: int  # ... and during the download
    pss: int
    machine: dict[str, float]

    @property
    def errors(self) -> list[str]:
        out = [f"{c.user}: {c.error}" for c in self.clients if c.error]
        return out + [f"{c.user}: {p}" for c in self.clients for p in c.problems]


def run_phase(label: str, port: int, users: list[tuple[str, str]], window: int, retr: bool,
              monitor: Monitor) -> Phase:
    """All clients at once, each in its own process: they log in together behind one barrier,
    then wait at a second one until all have logged in, so the download is timed on its own."""
    ctx = multiprocessing.get_context("fork")
    start, go = ctx.Barrier(len(users) + 1), ctx.Barrier(len(users) + 1)
    results: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=run_client, args=(i, user, password, port, window, retr, start, go, results),
                         daemon=True) for i, (user, password) in enumerate(users)]
    for proc in procs:
        proc.start()
    monitor.start()
    collected: list[ClientResult] = []
    login_seconds = login_cpu = 0.0
    login_rss = 0
    try:
        cpu0 = monitor.cpu()
        start.wait(START_TIMEOUT)
        began = time.perf_counter()
        try:
            go.wait(LOGIN_TIMEOUT)
        except threading.BrokenBarrierError:
            pass  # a client failed; its result says why
        machine0 = psutil.cpu_times()
        cpu1 = monitor.cpu()
        login_seconds, login_cpu = time.perf_counter() - began, cpu1 - cpu0
        login_rss = monitor.take_peak()
        started = time.perf_counter()
        next_report = started + 5
        while len(collected) < len(procs):
            try:
                collected.append(results.get(timeout=1.0))
            except queue.Empty:
                pass
            now = time.perf_counter()
            if now >= next_report and retr:
                log(f"{label}: {len(collected)}/{len(procs)} clients done after {now - started:.0f} s, "
                    f"server RSS {monitor.peak / MB:,.0f} MB so far")
                next_report = now + 5
            if len(collected) < len(procs) and not any(p.is_alive() for p in procs) and results.empty():
                raise BenchError(f"{len(procs) - len(collected)} client process(es) died without a result")
            if now - started > 3600:
                raise BenchError("the clients took more than an hour")
    except threading.BrokenBarrierError:
        raise BenchError("a client failed to start") from None
    finally:
        monitor.stop()
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
    machine = cpu_delta(machine0, psutil.cpu_times())
    server_cpu = monitor.cpu() - cpu1
    failed = [c for c in collected if c.error]
    if failed:
        raise BenchError(f"{len(failed)} client(s) failed; {failed[0].user}: {failed[0].error}")
    begin = min(c.download_started for c in collected)
    end = max(c.finished for c in collected)
    return Phase(sorted(collected, key=lambda c: c.user), login_seconds, end - begin,
                 sum(c.retrieved for c in collected), sum(c.octets for c in collected),
                 sum(c.cpu for c in collected), login_cpu, server_cpu, login_rss, monitor.peak,
                 monitor.peak_pss, machine)


# --- the benchmark of one target --------------------------------------------------------------

@dataclass
class TargetResult:
    phase: Phase
    expected: int  # RETRs that should have been made

    @property
    def rate(self) -> float:
        return self.phase.retrieved / self.phase.seconds if self.phase.seconds else 0.0

    @property
    def complete(self) -> bool:
        return self.phase.retrieved == self.expected and not self.phase.errors


def measure(label: str, port: int, users: list[tuple[str, str]], count: int, args: argparse.Namespace,
            monitor: Monitor, idle_note: Callable[[], str] | None = None) -> TargetResult:
    """The untimed login round, the wait for idle, then the timed download."""
    warm = run_phase(label, port, users, args.window, False, monitor)
    if warm.errors:
        raise BenchError(f"the login round failed: {'; '.join(warm.errors[:3])}")
    bad = [c for c in warm.clients if c.stat[0] != count]
    if bad:
        raise BenchError(f"{bad[0].user} has {bad[0].stat[0]} messages, not {count}")
    log(f"{label}: untimed login round (USER, PASS, STAT, QUIT for {len(users)} users at once) took "
        f"{warm.login_seconds:.2f} s; {count:,} messages, {warm.clients[0].stat[1] / MB:,.1f} MB per user")
    wait_idle(monitor, label, idle_note, timeout=IDLE_TIMEOUT)
    os.sync()
    log(f"{label}: RSS now {monitor.rss() / MB:,.0f} MB; logging in and downloading ...")
    phase = run_phase(label, port, users, args.window, True, monitor)
    return TargetResult(phase, count * len(users))


# --- target: postoffice -----------------------------------------------------------------------

def bench_postoffice(mbox: Path, args: argparse.Namespace, env: dict[str, str],
                     cleanups: Cleanups) -> TargetResult:
    tmp = scratch_dir("pop3-retr-postoffice-", "postoffice", args.keep, cleanups)
    data = tmp / "data"
    started = time.monotonic()
    run_postoffice(env, "init", "--data", str(data), "--domain", DOMAIN, "--hostname", f"mail.{DOMAIN}")
    users = [(f"user{u}@{DOMAIN}", PASSWORD) for u in range(1, args.users + 1)]
    for i, (user, password) in enumerate(users, 1):
        run_postoffice(env, "user", "add", user, "--password-stdin", "--data", str(data), stdin=password + "\n")
        import_mbox(env, data, mbox, user, args.messages)
        if i % 5 == 0 or i == len(users):
            log(f"postoffice: {i}/{len(users)} users filled ({time.monotonic() - started:.0f} s)")
    set_toml_keys(data / "postoffice.toml", {"pop3": {"processes": args.pop3_processes}})
    port = free_port()
    server = start_postoffice(data, env, {"pop3": port}, cleanups, profile=args.profile,
                              note=f" in {args.pop3_processes} process(es)")
    result = measure("postoffice", port, users, args.messages, args, server.monitor, unindexed_note(data))
    finish_postoffice(server, args.profile)
    return result


# --- target: Dovecot --------------------------------------------------------------------------

def bench_dovecot(messages: list[bytes], args: argparse.Namespace, cleanups: Cleanups) -> TargetResult:
    """The reference Dovecot as dovecot-setup.sh sets it up, POP3 on 127.0.0.1:20110; the
    messages go straight into the Maildirs of user1..userN."""
    missing = dovecot_missing(DOVECOT_POP3, "dovecot-pop3d")
    if missing:
        raise Unavailable(f"missing: {missing}", "not installed")
    if args.users > DOVECOT_USERS:
        raise Unavailable(f"the reference Dovecot has {DOVECOT_USERS} users, not {args.users}")
    setup_reference_dovecot()
    mail = REFERENCE_DOVECOT_BASE / "mail"
    if args.keep:
        log(f"dovecot: keeping the Maildirs under {mail}")
    else:
        cleanups.append(lambda: shutil.rmtree(mail, ignore_errors=True))
    started = time.monotonic()
    for u in range(1, args.users + 1):
        fill_maildir(mail, f"user{u}", messages)
    log(f"dovecot: wrote {len(messages) * args.users:,} Maildir files for {args.users} users "
        f"in {time.monotonic() - started:.0f} s under {mail}")
    error_log = REFERENCE_DOVECOT_BASE / "log" / "dovecot.log"
    logged = error_log.stat().st_size if error_log.exists() else 0  # earlier runs' lines stay in the log
    proc = spawn_dovecot(REFERENCE_DOVECOT_CONF, REFERENCE_DOVECOT_BASE / "log", (DOVECOT_POP3_PORT,), cleanups)
    log(f"dovecot {dovecot_version()}: pid {proc.pid}, POP3 on 127.0.0.1:{DOVECOT_POP3_PORT}")
    users = [(f"user{u}", DOVECOT_PASSWORD) for u in range(1, args.users + 1)]
    result = measure("dovecot", DOVECOT_POP3_PORT, users, args.messages, args, Monitor(proc.pid))
    stop_process(proc, "dovecot")
    problems = dovecot_log_problems(error_log, logged)
    if problems:
        log(f"dovecot: {len(problems)} error/warning line(s) in its log; first: {problems[0][:300]}")
    return result


# --- main -------------------------------------------------------------------------------------

def describe(label: str, r: TargetResult) -> None:
    ph = r.phase
    wall = ph.seconds or 1e-9
    busy = busy_share(ph.machine)
    logins = sorted(c.logged_in - c.started for c in ph.clients)
    spans = sorted(c.finished - c.download_started for c in ph.clients)
    pipelining = sum(c.pipelining for c in ph.clients)
    log(f"{label}: logins (connect, CAPA, USER, PASS, STAT, LIST; {len(ph.clients)} at once, not timed) "
        f"{ph.login_seconds:.2f} s, slowest {logins[-1]:.2f} s; server CPU {ph.login_cpu:.1f} s, "
        f"peak RSS {ph.login_rss / MB:,.0f} MB")
    log(f"{label}: {ph.retrieved:,}/{r.expected:,} RETRs, {ph.octets / MB:,.0f} MB in {ph.seconds:.2f} s "
        f"({r.rate:,.0f} msg/s, {ph.octets / MB / wall:,.0f} MB/s); {sum(c.sampled for c in ph.clients):,} "
        f"compared byte for byte; PIPELINING offered to {pipelining}/{len(ph.clients)} clients; "
        f"per-client download {spans[0]:.1f}-{spans[-1]:.1f} s")
    log(f"{label}: download: server peak RSS {ph.rss / MB:,.0f} MB (PSS {ph.pss / MB:,.0f} MB), server CPU "
        f"{ph.server_cpu:.1f} s ({100 * ph.server_cpu / wall:.0f}% of a core, "
        f"{1e6 * ph.server_cpu / max(ph.retrieved, 1):.0f} us/msg), client CPU {ph.client_cpu:.1f} s "
        f"({100 * ph.client_cpu / wall:.0f}% of a core), machine ({psutil.cpu_count()} CPUs) {100 * busy:.0f}% busy")
    if ph.errors:
        log(f"{label}: {len(ph.errors)} problem(s); first: " + " | ".join(ph.errors[:5]))


def main(argv: list[str] | None = None) -> int:
    global _EXPECTED
    parser = argparse.ArgumentParser(
        description="POP3 download throughput: --users clients at once, each RETRs all of its own "
                    "--messages-message maildrop, on postoffice and the reference Dovecot, each filled, "
                    "started and stopped here; prints one result line, PASS if postoffice >= 1.0x "
                    "Dovecot. Progress on stderr. Exit status: 0 PASS, 1 FAIL, 2 no verdict.",
        epilog="Example: .venv/bin/python bench/pop3_retr.py --users 4 --messages 500 --targets postoffice",
    )
    parser.add_argument("--users", type=int, default=20, help="clients, one maildrop each (default 20)")
    parser.add_argument("--messages", type=int, default=2000, help="messages per maildrop (default 2000)")
    parser.add_argument("--seed", type=int, default=42, help="gen_mbox.py seed (default 42)")
    add_targets_argument(parser, TARGETS)
    parser.add_argument("--window", type=int, default=1,
                        help="RETRs in flight per client when the server offers PIPELINING (default 1: "
                             "one at a time, as poplib and most clients do)")
    parser.add_argument("--pop3-processes", type=int, default=1,
                        help="postoffice's [pop3] processes (default 1, as shipped: POP3 in the main "
                             "process; more lets the server use more cores, which pays off only where "
                             "the client processes leave cores free: on 2 CPUs it measured slower)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the postoffice data dir and the Dovecot Maildirs (paths on stderr)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                        help="where the generated mbox is kept and reused (default /tmp/postoffice-bench)")
    add_profile_argument(parser)
    args = parser.parse_args(argv)
    targets = parse_targets(parser, args.targets, TARGETS)
    if args.users < 1 or args.messages < 1 or args.window < 1 or not 1 <= args.pop3_processes <= 64:
        parser.error("--users, --messages and --window must be at least 1, --pop3-processes 1 to 64")
    if args.users > PER_SOURCE_IP * 250:
        parser.error(f"--users: at most {PER_SOURCE_IP * 250}")

    env = postoffice_env()
    head = f"pop3_retr: users={args.users} msgs={args.messages}"

    try:
        mbox = prepare_mbox(args.cache_dir, args.messages, args.seed)
        messages = load_messages(mbox)
    except (BenchError, OSError) as exc:
        log(f"ERROR: {exc}")
        print(f"{head} | ERROR: {str(exc).splitlines()[0]}", flush=True)
        return 2
    if len(messages) != args.messages:
        print(f"{head} | ERROR: the mbox holds {len(messages)} messages", flush=True)
        return 2
    _EXPECTED = [crlf(m) for m in messages]
    total = sum(len(m) for m in _EXPECTED)
    log(f"{args.messages:,} messages, {total / MB:,.1f} MB with CRLF (mean {total / args.messages / 1000:.1f} KB) "
        f"per user; {args.users} users, {args.users * args.messages:,} RETRs, "
        f"{args.users * total / MB:,.0f} MB to download per target; RETR window {args.window}")

    results: dict[str, TargetResult | str] = run_targets(targets, lambda target, cleanups: (
        bench_postoffice(mbox, args, env, cleanups) if target == "postoffice"
        else bench_dovecot(messages, args, cleanups)), show_type=False, describe=describe)

    parts = [head]
    for target in targets:
        r = results[target]
        if isinstance(r, str):
            parts.append(f"{target} {r}")
            continue
        text = (f"{target} {r.rate:,.0f} msg/s rss {r.phase.rss / MB:,.0f} MB "
                f"(logins {r.phase.login_rss / MB:,.0f} MB)")
        if not r.complete:
            wrong = sum(1 for c in r.phase.clients if c.problems)
            text += (f" (INCOMPLETE: {r.phase.retrieved:,}/{r.expected:,} RETRs; "
                     f"wrong replies to {wrong}/{len(r.phase.clients)} clients)")
        parts.append(text)

    def rate(target: str) -> float | None:
        r = results.get(target)
        return r.rate if isinstance(r, TargetResult) and r.complete and r.rate else None

    po, ref = rate("postoffice"), rate("dovecot")
    if po and ref:
        parts.append(f"{po / ref:.2f}x dovecot")
        verdict, status = ("PASS", 0) if po >= ref else ("FAIL", 1)
    else:
        verdict = "n/a (" + ("postoffice" if not po else "dovecot") + " has no complete result)"
        status = 2
    parts.append(verdict)
    print(" | ".join(parts), flush=True)
    return status


if __name__ == "__main__":
    run_main(main, "pop3_retr")
