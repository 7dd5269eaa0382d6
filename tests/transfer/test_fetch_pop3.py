"""`postoffice fetch pop3://` and `--to local:ADDR`, against postoffice's own POP3 and IMAP servers."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fetch_kit import fill_store, maildir_multisets

from cli_run import po
from live_server import PASSWORD, LiveServer

USER = "bob@example.test"
OTHER = "carol@example.test"
ENV = {"POSTOFFICE_FROM_PASSWORD": PASSWORD}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["pop3", "imap"]).start()
    live.add_user(USER)
    live.add_user(OTHER)
    try:
        yield live
    finally:
        live.stop()


def fetch(url: str, to: str, *args: str, data: Path | None = None) -> dict[str, object]:
    return json.loads(po("fetch", url, "--to", to, "--json", *args, env=ENV, data=data, timeout=120).stdout)


def bodies(messages: list[bytes]) -> Counter[str]:
    return Counter(hashlib.sha256(m).hexdigest() for m in messages)


def test_pop3_fetch_is_incremental_by_uidl_and_can_delete(server: LiveServer, tmp_path: Path) -> None:
    fill_store(server, USER, "INBOX", 30)
    url = f"pop3://{quote(USER)}@127.0.0.1:{server.ports['pop3']}?tls=none"
    dest = tmp_path / "Mail"
    first = fetch(url, f"maildir:{dest}")
    assert first["copied"] == 30 and first["failed"] == 0, first
    fetched = Counter(h for (h, _, _), n in maildir_multisets(dest)["INBOX"].items() for _ in range(n))
    assert fetched == bodies(server.messages(USER))
    assert fetch(url, f"maildir:{dest}")["copied"] == 0
    # --delete-after removes what was copied (and recorded); nothing is fetched twice.
    last = fetch(url, f"maildir:{dest}", "--delete-after")
    assert last["copied"] == 0 and last["skipped_duplicates"] == 30
    assert server.messages(USER) == []
    assert sum(maildir_multisets(dest)["INBOX"].values()) == 30


def test_imap_fetch_into_a_local_account_keeps_folders_and_flags(server: LiveServer) -> None:
    fill_store(server, USER, "INBOX", 12)
    fill_store(server, USER, "Archive", 8)
    url = f"imap://{quote(USER)}@127.0.0.1:{server.ports['imap']}?tls=none"
    first = fetch(url, f"local:{OTHER}", data=server.data_dir)
    assert first["copied"] == 20 and first["failed"] == 0, first
    assert bodies(server.messages(OTHER, "Archive")) == bodies(server.messages(USER, "Archive"))
    assert bodies(server.messages(OTHER)) == bodies(server.messages(USER))
    again = fetch(url, f"local:{OTHER}", data=server.data_dir)
    assert again["copied"] == 0 and again["skipped_duplicates"] == 20
