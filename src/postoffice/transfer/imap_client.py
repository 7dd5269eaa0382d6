"""An asyncio IMAP client for transfer: fetch, migrate (RFC 9051, RFC 3501 and extensions).

>>> client = await ImapClient.connect("imap.example.org", 993, security="tls")
>>> await client.login("bob", "secret")
>>> for box in await client.list_mailboxes():           # MailboxListing(name, special_use, ...)
...     selected = await client.select(box.name)        # SelectedMailbox(uidvalidity, uidnext, ...)
...     async for item in client.uid_fetch(await client.uid_search()):
...         ...                                         # FetchedMessage | FetchFailure
>>> await client.append("Archive", raw, flags={"\\\\Seen"}, internal_date=when)
>>> await client.logout()

Implementation notes:

- One reader task owns the socket's input and feeds :class:`ResponseParser`; commands wait on
  their tag. Untagged responses go to whichever command is running (transfer runs one command
  at a time per connection), except during :meth:`uid_fetch`, which keeps ``in_flight``
  ``UID FETCH`` commands of ``batch`` UIDs in flight (pipelining, RFC 9051 §5.5) and receives
  every FETCH response through a bounded queue: when the consumer (a disk write) is slower
  than the network, the reader stops reading and TCP pushes back, so memory stays bounded.
- A UID that a batch did not deliver (the server said NO, or sent a FETCH response that does
  not parse) is asked for again on its own, so one bad message fails alone: the caller gets a
  :class:`FetchFailure` for it with the server's reason, and every other message.
- A dropped connection fails every waiting command with :class:`ImapConnectionLost`; nothing
  is retried here (the fetch state makes a rerun cheap).
- STARTTLS (RFC 9051 §6.2.1) happens before the reader task starts, so nothing reads the
  plain socket while TLS takes it over; data received after the OK to STARTTLS would be an
  injection (CVE-2011-0411 for SMTP) and is refused. COMPRESS=DEFLATE (RFC 4978) switches both
  directions right after its OK, including bytes the server sent in the same packet.
- CONDSTORE/QRESYNC (RFC 7162): :meth:`select` sends ``(QRESYNC (...))`` when asked and
  enabled, and reads the VANISHED (EARLIER) and FETCH answers through ``imap_client_changes``;
  responses that do not parse are kept in ``malformed`` for the caller to judge.
- LITERAL+ / LITERAL- (RFC 7888) send APPEND's message without waiting for "+"; without them
  the client waits for the continuation. SASL-IR (RFC 4959) sends the initial response inline.
- Every read has a deadline (``timeout``): a server that stops answering fails, never hangs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import ssl
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from postoffice.imap.compress import CompressionError, Deflate
from postoffice.imap.proto.values import astring, flags_list, internaldate, mailbox, quoted
from postoffice.transfer.imap_client_changes import FlagChange, resync_from
from postoffice.transfer.imap_client_proto import (
    Atom,
    Continuation,
    Event,
    Malformed,
    ResponseError,
    ResponseParser,
    Tagged,
    Untagged,
    as_int,
    as_text,
)
from postoffice.transfer.imap_client_records import (
    FetchedMessage,
    FetchFailure,
    ImapCommandFailed,
    ImapConnectionLost,
    ImapError,
    MailboxListing,
    SelectedMailbox,
    fetched_message,
    mailbox_listing,
    selected_mailbox,
    uid_set,
)

__all__ = [
    "FetchFailure",
    "FetchedMessage",
    "FlagChange",
    "ImapClient",
    "ImapCommandFailed",
    "ImapConnectionLost",
    "ImapError",
    "MailboxListing",
    "Security",
    "SelectedMailbox",
]

Security = Literal["tls", "starttls", "plain"]
READ_SIZE = 256 * 1024


@dataclass(slots=True)
class _BatchDone:
    tag: str
    response: Tagged


@dataclass(slots=True)
class _Pending:
    name: str
    future: asyncio.Future[Tagged]
    untagged: list[Untagged] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)


_LOST = object()


class ImapClient:
    """One connection to an IMAP server; see the module docstring."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        *,
        timeout: float,
    ) -> None:
        self.host = host
        self.timeout = timeout
        self.capabilities: frozenset[str] = frozenset()
        self.enabled: frozenset[str] = frozenset()
        self.compressed = False
        self._reader = reader
        self._writer = writer
        self._parser = ResponseParser()
        self._tags = (f"T{n}" for n in itertools.count(1))
        self._pending: dict[str, _Pending] = {}
        self._continuation: asyncio.Future[bytes] | None = None
        self._fetch_queue: asyncio.Queue[object] | None = None
        self._fetch_tags: set[str] = set()
        self._deflate: Deflate | None = None
        self._compress_tag: str | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._lost: ImapConnectionLost | None = None
        self.greeting: Untagged | None = None
        self._last_response = Tagged("", "OK")
        # Responses to the last command() that did not parse (a VANISHED, a FETCH...).
        self.malformed: list[Malformed] = []

    # -- connecting ------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        security: Security = "tls",
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 60.0,
    ) -> ImapClient:
        """Connect, read the greeting, upgrade with STARTTLS when asked, learn CAPABILITY."""
        context = ssl_context or ssl.create_default_context()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, ssl=context if security == "tls" else None, limit=READ_SIZE
                ),
                timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise ImapConnectionLost(f"cannot connect to {host}:{port}: {exc or 'timed out'}") from exc
        client = cls(reader, writer, host, timeout=timeout)
        try:
            await client._start(security, context)
        except BaseException:
            await client.close()
            raise
        return client

    async def _start(self, security: Security, context: ssl.SSLContext) -> None:
        greeting = await self._read_event()
        if not isinstance(greeting, Untagged) or greeting.kind not in ("OK", "PREAUTH"):
            raise ImapConnectionLost(f"{self.host} did not greet as an IMAP server")
        self.greeting = greeting
        self._note_capabilities(greeting)
        if security == "starttls":
            if not self.capabilities:
                await self._command_before_reader(b"CAPABILITY")
            if "STARTTLS" not in self.capabilities:
                raise ImapError(f"{self.host} does not offer STARTTLS")
            await self._command_before_reader(b"STARTTLS")
            if self._parser.take_buffer():
                raise ImapConnectionLost(f"{self.host} sent data after its OK to STARTTLS")
            try:
                await asyncio.wait_for(
                    self._writer.start_tls(context, server_hostname=self.host), self.timeout
                )
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                raise ImapConnectionLost(f"TLS with {self.host} failed: {exc}") from exc
            self.capabilities = frozenset()
        self._reader_task = asyncio.create_task(self._read_loop())
        if not self.capabilities:
            await self.capability()

    async def _command_before_reader(self, command: bytes) -> None:
        """A command sent while no reader task runs (before STARTTLS)."""
        tag = next(self._tags)
        await self._write(tag.encode() + b" " + command + b"\r\n")
        while True:
            event = await self._read_event()
            if isinstance(event, Untagged):
                self._note_capabilities(event)
            elif isinstance(event, Tagged) and event.tag == tag:
                if event.status != "OK":
                    raise ImapCommandFailed(command.decode(), event)
                self._note_capabilities(event)
                return

    async def _read_event(self) -> Event:
        while True:
            try:
                event = self._parser.next_event()
            except ResponseError as exc:
                raise ImapConnectionLost(f"{self.host}: {exc}") from exc
            if event is not None:
                return event
            data = await self._receive()
            if not data:
                raise ImapConnectionLost(f"{self.host} closed the connection")
            self._parser.feed(data)

    async def _receive(self) -> bytes:
        try:
            data = await asyncio.wait_for(self._reader.read(READ_SIZE), self.timeout)
        except TimeoutError as exc:
            raise ImapConnectionLost(f"{self.host} sent nothing for {self.timeout:.0f} s") from exc
        except (OSError, ssl.SSLError) as exc:
            raise ImapConnectionLost(f"connection to {self.host} lost: {exc}") from exc
        if data and self._deflate is not None:
            try:
                data = b"".join(self._deflate.decompress(data))
            except CompressionError as exc:
                raise ImapConnectionLost(f"{self.host}: {exc}") from exc
        return data

    async def _write(self, data: bytes) -> None:
        if self._lost is not None:
            raise self._lost
        if self._deflate is not None:
            data = self._deflate.compress(data)
        try:
            self._writer.write(data)
            await asyncio.wait_for(self._writer.drain(), self.timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ImapConnectionLost(f"connection to {self.host} lost: {exc}") from exc

    # -- the reader task -------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                event = await self._read_event()
                await self._dispatch(event)
        except ImapConnectionLost as exc:
            self._fail_all(exc)
        except asyncio.CancelledError:
            self._fail_all(ImapConnectionLost(f"connection to {self.host} closed"))
            raise

    def _fail_all(self, exc: ImapConnectionLost) -> None:
        self._lost = exc
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(exc)
        self._pending.clear()
        if self._continuation is not None and not self._continuation.done():
            self._continuation.set_exception(exc)
        if self._fetch_queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._fetch_queue.put_nowait(_LOST)

    async def _dispatch(self, event: Event) -> None:
        if isinstance(event, Continuation):
            if self._continuation is not None and not self._continuation.done():
                self._continuation.set_result(event.text)
            return
        if isinstance(event, Tagged):
            self._note_capabilities(event)
            if event.tag in self._fetch_tags and self._fetch_queue is not None:
                self._fetch_tags.discard(event.tag)
                await self._fetch_queue.put(_BatchDone(event.tag, event))
                return
            pending = self._pending.pop(event.tag, None)
            if pending is None:
                return
            if event.tag == self._compress_tag and event.status == "OK":
                # Everything after this OK is compressed, including what is already buffered.
                self._deflate = Deflate()
                self.compressed = True
                rest = self._parser.take_buffer()
                if rest:
                    try:
                        self._parser.feed(b"".join(self._deflate.decompress(rest)))
                    except CompressionError as exc:
                        raise ImapConnectionLost(f"{self.host}: {exc}") from exc
            if not pending.future.done():
                pending.future.set_result(event)
            return
        if isinstance(event, Malformed):
            if self._fetch_queue is not None and event.kind == "FETCH":
                await self._fetch_queue.put(event)
                return
            for pending in self._pending.values():
                pending.malformed.append(event)
            return
        if event.kind == "BYE":
            self._lost = ImapConnectionLost(f"{self.host} closed the session: {event.text}")
        self._note_capabilities(event)
        if event.kind == "FETCH" and self._fetch_queue is not None:
            await self._fetch_queue.put(event)
            return
        for pending in self._pending.values():
            pending.untagged.append(event)

    def _note_capabilities(self, event: Untagged | Tagged) -> None:
        if isinstance(event, Untagged) and event.kind == "CAPABILITY":
            values = event.values
        elif event.code == "CAPABILITY":
            values = event.code_values
        else:
            return
        self.capabilities = frozenset(
            as_text(v).upper() for v in values if isinstance(v, Atom | bytes)
        )

    # -- commands ----------------------------------------------------------------------------

    async def command(self, text: bytes, *, literal: bytes | None = None) -> list[Untagged]:
        """Send one command (``text`` without tag; ``literal``, if any, follows it) and return
        its untagged responses; ImapCommandFailed on NO/BAD."""
        name = text.split(b" ", 1)[0].decode("ascii", "replace").upper()
        pending, _ = await self._send(text, literal, name)
        response = await self._await(pending)
        if response.status != "OK":
            raise ImapCommandFailed(name, response)
        self._last_response = response
        self.malformed = pending.malformed
        return pending.untagged

    async def _send(
        self, text: bytes, literal: bytes | None, name: str, *, fetch: bool = False
    ) -> tuple[_Pending, str]:
        if self._lost is not None:
            raise self._lost
        tag = next(self._tags)
        loop = asyncio.get_running_loop()
        pending = _Pending(name, loop.create_future())
        if fetch:
            self._fetch_tags.add(tag)
        else:
            self._pending[tag] = pending
        line = tag.encode() + b" " + text
        if literal is None:
            await self._write(line + b"\r\n")
            return pending, tag
        size = len(literal)
        non_sync = "LITERAL+" in self.capabilities or (
            "LITERAL-" in self.capabilities and size <= 4096
        )
        if non_sync:
            await self._write(line + b"{%d+}\r\n" % size + literal + b"\r\n")
            return pending, tag
        self._continuation = loop.create_future()
        await self._write(line + b"{%d}\r\n" % size)
        waiter = asyncio.ensure_future(self._continuation)
        both: set[asyncio.Future[Any]] = {waiter, pending.future}
        done, _ = await asyncio.wait(both, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done and not waiter.exception():
            await self._write(literal + b"\r\n")
        else:
            waiter.cancel()
        return pending, tag

    async def _await(self, pending: _Pending) -> Tagged:
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), self.timeout * 4)
        except TimeoutError as exc:
            raise ImapConnectionLost(f"{self.host} did not complete {pending.name}") from exc

    async def capability(self) -> frozenset[str]:
        await self.command(b"CAPABILITY")
        return self.capabilities

    async def login(self, user: str, password: str) -> None:
        """LOGIN (RFC 9051 §6.2.3); refused by the server as LOGINDISABLED, use authenticate."""
        await self.command(b"LOGIN " + astring(user, utf8=True) + b" " + astring(password, utf8=True))
        await self._after_login()

    async def authenticate(self, mechanism: str, initial: bytes) -> None:
        """AUTHENTICATE with one client message (PLAIN, XOAUTH2, OAUTHBEARER). An error
        challenge (XOAUTH2 sends its reason as JSON) is answered with an empty line, RFC 7628
        §3.2.3, so the server finishes with NO."""
        encoded = base64.b64encode(initial) if initial else b"="
        name = mechanism.upper().encode("ascii")
        loop = asyncio.get_running_loop()
        self._continuation = loop.create_future()
        if "SASL-IR" in self.capabilities:
            pending, _ = await self._send(b"AUTHENTICATE " + name + b" " + encoded, None, "AUTHENTICATE")
            first = True
        else:
            pending, _ = await self._send(b"AUTHENTICATE " + name, None, "AUTHENTICATE")
            first = False
        while True:
            waiter = asyncio.ensure_future(self._continuation)
            both: set[asyncio.Future[Any]] = {waiter, pending.future}
            done, _ = await asyncio.wait(
                both, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if pending.future in done or not done:
                waiter.cancel()
                break
            self._continuation = loop.create_future()
            await self._write(b"\r\n" if first else encoded + b"\r\n")
            first = True
        response = await self._await(pending)
        if response.status != "OK":
            raise ImapCommandFailed("AUTHENTICATE", response)
        await self._after_login()

    async def login_plain(self, user: str, password: str, authzid: str = "") -> None:
        """AUTHENTICATE PLAIN (RFC 4616); ``authzid`` logs in as another user with an admin's
        credentials (Dovecot master users)."""
        message = "\0".join((authzid, user, password)).encode("utf-8")
        await self.authenticate("PLAIN", message)

    async def _after_login(self) -> None:
        # Servers may change their capabilities after login (RFC 9051 §7.1.2).
        if self._last_capability_code_missing():
            await self.capability()

    def _last_capability_code_missing(self) -> bool:
        return self._last_response.code != "CAPABILITY"

    async def enable(self, *extensions: str) -> frozenset[str]:
        """ENABLE (RFC 5161) what the server offers of ``extensions``; returns what it enabled."""
        wanted = [e for e in extensions if e.upper() in self.capabilities]
        if not wanted or "ENABLE" not in self.capabilities:
            return frozenset()
        untagged = await self.command(b"ENABLE " + " ".join(wanted).encode("ascii"))
        enabled = {as_text(v).upper() for u in untagged if u.kind == "ENABLED" for v in u.values}
        self.enabled = self.enabled | enabled
        return frozenset(enabled)

    async def compress(self) -> bool:
        """COMPRESS DEFLATE (RFC 4978) when offered; True when the stream is now compressed."""
        if "COMPRESS=DEFLATE" not in self.capabilities or self.compressed:
            return self.compressed
        pending, tag = await self._send(b"COMPRESS DEFLATE", None, "COMPRESS")
        self._compress_tag = tag
        response = await self._await(pending)
        self._compress_tag = None
        return response.status == "OK" and self.compressed

    async def list_mailboxes(self, reference: str = "", pattern: str = "*") -> list[MailboxListing]:
        """Every mailbox LIST names, with special-use attributes (RFC 6154) when offered."""
        command = b"LIST " + quoted(reference) + b" " + quoted(pattern)
        if "SPECIAL-USE" in self.capabilities and "LIST-EXTENDED" in self.capabilities:
            command = b"LIST " + quoted(reference) + b" " + quoted(pattern) + b" RETURN (SPECIAL-USE)"
        untagged = await self.command(command)
        listings: list[MailboxListing] = []
        for response in untagged:
            if response.kind != "LIST":
                continue
            listing = mailbox_listing(response.values)
            if listing is not None:
                listings.append(listing)
        return listings

    async def select(
        self,
        name: str | bytes,
        *,
        read_only: bool = True,
        qresync: tuple[int, int, int] | None = None,
    ) -> SelectedMailbox:
        """EXAMINE (or SELECT); CONDSTORE's HIGHESTMODSEQ when it is enabled or offered.

        ``qresync`` = (uidvalidity, modseq, last UID of interest), with QRESYNC enabled:
        ``SELECT box (QRESYNC (uidvalidity modseq))`` (RFC 7162 §3.2.5), whose VANISHED
        (EARLIER) and FETCH responses come back read as ``resync`` on the result (VANISHED
        clipped to 1:last). No known-uids are sent, so changes to every message are reported,
        also to those the caller holds but has not recorded yet."""
        verb = b"EXAMINE " if read_only else b"SELECT "
        wire = astring(name) if isinstance(name, bytes) else mailbox(name)
        params = b""
        if qresync is not None and "QRESYNC" not in self.enabled:
            qresync = None
        if qresync is not None:
            params = b" (QRESYNC (%d %d))" % qresync[:2]
        elif "CONDSTORE" in self.capabilities and "CONDSTORE" not in self.enabled:
            params = b" (CONDSTORE)"
        untagged = await self.command(verb + wire + params)
        resync = None
        if qresync is not None:
            resync = resync_from(untagged, self.malformed, known_through=qresync[2])
        return selected_mailbox(
            name if isinstance(name, str) else name.decode("utf-8", "replace"),
            untagged,
            read_only=read_only or self._last_response.code == "READ-ONLY",
            resync=resync,
        )

    async def uid_search(self, criteria: str = "ALL") -> list[int]:
        """UID SEARCH; the UIDs in ascending order."""
        untagged = await self.command(b"UID SEARCH " + criteria.encode("ascii"))
        uids: set[int] = set()
        for response in untagged:
            if response.kind == "SEARCH":
                for value in response.values:
                    with contextlib.suppress(ValueError):
                        uids.add(as_int(value))
        return sorted(uids)

    async def create(self, name: str) -> None:
        await self.command(b"CREATE " + mailbox(name))

    async def append(
        self,
        mailbox_name: str,
        raw: bytes,
        *,
        flags: Iterable[str] = (),
        internal_date: datetime | None = None,
    ) -> int | None:
        """APPEND one message (RFC 9051 §6.3.12) with its flags and internal date; the new UID
        when the server says it (UIDPLUS APPENDUID, RFC 4315)."""
        text = b"APPEND " + mailbox(mailbox_name)
        wanted = [f for f in flags if f.upper() != "\\RECENT"]
        if wanted:
            text += b" " + flags_list(tuple(wanted))
        if internal_date is not None:
            text += b" " + internaldate(internal_date)
        await self.command(text + b" ", literal=raw)
        last = self._last_response
        if last.code == "APPENDUID" and len(last.code_values) >= 2:
            with contextlib.suppress(ValueError):
                return as_int(last.code_values[1])
        return None

    async def uid_fetch(
        self,
        uids: Sequence[int],
        items: str = "UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[]",
        *,
        batch: int = 50,
        in_flight: int = 4,
    ) -> AsyncGenerator[FetchedMessage | FetchFailure, None]:
        """Fetch ``uids`` with ``items`` pipelined; yields each message as it arrives and a
        :class:`FetchFailure` for each UID the server would not give. Raises
        ImapConnectionLost when the connection drops (what was yielded before is complete)."""
        if "X-GM-EXT-1" in self.capabilities and "X-GM-MSGID" not in items:
            items += " X-GM-MSGID X-GM-LABELS"
        wanted = list(uids)
        received: set[int] = set()
        refusals: dict[int, str] = {}
        async with contextlib.aclosing(
            self._fetch_round(wanted, items, batch, in_flight, refusals)
        ) as messages:
            async for item in messages:
                received.add(item.uid)
                yield item
        missing = [uid for uid in wanted if uid not in received]
        for uid in missing:  # one at a time: one bad message must not fail its neighbours
            single: dict[int, str] = {}
            got = False
            async with contextlib.aclosing(self._fetch_round([uid], items, 1, 1, single)) as one:
                async for item in one:
                    if item.uid == uid:
                        got = True
                        yield item
                    else:
                        item.close()
            if not got:
                reason = single.get(uid) or refusals.get(uid) or "the server sent no data for it"
                yield FetchFailure(uid, reason)

    async def _fetch_round(
        self,
        uids: list[int],
        items: str,
        batch: int,
        in_flight: int,
        refusals: dict[int, str],
    ) -> AsyncGenerator[FetchedMessage, None]:
        if not uids:
            return
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=64)
        self._fetch_queue = queue
        batches = [uids[i : i + batch] for i in range(0, len(uids), batch)]
        by_tag: dict[str, list[int]] = {}
        wanted = set(uids)
        next_batch = 0
        outstanding = 0
        malformed: list[str] = []
        try:
            while next_batch < len(batches) or outstanding:
                while next_batch < len(batches) and outstanding < in_flight:
                    chunk = batches[next_batch]
                    next_batch += 1
                    _, tag = await self._send(
                        b"UID FETCH " + uid_set(chunk).encode() + b" (" + items.encode() + b")",
                        None,
                        "UID FETCH",
                        fetch=True,
                    )
                    by_tag[tag] = chunk
                    outstanding += 1
                if queue.empty() and self._lost is not None:
                    raise self._lost
                try:
                    item = await asyncio.wait_for(queue.get(), self.timeout)
                except TimeoutError as exc:
                    raise ImapConnectionLost(f"{self.host} stopped sending messages") from exc
                if item is _LOST:
                    raise self._lost or ImapConnectionLost(f"connection to {self.host} lost")
                if isinstance(item, _BatchDone):
                    outstanding -= 1
                    chunk = by_tag.pop(item.tag, [])
                    if item.response.status != "OK":
                        reason = f"{item.response.status} {item.response.text}".strip()
                        for uid in chunk:
                            refusals.setdefault(uid, f"the server answered {reason}")
                    elif malformed:
                        for uid in chunk:
                            refusals.setdefault(uid, malformed[-1])
                    continue
                if isinstance(item, Malformed):
                    malformed.append(f"the server sent a malformed FETCH response ({item.reason})")
                    continue
                assert isinstance(item, Untagged)
                message = fetched_message(item)
                if message is None or message.uid not in wanted:
                    if message is not None:
                        message.close()
                    continue
                if message.body is None and "BODY" in items.upper():
                    refusals.setdefault(message.uid, "the server sent no body for it")
                    continue  # a flags-only update (another client) or a broken answer
                wanted.discard(message.uid)
                yield message
        finally:
            if outstanding and self._lost is None:
                await self._drain(queue, outstanding)
            self._fetch_queue = None
            self._fetch_tags.clear()

    async def _drain(self, queue: asyncio.Queue[object], outstanding: int) -> None:
        """Read what commands still in flight send, so the connection can go on (the caller
        stopped early: --max-bytes, an error writing)."""
        while outstanding and self._lost is None:
            try:
                item = await asyncio.wait_for(queue.get(), self.timeout)
            except TimeoutError:
                return
            if item is _LOST:
                return
            if isinstance(item, _BatchDone):
                outstanding -= 1
            elif isinstance(item, Untagged):
                message = fetched_message(item)
                if message is not None:
                    message.close()

    async def logout(self) -> None:
        """LOGOUT, then close; errors on the way out are ignored."""
        with contextlib.suppress(ImapError):
            if self._lost is None:
                await self.command(b"LOGOUT")
        await self.close()

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
            self._reader_task = None
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 2)


