"""Why SQLite could not open the store, as one sentence naming the file and the fix.

SQLite says "file is not a database" or "attempt to write a readonly database"; `serve` and the
admin commands print :func:`explain_open_error`'s sentence instead (DESIGN §5).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from postoffice.store.interface import StoreError

__all__ = ["explain_open_error"]

# Primary result codes (https://sqlite.org/rescode.html); the extended code's low byte.
_PERM, _READONLY, _CORRUPT, _CANTOPEN, _NOTADB = 3, 8, 11, 14, 26


def explain_open_error(db_path: Path, error: sqlite3.Error) -> StoreError:
    code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
    restore = ("restore it from a backup (`postoffice restore BACKUP --data DIR`), or point [store] "
               "path in postoffice.toml at the right file")
    if code == _NOTADB:
        return StoreError(f"The store {db_path} is not an SQLite database (its header is damaged, or "
                          f"it is some other file); {restore}.")
    if code == _CORRUPT:
        return StoreError(f"The store {db_path} is damaged ({error}); {restore}.")
    owner = f"(`ls -ld {db_path.parent} {db_path}` shows their owner)"
    if code == _READONLY:
        return StoreError(f"The store {db_path} is read-only for this user: SQLite must write it and "
                          f"create {db_path.name}-wal and {db_path.name}-shm beside it; make the file "
                          f"and {db_path.parent} writable by the user running postoffice {owner}.")
    if code in (_CANTOPEN, _PERM):
        return StoreError(f"The store {db_path} cannot be opened ({error}); make it and {db_path.parent} "
                          f"readable and writable by the user running postoffice {owner}, or check "
                          "[store] path in postoffice.toml.")
    return StoreError(f"The store {db_path} cannot be opened ({error}); check the file and [store] path "
                      "in postoffice.toml.")
