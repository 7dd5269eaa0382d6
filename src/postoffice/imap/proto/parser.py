"""The server side of IMAP command input, sans-IO: bytes in, commands out (RFC 9051 §2.2, §4.3, §7.5).

A driver loop::

    parser = ImapServerParser(max_literal=50 * 2**20)
    while True:
        parser.receive_data(sock.recv(65536))            # b"" at EOF
        while (event := parser.next_event()) is not NEED_DATA:
            if isinstance(event, LiteralNeeded):
                if event.size > quota_left:              # optional extra policy
                    send(tagged(event.tag, "NO", "Too big", TOOBIG)); parser.reject_literal()
                else:
                    send(continuation("Ready"))
            elif isinstance(event, CommandError):
                send(tagged(event.tag, event.status, event.text, event.code) if event.tag
                     else untagged_status(event.status, event.text, event.code))
                if event.fatal or parser.consecutive_errors > 10: close()
            elif isinstance(event, ImapCommand):
                ...                                      # IDLE: parser.expect_idle_done()
                                                         # AUTHENTICATE: parser.expect_continuation()

Implementation notes (invariants):

- A command is its first line plus, for each literal header ``{n}`` (``{n+}``, ``{n-}``,
  ``~{n}``) ending a line, the n octets and the next line (RFC 9051 §4.3). Lines and literals
  are collected first and tokenised once the command is complete (``tokens``, ``grammar``), so
  a literal split across reads, or many literals in one command, cost nothing special.
- Synchronising literal: the parser reports :class:`LiteralNeeded` as soon as the header line
  is read and before any octet of the literal is consumed. The next ``next_event()`` call
  means the driver sent ``+`` and the octets are read; :meth:`ImapServerParser.reject_literal`
  means the driver refused, and the command is forgotten: the client sends nothing more of it
  (RFC 9051 §7.5).
- Checked from the header, before reading: ``max_literal`` per literal, ``max_command_literals``
  for the sum of one command's literals, ``max_literals_per_command``. A synchronising literal
  over a limit gets ``NO [TOOBIG]`` at once, without LiteralNeeded. A non-synchronising one
  (LITERAL+/-, RFC 7888 §4; larger than ``max_nonsync_literal`` counts too) cannot be refused
  before it arrives: its octets are read and discarded, and so is the rest of the command, then
  ``BAD [TOOBIG]`` is reported. "Discard the rest of the command" is the general rule for a
  command that failed half-way (an over-long line, a bad tag before a literal): later lines and
  non-synchronising literals of it are consumed, never read as commands, and the error comes
  at its end, or at its next synchronising literal, since the client waits there.
- Lines end with CRLF or a bare LF (``LineBuffer``); a line longer than ``max_line`` is a BAD,
  after its end has been found (its last octets are kept to see whether it announced a
  literal). A literal size that cannot be a number64 makes the input unsynchronisable: fatal.
- An empty line is ignored. Every CommandError increments ``consecutive_errors`` (reset by a
  valid command) and ``error_count``: the driver decides when garbage is enough to close.
- IDLE and AUTHENTICATE read raw lines: after :meth:`expect_idle_done` the next line must be
  ``DONE`` (:class:`IdleDone`, else a tagged BAD); after :meth:`expect_continuation` the next
  line is a :class:`ContinuationLine`, whatever it says. Either mode lasts one line.
- Nothing is parsed ahead: bytes after the current command stay buffered until the next
  ``next_event()``, so the driver can switch modes (IDLE, AUTHENTICATE) or drop everything
  (STARTTLS, :meth:`take_buffered`) between commands.
"""

from __future__ import annotations

import enum
import re

from postoffice.imap.proto import events as ev
from postoffice.imap.proto.grammar import COMMAND_NAMES, parse_command
from postoffice.imap.proto.tokens import MAX_NUMBER64, ParseError, Reader
from postoffice.proto.linebuffer import LineBuffer, LineTooLong

__all__ = ["ImapServerParser", "LocalProtocolError"]

