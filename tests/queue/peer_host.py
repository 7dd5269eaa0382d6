"""SMTP peers for the queue tests that run a real `serve` process: asyncio handlers, one per
loopback address, all on one port (a serve has one `[outbound] mx_port`), served by an event
loop in a thread of the test process, so what they record outlives a SIGKILLed serve.

    with PeerHost({"127.0.0.61": handler, ...}) as host:   # host.port, host.records[address]
        ...
"""
from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Record:
    """What a peer saw: connections, bytes it managed to write, messages it took."""

    connections: int = 0
    written: int = 0
    messages: list[bytes] = field(default_factory=list)


class PeerHost:
    """Peers on 127.0.0.x, all on one port (the serve has one `mx_port`), run by an event loop
    in a thread. A peer's listening socket gets a small receive buffer, so one that stops
    reading pushes back on the sender after a few hundred kilobytes, not many megabytes.

    A peer whose handler is None never accepts: its listen queue is kept full, so the kernel
    drops the sender's SYNs and its connection attempt hangs, as with a firewalled host."""

    def __init__(self, peers: dict[str, Handler | None]) -> None:
        self.peers = peers
        self.records = {address: Record() for address in peers}
        self.loop = asyncio.new_event_loop()
        self.sockets = self._bind(list(peers))
        self.port = int(self.sockets[0].getsockname()[1])
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._handlers: set[asyncio.Task[None]] = set()
        self._fillers: list[socket.socket] = []

    @staticmethod
    def _bind(addresses: list[str]) -> list[socket.socket]:
        for _ in range(50):
            bound: list[socket.socket] = []
            try:
                port = 0
                for address in addresses:
                    sock = socket.socket()
                    bound.append(sock)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
                    sock.bind((address, port))
                    port = sock.getsockname()[1]
                return bound
            except OSError:  # that port is taken on another address: another one
                for sock in bound:
                    sock.close()
        raise RuntimeError("no port free on every peer address")

    def __enter__(self) -> PeerHost:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        self._servers = []
        for sock in self.sockets:
            address = sock.getsockname()[0]
            if self.peers[address] is None:
                sock.listen(0)
                for _ in range(3):  # one fits the queue of a listen(0) socket; the rest hang too
                    filler = socket.socket()
                    filler.setblocking(False)
                    filler.connect_ex(sock.getsockname())
                    self._fillers.append(filler)
                continue
            self._servers.append(await asyncio.start_server(self._serving(address), sock=sock))

    def _serving(self, address: str) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.records[address].connections += 1
            task = asyncio.current_task()
            assert task is not None
            self._handlers.add(task)
            try:
                handler = self.peers[address]
                assert handler is not None
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    asyncio.CancelledError):
                pass  # the sender gave up on us, or the test ended
            finally:
                self._handlers.discard(task)
                writer.close()
        return serve

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
        for sock in self._fillers + self.sockets:
            sock.close()


# --- pieces to write peers with ----------------------------------------------------------------


async def trickle(writer: asyncio.StreamWriter, data: bytes, every: float = 1.0) -> None:
    for byte in data:
        writer.write(bytes((byte,)))
        await writer.drain()
        await asyncio.sleep(every)


async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, extensions: bytes = b"") -> None:
    writer.write(b"220 peer.example ESMTP\r\n")
    await reader.readline()  # EHLO
    writer.write(b"250-peer.example\r\n" + extensions + b"250 8BITMIME\r\n")


async def take_mail(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: Record,
                    end_reply: bytes = b"250 2.0.0 taken\r\n") -> None:
    """MAIL, RCPT, DATA one at a time (no PIPELINING offered), then QUIT or EOF."""
    while command := await reader.readline():
        verb = command[:4].upper()
        if verb == b"DATA":
            writer.write(b"354 go ahead\r\n")
            record.messages.append(await reader.readuntil(b"\r\n.\r\n"))
            writer.write(end_reply)
        elif verb == b"QUIT":
            writer.write(b"221 bye\r\n")
            return
        else:
            writer.write(b"250 ok\r\n")
