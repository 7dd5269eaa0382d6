"""Bad input (issue 17): 200 fuzzed Sieve scripts give an error with line and column, or a
bounded run; never another exception, never a stuck or unbounded run.

The batch runs in a child Python (sieve_fuzzer.py) under a 2 GB address-space limit and a wall
clock bound, so a case that recurses the interpreter to death, allocates without bound or never
ends fails this test with its name instead of taking pytest down.
"""
from __future__ import annotations

import json
import os
import resource
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sieve_fuzzer import FuzzCase, generate

from live_server import LiveServer

HERE = Path(__file__).resolve().parent
SEED = 1717
COUNT = 200
PER_CASE_SECONDS = 15.0  # compile + run of one case; the interpreter's own CPU bound is 1 s
BATCH_SECONDS = 420.0  # the whole batch on a loaded 2-core machine
MEMORY_LIMIT = 2 << 30  # address space of the child
USER = "alice@example.test"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_batch(seed: int, count: int) -> tuple[list[dict[str, object]], float, str]:
    started = time.monotonic()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / "sieve_fuzzer.py"), str(seed), str(count)],
            capture_output=True, text=True, timeout=BATCH_SECONDS, env=env, preexec_fn=_limit_memory)
        stdout, stderr = done.stdout, done.stderr
    except subprocess.TimeoutExpired as stuck:
        stdout = stuck.stdout.decode() if isinstance(stuck.stdout, bytes) else (stuck.stdout or "")
        stderr = "batch timed out"
    reports = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return reports, time.monotonic() - started, stderr


def test_the_generator_is_seeded_and_covers_every_family() -> None:
    cases = generate(SEED, COUNT)
    assert len(cases) == COUNT
    assert len({c.name for c in cases}) == COUNT
    assert [c.script for c in cases] == [c.script for c in generate(SEED, COUNT)]
    families = {c.name.split("_", 1)[1].rsplit("_", 1)[0].split("_")[0] for c in cases}
    assert {"deep", "huge", "bad", "unterminated", "unknown", "tag", "grammar", "mutation",
            "include", "exponential", "growing", "many"} <= families
    assert any(c.script.count("if true {") >= 1000 for c in cases)  # 1,000 levels and more
    assert any(len(c.script) >= 1 << 20 for c in cases)  # 1 MB strings
    assert any("\udcff" in c.script or "\udcc3" in c.script for c in cases)  # bad UTF-8
    assert any(c.includes and "cycle" in c.name for c in cases)


@pytest.mark.timeout(BATCH_SECONDS + 60)
def test_fuzzed_scripts_error_with_position_or_run_bounded() -> None:
    reports, elapsed, stderr = run_batch(SEED, COUNT)
    names = [c.name for c in generate(SEED, COUNT)]
    assert len(reports) == COUNT, (
        f"the batch stopped after {len(reports)} cases; next: "
        f"{names[len(reports)] if len(reports) < COUNT else '?'}; stderr: {stderr[-2000:]}")
    crashes = [r for r in reports if r["outcome"] == "crash"]
    assert not crashes, "\n".join(f"{r['name']}: {r['where']}: {r['error']}\n{r['trace']}" for r in crashes[:5])
    for report in reports:
        assert report["seconds"] < PER_CASE_SECONDS, report
        if report["outcome"] == "error":
            line, column = int(report["line"]), int(report["column"])
            assert 1 <= line <= int(report["lines"]), report
            assert 1 <= column <= int(report["line_length"]) + 1, report
    assert elapsed < BATCH_SECONDS
    errors = sum(r["outcome"] == "error" for r in reports)
    ran = sum(r["outcome"] == "ran" for r in reports)
    print(f"fuzz: {COUNT} scripts, {errors} errors with a position, {ran} bounded runs, "
          f"{elapsed:.1f} s, slowest {max(float(r['seconds']) for r in reports):.2f} s")
    # The families exist to reach both sides: the parser's errors and the interpreter's bounds.
    assert errors >= 50 and ran >= 30


# ---- the same scripts at a real delivery -------------------------------------------------

DELIVERY_SECONDS = 900.0  # 200 SMTP transactions, each running one fuzzed script


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["smtp"]).start()
    live.add_user(USER)
    yield live
    live.stop()


def store_scripts(server: LiveServer, case: FuzzCase) -> None:
    """The case's script as the user's active one, its includes beside it (as ManageSieve
    would store them, without checking: delivery must cope with a bad stored script)."""
    assert server.services is not None
    services = server.services

    async def put() -> None:
        account = await services.directory.get_user(USER)
        assert account is not None
        for name, text in case.includes.items():
            await services.store.put_sieve_script(account.id, name, text)
        await services.store.put_sieve_script(account.id, "fuzz", case.script)
        await services.store.activate_sieve_script(account.id, "fuzz")

    server.call(put())


def storable(case: FuzzCase) -> bool:
    """Scripts the store can hold: text that is UTF-8 (ManageSieve refuses other bytes)."""
    try:
        for text in (case.script, *case.includes.values()):
            text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.timeout(DELIVERY_SECONDS + 60)
def test_fuzzed_scripts_at_smtp_delivery_keep_the_mail_and_the_session(server: LiveServer) -> None:
    """One SMTP session, one message per fuzzed script: each gets a final reply (250, or 5xx
    when the script rejects), never a 4xx or a dropped connection; a script that does not
    compile leaves its message in INBOX (implicit keep)."""
    cases = [c for c in generate(SEED, COUNT) if storable(c)]
    compiles = {c.name: compiled(c) for c in cases}
    started = time.monotonic()
    replies: dict[str, int] = {}
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=120) as client:
        client.ehlo("client.remote.example")
        for case in cases:
            store_scripts(server, case)
            raw = (f"From: Carol <carol@remote.example>\r\nTo: {USER}\r\nSubject: fuzz {case.name}\r\n"
                   f"Message-ID: <{case.name}@remote.example>\r\nDate: Fri, 04 Dec 2026 09:30:00 +0000\r\n"
                   f"\r\nHello budget.\r\n").encode()
            try:
                client.sendmail("carol@remote.example", [USER], raw)
                replies[case.name] = 250
            except smtplib.SMTPDataError as refused:
                replies[case.name] = refused.smtp_code
            except smtplib.SMTPRecipientsRefused as refused:
                replies[case.name] = next(iter(refused.recipients.values()))[0]
        assert client.noop()[0] == 250
    elapsed = time.monotonic() - started
    temporary = {name: code for name, code in replies.items() if not (code == 250 or 500 <= code < 600)}
    assert not temporary, temporary
    inbox = {line.split(b"Subject: fuzz ", 1)[1].split(b"\r\n", 1)[0].decode()
             for line in server.messages(USER) if b"Subject: fuzz " in line}
    lost = [name for name, ok in compiles.items() if not ok and name not in inbox]
    assert not lost, f"scripts that do not compile lost their message: {lost[:10]}"
    print(f"fuzz at delivery: {len(cases)} transactions in {elapsed:.1f} s, "
          f"{sum(not ok for ok in compiles.values())} bad scripts kept in INBOX, "
          f"{sum(500 <= c < 600 for c in replies.values())} refused by the script")
    assert elapsed < DELIVERY_SECONDS


def compiled(case: FuzzCase) -> bool:
    from postoffice.filtering.sieve import SieveError, compile_script

    try:
        compile_script(case.script, name="fuzz", include_loader=lambda name, _global: case.includes.get(name))
    except SieveError:
        return False
    return True
