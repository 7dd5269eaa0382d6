"""A POP3 worker process (`python -m postoffice.pop3.worker N`), started by `pop3/workers.py`.

Reads a pickled `WorkerStart` from stdin (the config and the inherited listening sockets), serves
POP3 on those sockets until SIGTERM, SIGINT or the end of stdin (the main process is gone), then
lets open sessions finish as the main process's listeners do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import socket
import sys

from postoffice import logevents
from postoffice.auth.shared_table import SharedLimits
from postoffice.net.accept_balance import AcceptBoard
from postoffice.net.running import RunningListener
from postoffice.pop3.server import start_pop3_listener
from postoffice.pop3.workers import WorkerStart
from postoffice.services import open_services

log = logging.getLogger("postoffice.pop3.worker")


async def serve_worker(start: WorkerStart, index: int, parent_pipe: int | None = None) -> None:
    """Serve as worker `index` until SIGTERM, SIGINT or the end of `parent_pipe` (the main
    process is gone)."""
    config, shared, (board_fd, slots), limit_tables = start
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if parent_pipe is not None:
        os.set_blocking(parent_pipe, False)

        def parent_readable() -> None:
            try:
                if os.read(parent_pipe, 4096):
                    return  # nothing more is ever sent; ignore it
            except BlockingIOError:
                return
            except OSError:
                pass
            loop.remove_reader(parent_pipe)
            stop.set()

        loop.add_reader(parent_pipe, parent_readable)
    listeners: list[RunningListener] = []
    limits = SharedLimits.attach(limit_tables) if limit_tables is not None else None
    async with open_services(config, pop3_worker=True, shared=limits) as services:
        services.accept_board = AcceptBoard(board_fd, slots, index)
        for protocol, fd in shared:
            sock = socket.socket(fileno=fd)
            listeners.append(await start_pop3_listener(services, protocol, None, sockets=[sock]))
        services.accept_board.accepting()
        log.info("serving %s", ", ".join(f"{x.protocol} on {x.address}" for x in listeners))
        await stop.wait()
        services.accept_board.reset(index)  # the others take every new connection from now on
        await asyncio.gather(*(listener.close() for listener in listeners))
        services.accept_board.close()
    if limits is not None:
        limits.close()


def main() -> None:
    index = int(sys.argv[1])
    start: WorkerStart = pickle.load(sys.stdin.buffer)  # from the main process, our parent
    config = start[0]
    logevents.configure(config.server.log_level, config.server.log_format, f"pop3 worker {index}")
    parent_pipe = sys.stdin.fileno()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve_worker(start, index, parent_pipe))
    else:
        uvloop.run(serve_worker(start, index, parent_pipe))


if __name__ == "__main__":
    main()
