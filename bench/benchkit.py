"""What the benchmark scripts in bench/ share: logging, errors, the shared mbox, measuring a
server's process tree, starting and stopping processes, running the targets one after the other,
and the set-up of `postoffice serve` and of the reference Dovecot.

The scripts run as `python bench/X.py`, so this directory is on sys.path and they import it as
`from benchkit import ...`. Nothing here prints to stdout: progress goes to stderr through log(),
the result line is each script's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import mailbox
import os
import pwd
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from argparse import ArgumentParser
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

try:
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    print(f"{Path(sys.argv[0]).stem}: needs psutil (pip install psutil, or the project's [test] extra)",
          file=sys.stderr)
    sys.exit(2)

T = TypeVar("T")
Cleanups = list[Callable[[], None]]  # undone in reverse order, see cleanup_stack()

REPO = Path(__file__).resolve().parent.parent
# $POSTOFFICE_REFERENCE for a checkout that is not beside ../shared (a git worktree elsewhere).
REFERENCE = Path(os.environ.get("POSTOFFICE_REFERENCE") or REPO.parent / "shared" / "reference")
REFERENCE_GEN = REFERENCE / "gen_mbox.py"
CACHE_DIR = Path(tempfile.gettempdir()) / "postoffice-bench"  # the --cache-dir default
DOMAIN = "bench.test"
PASSWORD = "bench password 1"  # postoffice users
DOVECOT_PASSWORD = "pass"  # the reference Dovecot's users user1..user100
DOVECOT_USERS = 100
MB = 1_000_000
POLL_SECONDS = 0.05  # RSS polls
PSS_EVERY = 10  # PSS (reads smaps_rollup, dearer) every 10th poll
PER_SOURCE_IP = 10  # client connections per source address (postoffice allows 20 per IP by default)
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0  # SIGTERM, then SIGKILL
IDLE_TIMEOUT = 600.0
LISTEN_KEYS = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "lmtp", "http", "https",
               "managesieve")

# The reference Dovecot as ../shared/reference/dovecot-setup.sh sets it up (shared with other
# benchmarks, so it is never touched while one of its ports is taken).
REFERENCE_DOVECOT_BASE = Path("/tmp/reference-dovecot")
REFERENCE_DOVECOT_CONF = REFERENCE_DOVECOT_BASE / "etc" / "dovecot.conf"
DOVECOT_LMTP_PORT = 20024
DOVECOT_IMAP_PORT = 20143
DOVECOT_POP3_PORT = 20110
REFERENCE_DOVECOT_PORTS = (DOVECOT_LMTP_PORT, DOVECOT_IMAP_PORT, DOVECOT_POP3_PORT)


# --- logging and errors -----------------------------------------------------------------------

_PREFIX = ["bench"]


def set_prefix(name: str) -> None:
    """Name the script in the log lines: `[name] text`."""
    _PREFIX[0] = name


def log(text: str) -> None:
    """Progress and details: one line to stderr."""
    print(f"[{_PREFIX[0]}] {text}", file=sys.stderr, flush=True)


class Unavailable(Exception):
    """The target cannot run here (not installed, not implemented yet, port taken); `short`
    goes into the result line."""

    def __init__(self, reason: str, short: str = "unavailable") -> None:
        super().__init__(reason)
        self.short = short


class BenchError(Exception):
    """The target started but the run failed."""


# --- messages ---------------------------------------------------------------------------------

def prepare_mbox(cache: Path, count: int, seed: int) -> Path:
    """gen_mbox.py's mbox of `count` messages for `seed`, generated once into `cache` under the
    name bench/import_mbox.py uses, so the scripts share the file."""
    if not REFERENCE_GEN.exists():
        raise BenchError(f"{REFERENCE_GEN} does not exist")
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"reference-{count}-{seed}.mbox"
    if path.exists():
        log(f"reusing {path}")
        return path
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    log(f"generating {count:,} messages (seed {seed}) into {path} ...")
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, str(REFERENCE_GEN), str(partial), str(count), str(seed)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise BenchError(f"gen_mbox.py exited with {done.returncode}: {done.stderr.strip()[-300:]}")
        partial.rename(path)  # last, so that a half-written file is never reused
    finally:
        partial.unlink(missing_ok=True)
    log(f"generated in {time.monotonic() - started:.0f} s")
    return path


def load_messages(path: Path) -> list[bytes]:
    """The messages of the mbox as stored (LF line ends, without the From_ line)."""
    box = mailbox.mbox(str(path), create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


def crlf(message: bytes) -> bytes:
    """`message` with CRLF line ends, as a server sends it."""
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# --- measuring a process tree -----------------------------------------------------------------

class Monitor:
    """Peak RSS (and PSS) of a process and its descendants, summed, and their CPU time.

    start() polls in a thread until stop(), poll() in an asyncio task until cancelled; both take
    the RSS every POLL_SECONDS. `reaped` counts the CPU time of children that exited (Dovecot's
    master reaps its session processes, whose time then shows in its children_* times)."""

    def __init__(self, pid: int, *, reaped: bool = True) -> None:
        self.proc = psutil.Process(pid)
        self.reaped = reaped
        self.peak = 0
        self.peak_pss = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def members(self) -> list[psutil.Process]:
        """The process and its descendants now ([] once it has exited)."""
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return []

    def rss(self) -> int:
        """The tree's RSS now, summed."""
        total = 0
        for p in self.members():
            with contextlib.suppress(psutil.Error):  # exited between listing and reading
                total += p.memory_info().rss
        return total

    def pss(self) -> int:
        """The tree's PSS now, summed (dearer to read than RSS)."""
        total = 0
        for p in self.members():
            with contextlib.suppress(psutil.Error):
                total += p.memory_full_info().pss
        return total

    def sample(self, pss: bool = False) -> None:
        """Raise the peaks to the tree's RSS now (and PSS with `pss`)."""
        rss = pss_total = 0
        for p in self.members():
            with contextlib.suppress(psutil.Error):
                if pss:
                    info = p.memory_full_info()
                    rss += info.rss
                    pss_total += info.pss
                else:
                    rss += p.memory_info().rss
        with self._lock:
            self.peak = max(self.peak, rss)
            self.peak_pss = max(self.peak_pss, pss_total)

    def cpu_when_idle(self, window: float = 1.5, idle_share: float = 0.05, limit: float = 120.0) -> float:
        """`cpu()` once the tree has gone quiet (under `idle_share` of a core over `window`
        seconds, or after `limit` seconds): the CPU of the work a server defers (full-text
        indexing after a burst of deliveries) is then counted with the load that caused it."""
        deadline = time.monotonic() + limit
        before = self.cpu()
        while time.monotonic() < deadline:
            time.sleep(window)
            now = self.cpu()
            if now - before < idle_share * window:
                return now
            before = now
        return before

    def take_peak(self) -> int:
        """The peak RSS so far, and start a new one."""
        with self._lock:
            peak, self.peak, self.peak_pss = self.peak, 0, 0
        return peak

    def cpu(self) -> float:
        """CPU seconds of the tree, user and system."""
        total = 0.0
        for p in self.members():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
                if self.reaped:
                    total += t.children_user + t.children_system
        return total

    def start(self) -> None:
        """New peaks, polled in a thread until stop()."""
        self.take_peak()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the polling thread after a last sample with PSS."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _poll(self) -> None:
        polls = 0
        while not self._stop.is_set():
            self.sample(pss=polls % PSS_EVERY == 0)
            polls += 1
            self._stop.wait(POLL_SECONDS)
        self.sample(pss=True)

    async def poll(self) -> None:
        """RSS only, in the running event loop, until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(POLL_SECONDS)


def wait_idle(monitor: Monitor, label: str, extra: Callable[[], str] | None = None,
              timeout: float = IDLE_TIMEOUT, threshold: float = 0.08) -> float:
    """Wait until the server uses under `threshold` of a core for a second (background work
    done); returns the seconds waited. `extra` adds a note to the log line. An idle postoffice
    uses 3-5% of a core (its 20 Hz look at the change log for other processes' changes), so a
    lower threshold left runs waiting for minutes, past the login cache's lifetime."""
    started = time.monotonic()
    last = monitor.cpu()
    while True:
        time.sleep(1.0)
        now = monitor.cpu()
        if now - last < threshold:
            break
        last = now
        if time.monotonic() - started > timeout:
            log(f"{label}: still busy after {timeout:.0f} s; measuring anyway")
            break
    waited = time.monotonic() - started
    log(f"{label}: idle after {waited:.0f} s" + (f" ({extra()})" if extra else ""))
    return waited


def cpu_delta(before: Any, after: Any) -> dict[str, float]:
    """Two psutil.cpu_times() apart: seconds per field, and their "total"."""
    delta = {k: getattr(after, k) - getattr(before, k) for k in after._fields}
    delta["total"] = sum(delta.values())
    return delta


def busy_share(machine: Mapping[str, float]) -> float:
    """The share of a cpu_delta() that the machine was neither idle nor waiting for I/O."""
    if not machine.get("total"):
        return 0.0
    return 1 - (machine.get("idle", 0) + machine.get("iowait", 0)) / machine["total"]


def warn_if_busy(before: str = "run") -> None:
    """Warn when something else keeps the machine busy (measured over a second)."""
    busy = psutil.cpu_percent(interval=1.0)
    if busy > 20:
        log(f"warning: the machine is {busy:.0f}% busy before the {before} (something else is running); "
            "the numbers will be low and noisy")


# --- processes and ports ----------------------------------------------------------------------

def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port (within half a second)."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_ports(ports: Sequence[int], what: str, proc: subprocess.Popen | None = None,
                   logs: Sequence[Path] = (), timeout: float = START_TIMEOUT) -> None:
    """Wait until every 127.0.0.1 port accepts connections; BenchError (with the tails of
    `logs`) if `proc` exits first, or after `timeout`."""
    where = ", ".join(f"127.0.0.1:{p}" for p in ports)
    deadline = time.monotonic() + timeout
    while not all(port_open(p) for p in ports):
        if proc is not None and proc.poll() is not None:
            tails = "".join(f"\n{text}" for text in map(tail, logs) if text)
            raise BenchError(f"{what} exited with {proc.returncode} before listening on {where}{tails}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not listen on {where} within {timeout:.0f} s")
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen, name: str, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, and SIGKILL if it is still running after `timeout`."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"{name} (pid {proc.pid}) ignored SIGTERM for {timeout:.0f} s; killing it")
        proc.kill()
        proc.wait()


