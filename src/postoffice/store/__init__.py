"""The store: the only state of a postoffice instance (DESIGN §3)."""

from __future__ import annotations

from pathlib import Path

from postoffice.store.interface import MailStore


def open_store(backend: str, db_path: Path, blob_root: Path, reader_threads: int = 4, *,
               keep_recently_expunged: bool = False, trash_days: float = 7.0) -> MailStore:
    """Open the configured backend. Only "sqlite" exists today.

    ``keep_recently_expunged``: for a process that cannot know every session that may still
    read an expunged message (a POP3 worker does not see the main process's IMAP sessions): it
    leaves such blobs for the main process to remove. ``trash_days``: how long removed message
    files stay in the blob directory's trash (see store/blob_trash.py)."""
    if backend != "sqlite":
        raise ValueError(f"Unknown store backend {backend!r}; only 'sqlite' is available.")
    from postoffice.store.sqlite.store import SqliteStore

    return SqliteStore(db_path, blob_root, reader_threads, keep_recently_expunged=keep_recently_expunged,
                       trash_days=trash_days)
