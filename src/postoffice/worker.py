"""A worker process (`python -m postoffice.worker N`), started by net/workers.py.

Reads a pickled `WorkerStart` from stdin (the config, the inherited listening sockets and the
accept boards of their groups), serves those sockets (SMTP-family, POP3) until SIGTERM, SIGINT
or the end of stdin (the main process is gone), then lets open sessions finish as the main
process's listeners do.
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
from postoffice.net.workers import WorkerStart, group_of
from postoffice.pop3.server import start_pop3_listener
from postoffice.services import Services, open_services
from postoffice.smtp.service import start_smtp_listener

log = logging.getLogger("postoffice.worker")


async def _start_listener(services: Services, protocol: str, sock: socket.socket) -> RunningListener:
    if group_of(protocol) == "pop3":
        return await start_pop3_listener(services, protocol, None, sockets=[sock])
    return await start_smtp_listener(services, protocol, None, sockets=[sock])


async def serve_worker(start: WorkerStart, index: int, parent_pipe: int | None = None) -> None:
    """Serve as worker `index` until SIGTERM, SIGINT or the end of `parent_pipe` (the main
    process is gone)."""
    config, shared, boards, limit_tables = start
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
    async with open_services(config, worker=True, shared=limits) as services:
        loop.add_signal_handler(signal.SIGHUP, services.reload_tls)  # sent after a renewal
        services.accept_boards = {group: AcceptBoard(fd, slots, index) for group, (fd, slots) in boards.items()}
        for protocol, fd in shared:
            listeners.append(await _start_listener(services, protocol, socket.socket(fileno=fd)))
        for board in services.accept_boards.values():
            board.accepting()
        log.info("serving %s", ", ".join(f"{x.protocol} on {x.address}" for x in listeners))
        await stop.wait()
        for board in services.accept_boards.values():
            board.reset(index)  # the others take every new connection from now on
        await asyncio.gather(*(listener.close() for listener in listeners))
        for board in services.accept_boards.values():
            board.close()
    if limits is not None:
        limits.close()


def main() -> None:
    index = int(sys.argv[1])
    start: WorkerStart = pickle.load(sys.stdin.buffer)  # from the main process, our parent
    config = start[0]
    logevents.configure(config.server.log_level, config.server.log_format, f"worker {index}")
    parent_pipe = sys.stdin.fileno()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve_worker(start, index, parent_pipe))
    else:
        uvloop.run(serve_worker(start, index, parent_pipe))


if __name__ == "__main__":
    main()