def tail(path: Path, lines: int = 15) -> str:
    """The last `lines` lines of a log file ("" if it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def set_nofile(n: int) -> int:
    """Set this process's RLIMIT_NOFILE soft limit to n: above the hard limit if allowed (root
    outside a container), else up to the hard limit. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= n:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, max(hard, n)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _nofile_preexec(nofile: int | None) -> Callable[[], object] | None:
    """A Popen preexec_fn raising the child's RLIMIT_NOFILE to `nofile`, or None."""
    return functools.partial(set_nofile, nofile) if nofile else None


def source_address(index: int) -> str:
    """127.0.0.2, ... for client connection `index`, PER_SOURCE_IP connections each."""
    n = 2 + index // PER_SOURCE_IP
    return f"127.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def scratch_dir(prefix: str, label: str, keep: bool, cleanups: Cleanups) -> Path:
    """A new temporary directory, removed by the cleanups unless `keep` (then its path is logged)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    if keep:
        log(f"{label}: keeping {tmp}")
    else:
        cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
    return tmp


def run_sh(*argv: str) -> None:
    """`sh argv...` in /tmp (the reference set-up scripts); BenchError with its output if it fails."""
    done = subprocess.run(["sh", *argv], capture_output=True, text=True, cwd="/tmp")
    if done.returncode != 0:
        raise BenchError(f"`sh {' '.join(argv)}` exited with {done.returncode}: "
                         f"{(done.stdout + done.stderr).strip()[-500:]}")


# --- running the targets ----------------------------------------------------------------------

@contextlib.contextmanager
def cleanup_stack() -> Iterator[Cleanups]:
    """A list to append undo functions to; they run in reverse order on leaving, whatever happens."""
    cleanups: Cleanups = []
    try:
        yield cleanups
    finally:
        for undo in reversed(cleanups):
            try:
                undo()
            except Exception as exc:  # keep undoing the rest
                log(f"cleanup failed: {exc}")


def run_targets(targets: Sequence[str], run: Callable[[str, Cleanups], T],
                errors: tuple[type[Exception], ...] = (BenchError,), *,
                labels: Mapping[str, str] | None = None, show_type: bool = True, before: str = "run",
                describe: Callable[[str, T], None] | None = None) -> dict[str, T | str]:
    """Each target's result, or why it has none ("ERROR" or the Unavailable short reason).

    `run` gets the target's name and a cleanup list that is run whatever happens. Log lines
    name the target by its label (`labels`, else its name); `show_type` puts the exception's
    type in the ERROR line; `describe(label, result)` runs after the cleanups."""
    results: dict[str, T | str] = {}
    for target in targets:
        label = labels.get(target, target) if labels else target
        log(f"--- {label} ---")
        warn_if_busy(before)
        with cleanup_stack() as cleanups:
            try:
                result = run(target, cleanups)
            except Unavailable as exc:
                log(f"{label}: {exc.short}: {exc}")
                results[target] = exc.short
                continue
            except errors as exc:
                log(f"{label}: ERROR: " + (f"{type(exc).__name__}: " if show_type else "") + str(exc))
                results[target] = "ERROR"
                continue
            except KeyboardInterrupt:
                log("interrupted; stopping what was started")
                raise
        if describe is not None:
            describe(label, result)
        results[target] = result
    return results


def interrupt(signum: int, frame: object) -> None:
    """A signal handler (SIGTERM) that unwinds like Ctrl-C, so the cleanups run."""
    raise KeyboardInterrupt


def run_main(main: Callable[[], int], name: str) -> NoReturn:
    """Name the script `name` in the log lines, make SIGTERM unwind like Ctrl-C (so that the
    cleanups run), and exit with main()'s status; 130 with a note on stderr after Ctrl-C or SIGTERM."""
    set_prefix(name)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        sys.exit(130)


