"""\\Recent (RFC 3501 §2.3.2) is claimed in memory: a session that selects a mailbox or learns
of new messages does not wait for a durable write (the store's writer may be busy with other
sessions' commits), yet each new message is still recent in exactly one session, STATUS counts
what memory claimed, and the claims survive a restart. Real sockets, real server."""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_idle_push import Client, message

from live_server import LiveServer

USER = "bob@example.test"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user(USER)
    yield live
    live.stop()


def append(client: Client, n: int) -> None:
    client.command(f"APPEND INBOX {{{len(message(n))}+}}\r\n{message(n).decode()}")


def recent(lines: list[str]) -> int:
    (count,) = [int(m.group(1)) for line in lines if (m := re.fullmatch(r"\* (\d+) RECENT", line))]
    return count


class HeldWriter:
    """The store's writer thread held inside a job, as under a long commit, until released."""

    def __init__(self, server: LiveServer) -> None:
        assert server.services is not None
        self.started, self.release = threading.Event(), threading.Event()

        def hold(tx: object) -> None:
            self.started.set()
            self.release.wait(30)  # bounded: a failing test must not hang the writer for ever

        self.done = server.submit(server.services.store.run_write(hold))  # type: ignore[attr-defined]
        assert self.started.wait(10)

    def __enter__(self) -> HeldWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.done.result(10)


def test_recent_is_claimed_without_waiting_for_the_writer(server: LiveServer) -> None:
    appender = Client(server, USER)
    first = Client(server, USER)
    first.command("SELECT INBOX")  # the process's first claim in the mailbox is written
    append(appender, 1)
    append(appender, 2)
    with HeldWriter(server):
        for client in (first, appender):
            client.sock.settimeout(5)
        # On the old code each of these waited for a write the held writer never ran.
        lines = first.command("NOOP")
        assert "* 2 EXISTS" in lines and recent(lines) == 2
        appender.command("SELECT INBOX")  # a later session: both are someone else's
        lines = appender.command("STATUS INBOX (RECENT MESSAGES)")
        assert any("RECENT 0" in line for line in lines), lines
    second = Client(server, USER)
    lines = second.command("SELECT INBOX")
    assert "* 2 EXISTS" in lines and recent(lines) == 0
    append(Client(server, USER), 3)  # uid 3: recent in one of the three sessions, whichever asks first
    replies = [c.command("NOOP") for c in (first, appender, second)]
    assert all("* 3 EXISTS" in lines for lines in replies), replies
    grew = [recent(lines) - before for lines, before in zip(replies, (2, 0, 0), strict=True)]
    assert sorted(grew) == [0, 0, 1], replies


def test_claims_made_in_memory_are_there_after_a_restart(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    try:
        live.add_user(USER)
        appender, first = Client(live, USER), Client(live, USER)
        first.command("SELECT INBOX")
        append(appender, 1)
        assert recent(first.command("NOOP")) == 1  # claimed in memory
    finally:
        live.stop()
    again = LiveServer(tmp_path / "data", ["imap"]).start()
    try:
        assert recent(Client(again, USER).command("SELECT INBOX")) == 0
    finally:
        again.stop()
