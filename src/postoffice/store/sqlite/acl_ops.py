"""Mailbox sharing in SQLite: access control lists (RFC 4314 rights) per mailbox.

The owner of a mailbox always has every right and is never listed. Other accounts (by address)
and "anyone" (every authenticated user of this server) get the rights stored here.
"""

from __future__ import annotations

import sqlite3

from postoffice.store.interface import SharedMailbox
from postoffice.store.sqlite.mailbox_ops import _COLUMNS, _mailbox
from postoffice.store.sqlite.writer import Transaction

ANYONE = "anyone"


def set_rights(tx: Transaction, mailbox_id: int, identifier: str, rights: str) -> None:
    """Replace the rights of `identifier` on the mailbox; empty rights remove the entry."""
    if not rights:
        tx.execute("DELETE FROM acl WHERE mailbox_id = ? AND identifier = ?", (mailbox_id, identifier))
        return
    tx.execute(
        "INSERT INTO acl(mailbox_id, identifier, rights) VALUES (?, ?, ?)"
        " ON CONFLICT(mailbox_id, identifier) DO UPDATE SET rights = excluded.rights",
        (mailbox_id, identifier, rights),
    )


def get_acl(conn: sqlite3.Connection, mailbox_id: int) -> dict[str, str]:
    rows = conn.execute("SELECT identifier, rights FROM acl WHERE mailbox_id = ? ORDER BY identifier", (mailbox_id,))
    return {identifier: rights for identifier, rights in rows}


def shared_with(conn: sqlite3.Connection, address: str) -> list[SharedMailbox]:
    """Mailboxes of other accounts that `address` (or anyone) has some right on."""
    prefixed = ", ".join("m." + column.strip() for column in _COLUMNS.split(","))
    rows = conn.execute(
        f"SELECT a.address, group_concat(acl.rights, ''), {prefixed}"
        " FROM acl JOIN mailboxes m ON m.id = acl.mailbox_id JOIN accounts a ON a.id = m.account_id"
        " WHERE (acl.identifier = ? OR acl.identifier = ?) AND a.address <> ?"
        " GROUP BY m.id ORDER BY a.address, m.name",
        (address, ANYONE, address),
    ).fetchall()
    return [
        SharedMailbox(owner=row[0], rights="".join(sorted(set(row[1]))), mailbox=_mailbox(row[2:]))
        for row in rows
    ]
