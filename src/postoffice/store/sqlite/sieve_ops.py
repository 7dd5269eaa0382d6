"""Sieve scripts in SQLite: the `sieve_scripts` table (one row per script, one active per account).

The partial unique index `sieve_scripts_one_active` makes "at most one active script" a property
of the table, so no writer can break it; activation clears the old mark in the same transaction.
"""

from __future__ import annotations

import sqlite3
import time

from postoffice.store.interface import AlreadyExists, InvalidName, StoreError
from postoffice.store.sieve_errors import ScriptIsActive, ScriptNotFound, SieveQuotaExceeded
from postoffice.store.sieve_interface import SieveScriptRecord
from postoffice.store.sqlite.writer import Transaction

MAX_NAME_LENGTH = 512  # characters; RFC 5804 sets none, Dovecot allows 256 by default


def check_script_name(name: str) -> None:
    """RFC 5804 §1.6: a name is non-empty UTF-8 without CTL (0-31, 127), C1 (128-159), U+2028/9."""
    if not name:
        raise InvalidName("A Sieve script name cannot be empty.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"A Sieve script name can be at most {MAX_NAME_LENGTH} characters long.")
    for char in name:
        code = ord(char)
        if code < 32 or 127 <= code <= 159 or code in (0x2028, 0x2029) or 0xD800 <= code <= 0xDFFF:
            raise InvalidName(f"The Sieve script name {name!r} contains a control character,"
                              " which RFC 5804 does not allow.")


def list_scripts(conn: sqlite3.Connection, account_id: int) -> list[SieveScriptRecord]:
    rows = conn.execute(
        "SELECT name, active, length(CAST(script AS BLOB)), updated FROM sieve_scripts"
        " WHERE account_id = ? ORDER BY name", (account_id,)).fetchall()
    return [SieveScriptRecord(name, bool(active), size, updated) for name, active, size, updated in rows]


def get_script(conn: sqlite3.Connection, account_id: int, name: str) -> str:
    row = conn.execute("SELECT script FROM sieve_scripts WHERE account_id = ? AND name = ?",
                       (account_id, name)).fetchone()
    if row is None:
        raise ScriptNotFound(f"There is no Sieve script named {name!r}.")
    return str(row[0])


def active_script(conn: sqlite3.Connection, account_id: int) -> tuple[str, str] | None:
    row = conn.execute("SELECT name, script FROM sieve_scripts WHERE account_id = ? AND active",
                       (account_id,)).fetchone()
    return (str(row[0]), str(row[1])) if row is not None else None


def scripts_version(conn: sqlite3.Connection) -> int:
    """A number that changes with every change of any account's scripts (schema.py's triggers)."""
    row = conn.execute("SELECT version FROM sieve_version").fetchone()
    return int(row[0]) if row is not None else 0


def put_script(tx: Transaction, account_id: int, name: str, text: str, max_scripts: int, max_size: int) -> bool:
    check_script_name(name)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise StoreError("A Sieve script must be UTF-8 text.") from None
    if max_size and size > max_size:
        raise SieveQuotaExceeded(f"The script is {size} octets long, more than the {max_size} allowed.", "maxsize")
    existing = tx.execute("SELECT id FROM sieve_scripts WHERE account_id = ? AND name = ?",
                          (account_id, name)).fetchone()
    now = time.time()
    if existing is not None:
        tx.execute("UPDATE sieve_scripts SET script = ?, updated = ? WHERE id = ?", (text, now, existing[0]))
        return False
    if max_scripts:
        (count,) = tx.execute("SELECT count(*) FROM sieve_scripts WHERE account_id = ?", (account_id,)).fetchone()
        if count >= max_scripts:
            raise SieveQuotaExceeded(f"This account already has {count} Sieve scripts, the most allowed;"
                                     " delete one first.", "maxscripts")
    tx.execute("INSERT INTO sieve_scripts(account_id, name, script, active, updated) VALUES (?, ?, ?, 0, ?)",
               (account_id, name, text, now))
    return True


def activate_script(tx: Transaction, account_id: int, name: str) -> None:
    row = tx.execute("SELECT id FROM sieve_scripts WHERE account_id = ? AND name = ?",
                     (account_id, name)).fetchone()
    if row is None:
        raise ScriptNotFound(f"There is no Sieve script named {name!r}.")
    tx.execute("UPDATE sieve_scripts SET active = 0 WHERE account_id = ? AND active AND id != ?",
               (account_id, row[0]))
    tx.execute("UPDATE sieve_scripts SET active = 1 WHERE id = ?", (row[0],))


def deactivate_script(tx: Transaction, account_id: int) -> bool:
    return tx.execute("UPDATE sieve_scripts SET active = 0 WHERE account_id = ? AND active",
                      (account_id,)).rowcount > 0


def delete_script(tx: Transaction, account_id: int, name: str) -> None:
    row = tx.execute("SELECT id, active FROM sieve_scripts WHERE account_id = ? AND name = ?",
                     (account_id, name)).fetchone()
    if row is None:
        raise ScriptNotFound(f"There is no Sieve script named {name!r}.")
    if row[1]:
        raise ScriptIsActive(f"The Sieve script {name!r} is active; deactivate it (or activate"
                             " another) before deleting it.")
    tx.execute("DELETE FROM sieve_scripts WHERE id = ?", (row[0],))


def rename_script(tx: Transaction, account_id: int, old: str, new: str) -> None:
    check_script_name(new)
    row = tx.execute("SELECT id FROM sieve_scripts WHERE account_id = ? AND name = ?",
                     (account_id, old)).fetchone()
    if row is None:
        raise ScriptNotFound(f"There is no Sieve script named {old!r}.")
    if old == new:
        return
    if tx.execute("SELECT 1 FROM sieve_scripts WHERE account_id = ? AND name = ?",
                  (account_id, new)).fetchone() is not None:
        raise AlreadyExists(f"A Sieve script named {new!r} already exists.")
    tx.execute("UPDATE sieve_scripts SET name = ?, updated = ? WHERE id = ?", (new, time.time(), row[0]))
