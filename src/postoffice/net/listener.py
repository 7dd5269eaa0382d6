"""The asyncio TCP servers under every protocol driver (DESIGN §4).

:func:`start_listener` runs one handler task per accepted :class:`Connection` and does what
every protocol needs the same way: connection ids for logs, implicit TLS (RFC 8314: 465, 993,
995), STARTTLS (RFC 3207, RFC 9051 §6.2.1, RFC 2595), connection limits (per IP before login,
per user and IP after it through :meth:`Connection.log_in`, and in all),
deadlines on client input (net/deadlines.py: drivers read through
:meth:`Connection.read_input`), and the PROXY protocol (net/proxy.py) behind a load balancer.

Implementation notes:

- A handler's exception is logged with the connection id and ends only that connection; the
  writer is always closed afterwards, and a peer that stops reading cannot keep the socket for
  more than ``CLOSE_TIMEOUT`` seconds.
- STARTTLS must not let plaintext sent before the handshake show up inside the TLS session (the
  command injection of CVE-2011-0411), so :meth:`Connection.start_tls` gives the session a new
  reader and writer and drops whatever the old reader still held.
- Listening sockets shared with other processes (``[smtp]``/``[smtp]`/`[pop3] processes``) are accepted from by our
  own loop, one connection at a time, taken by the process that serves the fewest.
- PROXY listeners accept sockets themselves and read exactly the header before asyncio owns the
  socket, so an implicit-TLS handshake still starts at the client's first byte. Other listeners
  use ``asyncio.start_server``, which uvloop speeds up when it is the running loop.
- Implicit TLS uses ``ReloadingServerContext.handshake_context()``: renewed certificates apply
  to the next handshake.
"""
from __future__ import annotations

import asyncio
import errno
import ipaddress
import itertools
import logging
import math
import os
import secrets
import select
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postoffice import logevents
from postoffice.auth.limits import ConnectionLimiter, Refusal
from postoffice.net.accept_balance import GIVE_UP, RECHECK, AcceptBoard
from postoffice.net.deadlines import Expiry, InputDeadlines, InputTimeout
from postoffice.net.proxy import ProxyHeaderError, ProxyResult, parse_proxy_header
from postoffice.net.tls import ReloadingServerContext

__all__ = ["BACKLOG", "CLIENT_GONE", "Connection", "Handler", "Listener", "bind_sockets", "start_listener"]

log = logging.getLogger(__name__)

BACKLOG = 1024                # a benchmark opens 50 at once; SYN floods are the kernel's job
READ_LIMIT = 64 * 1024        # StreamReader line limit (readline/readuntil) and half its buffer
TLS_HANDSHAKE_TIMEOUT = 30.0
PROXY_HEADER_TIMEOUT = 10.0   # proxy-protocol.txt §1: at least 3 s, to cover a TCP retransmit
REFUSAL_TIMEOUT = 10.0        # for on_refused to write its one line
CLOSE_TIMEOUT = 5.0           # for the peer to take our last bytes (and TLS close_notify)

# Ids: a per-process random byte and a counter, unique within a run and rarely across runs.
_RUN_TAG = secrets.randbelow(256)
_counter = itertools.count(1)
# A client going away mid-conversation is routine, not a bug worth a traceback: drivers that
# catch exceptions around a command let these end the connection with one debug line.
CLIENT_GONE = (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError)
_DISCONNECTS = (*CLIENT_GONE, TimeoutError)
# accept() failures that concern one connection only (it was reset before we took it).
_TRANSIENT_ACCEPT_ERRORS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM,
                                      errno.EINTR, errno.EAGAIN})


def _new_id() -> str:
    return f"{_RUN_TAG:02x}{next(_counter):04x}"


