"""CONTEXT=SEARCH (RFC 5267 §4): a search kept up to date while another session changes things."""
from __future__ import annotations

import imaplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

USER = "bob@example.test"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user(USER)
    yield live
    live.stop()


def login(server: LiveServer) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    client.login(USER, PASSWORD)
    return client


def tagged(client: imaplib.IMAP4, text: str) -> list[bytes]:
    """Send a raw command; return every line up to and including its tagged reply."""
    tag = client._new_tag()
    client.send(tag + b" " + text.encode() + b"\r\n")
    lines = []
    while True:
        line = client.readline()
        lines.append(line)
        if line.startswith(tag + b" "):
            assert line.startswith(tag + b" OK"), lines
            return lines


def test_unread_count_stays_current(server: LiveServer) -> None:
    writer = login(server)
    for n in range(4):
        writer.append("INBOX", None, None, b"Subject: %d\r\n\r\nbody\r\n" % n)
    watcher = login(server)
    watcher.select("INBOX")
    lines = tagged(watcher, "UID SEARCH RETURN (UPDATE ALL) UNSEEN")
    context_tag = lines[-1].split()[0].decode()
    assert any(b"ALL 1:4" in line for line in lines)
    writer.select("INBOX")
    writer.store("2,3", "+FLAGS", "\\Seen")  # read elsewhere
    lines = tagged(watcher, "NOOP")
    assert f'* ESEARCH (TAG "{context_tag}") UID REMOVEFROM (0 2:3)\r\n'.encode() in lines, lines
    writer.append("INBOX", None, None, b"Subject: new\r\n\r\nbody\r\n")
    writer.store("3", "-FLAGS", "\\Seen")
    lines = tagged(watcher, "NOOP")
    assert any(b"ADDTO (0 3,5)" in line for line in lines), lines
    writer.store("1", "+FLAGS", "\\Deleted")
    writer.expunge()
    lines = tagged(watcher, "NOOP")
    removal = next(i for i, line in enumerate(lines) if b"REMOVEFROM (0 1)" in line)
    assert lines.index(b"* 1 EXPUNGE\r\n") > removal  # removed from the result before the EXPUNGE
    tagged(watcher, f'CANCELUPDATE "{context_tag}"')
    writer.store("4", "+FLAGS", "\\Seen")
    assert not any(b"ESEARCH" in line for line in tagged(watcher, "NOOP"))
    writer.logout()
    watcher.logout()


def test_sorted_results_stay_current_with_positions(server: LiveServer) -> None:
    writer = login(server)
    for n in range(4):
        writer.append("INBOX", None, None, b"Subject: %d\r\n\r\nbody\r\n" % n)
    watcher = login(server)
    watcher.select("INBOX")
    lines = tagged(watcher, "UID SORT RETURN (UPDATE ALL) (REVERSE ARRIVAL) US-ASCII UNSEEN")
    tag = lines[-1].split()[0].decode()
    assert any(b"ALL 4,3,2,1" in line or b"ALL 4:1" in line for line in lines), lines
    writer.select("INBOX")
    writer.store("3", "+FLAGS", "\\Seen")  # uid 3 sat at position 2 (4, 3, 2, 1)
    lines = tagged(watcher, "NOOP")
    assert f'* ESEARCH (TAG "{tag}") UID REMOVEFROM (2 3)\r\n'.encode() in lines, lines
    writer.append("INBOX", None, None, b"Subject: newest\r\n\r\nbody\r\n")  # uid 5, first in reverse arrival
    lines = tagged(watcher, "NOOP")
    assert f'* ESEARCH (TAG "{tag}") UID ADDTO (1 5)\r\n'.encode() in lines, lines
    writer.logout()
    watcher.logout()


def test_emailid_is_stable_across_copies_and_searchable(server: LiveServer) -> None:
    client = login(server)
    client.append("INBOX", None, None, b"Subject: a\r\n\r\none\r\n")
    client.append("INBOX", None, None, b"Subject: b\r\n\r\ntwo\r\n")
    client.select("INBOX")
    email_id = client.fetch("2", "(EMAILID)")[1][0].split(b"EMAILID (")[1].split(b")")[0].decode()
    assert client.search(None, "EMAILID", email_id)[1] == [b"2"]
    client.copy("2", "Archive")
    client.select("Archive")
    assert email_id.encode() in client.fetch("1", "(EMAILID)")[1][0]  # RFC 8474 §5.1: kept by COPY
    client.logout()
