"""The IMAP connection driver: socket bytes <-> the sans-IO parser, commands dispatched by type.

Implementation notes:
- Responses to pipelined commands are written when the input is drained.
- A synchronising literal is accepted ("+ Ready") only after its size was checked; a refused
  one never has its bytes read (RFC 9051 §7.5, RFC 7888).
- IDLE (RFC 2177): the session's task sleeps on its read until DONE, while the mailbox's changes
  are pushed to it (EXPUNGE included) by snapshot_push.py, once for every session idling on the
  mailbox; the task wakes only to catch up on its own when the push cannot serve it. A session
  under NOTIFY (RFC 5465) instead waits on its own subscription to every mailbox.
- An idle client is logged out after 30 minutes (RFC 9051 §5.4), and a garbage flood ends with
  BYE. Before that, trickling bytes cannot hold a connection: a command line must be complete
  within `[limits] line_timeout` of its first byte and the login must succeed within `[limits]
  login_timeout` of connecting (net/deadlines.py), else BYE. A slow client holds nothing but
  its own task: store reads run in threads and writes in the writer thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

from postoffice.auth.limits import Refusal
from postoffice.config import ListenAddress, UnixAddress
from postoffice.imap import snapshot_push
from postoffice.imap.commands import (
    acl,
    auth,
    fetch,
    mailbox,
    messages,
    notify,
    search,
    select,
    sort,
)
from postoffice.imap.compress import CompressionError, Deflate
from postoffice.imap.proto import commands as c
from postoffice.imap.proto import events as ev
from postoffice.imap.proto import responses as resp
from postoffice.imap.proto.parser import ImapServerParser
from postoffice.imap.session import ALREADY_ANSWERED, Completion, ImapSession, State, bad, no
from postoffice.imap.snapshot import SelectedMailboxDeleted
from postoffice.net.deadlines import Expiry, InputTimeout
from postoffice.net.listener import CLIENT_GONE, Connection, start_listener
from postoffice.net.running import ListenerFactory, RunningListener
from postoffice.services import Services
from postoffice.store.changes import MailboxChange, Subscription
from postoffice.store.interface import StorageFull

log = logging.getLogger(__name__)

READ_SIZE = 65536
AUTOLOGOUT = 30 * 60.0
PRE_AUTH_LITERAL = 65536
MAX_ERRORS = 20
# The BYE text when input misses a deadline (RFC 9051 §7.1.5: BYE before closing).
TIMEOUT_BYE = {
    Expiry.IDLE: "Autologout; idle for too long",
    Expiry.LINE: "Command line not completed in time",
    Expiry.LOGIN: "Not logged in in time",
}

Handler = Callable[[ImapSession, ev.ImapCommand], Awaitable[Completion]]
ANY = frozenset(State)
AUTHED = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})
NOT_AUTHED = frozenset({State.NOT_AUTHENTICATED})

# command type -> (handler, states it is valid in)
DISPATCH: dict[type, tuple[Handler, frozenset[State]]] = {
    c.Capability: (auth.capability, ANY),
    c.Noop: (auth.noop, ANY),
    c.Logout: (auth.logout, ANY),
    c.StartTls: (auth.starttls, NOT_AUTHED),
    c.Login: (auth.login, NOT_AUTHED),
    c.Authenticate: (auth.authenticate, NOT_AUTHED),
    c.Enable: (auth.enable, AUTHED),
    c.Id: (auth.id_command, ANY),
    c.Namespace: (mailbox.namespace, AUTHED),
    c.Create: (mailbox.create, AUTHED),
    c.Delete: (mailbox.delete, AUTHED),
    c.Rename: (mailbox.rename, AUTHED),
    c.Subscribe: (mailbox.subscribe, AUTHED),
    c.Unsubscribe: (mailbox.unsubscribe, AUTHED),
    c.List: (mailbox.list_command, AUTHED),
    c.Lsub: (mailbox.lsub, AUTHED),
    c.Status: (mailbox.status, AUTHED),
    c.Append: (messages.append, AUTHED),
    c.Select: (select.select, AUTHED),
    c.Check: (select.check, SELECTED),
    c.Close: (select.close, SELECTED),
    c.Unselect: (select.unselect, SELECTED),
    c.Expunge: (select.expunge, SELECTED),
    c.UidExpunge: (select.uid_expunge, SELECTED),
    c.Fetch: (fetch.fetch, SELECTED),
    c.Store: (messages.store, SELECTED),
    c.Copy: (messages.copy, SELECTED),
    c.Move: (messages.move, SELECTED),
    c.Search: (search.search, SELECTED),
    c.Sort: (sort.sort, SELECTED),
    c.Notify: (notify.notify, AUTHED),
    c.CancelUpdate: (search.cancelupdate, SELECTED),
    c.Thread: (sort.thread, SELECTED),
    c.SetAcl: (acl.setacl, AUTHED),
    c.DeleteAcl: (acl.deleteacl, AUTHED),
    c.GetAcl: (acl.getacl, AUTHED),
    c.ListRights: (acl.listrights, AUTHED),
    c.MyRights: (acl.myrights, AUTHED),
    c.GetQuota: (acl.getquota, AUTHED),
    c.GetQuotaRoot: (acl.getquotaroot, AUTHED),
    c.SetQuota: (acl.setquota, AUTHED),
}


class ImapConnection:
    def __init__(self, conn: Connection, services: Services) -> None:
        limits = services.config.limits
        # 64 KiB lines, as Dovecot allows: long ID, SEARCH and UID sets are legitimate.
        self.parser = ImapServerParser(max_line=max(limits.max_line_length, 65536), max_literal=limits.max_message_size)
        # Before login nobody may send more than a password's worth (LITERAL+ cannot be refused
        # before it arrives); auth.py raises the limits after a successful login.
        self.parser.max_literal = self.parser.max_nonsync_literal = PRE_AUTH_LITERAL
        self.session = ImapSession(conn, services, self.parser)

    async def run(self) -> None:
        session = self.session
        conn = session.conn
        greeting = "postoffice ready"
        session.send(resp.untagged_status("OK", greeting, resp.capability_code(auth.capabilities(session))))
        await self.flush()
        while session.state is not State.LOGOUT:
            try:
                if session.notify is None:
                    data = await conn.read_input(READ_SIZE, idle=AUTOLOGOUT, open_line=self.parser.open_line)
                else:
                    data = await self.read_with_notifications()
            except InputTimeout as timeout:
                self.timed_out(timeout)
                break
            except TimeoutError:
                session.send(resp.bye(TIMEOUT_BYE[Expiry.IDLE]))
                break
            except SelectedMailboxDeleted:  # found by a NOTIFY event between commands
                self.mailbox_deleted()
                break
            except (ConnectionError, OSError):
                break
            try:
                for piece in self.inbound(data):
                    self.parser.receive_data(piece)
                    await self.process()
            except CompressionError as exc:
                session.send(resp.bye(f"Cannot decompress: {exc}"))
                break
            except InputTimeout as timeout:  # AUTHENTICATE reads its continuation lines itself
                self.timed_out(timeout)
                break
            await self.flush()
            if not data or conn.writer.is_closing():
                break
        session.close_mailbox()
        if session.notify is not None:
            session.notify.close()
        await self.flush()

    def timed_out(self, timeout: InputTimeout) -> None:
        log.debug("%s: %s timeout", self.session.conn.id, timeout.expiry.value)
        self.session.send(resp.bye(TIMEOUT_BYE.get(timeout.expiry, TIMEOUT_BYE[Expiry.IDLE])))

    async def read_with_notifications(self) -> bytes:
        """The client's next bytes, sending NOTIFY events as they happen meanwhile (RFC 5465 §3:
        only while no command is in progress)."""
        session = self.session
        return await self.read_or_changes(
            session.notify.subscription, lambda changes: notify.deliver(session, changes))

    async def read_or_changes(self, changes: Subscription,
                              on_changes: Callable[[list[MailboxChange]], Awaitable[None]]) -> bytes:
        """Wait for the client's next bytes; while waiting, hand every batch of store changes to
        `on_changes` and write what it sends. TimeoutError after AUTOLOGOUT of silence."""
        read = asyncio.ensure_future(self.session.conn.reader.read(READ_SIZE))
        try:
            while True:
                change = asyncio.ensure_future(changes.get())
                done, _ = await asyncio.wait({read, change}, timeout=AUTOLOGOUT, return_when=asyncio.FIRST_COMPLETED)
                if change in done:
                    await on_changes([change.result(), *changes.drain()])
                    await self.flush()
                    continue
                change.cancel()
                if read in done:
                    data = read.result()
                    self.session.conn.bytes_in += len(data)
                    return data
                raise TimeoutError
        finally:
            if not read.done():
                read.cancel()

    async def process(self) -> None:
        session = self.session
        while session.state is not State.LOGOUT:
            event = self.parser.next_event()
            if event is ev.NEED_DATA:
                return
            if isinstance(event, ev.LiteralNeeded):
                self.literal_needed(event)
                await self.flush()  # the client waits for "+" before sending the octets
            elif isinstance(event, ev.CommandError):
                session.conn.commands += 1
                self.command_error(event)
            elif isinstance(event, ev.ImapCommand):
                session.conn.commands += 1
                await self.command(event)
            else:  # IDLE DONE or a continuation line outside their commands
                session.send(resp.untagged_status("BAD", "Unexpected line"))

    def literal_needed(self, event: ev.LiteralNeeded) -> None:
        session = self.session
        limit = session.services.config.limits.max_message_size
        if event.size > limit:
            session.send(resp.tagged(event.tag, "NO", f"Literal too large: the limit is {limit} octets", "TOOBIG"))
            self.parser.reject_literal()
        else:
            session.send(resp.continuation("Ready"))

    def command_error(self, event: ev.CommandError) -> None:
        session = self.session
        if event.tag is None:
            session.send(resp.untagged_status(event.status, event.text, event.code))
        else:
            session.send(resp.tagged(event.tag, event.status, event.text, event.code))
        if event.fatal or self.parser.consecutive_errors >= MAX_ERRORS:
            session.send(resp.bye("Too many invalid commands"))
            session.state = State.LOGOUT

    async def command(self, command: ev.ImapCommand) -> None:
        try:
            await self.run_command(command)
        except SelectedMailboxDeleted:
            self.mailbox_deleted()

    def mailbox_deleted(self) -> None:
        session = self.session
        log.info("%s: the selected mailbox was deleted by another session; closing", session.conn.id)
        session.send(resp.bye("The selected mailbox was deleted by another session"))
        session.state = State.LOGOUT

    async def run_command(self, command: ev.ImapCommand) -> None:
        session = self.session
        entry = DISPATCH.get(type(command.args))
        if isinstance(command.args, c.Idle):  # the driver runs IDLE: it owns the socket meanwhile
            done = await self.idle(command) if session.state in AUTHED else bad(_wrong_state(session.state, "IDLE"))
        elif isinstance(command.args, c.Compress):  # and COMPRESS, which changes what it sends
            done = await self.compress(command) if session.state in AUTHED else bad(_wrong_state(session.state, "COMPRESS"))
        elif entry is None:
            done = bad(f"{command.name} is not supported")
        elif session.state not in entry[1]:
            done = bad(_wrong_state(session.state, command.name))
        else:
            try:
                done = await entry[0](session, command)
            except (SelectedMailboxDeleted, InputTimeout):
                raise
            except StorageFull as exc:
                # As Dovecot answers ENOSPC and EDQUOT: temporary, and not a bug of ours.
                log.warning("%s: %s refused: %s", session.conn.id, command.name, exc)
                done = Completion("NO", "Not enough disk space", "OVERQUOTA")
            except CLIENT_GONE as exc:  # reset during AUTHENTICATE, STARTTLS...: routine
                log.debug("%s: the client went away during %s: %r", session.conn.id, command.name, exc)
                session.state = State.LOGOUT
                return
            except Exception:
                log.exception("%s: %s failed", session.conn.id, command.name)
                done = Completion("NO", "Internal error; the administrator will find it in the log", "SERVERBUG")
        if session.search_contexts and session.state is State.SELECTED:
            await search.update_contexts(session)
        if done is not ALREADY_ANSWERED:
            session.send(resp.tagged(command.tag, done.status, done.text, done.code))  # type: ignore[arg-type]

    async def idle(self, command: ev.ImapCommand) -> Completion:
        session = self.session
        session.send(resp.continuation("idling"))
        await self.flush()
        self.parser.expect_idle_done()
        if session.notify is not None:
            return await self.idle_with_notify()
        if session.snapshot is None:  # IDLE while authenticated: nothing to watch but the client
            return await self.idle_until_done(None)
        with snapshot_push.idling(session) as idler:
            return await self.idle_until_done(idler)

    async def idle_until_done(self, idler: snapshot_push.Idler | None) -> Completion:
        """Wait for DONE with one read for the whole IDLE; the push wakes the task only when it
        must catch up on its own (see snapshot_push)."""
        loop = asyncio.get_running_loop()
        read = asyncio.ensure_future(self.session.conn.reader.read(READ_SIZE))
        deadline = loop.time() + AUTOLOGOUT
        try:
            while True:
                if idler is not None:
                    await idler.catch_up(self.catch_up)
                waits: set[asyncio.Future[bytes] | asyncio.Future[None]] = {read}
                if idler is not None:
                    waits.add(idler.sleep())
                done, _ = await asyncio.wait(waits, timeout=max(0.0, deadline - loop.time()),
                                             return_when=asyncio.FIRST_COMPLETED)
                if idler is not None and idler.wake is not None:
                    idler.wake.cancel()
                    idler.wake = None
                if read in done:
                    data = read.result()
                    self.session.conn.bytes_in += len(data)
                    ended = self.idle_input(data)
                    if ended is not None:
                        return ended
                    read = asyncio.ensure_future(self.session.conn.reader.read(READ_SIZE))
                    deadline = loop.time() + AUTOLOGOUT
                elif not done:
                    return self.autologout()
        finally:
            if not read.done():
                read.cancel()

    async def catch_up(self) -> None:
        """The per-session way to tell an idling client what changed."""
        await self.session.announce_updates(allow_expunge=True)
        await search.update_contexts(self.session)
        await self.flush()

    async def idle_with_notify(self) -> Completion:
        session = self.session
        await session.announce_updates(allow_expunge=True)
        await self.flush()

        async def tell(batch: list[MailboxChange]) -> None:
            await notify.deliver(session, batch)
            await search.update_contexts(session)

        while True:
            try:
                data = await self.read_or_changes(session.notify.subscription, tell)
            except TimeoutError:
                return self.autologout()
            ended = self.idle_input(data)
            if ended is not None:
                return ended

    def idle_input(self, data: bytes) -> Completion | None:
        """Take the client's bytes during IDLE: the completion once IDLE ends, else None."""
        for piece in self.inbound(data):
            self.parser.receive_data(piece)
        if not data:
            self.session.state = State.LOGOUT
            return Completion("OK", "IDLE ended")
        event = self.parser.next_event()
        if event is ev.NEED_DATA:
            return None
        if isinstance(event, ev.IdleDone):
            return Completion("OK", "IDLE terminated")
        return bad("Expected DONE")

    def autologout(self) -> Completion:
        self.session.send(resp.bye("Autologout; idle for too long"))
        self.session.state = State.LOGOUT
        return Completion("OK", "IDLE ended")

    def inbound(self, data: bytes) -> list[bytes] | Iterator[bytes]:
        """Received bytes as the parser must see them (inflated under COMPRESS)."""
        compression = self.session.compression
        return [data] if compression is None or not data else compression.decompress(data)

    async def compress(self, command: ev.ImapCommand) -> Completion:
        """COMPRESS DEFLATE (RFC 4978 §3): the OK goes out uncompressed, all after it compressed."""
        session = self.session
        args = command.args
        assert isinstance(args, c.Compress)
        if session.compression is not None:
            return no("Compression is already active", "COMPRESSIONACTIVE")
        if args.mechanism != "DEFLATE":
            return bad(f"Unknown compression mechanism {args.mechanism}: only DEFLATE")
        session.send(resp.tagged(command.tag, "OK", "DEFLATE active"))
        await self.flush()
        session.compression = Deflate()
        pending = self.parser.take_buffered()  # sent after the command, so already compressed
        if pending:
            for piece in session.compression.decompress(pending):
                self.parser.receive_data(piece)
        return ALREADY_ANSWERED

    async def flush(self) -> None:
        session = self.session
        if not session.out:
            return
        data = b"".join(session.out)
        session.out.clear()
        try:
            session.transmit(data)
            await session.conn.writer.drain()
        except (ConnectionError, OSError):
            session.state = State.LOGOUT