@dataclass(eq=False)
class Connection:
    """One accepted client connection, as seen by a protocol handler.

    With a PROXY header, ``peer_*`` and ``local_*`` are the addresses the header names (the
    real client and the address it connected to), unless it said LOCAL/UNKNOWN.
    """

    id: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer_ip: str
    peer_port: int
    local_ip: str
    local_port: int
    tls: bool = False
    tls_version: str | None = None
    tls_cipher: str | None = None
    # For the "session end" and login lines (logevents): the listener's protocol name, the
    # account once logged in, and what the drivers counted (read_input counts bytes in).
    protocol: str = ""
    user: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    commands: int = 0
    # Writers replaced by start_tls must outlive the connection: a StreamWriter collected while
    # its transport is open closes it, and that transport is the socket under the TLS session.
    _retired: list[asyncio.StreamWriter] = field(default_factory=list, init=False, repr=False)
    _broken: bool = field(default=False, init=False, repr=False)
    # Set up by the listener (line and login deadlines); the driver ends LOGIN on login.
    deadlines: InputDeadlines = field(default_factory=InputDeadlines, init=False, repr=False)
    # The limiter that counts this connection (set by the listener once it is counted), and
    # (protocol, account) once log_in moved it to that account.
    _limiter: ConnectionLimiter | None = field(default=None, init=False, repr=False)
    _login: tuple[str, str] | None = field(default=None, init=False, repr=False)

    def log_in(self, protocol: str, account: str) -> str | None:
        """Count this connection as ``account``'s on ``protocol`` ("imap", "pop3", "smtp")
        from now on, instead of as one of its address's connections before login; or the
        sentence refusing the login (too many connections of that user from this address),
        and it stays counted as before. Drivers call it once the password was right."""
        limiter = self._limiter
        if limiter is None or self._login is not None:
            return None
        refusal = limiter.log_in(self.peer_ip, protocol, account)
        if refusal is None:
            self._login = (protocol, account)
        return refusal

    async def read_input(self, size: int, *, idle: float, open_line: object | None) -> bytes:
        """Up to ``size`` bytes from the client (``b""`` at EOF), within the connection's
        deadlines (net/deadlines.py); raises :class:`InputTimeout` when one passes first.

        ``idle``: how long the client may send nothing at all; ``open_line``: which line is
        partly received (the protocol core says), None between lines.
        """
        seconds, expiry = self.deadlines.timeout(idle, open_line)
        try:
            async with asyncio.timeout(seconds):
                data = await self.reader.read(size)
        except TimeoutError:
            raise InputTimeout(expiry) from None
        self.bytes_in += len(data)
        return data

    @property
    def is_loopback(self) -> bool:
        """Whether the client is on this machine (127.0.0.0/8 or ::1)."""
        try:
            return ipaddress.ip_address(self.peer_ip).is_loopback
        except ValueError:
            return False

    async def start_tls(self, context: ssl.SSLContext, *,
                        handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT) -> int:
        """Upgrade to TLS as the server (STARTTLS / STLS); returns the plaintext bytes dropped.

        Call it after writing the "go ahead" reply (it is flushed first). Afterwards
        ``conn.reader`` and ``conn.writer`` are new objects: never keep copies across the upgrade
        (the old reader reports EOF; writing to the old writer would corrupt the session).

        Bytes the client sent after STARTTLS and before the handshake are dropped and counted
        (RFC 3207 §4.2, RFC 9051 §6.2.1); the driver must drop whatever its own line buffer holds
        after the STARTTLS line too. A failed handshake raises ``ssl.SSLError``,
        ``ConnectionError`` or ``TimeoutError`` and leaves the connection closed.
        """
        if self.tls:
            raise RuntimeError(f"connection {self.id} already uses TLS")
        loop = asyncio.get_running_loop()
        old_reader, old_writer = self.reader, self.writer
        await old_writer.drain()
        reader = asyncio.StreamReader(limit=READ_LIMIT)
        protocol = asyncio.StreamReaderProtocol(reader)
        self._retired.append(old_writer)
        transport = None
        try:
            # Bytes still in the kernel go to the TLS layer: after our reply a legitimate
            # client sends nothing but its ClientHello.
            transport = await loop.start_tls(old_writer.transport, protocol, context,
                                             server_side=True,
                                             ssl_handshake_timeout=handshake_timeout)
        finally:
            if transport is None:  # the socket is closed; the old reader will get nothing more
                self._broken = True
                old_reader.feed_eof()
        if transport is None:
            raise ConnectionResetError("the connection closed during the TLS handshake")
        # loop.start_tls does not call connection_made; the reader needs it for flow control.
        protocol.connection_made(transport)
        self.reader = reader
        self.writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        self._note_tls()
        # The old protocol gets no more data: its buffer is exactly what came after STARTTLS.
        old_reader.feed_eof()
        try:
            leftover = await old_reader.read()
        except Exception:
            leftover = b""
        if leftover:
            log.info("connection %s: dropped %d bytes sent before the TLS handshake",
                     self.id, len(leftover))
        return len(leftover)

    def _note_tls(self) -> None:
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.tls = True
            self.tls_version = ssl_object.version()
            cipher = ssl_object.cipher()
            self.tls_cipher = cipher[0] if cipher else None

    async def _close(self) -> None:
        """Close the connection, giving the peer ``CLOSE_TIMEOUT`` seconds to take the rest."""
        writer, clean = self.writer, False
        try:
            if not self._broken:
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
                clean = True
        except Exception:
            pass  # TimeoutError: the peer stopped reading; ConnectionError: it is gone anyway
        finally:
            # Also reached when Listener.close cancels us: never leave a socket behind.
            if not clean and not self._broken:
                writer.transport.abort()
            for old in self._retired:
                if not old.transport.is_closing():
                    old.transport.abort()


