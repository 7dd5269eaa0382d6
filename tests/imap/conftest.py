"""Fixtures shared by the IMAP tests that drive the store directly."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postoffice.store import open_store
from postoffice.store.interface import MailStore


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[MailStore, int]]:
    """A store with one account, and the id of its INBOX."""
    store = open_store("sqlite", tmp_path / "s.sqlite3", tmp_path / "blobs")
    await store.add_domain("example.test")
    account = await store.add_account("u@example.test", "x")
    box = await store.get_mailbox(account.id, "INBOX")
    assert box is not None
    yield store, box.id
    await store.close()
