"""Store reads a command can do without: a selected session asks the store what changed before
(and, by sequence number, after) each command, but reads only when a change to its mailbox was
published since its last read, so the commands of a session whose mailbox nobody touched need
no reader thread; changes made by this process and by other processes (through the watcher
`serve` runs) are still announced at the next command. And the ENVELOPE of a message any
session fetched lately comes from memory. Real sockets, real server."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_idle_push import Client, message

from live_server import LiveServer
from postoffice.store import open_store
from postoffice.store.interface import FlagMode

USER = "bob@example.test"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"], store={"reader_threads": 1}).start()
    live.add_user(USER)
    yield live
    live.stop()


class BusyReaders:
    """The store's only reader thread held by a long read (a big SEARCH, say) until released."""

    def __init__(self, server: LiveServer) -> None:
        assert server.services is not None
        self.started, self.release = threading.Event(), threading.Event()

        def hold(conn: object) -> None:
            self.started.set()
            self.release.wait(30)  # bounded: a failing test must not hang the reader for ever

        self.done = server.submit(server.services.store.run_read(hold))  # type: ignore[attr-defined]
        assert self.started.wait(10)

    def __enter__(self) -> BusyReaders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.done.result(10)


def inbox_id(server: LiveServer) -> int:
    assert server.services is not None
    store = server.services.store

    async def find() -> int:
        account = await store.get_account(USER)
        assert account is not None
        box = await store.get_mailbox(account.id, "INBOX")
        assert box is not None
        return box.id

    return server.call(find())


def selected(server: LiveServer) -> Client:
    client = Client(server, USER)
    for n in (1, 2):
        client.command(f"APPEND INBOX {{{len(message(n))}+}}\r\n{message(n).decode()}")
    client.command("SELECT INBOX")
    return client


def test_commands_on_an_untouched_mailbox_need_no_reader(server: LiveServer) -> None:
    client = selected(server)
    client.command("NOOP")
    with BusyReaders(server):
        client.sock.settimeout(5)  # on the old code each of these waited for the held reader
        assert client.command("NOOP") == []
        lines = client.command("FETCH 1:2 (UID FLAGS)")
        assert lines == ["* 1 FETCH (UID 1 FLAGS (\\Recent))", "* 2 FETCH (UID 2 FLAGS (\\Recent))"]
        assert client.command("UID SEARCH UNDELETED") == ["* SEARCH 1 2"]


def test_a_change_published_meanwhile_is_read_at_the_next_command(server: LiveServer) -> None:
    client = selected(server)
    assert server.services is not None
    server.call(server.services.store.store_flags(inbox_id(server), [2], FlagMode.ADD, ["\\Flagged"]))
    assert "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))" in client.command("NOOP")
    assert client.command("NOOP") == []


def test_another_process_change_is_announced_once_the_watcher_saw_it(server: LiveServer, tmp_path: Path) -> None:
    client = selected(server)
    client.command("NOOP")
    data = tmp_path / "data"
    other = open_store("sqlite", data / "store.sqlite3", data / "blobs")  # as `postoffice` admin commands open it
    box = inbox_id(server)

    async def flag_and_close() -> None:
        await other.store_flags(box, [1], FlagMode.ADD, ["$Important"])
        await other.close()

    server.call(flag_and_close())
    deadline = time.monotonic() + 10
    lines = client.command("NOOP")
    while not any("$Important" in line for line in lines):
        assert time.monotonic() < deadline, "another process's change was never announced"
        time.sleep(0.05)
        lines = client.command("NOOP")
    assert any(line.startswith("* FLAGS ") for line in lines)


def test_an_envelope_fetched_lately_needs_no_reader(server: LiveServer) -> None:
    first = selected(server)
    envelope = first.command("FETCH 2 (ENVELOPE BODYSTRUCTURE)")
    second = Client(server, USER)
    second.command("SELECT INBOX")
    with BusyReaders(server):
        second.sock.settimeout(5)  # on the old code this waited for the held reader
        assert second.command("FETCH 2 (ENVELOPE BODYSTRUCTURE)") == envelope


def test_the_session_own_store_and_expunge_need_no_read_after_them(server: LiveServer) -> None:
    client = selected(server)
    client.command("NOOP")
    with BusyReaders(server):
        client.sock.settimeout(5)  # on the old code the read after each write waited for the held reader
        assert client.command("STORE 1 +FLAGS (\\Deleted)") == ["* 1 FETCH (FLAGS (\\Deleted \\Recent))"]
        assert client.command("EXPUNGE") == ["* 1 EXPUNGE"]
        assert client.command("NOOP") == []
    assert server.services is not None
    server.call(server.services.store.store_flags(inbox_id(server), [2], FlagMode.ADD, ["\\Seen"]))
    assert client.command("NOOP") == ["* 1 FETCH (UID 2 FLAGS (\\Recent \\Seen))"]  # others' changes still come