def new_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when installed, else None (asyncio's own)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_async(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine coro_fn() to completion on a new event loop (uvloop when installed)."""
    with asyncio.Runner(loop_factory=new_loop_factory()) as runner:
        return runner.run(coro_fn())


# --- command line -----------------------------------------------------------------------------

def add_targets_argument(parser: ArgumentParser, targets: Sequence[str]) -> None:
    """--targets: a comma-separated list of `targets`, all of them by default."""
    parser.add_argument("--targets", default=",".join(targets),
                        help=f"comma-separated, run in this order (default {','.join(targets)})")


def parse_targets(parser: ArgumentParser, text: str, targets: Sequence[str]) -> list[str]:
    """The --targets list; exits through parser.error on an empty list or an unknown target
    (named in the message)."""
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in targets]
    if unknown or not chosen:
        parser.error(f"--targets: {f'unknown {unknown}; ' if unknown else ''}choose from {', '.join(targets)}")
    return chosen


def add_profile_argument(parser: ArgumentParser) -> None:
    """--profile OUT.prof: run `postoffice serve` under cProfile (see start_postoffice)."""
    parser.add_argument("--profile", metavar="OUT.prof",
                        help="run the postoffice server under cProfile, writing OUT.prof at exit")


# --- postoffice -------------------------------------------------------------------------------

