"""The store writers of several processes take turns on an flock(2) beside the database
(store/sqlite/writer.py), instead of SQLite's busy handler, which sleeps up to 100 ms between
looks and made a 250 wait seconds with two SMTP processes writing."""
from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from postoffice.store import open_store


async def test_a_write_waits_for_the_turn_another_process_holds_and_goes_when_it_is_given(tmp_path: Path) -> None:
    store = open_store("sqlite", tmp_path / "store.sqlite3", tmp_path / "blobs")
    try:
        await store.add_domain("example.org")  # the store and its turn file exist
        turn = os.open(f"{tmp_path / 'store.sqlite3'}-writer.lock", os.O_RDWR)
        try:
            fcntl.flock(turn, fcntl.LOCK_EX)  # as another process's writer holding its turn
            write = asyncio.ensure_future(store.add_domain("example.net"))
            await asyncio.sleep(0.5)
            assert not write.done(), "the write went while another process held the turn"
            fcntl.flock(turn, fcntl.LOCK_UN)
            await asyncio.wait_for(write, 10)
        finally:
            os.close(turn)
        assert {d.name for d in await store.list_domains()} == {"example.org", "example.net"}
    finally:
        await store.close()
