"""Full-text search in SQLite: indexes that answer substring searches exactly, by themselves.

IMAP SEARCH BODY and TEXT are case-insensitive substring matches (RFC 9051 §6.4.4): "sdfghjk"
must find "asdfghjkl". The answer is `query.lower() in text.lower()`, where the text is the
decoded header fields (TEXT) and the decoded text parts (BODY and TEXT) of the message
(`indexed_text`). The indexes hold that text lowered by Python, and the needle is lowered the
same way, so case folding is Python's (full Unicode, "İ" -> "i̇" included) and never SQLite's
older tables: the indexes compare code points exactly (`case_sensitive 1`).

`blob_trigrams` (FTS5 trigram tokenizer, detail=full) has every three-character sequence with
its position, so a phrase query of the needle's trigrams is exactly "the needle occurs here",
and no message is read to confirm it. Its columns:

- `headers`, `body`: the text itself. Needles with a separator (white space or ASCII
  punctuation: "the mail", "alice.smith") are looked up here; the cost follows how often the
  needle's trigrams occur.
- `header_words`, `body_words`: each distinct word of the text once (words: maximal runs of
  non-separators). A needle without a separator occurs in the text exactly when it occurs
  within one word, so these answer it; a word used 50 times in a message is in them once, which
  makes a common word cost one short position list per message instead of 50 (about 20 times
  less on the benchmark's mail than the text columns).

`blob_short_grams` (detail=none) has, per message, the distinct characters and pairs of
characters of each text, each one token (hex, so any character is one); a needle of one or two
characters is one token lookup.

Indexing is not part of storing a message: it would halve import and SMTP ingest rates. Blobs
are stored with `text_version` 0 and the server indexes them in the background
(`index_unindexed`): the text is derived in a reader thread and only the inserts take the write
lock, a batch of a bounded amount of text at a time. Until then a blob is read and checked by
search itself, so answers are the same, only slower for those messages.

Both indexes are contentless (the text is not stored a second time), so postings are removed by
supplying the very text that was indexed: when a blob is removed it is queued (`forget_later`),
and the background indexer derives the text again from the file in the blob trash and removes
the postings, a batch at a time (`forgotten_texts`, `forget_texts`).
"""

from __future__ import annotations

import logging
import operator
import re
import sqlite3
import sys
from array import array
from collections.abc import Sequence
from typing import NamedTuple

from postoffice.message.mime import parse_message
from postoffice.store.blobs import BlobStore

log = logging.getLogger("postoffice")

# Bump whenever `indexed_text` or `short_grams` change: removing postings needs exactly the text
# that was indexed, so blobs indexed by another version are indexed again (see schema.py).
# 3: Python-lowered text, positions (detail=full), word columns, and the short-gram index.
INDEX_VERSION = 3
UNINDEXED = 0
# A blob whose file was gone when the indexer came to it: nothing of it is in the indexes, so its
# removal queues nothing. (Indexing it as empty text was wrong: after a SIGKILL between moving a
# removed blob's file to the trash and the COMMIT deleting its row, the row stays, the indexer
# found no file, and the removal later derived the full text from the trash, which FTS5 refused
# as "database disk image is malformed".) The store resets it to UNINDEXED when it opens and when
# the same bytes are delivered again.
FILE_MISSING = -1
# A blob only the outbound queue refers to (IndexedBlob.queue_only): not parsed, not indexed (no
# search ever looks at it). A message that arrives with the same bytes fills its fields and sets
# it to UNINDEXED (message_ops.insert_blob).
QUEUE_ONLY = -2

# Text per write batch of the background indexer (with at most 16 messages, see store.py): a
# batch holds the single writer for tens of milliseconds, so deliveries never wait long.
_BATCH_CHARS = 256 * 1024


# What separates words (see the module docstring). Any split is exact for a needle without these
# characters; white space and ASCII punctuation make words what people search for.
_SEPARATOR_RUN = re.compile(r"[\s!-/:-@\[-`{-~]+")  # Unicode white space, ASCII punctuation


def indexed_text(raw: bytes) -> tuple[str, str]:
    """What the indexes hold for a message: its decoded header fields and its decoded text,
    lowered by Python (the folding SEARCH uses for the needle)."""
    meta = parse_message(raw)
    return _bindable(meta.headers.header_text.lower()), _bindable(meta.text.lower())


class IndexRow(NamedTuple):
    """What the indexes hold for one blob, all derived on the reader side, so that the writer
    only inserts (or deletes) it."""

    blob_id: int
    headers: str
    body: str
    header_words: str
    body_words: str
    grams: str
    file_missing: bool = False  # nothing to index (see FILE_MISSING)