def postoffice_env() -> dict[str, str]:
    """The environment for `python -m postoffice`: this checkout's src first, whatever is
    installed, and no POSTOFFICE_DATA."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    env.pop("POSTOFFICE_DATA", None)
    return env


def run_postoffice(env: dict[str, str], *argv: str, stdin: str | None = None) -> str:
    """`postoffice argv...`'s stdout; BenchError with its last line of output if it fails."""
    done = subprocess.run([sys.executable, "-m", "postoffice", *argv], input=stdin, capture_output=True,
                          text=True, env=env)
    if done.returncode != 0:
        text = (done.stdout + done.stderr).strip()
        raise BenchError(f"`postoffice {' '.join(argv[:2])}` exited with {done.returncode}: "
                         f"{text.splitlines()[-1] if text else '(no output)'}")
    return done.stdout


def import_mbox(env: dict[str, str], data: Path, mbox: Path, user: str, expected: int) -> None:
    """`postoffice import mbox` into user's INBOX; BenchError unless it stored `expected` messages."""
    out = run_postoffice(env, "import", "mbox", str(mbox), "--into", user, "--json", "--data", str(data))
    done = next((line for line in reversed(out.splitlines()) if line.startswith('{"done"')), "")
    if f'"stored": {expected},' not in done:
        raise BenchError(f"import into {user}: {done or out[-300:]}")


def source_digest(*names: str) -> str:
    """12 hex digits that change when the code shaping a cached data dir changes: the named
    files and packages (every .py below a directory) of src/postoffice, in this order."""
    src = REPO / "src" / "postoffice"
    files: list[Path] = []
    for name in names:
        path = src / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for f in files:
        if f.exists():
            digest.update(f.relative_to(src).as_posix().encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:12]


