"""SIGKILL `serve` at three random points while its queue runner sends 500 queued messages to
another server over SMTP, restart it each time: every message arrives, none is lost, and at
most one arrives twice per kill (issue 15, "Crash").

The receiving server is a small SMTP sink in a thread of this test process (tests/queue/
peer_host.py), so what it recorded outlives the killed sender. A duplicate is a message the
sink took (its 250 sent) whose queue entry the killed sender had not yet removed: RFC 1047's
window, one per message in flight. The sender keeps one connection to the sink
(`destination_concurrency = 1`), so one message is in flight at a time and "one per kill" is
the bound to check; with more connections the bound is one per connection."""
from __future__ import annotations

import collections
import json
import random
import re
import time
from collections.abc import Callable
from pathlib import Path

from peer_host import PeerHost, Record, greet, take_mail

from cli_run import po
from serve_process import Serve, enqueue, init_data

SENDER = "alice@example.org"
SINK = "127.0.0.1"
MESSAGES = 500
KILLS = 3
SECONDS = 180  # for the whole run; the deliveries themselves take far less


def queued(data: Path) -> int:
    return len(json.loads(po("queue", "list", "--json", data=data).stdout))


def message_ids(record: Record) -> list[str]:
    found = []
    for content in list(record.messages):
        match = re.search(rb"^Message-ID: <([^>]+)>\r$", content, re.M)
        found.append(match.group(1).decode() if match else "")
    return found


def wait_for(check: Callable[[], bool], what: str, timeout: float, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(every)


def test_sigkill_during_outbound_delivery_loses_nothing_and_duplicates_at_most_one_per_kill(
        tmp_path: Path) -> None:
    record = Record()

    async def sink(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await greet(reader, writer, b"250-PIPELINING\r\n")
        await take_mail(reader, writer, record)

    with PeerHost({SINK: sink}) as host:
        data = init_data(tmp_path / "data", (SENDER,), outbound=f"""
            mx_port = {host.port}
            retry_schedule = [1]
            destination_concurrency = 1
            reply_timeout = 10""")
        enqueue(data, [(SENDER, (f"From: <{SENDER}>\r\nTo: <bob@[{SINK}]>\r\nSubject: crash {n}\r\n"
                                 f"Message-ID: <crash-{n}@example.org>\r\n\r\n{'x' * 500}\r\n").encode(),
                        [f"bob@[{SINK}]"]) for n in range(MESSAGES)])
        rng = random.Random()
        started = time.monotonic()
        kills_at = []
        for _ in range(KILLS):
            server = Serve(data).started()
            # A random point in the run: after 1 to 100 more messages have arrived, plus up to
            # 20 ms, which lands anywhere in a message's transaction or its commit.
            target = len(record.messages) + rng.randint(1, 100)
            wait_for(lambda: len(record.messages) >= target, "delivery to the sink", 60)  # noqa: B023
            time.sleep(rng.uniform(0, 0.02))
            server.kill()
            kills_at.append(len(record.messages))
            assert queued(data) > 0, "the queue emptied before the kill: the test proved nothing"
        server = Serve(data).started()
        try:
            everything = {f"crash-{n}@example.org" for n in range(MESSAGES)}
            wait_for(lambda: set(message_ids(record)) >= everything, "every message arriving", SECONDS, 0.2)
            # The last commits may trail the sink's 250s a little; `queue list` is a process.
            wait_for(lambda: queued(data) == 0, "emptying the queue after the last restart", 30, 0.5)
        finally:
            log = server.stop()
        elapsed = time.monotonic() - started
    assert "Traceback" not in log, log
    counts = collections.Counter(message_ids(record))
    missing = [n for n in range(MESSAGES) if counts[f"crash-{n}@example.org"] == 0]
    assert missing == [], f"lost: {missing}"
    assert set(counts) == {f"crash-{n}@example.org" for n in range(MESSAGES)}
    duplicates = sum(counts.values()) - MESSAGES
    assert duplicates <= KILLS, f"{duplicates} duplicates after {KILLS} kills (at {kills_at} messages)"
    print(f"{MESSAGES} messages, kills after {kills_at} had arrived: {duplicates} duplicate(s), {elapsed:.0f} s")
