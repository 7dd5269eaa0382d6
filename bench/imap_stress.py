"""IMAP stress throughput of postoffice and the reference Dovecot, side by side; one result line.

The load (from the issue): --clients IMAP clients over --users users for --seconds, each
running sessions of LOGIN, SELECT INBOX, FETCH of headers (ENVELOPE and friends of up to 10
messages), FETCH of a whole body, STORE of flags, STORE +FLAGS (\\Deleted), EXPUNGE, APPEND
and LOGOUT, then reconnecting, like imaptest's default state list (LOGIN .. LOGOUT once per
connection). Every command is one operation; ops/s = operations completed in the timed window
/ --seconds. Client c owns the users u with (u - 1) % clients == c and goes round them, so no
two sessions ever share a mailbox: every NO or BAD is then an error, and errors must be 0.

--shared (the issue's state-checking load): the clients share the INBOXes of --users users
(default 20; client c always uses user c % users), and each session, between SELECT and LOGOUT,
FETCHes headers and a body, STOREs random flags and keywords (+ and -), marks one message
\\Deleted, EXPUNGEs, APPENDs with a keyword and sends a NOOP, while the other sessions on the
mailbox do the same. Every reply is checked against what the session was told (`StateCheck`):
a keyword in a FETCH must have been listed in an untagged FLAGS first (RFC 9051 §7.3.5), EXISTS
never shrinks, an EXPUNGE or FETCH names a message the session knows of, a FETCH's UID is the
one the session knows at that number. Each violation is an error. A NO [EXPUNGEISSUE] (RFC 5530:
another session expunged a message the command named) is allowed and counted on stderr.

Every target is filled, started, measured and stopped by this script, in the same run:

1. postoffice: a copy of a data dir template (`init`, --users users added through the store API
   with one argon2id hash of the password, and --messages messages of gen_mbox.py imported into
   each INBOX with `postoffice import mbox --into user --json`; built once under --cache-dir),
   its [listen] section rewritten so that only imap listens, on a free 127.0.0.1 port; then
   `python -m postoffice serve`. --hash fast gives the users argon2id hashes of minimal cost
   (the reference Dovecot has PLAIN passwords), to see the IMAP work without the password scheme.
2. dovecot: Dovecot 2.3 with the reference configuration from ../shared/reference/dovecot.conf
   (users user1..user100, password "pass", Maildir), but under its own base directory
   /tmp/reference-dovecot-imapbench and on free ports, so that it never collides with another
   benchmark's reference Dovecot; the same messages are written into each user's Maildir/new.

Before the timed window each target gets one untimed LOGIN, SELECT, LOGOUT per user (Dovecot
builds its indexes), and the script waits until the server is idle. The client is asyncio on raw
sockets (uvloop when installed) in --procs processes, the same code for both servers; its CPU
time, the server's and the machine's go to stderr with per-command latencies. Peak RSS is that
of the server's process tree (Dovecot: master and all children; PSS on stderr), polled every
50 ms during the window.

stdout gets one line:

imap_stress: clients=50 users=100 30s | postoffice 812 ops/s rss 180 MB | dovecot 1,290 ops/s
  rss 300 MB | 0.63x dovecot | PASS

PASS when postoffice reaches --target (0.5; --shared 1.0) times Dovecot's rate with no errors on
either side. --runs N runs both targets N times, one after the other; the line then gives each
target's median ops/s, the median of the N ratios and their spread, and any run's errors fail it:

imap_stress: shared clients=50 users=20 15s x3 runs (medians) | postoffice 1,068 ops/s rss 79 MB |
  dovecot 656 ops/s rss 124 MB | 1.63x dovecot (runs 1.41-1.70x) | PASS
Exit status: 0 PASS, 1 FAIL (too slow, or postoffice answered NO/BAD), 2 no verdict.

This module also holds what bench/imap_idle.py and bench/imap_search.py share beyond
bench/benchkit.py: the postoffice data dir template, Dovecot under its own base directory, and
the asyncio IMAP connection.

Example: .venv/bin/python bench/imap_stress.py --clients 10 --seconds 10
         .venv/bin/python bench/imap_stress.py --shared --seconds 15 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import pwd
import queue
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from benchkit import (
    CACHE_DIR,
    DOMAIN,
    DOVECOT_IMAP_PORT,
    DOVECOT_LMTP_PORT,
    DOVECOT_PASSWORD,
    DOVECOT_USERS,
    MB,
    PASSWORD,
    REFERENCE,
    START_TIMEOUT,
    BenchError,
    Cleanups,
    Monitor,
    Unavailable,
    add_profile_argument,
    add_targets_argument,
    busy_share,
    cached_template,
    copy_data_dir,
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
    run_async,
    run_main,
    run_postoffice,
    run_targets,
    scratch_dir,
    source_address,
    source_digest,
    spawn_dovecot,
    start_postoffice,
    stop_process,
    unindexed_note,
    wait_idle,
)

REPLY_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0  # SIGTERM, then SIGKILL: a server holding many IMAP connections needs longer

DOVECOT_BASE = Path("/tmp/reference-dovecot-imapbench")
DOVECOT_IMAP = Path("/usr/lib/dovecot/imap")


# --- postoffice -------------------------------------------------------------------------------

def template_key() -> str:
    """Changes when code that shapes a data directory changes (store schema, users, import)."""
    return source_digest("store", "setup", "transfer", "message", "config.py", "directory.py")


# Adds user1..userN@DOMAIN through the store API with ONE password hash, which is far faster
# than N `user add` runs (each computes its own argon2id hash). "fast" makes a hash of minimal
# cost; verification reads the cost from the hash, so the server's login then costs almost nothing.
ADD_USERS = r"""
import asyncio, sys
from pathlib import Path
from argon2 import PasswordHasher
from postoffice.config import load_config
from postoffice.directory import hash_password
from postoffice.services import open_services