def cached_template(root: Path, build: Callable[[Path], None], detail: str = "", why: str = "once") -> Path:
    """root/data: reused when root/complete exists, else made by build(data) in a partial
    directory beside `root` that is renamed into place once complete."""
    if (root / "complete").exists():
        log(f"postoffice: reusing the data dir template {root / 'data'}")
        return root / "data"
    partial = root.with_name(f"{root.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    log(f"postoffice: building a data dir template{detail} in {root} ({why}) ...")
    started = time.monotonic()
    try:
        build(partial / "data")
        (partial / "complete").write_text("ok\n")
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log(f"postoffice: template ready in {time.monotonic() - started:.0f} s")
    return root / "data"


def copy_data_dir(template: Path, target: Path) -> None:
    """Copy a data dir; blob files are immutable (named by content), so they are hard-linked."""
    def link_or_copy(src: str, dst: str) -> object:
        if os.sep + "blobs" + os.sep in src:
            try:
                os.link(src, dst)
                return dst
            except OSError:
                pass
        return shutil.copy2(src, dst)

    shutil.copytree(template, target, symlinks=True, copy_function=link_or_copy)


def set_toml_keys(config: Path, values: Mapping[str, Mapping[str, Any]]) -> None:
    """Set keys of a TOML config in place, line by line so that its comments and layout stay:
    values[section][key] (a string, number, bool, or a list of them) replaces the `key = ...` line
    in [section], or is added at the end of the section (of a new section at the end of the file
    if it has none). BenchError unless the file then reads back with these values."""
    todo = {section: dict(keys) for section, keys in values.items()}
    out: list[str] = []
    section = ""

    def end_section() -> None:  # add the keys the section ending here lacks, before its blank lines
        rest = todo.pop(section, None)
        if rest:
            at = len(out)
            while at and not out[at - 1].strip():
                at -= 1
            out[at:at] = [f"{k} = {json.dumps(v)}\n" for k, v in rest.items()]

    text = config.read_text()
    for line in (text if text.endswith("\n") or not text else text + "\n").splitlines(keepends=True):
        header = re.match(r"\s*\[([^\]]+)\]", line)
        key = re.match(r"\s*([A-Za-z0-9_]+)\s*=", line)
        if header:
            end_section()
            section = header.group(1).strip()
        elif key and key.group(1) in todo.get(section, {}):
            line = f"{key.group(1)} = {json.dumps(todo[section].pop(key.group(1)))}\n"
        out.append(line)
    end_section()
    for name, rest in todo.items():
        if rest:
            out.append(f"\n[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in rest.items()))
    text = "".join(out)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"could not set keys in {config}: {exc}") from None
    for name, keys in values.items():
        for k, v in keys.items():
            if doc.get(name, {}).get(k) != v:
                raise BenchError(f"could not set [{name}] {k} in {config}")
    config.write_text(text)


def rewrite_listen(config: Path, ports: Mapping[str, int]) -> None:
    """Rewrite [listen] so that each service in `ports` listens on 127.0.0.1:port and nothing
    else listens."""
    set_toml_keys(config, {"listen": {k: [f"127.0.0.1:{ports[k]}"] if k in ports else [] for k in LISTEN_KEYS}})


@dataclass
class Server:
    """A running `postoffice serve`, its log, and the monitor of its process tree."""

    proc: subprocess.Popen
    log_path: Path
    monitor: Monitor
    stop_timeout: float = STOP_TIMEOUT


def start_postoffice(data: Path, env: dict[str, str], ports: Mapping[str, int], cleanups: Cleanups, *,
                     profile: str | None = None, nofile: int | None = None, note: str = "",
                     stop_timeout: float = STOP_TIMEOUT) -> Server:
    """`postoffice serve` on `data` (under cProfile writing `profile`, with RLIMIT_NOFILE
    `nofile`), listening only on `ports`, its log in data/../serve.log; waits until it serves
    and every port accepts. Unavailable if it lacks a listener, exits or does not listen in
    time. `note` goes into the log line after the ports."""
    rewrite_listen(data / "postoffice.toml", ports)
    server_log = data.parent / "serve.log"
    argv = [sys.executable, "-m", "postoffice", "serve", "--data", str(data)]
    if profile:
        argv[1:1] = ["-m", "cProfile", "-o", profile]
    os.sync()
    with server_log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=_nofile_preexec(nofile))
    cleanups.append(lambda: stop_process(proc, "postoffice", stop_timeout))
    services = "/".join(ports)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        text = server_log.read_text(errors="replace")
        if "postoffice is serving" in text:
            missing = [k for k in ports if f"listening: {k} on" not in text]
            if missing:
                raise Unavailable(f"`postoffice serve` started without a {'/'.join(missing)} listener "
                                  "(not in this version yet):\n" + tail(server_log))
            if all(port_open(p) for p in ports.values()):
                break
        if proc.poll() is not None:
            raise Unavailable(f"`postoffice serve` exited with {proc.returncode} before listening on "
                              f"{services}:\n" + tail(server_log))
        if time.monotonic() > deadline:
            raise Unavailable(f"`postoffice serve` did not listen on {services} within {START_TIMEOUT:.0f} s:\n"
                              + tail(server_log))
        time.sleep(0.1)
    listening = ", ".join(f"{k} on 127.0.0.1:{p}" for k, p in ports.items())
    log(f"postoffice: serve pid {proc.pid}{' under cProfile' if profile else ''}, {listening}{note}, "
        f"log {server_log}")
    return Server(proc, server_log, Monitor(proc.pid), stop_timeout)