# tag SP name [SP subname]: tag = 1*<ASTRING-CHAR except "+"> (RFC 9051 §9).
_HEAD = re.compile(rb'([^\x00-\x20\x7f-\xff(){%*"\\+]+) ([A-Za-z0-9-]+)(?: ([A-Za-z]+))?')
_TAG_ONLY = re.compile(rb'([^\x00-\x20\x7f-\xff(){%*"\\+]+)(?: |\Z)')
_LITERAL_HEADER = re.compile(rb"(~?)\{([0-9]+)([+-]?)\}")
_HEADER_END = re.compile(rb"[0-9][+-]?\}\Z")
_TAIL_KEEP = 64  # octets of an over-long line kept to find a literal header at its end
_HEAD_KEEP = 128  # octets of an over-long line kept to find its tag


class LocalProtocolError(Exception):
    """The driver used the parser wrongly (our bug, not the client's)."""


class _Mode(enum.Enum):
    COMMAND = "command"  # reading a command line (the first or one after a literal)
    LITERAL = "literal"  # reading (or discarding) literal octets
    AWAIT_LITERAL = "await-literal"  # LiteralNeeded reported; the driver answers it
    SKIP_LINE = "skip-line"  # discarding an over-long line
    IDLE = "idle"  # the next line must be DONE
    CONTINUATION = "continuation"  # the next line answers a + challenge


