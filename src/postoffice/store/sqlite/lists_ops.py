"""The local block and allow lists in SQLite (`postoffice block|allow`).

Every change also bumps `meta.access_lists_version` in the same transaction: a running server
reads that one row per connection and reloads the lists only when it moved, so an admin
command in another process takes effect at the next connection.
"""

from __future__ import annotations

import sqlite3
import time

from postoffice.store.interface import AccessEntry, AccessListName
from postoffice.store.sqlite.writer import Transaction

_VERSION_KEY = "access_lists_version"


def _bump(tx: Transaction) -> None:
    tx.execute(
        "INSERT INTO meta(key, value) VALUES (?, '1')"
        " ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        (_VERSION_KEY,),
    )


def add_access_entry(tx: Transaction, entry: AccessEntry) -> bool:
    existed = tx.execute(
        "SELECT 1 FROM access_entries WHERE list = ? AND value = ?", (entry.list, entry.value)
    ).fetchone()
    tx.execute(
        "INSERT INTO access_entries(list, value, kind, reason, created) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT(list, value) DO UPDATE SET reason = excluded.reason",
        (entry.list, entry.value, entry.kind, entry.reason, entry.created or time.time()),
    )
    _bump(tx)
    return existed is None


def remove_access_entry(tx: Transaction, list_name: AccessListName, value: str) -> bool:
    removed = tx.execute(
        "DELETE FROM access_entries WHERE list = ? AND value = ?", (list_name, value)
    ).rowcount
    if removed:
        _bump(tx)
    return bool(removed)


def list_access_entries(conn: sqlite3.Connection, list_name: AccessListName | None) -> list[AccessEntry]:
    rows = conn.execute(
        "SELECT list, kind, value, reason, created FROM access_entries"
        " WHERE ?1 IS NULL OR list = ?1 ORDER BY list, created, value",
        (list_name,),
    ).fetchall()
    return [AccessEntry(*row) for row in rows]


def access_lists_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_VERSION_KEY,)).fetchone()
    return int(row[0]) if row is not None else 0
