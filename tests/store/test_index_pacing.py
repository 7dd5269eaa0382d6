"""The background full-text indexer waits while messages keep arriving and catches up when they
pause (store/index_pacing.py); under load that never pauses it works after a while or past a
number waiting, and it always finishes."""
from __future__ import annotations

import asyncio
import contextlib

from postoffice.store.index_pacing import IndexPacing, index_in_background
from postoffice.store.interface import MailStore
from store_kit import new_account, new_message


def test_a_pause_in_arrivals_starts_indexing_and_an_arrival_stops_it() -> None:
    pacing = IndexPacing(quiet=0.5, high_water=100, idle=1.0, look=1.0)
    assert pacing.step(0.0, newest_blob=10, backlog=10).index  # a backlog found at start: no arrival seen
    step = pacing.step(0.1, newest_blob=11, backlog=11)  # a new message
    assert not step.index and abs(step.wait - 0.5) < 1e-9
    step = pacing.step(0.4, newest_blob=11, backlog=11)
    assert not step.index and abs(step.wait - 0.2) < 1e-9
    assert pacing.step(0.6, newest_blob=11, backlog=11).index  # quiet for 0.5 s
    assert not pacing.step(0.7, newest_blob=12, backlog=5).index  # arriving again
    done = pacing.step(5.0, newest_blob=12, backlog=0)
    assert not done.index and done.wait == 1.0


def test_under_load_that_never_pauses_the_wait_is_bounded_in_time_and_in_messages() -> None:
    pacing = IndexPacing(quiet=0.5, high_water=100, max_wait=30.0)
    pacing.step(0.0, newest_blob=1, backlog=0)
    waiting = pacing.step(0.1, newest_blob=2, backlog=1)  # the backlog starts here
    assert not waiting.index and waiting.wait <= 0.25  # looks again soon: the backlog may pass a mark
    assert not pacing.step(29.0, newest_blob=3, backlog=50).index
    late = pacing.step(30.2, newest_blob=4, backlog=60)  # waiting for 30 s: half a core
    assert late.index and late.share_core
    many = pacing.step(30.3, newest_blob=5, backlog=100)  # at the high water: full speed
    assert many.index and not many.share_core
    assert not pacing.step(31.0, newest_blob=5, backlog=100).share_core  # quiet: full speed too
    pacing.step(40.0, newest_blob=5, backlog=0)  # caught up: the wait starts over
    assert not pacing.step(40.1, newest_blob=6, backlog=1).index


async def _unindexed(store: MailStore) -> int:
    return (await store.text_backlog(1_000_000))[1]


async def test_the_indexer_waits_for_a_pause_in_deliveries_then_indexes_everything(store: MailStore) -> None:
    account = await new_account(store)
    inbox = (await store.get_mailbox(account.id, "INBOX")).id
    task = asyncio.create_task(index_in_background(store, IndexPacing(quiet=1.5, idle=0.05)))
    await asyncio.sleep(0.2)  # its first look (an empty store): what comes next are arrivals
    try:
        for n in range(12):  # one message every 0.1 s: never a pause of 1.5 s
            await store.append_messages(inbox, [await new_message(store, n)])
            await asyncio.sleep(0.1)
        assert await _unindexed(store) == 12  # none indexed while they arrived
        for _ in range(100):
            await asyncio.sleep(0.1)
            if await _unindexed(store) == 0:
                break
        assert await _unindexed(store) == 0
        assert await store.search_text(inbox, "hello", headers=False, body=True) == set(range(1, 13))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_past_the_high_water_the_indexer_works_while_deliveries_go_on(store: MailStore) -> None:
    account = await new_account(store)
    inbox = (await store.get_mailbox(account.id, "INBOX")).id
    task = asyncio.create_task(index_in_background(store, IndexPacing(quiet=30.0, high_water=5, idle=0.05, look=0.05)))
    await asyncio.sleep(0.2)
    try:
        for n in range(20):
            await store.append_messages(inbox, [await new_message(store, n)])
            await asyncio.sleep(0.05)
        assert await _unindexed(store) < 15  # never quiet for 30 s: only the high water made it index
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