data, first, last, mode, domain = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
password = sys.stdin.readline().rstrip("\n")
if mode == "fast":
    password_hash = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(password)
else:
    password_hash = hash_password(password)

async def main():
    async with open_services(load_config(data)) as services:
        for u in range(first, last + 1):
            await services.store.add_account(f"user{u}@{domain}", password_hash, 0)

asyncio.run(main())
print(password_hash.split("$")[3])
"""


def add_users(env: dict[str, str], data: Path, users: int, hash_mode: str) -> None:
    done = subprocess.run([sys.executable, "-c", ADD_USERS, str(data), "1", str(users), hash_mode, DOMAIN],
                          input=PASSWORD + "\n", capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise BenchError(f"adding users failed: {(done.stdout + done.stderr).strip()[-500:]}")
    log(f"postoffice: added user1..user{users}@{DOMAIN} (argon2id {done.stdout.strip()})")


def postoffice_template(cache: Path, env: dict[str, str], users: int, mbox: Path | None, messages: int,
                        hash_mode: str, jobs: int = 2) -> Path:
    """A data dir with bench.test, user1..userN, and the mbox imported into every INBOX; built
    once per store/import code version, user count, mbox and hash mode."""
    def build(data: Path) -> None:
        started = time.monotonic()
        run_postoffice(env, "init", "--data", str(data), "--domain", DOMAIN, "--hostname", f"mail.{DOMAIN}")
        add_users(env, data, users, hash_mode)
        if mbox is not None:
            with ThreadPoolExecutor(jobs) as pool:
                futures = [pool.submit(import_mbox, env, data, mbox, f"user{u}@{DOMAIN}", messages)
                           for u in range(1, users + 1)]
                for i, future in enumerate(futures, 1):
                    future.result()
                    if i % 20 == 0 or i == users:
                        log(f"postoffice: imported {messages} messages into {i}/{users} users "
                            f"({time.monotonic() - started:.0f} s)")

    name = f"imap-template-{template_key()}-{users}u-{mbox.stem if mbox else 'empty'}-{hash_mode}"
    return cached_template(cache / name, build)


# --- Dovecot ----------------------------------------------------------------------------------

@dataclass
class Dovecot:
    base: Path
    imap_port: int
    lmtp_port: int
    proc: subprocess.Popen | None = None
    monitor: Monitor | None = None

    @property
    def conf(self) -> Path:
        return self.base / "etc" / "dovecot.conf"

    @property
    def mail(self) -> Path:
        return self.base / "mail"


def setup_dovecot(base: Path = DOVECOT_BASE, extra: str = "", keep_mail: bool = False) -> Dovecot:
    """The reference configuration (../shared/reference/dovecot.conf and what dovecot-setup.sh
    does), under `base` and on free ports, with `extra` appended to the config."""
    missing = dovecot_missing(DOVECOT_IMAP, "dovecot-imapd")
    if missing:
        raise Unavailable(f"missing: {missing}", "not installed")
    master_pid = base / "run" / "master.pid"
    with contextlib.suppress(OSError, ValueError):
        if psutil.pid_exists(int(master_pid.read_text().split()[0])):
            raise Unavailable(f"a Dovecot is already running on {base} (pid file {master_pid}); leaving it alone",
                              "busy")
    try:
        pwd.getpwnam("vmail")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "vmail"],
                       check=True, capture_output=True)
    if not keep_mail:
        shutil.rmtree(base / "mail", ignore_errors=True)
    for sub in ("etc", "run", "state", "log", "mail"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for old_log in (base / "log").glob("*.log"):
        old_log.unlink()  # so that the errors reported afterwards are this run's
    imap_port, lmtp_port = free_port(), free_port()
    while lmtp_port == imap_port:
        lmtp_port = free_port()
    text = (REFERENCE / "dovecot.conf").read_text()
    text = text.replace("/tmp/reference-dovecot/", f"{base}/")
    text = re.sub(r"(?m)^instance_name = .*$", f"instance_name = {base.name}", text)
    text = re.sub(r"(?m)^protocols = .*$", "protocols = imap lmtp", text)
    text = (text.replace(f"port = {DOVECOT_IMAP_PORT}", f"port = {imap_port}")
            .replace(f"port = {DOVECOT_LMTP_PORT}", f"port = {lmtp_port}"))
    if str(base) + "/" not in text or str(imap_port) not in text or str(lmtp_port) not in text:
        raise BenchError("could not adapt ../shared/reference/dovecot.conf (its layout changed?)")
    (base / "etc" / "dovecot.conf").write_text(text + ("\n# added by the benchmark\n" + extra if extra else ""))
    (base / "etc" / "users.passwd").write_text(
        "".join(f"user{i}:{{PLAIN}}{DOVECOT_PASSWORD}::::::\n" for i in range(1, DOVECOT_USERS + 1)))
    vmail = pwd.getpwnam("vmail")
    for path in [base / "mail", *(base / "mail").rglob("*")] if not keep_mail else [base / "mail"]:
        os.chown(path, vmail.pw_uid, vmail.pw_gid)
    os.chmod(base, 0o755)
    done = subprocess.run(["doveconf", "-c", str(base / "etc" / "dovecot.conf"), "-n"], capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"doveconf rejects the config: {done.stderr.strip()[-500:]}")
    return Dovecot(base, imap_port, lmtp_port)


def start_dovecot(dovecot: Dovecot, cleanups: Cleanups, nofile: int | None = None) -> None:
    dovecot.proc = spawn_dovecot(dovecot.conf, dovecot.base / "log", (dovecot.imap_port, dovecot.lmtp_port),
                                 cleanups, nofile=nofile, stop_timeout=STOP_TIMEOUT)
    dovecot.monitor = Monitor(dovecot.proc.pid)
    log(f"dovecot {dovecot_version()}: pid {dovecot.proc.pid}, IMAP on 127.0.0.1:{dovecot.imap_port}, LMTP on "
        f"127.0.0.1:{dovecot.lmtp_port}, base {dovecot.base}")


def stop_dovecot(dovecot: Dovecot) -> None:
    if dovecot.proc is not None:
        stop_process(dovecot.proc, "dovecot", STOP_TIMEOUT)
    problems = dovecot_log_problems(dovecot.base / "log" / "dovecot.log")
    if problems:
        log(f"dovecot: {len(problems)} error/warning line(s) in its log; first: {problems[0][:300]}")


# --- the IMAP client --------------------------------------------------------------------------

class ImapError(Exception):
    pass


_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_EXISTS = re.compile(rb"^\* (\d+) EXISTS\r\n$")
_EXPUNGE = re.compile(rb"^\* (\d+) EXPUNGE\r\n$")


@dataclass
class Reply:
    status: str  # OK, NO, BAD
    text: str  # the tagged line
    untagged: list[bytes]  # the untagged lines (first 1,000 bytes of each, literals removed)
    literal_bytes: int


class ImapConnection:
    """One raw IMAP connection on asyncio streams: tagged commands, literals in replies, and the
    mailbox size from EXISTS / EXPUNGE responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.tag = 0
        self.exists = 0
        self.capabilities: set[str] = set()
        self.check: StateCheck | None = None  # --shared: every untagged line goes through it

    @classmethod
    async def connect(cls, port: int, source: str | None = None, host: str = "127.0.0.1") -> ImapConnection:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0) if source else None,
                                                       limit=1 << 20)
        conn = cls(reader, writer)
        line = await reader.readuntil(b"\r\n")
        if not line.startswith(b"* OK"):
            conn.close()
            raise ImapError(f"greeting {line[:200]!r}")
        m = re.search(rb"\[CAPABILITY ([^\]]*)\]", line)
        if m:
            conn.capabilities = set(m.group(1).decode().upper().split())
        return conn

    async def read_line(self) -> tuple[bytes, int]:
        """One response line with its literals cut out; (line, literal octets)."""
        line = await self.reader.readuntil(b"\r\n")
        literal = 0
        while line.endswith(b"}\r\n"):
            m = _LITERAL.search(line)
            if not m:
                break
            n = int(m.group(1))
            await self.reader.readexactly(n)
            literal += n
            line = line[:m.start()] + b"{}" + await self.reader.readuntil(b"\r\n")
        return line, literal

    async def command(self, text: bytes, literal: bytes | None = None, keep: bool = False) -> Reply:
        """Send `TAG text` (with `literal` as a LITERAL+ or synchronising literal) and read up to
        the tagged reply."""
        self.tag += 1
        tag = b"a%d" % self.tag
        if literal is None:
            self.writer.write(tag + b" " + text + b"\r\n")
        elif "LITERAL+" in self.capabilities:
            self.writer.write(b"%s %s {%d+}\r\n" % (tag, text, len(literal)) + literal + b"\r\n")
        else:
            self.writer.write(b"%s %s {%d}\r\n" % (tag, text, len(literal)))
            line, _ = await self.read_line()
            if not line.startswith(b"+"):
                return Reply("NO", line.decode(errors="replace").strip(), [], 0)
            self.writer.write(literal + b"\r\n")
        untagged: list[bytes] = []
        literal_bytes = 0
        prefix = tag + b" "
        while True:
            line, n = await self.read_line()
            literal_bytes += n
            if line.startswith(b"* "):
                if self.check is not None:
                    self.check.line(line)
                m = _EXISTS.match(line)
                if m:
                    self.exists = int(m.group(1))
                elif _EXPUNGE.match(line):
                    self.exists -= 1
                if keep:
                    untagged.append(line[:1000])
            elif line.startswith(prefix):
                parts = line.split(b" ", 2)
                status = parts[1].decode(errors="replace").upper() if len(parts) > 1 else "?"
                return Reply(status, line.decode(errors="replace").strip(), untagged, literal_bytes)
            elif line.startswith(b"+"):
                raise ImapError(f"unexpected continuation {line[:200]!r}")
            else:
                raise ImapError(f"unexpected line {line[:200]!r}")

    async def login(self, user: str, password: str) -> Reply:
        return await self.command(b"LOGIN " + quote(user) + b" " + quote(password))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def quote(text: str) -> bytes:
    return b'"' + text.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