def _wrong_state(state: State, name: str) -> str:
    if state is State.NOT_AUTHENTICATED:
        return f"{name}: log in first"
    if state is State.AUTHENTICATED:
        return f"{name}: select a mailbox first"
    return f"{name} is not valid in this state"


def _factory(protocol: str, implicit_tls: bool):
    async def start(services: Services, address: ListenAddress | UnixAddress) -> RunningListener:
        if isinstance(address, UnixAddress):
            raise ValueError(f"{protocol} listens on host:port only, not {address}.")

        async def handle(conn: Connection) -> None:
            await ImapConnection(conn, services).run()

        async def refuse(conn: Connection, refusal: Refusal) -> None:
            conn.writer.write(resp.bye(refusal.value))
            await conn.writer.drain()

        limits = services.config.limits
        listener = await start_listener(
            address.host, address.port, handle, tls=services.tls if implicit_tls else None,
            limiter=services.connection_limiter, on_refused=refuse, name=protocol,
            line_timeout=limits.line_timeout, login_timeout=limits.login_timeout,
        )
        return RunningListener(protocol, listener.address, listener.close)

    return start


def listener_factories() -> dict[str, ListenerFactory]:
    return {"imap": _factory("imap", implicit_tls=False), "imaps": _factory("imaps", implicit_tls=True)}
