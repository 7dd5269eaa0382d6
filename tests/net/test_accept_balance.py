"""The accept board: counts per process in shared memory, seen by every process sharing it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from postoffice.net.accept_balance import NOT_ACCEPTING, AcceptBoard


def test_counts_are_shared_and_steer_who_accepts() -> None:
    main = AcceptBoard.create(3)
    worker = AcceptBoard(os.dup(main.fd), 3, 2)  # as a worker process maps the inherited descriptor
    # Workers that are not accepting yet are never left a connection.
    assert main.count(1) == main.count(2) == NOT_ACCEPTING
    main.add(1)
    assert not main.should_leave()
    worker.accepting()
    assert main.should_leave()  # worker 2 serves fewer
    assert worker.count(0) == 1 and not worker.should_leave()
    worker.add(2)
    assert worker.should_leave() and not main.should_leave()
    main.reset(2)  # worker 2 stopped: not a place for connections any more, however few it has
    assert not main.should_leave()
    main.add(-1)
    assert main.count(0) == 0
    with pytest.raises(ValueError):
        AcceptBoard(os.dup(main.fd), 3, 3)
    worker.close()
    worker.close()  # idempotent
    main.close()


def test_a_child_process_writes_its_slot_through_the_inherited_descriptor() -> None:
    board = AcceptBoard.create(2)
    code = (f"from postoffice.net.accept_balance import AcceptBoard; "
            f"b = AcceptBoard({board.fd}, 2, 1); b.accepting(); b.add(5); print(b.count(0))")
    board.add(3)
    out = subprocess.run([sys.executable, "-c", code], pass_fds=[board.fd], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"
    assert board.count(1) == 5
    assert not board.should_leave()
    board.close()
