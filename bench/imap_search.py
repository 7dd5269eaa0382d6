"""IMAP SEARCH, FETCH 1:*, THREAD and SORT on a 100,000-message mailbox, postoffice and Dovecot; one line.

The mailbox (from the issue): user1's INBOX holding --count messages of ../shared/reference/
gen_mbox.py (cached under --cache-dir under the name bench/import_mbox.py uses) and then --rare
messages of our own whose body holds the word "quuxfrobnicate", which occurs nowhere else.

1. postoffice: `init`, user1@bench.test (argon2id through the store API), `postoffice import mbox`
   of both mboxes into its INBOX, then `postoffice serve` (imap only, on a free 127.0.0.1 port)
   builds the full-text index in the background: the script waits until `SELECT count(*) FROM
   blobs WHERE text_version = 0` in data/store.sqlite3 is 0 and prints how long that took. The
   indexed data dir is kept under --cache-dir (keyed by the store code and the mailbox), so the
   next run copies it (blob files hard-linked) instead of importing again; --fresh rebuilds it.
   Import and indexing times are those of the run that built it.
2. dovecot: the reference configuration (see imap_stress.py) under its own base directory
   /tmp/reference-dovecot-imapbench-search, on free ports, the same messages written into
   user1's Maildir (kept between runs, marked as complete); no FTS plugin, so SEARCH TEXT reads
   every message. Its first SELECT (building the index) is timed separately and untimed runs of
   nothing else precede the measurements.

Then, in one session after SELECT INBOX, each command runs --repeat times (the first is shown on
stderr as cold) and the median is reported: SEARCH TEXT quuxfrobnicate (target < 100 ms),
FETCH 1:* (FLAGS UID) (target < 1 s), THREAD REFERENCES US-ASCII ALL (target < 2 s; a BAD or NO
answer is reported as "THREAD not supported"), THREAD ORDEREDSUBJECT US-ASCII ALL and SORT (REVERSE
DATE) US-ASCII ALL (each target < 2 s), SEARCH TEXT of a common word (in nearly every message) and
SEARCH BODY of a two-character needle found nowhere (each target < 1 s), and for information
SEARCH BODY of a phrase of three common words, SEARCH FROM and SEARCH SUBJECT. Time runs from
sending the command to reading its tagged reply; the client reads replies in 1 MiB chunks, so it
costs little next to the server. Every reply is checked: the rare word must find exactly --rare
messages, FETCH must return a line per message, SORT must return every message.

Last, the latency probe: while the first session runs SEARCH TEXT common word, SEARCH BODY of the
two-character needle and SEARCH TEXT rare word, --repeat times, a second session sends NOOP,
FETCH n (FLAGS) and STATUS INBOX in turn, 20 ms apart, and the line reports the longest and the
99th-percentile round trip (target: every one < 100 ms).

stdout gets one line, e.g.:

imap_search: n=100000 | postoffice (index 312 s) TEXT rare 12 ms, FETCH 1:* 640 ms, THREAD not
  supported, THREAD ORDEREDSUBJECT 1,100 ms, SORT 600 ms, TEXT common 300 ms, BODY 2 chars 5 ms,
  BODY phrase 2,000 ms, FROM 800 ms, SUBJECT 700 ms, other session during SEARCH max 40 ms p99
  20 ms | dovecot TEXT rare 21,000 ms, ... | PASS (THREAD not supported)

PASS when postoffice meets the targets it can be measured on (THREAD counts once it answers).
Exit status: 0 PASS, 1 FAIL, 2 no verdict (postoffice unavailable, or a wrong answer).

Example: .venv/bin/python bench/imap_search.py --count 5000 --targets postoffice
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mailbox
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import (
    CACHE_DIR,
    DOMAIN,
    DOVECOT_PASSWORD,
    MB,
    PASSWORD,
    BenchError,
    Cleanups,
    add_profile_argument,
    add_targets_argument,
    copy_data_dir,
    fill_maildir,
    finish_postoffice,
    free_port,
    import_mbox,
    load_messages,
    log,
    parse_targets,
    postoffice_env,
    prepare_mbox,
    run_async,
    run_main,
    run_postoffice,
    run_targets,
    scratch_dir,
    start_postoffice,
    unindexed,
    wait_idle,
)
from imap_stress import (
    STOP_TIMEOUT,
    ImapConnection,
    add_users,
    setup_dovecot,
    start_dovecot,
    stop_dovecot,
    template_key,
)

RARE_WORD = "quuxfrobnicate"
COMMON_WORD = "deadline"
SHORT_NEEDLE = "zq"  # two characters found nowhere: no early hit ends a scan
PHRASE = "project deadline review"  # three common words in a row: a phrase, not a word
FROM_WORD = "alice.smith"
SUBJECT_WORD = "budget"
COMMAND_TIMEOUT = 1800.0
INDEX_TIMEOUT = 4 * 3600.0
DOVECOT_SEARCH_BASE = Path("/tmp/reference-dovecot-imapbench-search")
PROBE_TARGET = 0.1  # no command of another session waits this long while SEARCHes run

# (key, label, command, target in seconds or None)
QUERIES = (
    ("rare", "TEXT rare", f"SEARCH TEXT {RARE_WORD}", 0.1),
    ("fetch", "FETCH 1:*", "FETCH 1:* (FLAGS UID)", 1.0),
    ("thread", "THREAD", "THREAD REFERENCES US-ASCII ALL", 2.0),
    ("orderedsubject", "THREAD ORDEREDSUBJECT", "THREAD ORDEREDSUBJECT US-ASCII ALL", 2.0),
    ("sort", "SORT", "SORT (REVERSE DATE) US-ASCII ALL", 2.0),
    ("common", "TEXT common", f"SEARCH TEXT {COMMON_WORD}", 1.0),
    ("short", "BODY 2 chars", f"SEARCH BODY {SHORT_NEEDLE}", 1.0),
    ("phrase", "BODY phrase", f'SEARCH BODY "{PHRASE}"', None),
    ("from", "FROM", f"SEARCH FROM {FROM_WORD}", None),
    ("subject", "SUBJECT", f"SEARCH SUBJECT {SUBJECT_WORD}", None),
)


def rare_mbox(cache: Path, count: int) -> Path:
    """`count` messages of our own with RARE_WORD in the body (and nowhere else)."""
    path = cache / f"imap-search-{RARE_WORD}-{count}.mbox"
    if path.exists():
        return path
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    box = mailbox.mbox(str(partial), create=True)
    t = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
    for i in range(count):
        m = EmailMessage()
        m["From"] = '"Zed Rare" <zed.rare@example.net>'
        m["To"] = f"user1@{DOMAIN}"
        m["Subject"] = f"Unusual report number {i}"
        m["Date"] = format_datetime(t + timedelta(hours=i))
        m["Message-ID"] = f"<rare-{i}.search-bench@example.net>"
        m.set_content(f"Hello,\n\nthe {RARE_WORD} step of run {i} needs a second look.\n\nRegards\n")
        box.add(m)
    box.close()
    partial.rename(path)
    return path


# --- the client -------------------------------------------------------------------------------

@dataclass
class Timed:
    seconds: list[float] = field(default_factory=list)
    status: str = ""
    text: str = ""
    hits: int | None = None  # SEARCH, SORT: numbers returned
    lines: int = 0  # untagged lines (FETCH: one per message)
    octets: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


async def bulk_command(conn: ImapConnection, text: bytes) -> tuple[str, str, bytes, float]:
    """Send `text`, read the whole reply in big chunks; (status, tagged line, untagged bytes,
    seconds). Only for replies without literals (SEARCH, THREAD, FETCH FLAGS UID)."""
    conn.tag += 1
    tag = b"a%d " % conn.tag
    began = time.perf_counter()
    conn.writer.write(tag + text + b"\r\n")
    buf = bytearray()
    marker = b"\r\n" + tag
    while True:
        chunk = await conn.reader.read(1 << 20)
        if not chunk:
            raise BenchError("the server closed the connection")
        scan = max(0, len(buf) - len(marker))
        buf += chunk
        if buf.startswith(tag):
            at = 0
        else:
            at = buf.find(marker, scan)
            at = at + 2 if at >= 0 else -1
        if at >= 0 and buf.endswith(b"\r\n"):
            elapsed = time.perf_counter() - began
            line = bytes(buf[at:]).decode(errors="replace").strip()
            status = line.split(" ", 2)[1].upper() if " " in line else "?"
            return status, line, bytes(buf[:at]), elapsed


def search_hits(untagged: bytes, name: bytes = b"SEARCH") -> int:
    """How many numbers the `* SEARCH` (or `* SORT`) responses hold."""
    hits = 0
    for line in untagged.split(b"\r\n"):
        if line.startswith(b"* " + name):
            hits += len(line.split()) - 2
    return hits


async def run_queries(label: str, port: int, user: str, password: str, repeat: int,
                      count: int) -> tuple[dict[str, Timed], float]:
    conn = await ImapConnection.connect(port)
    results: dict[str, Timed] = {}
    try:
        reply = await conn.login(user, password)
        if reply.status != "OK":
            raise BenchError(f"{label}: LOGIN: {reply.text}")
        began = time.perf_counter()
        reply = await conn.command(b"SELECT INBOX")
        select_seconds = time.perf_counter() - began
        if reply.status != "OK":
            raise BenchError(f"{label}: SELECT: {reply.text}")
        if conn.exists != count:
            raise BenchError(f"{label}: INBOX has {conn.exists:,} messages, not {count:,}")
        log(f"{label}: SELECT INBOX ({conn.exists:,} messages) took {1000 * select_seconds:,.0f} ms")
        for key, _name, command, _ in QUERIES:
            t = results[key] = Timed()
            for attempt in range(repeat):
                async with asyncio.timeout(COMMAND_TIMEOUT):
                    status, line, untagged, seconds = await bulk_command(conn, command.encode())
                t.status, t.text = status, line
                if status != "OK":
                    break
                t.seconds.append(seconds)
                t.lines = untagged.count(b"\r\n")
                t.octets = len(untagged)
                if command.startswith(("SEARCH", "SORT")):
                    t.hits = search_hits(untagged, command.split()[0].encode())
                log(f"{label}: {command}: {1000 * seconds:,.1f} ms" + (" (first, cold)" if attempt == 0 else "")
                    + (f", {t.hits:,} hits" if t.hits is not None else f", {t.lines:,} lines, {t.octets / MB:,.1f} MB"))
            if t.status != "OK":
                log(f"{label}: {command}: {t.text[:200]}")
        results["probe"] = await probe_latency(label, conn, port, user, password, repeat)
        await conn.command(b"LOGOUT")
    finally:
        conn.close()
    return results, select_seconds


# While one session searches, another keeps asking: how long do its commands wait?
PROBE_SEARCHES = (f"SEARCH TEXT {COMMON_WORD}", f"SEARCH BODY {SHORT_NEEDLE}", f"SEARCH TEXT {RARE_WORD}")
PROBE_COMMANDS = (b"NOOP", b"FETCH %d (FLAGS)", b"STATUS INBOX (MESSAGES UNSEEN)")
PROBE_PAUSE = 0.02


async def probe_latency(label: str, searcher: ImapConnection, port: int, user: str, password: str,
                        repeat: int) -> Timed:
    """Round trips of a second session's NOOP, FETCH and STATUS (each after a 20 ms pause) while
    the first session runs PROBE_SEARCHES `repeat` times; `seconds` holds every round trip."""
    other = await ImapConnection.connect(port)
    probe = Timed()
    try:
        reply = await other.login(user, password)
        if reply.status != "OK":
            raise BenchError(f"{label}: LOGIN of the second session: {reply.text}")
        await other.command(b"SELECT INBOX")
        exists = max(other.exists, 1)

        async def search() -> None:
            for _ in range(repeat):
                for command in PROBE_SEARCHES:
                    async with asyncio.timeout(COMMAND_TIMEOUT):
                        await bulk_command(searcher, command.encode())

        searching = asyncio.create_task(search())
        n = 0
        while not searching.done():
            await asyncio.sleep(PROBE_PAUSE)
            command = PROBE_COMMANDS[n % len(PROBE_COMMANDS)]
            if b"%d" in command:
                command %= 1 + (n * 7919) % exists
            began = time.perf_counter()
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await other.command(command)
            probe.seconds.append(time.perf_counter() - began)
            n += 1
        await searching
        probe.status = "OK"
        log(f"{label}: second session during {len(PROBE_SEARCHES) * repeat} searches: {len(probe.seconds)} commands, "
            f"max {ms(max(probe.seconds, default=0))}, p99 {ms(percentile(probe.seconds, 0.99))}")
        await other.command(b"LOGOUT")
    finally:
        other.close()
    return probe


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- the targets ------------------------------------------------------------------------------

@dataclass
class SearchResult:
    queries: dict[str, Timed]
    prepared: str  # how the mailbox was filled / indexed, for the line
    problems: list[str]
    rss: int


def check(results: dict[str, Timed], count: int, rare: int) -> list[str]:
    problems = []
    r = results["rare"]
    if r.status == "OK" and r.hits != rare:
        problems.append(f"SEARCH TEXT {RARE_WORD} found {r.hits} messages, not {rare}")
    f = results["fetch"]
    if f.status == "OK" and f.lines != count:
        problems.append(f"FETCH 1:* returned {f.lines:,} lines for {count:,} messages")
    s = results["sort"]
    if s.status == "OK" and s.hits != count:
        problems.append(f"SORT returned {s.hits} numbers for {count:,} messages")
    for key, _name, command, _ in QUERIES:
        t = results[key]
        if t.status != "OK" and key != "thread":
            problems.append(f"{command}: {t.text[:200]}")
    return problems


def postoffice_data(args: argparse.Namespace, mboxes: list[tuple[Path, int]], env: dict[str, str],
                    cleanups: Cleanups) -> tuple[Path, dict]:
    """A data dir with the mailbox, fully indexed: the cached one (copied), or one built now
    (and kept in the cache afterwards)."""
    total = sum(n for _, n in mboxes)
    cache = args.cache_dir / f"imap-search-{template_key()}-{args.count}-{args.seed}-{args.rare}"
    tmp = scratch_dir("imap-search-postoffice-", "postoffice", args.keep, cleanups)
    data = tmp / "data"
    if args.fresh:
        shutil.rmtree(cache, ignore_errors=True)
    info_path = cache / "info.json"
    if info_path.exists():
        started = time.monotonic()
        copy_data_dir(cache / "data", data)
        info = json.loads(info_path.read_text())
        log(f"postoffice: copied the indexed data dir from {cache} in {time.monotonic() - started:.0f} s "
            f"(built {info['built']}: import {info['import_seconds']:.0f} s, indexing {info['index_seconds']:.0f} s)")
        info["cached"] = True
        return data, info
    started = time.monotonic()
    run_postoffice(env, "init", "--data", str(data), "--domain", DOMAIN, "--hostname", f"mail.{DOMAIN}")
    add_users(env, data, 1, "argon2")
    log(f"postoffice: importing {total:,} messages into user1@{DOMAIN} ...")
    for path, n in mboxes:
        import_mbox(env, data, path, f"user1@{DOMAIN}", n)
    import_seconds = time.monotonic() - started
    log(f"postoffice: imported in {import_seconds:.0f} s ({total / import_seconds:,.0f} msg/s)")
    return data, {"import_seconds": import_seconds, "index_seconds": None, "cached": False,
                  "built": time.strftime("%Y-%m-%d %H:%M"), "cache": str(cache)}


def wait_indexed(data: Path, label: str) -> float:
    started = time.monotonic()
    next_report = started + 30
    while True:
        counts = unindexed(data)
        if counts is not None and counts[0] == 0:
            return time.monotonic() - started
        now = time.monotonic()
        if now >= next_report and counts is not None:
            done = counts[1] - counts[0]
            log(f"{label}: {done:,}/{counts[1]:,} blobs indexed after {now - started:.0f} s "
                f"({done / (now - started):,.0f}/s)")
            next_report = now + 30
        if now - started > INDEX_TIMEOUT:
            raise BenchError(f"{label}: the full-text index was not complete after {INDEX_TIMEOUT:.0f} s")
        time.sleep(1.0)


def bench_postoffice(args: argparse.Namespace, mboxes: list[tuple[Path, int]],
                     cleanups: Cleanups) -> SearchResult:
    env = postoffice_env()
    data, info = postoffice_data(args, mboxes, env, cleanups)
    port = free_port()
    server = start_postoffice(data, env, {"imap": port}, cleanups, profile=args.profile, stop_timeout=STOP_TIMEOUT)
    if not info["cached"]:
        log("postoffice: waiting for the background full-text indexing ...")
        info["index_seconds"] = wait_indexed(data, "postoffice")
        total = sum(n for _, n in mboxes)
        log(f"postoffice: full-text index complete {info['index_seconds']:.0f} s after the server started "
            f"({total / max(info['index_seconds'], 1e-9):,.0f} msg/s)")
    else:
        left = unindexed(data)
        if left and left[0]:
            log(f"postoffice: {left[0]:,} blobs not indexed in the cached copy; waiting ...")
            wait_indexed(data, "postoffice")
    # With a large store the idle server polls for about 5% of a core (see the README), so
    # "idle" here means under 15% of a core.
    wait_idle(server.monitor, "postoffice", timeout=120, threshold=0.15)
    server.monitor.start()
    count = sum(n for _, n in mboxes)
    try:
        queries, _ = run_async(lambda: run_queries("postoffice", port, f"user1@{DOMAIN}", PASSWORD, args.repeat, count))
    finally:
        server.monitor.stop()
    rss = server.monitor.peak
    finish_postoffice(server, args.profile)
    cache = Path(info["cache"])
    if not info["cached"]:
        # keep the indexed data dir for the next run (a copy, so that --keep still has its own)
        partial = cache.with_name(cache.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        copy_data_dir(data, partial / "data")
        (partial / "info.json").write_text(json.dumps(info) + "\n")
        shutil.rmtree(cache, ignore_errors=True)
        partial.rename(cache)
        log(f"postoffice: indexed data dir kept in {cache} for the next run (--fresh rebuilds it)")
    how = f"import {info['import_seconds']:,.0f} s, index {info['index_seconds']:,.0f} s" + (
        " (cached)" if info["cached"] else "")
    return SearchResult(queries, how, check(queries, count, args.rare), rss)


def bench_dovecot(args: argparse.Namespace, mboxes: list[tuple[Path, int]],
                  cleanups: Cleanups) -> SearchResult:
    dovecot = setup_dovecot(DOVECOT_SEARCH_BASE, keep_mail=not args.fresh)
    marker = dovecot.mail / f".bench-filled-{args.count}-{args.seed}-{args.rare}"
    count = sum(n for _, n in mboxes)
    if not marker.exists():
        shutil.rmtree(dovecot.mail / "user1", ignore_errors=True)
        for old in dovecot.mail.glob(".bench-filled-*"):
            old.unlink()
        started = time.monotonic()
        first = 0
        for path, _n in mboxes:
            messages = load_messages(path)
            fill_maildir(dovecot.mail, "user1", messages, first)
            first += len(messages)
            del messages
        marker.write_text("ok\n")
        log(f"dovecot: wrote {count:,} Maildir files in {time.monotonic() - started:.0f} s under {dovecot.mail}")
        filled = "filled now"
    else:
        log(f"dovecot: reusing the Maildir of {count:,} messages under {dovecot.mail} (--fresh rewrites it)")
        filled = "cached Maildir"
    if args.keep:
        log(f"dovecot: the Maildir stays in {dovecot.mail}")
    start_dovecot(dovecot, cleanups)
    cleanups.append(lambda: stop_dovecot(dovecot))
    assert dovecot.monitor is not None
    dovecot.monitor.start()
    try:
        queries, select_seconds = run_async(lambda: run_queries("dovecot", dovecot.imap_port, "user1", DOVECOT_PASSWORD,
                                                                args.repeat, count))
    finally:
        dovecot.monitor.stop()
    return SearchResult(queries, f"{filled}, SELECT {select_seconds:,.1f} s", check(queries, count, args.rare),
                        dovecot.monitor.peak)


# --- main -------------------------------------------------------------------------------------

TARGETS = ("postoffice", "dovecot")


def ms(seconds: float) -> str:
    return f"{1000 * seconds:,.0f} ms" if seconds >= 0.01 else f"{1000 * seconds:,.1f} ms"


def summary(label: str, r: SearchResult) -> str:
    items = []
    for key, name, _, _ in QUERIES:
        t = r.queries.get(key)
        if t is None:
            continue
        if t.status != "OK":
            items.append("THREAD not supported" if key == "thread" else f"{name} {t.status}")
        else:
            items.append(f"{name} {ms(t.median)}")
    probe = r.queries.get("probe")
    if probe is not None and probe.seconds:
        items.append(f"other session during SEARCH max {ms(max(probe.seconds))} p99 {ms(percentile(probe.seconds, 0.99))}")
    text = f"{label} ({r.prepared}) " + ", ".join(items) + f", rss {r.rss / MB:,.0f} MB"
    if r.problems:
        text += f" (WRONG: {r.problems[0]})"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="IMAP SEARCH TEXT (rare and common word), SEARCH BODY (two characters, a phrase), "
                    "FETCH 1:* (FLAGS UID), THREAD REFERENCES and ORDEREDSUBJECT, SORT (REVERSE DATE), "
                    "SEARCH FROM/SUBJECT on a --count-message INBOX, and a second session's round trips "
                    "while searches run, postoffice (full-text index) and the "
                    "reference Dovecot (no FTS plugin); prints one result line, PASS if postoffice's rare "
                    "word < 100 ms, FETCH < 1 s, THREAD and SORT < 2 s, common word and two characters "
                    "< 1 s, the second session's commands < 100 ms. Progress on stderr. "
                    "Exit status: 0 PASS, 1 FAIL, 2 no verdict.",
        epilog="Example: .venv/bin/python bench/imap_search.py --count 5000 --targets postoffice",
    )
    parser.add_argument("--count", type=int, default=100_000, help="gen_mbox.py messages (default 100000)")
    parser.add_argument("--rare", type=int, default=5, help=f"messages with the word {RARE_WORD} (default 5)")
    parser.add_argument("--seed", type=int, default=42, help="gen_mbox.py seed (default 42)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command; the median counts (default 3)")
    add_targets_argument(parser, TARGETS)
    parser.add_argument("--fresh", action="store_true",
                        help="rebuild the cached postoffice data dir and Dovecot Maildir")
    parser.add_argument("--keep", action="store_true", help="keep this run's postoffice data dir")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                        help="where the mboxes and the indexed data dir are kept (default /tmp/postoffice-bench)")
    add_profile_argument(parser)
    args = parser.parse_args(argv)
    targets = parse_targets(parser, args.targets, TARGETS)
    if args.count < 1 or args.rare < 1 or args.repeat < 1:
        parser.error("--count, --rare and --repeat must be positive")
    head = f"imap_search: n={args.count + args.rare}"
    try:
        mboxes = [(prepare_mbox(args.cache_dir, args.count, args.seed), args.count),
                  (rare_mbox(args.cache_dir, args.rare), args.rare)]
    except (BenchError, OSError) as exc:
        print(f"{head} | ERROR: {str(exc).splitlines()[0]}", flush=True)
        return 2

    results: dict[str, SearchResult | str] = run_targets(targets, lambda target, cleanups: (
        bench_postoffice(args, mboxes, cleanups) if target == "postoffice"
        else bench_dovecot(args, mboxes, cleanups)), (BenchError, TimeoutError))

    parts = [head]
    for target in targets:
        r = results[target]
        parts.append(f"{target} {r}" if isinstance(r, str) else summary(target, r))
    po = results.get("postoffice")
    if isinstance(po, SearchResult) and not po.problems:
        missed, unsupported = [], False
        for key, name, _, target_seconds in QUERIES:
            t = po.queries[key]
            if target_seconds is None:
                continue
            if t.status != "OK":
                unsupported = True
            elif t.median >= target_seconds:
                missed.append(f"{name} >= {ms(target_seconds)}")
        probe = po.queries.get("probe")
        if probe is not None and probe.seconds and max(probe.seconds) >= PROBE_TARGET:
            missed.append(f"other session waited >= {ms(PROBE_TARGET)}")
        note = " (THREAD not supported)" if unsupported else ""
        verdict, status = (f"FAIL ({', '.join(missed)}){note}", 1) if missed else (f"PASS{note}", 0)
    elif isinstance(po, SearchResult):
        verdict, status = "n/a (postoffice answered wrongly)", 2
    else:
        verdict, status = "n/a (no postoffice result)", 2
    parts.append(verdict)
    print(" | ".join(parts), flush=True)
    return status


if __name__ == "__main__":
    run_main(main, "imap_search")
