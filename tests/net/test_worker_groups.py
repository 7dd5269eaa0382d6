"""Which worker process serves which listening sockets (net/workers.py): worker n serves every
group of protocols with more than n processes, and `processes = 0` means one per core."""
from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

from postoffice.config import load_config
from postoffice.net.accept_balance import AcceptBoard
from postoffice.net.workers import AUTO_MAX, ListenerWorkers, group_of, process_counts


def test_each_worker_gets_the_sockets_of_the_groups_it_serves(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    sockets = {name: socket.socket() for name in ("smtp", "submission", "pop3", "pop3s")}
    boards = {"smtp": AcceptBoard.create(2), "pop3": AcceptBoard.create(3)}
    try:
        workers = ListenerWorkers(config, list(sockets.items()), boards)
        assert workers.count == 2
        assert [p for p, _ in workers.sockets[1]] == ["smtp", "submission", "pop3", "pop3s"]
        assert [p for p, _ in workers.sockets[2]] == ["pop3", "pop3s"]
    finally:
        for sock in sockets.values():
            sock.close()
        for board in boards.values():
            board.close()


def test_processes_zero_is_one_per_core_and_lmtp_is_in_the_smtp_group(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert config.smtp.processes == 0
    assert process_counts(config)["smtp"] == max(1, min(os.cpu_count() or 1, AUTO_MAX))
    assert process_counts(config)["pop3"] == 1
    three = dataclasses.replace(config, smtp=dataclasses.replace(config.smtp, processes=3))
    assert process_counts(three)["smtp"] == 3
    assert {group_of(p) for p in ("smtp", "submission", "submissions", "lmtp")} == {"smtp"}
    assert group_of("imap") is None