def index_row(blob_id: int, raw: bytes | None) -> IndexRow:
    """The index row of a blob's bytes (None: a file that is gone, with nothing to find)."""
    if raw is None:
        return IndexRow(blob_id, "", "", "", "", "", file_missing=True)
    headers, body = indexed_text(raw)
    return IndexRow(blob_id, headers, body, distinct_words(headers), distinct_words(body), short_grams(headers, body))


def _bindable(text: str) -> str:
    """SQLite takes UTF-8: a lone surrogate (never in decoded text, but cheap to be sure of)
    becomes U+FFFD. A needle holding one is answered without the index (see `search_text`)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def distinct_words(text: str) -> str:
    """The distinct words of `text`, one per line (a newline is a separator, so no needle
    without one matches across two of them)."""
    return "\n".join(dict.fromkeys(_SEPARATOR_RUN.split(text)))


def _has_separator(needle: str) -> bool:
    return _SEPARATOR_RUN.search(needle) is not None


def short_grams(headers: str, body: str) -> str:
    """The `blob_short_grams` document: one token per distinct character and pair of characters
    of each text, its UTF-8 in hex after a letter saying which text and which length."""
    tokens: list[str] = []
    for text, one, two in ((headers, "h", "g"), (body, "b", "c")):
        tokens.extend(one + ch.encode().hex() for ch in set(text))
        if text.isascii():
            tokens.extend(two + pair for pair in _ascii_pairs(text))
        else:
            tokens.extend(two + pair.encode().hex() for pair in set(map(operator.add, text, text[1:])))
    return " ".join(tokens)


_HEX = [f"{byte:02x}" for byte in range(256)]


def _ascii_pairs(text: str) -> list[str]:
    """The distinct pairs of adjacent characters of ASCII `text`, in hex: the pairs read as
    16-bit numbers at even and at odd offsets, which makes no string per position (a third of
    the cost of the general way, which was a fifth of indexing a message)."""
    raw = text.encode("ascii")
    pairs: set[int] = set()
    for start in (0, 1):
        numbers = array("H")
        numbers.frombytes(raw[start:start + (len(raw) - start) // 2 * 2])
        pairs.update(numbers)
    if sys.byteorder == "little":
        return [_HEX[n & 255] + _HEX[n >> 8] for n in pairs]
    return [_HEX[n >> 8] + _HEX[n & 255] for n in pairs]


def _short_gram_query(needle: str, headers: bool, body: bool) -> str:
    one = len(needle) == 1
    hexed = needle.encode().hex()
    wanted = ([("h" if one else "g")] if headers else []) + ([("b" if one else "c")] if body else [])
    return " OR ".join(f"{kind}{hexed}" for kind in wanted)


def _phrase_query(needle: str, headers: bool, body: bool) -> str:
    text = _has_separator(needle)  # else a word's part: looked up in the words
    chosen = (("headers" if text else "header_words", headers), ("body" if text else "body_words", body))
    columns = " ".join(name for name, wanted in chosen if wanted)
    return "{" + columns + "}: \"" + needle.replace('"', '""') + '"'


def unindexed_texts(conn: sqlite3.Connection, blobs: BlobStore, limit: int, after: int = 0) -> list[IndexRow]:
    """The index rows of up to `limit` blobs not in the index yet with ids above `after`, and at
    most about `_BATCH_CHARS` of text (reader side: no lock held). A blob whose file is gone gets
    empty text: there is nothing a search could read either."""
    rows = conn.execute(
        f"SELECT id, sha256 FROM blobs WHERE text_version = {UNINDEXED} AND id > ? ORDER BY id LIMIT ?",
        (after, limit),
    ).fetchall()
    texts: list[IndexRow] = []
    size = 0
    for blob_id, sha256 in rows:
        try:
            raw: bytes | None = blobs.read(sha256)
        except FileNotFoundError:
            raw = None
        texts.append(index_row(blob_id, raw))
        size += len(texts[-1].headers) + len(texts[-1].body)
        if size >= _BATCH_CHARS:
            break
    return texts


def text_backlog(conn: sqlite3.Connection, cap: int) -> tuple[int, int]:
    """(the highest blob id, blobs to index or to forget, counted up to `cap` each): both
    through indexes, so a look costs the same whatever the store's size."""
    newest, waiting = conn.execute(  # one statement: one snapshot (a new blob counted is the newest)
        f"SELECT (SELECT coalesce(max(id), 0) FROM blobs),"
        f" (SELECT count(*) FROM (SELECT 1 FROM blobs WHERE text_version = {UNINDEXED} LIMIT ?))"
        " + (SELECT count(*) FROM (SELECT 1 FROM text_to_forget LIMIT ?))",
        (cap, cap),
    ).fetchone()
    return newest, waiting


