"""Crash safety: SIGKILL `postoffice import` at random points, then prove nothing reported is lost.

Every message the importer reported as stored (a JSON line, written after its batch committed)
must be present and intact after the kill; no message row may point to a missing blob file; and a
final run completes the import without duplicates.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

COUNT = 5000
USER = "crash@example.test"


def write_mbox(path: Path, count: int) -> None:
    rng = random.Random(5)
    words = ["alpha", "beta", "gamma", "delta", "mail", "queue", "disk", "fsync", "crash", "power", "cut", "journal"]
    with open(path, "wb") as f:
        for i in range(count):
            body = "\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(rng.randint(3, 40)))
            f.write(
                f"From sender@example.org Mon Jan  1 00:00:00 2024\n"
                f"From: Sender <sender@example.org>\nTo: {USER}\nSubject: message {i}\n"
                f"Message-ID: <crash-{i}@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\n"
                f"{body}\nend of {i}\n\n".encode()
            )


def cli(*args: str, data: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postoffice", *args, "--data", str(data)],
        input=stdin, capture_output=True, text=True, timeout=300, check=True,
    )


def run_import(mbox: Path, data: Path, *, kill_at_line: int | None = None, kill_after: float | None = None,
               delay: float = 0.0) -> tuple[list[dict], bool]:
    """Run an import and SIGKILL its whole process group (workers too) when told:
    after `kill_at_line` reported messages plus `delay` seconds, or after `kill_after` seconds."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "postoffice", "import", "mbox", str(mbox), "--into", USER, "--json", "--data", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    lines: list[bytes] = []
    reached = threading.Event()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if kill_at_line is not None and len(lines) >= kill_at_line:
                reached.set()
        reached.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if kill_at_line is not None:
        reached.wait(timeout=300)
        time.sleep(delay)
    elif kill_after is not None:
        time.sleep(kill_after)
    killed = False
    if proc.poll() is None and (kill_at_line is not None or kill_after is not None):
        os.killpg(proc.pid, signal.SIGKILL)
        killed = True
    proc.wait(timeout=300)
    reader.join(timeout=10)
    if not killed:
        assert proc.returncode == 0, proc.stderr.read().decode()  # type: ignore[union-attr]
    # A line cut by the kill was never complete, so it was never "reported".
    events = []
    for i, line in enumerate(lines):
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            assert i == len(lines) - 1
    return events, killed


def check_store(data: Path) -> dict[str, int]:
    """Every message row's blob file exists and hashes to its name; returns sha -> count in INBOX."""
    conn = sqlite3.connect(data / "store.sqlite3")
    rows = conn.execute(
        "SELECT b.sha256, b.size FROM messages m JOIN blobs b ON b.id = m.blob"
        " JOIN mailboxes x ON x.id = m.mailbox_id WHERE x.name = 'INBOX'"
    ).fetchall()
    conn.close()
    counts: dict[str, int] = {}
    for sha, size in rows:
        blob = data / "blobs" / sha[:2] / sha
        assert blob.is_file(), f"message row points to missing blob {sha}"
        content = blob.read_bytes()
        assert len(content) == size and hashlib.sha256(content).hexdigest() == sha, f"blob {sha} is corrupt"
        counts[sha] = counts.get(sha, 0) + 1
    return counts


@pytest.mark.timeout(900)
def test_sigkilled_import_loses_nothing_reported_and_resumes_without_duplicates(tmp_path: Path) -> None:
    mbox = tmp_path / "big.mbox"
    write_mbox(mbox, COUNT)
    data = tmp_path / "data"
    cli("init", "--domain", "example.test", "--hostname", "mail.example.test", data=data)
    cli("user", "add", USER, "--password-stdin", data=data, stdin="crash test password\n")

    seed = int(time.time())
    rng = random.Random(seed)
    reported: dict[str, str] = {}  # source id -> sha256
    kills = 0
    # The first kill lands early (start-up, first parse batches); later ones after a random
    # number of reported messages plus a random delay, so at any phase of a batch.
    # Bounded so that the four rounds together stay well short of COUNT: every kill lands mid-import.
    plans = [{"kill_after": rng.uniform(0.2, 0.6)}]
    plans += [{"kill_at_line": rng.randint(1, 700), "delay": rng.uniform(0, 0.05)} for _ in range(3)]
    for plan in plans:
        events, killed = run_import(mbox, data, **plan)
        kills += killed
        for event in events:
            if "stored" in event:
                reported[event["stored"]] = event["sha256"]
        present = check_store(data)
        missing = [sid for sid, sha in reported.items() if sha not in present]
        assert not missing, f"seed {seed}: {len(missing)} messages reported as stored are gone after SIGKILL"
        assert all(n == 1 for n in present.values()), f"seed {seed}: a message was stored twice"
    assert kills >= 3, "the runs finished before being killed: the test proved nothing"
    assert len(reported) > 0

    events, killed = run_import(mbox, data)
    assert not killed
    done = events[-1]["done"]
    present = check_store(data)
    assert len(present) == COUNT and all(n == 1 for n in present.values())
    assert done["stored"] + done["duplicates"] == COUNT
    # The store holds exactly the mbox's messages, byte for byte (CRLF-normalised).
    from postoffice.transfer.mbox import read_mbox

    expected = {hashlib.sha256(m.raw).hexdigest() for m in read_mbox(mbox)}
    assert expected == set(present)
    # Re-running once more adds nothing.
    events, _ = run_import(mbox, data)
    assert events[-1]["done"]["stored"] == 0
    assert len(check_store(data)) == COUNT
