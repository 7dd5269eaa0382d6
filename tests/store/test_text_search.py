"""Full-text search (SEARCH BODY/TEXT, RFC 9051 §6.4.4) answers exactly what a naive substring
test of the decoded text answers: for common words, one- and two-character needles, phrases,
non-ASCII, headers or body only; on indexed messages, on messages the background indexer has
not reached yet, and on a store whose index an older postoffice built."""
from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
from email.message import EmailMessage
from pathlib import Path

from postoffice.message.mime import parse_message
from postoffice.store.interface import MailStore, NewMessage
from postoffice.store.sqlite.store import SqliteStore
from postoffice.store.sqlite.text_ops import INDEX_VERSION
from store_kit import new_account

FIXTURES = Path(__file__).parent / "fixtures"

WORDS = ["deadline", "report", "Meeting", "the", "mail", "budget", "naïve", "Straße", "GRÖSSE", "İstanbul", "ΣΟΦΟΣ", "σοφός", "café", "日本語のテキスト", "😀", "é", "ǅemal", "ﬁle", "ß", "İ", "x", "y", "q", "ab", '"quoted"', "'single'", "a-b", "a.b", "{brace}", "100%", "$dollar", "back\\slash", "tab\there"]


def _text(rng: random.Random, words: int) -> str:
    out = []
    for _ in range(words):
        word = rng.choice(WORDS)
        out.append(word.upper() if rng.random() < 0.1 else word)
        out.append(rng.choice([" ", " ", " ", "\n", ", ", ".  ", "\r\n"]))
    return "".join(out)


def _message(rng: random.Random, n: int) -> bytes:
    m = EmailMessage()
    m["From"] = f"{rng.choice(['Zoë Ünal', 'Bob', 'ΑΛΦΑ'])} <sender{n}@example.org>"
    m["To"] = "user@example.test"
    m["Subject"] = _text(rng, rng.randint(1, 6)).replace("\n", " ").replace("\r", " ")
    m["Message-ID"] = f"<m{n}@example.org>"
    m["X-Note"] = _text(rng, 3).replace("\n", " ").replace("\r", " ")
    body = _text(rng, rng.randint(0, 80))
    cte = rng.choice([None, "quoted-printable", "base64", "8bit"])
    m.set_content(body, charset="utf-8", cte=cte) if cte else m.set_content(body)
    if rng.random() < 0.3:
        m.add_alternative(f"<p>{_text(rng, 20)}</p>", subtype="html")
    if rng.random() < 0.2:
        m.add_attachment(_text(rng, 10).encode(), maintype="application", subtype="octet-stream",
                         filename="data.bin")
    return bytes(m)


_LOWERED: dict[bytes, tuple[str, str]] = {}


def _reference(raws: dict[int, bytes], needle: str, headers: bool) -> set[int]:
    """What SEARCH answered before the index answered by itself: the text, lowered, holds the needle."""
    found = set()
    wanted = needle.lower()
    for uid, raw in raws.items():
        if raw not in _LOWERED:
            meta = parse_message(raw)
            _LOWERED[raw] = (meta.text.lower(), meta.headers.header_text.lower())
        text, header_text = _LOWERED[raw]
        if wanted in text or (headers and wanted in header_text):
            found.add(uid)
    return found


def _needles(rng: random.Random, raws: dict[int, bytes], count: int) -> list[str]:
    texts = []
    for raw in raws.values():
        meta = parse_message(raw)
        texts += [t for t in (meta.text, meta.headers.header_text) if t]
    needles = ["deadline", "the", "e", "ß", "ss", "i̇", "İ", "σοφός", "ΣΟΦΟΣ", "😀", "日本", "\"quoted\"",
               "budget meeting", "mail budget", "é", "\n", " ", ". ", "a", "q", "zz", "no such word here",
               "ﬁ", "ǆ", "\\", "{", "%", "\t", "subject:", "from: zoë", "<p>", "data.bin"]
    while len(needles) < count:
        text = rng.choice(texts)
        start = rng.randrange(len(text))
        needle = text[start:start + rng.choice([1, 2, 2, 3, 4, 6, 9, 15, 30, 60])]
        needles.append(rng.choice([needle, needle.upper(), needle.swapcase(), needle.title()]))
    return needles


