"""The shared memory table behind `[pop3] processes`' common limits (auth/shared_table.py)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from postoffice.auth.shared_table import WINDOW, SharedTable, _key_hash

INCREMENTS = 3000
# A child process attaching to the table by its descriptor and counting up under the lock.
COUNTER = f"""
import sys
from postoffice.auth.shared_table import SharedTable
table = SharedTable(int(sys.argv[1]), int(sys.argv[2]), evicting=False)
for _ in range({INCREMENTS}):
    with table.locked():
        count, _ = table.get("counter")
        table.put("counter", count + 1, 0.0)
"""


def test_keys_are_set_read_and_removed() -> None:
    table = SharedTable.create(100, evicting=False)
    assert table.get("ip 192.0.2.1") == (0, 0.0)
    assert table.put("ip 192.0.2.1", 3, 12.5)
    assert table.put("ip 192.0.2.2", 1, 13.0)
    assert table.get("ip 192.0.2.1") == (3, 12.5)
    assert len(table) == 2
    assert table.put("ip 192.0.2.1", 0, 0.0)
    assert table.get("ip 192.0.2.1") == (0, 0.0)
    assert len(table) == 1
    table.close()
    table.close()  # idempotent


def same_window(table: SharedTable, count: int) -> list[str]:
    """``count`` keys whose windows start at the same slot."""
    keys = (f"key {n}" for n in range(1_000_000))
    return [key for key in keys if _key_hash(key) % table.slots == 0][:count]


def test_a_full_window_evicts_the_oldest_or_refuses() -> None:
    for evicting in (True, False):
        table = SharedTable.create(100, evicting=evicting)
        *keys, extra = same_window(table, WINDOW + 1)
        for n, key in enumerate(keys):
            assert table.put(key, 1, 100.0 + n)
        assert table.put(extra, 1, 200.0) is evicting
        if evicting:  # the first key was the oldest
            assert table.get(keys[0]) == (0, 0.0)
            assert table.get(extra) == (1, 200.0)
        assert table.get(keys[-1]) == (1, 100.0 + WINDOW - 1)
        assert len(table) == WINDOW
        assert table.add(keys[-1], -1, 300.0)  # a count of 0 frees the slot
        assert table.put(extra, 1, 200.0)
        table.close()


def test_processes_counting_together_lose_no_update() -> None:
    """Three processes add to one count at once: the lock holds across them (a lost update
    would leave less than their sum)."""
    table = SharedTable.create(100, evicting=False)
    children = [subprocess.Popen([sys.executable, "-c", COUNTER, str(table.fd), str(table.slots)],
                                 pass_fds=[table.fd]) for _ in range(2)]
    started = time.perf_counter()
    for _ in range(INCREMENTS):
        with table.locked():
            count, _ = table.get("counter")
            table.put("counter", count + 1, 0.0)
    mine = time.perf_counter() - started
    for child in children:
        assert child.wait(timeout=120) == 0
    assert table.get("counter") == (3 * INCREMENTS, 0.0)
    print(f"{mine / INCREMENTS * 1e6:.1f} us per locked read and write, three processes contending")
    table.close()


def test_a_table_needs_a_window_of_slots() -> None:
    with pytest.raises(ValueError):
        SharedTable(-1, WINDOW - 1, evicting=False)