def finish_postoffice(server: Server, profile: str | None = None) -> None:
    """Stop the server and report an odd exit status and the ERROR lines of its log."""
    stop_process(server.proc, "postoffice", server.stop_timeout)
    if server.proc.returncode not in (0, -signal.SIGTERM):
        log(f"postoffice: serve exited with {server.proc.returncode}:\n{tail(server.log_path)}")
    text = server.log_path.read_text(errors="replace")
    errors = [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line]
    if errors:
        log(f"postoffice: {len(errors)} error line(s) in {server.log_path}; first: {errors[0][:300]}")
    if profile:
        log(f"postoffice: profile written to {profile} (python -m pstats {profile})")


def store_counts(data: Path, *queries: str, timeout: float = 5.0) -> tuple[int, ...]:
    """The single numbers `queries` (SELECT COUNT(*) ...) return from the data dir's store,
    opened read-only; raises sqlite3.Error."""
    db = sqlite3.connect(f"file:{data / 'store.sqlite3'}?mode=ro", uri=True, timeout=timeout)
    try:
        return tuple(db.execute(query).fetchone()[0] for query in queries)
    finally:
        db.close()


_UNINDEXED = ("SELECT COUNT(*) FROM blobs WHERE text_version = 0", "SELECT COUNT(*) FROM blobs")


def unindexed(data: Path) -> tuple[int, int] | None:
    """(blobs not in the full-text index yet, all blobs), or None if the store is unreadable."""
    try:
        left, blobs = store_counts(data, *_UNINDEXED, timeout=30)
    except sqlite3.Error:
        return None
    return left, blobs


def unindexed_note(data: Path) -> Callable[[], str]:
    """A wait_idle() note: how many blobs the full-text index still lacks."""
    def note() -> str:
        counts = unindexed(data)
        if counts is None:
            return "store not readable"
        left, blobs = counts
        return f"{blobs:,} blobs, {left:,} not in the full-text index yet"
    return note


# --- Dovecot ----------------------------------------------------------------------------------

