"""Schema upgrades of the SQLite store: one explicit step per version, all in one transaction.

`STEPS[n]` turns a schema-n database into a schema-(n+1) one. Steps are history: once released
a step never changes, because databases made by that release exist; a new schema version adds
a step. Each step handles every layout its version had (schema 1 gained columns and tables
without a version change while it was young; the oldest layout is kept as a test fixture in
tests/store/fixtures/).

Before the first step the database is copied, with SQLite's backup API (consistent, WAL
included), to ``<db>.pre-upgrade-v<n>`` beside it, and the copy is made durable. The steps, the
creation of what they leave missing and the new version number are one transaction, so a failed
step rolls back and leaves the database as it was; the error says so and names the copy anyway,
because an upgrade that fails for a reason outside SQLite (a full disk, a crash of the machine)
is where users want a file they can put back by hand.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from postoffice.store.interface import StoreError

__all__ = ["STEPS", "SchemaTooNew", "UpgradeFailed", "copy_before_upgrade", "stored_version"]


class SchemaTooNew(StoreError):
    """The database was written by a newer postoffice; this one must not touch it."""


class UpgradeFailed(StoreError):
    """A step failed; the transaction rolled back, so the database is as it was."""


def stored_version(conn: sqlite3.Connection) -> int | None:
    """The database's schema version; None for a new, empty database."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return None
    if "meta" not in tables:
        raise StoreError("The store file holds tables but no postoffice schema version: it is not a postoffice store.")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        raise StoreError("The store file has no schema version: it was not written by postoffice, or is damaged.")
    return int(row[0])


def copy_before_upgrade(conn: sqlite3.Connection, db_path: Path, version: int) -> Path | None:
    """A durable copy of the database as it is now, beside it; returns its path, or None when
    the copy is no longer at `version` (another process upgraded it meanwhile: no copy kept,
    so the one that process made is never replaced by an upgraded database)."""
    copy = db_path.with_name(f"{db_path.name}.pre-upgrade-v{version}")
    partial = copy.with_name(copy.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        target = sqlite3.connect(partial)
        try:
            conn.backup(target)
            target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            copied = stored_version(target)
        finally:
            target.close()
        if copied != version:
            partial.unlink()
            return None
        with open(partial, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(partial, copy)
        fd = os.open(copy.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except (OSError, sqlite3.Error) as error:
        partial.unlink(missing_ok=True)
        reason = getattr(error, "strerror", None) or str(error)
        raise UpgradeFailed(
            f"The store {db_path} needs an upgrade from schema {version}, but the copy taken first"
            f" could not be written to {copy} ({reason}); nothing was changed."
        ) from error
    return copy


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


# --- 1 -> 2 ---------------------------------------------------------------------------------

# The blobs table as schema 2 defined it (frozen here: later versions change it with steps).
_BLOBS_V2 = """
CREATE TABLE blobs_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256 TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    refcount INTEGER NOT NULL DEFAULT 0,
    structure TEXT NOT NULL,
    subject TEXT NOT NULL,
    from_ TEXT NOT NULL,
    to_ TEXT NOT NULL,
    cc TEXT NOT NULL,
    bcc TEXT NOT NULL,
    sent_date INTEGER,
    message_id TEXT,
    in_reply_to TEXT,
    refs TEXT NOT NULL,
    preview TEXT NOT NULL,
    text_version INTEGER NOT NULL
)"""
_BLOB_COLUMNS = ("id, sha256, size, refcount, structure, subject, from_, to_, cc, bcc, sent_date,"
                 " message_id, in_reply_to, refs, preview")


def _from_1(conn: sqlite3.Connection) -> None:
    """Schema 1 had a word index, which cannot answer substring searches: its table goes and
    every blob is marked unindexed (search reads such messages directly; the server indexes
    them in the background).

    The first schema-1 layout also reused blob ids (no AUTOINCREMENT, so a stale index row could
    match a new blob) and had no `text_version`: that table is rebuilt, ids kept. Its expunge
    tombstones lacked the blob and time, which later code reads: they get "none" and "long ago".
    """
    conn.execute("DROP TABLE IF EXISTS blob_text")
    blobs_sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'blobs'").fetchone()[0]
    if "text_version" in _columns(conn, "blobs") and "AUTOINCREMENT" in blobs_sql.upper():
        conn.execute("UPDATE blobs SET text_version = 0")
    else:
        # SQLite's table rebuild (https://sqlite.org/lang_altertable.html#otheralter): the
        # triggers that name `blobs` go first and come back with the current schema, so the
        # rename checks no trigger against a missing table. Foreign keys are off (the caller).
        for trigger in ("messages_added", "messages_removed", "queue_added", "queue_removed"):
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        conn.execute(_BLOBS_V2)
        conn.execute(f"INSERT INTO blobs_v2 ({_BLOB_COLUMNS}, text_version) SELECT {_BLOB_COLUMNS}, 0 FROM blobs")
        conn.execute("DROP TABLE blobs")
        conn.execute("ALTER TABLE blobs_v2 RENAME TO blobs")
    expunged = _columns(conn, "expunged")
    if "blob" not in expunged:
        conn.execute("ALTER TABLE expunged ADD COLUMN blob INTEGER NOT NULL DEFAULT 0")
    if "expunged_at" not in expunged:
        conn.execute("ALTER TABLE expunged ADD COLUMN expunged_at REAL NOT NULL DEFAULT 0")


# --- 2 -> 3 ---------------------------------------------------------------------------------


def _from_2(conn: sqlite3.Connection) -> None:
    """Schema 3 records what POP3 must do to a blob's bytes; older rows say "not known", which
    costs a download the scan it always paid."""
    if "wire_form" not in _columns(conn, "blobs"):
        conn.execute("ALTER TABLE blobs ADD COLUMN wire_form INTEGER NOT NULL DEFAULT 0")


# --- 3 -> 4 ---------------------------------------------------------------------------------


def _from_3(conn: sqlite3.Connection) -> None:
    """Schema 4 answers substring searches from the indexes alone: the trigram index gains
    positions (and holds text lowered by Python, compared case-sensitively), and a second index
    answers one- and two-character needles. The old index goes and every blob is marked
    unindexed; search reads those messages directly until the server has indexed them again."""
    conn.execute("DROP TABLE IF EXISTS blob_trigrams")
    conn.execute("UPDATE blobs SET text_version = 0")


STEPS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _from_1, 2: _from_2, 3: _from_3}
