"""The store contract suite runs against every backend (only sqlite today)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postoffice.store import open_store
from postoffice.store.interface import MailStore

BACKENDS = ["sqlite"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MailStore]:
    s = open_store(request.param, tmp_path / "store.sqlite3", tmp_path / "blobs")
    yield s
    await s.close()
