"""Crash safety of SMTP: a client sends in a loop while `postoffice serve` is SIGKILLed at random
points and restarted. Every message that got 250 must be in the mailbox, intact; none twice."""
from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from live_server import quiet_dns

USER = "crash@example.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_message(n: int, rng: random.Random) -> bytes:
    text = "\r\n".join(f"line {i} {rng.random()}" for i in range(rng.randint(5, 400)))
    digest = hashlib.sha256(text.encode()).hexdigest()
    return (f"From: a@remote.example\r\nTo: {USER}\r\nSubject: crash {n}\r\nMessage-ID: <crash-{n}@test>\r\n"
            f"X-Digest: {digest}\r\n\r\n{text}\r\n").encode()


class Server:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "postoffice", "serve", "--data", str(self.data)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 60
        for line in self.proc.stderr:
            if b"listening: smtp" in line:
                break
            assert time.monotonic() < deadline, "server did not start"
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()  # type: ignore[union-attr]

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


@pytest.mark.timeout(600)
def test_sigkilled_server_keeps_every_acknowledged_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    po = [sys.executable, "-m", "postoffice"]
    subprocess.run([*po, "init", "--data", str(data), "--domain", "example.test", "--hostname", "mail.example.test"], check=True, capture_output=True)
    subprocess.run([*po, "user", "add", USER, "--password-stdin", "--data", str(data)], input=b"crash password 1\n", check=True, capture_output=True)
    port = free_port()
    config = (data / "postoffice.toml").read_text()
    config = re.sub(r"^(submission|submissions|imap|imaps|pop3|pop3s|http|https|managesieve) = .*$", r"\1 = []", config, flags=re.M)
    config = re.sub(r'^smtp = .*$', f'smtp = ["127.0.0.1:{port}"]', config, flags=re.M)
    # Port 25 judges every message through DNS: an answer at once, whatever the machine's resolver.
    config = re.sub(r"^nameservers = .*$", f'nameservers = ["{quiet_dns()}"]', config, flags=re.M)
    (data / "postoffice.toml").write_text(config)

    seed = int(time.time())
    rng = random.Random(seed)
    server = Server(data)
    server.start()
    acknowledged: dict[int, bytes] = {}
    stop = threading.Event()

    def client() -> None:
        n = 0
        crng = random.Random(seed + 1)
        while not stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                    for _ in range(crng.randint(1, 20)):
                        n += 1
                        message = make_message(n, crng)
                        smtp.sendmail("a@remote.example", [USER], message)
                        acknowledged[n] = message  # only after 250
                        if stop.is_set():
                            return
            except (smtplib.SMTPException, OSError):
                time.sleep(0.05)  # the server is down: try again soon, with a new message number

    thread = threading.Thread(target=client)
    thread.start()
    try:
        for _ in range(5):
            time.sleep(rng.uniform(0.3, 1.5))
            server.kill()
            time.sleep(rng.uniform(0.0, 0.3))
            server.start()
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=30)
        server.stop()

    assert len(acknowledged) > 20, "too few messages got through for the test to mean anything"
    conn = sqlite3.connect(data / "store.sqlite3")
    rows = conn.execute(
        "SELECT b.sha256 FROM messages m JOIN blobs b ON b.id = m.blob JOIN mailboxes x ON x.id = m.mailbox_id"
        " WHERE x.name = 'INBOX'"
    ).fetchall()
    conn.close()
    seen: dict[int, int] = {}
    for (sha,) in rows:
        stored = (data / "blobs" / sha[:2] / sha).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == sha
        number = int(re.search(rb"Message-ID: <crash-(\d+)@test>", stored).group(1))  # type: ignore[union-attr]
        seen[number] = seen.get(number, 0) + 1
        body = stored.split(b"\r\n\r\n", 1)[1]
        digest = re.search(rb"X-Digest: (\w+)", stored).group(1).decode()  # type: ignore[union-attr]
        assert hashlib.sha256(body[:-2]).hexdigest() == digest, f"message {number} is corrupt (seed {seed})"
    missing = sorted(set(acknowledged) - set(seen))
    assert not missing, f"seed {seed}: acknowledged with 250 but lost: {missing[:10]}"
    twice = [n for n, count in seen.items() if count > 1]
    assert not twice, f"seed {seed}: stored twice: {twice[:10]}"
