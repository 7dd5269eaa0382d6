"""Scenarios with imapclient (the PyPI IMAP client library): what a typical mail app does."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from live_server import PASSWORD, LiveServer

MESSAGE = b"From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\nSubject: Status\r\n\r\nAll good.\r\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user("bob@example.test")
    yield live
    live.stop()


def client(server: LiveServer) -> IMAPClient:
    c = IMAPClient("127.0.0.1", port=server.ports["imap"], ssl=False, timeout=10)
    c.login("bob@example.test", PASSWORD)
    return c


def test_folders_append_search_fetch_move(server: LiveServer) -> None:
    with client(server) as c:
        folders = {name: flags for flags, _, name in c.list_folders()}
        assert b"\\Sent" in folders["Sent"] and b"\\Trash" in folders["Trash"]
        assert c.find_special_folder(b"\\Junk") == "Junk"
        c.append("INBOX", MESSAGE, flags=[b"$Important"])
        c.select_folder("INBOX")
        uids = c.search(["SUBJECT", "Status"])
        assert len(uids) == 1
        data = c.fetch(uids, ["ENVELOPE", "FLAGS", "BODY.PEEK[]"])[uids[0]]
        assert data[b"ENVELOPE"].subject == b"Status"
        assert data[b"BODY[]"] == MESSAGE
        assert b"$Important" in data[b"FLAGS"]
        c.add_flags(uids, [b"\\Seen"])
        c.move(uids, "Archive")
        assert c.search("ALL") == []
        c.select_folder("Archive")
        assert c.get_flags(c.search("ALL"))  # flags kept across the move
        assert c.folder_status("Archive", ["MESSAGES", "UNSEEN"]) == {b"MESSAGES": 1, b"UNSEEN": 0}


def test_idle_wakes_up_on_append_by_another_session(server: LiveServer) -> None:
    with client(server) as watcher, client(server) as writer:
        watcher.select_folder("INBOX")
        watcher.idle()
        threading.Timer(0.2, lambda: writer.append("INBOX", MESSAGE)).start()
        started = time.monotonic()
        responses = watcher.idle_check(timeout=5)
        watcher.idle_done()
        assert (1, b"EXISTS") in responses
        assert time.monotonic() - started < 2
