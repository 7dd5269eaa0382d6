"""Scheduled pulls: `postoffice fetch add` makes a job that a real `postoffice serve` runs into a
local account (here POP3 with --delete-after, like getmail's delete); `fetch list` shows its
result without the password; `fetch remove` ends it."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fetch_kit import fill_store

from cli_run import po
from live_server import PASSWORD, LiveServer
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
