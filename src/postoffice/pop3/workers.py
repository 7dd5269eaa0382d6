"""Extra processes serving POP3 (`[pop3] processes`), so downloads can use more than one core.

One asyncio process runs out of CPU long before the machine does when many clients download at
once (each RETR is a read and a large write; Dovecot runs a process per session). With
``processes = N`` the main process keeps serving POP3 and starts N-1 workers that accept from
the same listening sockets, inherited as file descriptors. The process serving the fewest
connections takes the next one (net/accept_balance.py: a shared memory board of counts).

Workers open the same store. What must hold across them holds in the store: one session per
maildrop is a lock of the store (`MailStore.lock_mailbox`, flock(2) for SQLite), and IMAP
sessions in the main process see what a POP3 QUIT changed through the store's watcher of other
processes' changes. Failed-login delays and the connection counts per address and per user
live in shared memory that every process maps (auth/shared_table.py), so they hold for all
together; the login cache and the total connection limit (descriptors) stay per process.

A worker that dies is started again (after 1 s, doubling up to a minute while it keeps dying
young). A worker stops when sent SIGTERM and when the main process goes away: it holds a pipe
from the main process and stops at its end of file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence

from postoffice.auth.shared_table import SharedLimits
from postoffice.config import Config
from postoffice.net.accept_balance import AcceptBoard

__all__ = ["Pop3Workers", "WorkerStart"]

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 60.0
YOUNG = 30.0  # a worker that dies younger than this was probably not going to run either
STOP_TIMEOUT = 10.0  # for a worker to finish its sessions (listener grace) before it is killed


# What the main process sends a worker on its stdin: the config, (protocol, fd) per socket, the
# descriptor and size of the accept board, and those of the shared limit tables.
WorkerStart = tuple[Config, list[tuple[str, int]], tuple[int, int],
                    tuple[tuple[int, int], tuple[int, int]] | None]


class Pop3Workers:
    """Starts, restarts and stops the worker processes of the POP3 listening `sockets`."""

    def __init__(self, config: Config, sockets: Sequence[tuple[str, socket.socket]], board: AcceptBoard,
                 limits: SharedLimits | None = None) -> None:
        self.config = config
        self.sockets = list(sockets)
        self.board = board
        self.limits = limits
        self.count = board.slots - 1  # slot 0 is the main process
        self.processes: dict[int, asyncio.subprocess.Process] = {}  # worker index -> process
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> None:
        self._tasks = [asyncio.get_running_loop().create_task(self._supervise(index))
                       for index in range(1, self.count + 1)]

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

    async def _supervise(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        delay = RESTART_DELAY
        while not self._stopping:
            started = loop.time()
            lived = 0.0
            try:
                process = await self._spawn(index)
            except Exception:
                log.exception("cannot start POP3 worker %d", index)
            else:
                self.processes[index] = process
                log.info("POP3 worker %d started (pid %d)", index, process.pid)
                code = await process.wait()
                lived = loop.time() - started
                del self.processes[index]
                self.board.reset(index)
                if self._stopping:
                    return
                if code == 0:  # it was asked to stop (SIGTERM sent by hand): leave it stopped
                    log.info("POP3 worker %d (pid %d) stopped", index, process.pid)
                    return
                log.error("POP3 worker %d (pid %d) exited with status %s; starting it again in %.0f s",
                          index, process.pid, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY) if lived < YOUNG else RESTART_DELAY

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        fds = [sock.fileno() for _, sock in self.sockets] + [self.board.fd]
        limits = self.limits.handles if self.limits is not None else None
        if limits is not None:
            fds += [fd for fd, _ in limits]
        start: WorkerStart = (self.config, [(protocol, sock.fileno()) for protocol, sock in self.sockets],
                              (self.board.fd, self.board.slots), limits)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "postoffice.pop3.worker", str(index),
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
        log.warning("POP3 worker pid %d did not stop in time; killing it", process.pid)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