def add_texts(conn: sqlite3.Connection, texts: Sequence[IndexRow]) -> int:
    """Index the given rows, in the caller's write transaction; skips blobs indexed or removed
    since they were read. Returns how many were added (a blob whose file is gone is marked
    FILE_MISSING and given no postings)."""
    added = 0
    for row in texts:
        marked = conn.execute(
            f"UPDATE blobs SET text_version = ? WHERE id = ? AND text_version = {UNINDEXED}",
            (FILE_MISSING if row.file_missing else INDEX_VERSION, row.blob_id),
        ).rowcount
        if marked and not row.file_missing:
            _postings(conn, row, "")
            added += 1
    return added


def _postings(conn: sqlite3.Connection, row: IndexRow, command: str) -> None:
    """Insert the row's postings, or with command 'delete' remove them."""
    first, value = ("blob_trigrams, ", "'delete', ") if command else ("", "")
    conn.execute(
        f"INSERT INTO blob_trigrams({first}rowid, headers, body, header_words, body_words)"
        f" VALUES ({value}?, ?, ?, ?, ?)",
        row[:5],
    )
    first = "blob_short_grams, " if command else ""
    conn.execute(f"INSERT INTO blob_short_grams({first}rowid, grams) VALUES ({value}?, ?)", (row.blob_id, row.grams))


def forget_later(conn: sqlite3.Connection, blob_id: int, sha256: str, version: int) -> None:
    """Queue the postings of a blob being removed for the background indexer (`forgotten_texts`,
    `forget_texts`), in the caller's write transaction: deriving the text again and removing
    its postings costs milliseconds per message, which an expunge of thousands must not spend
    holding the write lock. Until then the postings name a blob no message has (blob ids are
    never reused), so no search finds them."""
    if version == INDEX_VERSION:
        conn.execute("INSERT OR IGNORE INTO text_to_forget(blob_id, sha256) VALUES (?, ?)", (blob_id, sha256))


def forgotten_texts(conn: sqlite3.Connection, blobs: BlobStore, limit: int) -> list[tuple[int, IndexRow | None]]:
    """The index rows of up to `limit` removed blobs, derived again from their files in the
    blob trash (reader side: no lock held); None when the file is gone (trash purged, or kept
    0 days): those postings stay, naming no message."""
    found: list[tuple[int, IndexRow | None]] = []
    for blob_id, sha256 in conn.execute("SELECT blob_id, sha256 FROM text_to_forget LIMIT ?", (limit,)).fetchall():
        row = None
        for path in (blobs.trash.root / sha256, blobs.path(sha256)):  # the same bytes if delivered again
            try:
                row = index_row(blob_id, path.read_bytes())
                break
            except FileNotFoundError:
                continue
        found.append((blob_id, row))
    return found


def forget_texts(conn: sqlite3.Connection, texts: Sequence[tuple[int, IndexRow | None]]) -> None:
    """Remove the postings of `texts` (from `forgotten_texts`), in the caller's write transaction.

    FTS5 needs the very text that was indexed, and a second 'delete' of a row would damage the
    index: the queue row goes in the same transaction, and a row already gone is skipped."""
    for blob_id, row in texts:
        if conn.execute("DELETE FROM text_to_forget WHERE blob_id = ?", (blob_id,)).rowcount and row is not None:
            # FTS5 refuses a delete whose text does not match its postings ("database disk image
            # is malformed"): undo that row's attempt only and leave its postings, which name no
            # message. Without this, one such row would stop all indexing for good, since the
            # queue is worked first and the same row would fail again every minute.
            # FTS5 is left unsure of its pending changes after such an error, so the rest of
            # the batch waits for the next pass, in a transaction of its own.
            conn.execute("SAVEPOINT forget_one")
            try:
                _postings(conn, row, "delete")
            except sqlite3.DatabaseError as error:
                conn.execute("ROLLBACK TO forget_one")
                conn.execute("RELEASE forget_one")
                log.warning("full-text postings of removed blob %d left in place: %s", blob_id, error)
                return
            conn.execute("RELEASE forget_one")


_LIVE = "SELECT m.uid, b.sha256 FROM messages m JOIN blobs b ON b.id = m.blob WHERE m.mailbox_id = ?"
_GONE = "SELECT e.uid, b.sha256 FROM expunged e JOIN blobs b ON b.id = e.blob WHERE e.mailbox_id = ?"


