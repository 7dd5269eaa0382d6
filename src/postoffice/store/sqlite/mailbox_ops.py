"""Mailboxes in SQLite: create, rename, delete, status, \\Recent bookkeeping.

UIDVALIDITY comes from a counter in `meta` that only moves forward (seeded with the clock), so a
mailbox deleted and created again under the same name never repeats a uidvalidity
(RFC 9051 §2.3.1.1).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from typing import Any

from postoffice.store.changes import ChangeKind, MailboxChange
from postoffice.store.interface import (
    DELETED,
    SEEN,
    AlreadyExists,
    InvalidName,
    MailboxNotFound,
    MailboxRecord,
    MailboxStatus,
    StoreError,
)
from postoffice.store.mailbox_names import HIERARCHY, check_name, normalize_name
from postoffice.store.sqlite.writer import Transaction

_COLUMNS = "id, account_id, name, special_use, subscribed, uidvalidity, uidnext, highestmodseq, first_recent_uid"


def _mailbox(row: tuple[Any, ...]) -> MailboxRecord:
    return MailboxRecord(
        id=row[0], account_id=row[1], name=row[2], special_use=row[3], subscribed=bool(row[4]),
        uidvalidity=row[5], uidnext=row[6], highestmodseq=row[7], first_recent_uid=row[8],
    )


def next_uidvalidity(tx: Transaction) -> int:
    row = tx.execute("SELECT value FROM meta WHERE key = 'uidvalidity'").fetchone()
    value = max(int(time.time()), int(row[0]) + 1 if row else 0)
    tx.execute(
        "INSERT INTO meta(key, value) VALUES ('uidvalidity', ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (str(value),),
    )
    return value


def create_mailbox(
    tx: Transaction, account_id: int, name: str, special_use: str | None, subscribed: bool = False
) -> MailboxRecord:
    name = check_name(name)
    try:
        cur = tx.execute(
            "INSERT INTO mailboxes(account_id, name, special_use, uidvalidity, subscribed)"
            f" VALUES (?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
            (account_id, name, special_use, next_uidvalidity(tx), int(subscribed)),
        )
    except sqlite3.IntegrityError:
        raise AlreadyExists(f"The mailbox {name} already exists.") from None
    mailbox = _mailbox(cur.fetchone())
    if tx.execute(
        "DELETE FROM dangling_subscriptions WHERE account_id = ? AND name = ?", (account_id, name)
    ).rowcount:  # the name was subscribed while it did not exist: it still is
        tx.execute("UPDATE mailboxes SET subscribed = 1 WHERE id = ?", (mailbox.id,))
        mailbox = replace(mailbox, subscribed=True)
    tx.changes.append(MailboxChange(mailbox.id, ChangeKind.MAILBOX, mailbox.highestmodseq))
    return mailbox


def get_mailbox(conn: sqlite3.Connection, account_id: int, name: str) -> MailboxRecord | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM mailboxes WHERE account_id = ? AND name = ?",
        (account_id, normalize_name(name)),
    ).fetchone()
    return _mailbox(row) if row else None


def special_use_mailbox(tx: Transaction, account_id: int, special_use: str) -> MailboxRecord:
    """The account's mailbox with this RFC 6154 attribute (``\\Junk``), made if it has none.

    A user may have deleted or renamed it: then the mailbox named after the attribute (``Junk``)
    is used, or created with the attribute, so filed mail always lands somewhere visible.
    """
    row = tx.conn.execute(
        f"SELECT {_COLUMNS} FROM mailboxes WHERE account_id = ? AND lower(special_use) = lower(?)"
        " ORDER BY id LIMIT 1",
        (account_id, special_use),
    ).fetchone()
    if row:
        return _mailbox(row)
    name = special_use.lstrip("\\")
    return get_mailbox(tx.conn, account_id, name) or create_mailbox(
        tx, account_id, name, special_use, subscribed=True)


def get_mailbox_by_id(conn: sqlite3.Connection, mailbox_id: int) -> MailboxRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
    return _mailbox(row) if row else None


def require_mailbox(conn: sqlite3.Connection, mailbox_id: int) -> MailboxRecord:
    mailbox = get_mailbox_by_id(conn, mailbox_id)
    if mailbox is None:
        raise MailboxNotFound("The mailbox no longer exists.")
    return mailbox


def list_mailboxes(conn: sqlite3.Connection, account_id: int) -> list[MailboxRecord]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM mailboxes WHERE account_id = ? ORDER BY name <> 'INBOX', name",
        (account_id,),
    ).fetchall()
    return [_mailbox(r) for r in rows]


def rename_mailbox(tx: Transaction, account_id: int, old: str, new: str) -> MailboxRecord:
    old, new = normalize_name(old), check_name(new)
    source = get_mailbox(tx.conn, account_id, old)
    if source is None:
        raise MailboxNotFound(f"There is no mailbox {old}.")
    if get_mailbox(tx.conn, account_id, new) is not None:
        raise AlreadyExists(f"The mailbox {new} already exists.")
    if old == "INBOX":
        # RFC 9051 §6.3.6: renaming INBOX moves its messages to the new name and leaves INBOX empty.
        target = create_mailbox(tx, account_id, new, None)
        uids = [r[0] for r in tx.execute("SELECT uid FROM messages WHERE mailbox_id = ?", (source.id,))]
        from postoffice.store.sqlite import (
            message_ops,  # circular by nature: a move is a message op
        )

        message_ops.copy_messages(tx, source.id, uids, target.id, move=True)
        return require_mailbox(tx.conn, target.id)
    children = tx.execute(
        "SELECT id, name FROM mailboxes WHERE account_id = ? AND substr(name, 1, ?) = ?",
        (account_id, len(old) + 1, old + HIERARCHY),
    ).fetchall()
    renamed = []
    for child_id, child_name in children:
        # The inferiors move too, and must stay within the bounds (a deep tree renamed under a
        # long name would otherwise outgrow them).
        try:
            renamed.append((child_id, check_name(new + child_name[len(old):])))
        except InvalidName as exc:
            raise InvalidName(f"A mailbox inside it would get an invalid name. {exc}") from None
    tx.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (new, source.id))
    for child_id, child_new_name in renamed:
        tx.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (child_new_name, child_id))
        tx.changes.append(MailboxChange(child_id, ChangeKind.MAILBOX, 0))
    tx.changes.append(MailboxChange(source.id, ChangeKind.MAILBOX, source.highestmodseq))
    return require_mailbox(tx.conn, source.id)


def delete_mailbox(tx: Transaction, account_id: int, name: str) -> None:
    name = normalize_name(name)
    if name == "INBOX":
        raise StoreError("INBOX cannot be deleted.")
    mailbox = get_mailbox(tx.conn, account_id, name)
    if mailbox is None:
        raise MailboxNotFound(f"There is no mailbox {name}.")
    if mailbox.subscribed:  # RFC 9051 §6.3.7: deleting a mailbox does not unsubscribe its name
        tx.execute("INSERT OR IGNORE INTO dangling_subscriptions(account_id, name) VALUES (?, ?)", (account_id, name))
    drop_mailbox(tx, mailbox.id)


def drop_mailbox(tx: Transaction, mailbox_id: int) -> None:
    """Remove a mailbox with its messages and tombstones; blob files go when unreferenced."""
    from postoffice.store.sqlite import message_ops

    blob_ids = [r[0] for r in tx.execute("SELECT DISTINCT blob FROM messages WHERE mailbox_id = ?", (mailbox_id,))]
    tx.execute("DELETE FROM messages WHERE mailbox_id = ?", (mailbox_id,))
    tx.execute("DELETE FROM expunged WHERE mailbox_id = ?", (mailbox_id,))
    tx.execute("DELETE FROM private_seen WHERE mailbox_id = ?", (mailbox_id,))
    tx.execute("DELETE FROM mailboxes WHERE id = ?", (mailbox_id,))
    message_ops.schedule_blob_cleanup(tx, blob_ids)
    tx.changes.append(MailboxChange(mailbox_id, ChangeKind.MAILBOX, 0))


def list_subscriptions(conn: sqlite3.Connection, account_id: int) -> list[str]:
    """Every subscribed name, whether or not a mailbox has it now."""
    rows = conn.execute(
        "SELECT name FROM mailboxes WHERE account_id = ? AND subscribed"
        " UNION SELECT name FROM dangling_subscriptions WHERE account_id = ?",
        (account_id, account_id),
    ).fetchall()
    return sorted(r[0] for r in rows)


def subscribe_name(tx: Transaction, account_id: int, name: str) -> None:
    """Subscribe a name that is not one of the account's mailboxes (another user's shared one)."""
    name = normalize_name(name)
    if not tx.execute(
        "UPDATE mailboxes SET subscribed = 1 WHERE account_id = ? AND name = ?", (account_id, name)
    ).rowcount:
        tx.execute("INSERT OR IGNORE INTO dangling_subscriptions(account_id, name) VALUES (?, ?)", (account_id, name))


def unsubscribe_name(tx: Transaction, account_id: int, name: str) -> bool:
    """Remove a subscription by name (the mailbox may be gone); False if there was none."""
    name = normalize_name(name)
    removed = tx.execute(
        "DELETE FROM dangling_subscriptions WHERE account_id = ? AND name = ?", (account_id, name)
    ).rowcount
    removed += tx.execute(
        "UPDATE mailboxes SET subscribed = 0 WHERE account_id = ? AND name = ? AND subscribed",
        (account_id, name),
    ).rowcount
    return bool(removed)


def set_subscribed(tx: Transaction, mailbox_id: int, subscribed: bool) -> None:
    tx.execute("UPDATE mailboxes SET subscribed = ? WHERE id = ?", (int(subscribed), mailbox_id))


def mailbox_status(conn: sqlite3.Connection, mailbox_id: int, viewer: int | None = None,
                   claimed: tuple[int, int] | None = None) -> MailboxStatus:
    """Counts. `claimed`: (uidvalidity, boundary) of \\Recent claims made in memory and maybe
    not written yet (SqliteStore.claim_recent)."""
    conn.execute("BEGIN")  # one snapshot for the mailbox row and the counts
    try:
        mailbox = require_mailbox(conn, mailbox_id)
        first_recent = mailbox.first_recent_uid
        if claimed is not None and claimed[0] == mailbox.uidvalidity:
            first_recent = max(first_recent, claimed[1])
        row = conn.execute(
            "SELECT count(*), coalesce(sum(flags & ? = 0), 0), coalesce(sum(flags & ? <> 0), 0),"
            " coalesce(sum(uid >= ?), 0), coalesce(sum(size), 0) FROM messages WHERE mailbox_id = ?",
            (SEEN, DELETED, first_recent, mailbox_id),
        ).fetchone()
        if viewer is not None:  # a sharee's own \\Seen (message_ops.store_flags)
            seen = conn.execute(
                "SELECT count(*) FROM private_seen p JOIN messages m ON m.mailbox_id = p.mailbox_id"
                " AND m.uid = p.uid WHERE p.mailbox_id = ? AND p.account_id = ?",
                (mailbox_id, viewer),
            ).fetchone()[0]
            row = (row[0], row[0] - seen, *row[2:])
    finally:
        conn.execute("COMMIT")
    return MailboxStatus(
        messages=row[0], unseen=row[1], deleted=row[2], recent=row[3], size=row[4],
        uidnext=mailbox.uidnext, uidvalidity=mailbox.uidvalidity, highestmodseq=mailbox.highestmodseq,
    )


def claim_recent_range(tx: Transaction, mailbox_id: int) -> tuple[int, int, int]:
    """`claim_recent`, also returning the new boundary (the uidnext it moved to) and the
    mailbox's uidvalidity."""
    mailbox = require_mailbox(tx.conn, mailbox_id)
    tx.execute("UPDATE mailboxes SET first_recent_uid = uidnext WHERE id = ?", (mailbox_id,))
    return mailbox.first_recent_uid, mailbox.uidnext, mailbox.uidvalidity


