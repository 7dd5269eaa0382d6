"""Benchmark `postoffice import mbox` against the stdlib floor, and print one result line.

What it measures, in one run:

1. postoffice: `python -m postoffice import mbox FILE --into u@bench.test --json` into a fresh
   data directory (`init`, then `user add`). Wall time from start to exit, and the peak RSS of
   the whole process tree (the importer spawns parser processes): RSS of the process and all its
   descendants, summed, polled every 50 ms. The `{"done": ...}` line must say all N were stored.
2. The floor: the stdlib reading the same file with `mailbox.mbox` and adding each message to a
   fresh `mailbox.Maildir`, in a subprocess measured the same way. It parses every message too,
   but indexes nothing and does not fsync, so postoffice is expected to be slower.

The mbox comes from `../shared/reference/gen_mbox.py` (relative to the repository root) when that
exists, else from a built-in generator with the same mix (plain, alternative, attachments,
replies, UTF-8). It is cached under --cache-dir, keyed by generator, count and seed.

Target (from the issue): at least 1,500 messages/s with full metadata and FTS indexing, and a
peak RSS under 300 MB (MB = 10**6 bytes). Exit status: 0 PASS, 1 FAIL, 2 the run itself failed.

Example: .venv/bin/python bench/import_mbox.py --count 20000 --seed 42
"""

from __future__ import annotations

import argparse
import json
import mailbox
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from benchkit import (
    CACHE_DIR,
    MB,
    PASSWORD,
    POLL_SECONDS,
    REFERENCE_GEN,
    Monitor,
    log,
    postoffice_env,
    set_prefix,
)

USER = "u@bench.test"
TARGET_RATE = 1500
TARGET_RSS_MB = 300

# The floor, run as `python -c FLOOR MBOX MAILDIR`; prints how many messages it added.
FLOOR = """
import mailbox, sys
src = mailbox.mbox(sys.argv[1], create=False)
dst = mailbox.Maildir(sys.argv[2], create=True)
n = 0
for message in src:
    dst.add(message)
    n += 1
print(n)
"""


# --- the input mbox ---------------------------------------------------------------------------

_WORDS = (
    "the", "mail", "server", "queue", "message", "delivery", "header", "body", "folder", "inbox",
    "report", "meeting", "project", "deadline", "review", "patch", "release", "test", "build",
    "invoice", "budget", "customer", "ticket", "support", "update", "weekly", "status", "draft",
    "attachment", "schedule", "travel", "lunch", "agenda", "notes", "question", "answer",
    "thanks", "please", "regards", "hello", "team", "backup", "storage", "network", "latency",
    "index", "search", "café", "naïve", "résumé", "größe", "über", "straße",
)
_NAMES = ("Alice Smith", "Bob Jones", "Carol White", "Dave Brown", "Eve Black", "Frank Green",
          "Grace Hall", "Ivan Petrov", "Judy Chen", "Niaj Khan", "Olivia Park", "Rupert Gale")
_DOMAINS = ("example.com", "example.org", "bench.test", "corp.example.net")


def _address(rng: random.Random) -> str:
    first, last = rng.choice(_NAMES).split()
    return f'"{first} {last}" <{first.lower()}.{last.lower()}@{rng.choice(_DOMAINS)}>'


def _text(rng: random.Random, size: int) -> str:
    paragraphs, n = [], 0
    while n < size:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(40, 70))]
        paragraph = " ".join(words).capitalize() + "."
        paragraphs.append(paragraph)
        n += len(paragraph.encode()) + 2
    return "\n\n".join(paragraphs) + "\n"


