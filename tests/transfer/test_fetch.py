"""`postoffice fetch` from postoffice's own IMAP server (a real server on loopback, the real CLI):
1,000 messages in 5 folders to Maildir and mbox, reruns, new mail, UIDVALIDITY changes, SIGKILL."""

from __future__ import annotations

import imaplib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fetch_kit import fill, fill_store, maildir_multisets, mbox_multisets, source_multiset

from cli_run import po
from live_server import PASSWORD, LiveServer

USER = "bob@example.test"
FOLDERS = ["INBOX", "Archive/2020", "Entwürfe", "Work", "Lists"]
PER_FOLDER = 200
ENV = {"POSTOFFICE_FROM_PASSWORD": PASSWORD}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("fetch") / "data", ["imap"]).start()
    live.add_user(USER)
    for folder in FOLDERS:
        fill_store(live, USER, folder, PER_FOLDER)
    try:
        yield live
    finally:
        live.stop()


def _utf7(name: str) -> str:
    from postoffice.imap.proto.utf7 import encode_utf7

    return encode_utf7(name)


def login(live: LiveServer) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", live.ports["imap"])
    imap.login(USER, PASSWORD)
    return imap


def url(live: LiveServer) -> str:
    return f"imap://{quote(USER)}@127.0.0.1:{live.ports['imap']}?tls=none"


def fetch(live: LiveServer, to: str, *args: str, check: bool = True) -> dict[str, object]:
    result = po("fetch", url(live), "--to", to, "--json", *args, env=ENV, check=check, timeout=300)
    return json.loads(result.stdout)


def source_state(live: LiveServer) -> dict[str, object]:
    imap = login(live)
    try:
        return {f: source_multiset(imap, _utf7(f)) for f in FOLDERS}
    finally:
        imap.logout()


def same_as_source(live: LiveServer, fetched: dict[str, object]) -> None:
    for folder, expected in source_state(live).items():
        assert fetched.get(folder) == expected, folder


def test_fetch_to_maildir_rerun_and_ten_new(server: LiveServer, tmp_path: Path) -> None:
    dest = tmp_path / "Mail"
    first = fetch(server, f"maildir:{dest}")
    assert first["copied"] == len(FOLDERS) * PER_FOLDER and first["failed"] == 0, first
    assert first["folders"] >= len(FOLDERS)
    assert (tmp_path / "Mail.fetch-state.json").exists()
    same_as_source(server, maildir_multisets(dest))

    again = fetch(server, f"maildir:{dest}")
    assert again["copied"] == 0 and again["skipped_duplicates"] == len(FOLDERS) * PER_FOLDER

    imap = login(server)
    fill(imap, "Work", 10, start=PER_FOLDER)
    imap.logout()
    more = fetch(server, f"maildir:{dest}")
    assert more["copied"] == 10 and more["failed"] == 0
    same_as_source(server, maildir_multisets(dest))


def test_fetch_to_mbox_with_parallel_connections(server: LiveServer, tmp_path: Path) -> None:
    dest = tmp_path / "mboxes"
    first = fetch(server, f"mbox:{dest}", "--connections", "3")
    assert first["failed"] == 0 and first["copied"] >= len(FOLDERS) * PER_FOLDER, first
    same_as_source(server, mbox_multisets(dest))
    again = fetch(server, f"mbox:{dest}", "--connections", "3")
    assert again["copied"] == 0


def test_uidvalidity_change_refetches_without_duplicates(server: LiveServer, tmp_path: Path) -> None:
    imap = login(server)
    fill(imap, "Renumbered", 20)
    imap.logout()
    for kind in ("maildir", "mbox"):
        dest = tmp_path / kind
        assert fetch(server, f"{kind}:{dest}", "--folder", "Renumbered")["copied"] == 20
    # The server renumbers the folder: same messages, a new UIDVALIDITY, and two new ones.
    imap = login(server)
    imap.rename("Renumbered", "Old")
    imap.create("Renumbered")
    imap.select("Old")
    imap.uid("COPY", "1:*", "Renumbered")
    imap.close()
    imap.delete("Old")
    fill(imap, "Renumbered", 2, start=100)
    expected = source_multiset(imap, "Renumbered")
    imap.logout()
    for kind, read in (("maildir", maildir_multisets), ("mbox", mbox_multisets)):
        dest = tmp_path / kind
        result = fetch(server, f"{kind}:{dest}", "--folder", "Renumbered")
        assert result["copied"] == 2 and result["skipped_duplicates"] == 20, (kind, result)
        assert any("UIDVALIDITY" in w for w in result["warnings"])  # type: ignore[union-attr]
        assert read(dest)["Renumbered"] == expected, kind


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_sigkill_three_times_then_rerun_gives_one_copy_each(server: LiveServer, tmp_path: Path, kind: str) -> None:
    dest = tmp_path / kind
    rng = random.Random(7)
    state = tmp_path / f"{kind}.fetch-state.json"
    command = [sys.executable, "-m", "postoffice", "fetch", url(server), "--to", f"{kind}:{dest}", "--json"]
    for _ in range(3):
        process = subprocess.Popen(command, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill at a random moment after the run has recorded something new: mid-run, with
        # messages written and not yet recorded.
        before = state.read_bytes() if state.exists() else b""
        deadline = time.monotonic() + 120
        while (state.read_bytes() if state.exists() else b"") == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.5))
        assert process.poll() is None, "the fetch ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    final = fetch(server, f"{kind}:{dest}")
    assert final["failed"] == 0
    assert 0 < final["copied"] < len(FOLDERS) * PER_FOLDER, final  # the kills left work half done
    read = maildir_multisets if kind == "maildir" else mbox_multisets
    same_as_source(server, read(dest))
