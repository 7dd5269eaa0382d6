"""A full-text search cut into parts by blob id (run on several reader threads at once) answers
exactly what one search over everything answers: indexed and not yet indexed blobs, expunged
messages still held, hits on both sides of every cut, and other mailboxes' messages left out."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from postoffice.store.interface import NewMessage
from postoffice.store.sqlite import store as sqlite_store
from postoffice.store.sqlite.store import SqliteStore
from store_kit import new_account

WORDS = ["project", "deadline", "review", "budget", "meeting", "notes", "alpha", "omega"]
NEEDLES = ["project deadline review", "deadline", "review", "zz", "q", "no such words here", "ALPHA omega",
           "ct deadl", "e r"]


def _raw(rng: random.Random, n: int) -> bytes:
    body = " ".join(rng.choice(WORDS) for _ in range(40))
    return f"From: s{n}@example.org\r\nSubject: item {n} {rng.choice(WORDS)}\r\n\r\n{body}\r\n".encode()


@pytest.mark.parametrize("parts", [2, 3, 4])
async def test_a_search_in_parts_finds_what_one_search_finds(tmp_path: Path, parts: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteStore(tmp_path / "store.sqlite3", tmp_path / "blobs", reader_threads=parts + 1)
    rng = random.Random(parts)
    try:
        account = await new_account(store)
        box = await store.get_mailbox(account.id, "INBOX")
        other = await new_account(store, "other@example.test")
        other_box = await store.get_mailbox(other.id, "INBOX")
        assert box is not None and other_box is not None
        raws = [_raw(rng, n) for n in range(90)]
        await store.append_messages(box.id, [NewMessage(await store.put_blob(r), raw=r) for r in raws[:60]])
        await store.append_messages(other_box.id, [NewMessage(await store.put_blob(r), raw=r) for r in raws[60:70]])
        while await store.index_unindexed() > 0:
            pass
        # Not indexed yet: read and checked by the part that holds their blob ids.
        await store.append_messages(box.id, [NewMessage(await store.put_blob(r), raw=r) for r in raws[70:]])
        store.hold_mailbox(box.id)  # a session still shows these: expunged, yet searched
        await store.expunge(box.id, [3, 17, 41, 65])

        monkeypatch.setattr(store, "_search_parts", 1)
        expected = {n: await store.search_text(box.id, n, headers=True, body=True) for n in NEEDLES}
        expected_body = {n: await store.search_text(box.id, n, headers=False, body=True) for n in NEEDLES}
        monkeypatch.setattr(store, "_search_parts", parts)
        monkeypatch.setattr(sqlite_store, "_SPLIT_SEARCH_ABOVE", 0)
        assert any(len(found) > 5 for found in expected.values())
        for needle in NEEDLES:
            assert await store.search_text(box.id, needle, headers=True, body=True) == expected[needle], needle
            assert await store.search_text(box.id, needle, headers=False, body=True) == expected_body[needle]
    finally:
        await store.close()
