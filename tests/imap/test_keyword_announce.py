"""A keyword another session (or this one) creates is announced in an untagged FLAGS, with
PERMANENTFLAGS, before any FETCH response that shows it (RFC 9051 §7.3.5, RFC 3501 §7.2.6),
on every path a FETCH response takes: NOOP, IDLE push, the session's own FETCH and STORE,
CONDSTORE CHANGEDSINCE, and a later SELECT. Real sockets, real server."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_idle_push import Client, message

from live_server import LiveServer

USER = "bob@example.test"
SYSTEM = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user(USER)
    yield live
    live.stop()


class Watcher:
    """A session that checks, reply by reply, that every keyword in a FETCH was first listed
    in an untagged FLAGS, with a PERMANENTFLAGS response right after it."""

    def __init__(self, server: LiveServer, *, enable: str = "") -> None:
        self.client = Client(server, USER)
        if enable:
            self.client.command(f"ENABLE {enable}")
        self.known: set[str] = set()
        self.check(self.client.command("SELECT INBOX"))

    def check(self, lines: list[str]) -> list[str]:
        for n, line in enumerate(lines):
            if line.startswith("* FLAGS "):
                self.known = set(_flags_in(line)) - SYSTEM
                assert n + 1 < len(lines) and lines[n + 1].startswith("* OK [PERMANENTFLAGS ("), lines
            elif (m := re.match(r"\* \d+ FETCH \(.*FLAGS \(([^)]*)\)", line)) is not None:
                shown = {f for f in m.group(1).split() if not f.startswith("\\")}
                assert shown <= self.known, f"{line!r} shows {shown - self.known} before any * FLAGS: {lines}"
        return lines

    def command(self, text: str) -> list[str]:
        return self.check(self.client.command(text))


def _flags_in(line: str) -> list[str]:
    inner = re.search(r"\(([^)]*)\)", line)
    assert inner is not None
    return inner.group(1).split()


def appended(server: LiveServer, count: int) -> Client:
    """A second session on the same INBOX, after it appended `count` messages."""
    other = Client(server, USER)
    for n in range(1, count + 1):
        other.command(f"APPEND INBOX {{{len(message(n))}+}}\r\n{message(n).decode()}")
    other.command("SELECT INBOX")
    return other


def test_noop_announces_a_keyword_another_session_created(server: LiveServer) -> None:
    other = appended(server, 2)
    watcher = Watcher(server)
    other.command("UID STORE 1 +FLAGS.SILENT ($Important)")
    lines = watcher.command("NOOP")
    assert any(line.startswith("* FLAGS ") for line in lines)
    assert "$Important" in watcher.known and any("FETCH" in line for line in lines)
    # Told once: a second change with the same keyword brings no new FLAGS.
    other.command("UID STORE 2 +FLAGS.SILENT ($Important)")
    assert not any(line.startswith("* FLAGS ") for line in watcher.command("NOOP"))


def test_idle_push_announces_the_keyword_before_the_fetch(server: LiveServer) -> None:
    other = appended(server, 1)
    watchers = [Watcher(server), Watcher(server, enable="CONDSTORE"), Watcher(server, enable="IMAP4rev2")]
    for watcher in watchers:
        watcher.client.idle()
    other.command("UID STORE 1 +FLAGS.SILENT (Project-X)")
    for watcher in watchers:
        first, second, third = (watcher.client.readline() for _ in range(3))
        watcher.check([first, second, third])
        assert first.startswith("* FLAGS (") and "Project-X" in first, first
        assert "FETCH" in third and "Project-X" in third, third
        watcher.check(watcher.client.done())


def test_new_message_with_a_keyword_is_announced_before_it_can_be_fetched(server: LiveServer) -> None:
    other = appended(server, 1)
    watcher = Watcher(server)
    data = message(9)
    other.command(f"APPEND INBOX (Invoice) {{{len(data)}+}}\r\n{data.decode()}")
    watcher.client.idle()
    lines = [watcher.client.readline() for _ in range(2)]
    watcher.check(lines)
    assert lines[0].startswith("* FLAGS (") and "Invoice" in lines[0]
    watcher.check(watcher.client.done())
    watcher.command("FETCH 1:* (FLAGS)")


def test_own_fetch_and_changedsince_announce_the_keyword_first(server: LiveServer) -> None:
    other = appended(server, 2)
    watcher = Watcher(server, enable="CONDSTORE")
    other.command("UID STORE 1 +FLAGS.SILENT (Later)")
    lines = watcher.command("UID FETCH 1:* (FLAGS)")
    assert lines[0].startswith("* FLAGS (") and "Later" in lines[0], lines
    other.command("UID STORE 2 +FLAGS.SILENT (Sooner)")
    lines = watcher.command("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)")
    assert lines[0].startswith("* FLAGS (") and "Sooner" in lines[0], lines


def test_own_store_announces_the_keyword_it_creates(server: LiveServer) -> None:
    other = appended(server, 2)
    watcher = Watcher(server)
    lines = watcher.command("STORE 1 +FLAGS (Mine)")
    assert lines[0].startswith("* FLAGS (") and "Mine" in lines[0], lines
    assert "* OK [PERMANENTFLAGS (" in lines[1] and "\\*" in lines[1], lines
    # Another session's keyword, seen first through this session's own STORE on that message.
    other.command("UID STORE 2 +FLAGS.SILENT (Theirs)")
    watcher.command("UID STORE 2 +FLAGS (\\Flagged)")
    assert "Theirs" in watcher.known
    # A later SELECT lists every keyword in use.
    assert {"Mine", "Theirs"} <= Watcher(server).known