async def warm_up(port: int, users: list[tuple[str, str]], parallel: int = 10) -> list[str]:
    """One LOGIN, SELECT INBOX, LOGOUT per user, `parallel` at a time; returns problems."""
    problems: list[str] = []
    todo = list(enumerate(users))

    async def worker() -> None:
        while todo:
            index, (user, password) = todo.pop()
            try:
                async with asyncio.timeout(REPLY_TIMEOUT):
                    conn = await ImapConnection.connect(port, source_address(index))
                    try:
                        for text in (b"LOGIN " + quote(user) + b" " + quote(password), b"SELECT INBOX", b"LOGOUT"):
                            reply = await conn.command(text)
                            if reply.status != "OK":
                                problems.append(f"{user}: {reply.text}")
                                break
                    finally:
                        conn.close()
            except (OSError, ImapError, asyncio.IncompleteReadError, TimeoutError) as exc:
                problems.append(f"{user}: {type(exc).__name__}: {exc}")

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return problems


# --- the stress load --------------------------------------------------------------------------

COMMANDS = ("LOGIN", "SELECT", "FETCH", "FETCH2", "STORE", "DELETE", "EXPUNGE", "APPEND", "NOOP", "LOGOUT")
FETCH_HEADERS = b"(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)"
FLAG_SETS = (b"(\\Seen)", b"(\\Flagged)", b"(\\Answered)", b"(\\Seen \\Flagged)", b"($Label1)")
# --shared: few enough keywords for Dovecot's Maildir (26 a mailbox), new ones appear all run long.
KEYWORDS = tuple(f"$Label{n}".encode() for n in range(1, 6)) + tuple(b"Project%d" % n for n in range(1, 11))
SYSTEM_FLAGS = (b"\\Seen", b"\\Flagged", b"\\Answered", b"\\Draft")
_FETCH = re.compile(rb"^\* (\d+) FETCH \((.*)\)\r\n$")
_FETCH_UID = re.compile(rb"(?:^| )UID (\d+)")
_FETCH_FLAGS = re.compile(rb"(?:^| )FLAGS \(([^)]*)\)")
_FLAGS = re.compile(rb"^\* FLAGS \(([^)]*)\)")


