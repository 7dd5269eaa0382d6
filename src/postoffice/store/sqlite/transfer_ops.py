"""SQLite rows for transfers: the fingerprint cache and the POP3 UIDLs kept from another server."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from postoffice.store.sqlite.writer import Transaction
from postoffice.store.transfer_interface import valid_uidl


def message_fingerprints(conn: sqlite3.Connection, mailbox_id: int) -> list[tuple[int, str, str | None]]:
    rows = conn.execute(
        "SELECT m.uid, b.sha256, f.fingerprint FROM messages m JOIN blobs b ON b.id = m.blob"
        " LEFT JOIN transfer_fingerprints f ON f.sha256 = b.sha256"
        " WHERE m.mailbox_id = ? ORDER BY m.uid",
        (mailbox_id,),
    ).fetchall()
    return [(uid, sha, fp) for uid, sha, fp in rows]


def save_fingerprints(tx: Transaction, fingerprints: Mapping[str, str]) -> None:
    tx.conn.executemany(
        "INSERT OR REPLACE INTO transfer_fingerprints(sha256, fingerprint) VALUES (?, ?)",
        list(fingerprints.items()),
    )


def keep_pop3_uidls(tx: Transaction, mailbox_id: int, uidvalidity: int, uidls: Mapping[int, str]) -> None:
    tx.conn.executemany(
        "INSERT OR REPLACE INTO transfer_pop3_uidls(mailbox_id, uid, uidvalidity, uidl)"
        " VALUES (?, ?, ?, ?)",
        [(mailbox_id, uid, uidvalidity, uidl) for uid, uidl in uidls.items() if valid_uidl(uidl)],
    )


def kept_pop3_uidls(conn: sqlite3.Connection, mailbox_id: int, uidvalidity: int) -> dict[int, str]:
    rows = conn.execute(
        "SELECT uid, uidl FROM transfer_pop3_uidls WHERE mailbox_id = ? AND uidvalidity = ?",
        (mailbox_id, uidvalidity),
    ).fetchall()
    return {uid: uidl for uid, uidl in rows}