class ImapServerParser:
    """One IMAP connection's command input; no I/O.

    The limits are plain attributes the driver may change between commands: a server keeps
    ``max_literal`` small before authentication (a LITERAL+ upload cannot be refused before it
    arrives) and raises it to the APPEND limit after LOGIN.
    """

    def __init__(
        self,
        *,
        max_line: int = 8192,
        max_literal: int,
        max_nonsync_literal: int | None = None,
        max_command_literals: int | None = None,
        max_literals_per_command: int = 1000,
        utf8_mailboxes: bool = False,
    ) -> None:
        if max_line < 1024:
            raise ValueError(f"max_line must be at least 1024, not {max_line}")
        if max_literal < 0:
            raise ValueError(f"max_literal must not be negative: {max_literal}")
        self.max_literal = max_literal
        # LITERAL+ (RFC 7888 §3): any size; a server offering only LITERAL- sets 4096 (§4).
        self.max_nonsync_literal = (
            max_literal if max_nonsync_literal is None else max_nonsync_literal
        )
        self.max_command_literals = (
            4 * max_literal if max_command_literals is None else max_command_literals
        )
        self.max_literals_per_command = max_literals_per_command
        # Mailbox names are UTF-8, not modified UTF-7 (ENABLE UTF8=ACCEPT or IMAP4rev2).
        self.utf8_mailboxes = utf8_mailboxes
        self.consecutive_errors = 0
        self.error_count = 0
        self._buffer = LineBuffer(max_line)
        self._mode = _Mode.COMMAND
        self._eof = False
        self._last_tag = ""  # of the last command reported: IDLE and AUTHENTICATE need it
        # The command being collected.
        self._segments: list[bytes] = []
        self._literals: list[tuple[bytes, bool]] = []
        self._literal_total = 0
        self._tag: str | None = None
        self._name = ""
        self._failure: ev.CommandError | None = None  # set: discard the rest, then report it
        # The literal being read.
        self._remaining = 0
        self._chunks: list[bytes] = []
        self._binary = False
        self._discard = False
        # An over-long line being skipped.
        self._skip_head: bytes | None = None  # None: the line is not a command's first
        self._skip_tail = b""
        self._skip_from: _Mode = _Mode.COMMAND
        self._dead = False  # after a fatal error: nothing more is read
        self._lines = 0  # lines (and over-long lines) taken so far: names the open line

    # --- public API ------------------------------------------------------------------------

    @property
    def eof(self) -> bool:
        return self._eof

    @property
    def has_buffered_data(self) -> bool:
        """Received bytes not yet turned into events (pipelined commands)."""
        return len(self._buffer) > 0

    @property
    def in_command(self) -> bool:
        """Part of a command has been read: a line ending in a literal header, literal octets,
        or the start of an over-long line."""
        return bool(self._segments) or self._mode in (
            _Mode.LITERAL,
            _Mode.AWAIT_LITERAL,
            _Mode.SKIP_LINE,
        )

    @property
    def open_line(self) -> int | None:
        """Which line is partly received (a number that stays the same until it is complete),
        or None between lines and inside literals: for the driver's line deadline."""
        mode = self._mode
        if mode is _Mode.SKIP_LINE:
            return self._lines
        if mode is _Mode.LITERAL or mode is _Mode.AWAIT_LITERAL or not len(self._buffer):
            return None
        return self._lines

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; ``b""`` means the client closed its side."""
        if self._eof:
            if data:
                raise LocalProtocolError("receive_data() after EOF")
            return
        if not data:
            self._eof = True
        elif not self._dead:
            self._buffer.feed(data)

    def next_event(self) -> ev.Event | ev.NeedData:
        """The next event, or NEED_DATA when the buffered bytes hold none."""
        while not self._dead:
            mode = self._mode
            if mode is _Mode.AWAIT_LITERAL:  # the driver sent "+": read the octets
                self._mode = mode = _Mode.LITERAL
            if mode is _Mode.LITERAL:
                if not self._read_literal():
                    return ev.NEED_DATA
                continue
            if mode is _Mode.SKIP_LINE:
                if not self._skip_long_line():
                    return ev.NEED_DATA
                self._lines += 1
                event = self._after_long_line()
            else:
                try:
                    line = self._buffer.next_line()
                except LineTooLong:
                    self._start_skipping()
                    continue
                if line is None:
                    return ev.NEED_DATA
                self._lines += 1
                body = line[:-2] if line.endswith(b"\r\n") else line[:-1]
                if mode is _Mode.IDLE:
                    event = self._idle_line(body)
                elif mode is _Mode.CONTINUATION:
                    self._mode = _Mode.COMMAND
                    event = ev.ContinuationLine(body, self._last_tag)
                else:
                    event = self._command_line(body)
            if event is not None:
                return self._count(event)
        return ev.NEED_DATA

    def reject_literal(self) -> None:
        """The driver answered LiteralNeeded with NO or BAD: forget the command."""
        if self._mode is not _Mode.AWAIT_LITERAL:
            raise LocalProtocolError("reject_literal() without a pending LiteralNeeded")
        self._mode = _Mode.COMMAND
        self._reset_command()

    def expect_idle_done(self) -> None:
        """IDLE was accepted (``+ idling`` sent): the next line must be DONE."""
        self._require_between_commands("expect_idle_done()")
        self._mode = _Mode.IDLE

    def expect_continuation(self) -> None:
        """A ``+`` challenge was sent (AUTHENTICATE): the next line is the client's answer."""
        self._require_between_commands("expect_continuation()")
        self._mode = _Mode.CONTINUATION

    def take_buffered(self) -> bytes:
        """Remove and return the unread bytes: drop them after STARTTLS (CVE-2011-0411), or
        hand them to a decompressor (COMPRESS=DEFLATE)."""
        self._require_between_commands("take_buffered()")
        return self._buffer.take_all()

    # --- command lines -----------------------------------------------------------------------

    def _command_line(self, body: bytes) -> ev.Event | None:
        first = not self._segments
        if first:
            if not body:
                return None  # an empty line between commands: ignored
            self._start_command(body)
        header = _literal_header(body)
        if header is None:
            self._segments.append(body)
            return self._finish()
        start, size, binary, nonsync = header
        self._segments.append(body[:start])
        return self._literal_announced(size, binary, nonsync)

    def _start_command(self, body: bytes) -> None:
        m = _HEAD.match(body)
        if m is None:
            t = _TAG_ONLY.match(body)
            self._tag = t.group(1).decode("ascii") if t else None
            self._name = ""
            if t is None:
                text = "Invalid tag"
            else:
                text = "Invalid command name" if body[t.end() :].strip() else "Missing command"
            self._failure = ev.CommandError(self._tag, "BAD", text)
            return
        self._tag = m.group(1).decode("ascii")
        name = m.group(2).decode("ascii").upper()
        if name == "UID" and m.group(3):
            name = f"UID {m.group(3).decode('ascii').upper()}"
        self._name = name
        if name not in COMMAND_NAMES and name != "UID":
            # Refuse at once, before any literal is transferred.
            self._failure = ev.CommandError(self._tag, "BAD", f"Unknown command {name[:40]}")

    def _literal_announced(self, size: int, binary: bool, nonsync: bool) -> ev.Event | None:
        tag = self._tag
        failure = self._failure
        if failure is not None and failure.fatal:
            return self._fail(failure)
        if size > MAX_NUMBER64:
            if nonsync:
                return self._fail(ev.CommandError(tag, "BAD", "Invalid literal size", fatal=True))
            return self._fail(failure or ev.CommandError(tag, "BAD", "Invalid literal size"))
        if failure is None:
            if size > self.max_literal or (nonsync and size > self.max_nonsync_literal):
                failure = self._too_big(nonsync, "Literal too large")
            elif self._literal_total + size > self.max_command_literals:
                failure = self._too_big(nonsync, "Command too large")
            elif len(self._literals) >= self.max_literals_per_command:
                failure = self._too_big(nonsync, "Too many literals")
        if failure is not None:
            if not nonsync:
                return self._fail(failure)  # the client waits for "+": it gets this instead
            self._failure = failure
            self._begin_literal(size, binary, discard=True)
            return None
        self._literal_total += size
        self._begin_literal(size, binary, discard=False)
        if nonsync:
            return None
        self._mode = _Mode.AWAIT_LITERAL
        assert tag is not None
        return ev.LiteralNeeded(tag, size, binary, self._name)

    def _too_big(self, nonsync: bool, text: str) -> ev.CommandError:
        # RFC 7888 §4: BAD [TOOBIG] for a non-synchronising literal; NO for the refused "+".
        return ev.CommandError(self._tag, "BAD" if nonsync else "NO", text, "TOOBIG")

    def _begin_literal(self, size: int, binary: bool, *, discard: bool) -> None:
        self._mode = _Mode.LITERAL
        self._remaining = size
        self._chunks = []
        self._binary = binary
        self._discard = discard

    def _read_literal(self) -> bool:
        """Consume literal octets; True once the literal is complete."""
        while self._remaining:
            chunk = self._buffer.take(self._remaining)
            if not chunk:
                return False
            self._remaining -= len(chunk)
            if not self._discard:
                self._chunks.append(chunk)
        if not self._discard:
            chunks = self._chunks
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._literals.append((data, self._binary))
        self._chunks = []
        self._mode = _Mode.COMMAND  # the command goes on with the next line
        return True

    def _finish(self) -> ev.Event:
        """The last line of a command arrived: parse it, or report why it failed."""
        failure = self._failure
        if failure is not None:
            return self._fail(failure)
        tag = self._tag
        assert tag is not None
        reader = Reader(self._segments, self._literals, utf8=self.utf8_mailboxes)
        reader.pos = len(tag) + 1
        event: ev.Event
        try:
            name, args = parse_command(reader)
        except ParseError as exc:
            event = ev.CommandError(tag, exc.status, exc.reason, exc.code)
        else:
            event = ev.ImapCommand(tag, name, args)
        self._reset_command()
        return event

    def _fail(self, failure: ev.CommandError) -> ev.CommandError:
        self._reset_command()
        self._mode = _Mode.COMMAND
        if failure.fatal:
            self._buffer.clear()
            self._dead = True  # nothing after this can be trusted
        return failure

    def _reset_command(self) -> None:
        self._segments = []
        self._literals = []
        self._literal_total = 0
        self._failure = None
        self._name = ""

    # --- over-long lines ---------------------------------------------------------------------

    def _start_skipping(self) -> None:
        self._skip_from = self._mode
        self._mode = _Mode.SKIP_LINE
        self._skip_tail = b""
        # A command's first line: its head (captured from the first chunk) holds the tag.
        first = self._skip_from is _Mode.COMMAND and not self._segments
        self._skip_head = b"" if first else None

    def _skip_long_line(self) -> bool:
        """Discard through the next line end; True once it was found."""
        chunk = self._buffer.take_all()
        if self._skip_head == b"":
            self._skip_head = chunk[:_HEAD_KEEP]
        end = chunk.find(b"\n")
        if end < 0:
            self._skip_tail = (self._skip_tail + chunk)[-_TAIL_KEEP:]
            return False
        self._skip_tail = (self._skip_tail + chunk[: end + 1])[-_TAIL_KEEP:]
        self._buffer.feed(chunk[end + 1 :])  # the buffer is empty: the order is kept
        return True

    def _after_long_line(self) -> ev.Event | None:
        origin = self._skip_from
        self._mode = _Mode.COMMAND
        tail = self._skip_tail.rstrip(b"\r\n")
        if origin is _Mode.IDLE:
            return ev.CommandError(self._last_tag, "BAD", "Expected DONE")
        if origin is _Mode.CONTINUATION:
            return ev.CommandError(self._last_tag, "BAD", "Line too long")
        if self._skip_head is not None:
            m = _TAG_ONLY.match(self._skip_head)
            self._tag = m.group(1).decode("ascii") if m else None
            self._skip_head = None
        if self._failure is None:
            self._failure = ev.CommandError(self._tag, "BAD", "Command line too long", "TOOBIG")
        header = _literal_header(tail)
        if header is None:
            if _HEADER_END.search(tail):  # a literal header too long to read: cannot resync
                return self._fail(
                    ev.CommandError(self._tag, "BAD", "Command line too long", "TOOBIG", True)
                )
            return self._fail(self._failure)
        _, size, _, nonsync = header
        if size > MAX_NUMBER64 and nonsync:
            return self._fail(ev.CommandError(self._tag, "BAD", "Invalid literal size", fatal=True))
        if not nonsync:
            return self._fail(self._failure)
        self._segments.append(b"")  # the command is in progress
        self._begin_literal(size, False, discard=True)
        return None

    # --- IDLE and AUTHENTICATE ---------------------------------------------------------------

    def _idle_line(self, body: bytes) -> ev.Event:
        self._mode = _Mode.COMMAND
        if body.upper() == b"DONE":
            return ev.IdleDone(self._last_tag)
        return ev.CommandError(self._last_tag, "BAD", "Expected DONE")

    def _require_between_commands(self, what: str) -> None:
        if self._mode is not _Mode.COMMAND or self._segments:
            raise LocalProtocolError(f"{what} in the middle of a command ({self._mode.value})")

    def _count(self, event: ev.Event) -> ev.Event:
        if isinstance(event, ev.CommandError):
            self.consecutive_errors += 1
            self.error_count += 1
        elif isinstance(event, ev.ImapCommand):
            self.consecutive_errors = 0
            self._last_tag = event.tag
        return event


def _literal_header(body: bytes) -> tuple[int, int, bool, bool] | None:
    """(start, size, binary, non-synchronising) when ``body`` ends with a literal header."""
    if not body.endswith(b"}"):
        return None
    brace = body.rfind(b"{")
    if brace < 0:
        return None
    start = brace - 1 if brace and body[brace - 1] == 0x7E else brace  # "~{n}"
    m = _LITERAL_HEADER.fullmatch(body, start)
    if m is None:
        return None
    digits = m.group(2)
    size = int(digits) if len(digits) <= 20 else MAX_NUMBER64 + 1
    return start, size, m.group(1) == b"~", m.group(3) != b""
