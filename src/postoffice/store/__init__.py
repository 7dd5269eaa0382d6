"""The store: the only state of a postoffice instance (DESIGN §3)."""

from __future__ import annotations

from pathlib import Path

from postoffice.store.interface import MailStore


def open_store(backend: str, db_path: Path, blob_root: Path, reader_threads: int = 4) -> MailStore:
    """Open the configured backend. Only "sqlite" exists today."""
    if backend != "sqlite":
        raise ValueError(f"Unknown store backend {backend!r}; only 'sqlite' is available.")
    from postoffice.store.sqlite.store import SqliteStore

    return SqliteStore(db_path, blob_root, reader_threads)
