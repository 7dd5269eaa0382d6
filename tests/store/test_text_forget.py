"""Removing full-text postings of a removed blob never stops the indexer (text_ops.forget_texts).

Seen in CI: after SIGKILLs (tests/queue/test_queue_crash.py) a queued removal's text did not match
its postings, FTS5 refused the delete as "database disk image is malformed", and since the queue is
worked first, indexing stopped for good. The cause is reproduced at the end of this file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from postoffice.store.interface import NewMessage
from postoffice.store.sqlite import text_ops
from postoffice.store.sqlite.store import SqliteStore
from postoffice.store.sqlite.writer import Transaction
from store_kit import new_account


def _index() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE VIRTUAL TABLE blob_trigrams USING fts5(headers, body, header_words, body_words,"
                 " content = '', detail = full, tokenize = 'trigram case_sensitive 1')")
    conn.execute("CREATE VIRTUAL TABLE blob_short_grams USING fts5(grams, content = '', detail = none,"
                 " tokenize = 'ascii')")
    conn.execute("CREATE TABLE text_to_forget (blob_id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL)")
    return conn


def test_a_removal_whose_text_does_not_match_leaves_the_postings_and_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    conn = _index()
    indexed = text_ops.index_row(1, b"Subject: hello world\r\n\r\nthe quick brown fox\r\n")
    kept = text_ops.index_row(2, b"Subject: other\r\n\r\njumps over the lazy dog\r\n")
    conn.execute("BEGIN")
    for row in (indexed, kept):
        text_ops._postings(conn, row, "")  # what add_texts inserts for an indexed blob
    conn.execute("INSERT INTO text_to_forget VALUES (1, 'a'), (2, 'b')")
    conn.execute("COMMIT")
    # Blob 1's text as derived now differs from what was indexed: FTS5 calls that a malformed
    # database. Blob 2's matches and must still be removed in the same pass.
    wrong = text_ops.index_row(1, b"Subject: zzz\r\n\r\ncompletely different text\r\n")
    for _ in range(2):  # the indexer's passes, each its own write transaction
        queued = {r[0] for r in conn.execute("SELECT blob_id FROM text_to_forget")}
        conn.execute("BEGIN")
        text_ops.forget_texts(conn, [(i, r) for i, r in ((1, wrong), (2, kept)) if i in queued])
        conn.execute("COMMIT")

    assert conn.execute("SELECT count(*) FROM text_to_forget").fetchone()[0] == 0
    assert "left in place" in caplog.text
    # Indexing goes on: a new blob is indexed and found. (What FTS5 keeps of the rows around a
    # refused delete is its own affair; those postings name no message either way.)
    text_ops._postings(conn, text_ops.index_row(3, b"Subject: new\r\n\r\nxylophone recital\r\n"), "")
    assert {r[0] for r in conn.execute("SELECT rowid FROM blob_trigrams WHERE blob_trigrams MATCH 'xylophone'")} == {3}


# The cause, reproduced on a real store: a SIGKILL between moving a removed blob's file to the
# trash and the COMMIT that deletes its row (message_ops.remove_unreferenced_blobs) leaves the row
# and no file. The indexer then came to that row, found no file and indexed empty text; the
# removal that followed derived the full text from the trash, and FTS5 refused the delete.

RAW = b"From: a@example.org\r\nSubject: crash window\r\n\r\nthe zebracorn file\r\n"


async def _blob_left_by_a_kill(tmp_path: Path) -> tuple[SqliteStore, int, int, str]:
    store = SqliteStore(tmp_path / "store.sqlite3", tmp_path / "blobs")
    account = await new_account(store)
    box = await store.get_mailbox(account.id, "INBOX")
    assert box is not None
    blob = await store.put_blob(RAW)
    await store.append_messages(box.id, [NewMessage(blob, raw=RAW)])

    def killed_mid_sweep(tx: Transaction) -> int:
        # What the killed sweep left: the message gone, its blob unreferenced, the file in the
        # trash, the blob row still there (its COMMIT never happened).
        tx.execute("DELETE FROM messages")
        tx.execute("UPDATE blobs SET refcount = 0")
        assert tx.blobs.remove(blob.sha256)
        return int(tx.execute("SELECT id FROM blobs").fetchone()[0])

    blob_id = await store.run_write(killed_mid_sweep)
    return store, box.id, blob_id, blob.sha256


async def test_a_blob_row_left_without_its_file_is_removed_later_without_a_refused_delete(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store, _, blob_id, _ = await _blob_left_by_a_kill(tmp_path)
    try:
        while await store.index_unindexed() > 0:  # the restarted server's indexer
            pass
        version = await store.run_read(lambda c: c.execute("SELECT text_version FROM blobs").fetchone()[0])
        assert version == text_ops.FILE_MISSING
        await store.collect_garbage()  # the sweep runs again and removes the row
        queued = await store.run_read(lambda c: c.execute("SELECT count(*) FROM text_to_forget").fetchone()[0])
        assert queued == 0  # nothing of it was indexed, so nothing is to be removed
        while await store.index_unindexed() > 0:
            pass
        assert "left in place" not in caplog.text
        postings = await store.run_read(
            lambda c: c.execute("SELECT count(*) FROM blob_trigrams WHERE rowid = ?", (blob_id,)).fetchone()[0])
        assert postings == 0
    finally:
        await store.close()


async def test_the_same_message_delivered_again_after_the_kill_is_found_by_search(tmp_path: Path) -> None:
    store, box_id, _, _ = await _blob_left_by_a_kill(tmp_path)
    try:
        while await store.index_unindexed() > 0:
            pass
        blob = await store.put_blob(RAW)  # the sender retries: the same bytes, the same blob row
        [appended] = await store.append_messages(box_id, [NewMessage(blob, raw=RAW)])
        while await store.index_unindexed() > 0:
            pass
        assert await store.search_text(box_id, "zebracorn", headers=True, body=True) == {appended.uid}
        assert await store.search_text(box_id, "crash window", headers=True, body=False) == {appended.uid}
    finally:
        await store.close()
