"""`postoffice fetch` (the real CLI) from postoffice's own IMAP server and from Dovecot, both on
loopback: 1,000 messages in 5 folders to Maildir and mbox, reruns, new mail, a UIDVALIDITY
change, SIGKILL at three points; every folder's multiset of (body hash, flags, INTERNALDATE)
equals the source's."""

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
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from dovecot_kit import PASSWORD as DOVECOT_PASSWORD
from dovecot_kit import running_dovecot
from fetch_kit import (
    fill,
    fill_store,
    maildir_multisets,
    mbox_multisets,
    mutt_message_count,
    source_multiset,
)

from cli_run import po
from live_server import PASSWORD, LiveServer
from postoffice.imap.proto.utf7 import encode_utf7
from postoffice.transfer.fetch_state import parse_uids

PO_USER = "bob@example.test"

FOLDERS = ["INBOX", "Archive/2020", "Entwürfe", "Work", "Lists"]
PER_FOLDER = 200


@dataclass(frozen=True)
class Source:
    """An account holding FOLDERS x PER_FOLDER messages, on postoffice or on Dovecot."""

    url: str
    user: str
    password: str
    port: int

    def login(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        imap.login(self.user, self.password)
        return imap


@pytest.fixture(scope="module", params=["postoffice", "dovecot"])
def source(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    if request.param == "postoffice":
        live = LiveServer(tmp_path_factory.mktemp("fetch") / "data", ["imap"]).start()
        try:
            live.add_user(PO_USER)
            for folder in FOLDERS:
                fill_store(live, PO_USER, folder, PER_FOLDER)
            port = live.ports["imap"]
            yield Source(f"imap://{quote(PO_USER)}@127.0.0.1:{port}?tls=none", PO_USER, PASSWORD, port)
        finally:
            live.stop()
        return
    with running_dovecot(["bob"]) as dovecot:
        found = Source(f"imap://bob@127.0.0.1:{dovecot.imap_port}?tls=none", "bob", DOVECOT_PASSWORD, dovecot.imap_port)
        imap = found.login()
        for folder in FOLDERS:
            fill(imap, encode_utf7(folder), PER_FOLDER)
        imap.logout()
        yield found


def fetch(source: Source, to: str, *args: str, check: bool = True) -> dict[str, object]:
    result = po("fetch", source.url, "--to", to, "--json", *args, env={"POSTOFFICE_FROM_PASSWORD": source.password},
                check=check, timeout=300)
    return json.loads(result.stdout)


def source_state(source: Source) -> dict[str, object]:
    imap = source.login()
    try:
        return {f: source_multiset(imap, encode_utf7(f)) for f in FOLDERS}
    finally:
        imap.logout()


def same_as_source(source: Source, fetched: dict[str, object]) -> None:
    for folder, expected in source_state(source).items():
        assert fetched.get(folder) == expected, folder


def test_fetch_to_maildir_rerun_and_ten_new(source: Source, tmp_path: Path) -> None:
    dest = tmp_path / "Mail"
    first = fetch(source, f"maildir:{dest}")
    assert first["copied"] == len(FOLDERS) * PER_FOLDER and first["failed"] == 0, first
    assert first["folders"] >= len(FOLDERS)
    assert (tmp_path / "Mail.fetch-state.json").exists()
    same_as_source(source, maildir_multisets(dest))

    again = fetch(source, f"maildir:{dest}")
    assert again["copied"] == 0 and again["skipped_duplicates"] == len(FOLDERS) * PER_FOLDER

    imap = source.login()
    fill(imap, "Work", 10, start=PER_FOLDER)
    imap.logout()
    more = fetch(source, f"maildir:{dest}")
    assert more["copied"] == 10 and more["failed"] == 0
    same_as_source(source, maildir_multisets(dest))
    assert mutt_message_count(dest / ".Work", "maildir", tmp_path) == PER_FOLDER + 10


def test_fetch_to_mbox_with_parallel_connections(source: Source, tmp_path: Path) -> None:
    dest = tmp_path / "mboxes"
    first = fetch(source, f"mbox:{dest}", "--connections", "3")
    assert first["failed"] == 0 and first["copied"] >= len(FOLDERS) * PER_FOLDER, first
    same_as_source(source, mbox_multisets(dest))
    assert mutt_message_count(dest / "Lists.mbox", "mbox", tmp_path) == PER_FOLDER
    again = fetch(source, f"mbox:{dest}", "--connections", "3")
    assert again["copied"] == 0


def test_uidvalidity_change_refetches_without_duplicates(source: Source, tmp_path: Path) -> None:
    imap = source.login()
    fill(imap, "Renumbered", 20)
    imap.logout()
    for kind in ("maildir", "mbox"):
        dest = tmp_path / kind
        assert fetch(source, f"{kind}:{dest}", "--folder", "Renumbered")["copied"] == 20
    # The server renumbers the folder: same messages, a new UIDVALIDITY, and two new ones.
    imap = source.login()
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
        result = fetch(source, f"{kind}:{dest}", "--folder", "Renumbered")
        assert result["copied"] == 2 and result["skipped_duplicates"] == 20, (kind, result)
        assert any("UIDVALIDITY" in w for w in result["warnings"])  # type: ignore[union-attr]
        assert read(dest)["Renumbered"] == expected, kind


def recorded(state: Path) -> int:
    """How many messages the state file records as copied."""
    data = json.loads(state.read_text()) if state.exists() else {"sources": {}}
    return sum(len(parse_uids(f["uids"])) for s in data["sources"].values() for f in s["folders"].values())


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_sigkill_three_times_then_rerun_gives_one_copy_each(source: Source, tmp_path: Path, kind: str) -> None:
    dest = tmp_path / kind
    rng = random.Random(7)
    state = tmp_path / f"{kind}.fetch-state.json"
    command = [sys.executable, "-m", "postoffice", "fetch", source.url, "--to", f"{kind}:{dest}", "--json"]
    for _ in range(3):
        env = {**os.environ, "POSTOFFICE_FROM_PASSWORD": source.password}
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill at a random moment after the run has recorded something new: mid-run, with
        # messages written and not yet recorded.
        before = state.read_bytes() if state.exists() else b""
        deadline = time.monotonic() + 120
        while (state.read_bytes() if state.exists() else b"") == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.2))  # a whole run takes 1 to 10 s, by destination and load
        assert process.poll() is None, "the fetch ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert recorded(state) < len(FOLDERS) * PER_FOLDER, "the kill came after the work was done"
    final = fetch(source, f"{kind}:{dest}")
    assert final["failed"] == 0
    assert 0 < final["copied"] < len(FOLDERS) * PER_FOLDER, final  # the kills left work half done
    read = maildir_multisets if kind == "maildir" else mbox_multisets
    same_as_source(source, read(dest))