Handler = Callable[[Connection], Awaitable[None]]


def _normal_ip(ip: str) -> str:
    """Canonical text of an address; IPv4-mapped IPv6 (from dual-stack sockets) as IPv4."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _endpoint(info: Any) -> tuple[str, int]:
    # (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6, None if the peer left
    # before asyncio asked.
    return (_normal_ip(str(info[0])), int(info[1])) if isinstance(info, tuple) else ("", 0)


def _make_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     header: ProxyResult | None = None) -> Connection:
    peer = _endpoint(writer.get_extra_info("peername"))
    local = _endpoint(writer.get_extra_info("sockname"))
    if header is not None and header.source is not None and header.destination is not None:
        peer = (_normal_ip(header.source.ip), header.source.port)
        local = (_normal_ip(header.destination.ip), header.destination.port)
    connection = Connection(_new_id(), reader, writer, peer[0], peer[1], local[0], local[1])
    connection._note_tls()
    return connection


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    # Replies are small and each waits for the client's next command: Nagle would only add
    # latency. asyncio usually sets this already; uvloop and older kernels may not.
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class Listener:
    """A running server for one address; create it with :func:`start_listener`."""

    def __init__(self, name: str, handler: Handler, tls: ReloadingServerContext | None,
                 limiter: ConnectionLimiter | None,
                 on_refused: Callable[[Connection, Refusal], Awaitable[None]] | None,
                 line_timeout: float = math.inf, login_timeout: float = math.inf) -> None:
        self.name = name
        self._line_timeout = line_timeout
        self._login_timeout = login_timeout
        self._unix_path: Path | None = None
        self._handler = handler
        self._tls_context = tls.handshake_context() if tls is not None else None
        self._limiter = limiter
        self._on_refused = on_refused
        self._server: asyncio.Server | None = None
        self._accept_sockets: list[socket.socket] = []  # accepted from by our own loops
        self._proxied = False
        self._board: AcceptBoard | None = None  # shared sockets: who takes the next connection
        self._accept_tasks: list[asyncio.Task[None]] = []
        self._connections: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._addresses: tuple[tuple[str, int], ...] = ()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (several when a host name has several addresses)."""
        return tuple(self._server.sockets) if self._server else tuple(self._accept_sockets)

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """``(ip, port)`` of each listening socket (the real port if 0 was asked for)."""
        return self._addresses

    @property
    def address(self) -> str:
        """The first listening address as text: ``127.0.0.1:10025``, ``[::1]:10025`` or
        ``unix:/path``."""
        if self._unix_path is not None:
            return f"unix:{self._unix_path}"
        ip, port = self.addresses[0]
        return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    @property
    def active_connections(self) -> int:
        """Connections accepted and not yet closed (refused ones included while they last)."""
        return len(self._connections)

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, let handlers finish for ``grace`` seconds, then cancel them.

        A cancelled handler sees ``asyncio.CancelledError`` at its current ``await``; it may
        catch it to send a short goodbye (IMAP ``* BYE``, SMTP ``421``) and must re-raise.
        """
        if not self._closing:
            self._closing = True
            if self._server is not None:
                self._server.close()
            for task in self._accept_tasks:
                task.cancel()
            await asyncio.gather(*self._accept_tasks, return_exceptions=True)
            for sock in self._accept_sockets:
                sock.close()
        pending = set(self._connections)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=max(grace, 0))
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_TIMEOUT + 1)
        if self._server is not None:
            try:  # from Python 3.12 this also waits for the connections, all closed by now
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT)
            except TimeoutError:
                pass
        log.debug("%s: closed", self.name)

    # --- accepting -------------------------------------------------------------------------------

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _start_direct(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(
            self._on_stream, host, port, ssl=self._tls_context, backlog=BACKLOG,
            limit=READ_LIMIT,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self._tls_context else None)

    async def _bind(self, host: str, port: int) -> None:
        self._accept_sockets = await bind_sockets(host, port)

    def _start_accepting(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._accept_sockets:
            sock.setblocking(False)
        self._accept_tasks = [loop.create_task(self._accept_loop(sock)) for sock in self._accept_sockets]

    async def _on_stream(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        # Runs in a task that asyncio's StreamReaderProtocol created and nobody awaits; on 3.11
        # that protocol logs a cancelled task as an error, so cancellation ends here quietly.
        task = asyncio.current_task()
        assert task is not None
        self._track(task)
        try:
            if self._closing:
                writer.transport.abort()
                return
            await self._serve(_make_connection(reader, writer))
        except asyncio.CancelledError:
            pass

    async def _start_proxied(self, host: str, port: int) -> None:
        await self._bind(host, port)
        self._proxied = True
        self._start_accepting()

    async def _accept_loop(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        board = self._board
        while True:
            try:
                if board is None:
                    sock, _ = await loop.sock_accept(listening)
                else:
                    await _wait_for_turn(loop, listening, board)
                    sock, _ = listening.accept()
                    sock.setblocking(False)
            except BlockingIOError:
                continue  # another process took it
            except OSError as error:
                if self._closing or listening.fileno() < 0:
                    return
                if error.errno not in _TRANSIENT_ACCEPT_ERRORS:
                    # Out of file descriptors or memory: accepting again at once would spin.
                    log.error("%s: cannot accept connections: %s", self.name, error)
                    await asyncio.sleep(1.0)
                continue
            task = loop.create_task(self._on_socket(sock))
            self._track(task)
            if board is not None:
                board.add(1)
                task.add_done_callback(lambda _: board.add(-1))

    async def _on_socket(self, sock: socket.socket) -> None:
        loop, peer, header = asyncio.get_running_loop(), ("", 0), None
        try:
            peer = _endpoint(sock.getpeername())
            if self._proxied:
                async with asyncio.timeout(PROXY_HEADER_TIMEOUT):
                    header = await _read_proxy_header(loop, sock)
        except BaseException as error:
            sock.close()
            if not isinstance(error, ProxyHeaderError | OSError):
                raise  # cancelled by close()
            reason = "no PROXY header in time" if isinstance(error, TimeoutError) else error
            # Without PROXY, only a client gone before we looked (a reset) ends up here: routine.
            log.log(logging.WARNING if self._proxied else logging.DEBUG,
                    "%s: closing connection from %s: %s", self.name, peer[0], reason)
            return
        reader = asyncio.StreamReader(limit=READ_LIMIT)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            # From here the loop owns the socket and closes it on failure.
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, sock, ssl=self._tls_context,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self._tls_context else None)
        except (OSError, ssl.SSLError) as error:
            log.debug("%s: TLS handshake with %s failed: %s", self.name, peer[0], error)
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        await self._serve(_make_connection(reader, writer, header))

    # --- serving ---------------------------------------------------------------------------------

    async def _serve(self, conn: Connection) -> None:
        limiter = self._limiter
        refusal = None if limiter is None else limiter.acquire(conn.peer_ip)
        acquired = limiter is not None and refusal is None
        if acquired:
            conn._limiter = limiter
        loop = asyncio.get_running_loop()
        started = loop.time()
        conn.protocol = self.name
        conn.deadlines = InputDeadlines(self._line_timeout, loop.time)
        conn.deadlines.start(Expiry.LOGIN, self._login_timeout)
        try:
            _set_nodelay(conn.writer)
            if refusal is not None:
                log.info("%s: refused connection %s from %s: %s", self.name, conn.id,
                         conn.peer_ip, refusal.value.lower())
                if self._on_refused is not None:
                    await asyncio.wait_for(self._on_refused(conn, refusal), REFUSAL_TIMEOUT)
                return
            log.debug("%s: connection %s from %s port %d%s", self.name, conn.id, conn.peer_ip,
                      conn.peer_port, f" over {conn.tls_version}" if conn.tls else "")
            await self._handler(conn)
        except _DISCONNECTS as error:
            log.debug("%s: connection %s ended: %r", self.name, conn.id, error)
        except Exception:
            log.exception("%s: connection %s from %s failed", self.name, conn.id, conn.peer_ip)
        finally:
            try:
                await conn._close()
            finally:  # the slot is freed even if close() cancels us while closing
                if acquired and limiter is not None:
                    limiter.release(conn.peer_ip, conn._login)
                if refusal is None:
                    logevents.session_end(self.name, conn.peer_ip, conn.id, loop.time() - started,
                                          conn.bytes_in, conn.bytes_out, conn.commands, conn.user)


async def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address ``host`` names (one for "127.0.0.1", two for a name
    with IPv4 and IPv6 addresses), for servers that accept on sockets of their own (the PROXY
    listeners, worker processes, the HTTP listener). Raises OSError (socket.gaierror for a name
    that does not resolve) with nothing left open."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio does: "::" must not take IPv4 too
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _waiting(listening: socket.socket) -> bool:
    """A connection waits to be accepted (poll, not select: descriptors may be above 1023)."""
    poll = select.poll()
    poll.register(listening, select.POLLIN)
    return bool(poll.poll(0))


async def _wait_for_turn(loop: asyncio.AbstractEventLoop, listening: socket.socket, board: AcceptBoard) -> None:
    """Return when a connection waits on `listening` and this process should take it: no other
    process sharing the socket serves fewer connections, or none took it within GIVE_UP."""
    while True:
        readable = loop.create_future()
        loop.add_reader(listening.fileno(), readable.set_result, None)
        try:
            await readable
        finally:
            loop.remove_reader(listening.fileno())
        deadline = loop.time() + GIVE_UP
        while board.should_leave() and loop.time() < deadline:
            await asyncio.sleep(RECHECK)
            if not _waiting(listening):
                break  # a less busy process took it
        else:
            return


async def _read_proxy_header(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> ProxyResult:
    """Read exactly the PROXY header from ``sock``, never a byte of what follows it."""
    data = b""
    while True:
        result = parse_proxy_header(data)
        if isinstance(result, ProxyResult):
            return result
        chunk = await loop.sock_recv(sock, result.at_least - len(data))
        if not chunk:
            raise ProxyHeaderError("the connection closed before the PROXY header was complete")
        data += chunk


async def start_unix_listener(path: Path, handler: Handler, *, name: str = "",
                              mode: int = 0o660) -> Listener:
    """Listen on a unix socket (LMTP from a local MTA); a stale socket file is replaced.

    Only processes that may open the file can connect, so there is no TLS and no per-IP limit;
    peers have no IP address (`peer_ip` is "").
    """
    listener = Listener(name or f"unix:{path}", handler, None, None, None)  # local: no deadlines
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_socket():
        path.unlink()
    listener._server = await asyncio.start_unix_server(
        listener._on_stream, path, limit=READ_LIMIT, backlog=BACKLOG)
    os.chmod(path, mode)
    listener._unix_path = path
    log.debug("%s: listening on unix:%s", listener.name, path)
    return listener


async def start_listener(host: str, port: int, handler: Handler, *,
                         tls: ReloadingServerContext | None = None,
                         limiter: ConnectionLimiter | None = None,
                         on_refused: Callable[[Connection, Refusal], Awaitable[None]] | None = None,
                         proxy_protocol: bool = False, name: str = "",
                         sockets: Sequence[socket.socket] = (), board: AcceptBoard | None = None,
                         line_timeout: float = math.inf,
                         login_timeout: float = math.inf) -> Listener:
    """Listen on ``host``:``port`` (0 picks a free port) and run ``handler`` per connection.

    ``board``: other processes accept from the same sockets (``[smtp]``/``[smtp]`/`[pop3] processes``); the board
    says which of them serves the fewest connections, and that one takes the next (see
    net/accept_balance.py). ``sockets``, listening already (bound by another process), are served
    instead of binding ``host``:``port``.

    ``tls`` makes it an implicit-TLS port (465, 993, 995). Over ``limiter``'s per-IP or total
    limit, ``on_refused(conn, refusal)`` writes the protocol's error line (``refusal.value`` is
    a sentence for it) and the connection closes; after a login the driver moves the connection
    to its user with :meth:`Connection.log_in`. Each connection's ``deadlines`` get
    ``line_timeout`` and a LOGIN phase of ``login_timeout`` seconds from now (the driver ends it
    at login), both enforced by :meth:`Connection.read_input`. With
    ``proxy_protocol`` every connection must start with a PROXY v1 or v2 header (and only a
    trusted load balancer should be able to reach the port); a missing or bad one closes it.

    Example::

        async def echo(conn: Connection) -> None:
            while line := await conn.reader.readline():
                conn.writer.write(line)

        listener = await start_listener("127.0.0.1", 0, echo, name="echo")
        print(listener.address)          # 127.0.0.1:43817
        await listener.close()
    """
    listener = Listener(name or f"{host}:{port}", handler, tls, limiter, on_refused,
                        line_timeout, login_timeout)
    if (sockets or board) and proxy_protocol:
        raise ValueError("the PROXY protocol is not available on shared sockets")
    listener._board = board
    if sockets:
        listener._accept_sockets = list(sockets)
        listener._start_accepting()
    elif board is not None:
        await listener._bind(host, port)
        listener._start_accepting()
    elif proxy_protocol:
        await listener._start_proxied(host, port)
    else:
        await listener._start_direct(host, port)
    # Remembered, so that log lines can name the listener after close() too.
    listener._addresses = tuple(_endpoint(sock.getsockname()) for sock in listener.sockets)
    log.debug("%s: listening on %s%s%s", listener.name,
             ", ".join(f"{ip}:{p}" for ip, p in listener.addresses),
             " (TLS)" if tls else "", " (PROXY protocol)" if proxy_protocol else "")
    return listener
