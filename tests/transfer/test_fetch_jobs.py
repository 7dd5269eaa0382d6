"""Scheduled pulls: `postoffice fetch add` makes a job that a real `postoffice serve` runs into a
local account (here POP3 with --delete-after, like getmail's delete); `fetch list` shows its
result without the password; `fetch remove` ends it."""

from __future__ import annotations

import asyncio
import imaplib
import json
import logging
import stat
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pytest
from fetch_kit import fill_store

from cli_run import po
from live_server import PASSWORD, LiveServer
from postoffice.directory import Directory
from postoffice.store import open_store
from postoffice.transfer.fetch_jobs import FetchJob, run_job
from serve_process import Serve, init_data, subjects_in_inbox

USER = "bob@example.test"
CAROL = "carol@example.org"


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "remote", ["pop3"]).start()
    live.add_user(USER)
    fill_store(live, USER, "INBOX", 15)
    try:
        yield live
    finally:
        live.stop()


def test_serve_runs_a_scheduled_pop3_pull_with_delete_after(remote: LiveServer, tmp_path: Path) -> None:
    data = init_data(tmp_path / "data", (CAROL,))
    url = f"pop3://{quote(USER)}@127.0.0.1:{remote.ports['pop3']}?tls=none"
    added = json.loads(po("fetch", "add", url, "--into", CAROL, "--every", "5", "--delete-after", "--json",
                          data=data, env={"POSTOFFICE_FROM_PASSWORD": PASSWORD}).stdout)
    assert added["id"] == 1 and "password" not in added
    assert stat.S_IMODE((data / "fetch-jobs.json").stat().st_mode) == 0o600
    missing = po("fetch", "add", url, "--into", "nobody@example.org", data=data, check=False,
                 env={"POSTOFFICE_FROM_PASSWORD": PASSWORD})
    assert missing.returncode == 1 and "no user nobody@example.org" in missing.stderr

    server = Serve(data).started()
    try:
        deadline = time.monotonic() + 90
        while len(subjects_in_inbox(data, CAROL)) < 15 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert sorted(subjects_in_inbox(data, CAROL)) == sorted(f"INBOX #{n}" for n in range(15))
        deadline = time.monotonic() + 30
        while remote.messages(USER) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert remote.messages(USER) == []  # --delete-after
    finally:
        log = server.stop()
    assert "fetch job 1" in log
    (job,) = json.loads(po("fetch", "list", "--json", data=data).stdout)
    assert job["last_result"]["copied"] == 15 and job["last_error"] is None and "password" not in job
    po("fetch", "remove", "1", data=data)
    assert json.loads(po("fetch", "list", "--json", data=data).stdout) == []
    assert po("fetch", "remove", "1", data=data, check=False).returncode == 1


def test_a_scheduled_run_logs_the_warnings_fetch_would_print(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Unattended, the log is where a person reads them (here: copies of messages removed at
    the source, kept here): at WARNING when new since the job's last run, else at INFO."""
    live = LiveServer(tmp_path / "remote", ["imap"]).start()
    try:
        live.add_user(USER)
        fill_store(live, USER, "INBOX", 3)
        data = init_data(tmp_path / "data", (CAROL,))
        job = FetchJob(7, f"imap://{quote(USER)}@127.0.0.1:{live.ports['imap']}?tls=none", CAROL, password=PASSWORD)

        def run(job: FetchJob) -> dict[int, list[str]]:
            """Messages logged by the run, by level."""
            async def go() -> None:
                store = open_store("sqlite", data / "store.sqlite3", data / "blobs")
                try:
                    await run_job(store, Directory(store), data, job)
                finally:
                    await store.close()

            caplog.clear()
            with caplog.at_level(logging.INFO, logger="postoffice.fetch"):
                asyncio.run(go())
            logged: dict[int, list[str]] = {logging.INFO: [], logging.WARNING: []}
            for record in caplog.records:
                logged.setdefault(record.levelno, []).append(record.getMessage())
            return logged

        def expunge_first() -> None:
            with imaplib.IMAP4("127.0.0.1", live.ports["imap"]) as imap:
                imap.login(USER, PASSWORD)
                imap.select("INBOX")
                imap.store("1", "+FLAGS", "\\Deleted")
                imap.expunge()

        assert run(job)[logging.WARNING] == []
        assert len(subjects_in_inbox(data, CAROL)) == 3
        expunge_first()
        removed = "INBOX: 1 message(s) copied earlier were removed at the source"
        warned = [w for w in run(job)[logging.WARNING] if removed in w]
        assert len(warned) == 1 and warned[0].startswith(f"fetch job 7 ({job.url} into {CAROL}): "), warned
        expunge_first()  # the same sentence again, which the job's last result already holds
        said = warned[0].removeprefix(f"fetch job 7 ({job.url} into {CAROL}): ")
        again = run(replace(job, last_result={"warnings": [said]}))
        assert not [w for w in again[logging.WARNING] if removed in w], again
        assert [i for i in again[logging.INFO] if removed in i], again
    finally:
        live.stop()
    assert len(subjects_in_inbox(data, CAROL)) == 3  # the copies are kept
