"""A real `postoffice serve` process on an initialised data directory without listeners, for the
tests that need the server as users run it: the queue runner (CLI against it, SIGKILL), ACME."""
from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from cli_run import po
from live_server import quiet_dns
from postoffice.delivery import Envelope, deliver_message
from postoffice.directory import Directory
from postoffice.store import open_store
from postoffice.store.interface import OutboundMessage, QueuedRecipient

DOMAIN = "example.org"
PASSWORD = "correct horse battery staple"


def init_data(data: Path, users: tuple[str, ...], outbound: str = "") -> Path:
    po("init", "--domain", DOMAIN, "--hostname", "mail.example.org", data=data)
    for user in users:
        po("user", "add", user, "--password-stdin", data=data, stdin=PASSWORD + "\n")
    config = (data / "postoffice.toml").read_text()
    config = re.sub(r"^(smtp|submission|submissions|imap|imaps|pop3|pop3s|http|https|managesieve) = .*$", r"\1 = []", config, flags=re.M)
    # The runner routes remote recipients through DNS: never the machine's resolver in tests.
    config = re.sub(r"^nameservers = .*$", f'nameservers = ["{quiet_dns()}"]', config, flags=re.M)
    if outbound:  # replace the [outbound] keys given
        for line in outbound.strip().splitlines():
            key = line.split("=", 1)[0].strip()
            config = re.sub(rf"^{key} = .*$", line, config, flags=re.M)
    (data / "postoffice.toml").write_text(config)
    return data


def enqueue(data: Path, messages: list[tuple[str, bytes, list[str]]]) -> list[int]:
    """Queue (sender, raw, recipients) entries through the store, as SMTP does for remote
    recipients and forwards."""
    async def put() -> list[int]:
        store = open_store("sqlite", data / "store.sqlite3", data / "blobs")
        try:
            directory = Directory(store)
            ids = []
            for sender, raw, recipients in messages:
                outbound = OutboundMessage(sender, tuple(QueuedRecipient(r) for r in recipients))
                report = await deliver_message(store, directory, Envelope(sender, ()), raw, outbound=outbound)
                assert report.queue_id is not None
                ids.append(report.queue_id)
            return ids
        finally:
            await store.close()
    return asyncio.run(put())


def subjects_in_inbox(data: Path, user: str) -> list[str]:
    async def read() -> list[str]:
        store = open_store("sqlite", data / "store.sqlite3", data / "blobs")
        try:
            account = await Directory(store).get_user(user)
            assert account is not None
            box = await store.get_mailbox(account.id, "INBOX")
            assert box is not None
            out = []
            for m in await store.list_messages(box.id):
                raw = await store.read_blob(m.blob)
                found = re.search(rb"^Subject: (.*?)\r?$", raw, re.M)
                out.append(found.group(1).decode() if found else "")
            return out
        finally:
            await store.close()
    return asyncio.run(read())


class Serve:
    """`postoffice serve --data DATA` in a process of its own (``env``: variables added to this
    process's environment); `started` waits for its ready line."""

    def __init__(self, data: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "postoffice", "serve", "--data", str(data)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env={**os.environ, "COLUMNS": "300", **(env or {})})
        self.log = b""
        self._reader: threading.Thread | None = None

    def reading(self) -> Serve:
        """Keep reading the log into `log` from a thread, without waiting for the ready line: a
        server whose log outgrew the pipe (64 KiB, a few hundred deliveries) would otherwise
        block in its next write to stderr. Once: a second call changes nothing."""
        if self._reader is None:
            self._reader = threading.Thread(target=self._read_log, daemon=True)
            self._reader.start()
        return self

    def started(self, timeout: float = 60) -> Serve:
        self.reading()
        deadline = time.monotonic() + timeout
        while b"is serving" not in self.log:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.kill()
                self._join_reader(5)
                raise AssertionError(f"serve did not start:\n{self.log.decode(errors='replace')}")
            time.sleep(0.1)
        return self

    def _join_reader(self, timeout: float) -> None:
        if self._reader is not None:
            self._reader.join(timeout)

    def _read_log(self) -> None:
        stderr = self.proc.stderr
        assert stderr is not None
        while chunk := stderr.read1(65536):
            self.log += chunk

    def log_text(self) -> str:
        """The log so far."""
        return self.log.decode(errors="replace")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)

    def stop(self, timeout: float = 60) -> str:
        """SIGTERM, wait for a clean exit; the whole log."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("serve did not stop within a minute of SIGTERM") from None
        self._join_reader(10)
        assert self.proc.returncode == 0, self.log_text()
        return self.log_text()
