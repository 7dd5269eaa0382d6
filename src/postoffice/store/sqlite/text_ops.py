"""Full-text search in SQLite: a trigram index finds candidates, the message text confirms them.

IMAP SEARCH BODY and TEXT are case-insensitive substring matches (RFC 9051 §6.4.4): "sdfghjk"
must find "asdfghjkl". `blob_trigrams` indexes every three-character sequence of each blob's
decoded header and body text (FTS5 trigram tokenizer, case-folded, detail=none: rowids only,
no positions). A needle of three or more characters can only occur in a blob that has all of
its trigrams, so an AND of them gives a small superset for a rare word; each candidate is then
read and checked against the needle, which makes the answer exact. Shorter needles, and blobs
not indexed yet, are checked without the index.

Indexing is not part of storing a message: trigram postings cost about 0.4 ms of the single
writer's time per message, which would halve import and SMTP ingest rates. Blobs are stored with
`text_version` 0 and the server indexes them in the background (`index_unindexed`): the text is
derived in a reader thread and only the inserts take the write lock, a small batch at a time.
Until then a blob is simply a candidate for every search, so answers are the same, only slower.

The index is contentless, so a posting can only be removed by supplying the very text that was
indexed: it is derived again from the blob file (`forget_text`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from postoffice.message.mime import parse_message
from postoffice.store.blobs import BlobStore

# Bump whenever `indexed_text` changes: removing postings needs exactly the text that was indexed,
# so rows made by another version are left in place instead (they only add candidates, which
# search confirms against the text), and their blobs are indexed again (see schema.py).
INDEX_VERSION = 2
UNINDEXED = 0

# An AND of this many of the needle's trigrams narrows candidates as well as all of them would
# for any real word, and keeps a pasted paragraph from becoming a thousand-term query.
_MAX_TRIGRAMS = 24

IndexedText = tuple[int, str, str]  # blob id, header text, body text


def indexed_text(raw: bytes) -> tuple[str, str]:
    """What the index holds for a message: its decoded header fields and its decoded text."""
    meta = parse_message(raw)
    return meta.headers.header_text, meta.text


def unindexed_texts(conn: sqlite3.Connection, blobs: BlobStore, limit: int) -> list[IndexedText]:
    """The text of up to `limit` blobs not in the index yet (reader side: no lock held).

    A blob whose file is gone gets empty text: there is nothing a search could read either.
    """
    rows = conn.execute(
        f"SELECT id, sha256 FROM blobs WHERE text_version = {UNINDEXED} LIMIT ?", (limit,)
    ).fetchall()
    texts = []
    for blob_id, sha256 in rows:
        try:
            texts.append((blob_id, *indexed_text(blobs.read(sha256))))
        except FileNotFoundError:
            texts.append((blob_id, "", ""))
    return texts


def add_texts(conn: sqlite3.Connection, texts: Sequence[IndexedText]) -> int:
    """Index the given texts, in the caller's write transaction; skips blobs indexed or removed
    since they were read. Returns how many were added."""
    added = 0
    for blob_id, headers, body in texts:
        marked = conn.execute(
            f"UPDATE blobs SET text_version = ? WHERE id = ? AND text_version = {UNINDEXED}",
            (INDEX_VERSION, blob_id),
        ).rowcount
        if marked:
            conn.execute("INSERT INTO blob_trigrams(rowid, headers, body) VALUES (?, ?, ?)", (blob_id, headers, body))
            added += 1
    return added


def forget_text(conn: sqlite3.Connection, blobs: BlobStore, blob_id: int, sha256: str, version: int) -> None:
    """Remove a blob's postings from the contentless index (before its file is removed).

    FTS5 needs the very text that was indexed: it is derived again from the file. Without the
    file, or from another indexer version, the postings stay: blob ids are never reused, so they
    only ever add a candidate that no message has.
    """
    if version != INDEX_VERSION:
        return
    try:
        headers, body = indexed_text(blobs.read(sha256))
    except FileNotFoundError:
        return
    conn.execute(
        "INSERT INTO blob_trigrams(blob_trigrams, rowid, headers, body) VALUES ('delete', ?, ?, ?)",
        (blob_id, headers, body),
    )


def trigrams(needle: str) -> list[str]:
    """The distinct trigrams of `needle` (at most `_MAX_TRIGRAMS`, spread over all of it)."""
    grams = list(dict.fromkeys(needle[i:i + 3] for i in range(len(needle) - 2)))
    if len(grams) > _MAX_TRIGRAMS:
        step = len(grams) / _MAX_TRIGRAMS
        grams = [grams[int(i * step)] for i in range(_MAX_TRIGRAMS)] + [grams[-1]]
    return grams


def search_text(
    conn: sqlite3.Connection, blobs: BlobStore, mailbox_id: int, query: str, headers: bool, body: bool
) -> set[int]:
    """UIDs of the mailbox's messages whose decoded text contains `query`, ignoring case.

    `headers` and `body` choose what to look in (IMAP TEXT: both; BODY: the body). Messages
    expunged but still readable by sessions not yet told are searched too.
    """
    if not (headers or body):
        return set()
    needle = query.lower()
    found: set[int] = set()
    checked: dict[str, bool] = {}
    for uid, sha256 in _candidates(conn, mailbox_id, needle):
        if sha256 not in checked:
            checked[sha256] = _contains(blobs, sha256, needle, headers, body)
        if checked[sha256]:
            found.add(uid)
    return found


def _candidates(conn: sqlite3.Connection, mailbox_id: int, needle: str) -> list[tuple[int, str]]:
    live = "SELECT m.uid, b.sha256 FROM messages m JOIN blobs b ON b.id = m.blob WHERE m.mailbox_id = ?"
    gone = "SELECT e.uid, b.sha256 FROM expunged e JOIN blobs b ON b.id = e.blob WHERE e.mailbox_id = ?"
    grams = trigrams(needle)
    if not grams:  # shorter than a trigram: every message is a candidate
        return conn.execute(f"{live} UNION ALL {gone}", (mailbox_id, mailbox_id)).fetchall()
    match = " AND ".join('"' + g.replace('"', '""') + '"' for g in grams)
    hits = "(SELECT rowid FROM blob_trigrams WHERE blob_trigrams MATCH ? UNION ALL" \
        f" SELECT id FROM blobs WHERE text_version = {UNINDEXED})"
    return conn.execute(
        f"{live} AND m.blob IN {hits} UNION ALL {gone} AND e.blob IN {hits}",
        (mailbox_id, match, mailbox_id, match),
    ).fetchall()


def _contains(blobs: BlobStore, sha256: str, needle: str, headers: bool, body: bool) -> bool:
    try:
        header_text, text = indexed_text(blobs.read(sha256))
    except FileNotFoundError:  # an expunged message whose file has gone since
        return False
    return (body and needle in text.lower()) or (headers and needle in header_text.lower())
