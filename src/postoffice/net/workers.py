"""Worker processes that share the main process's listening sockets, so one protocol can use
more than one core (`[smtp] processes`, `[pop3] processes`).

One asyncio process runs out of CPU long before the machine does: an MX judging every message
(SPF, DKIM, DMARC, MIME parsing for IMAP) spends about 4 ms of CPU on each, so one core caps
ingest at about 250 messages a second; POP3 downloads hit the same wall with many clients at
once. With ``processes = N`` for a group of protocols, the main process keeps serving them and
N-1 workers accept from the same listening sockets, inherited as file descriptors. Worker n
serves every group whose process count is above n. Within a group, the process serving the
fewest connections takes the next one (net/accept_balance.py: one shared board per group).

Workers open the same store; what must hold across them holds in the store (SQLite serialises
the writers of all processes on its write lock, and every 250 is a commit there). A POP3
maildrop's session lock is a lock of the store (`MailStore.lock_mailbox`, flock(2)); IMAP
sessions in the main process see what a worker delivered or expunged through the store's
watcher of other processes' changes; the queue runner (main process only) finds the rows a
worker queued at its next look at the store. Failed-login delays and the connection counts per
address and per user live in shared memory that every process maps (auth/shared_table.py), so
they hold for all together; the login cache, the DNS cache and the relay rate limit
(`[smtp] relay_messages_per_minute`) stay per process.

A worker that dies is started again (after 1 s, doubling up to a minute while it keeps dying
young). A worker stops when sent SIGTERM and when the main process goes away: it holds a pipe
from the main process and stops at its end of file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence

from postoffice.auth.shared_table import SharedLimits
from postoffice.config import Config
from postoffice.net.accept_balance import NOT_ACCEPTING, AcceptBoard

__all__ = ["GROUPS", "ListenerWorkers", "WorkerStart", "group_of", "process_counts"]

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 60.0
YOUNG = 30.0  # a worker that dies younger than this was probably not going to run either
STOP_TIMEOUT = 10.0  # for a worker to finish its sessions (listener grace) before it is killed
AUTO_MAX = 4  # `processes = 0` means one per core, at most this many

# Protocols served by several processes, by the config section whose `processes` says how many.
GROUPS: dict[str, tuple[str, ...]] = {
    "smtp": ("smtp", "submission", "submissions", "lmtp"),
    "pop3": ("pop3", "pop3s"),
}

# What the main process sends a worker on its stdin: the config, (protocol, fd) per socket, the
# descriptor and size of each group's accept board, and those of the shared limit tables.
WorkerStart = tuple[Config, list[tuple[str, int]], dict[str, tuple[int, int]],
                    tuple[tuple[int, int], tuple[int, int]] | None]


def group_of(protocol: str) -> str | None:
    return next((group for group, protocols in GROUPS.items() if protocol in protocols), None)


def process_counts(config: Config) -> dict[str, int]:
    """Processes per group, `processes = 0` (SMTP's default) resolved to one per core."""
    cores = max(1, min(os.cpu_count() or 1, AUTO_MAX))
    return {"smtp": config.smtp.processes or cores, "pop3": config.pop3.processes}


class ListenerWorkers:
    """Starts, restarts and stops the worker processes that share the listening `sockets`."""

    def __init__(self, config: Config, sockets: Sequence[tuple[str, socket.socket]],
                 boards: Mapping[str, AcceptBoard], limits: SharedLimits | None = None) -> None:
        self.config = config
        self.boards = dict(boards)
        self.limits = limits
        # Worker n (from 1) serves the sockets of every group with more than n processes.
        self.count = max(board.slots for board in self.boards.values()) - 1
        self.sockets = {index: [(protocol, sock) for protocol, sock in sockets
                                if (group := group_of(protocol)) in self.boards
                                and index < self.boards[group].slots]
                        for index in range(1, self.count + 1)}
        self.processes: dict[int, asyncio.subprocess.Process] = {}  # worker index -> process
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> None:
        self._tasks = [asyncio.get_running_loop().create_task(self._supervise(index))
                       for index in range(1, self.count + 1) if self.sockets[index]]

    async def started(self, timeout: float = 30.0) -> None:
        """Wait until every worker accepts connections (or `timeout` passes: a worker that cannot
        start is logged and retried by its supervisor; the others serve meanwhile). `serve` says
        it is serving only then, so a burst of connections at start-up is spread over all the
        processes instead of landing in the main one while the workers import."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        waiting = [(board, index) for index in range(1, self.count + 1) if self.sockets[index]
                   for board in self._boards_of(index).values()]
        while any(board.count(index) == NOT_ACCEPTING for board, index in waiting):
            if loop.time() > deadline:
                log.warning("a worker did not start within %.0f s; serving without it for now", timeout)
                return
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """SIGTERM to every worker, then wait for them (killed after STOP_TIMEOUT)."""
        self._stopping = True
        processes = list(self.processes.values())
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        await asyncio.gather(*(_wait_or_kill(process) for process in processes))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def reload_tls(self) -> None:
        """SIGHUP to every worker: re-read the certificate now (worker.py), as this process did."""
        for process in list(self.processes.values()):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGHUP)

    def _boards_of(self, index: int) -> dict[str, AcceptBoard]:
        return {group: board for group, board in self.boards.items() if index < board.slots}

    async def _supervise(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        delay = RESTART_DELAY
        while not self._stopping:
            started = loop.time()
            lived = 0.0
            try:
                process = await self._spawn(index)
            except Exception:
                log.exception("cannot start worker %d", index)
            else:
                self.processes[index] = process
                log.info("worker %d started (pid %d)", index, process.pid)
                code = await process.wait()
                lived = loop.time() - started
                del self.processes[index]
                for board in self._boards_of(index).values():
                    board.reset(index)
                if self._stopping:
                    return
                if code == 0:  # it was asked to stop (SIGTERM sent by hand): leave it stopped
                    log.info("worker %d (pid %d) stopped", index, process.pid)
                    return
                log.error("worker %d (pid %d) exited with status %s; starting it again in %.0f s",
                          index, process.pid, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY) if lived < YOUNG else RESTART_DELAY

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        sockets = self.sockets[index]
        boards = self._boards_of(index)
        fds = [sock.fileno() for _, sock in sockets] + [board.fd for board in boards.values()]
        limits = self.limits.handles if self.limits is not None else None
        if limits is not None:
            fds += [fd for fd, _ in limits]
        start: WorkerStart = (self.config, [(protocol, sock.fileno()) for protocol, sock in sockets],
                              {group: (board.fd, board.slots) for group, board in boards.items()}, limits)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "postoffice.worker", str(index),
            stdin=subprocess.PIPE, pass_fds=fds,
            start_new_session=True,  # Ctrl-C reaches this process only; it stops the workers
        )
        assert process.stdin is not None
        # The pipe stays open: its end of file tells the worker that this process is gone.
        process.stdin.write(pickle.dumps(start))
        await process.stdin.drain()
        return process


async def _wait_or_kill(process: asyncio.subprocess.Process) -> None:
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        log.warning("worker pid %d did not stop in time; killing it", process.pid)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
