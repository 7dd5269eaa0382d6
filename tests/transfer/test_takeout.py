"""`postoffice import mbox` of a Google Takeout file: X-Gmail-Labels sort the messages into
mailboxes and become flags and keywords (or, with --gmail-labels folders, mailboxes too)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cli_run import po
from postoffice.directory import Directory
from postoffice.store import open_store
from postoffice.transfer.takeout import gmail_labels
from serve_process import init_data

USER = "carol@example.org"
TAKEOUT = b"".join(
    b"From 1234567890@xxx Mon Jan  1 00:00:00 +0000 2024\n"
    + b"X-GM-THRID: 1\nX-Gmail-Labels: " + labels + b"\nFrom: a@example.org\nSubject: " + subject + b"\n\nbody of "
    + subject + b"\n\n"
    for subject, labels in (
        (b"inbox", b"Inbox,Opened,Important,Work"),
        (b"unread", b"Inbox,Unread,Category Updates"),
        (b"archived", b'Archived,Opened,Starred,"Trips, 2023",Family/Kids'),
        (b"sent", b"Sent,Opened"),
        (b"spam", b"Spam,Unread"),
    )
)


def contents(data: Path) -> dict[str, dict[str, frozenset[str]]]:
    """mailbox -> subject -> flags, read from the store."""
    async def read() -> dict[str, dict[str, frozenset[str]]]:
        store = open_store("sqlite", data / "store.sqlite3", data / "blobs")
        try:
            account = await Directory(store).get_user(USER)
            assert account is not None
            out: dict[str, dict[str, frozenset[str]]] = {}
            for box in await store.list_mailboxes(account.id):
                for m in await store.list_messages(box.id):
                    raw = await store.read_blob(m.blob)
                    subject = raw.split(b"Subject: ")[1].split(b"\r\n")[0].decode()
                    out.setdefault(box.name, {})[subject] = frozenset(m.flags)
            return out
        finally:
            await store.close()
    return asyncio.run(read())


def test_labels_parse_with_quotes_and_folding() -> None:
    assert gmail_labels(b'X-Gmail-Labels: Inbox,"a, b",\r\n c\r\n\r\nbody') == ["Inbox", "a, b", "c"]
    assert gmail_labels(b"Subject: x\r\n\r\nX-Gmail-Labels: not a header\r\n") is None


@pytest.mark.parametrize("mode", ["keywords", "folders"])
def test_takeout_labels_become_mailboxes_flags_and_keywords(tmp_path: Path, mode: str) -> None:
    data = init_data(tmp_path / "data", (USER,))
    mbox = tmp_path / "All mail Including Spam and Trash.mbox"
    mbox.write_bytes(TAKEOUT)
    po("import", "mbox", str(mbox), "--into", USER, "--gmail-labels", mode, data=data)
    found = contents(data)
    assert set(found["INBOX"]) == {"inbox", "unread"}
    assert found["INBOX"]["unread"] == frozenset()
    assert set(found["Archive"]) == {"archived"} and set(found["Sent"]) == {"sent"} and set(found["Junk"]) == {"spam"}
    assert {"\\Seen", "\\Flagged"} <= found["Archive"]["archived"]
    assert {"\\Seen", "$Important"} <= found["INBOX"]["inbox"]
    if mode == "keywords":
        assert {"Work"} <= found["INBOX"]["inbox"] and {"Trips,_2023", "Family/Kids"} <= found["Archive"]["archived"]
        assert "Work" not in found
    else:
        assert set(found["Work"]) == {"inbox"} and set(found["Trips, 2023"]) == {"archived"}
        assert set(found["Family/Kids"]) == {"archived"}
    # Running it again adds nothing.
    po("import", "mbox", str(mbox), "--into", USER, "--gmail-labels", mode, data=data)
    assert contents(data) == found
