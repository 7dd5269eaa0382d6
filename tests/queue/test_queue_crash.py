"""SIGKILL `serve` while its queue runner works through queued mail for local users, restart:
every message arrives, none is lost; a message in flight at a kill may arrive twice (its copy
was committed, its queue row not yet: RFC 1047's duplicate), never more."""
from __future__ import annotations

import collections
import contextlib
import json
import random
import sqlite3
import time
from pathlib import Path

from cli_run import po
from serve_process import Serve, enqueue, init_data, subjects_in_inbox

ALICE, BOB = "alice@example.org", "bob@example.org"
MESSAGES = 300
KILLS = 3
CONCURRENCY = 20


def queued(data: Path) -> int:
    return len(json.loads(po("queue", "list", "--json", data=data).stdout))


def queued_now(data: Path) -> int:
    """Queue rows left, read straight from the store's file: polled every few milliseconds, where
    the CLI would take a few hundred."""
    with contextlib.closing(sqlite3.connect(f"file:{data / 'store.sqlite3'}?mode=ro", uri=True, timeout=10)) as db:
        return int(db.execute("SELECT count(*) FROM queue").fetchone()[0])


def test_sigkill_at_random_points_loses_nothing_and_duplicates_at_most_what_was_in_flight(tmp_path: Path) -> None:
    data = init_data(tmp_path / "data", (ALICE, BOB), outbound=f"concurrency = {CONCURRENCY}")
    enqueue(data, [(ALICE, f"From: <{ALICE}>\r\nSubject: crash {n}\r\n\r\n{'x' * 2000}\r\n".encode(), [BOB])
                   for n in range(MESSAGES)])
    rng = random.Random()
    interrupted = 0
    for _ in range(KILLS):
        # Kill at a random point of the run's progress, not of wall time: a fast machine drains
        # 300 local messages in well under a second, before a timed kill would land.
        before = queued_now(data)
        target = rng.randint(before // 5, before * 4 // 5)
        server = Serve(data).reading()
        try:
            deadline = time.monotonic() + 60
            while queued_now(data) > target:
                assert server.proc.poll() is None, f"serve exited before the kill:\n{server.log_text()}"
                assert time.monotonic() < deadline, f"the queue did not get down to {target} in a minute"
                time.sleep(0.002)
        finally:
            server.kill()
        assert "Traceback" not in server.log_text(), server.log_text()
        left = queued(data)
        interrupted += 0 < left < before  # the runner had delivered some, and not all
    assert interrupted >= 1, "every kill came after the queue emptied: the test proved nothing; queue more"
    server = Serve(data).started()
    try:
        deadline = time.monotonic() + 120
        while queued(data) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert queued(data) == 0, "the queue did not empty within two minutes of the last restart"
    finally:
        log = server.stop()
    assert "Traceback" not in log, log
    counts = collections.Counter(subjects_in_inbox(data, BOB))
    missing = [n for n in range(MESSAGES) if counts[f"crash {n}"] == 0]
    assert missing == [], f"lost: {missing}"
    assert max(counts.values()) <= 2  # at most one duplicate per message
    duplicates = sum(counts.values()) - MESSAGES
    assert duplicates <= KILLS * CONCURRENCY, duplicates
    print(f"{MESSAGES} messages, {KILLS} kills ({interrupted} mid-run): {duplicates} duplicate(s)")