def generate_builtin(out: Path, count: int, seed: int) -> None:
    """The fallback generator: the reference's mix, each message 2-50 KB on the wire."""
    rng = random.Random(seed)
    box = mailbox.mbox(str(out), create=True)
    box.lock()
    when = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
    ids: list[str] = []
    for i in range(count):
        when += timedelta(minutes=rng.randint(1, 120))
        target = int(rng.choice((2700, 4000, 6000, 9000, 14000, 22000, 32000, 42000)) * rng.uniform(0.9, 1.1))
        m = EmailMessage()
        sender = _address(rng)
        m["From"] = sender
        m["To"] = ", ".join(_address(rng) for _ in range(rng.randint(1, 3)))
        subject = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 8))).capitalize()
        if ids and rng.random() < 0.3:
            parent = rng.choice(ids[-50:])
            m["Subject"] = "Re: " + subject
            m["In-Reply-To"] = parent
            m["References"] = parent
        else:
            m["Subject"] = subject
        m["Date"] = format_datetime(when)
        m["Message-ID"] = make_msgid(idstring=f"b{i}", domain="bench.test")
        ids.append(m["Message-ID"])
        kind = rng.random()
        body = (target - 700) * 9 // 10  # headers, boundaries, quoted-printable
        if kind < 0.60:
            m.set_content(_text(rng, body))
        elif kind < 0.85:  # text + html of the same words
            text = _text(rng, body * 9 // 20)
            m.set_content(text)
            html = "".join(f"<p>{p}</p>\n" for p in text.split("\n\n"))
            m.add_alternative(f"<html><body>\n{html}</body></html>\n", subtype="html")
        else:  # a little text and a binary attachment (base64 grows it by 4/3)
            m.set_content(_text(rng, body // 5))
            blob = rng.randbytes(body * 4 // 5 * 3 // 4)
            m.add_attachment(blob, maintype="application", subtype="octet-stream",
                             filename=f"data-{i}.bin")
        entry = mailbox.mboxMessage(m)
        entry.set_from(sender.split("<")[1].rstrip(">"), when.timetuple())
        box.add(entry)
    box.flush()
    box.unlock()
    box.close()


def mbox_stats(path: Path) -> dict[str, float]:
    """Message sizes and how many carry an attachment, from one pass over the file."""
    sizes: list[int] = []
    attachments = 0
    size, attached, blank = -1, False, True
    with path.open("rb") as f:
        for line in f:
            if blank and line.startswith(b"From "):
                if size >= 0:
                    sizes.append(size)
                    attachments += attached
                size, attached = 0, False
            else:
                size += len(line) + 1  # as stored: CRLF line ends
                if not attached and line.lower().startswith(b"content-disposition: attachment"):
                    attached = True
            blank = line in (b"\n", b"\r\n")
    if size >= 0:
        sizes.append(size)
        attachments += attached
    sizes.sort()
    n = len(sizes) or 1
    return {
        "messages": len(sizes),
        "min_kb": sizes[0] / 1000 if sizes else 0,
        "median_kb": statistics.median(sizes) / 1000 if sizes else 0,
        "p95_kb": sizes[int(0.95 * (n - 1))] / 1000 if sizes else 0,
        "max_kb": sizes[-1] / 1000 if sizes else 0,
        "mean_kb": sum(sizes) / n / 1000,
        "in_2_50_kb_pct": 100 * sum(2000 <= s <= 50000 for s in sizes) / n,
        "attachments_pct": 100 * attachments / n,
    }


def prepare_mbox(cache_dir: Path, count: int, seed: int, generator: str) -> tuple[Path, dict[str, float]]:
    if generator == "auto":
        generator = "reference" if REFERENCE_GEN.exists() else "builtin"
    if generator == "reference" and not REFERENCE_GEN.exists():
        raise RuntimeError(f"{REFERENCE_GEN} does not exist")
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{generator}-{count}-{seed}.mbox"
    stats_path = path.with_suffix(".stats.json")
    if path.exists() and stats_path.exists():
        log(f"reusing {path}")
        return path, json.loads(stats_path.read_text())
    partial = path.with_name(path.name + f".partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    log(f"generating {count:,} messages (seed {seed}, {generator} generator) into {path} ...")
    started = time.monotonic()
    if generator == "reference":
        done = subprocess.run([sys.executable, str(REFERENCE_GEN), str(partial), str(count), str(seed)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise _failure(REFERENCE_GEN.name, done.returncode, done.stderr)
    else:
        generate_builtin(partial, count, seed)
    stats = mbox_stats(partial)
    if stats["messages"] != count:
        raise RuntimeError(f"the generator wrote {stats['messages']} messages, not {count}")
    stats_path.write_text(json.dumps(stats))
    partial.rename(path)  # last, so that a half-written file is never reused
    log(f"generated in {time.monotonic() - started:.0f} s")
    return path, stats


# --- running and measuring a process tree -----------------------------------------------------

@dataclass
class Measured:
    seconds: float
    peak_rss: int
    cpu_user: float
    cpu_sys: float
    returncode: int
    stdout_lines: int
    last_line: bytes
    stderr: bytes


def run_measured(argv: list[str], label: str, env: dict[str, str], expected: int = 0) -> Measured:
    """Run `argv`, draining its output in threads, polling the RSS of its tree every 50 ms."""
    lines = 0
    last = b""
    err = bytearray()

    def drain_stdout(stream) -> None:
        nonlocal lines, last
        for line in stream:  # counted, not parsed: the benchmark should stay out of the way
            if line.strip():
                lines += 1
                last = line
        stream.close()

    def drain_stderr(stream) -> None:
        for chunk in iter(lambda: stream.read(65536), b""):
            err.extend(chunk)
        stream.close()

    os.sync()  # write back what earlier steps left dirty, so this run does not pay for it
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    readers = [threading.Thread(target=drain_stdout, args=(child.stdout,), daemon=True),
               threading.Thread(target=drain_stderr, args=(child.stderr,), daemon=True)]
    for t in readers:
        t.start()
    tree = Monitor(child.pid)
    peak = 0
    next_report = started + 5
    while child.poll() is None:
        peak = max(peak, tree.rss())
        now = time.perf_counter()
        if expected and now >= next_report:
            log(f"{label}: {lines:,}/{expected:,} after {now - started:.0f} s, "
                f"tree RSS {peak / MB:,.0f} MB so far")
            next_report = now + 5
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    for t in readers:
        t.join()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Measured(seconds, peak, cpu_after.ru_utime - cpu_before.ru_utime,
                    cpu_after.ru_stime - cpu_before.ru_stime, child.returncode, lines, last.strip(),
                    bytes(err))


def _failure(what: str, returncode: int, output: bytes | str) -> RuntimeError:
    """An error whose first line names the command and its last line of output."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return RuntimeError(f"{what} exited with {returncode}: {lines[-1] if lines else '(no output)'}\n{text}")


def _check(argv: list[str], env: dict[str, str], stdin: str | None = None) -> None:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise _failure(f"`postoffice {argv[3]}`", result.returncode, result.stdout + result.stderr)


def bench_postoffice(mbox: Path, count: int, work: Path, env: dict[str, str], workers: int) -> Measured:
    py = [sys.executable, "-m", "postoffice"]
    data = work / "data"
    _check([*py, "init", "--data", str(data), "--domain", "bench.test",
            "--hostname", "mail.bench.test"], env)
    _check([*py, "user", "add", USER, "--password-stdin", "--data", str(data)], env, PASSWORD + "\n")
    log(f"postoffice: importing into {data} ...")
    argv = [*py, "import", "mbox", str(mbox), "--into", USER, "--data", str(data), "--json"]
    if workers:
        argv += ["--workers", str(workers)]
    m = run_measured(argv, "postoffice", env, expected=count)
    if m.returncode != 0:
        raise _failure("`postoffice import`", m.returncode, m.stderr)
    try:
        done = json.loads(m.last_line)["done"]
    except (ValueError, KeyError, TypeError):
        raise RuntimeError(f"no done line; the last line was {m.last_line[:200]!r}") from None
    if done.get("stored") != count or m.stdout_lines - 1 != count:
        raise RuntimeError(f"stored {done.get('stored')} of {count} ({m.stdout_lines - 1} lines): {done}")
    log(f"postoffice: {done}; {m.seconds:.1f} s wall, CPU {m.cpu_user:.1f} s user + {m.cpu_sys:.1f} s sys, "
        f"peak tree RSS {m.peak_rss / MB:.0f} MB")
    if m.stderr.strip():
        log("postoffice stderr: " + m.stderr.decode(errors="replace").strip()[-2000:])
    return m


def bench_floor(mbox: Path, count: int, work: Path, env: dict[str, str]) -> Measured:
    log("stdlib: mailbox.mbox -> mailbox.Maildir ...")
    m = run_measured([sys.executable, "-c", FLOOR, str(mbox), str(work / "Maildir")], "stdlib", env)
    if m.returncode != 0:
        raise _failure("the stdlib floor", m.returncode, m.stderr)
    if m.last_line != str(count).encode():
        raise RuntimeError(f"the stdlib floor added {m.last_line[:80].decode(errors='replace')} messages, not {count}")
    log(f"stdlib: {m.seconds:.1f} s wall, CPU {m.cpu_user:.1f} s user + {m.cpu_sys:.1f} s sys, "
        f"peak RSS {m.peak_rss / MB:.0f} MB")
    return m


def main(argv: list[str] | None = None) -> int:
    set_prefix("import_mbox")
    parser = argparse.ArgumentParser(
        description="Time `postoffice import mbox` (wall time, peak RSS of the process tree) and "
                    "the stdlib mailbox.mbox -> mailbox.Maildir floor on the same mbox; print one "
                    "result line, PASS if >= 1,500 msg/s and peak RSS < 300 MB. "
                    "Progress goes to stderr. Exit status: 0 PASS, 1 FAIL, 2 error.",
        epilog="Example: .venv/bin/python bench/import_mbox.py --count 3000 --keep",
    )
    parser.add_argument("--count", type=int, default=20_000, help="messages in the mbox (default 20000)")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary data dir and Maildir for inspection (path on stderr)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                        help="where generated mboxes are kept and reused (default /tmp/postoffice-bench)")
    parser.add_argument("--generator", choices=("auto", "reference", "builtin"), default="auto",
                        help="auto: ../shared/reference/gen_mbox.py if present, else the built-in one")
    parser.add_argument("--workers", type=int, default=0,
                        help="passed to `postoffice import --workers` (default: the importer's own choice)")
    parser.add_argument("--no-floor", action="store_true", help="skip the stdlib floor")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    if args.workers < 0:
        parser.error("--workers must be 0 (the importer's default) or more")

    env = postoffice_env()  # measure this checkout, whatever is installed

    try:
        mbox, stats = prepare_mbox(args.cache_dir, args.count, args.seed, args.generator)
    except RuntimeError as exc:
        log(str(exc))
        print(f"import_mbox: N={args.count} ERROR: {str(exc).splitlines()[0]}")
        return 2
    log(f"{mbox.stat().st_size / MB:,.0f} MB; message sizes min {stats['min_kb']:.1f} KB, "
        f"median {stats['median_kb']:.1f} KB, mean {stats['mean_kb']:.1f} KB, "
        f"p95 {stats['p95_kb']:.1f} KB, max {stats['max_kb']:.1f} KB; "
        f"{stats['in_2_50_kb_pct']:.0f}% within 2-50 KB; {stats['attachments_pct']:.0f}% with attachments")
    with mbox.open("rb") as f:  # warm the page cache, so neither side pays for the first read
        while f.read(1 << 24):
            pass

    work = Path(tempfile.mkdtemp(prefix="postoffice-bench-"))
    try:
        po = bench_postoffice(mbox, args.count, work, env, args.workers)
        floor = None if args.no_floor else bench_floor(mbox, args.count, work, env)
    except RuntimeError as exc:
        log(str(exc))
        print(f"import_mbox: N={args.count} ERROR: {str(exc).splitlines()[0]}")
        return 2
    finally:
        if args.keep:
            log(f"kept {work} (data dir {work / 'data'}, stdlib Maildir {work / 'Maildir'})")
        else:
            shutil.rmtree(work, ignore_errors=True)

    rate = args.count / po.seconds
    rss = po.peak_rss / MB
    ok = rate >= TARGET_RATE and rss < TARGET_RSS_MB
    parts = [f"import_mbox: N={args.count} postoffice {rate:,.0f} msg/s peak_rss {rss:,.0f} MB"]
    if floor is not None:
        floor_rate = args.count / floor.seconds
        parts.append(f"stdlib mailbox->Maildir {floor_rate:,.0f} msg/s peak_rss {floor.peak_rss / MB:,.0f} MB")
        parts.append(f"ratio {rate / floor_rate:.2f}x")
    parts.append(f"target >={TARGET_RATE:,} msg/s, <{TARGET_RSS_MB} MB: {'PASS' if ok else 'FAIL'}")
    print(" | ".join(parts), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
