"""A recording IMAP proxy on loopback, in front of a real server, for the fetch tests: it keeps
every command line the client sends (``commands``), hides capabilities from the client
(COMPRESS=DEFLATE always, so the stream stays readable; QRESYNC or others on request), and can
add raw lines to the answer of a command the test picks (hostile input from a real server),
answer a command itself with NO/BAD instead of passing it on (``refuse``), or drop the
connection when a command is sent (``drop``)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from loopback_server import LoopbackServer

_CAPABILITY_LINE = re.compile(rb"^(?:\* CAPABILITY |(?:\*|[A-Za-z0-9]+) OK \[CAPABILITY )")
_TAGGED = re.compile(rb"^([A-Za-z0-9]+) (?:OK|NO|BAD)\b")


class RecordingProxy(LoopbackServer):
    def __init__(
        self,
        server_port: int,
        *,
        hide: tuple[str, ...] = (),
        inject: Callable[[str], bytes | None] | None = None,
        refuse: Callable[[str], bytes | None] | None = None,
        drop: Callable[[str], bool] | None = None,
    ) -> None:
        """``inject(command line)`` -> bytes to send just before that command's tagged answer;
        ``refuse(command line)`` -> the tagged answer to give instead (``b"NO ..."``), the server
        never seeing the command; ``drop(command line)`` -> True closes both connections."""
        self.server_port = server_port
        self.hide = ("COMPRESS=DEFLATE", *hide)
        self.inject = inject
        self.refuse = refuse
        self.drop = drop
        self.commands: list[str] = []  # without tags, in the order sent, every connection
        super().__init__()

    def by_folder(self) -> dict[str, list[str]]:
        """The commands sent while each folder was selected (by the EXAMINE/SELECT argument as
        sent, quotes removed), in order, the EXAMINE itself first."""
        out: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in self.commands:
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EXAMINE", "SELECT"):
                name = line.split(" ", 1)[1]
                name = name.split(" (", 1)[0].strip('"')
                current = out.setdefault(name, [])
            elif verb in ("LOGOUT", "LIST"):
                current = None
            if current is not None:
                current.append(line)
        return out

    async def _session(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.server_port, limit=2**24)
        pending: dict[bytes, bytes] = {}  # tag -> bytes to put before its tagged answer

        async def upstream() -> None:
            while line := await client_reader.readline():
                tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
                text = rest.decode("utf-8", "replace")
                self.commands.append(text)
                if self.drop is not None and self.drop(text):
                    client_writer.close()  # the client sees the connection go mid-command
                    break
                answer = self.refuse(text) if self.refuse is not None else None
                if answer:
                    # Only for commands sent with nothing else in flight (EXAMINE, SELECT):
                    # the answer cannot land inside another command's response.
                    client_writer.write(tag + b" " + answer + b"\r\n")
                    await client_writer.drain()
                    continue
                if self.inject is not None:
                    extra = self.inject(text)
                    if extra:
                        pending[tag] = extra
                server_writer.write(line)
                await server_writer.drain()
            server_writer.close()

        async def downstream() -> None:
            while line := await server_reader.readline():
                if _CAPABILITY_LINE.match(line):
                    for name in self.hide:
                        line = re.sub(rb" " + re.escape(name.encode()) + rb"(?=[ \]\r])", b"", line)
                tagged = _TAGGED.match(line)
                if tagged is not None and tagged[1] in pending:
                    client_writer.write(pending.pop(tagged[1]))
                client_writer.write(line)
                await client_writer.drain()
            client_writer.close()

        try:
            await asyncio.gather(upstream(), downstream())
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            client_writer.close()
            server_writer.close()