# Blob ids a search part covers: all of them by default.
ALL_BLOBS = (0, 2**63 - 1)


def searched_by_index(query: str) -> bool:
    """Whether `search_text` answers `query` from an index (so it may be split by blob id)."""
    needle = query.lower()
    return bool(needle) and "\x00" not in needle and needle == _bindable(needle)


def search_text(
    conn: sqlite3.Connection, blobs: BlobStore, mailbox_id: int, query: str, headers: bool, body: bool,
    blob_range: tuple[int, int] = ALL_BLOBS,
) -> set[int]:
    """UIDs of the mailbox's messages whose decoded text contains `query`, ignoring case.

    `headers` and `body` choose what to look in (IMAP TEXT: both; BODY: the body). Messages
    expunged but still readable by sessions not yet told are searched too. The query runs in
    SQLite's C code (which lets go of the GIL), so other sessions go on meanwhile; only messages
    not indexed yet are read and parsed here. `blob_range` (first, last blob id) limits the
    search to the messages whose blobs it holds, so that parts of one search can run on several
    reader threads at once (for a query `searched_by_index` answers).
    """
    if not (headers or body):
        return set()
    needle = query.lower()
    if not needle:
        return {uid for uid, _sha in _messages(conn, mailbox_id)}
    if "\x00" in needle or needle != _bindable(needle):
        # SQLite reads a MATCH expression up to its first NUL; no text holds a lone surrogate.
        return _read_and_check(blobs, _messages(conn, mailbox_id), needle, headers, body)
    if len(needle) < 3:
        table, match = "blob_short_grams", _short_gram_query(needle, headers, body)
    else:
        table, match = "blob_trigrams", _phrase_query(needle, headers, body)
    first, last = blob_range
    # One read transaction: a blob the indexer adds meanwhile is either a hit or unindexed.
    conn.execute("BEGIN")
    try:
        found = {uid for (uid,) in conn.execute(
            f"WITH hits(id) AS MATERIALIZED (SELECT rowid FROM {table} WHERE {table} MATCH ?"
            " AND rowid BETWEEN ? AND ?)"
            " SELECT uid FROM messages WHERE mailbox_id = ? AND blob IN hits"
            # an expunged message's blob may be gone while its postings wait (forget_later)
            " UNION ALL SELECT e.uid FROM expunged e JOIN blobs b ON b.id = e.blob"
            " WHERE e.mailbox_id = ? AND e.blob IN hits",
            (match, first, last, mailbox_id, mailbox_id),
        )}
        unindexed = conn.execute(_UNINDEXED, (mailbox_id, first, last, mailbox_id, first, last)).fetchall()
    finally:
        conn.execute("COMMIT")
    return found | _read_and_check(blobs, unindexed, needle, headers, body)


# From the few unindexed blobs to their messages (CROSS JOIN keeps that order: starting from the
# mailbox's messages would look up every one of their blobs).
_UNINDEXED = (
    f"SELECT m.uid, b.sha256 FROM blobs b CROSS JOIN messages m ON m.blob = b.id"
    f" WHERE b.text_version = {UNINDEXED} AND m.mailbox_id = ? AND b.id BETWEEN ? AND ?"
    f" UNION ALL SELECT e.uid, b.sha256 FROM blobs b CROSS JOIN expunged e ON e.blob = b.id"
    f" WHERE b.text_version = {UNINDEXED} AND e.mailbox_id = ? AND b.id BETWEEN ? AND ?"
)


def _messages(conn: sqlite3.Connection, mailbox_id: int) -> list[tuple[int, str]]:
    return conn.execute(f"{_LIVE} UNION ALL {_GONE}", (mailbox_id, mailbox_id)).fetchall()


def _read_and_check(blobs: BlobStore, messages: list[tuple[int, str]], needle: str,
                    headers: bool, body: bool) -> set[int]:
    """The messages among `messages` whose text holds `needle`, each blob read and parsed once."""
    found: set[int] = set()
    checked: dict[str, bool] = {}
    for uid, sha256 in messages:
        if sha256 not in checked:
            checked[sha256] = _contains(blobs, sha256, needle, headers, body)
        if checked[sha256]:
            found.add(uid)
    return found


def _contains(blobs: BlobStore, sha256: str, needle: str, headers: bool, body: bool) -> bool:
    try:
        meta = parse_message(blobs.read(sha256))
    except FileNotFoundError:  # an expunged message whose file has gone since
        return False
    return (body and needle in meta.text.lower()) or (headers and needle in meta.headers.header_text.lower())
