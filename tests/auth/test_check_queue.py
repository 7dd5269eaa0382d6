"""The password check slots: known users first, a bounded line, cancellation leaves no hole."""
from __future__ import annotations

import asyncio

import pytest

from postoffice.auth.check_queue import PasswordCheckQueue, PasswordChecksBusy


async def test_priority_goes_first_and_the_line_is_bounded() -> None:
    queue = PasswordCheckQueue(slots=1, max_waiting=2)
    order: list[str] = []
    release = asyncio.Event()

    async def check(name: str, priority: bool = False) -> None:
        async with queue.slot(priority=priority):
            order.append(name)
            await release.wait()

    running = asyncio.create_task(check("first"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(check(f"guess {n}")) for n in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(PasswordChecksBusy):  # a third ordinary attempt is turned away
        await check("guess 2")
    known = asyncio.create_task(check("known", priority=True))  # never turned away
    await asyncio.sleep(0)
    assert (queue.busy, queue.waiting) == (1, 3)
    release.set()
    await asyncio.gather(running, *waiting, known)
    assert order == ["first", "known", "guess 0", "guess 1"]
    assert (queue.busy, queue.waiting) == (0, 0)


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    queue = PasswordCheckQueue(slots=1, max_waiting=1)
    release = asyncio.Event()

    async def hold() -> None:
        async with queue.slot():
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert queue.waiting == 0
    release.set()
    await holder
    async with queue.slot():  # the slot came back
        assert queue.busy == 1
    assert queue.busy == 0