async def _mailbox(store: MailStore, rng: random.Random, count: int) -> tuple[int, dict[int, bytes]]:
    account = await new_account(store)
    box = await store.get_mailbox(account.id, "INBOX")
    assert box is not None
    raws = [_message(rng, n) for n in range(count)]
    appended = await store.append_messages(box.id, [NewMessage(await store.put_blob(r), raw=r) for r in raws])
    return box.id, {a.uid: raw for a, raw in zip(appended, raws, strict=True)}


async def _assert_like_the_reference(store: MailStore, box: int, raws: dict[int, bytes], needles: list[str]) -> None:
    for needle in needles:
        for headers in (True, False):
            answer = await store.search_text(box, needle, headers=headers, body=True)
            assert answer == _reference(raws, needle, headers), (needle, headers)


async def test_answers_equal_a_naive_reference_indexed_or_not(store: MailStore) -> None:
    rng = random.Random(1413)
    box, raws = await _mailbox(store, rng, 60)
    # Expunged messages a session has not been told about yet are searched too.
    store.hold_mailbox(box)  # type: ignore[attr-defined]
    await store.expunge(box, sorted(raws)[:3])
    needles = _needles(rng, raws, 150)
    await _assert_like_the_reference(store, box, raws, needles)  # nothing indexed
    await store.index_unindexed(limit=25)
    await _assert_like_the_reference(store, box, raws, needles)  # some indexed
    while await store.index_unindexed() > 0:
        pass
    await _assert_like_the_reference(store, box, raws, needles)  # all indexed


async def test_an_indexed_search_answers_without_reading_any_message(tmp_path: Path) -> None:
    """Confirming index candidates by reading and parsing every message made a common word cost
    one MIME parse per message (about 40 s for 100,000); the index now answers by itself."""
    store = SqliteStore(tmp_path / "store.sqlite3", tmp_path / "blobs")
    try:
        rng = random.Random(7)
        box, raws = await _mailbox(store, rng, 30)
        while await store.index_unindexed() > 0:
            pass
        needles = ["deadline", "the mail", "naïve", "σοφός", "ab", "e", "日本語のテキスト", "sender1", "x"]
        needles += _needles(rng, raws, 40)
        expected = {(n, h): _reference(raws, n, h) for n in needles for h in (True, False)}
        assert sum(1 for uids in expected.values() if uids) > 50
        # The message files leave: only the index can answer now.
        shutil.move(tmp_path / "blobs", tmp_path / "blobs-away")
        (tmp_path / "blobs").mkdir()
        for (needle, headers), uids in expected.items():
            assert await store.search_text(box, needle, headers=headers) == uids, (needle, headers)
    finally:
        await store.close()


async def test_searches_leave_a_reader_free_for_short_reads(tmp_path: Path) -> None:
    """Four long searches at once took all four reader threads, so another session's STATUS or
    FETCH waited for one of them to end (issue 13); at most all readers but one search now."""
    store = SqliteStore(tmp_path / "store.sqlite3", tmp_path / "blobs", reader_threads=4)
    try:
        # Unindexed: every search parses all 1,200 (~0.1 s on a fast machine, the short read ~1 ms).
        box, _raws = await _mailbox(store, random.Random(11), 1200)
        searches = [asyncio.ensure_future(store.search_text(box, f"no such word {n}")) for n in range(4)]
        await asyncio.wait_for(_long_reads_taken(store), 10)
        assert await store.get_mailbox_by_id(box) is not None
        assert not any(search.done() for search in searches), "the short read waited for a search"
        assert await asyncio.gather(*searches) == [set()] * 4
    finally:
        await store.close()