def dovecot_missing(binary: Path, package: str) -> str | None:
    """What the reference Dovecot with the protocol `binary` (of `package`) lacks here, or None."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = [t for t in ("dovecot", "doveconf") if not shutil.which(t, path=path)]
    if not binary.exists():
        missing.append(f"{binary} ({package})")
    missing += [str(REFERENCE / s) for s in ("dovecot-setup.sh", "dovecot.conf") if not (REFERENCE / s).exists()]
    if os.geteuid() != 0:
        missing.append("root (Dovecot needs it)")
    return ", ".join(missing) or None


def setup_reference_dovecot() -> None:
    """../shared/reference/dovecot-setup.sh on an empty REFERENCE_DOVECOT_BASE/mail; Unavailable
    ("port busy") while another Dovecot holds one of its ports."""
    busy = [p for p in REFERENCE_DOVECOT_PORTS if port_open(p)]
    if busy:
        raise Unavailable(f"127.0.0.1:{busy} in use (another Dovecot running?); leaving it alone", "port busy")
    shutil.rmtree(REFERENCE_DOVECOT_BASE / "mail", ignore_errors=True)  # a previous run's mail
    run_sh(str(REFERENCE / "dovecot-setup.sh"))


def fill_maildir(mail: Path, user: str, messages: list[bytes], first: int = 0) -> None:
    """Messages into mail/user/Maildir/new, named as Dovecot's delivery names them (`,S=` the
    file size, `,W=` the size with CRLF line ends), in order; owned by vmail."""
    vmail = pwd.getpwnam("vmail")
    home = mail / user
    maildir = home / "Maildir"
    for d in (home, maildir, maildir / "new", maildir / "cur", maildir / "tmp"):
        d.mkdir(exist_ok=True)
        os.chown(d, vmail.pw_uid, vmail.pw_gid)
    new = maildir / "new"
    base = int(time.time()) - len(messages) - 10
    host = socket.gethostname().replace("/", "_").replace(":", "_")
    for i, message in enumerate(messages, first):
        vsize = len(message) + message.count(b"\n")
        name = f"{base + i}.M{i}P{os.getpid()}.{host},S={len(message)},W={vsize}"
        fd = os.open(new / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(message)
            while view:
                view = view[os.write(fd, view):]
            os.fchown(fd, vmail.pw_uid, vmail.pw_gid)
        finally:
            os.close(fd)


def spawn_dovecot(conf: Path, log_dir: Path, ports: Sequence[int], cleanups: Cleanups, *,
                  nofile: int | None = None, stop_timeout: float = STOP_TIMEOUT) -> subprocess.Popen:
    """`dovecot -F -c conf` in its own session (RLIMIT_NOFILE `nofile`), its output in
    log_dir/dovecot-stdout.log, stopped by the cleanups; waits until it listens on `ports`."""
    log_path = log_dir / "dovecot-stdout.log"
    os.sync()
    with log_path.open("wb") as out:
        proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_nofile_preexec(nofile))
    cleanups.append(lambda: stop_process(proc, "dovecot", stop_timeout))
    wait_for_ports(ports, "dovecot", proc, (log_path, log_dir / "dovecot.log"))
    return proc


def dovecot_log_problems(path: Path, since: int = 0) -> list[str]:
    """The Error, Fatal, Panic and Warning lines of a Dovecot log from byte `since` on (its size
    before the run, for a log that earlier runs wrote to), except those of its own shutdown
    ("Killed with signal 15"); [] if the log cannot be read."""
    try:
        with path.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines()
            if any(word in line for word in ("Error", "Fatal", "Panic", "Warning"))
            and "Killed with signal 15" not in line]


def dovecot_version() -> str:
    """`dovecot --version`, for the log."""
    return subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip()


# --- message bodies for the SMTP benchmarks --------------------------------------------------------

_WORDS = (
    "the", "mail", "server", "queue", "message", "delivery", "header", "body", "folder", "inbox",
    "report", "meeting", "project", "deadline", "review", "patch", "release", "test", "build",
    "invoice", "budget", "customer", "ticket", "support", "update", "weekly", "status", "draft",
    "attachment", "schedule", "travel", "lunch", "agenda", "notes", "question", "answer",
    "thanks", "please", "regards", "hello", "team", "backup", "storage", "network", "latency",
)


def message_bodies(rng: random.Random, header_estimate: int, count: int = 64) -> list[bytes]:
    """`count` plain-text bodies for whole messages of 4.6-5.6 KB with `header_estimate` bytes
    of header, each starting with the blank line after the header, dot-stuffed and ending in
    the CRLF.CRLF that ends DATA (smtp_ingest.py and smtp_outbound.py send the same mail)."""
    bodies = []
    for _ in range(count):
        target = rng.randint(4600, 5600) - header_estimate
        lines, size = [], 0
        while size < target:
            words: list[str] = []
            while sum(len(w) + 1 for w in words) < rng.randint(50, 72):
                words.append(rng.choice(_WORDS))
            line = " ".join(words).capitalize() if rng.random() < 0.9 else ""
            lines.append(line.encode())
            size += len(line) + 2
        body = b"\r\n".join(lines) + b"\r\n"
        body = re.sub(rb"(?m)^\.", b"..", body)  # dot-stuffing (RFC 5321 §4.5.2)
        bodies.append(b"\r\n" + body + b".\r\n")
    return bodies