class StateCheck:
    """What one session was told about its selected mailbox, and the replies that contradict
    it: a keyword in a FETCH before any FLAGS listed it, EXISTS shrinking, an EXPUNGE or FETCH
    of a number the session does not know, a FETCH whose UID is not the one at its number."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self.report = report
        self.keywords: set[bytes] = set()
        self.uids: list[int | None] = []  # by sequence number - 1; None until a FETCH tells

    def line(self, line: bytes) -> None:
        if (m := _FLAGS.match(line)) is not None:
            self.keywords = {f for f in m.group(1).split() if not f.startswith(b"\\")}
        elif (m := _EXISTS.match(line)) is not None:
            n = int(m.group(1))
            if n < len(self.uids):
                self.report(f"EXISTS {n} after {len(self.uids)} with no EXPUNGE between")
            self.uids += [None] * (n - len(self.uids))
        elif (m := _EXPUNGE.match(line)) is not None:
            n = int(m.group(1))
            if not 1 <= n <= len(self.uids):
                self.report(f"EXPUNGE {n} of {len(self.uids)} messages")
            else:
                del self.uids[n - 1]
        elif (m := _FETCH.match(line)) is not None:
            self.fetch(int(m.group(1)), m.group(2))

    def fetch(self, n: int, items: bytes) -> None:
        if not 1 <= n <= len(self.uids):
            self.report(f"FETCH {n} of {len(self.uids)} messages: {items[:80]!r}")
            return
        if (m := _FETCH_UID.search(items)) is not None:
            uid = int(m.group(1))
            if self.uids[n - 1] not in (None, uid):
                self.report(f"FETCH {n} says UID {uid}, the session knows UID {self.uids[n - 1]} there")
            self.uids[n - 1] = uid
        if (m := _FETCH_FLAGS.search(items)) is not None:
            unknown = {f for f in m.group(1).split() if not f.startswith(b"\\")} - self.keywords
            if unknown:
                self.report(f"FETCH {n} shows {b' '.join(sorted(unknown)).decode()} before an untagged FLAGS listed it")

# Set before the client processes fork, read (never written) by them.
_APPEND_POOL: list[bytes] = []


@dataclass
class ClientStats:
    ops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COMMANDS, 0))
    latencies: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in COMMANDS})
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    expungeissue: int = 0  # --shared: NO [EXPUNGEISSUE] answers, allowed
    sessions: int = 0
    fetched_bytes: int = 0
    cpu: float = 0.0
    failed: str | None = None

    def error(self, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < 20:
            self.errors.append(text)


class StressClient:
    def __init__(self, index: int, port: int, users: list[tuple[str, str]], deadline: float,
                 stats: ClientStats, seed: int, shared: bool = False) -> None:
        self.shared = shared
        self.index = index
        self.port = port
        self.users = users
        self.deadline = deadline
        self.stats = stats
        self.rng = random.Random(seed * 1000 + index)

    async def run(self) -> None:
        turn = 0
        failures = 0
        while time.perf_counter() < self.deadline and failures < 5:
            user, password = self.users[turn % len(self.users)]
            turn += 1
            try:
                await self.session(user, password)
                failures = 0
            except (OSError, ImapError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
                if time.perf_counter() >= self.deadline:
                    break
                failures += 1
                self.stats.error(f"client {self.index} ({user}): {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.1 * failures)

    async def op(self, conn: ImapConnection, name: str, text: bytes, literal: bytes | None = None) -> bool:
        """Run one command; False when the window is over or it failed (the session ends)."""
        if time.perf_counter() >= self.deadline:
            return False
        began = time.perf_counter()
        async with asyncio.timeout(REPLY_TIMEOUT):
            reply = await conn.command(text, literal)
        done = time.perf_counter()
        if done > self.deadline:
            return False
        if reply.status == "NO" and "[EXPUNGEISSUE]" in reply.text.upper() and conn.check is not None:
            self.stats.expungeissue += 1  # shared: another session expunged what this one named
        elif reply.status != "OK":
            self.stats.error(f"{name} {text[:60].decode(errors='replace')}: {reply.text[:200]}")
            return False
        self.stats.ops[name] += 1
        self.stats.latencies[name].append(done - began)
        self.stats.fetched_bytes += reply.literal_bytes
        return True

    async def session(self, user: str, password: str) -> None:
        if self.shared:
            await self.shared_session(user, password)
            return
        rng = self.rng
        async with asyncio.timeout(REPLY_TIMEOUT):
            conn = await ImapConnection.connect(self.port, source_address(self.index))
        try:
            self.stats.sessions += 1
            if not await self.op(conn, "LOGIN", b"LOGIN " + quote(user) + b" " + quote(password)):
                return
            if not await self.op(conn, "SELECT", b"SELECT INBOX"):
                return
            n = conn.exists
            if n:
                first = rng.randint(1, max(1, n - 9))
                last = min(n, first + 9)
                if not await self.op(conn, "FETCH", b"FETCH %d:%d %s" % (first, last, FETCH_HEADERS)):
                    return
                if not await self.op(conn, "FETCH2", b"FETCH %d (UID BODY.PEEK[])" % rng.randint(1, n)):
                    return
                sign = b"+" if rng.random() < 0.7 else b"-"
                if not await self.op(conn, "STORE", b"STORE %d %sFLAGS %s" % (rng.randint(1, n), sign,
                                                                              rng.choice(FLAG_SETS))):
                    return
                if not await self.op(conn, "DELETE", b"STORE %d +FLAGS (\\Deleted)" % rng.randint(1, n)):
                    return
                if not await self.op(conn, "EXPUNGE", b"EXPUNGE"):
                    return
            message = _APPEND_POOL[rng.randrange(len(_APPEND_POOL))]
            if not await self.op(conn, "APPEND", b"APPEND INBOX (\\Seen)", message):
                return
            await self.op(conn, "LOGOUT", b"LOGOUT")
        finally:
            conn.close()


    async def shared_session(self, user: str, password: str) -> None:
        """--shared: one session on an INBOX other clients use at the same time, every reply
        checked by a `StateCheck`."""
        rng = self.rng
        async with asyncio.timeout(REPLY_TIMEOUT):
            conn = await ImapConnection.connect(self.port, source_address(self.index))
        conn.check = StateCheck(lambda text: self.stats.error(f"client {self.index} ({user}): {text}"))
        try:
            self.stats.sessions += 1
            if not await self.op(conn, "LOGIN", b"LOGIN " + quote(user) + b" " + quote(password)):
                return
            if not await self.op(conn, "SELECT", b"SELECT INBOX"):
                return
            for name in ("FETCH", "FETCH2", "STORE", "STORE", "DELETE", "EXPUNGE", "APPEND", "NOOP"):
                n = conn.exists
                if name == "FETCH" and n:
                    first = rng.randint(1, max(1, n - 9))
                    text = b"FETCH %d:%d %s" % (first, min(n, first + 9), FETCH_HEADERS)
                elif name == "FETCH2" and n:
                    text = b"FETCH %d (UID FLAGS BODY.PEEK[])" % rng.randint(1, n)
                elif name == "STORE" and n:
                    flags = rng.sample((*SYSTEM_FLAGS, *KEYWORDS), rng.randint(1, 3))
                    sign = b"+" if rng.random() < 0.6 else b"-"
                    text = b"STORE %d %sFLAGS (%s)" % (rng.randint(1, n), sign, b" ".join(flags))
                elif name == "DELETE" and n:
                    text = b"STORE %d +FLAGS (\\Deleted)" % rng.randint(1, n)
                elif name == "EXPUNGE":
                    text = b"EXPUNGE"
                elif name == "APPEND":
                    message = _APPEND_POOL[rng.randrange(len(_APPEND_POOL))]
                    if not await self.op(conn, name, b"APPEND INBOX (%s)" % rng.choice(KEYWORDS), message):
                        return
                    continue
                elif name == "NOOP":
                    text = b"NOOP"
                else:
                    continue  # the mailbox is empty for now
                if not await self.op(conn, name, text):
                    return
            await self.op(conn, "LOGOUT", b"LOGOUT")
        finally:
            conn.close()


def stress_process(indexes: list[int], port: int, users_of: dict[int, list[tuple[str, str]]], seconds: float,
                   seed: int, start: object, results: multiprocessing.Queue, shared: bool = False) -> None:
    """One client process: its clients, all at once, from the barrier for `seconds`."""
    stats = ClientStats()
    try:
        start.wait(START_TIMEOUT)  # type: ignore[attr-defined]
        cpu0 = time.process_time()
        deadline = time.perf_counter() + seconds

        async def main() -> None:
            await asyncio.gather(*(StressClient(i, port, users_of[i], deadline, stats, seed, shared).run() for i in indexes))

        run_async(main)
        stats.cpu = time.process_time() - cpu0
    except Exception as exc:  # reported by the parent
        stats.failed = f"{type(exc).__name__}: {exc}"
    results.put(stats)


@dataclass
class StressResult:
    stats: ClientStats
    seconds: float
    rss: int
    pss: int
    server_cpu: float
    machine: dict[str, float]
    cpu_wall: float  # the time server_cpu and machine were measured over

    @property
    def total_ops(self) -> int:
        return sum(self.stats.ops.values())

    @property
    def rate(self) -> float:
        return self.total_ops / self.seconds


def run_stress(label: str, port: int, users: list[tuple[str, str]], args: argparse.Namespace,
               monitor: Monitor) -> StressResult:
    clients = args.clients
    if args.shared:  # several clients on each mailbox, always the same one
        users_of = {c: [users[c % len(users)]] for c in range(clients)}
    else:
        users_of = {c: [u for i, u in enumerate(users) if i % clients == c] for c in range(clients)}
        users_of = {c: us or [users[c % len(users)]] for c, us in users_of.items()}
    procs_n = max(1, min(args.procs, clients))
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(procs_n + 1)
    results: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=stress_process,
                         args=(list(range(p, clients, procs_n)), port, users_of, args.seconds, args.seed, start, results,
                               args.shared),
                         daemon=True) for p in range(procs_n)]
    for proc in procs:
        proc.start()
    monitor.start()
    collected: list[ClientStats] = []
    try:
        cpu0, machine0 = monitor.cpu(), psutil.cpu_times()
        start.wait(START_TIMEOUT)
        began = time.perf_counter()
        next_report = began + 10
        while len(collected) < len(procs):
            try:
                collected.append(results.get(timeout=1.0))
            except queue.Empty:
                pass
            now = time.perf_counter()
            if now >= next_report and now < began + args.seconds:
                log(f"{label}: {now - began:.0f} s, server RSS peak {monitor.peak / MB:,.0f} MB so far")
                next_report = now + 10
            if len(collected) < len(procs) and not any(p.is_alive() for p in procs) and results.empty():
                raise BenchError(f"{len(procs) - len(collected)} client process(es) died without a result")
            if now - began > args.seconds + REPLY_TIMEOUT + 30:
                raise BenchError("the clients did not stop")
        server_cpu = monitor.cpu() - cpu0
        machine = cpu_delta(machine0, psutil.cpu_times())
        cpu_wall = time.perf_counter() - began  # the window, plus the replies still in flight at its end
    finally:
        monitor.stop()
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
    failed = [s.failed for s in collected if s.failed]
    if failed:
        raise BenchError(f"a client process failed: {failed[0]}")
    total = ClientStats()
    for s in collected:
        for c in COMMANDS:
            total.ops[c] += s.ops[c]
            total.latencies[c] += s.latencies[c]
        total.errors += s.errors
        total.error_count += s.error_count
        total.expungeissue += s.expungeissue
        total.sessions += s.sessions
        total.fetched_bytes += s.fetched_bytes
        total.cpu += s.cpu
    return StressResult(total, args.seconds, monitor.peak, monitor.peak_pss, server_cpu, machine, cpu_wall)


def describe(label: str, r: StressResult) -> None:
    s = r.stats

    def ms(values: list[float], p: float) -> str:
        v = sorted(values)
        return f"{v[min(len(v) - 1, int(p * len(v)))] * 1000:,.1f}" if v else "-"

    per = ", ".join(f"{c} {s.ops[c]:,}" for c in COMMANDS)
    log(f"{label}: {r.total_ops:,} ops in {r.seconds:.0f} s ({r.rate:,.0f} ops/s; without LOGIN "
        f"{(r.total_ops - s.ops['LOGIN']) / r.seconds:,.0f} ops/s), {s.sessions:,} sessions; {per}; "
        f"{s.fetched_bytes / MB:,.1f} MB fetched")
    lat = "; ".join(f"{c} {ms(s.latencies[c], 0.5)}/{ms(s.latencies[c], 0.99)}" for c in COMMANDS)
    log(f"{label}: latency p50/p99 ms: {lat}")
    wall = r.cpu_wall
    log(f"{label}: over {wall:.1f} s: server CPU {r.server_cpu:.1f} s ({100 * r.server_cpu / wall:.0f}% of a core, "
        f"{1e3 * r.server_cpu / max(r.total_ops, 1):.2f} ms/op), client CPU {s.cpu:.1f} s "
        f"({100 * s.cpu / wall:.0f}% of a core), machine ({psutil.cpu_count()} CPUs) "
        f"{100 * busy_share(r.machine):.0f}% busy; server peak RSS {r.rss / MB:,.0f} MB, PSS {r.pss / MB:,.0f} MB")
    if s.expungeissue:
        log(f"{label}: {s.expungeissue:,} NO [EXPUNGEISSUE] (allowed: another session expunged the message)")
    if s.error_count:
        log(f"{label}: {s.error_count:,} errors; first: " + " | ".join(s.errors[:8]))


# --- the targets ------------------------------------------------------------------------------

def bench_postoffice(mbox: Path, args: argparse.Namespace, cleanups: Cleanups) -> StressResult:
    env = postoffice_env()
    template = postoffice_template(args.cache_dir, env, args.users, mbox, args.messages, args.hash)
    tmp = scratch_dir("imap-stress-postoffice-", "postoffice", args.keep, cleanups)
    data = tmp / "data"
    copy_data_dir(template, data)
    port = free_port()
    server = start_postoffice(data, env, {"imap": port}, cleanups, profile=args.profile, stop_timeout=STOP_TIMEOUT)
    users = [(f"user{u}@{DOMAIN}", PASSWORD) for u in range(1, args.users + 1)]
    result = measure("postoffice", port, users, args, server.monitor, unindexed_note(data))
    finish_postoffice(server, args.profile)
    return result


def bench_dovecot(messages: list[bytes], args: argparse.Namespace, cleanups: Cleanups) -> StressResult:
    if args.users > DOVECOT_USERS:
        raise Unavailable(f"the reference Dovecot has {DOVECOT_USERS} users, not {args.users}")
    dovecot = setup_dovecot(DOVECOT_BASE)
    if not args.keep:
        cleanups.append(lambda: shutil.rmtree(dovecot.mail, ignore_errors=True))
    started = time.monotonic()
    for u in range(1, args.users + 1):
        fill_maildir(dovecot.mail, f"user{u}", messages)
    log(f"dovecot: wrote {len(messages) * args.users:,} Maildir files in {time.monotonic() - started:.0f} s")
    start_dovecot(dovecot, cleanups)
    cleanups.append(lambda: stop_dovecot(dovecot))
    users = [(f"user{u}", DOVECOT_PASSWORD) for u in range(1, args.users + 1)]
    assert dovecot.monitor is not None
    return measure("dovecot", dovecot.imap_port, users, args, dovecot.monitor)


def measure(label: str, port: int, users: list[tuple[str, str]], args: argparse.Namespace, monitor: Monitor,
            idle_note: Callable[[], str] | None = None) -> StressResult:
    started = time.monotonic()
    problems = run_async(lambda: warm_up(port, users))
    if problems:
        raise BenchError(f"the warm-up round failed: {'; '.join(problems[:3])}")
    log(f"{label}: untimed warm-up (LOGIN, SELECT, LOGOUT for each of {len(users)} users, 10 at a time) "
        f"took {time.monotonic() - started:.1f} s")
    wait_idle(monitor, label, idle_note)
    os.sync()
    log(f"{label}: RSS now {monitor.rss() / MB:,.0f} MB; {args.clients} clients for {args.seconds:.0f} s ...")
    result = run_stress(label, port, users, args, monitor)
    describe(label, result)
    return result


# --- main -------------------------------------------------------------------------------------

TARGETS = ("postoffice", "dovecot")


def main(argv: list[str] | None = None) -> int:
    global _APPEND_POOL
    parser = argparse.ArgumentParser(
        description="IMAP stress: --clients clients over --users users for --seconds of LOGIN, SELECT, "
                    "FETCH (headers, bodies), STORE, EXPUNGE, APPEND, LOGOUT against postoffice and the "
                    "reference Dovecot, each filled, started and stopped here; prints one result line, PASS "
                    "if postoffice >= --target x Dovecot with no errors. --shared: several clients on each "
                    "INBOX with keywords, concurrent EXPUNGE and APPEND, every reply checked against what the "
                    "session was told. Progress on stderr. Exit status: 0 PASS, 1 FAIL, 2 no verdict.",
        epilog="Example: .venv/bin/python bench/imap_stress.py --clients 10 --seconds 10; "
               ".venv/bin/python bench/imap_stress.py --shared --seconds 15 --runs 3",
    )
    parser.add_argument("--clients", type=int, default=50, help="concurrent IMAP clients (default 50)")
    parser.add_argument("--users", type=int, default=None,
                        help="users, each client owns users//clients (default 100; with --shared 20, shared)")
    parser.add_argument("--shared", action="store_true",
                        help="clients share the users' INBOXes, with keywords, concurrent EXPUNGE and APPEND, "
                             "and every reply is checked against what the session was told")
    parser.add_argument("--messages", type=int, default=50, help="messages in each INBOX at the start (default 50)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the timed window (default 30)")
    parser.add_argument("--procs", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--runs", type=int, default=1,
                        help="run every target this many times, alternating; the line gives the medians and the "
                             "spread of the ratio (default 1; use 3 for a verdict on a busy machine)")
    parser.add_argument("--seed", type=int, default=42, help="gen_mbox.py and client seed (default 42)")
    add_targets_argument(parser, TARGETS)
    parser.add_argument("--hash", choices=("argon2", "fast"), default="argon2",
                        help="postoffice users' password hashes: argon2 = argon2id as `user add` makes them "
                             "(default), fast = argon2id of minimal cost (Dovecot's are PLAIN)")
    parser.add_argument("--target", type=float, default=None,
                        help="PASS ratio to Dovecot (default 0.5; with --shared 1.0)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and the Maildirs")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                        help="where the mbox and the data dir template are kept (default /tmp/postoffice-bench)")
    add_profile_argument(parser)
    args = parser.parse_args(argv)
    targets = parse_targets(parser, args.targets, TARGETS)
    if args.users is None:
        args.users = 20 if args.shared else 100
    if args.target is None:
        args.target = 1.0 if args.shared else 0.5
    if args.clients < 1 or args.users < 1 or args.messages < 1 or args.seconds <= 0 or args.runs < 1:
        parser.error("--clients, --users, --messages, --seconds and --runs must be positive")
    if args.users < args.clients and not args.shared:
        parser.error("--users must be at least --clients (each client owns its users)")
    head = f"imap_stress: {'shared ' if args.shared else ''}clients={args.clients} users={args.users} {args.seconds:.0f}s"
    try:
        mbox = prepare_mbox(args.cache_dir, args.messages, args.seed)
        messages = load_messages(mbox)
    except (BenchError, OSError) as exc:
        print(f"{head} | ERROR: {str(exc).splitlines()[0]}", flush=True)
        return 2
    _APPEND_POOL = [crlf(m) for m in messages]
    log(f"{len(messages)} messages per INBOX (mean {sum(map(len, messages)) / len(messages) / 1000:.1f} KB); "
        f"{args.clients} clients in {min(args.procs, args.clients)} processes over {args.users} users")

    runs: list[dict[str, StressResult | str]] = []
    for run in range(1, args.runs + 1):
        if args.runs > 1:
            log(f"=== run {run} of {args.runs} ===")
        runs.append(run_targets(targets, lambda target, cleanups: (
            bench_postoffice(mbox, args, cleanups) if target == "postoffice"
            else bench_dovecot(messages, args, cleanups))))
    line, status = result_line(head, targets, runs, args)
    print(line, flush=True)
    return status


def result_line(head: str, targets: Sequence[str], runs: list[dict[str, StressResult | str]],
                args: argparse.Namespace) -> tuple[str, int]:
    """The one stdout line and the exit status. Over several runs: each target's median rate and
    peak RSS, and the median of the runs' ratios with their spread (min-max); errors of any run
    count."""
    parts = [head + (f" x{len(runs)} runs (medians)" if len(runs) > 1 else "")]
    complete: dict[str, list[StressResult]] = {}
    for target in targets:
        done = complete[target] = [x for r in runs if isinstance(x := r[target], StressResult)]
        missing = [x for r in runs if isinstance(x := r[target], str)]
        if not done:
            parts.append(f"{target} {missing[0]}")
            continue
        if missing:
            parts.append(f"{target} {missing[0]} in {len(missing)} run(s)")
        name = "postoffice (fast hashes)" if target == "postoffice" and args.hash == "fast" else target
        rate = statistics.median(r.rate for r in done)
        text = f"{name} {rate:,.0f} ops/s rss {max(r.rss for r in done) / MB:,.0f} MB"
        errors = sum(r.stats.error_count for r in done)
        if errors:
            text += f" ({errors:,} ERRORS)"
        parts.append(text)
    pairs = [(po, ref) for r in runs
             if isinstance(po := r.get("postoffice"), StressResult) and isinstance(ref := r.get("dovecot"), StressResult)]
    po_errors = sum(r.stats.error_count for r in complete.get("postoffice", []))
    if len(pairs) == len(runs) and all(ref.rate and not ref.stats.error_count for _, ref in pairs):
        ratios = [po.rate / ref.rate for po, ref in pairs]
        ratio = statistics.median(ratios)
        spread = f" (runs {min(ratios):.2f}-{max(ratios):.2f}x)" if len(ratios) > 1 else ""
        parts.append(f"{ratio:.2f}x dovecot{spread}")
        ok = ratio >= args.target and not po_errors
        verdict, status = ("PASS", 0) if ok else ("FAIL", 1)
    elif po_errors:
        verdict, status = "FAIL (postoffice errors)", 1
    else:
        verdict, status = "n/a (no complete result for both)", 2
    parts.append(verdict)
    return " | ".join(parts), status


if __name__ == "__main__":
    run_main(main, "imap_stress")
