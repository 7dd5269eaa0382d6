"""An asyncio POP3 client for transfer (RFC 1939; CAPA and STLS, RFC 2449 and RFC 2595; AUTH, RFC 5034).

>>> client = await Pop3Client.connect("pop.example.org", 995, security="tls")
>>> await client.login("bob", "secret")
>>> ids = await client.uidl()                      # {1: "UID1", 2: "UID2"}
>>> async for number, raw in client.retrieve([1, 2]):
...     ...
>>> await client.delete([1]); await client.quit()  # deletions happen at QUIT (UPDATE state)

Implementation notes:

- Multi-line answers end with a line holding one ".", and a line of the message that starts
  with "." has one more in front (RFC 1939 §3): removed here, so ``retrieve`` yields the message
  as stored. Each line is limited to ``MAX_LINE`` octets (a server that never ends a line fails
  rather than filling memory).
- With PIPELINING in CAPA, ``retrieve`` keeps ``window`` RETR commands in flight (RFC 2449
  §6.6); without it, one at a time.
- STLS before anything else (``security="starttls"``); USER/PASS, or AUTH PLAIN when USER is
  not offered or an admin logs in for the user (authorisation identity, RFC 4616).
- Every read has a deadline: a silent server fails, never hangs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncGenerator, Sequence
from typing import Literal

__all__ = ["Pop3Client", "Pop3ConnectionLost", "Pop3Error"]

MAX_LINE = 64 * 1024


class Pop3Error(Exception):
    """The server answered -ERR, closed the connection, or spoke something else than POP3."""


class Pop3ConnectionLost(Pop3Error):
    """The connection closed, timed out or broke."""


class Pop3Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, timeout: float) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host
        self.timeout = timeout
        self.capabilities: frozenset[str] = frozenset()
        self.sasl: frozenset[str] = frozenset()

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        security: Literal["tls", "starttls", "plain"] = "tls",
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 60.0,
    ) -> Pop3Client:
        context = ssl_context or ssl.create_default_context()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context if security == "tls" else None, limit=MAX_LINE),
                timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise Pop3Error(f"cannot connect to {host}:{port}: {exc or 'timed out'}") from exc
        client = cls(reader, writer, host, timeout)
        try:
            await client._status()  # the greeting
            await client.capa()
            if security == "starttls":
                if "STLS" not in client.capabilities:
                    raise Pop3Error(f"{host} does not offer STLS")
                await client._command(b"STLS")
                await asyncio.wait_for(writer.start_tls(context, server_hostname=host), timeout)
                await client.capa()
        except BaseException:
            await client.close()
            raise
        return client

    async def _line(self) -> bytes:
        try:
            line = await asyncio.wait_for(self.reader.readuntil(b"\n"), self.timeout)
        except asyncio.IncompleteReadError as exc:
            raise Pop3ConnectionLost(f"{self.host} closed the connection") from exc
        except asyncio.LimitOverrunError as exc:
            raise Pop3ConnectionLost(f"{self.host} sent a line longer than {MAX_LINE} octets") from exc
        except TimeoutError as exc:
            raise Pop3ConnectionLost(f"{self.host} sent nothing for {self.timeout:.0f} s") from exc
        except (OSError, ssl.SSLError) as exc:
            raise Pop3ConnectionLost(f"connection to {self.host} lost: {exc}") from exc
        return line

    async def _status(self) -> bytes:
        line = await self._line()
        if line.startswith(b"+OK"):
            return line[3:].strip()
        if line.startswith(b"-ERR"):
            raise Pop3Error(line[4:].strip().decode("utf-8", "replace") or "the server said -ERR")
        raise Pop3Error(f"{self.host} does not speak POP3: {line[:80]!r}")

    async def _multiline(self) -> list[bytes]:
        """The lines of a multi-line answer, dot-unstuffed, with their CRLF."""
        lines: list[bytes] = []
        while True:
            line = await self._line()
            if line in (b".\r\n", b".\n"):
                return lines
            lines.append(line[1:] if line.startswith(b".") else line)

    async def _send(self, line: bytes) -> None:
        try:
            self.writer.write(line + b"\r\n")
            await asyncio.wait_for(self.writer.drain(), self.timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise Pop3ConnectionLost(f"connection to {self.host} lost: {exc}") from exc

    async def _command(self, line: bytes) -> bytes:
        await self._send(line)
        return await self._status()

    async def capa(self) -> frozenset[str]:
        try:
            await self._command(b"CAPA")
        except Pop3Error:
            self.capabilities = frozenset()  # an RFC 1939 server without CAPA
            return self.capabilities
        lines = [line.decode("utf-8", "replace").strip() for line in await self._multiline()]
        self.capabilities = frozenset(line.split(" ", 1)[0].upper() for line in lines if line)
        for line in lines:
            if line.upper().startswith("SASL "):
                self.sasl = frozenset(m.upper() for m in line.split()[1:])
        return self.capabilities

    async def login(self, user: str, password: str, *, authzid: str = "") -> None:
        try:
            if authzid or ("USER" not in self.capabilities and "PLAIN" in self.sasl):
                message = "\0".join((authzid, user, password)).encode("utf-8")
                await self._command(b"AUTH PLAIN " + base64.b64encode(message))
            else:
                await self._command(b"USER " + user.encode("utf-8"))
                await self._command(b"PASS " + password.encode("utf-8"))
        except Pop3Error as exc:
            raise Pop3Error(f"{self.host} refused the login of {authzid or user}: {exc}") from exc
        await self.capa()  # RFC 2449 §5: capabilities may change after login

    async def uidl(self) -> dict[int, str]:
        """Message number -> unique id (RFC 1939 §7)."""
        await self._command(b"UIDL")
        out: dict[int, str] = {}
        for line in await self._multiline():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit():
                out[int(parts[0])] = parts[1].decode("ascii", "replace")
        return out

    async def list(self) -> dict[int, int]:
        """Message number -> size in octets."""
        await self._command(b"LIST")
        out: dict[int, int] = {}
        for line in await self._multiline():
            parts = line.split()
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                out[int(parts[0])] = int(parts[1])
        return out

    async def top(self, number: int, lines: int = 0) -> bytes:
        await self._command(b"TOP %d %d" % (number, lines))
        return b"".join(await self._multiline())

    async def retrieve(
        self, numbers: Sequence[int], *, window: int = 8
    ) -> AsyncGenerator[tuple[int, bytes | Pop3Error], None]:
        """RETR each message; yields (number, message) or (number, Pop3Error) for a message the
        server refuses. A lost connection raises."""
        depth = window if "PIPELINING" in self.capabilities else 1
        sent = 0
        for index, number in enumerate(numbers):
            while sent < len(numbers) and sent < index + depth:
                await self._send(b"RETR %d" % numbers[sent])
                sent += 1
            try:
                await self._status()
            except Pop3ConnectionLost:
                raise
            except Pop3Error as exc:
                yield number, exc
                continue
            yield number, b"".join(await self._multiline())

    async def delete(self, numbers: Sequence[int]) -> None:
        """DELE each (they are removed when QUIT succeeds)."""
        for number in numbers:
            await self._command(b"DELE %d" % number)

    async def quit(self) -> None:
        with contextlib.suppress(Pop3Error):
            await self._command(b"QUIT")
        await self.close()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2)
