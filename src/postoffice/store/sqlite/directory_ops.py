"""Domains, accounts and aliases in SQLite: plain functions over a connection or transaction."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from postoffice.store.interface import (
    DEFAULT_MAILBOXES,
    AccountNotFound,
    AccountRecord,
    AliasRecord,
    AlreadyExists,
    DomainNotFound,
    DomainRecord,
    StoreError,
)
from postoffice.store.sqlite import mailbox_ops
from postoffice.store.sqlite.writer import Transaction

_ACCOUNT_COLUMNS = "id, address, domain_id, password_hash, quota, used, disabled"


def _domain(row: tuple[Any, ...]) -> DomainRecord:
    return DomainRecord(id=row[0], name=row[1], catch_all=row[2])


def _account(row: tuple[Any, ...]) -> AccountRecord:
    return AccountRecord(
        id=row[0], address=row[1], domain_id=row[2], password_hash=row[3],
        quota=row[4], used=row[5], disabled=bool(row[6]),
    )


def add_domain(tx: Transaction, name: str) -> DomainRecord:
    try:
        cur = tx.execute(
            "INSERT INTO domains(name, created) VALUES (?, ?) RETURNING id, name, catch_all",
            (name, time.time()),
        )
    except sqlite3.IntegrityError:
        raise AlreadyExists(f"The domain {name} already exists.") from None
    return _domain(cur.fetchone())


def get_domain(conn: sqlite3.Connection, name: str) -> DomainRecord | None:
    row = conn.execute("SELECT id, name, catch_all FROM domains WHERE name = ?", (name,)).fetchone()
    return _domain(row) if row else None


def list_domains(conn: sqlite3.Connection) -> list[DomainRecord]:
    rows = conn.execute("SELECT id, name, catch_all FROM domains ORDER BY name").fetchall()
    return [_domain(r) for r in rows]


def remove_domain(tx: Transaction, name: str) -> None:
    domain = get_domain(tx.conn, name)
    if domain is None:
        raise DomainNotFound(f"There is no domain {name}.")
    count = tx.execute("SELECT count(*) FROM accounts WHERE domain_id = ?", (domain.id,)).fetchone()[0]
    if count:
        raise StoreError(
            f"The domain {name} still has {count} user(s); remove them first "
            f"(postoffice user list {name})."
        )
    tx.execute("DELETE FROM aliases WHERE source LIKE ?", (f"%@{name}",))
    tx.execute("DELETE FROM domains WHERE id = ?", (domain.id,))


def set_catch_all(tx: Transaction, domain: str, target: str | None) -> None:
    cur = tx.execute("UPDATE domains SET catch_all = ? WHERE name = ?", (target, domain))
    if cur.rowcount == 0:
        raise DomainNotFound(f"There is no domain {domain}.")


def add_account(tx: Transaction, address: str, password_hash: str, quota: int) -> AccountRecord:
    domain_name = address.rpartition("@")[2]
    domain = get_domain(tx.conn, domain_name)
    if domain is None:
        raise DomainNotFound(
            f"The domain {domain_name} is not served here; add it first (postoffice domain add {domain_name})."
        )
    try:
        cur = tx.execute(
            "INSERT INTO accounts(address, domain_id, password_hash, quota, created)"
            f" VALUES (?, ?, ?, ?, ?) RETURNING {_ACCOUNT_COLUMNS}",
            (address, domain.id, password_hash, quota, time.time()),
        )
    except sqlite3.IntegrityError:
        raise AlreadyExists(f"The user {address} already exists.") from None
    account = _account(cur.fetchone())
    for name, special_use in DEFAULT_MAILBOXES:
        mailbox_ops.create_mailbox(tx, account.id, name, special_use, subscribed=True)
    return account


def get_account(conn: sqlite3.Connection, address: str) -> AccountRecord | None:
    row = conn.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE address = ?", (address,)).fetchone()
    return _account(row) if row else None


def get_account_by_id(conn: sqlite3.Connection, account_id: int) -> AccountRecord | None:
    row = conn.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,)).fetchone()
    return _account(row) if row else None


def list_accounts(conn: sqlite3.Connection, domain: str | None) -> list[AccountRecord]:
    if domain is None:
        rows = conn.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY address").fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE domain_id ="
            " (SELECT id FROM domains WHERE name = ?) ORDER BY address",
            (domain,),
        ).fetchall()
    return [_account(r) for r in rows]


def _require_account(conn: sqlite3.Connection, address: str) -> AccountRecord:
    account = get_account(conn, address)
    if account is None:
        raise AccountNotFound(f"There is no user {address}.")
    return account


def set_password_hash(tx: Transaction, address: str, password_hash: str) -> None:
    account = _require_account(tx.conn, address)
    tx.execute("UPDATE accounts SET password_hash = ? WHERE id = ?", (password_hash, account.id))


def set_quota(tx: Transaction, address: str, quota: int) -> None:
    account = _require_account(tx.conn, address)
    tx.execute("UPDATE accounts SET quota = ? WHERE id = ?", (quota, account.id))


def remove_account(tx: Transaction, address: str) -> None:
    account = _require_account(tx.conn, address)
    mailbox_ids = [r[0] for r in tx.execute("SELECT id FROM mailboxes WHERE account_id = ?", (account.id,))]
    for mailbox_id in mailbox_ids:
        mailbox_ops.drop_mailbox(tx, mailbox_id)
    tx.execute("DELETE FROM aliases WHERE target = ?", (address,))
    tx.execute("DELETE FROM dangling_subscriptions WHERE account_id = ?", (account.id,))
    tx.execute("DELETE FROM accounts WHERE id = ?", (account.id,))


def add_alias(tx: Transaction, source: str, target: str) -> None:
    try:
        tx.execute("INSERT INTO aliases(source, target) VALUES (?, ?)", (source, target))
    except sqlite3.IntegrityError:
        raise AlreadyExists(f"The alias {source} -> {target} already exists.") from None


def remove_alias(tx: Transaction, source: str, target: str | None) -> int:
    if target is None:
        cur = tx.execute("DELETE FROM aliases WHERE source = ?", (source,))
    else:
        cur = tx.execute("DELETE FROM aliases WHERE source = ? AND target = ?", (source, target))
    return cur.rowcount


def list_aliases(conn: sqlite3.Connection, source: str | None) -> list[AliasRecord]:
    if source is None:
        rows = conn.execute("SELECT source, target FROM aliases ORDER BY source, target").fetchall()
    else:
        rows = conn.execute(
            "SELECT source, target FROM aliases WHERE source = ? ORDER BY target", (source,)
        ).fetchall()
    return [AliasRecord(source=r[0], target=r[1]) for r in rows]


def lookup_address(
    conn: sqlite3.Connection, address: str
) -> tuple[DomainRecord | None, AccountRecord | None, list[AliasRecord]]:
    """The domain, account and aliases for one address, in one read (the SMTP RCPT hot path)."""
    domain = get_domain(conn, address.rpartition("@")[2])
    if domain is None:
        return None, None, []
    account = get_account(conn, address)
    return domain, account, ([] if account is not None else list_aliases(conn, address))