async def _long_reads_taken(store: SqliteStore) -> None:
    """Until every long-read slot is taken, i.e. the searches' reads are with reader threads:
    a state to wait for, not a wall-clock time (a fast machine finished a search in 40 ms)."""
    while not store._long_reads.locked():
        await asyncio.sleep(0.001)


def _index_definition(db: Path) -> tuple[str, list[tuple[int, int]]]:
    conn = sqlite3.connect(db)
    try:
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'blob_trigrams'").fetchone()[0]
        versions = conn.execute("SELECT text_version, count(*) FROM blobs GROUP BY 1").fetchall()
        return sql, versions
    finally:
        conn.close()


async def test_an_index_built_by_the_previous_version_is_replaced(tmp_path: Path) -> None:
    """tests/store/fixtures/schema3 was made and fully indexed by the last schema-3 code: its index
    has no positions, so the upgrade drops it; search reads the messages until they are indexed
    again, with the same answers before, during and after."""
    shutil.copytree(FIXTURES / "schema3" / "data", tmp_path / "data")
    db = tmp_path / "data" / "store.sqlite3"
    sql, versions = _index_definition(db)
    assert "detail = none" in sql and versions == [(2, 6)]
    store = SqliteStore(db, tmp_path / "data" / "blobs")
    try:
        sql, versions = _index_definition(db)
        assert "detail = full" in sql and versions == [(0, 6)]
        account = await store.get_account("alice@example.org")
        assert account is not None
        boxes = [b for b in await store.list_mailboxes(account.id) if (await store.mailbox_status(b.id)).messages]
        assert len(boxes) >= 3
        contents = {}
        for box in boxes:
            records = await store.list_messages(box.id)
            contents[box.id] = {r.uid: await store.read_blob(r.blob) for r in records}
        needles = ["the", "a", "re", "project", "Quarterly report", "é", "subject: ", "nothing like it"]
        needles += _needles(random.Random(3), {i: raw for c in contents.values() for i, raw in enumerate(c.values())}, 40)
        for state in ("unindexed", "partly", "indexed"):
            for box_id, raws in contents.items():
                await _assert_like_the_reference(store, box_id, raws, needles)
            if state == "unindexed":
                await store.index_unindexed(limit=3)
            else:
                while await store.index_unindexed() > 0:
                    pass
        assert _index_definition(db)[1] == [(INDEX_VERSION, 6)]
    finally:
        await store.close()


def _postings(db: Path, word: str) -> set[int]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT rowid FROM blob_trigrams WHERE blob_trigrams MATCH ?", (word,))}
    finally:
        conn.close()


async def test_postings_of_expunged_messages_are_removed_in_the_background(tmp_path: Path) -> None:
    """Removing postings means deriving each message's text again (milliseconds each): an
    expunge only queues them, and the background indexer removes them from the file in the
    blob trash; answers are the same before and after."""
    store = SqliteStore(tmp_path / "store.sqlite3", tmp_path / "blobs")
    try:
        rng = random.Random(21)
        box, raws = await _mailbox(store, rng, 12)
        while await store.index_unindexed() > 0:
            pass
        db = tmp_path / "store.sqlite3"
        indexed = _postings(db, "sender")
        assert len(indexed) == 12
        gone = sorted(raws)[:5]
        await store.expunge(box, gone)
        kept = {uid: raw for uid, raw in raws.items() if uid not in gone}
        needles = _needles(rng, kept, 30)
        await _assert_like_the_reference(store, box, kept, needles)
        assert _postings(db, "sender") == indexed  # queued, not removed yet
        assert await store.index_unindexed() == 5
        assert await store.index_unindexed() == 0
        assert len(_postings(db, "sender")) == 7
        await _assert_like_the_reference(store, box, kept, needles)
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("SELECT count(*) FROM text_to_forget").fetchone() == (0,)
            # The index is intact after the deletes (a wrong 'delete' text would damage it).
            conn.execute("INSERT INTO blob_trigrams(blob_trigrams, rank) VALUES ('integrity-check', 0)")
        finally:
            conn.close()
    finally:
        await store.close()
