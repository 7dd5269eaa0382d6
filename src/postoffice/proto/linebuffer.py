"""A receive buffer that hands out lines and raw byte runs, for the sans-IO protocol cores.

Bytes go in with :meth:`LineBuffer.feed`; complete lines come out of :meth:`LineBuffer.next_line`,
raw byte runs (SMTP BDAT chunks, IMAP literals, DATA content) out of :meth:`LineBuffer.take` and
:meth:`LineBuffer.take_all`. No I/O here.

Implementation notes:

- A line ends at LF. CRLF is the line end every mail protocol specifies (RFC 5321 §2.3.8); a
  bare LF is accepted as well, as Postfix does for SMTP commands, because some clients send it
  and treating it as a line end cannot be abused in a command (message data is not read through
  :meth:`next_line`: the DATA scanner in ``smtp.proto.dotstuff`` only ever ends at CRLF.CRLF).
  The line is returned with its terminator, so the caller sees which one it was.
- A line may be at most ``max_line`` bytes including its terminator. When more than that
  accumulates without a line end, or a complete line is longer, :meth:`next_line` raises
  :class:`LineTooLong` and leaves the buffer as it was; the caller then calls :meth:`skip_line`,
  which discards through the next line end and, if none has arrived, keeps discarding what
  :meth:`feed` brings until one does. Memory stays bounded by ``max_line`` plus one feed.
- Lines are consumed by advancing an offset, not by deleting from the front of the bytearray,
  so pipelined input with many lines costs O(n) rather than O(n²); the consumed prefix is
  dropped once it is large or the buffer empties. Line ends are found with ``bytearray.find``,
  and a partial line is not scanned again from its start when more bytes arrive.
"""

from __future__ import annotations

__all__ = ["LineBuffer", "LineTooLong"]

# Drop the consumed prefix of the buffer once it is at least this long.
_COMPACT_AT = 65536


class LineTooLong(Exception):
    """More than ``max_line`` bytes arrived without a line end."""


class LineBuffer:
    """Bytes in; lines (with their terminator) or raw byte runs out."""

    __slots__ = ("_buf", "_lines", "_max_line", "_pos", "_scanned", "_skipping")

    def __init__(self, max_line: int) -> None:
        if max_line < 2:
            raise ValueError(f"max_line must be at least 2, not {max_line}")
        self._max_line = max_line
        self._buf = bytearray()
        self._pos = 0  # start of the unread bytes in _buf
        self._scanned = 0  # bytes after _pos known to contain no LF
        self._skipping = False  # discarding input until the next line end
        self._lines = 0  # lines handed out or skipped so far

    @property
    def max_line(self) -> int:
        return self._max_line

    @property
    def open_line(self) -> int | None:
        """Which line is partly received, as the number of lines taken before it (the same
        until it is complete); None when nothing is buffered. For a driver's line deadline
        (net/deadlines.py), asked when the core needs more data."""
        return self._lines if len(self) or self._skipping else None

    def __len__(self) -> int:
        """The number of buffered bytes not yet handed out."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        """Append received bytes (discarding them up to a line end if :meth:`skip_line` asked)."""
        if self._skipping:
            end = data.find(b"\n")
            if end < 0:
                return
            self._skipping = False
            self._lines += 1
            data = data[end + 1 :]
        self._buf += data

    def next_line(self) -> bytes | None:
        """The next complete line including its CRLF or LF, or None if none has arrived yet.

        Raises :class:`LineTooLong` if the line is longer than ``max_line`` bytes, or more than
        ``max_line`` bytes arrived without a line end; the buffer is left unchanged.
        """
        buf, pos = self._buf, self._pos
        limit = pos + self._max_line
        end = buf.find(b"\n", pos + self._scanned, limit)
        if end < 0:
            available = len(buf) - pos
            if available > self._max_line:
                raise LineTooLong(f"no line end within {self._max_line} bytes")
            self._scanned = available
            return None
        line = bytes(buf[pos : end + 1])
        self._advance(end + 1)
        self._lines += 1
        return line

    def skip_line(self) -> bool:
        """Discard through the next line end; False if none has arrived yet.

        After False, whatever :meth:`feed` brings is discarded up to and including the next line
        end as well, so a too-long line never accumulates.
        """
        buf = self._buf
        end = buf.find(b"\n", self._pos)
        if end < 0:
            self.clear()
            self._skipping = True
            return False
        self._advance(end + 1)
        self._lines += 1
        return True

    def take(self, n: int) -> bytes:
        """Up to ``n`` raw bytes from the front of the buffer (fewer if fewer are buffered)."""
        pos = self._pos
        chunk = bytes(self._buf[pos : pos + n])
        self._advance(pos + len(chunk))
        return chunk

    def take_all(self) -> bytes:
        """All buffered bytes."""
        chunk = bytes(self._buf[self._pos :]) if self._pos else bytes(self._buf)
        self.clear()
        return chunk

    def clear(self) -> None:
        """Forget everything buffered, and stop discarding up to a line end."""
        self._buf = bytearray()
        self._pos = 0
        self._scanned = 0
        self._skipping = False

    def _advance(self, new_pos: int) -> None:
        self._scanned = 0
        if new_pos >= len(self._buf):
            self._buf = bytearray()
            self._pos = 0
        elif new_pos >= _COMPACT_AT:
            del self._buf[:new_pos]
            self._pos = 0
        else:
            self._pos = new_pos