def claim_recent(tx: Transaction, mailbox_id: int) -> int:
    """Give the caller \\Recent for every uid >= the returned value (RFC 3501 §2.3.2).

    Exactly one session sees a message as recent: the boundary moves to uidnext atomically.
    """
    mailbox = require_mailbox(tx.conn, mailbox_id)
    tx.execute("UPDATE mailboxes SET first_recent_uid = uidnext WHERE id = ?", (mailbox_id,))
    return mailbox.first_recent_uid


def save_recent_claims(tx: Transaction, claims: dict[int, tuple[int, int]]) -> None:
    """Write boundaries claimed in memory: mailbox id -> (uidvalidity, boundary). A boundary
    only moves forward, and a mailbox recreated meanwhile (another uidvalidity) is left alone."""
    tx.conn.executemany(
        "UPDATE mailboxes SET first_recent_uid = max(first_recent_uid, ?) WHERE id = ? AND uidvalidity = ?",
        [(boundary, mailbox_id, validity) for mailbox_id, (validity, boundary) in claims.items()],
    )


def bump_modseq(tx: Transaction, mailbox_id: int) -> int:
    row = tx.execute(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq",
        (mailbox_id,),
    ).fetchone()
    if row is None:
        raise MailboxNotFound("The mailbox no longer exists.")
    return int(row[0])
