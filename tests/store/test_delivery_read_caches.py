"""What deliveries keep in memory from the store (store/sqlite/sieve_data.py: the active Sieve
scripts; filter_state_data.py: the junk training totals): changes by the same store object are
seen at once, another process's within RECHECK_SECONDS."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from postoffice.store import open_store
from postoffice.store.sqlite import sieve_data


async def test_changes_by_this_store_at_once_and_by_another_after_the_recheck(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sieve_data, "RECHECK_SECONDS", 0.3)
    here = open_store("sqlite", tmp_path / "store.sqlite3", tmp_path / "blobs")
    other = open_store("sqlite", tmp_path / "store.sqlite3", tmp_path / "blobs")  # as another process
    try:
        await here.add_domain("example.org")
        account = await here.add_account("a@example.org", "x", 0)
        assert await here.active_sieve_script(account.id) is None
        await here.put_sieve_script(account.id, "one", "keep;")
        await here.activate_sieve_script(account.id, "one")
        assert await here.active_sieve_script(account.id) == ("one", "keep;")  # at once
        await other.put_sieve_script(account.id, "one", "discard;")
        assert await here.active_sieve_script(account.id) == ("one", "keep;")  # cached for now
        await asyncio.sleep(0.4)
        assert await here.active_sieve_script(account.id) == ("one", "discard;")
        await other.deactivate_sieve_script(account.id)
        await asyncio.sleep(0.4)
        assert await here.active_sieve_script(account.id) is None
        await other.activate_sieve_script(account.id, "one")
        await other.remove_account("a@example.org")  # the account's scripts go with it
        await asyncio.sleep(0.4)
        assert await here.active_sieve_script(account.id) is None
    finally:
        await other.close()
        await here.close()


async def test_junk_totals_are_kept_and_another_process_training_is_seen_after_the_recheck(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from postoffice.store.filter_state_interface import JunkLesson
    from postoffice.store.sqlite import filter_state_data

    monkeypatch.setattr(filter_state_data, "RECHECK_SECONDS", 0.3)
    here = open_store("sqlite", tmp_path / "store.sqlite3", tmp_path / "blobs")
    other = open_store("sqlite", tmp_path / "store.sqlite3", tmp_path / "blobs")  # as another process
    try:
        await here.add_domain("example.org")
        account = await here.add_account("a@example.org", "x", 0)
        before, _ = await here.junk_token_counts(account.id, ())
        assert (before.spam, before.ham) == (0, 0)
        await other.learn_junk([JunkLesson(0, account.id, "a" * 64, True, frozenset({"w:cheap"}))], 1.0)
        cached, _ = await here.junk_token_counts(account.id, ())
        assert (cached.spam, cached.ham) == (0, 0)  # kept for now
        await asyncio.sleep(0.4)
        seen, _ = await here.junk_token_counts(account.id, ())
        assert seen.spam == 1
        await here.learn_junk([JunkLesson(0, account.id, "b" * 64, False, frozenset({"w:hello"}))], 2.0)
        mine, _ = await here.junk_token_counts(account.id, ())
        assert mine.ham == 1  # this store's own training: at once
    finally:
        await other.close()
        await here.close()
