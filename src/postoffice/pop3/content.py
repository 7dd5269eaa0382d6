"""RETR and TOP content (RFC 1939 §3, §7): a stored message streamed as CRLF lines, dot-stuffed.

Sans-IO like the protocol core: chunks of the blob in, bytes to send out.
"""

from __future__ import annotations

from postoffice.message.lines import dot_stuff

__all__ = ["MessageEncoder", "octets_after_crlf"]


class MessageEncoder:
    """A stored message in, the RETR or TOP content out: CRLF line ends, dot-stuffed, terminated.

    >>> enc = MessageEncoder()
    >>> enc.feed(b"Subject: x\\n\\n.dot\\n") + enc.finish()
    b'Subject: x\\r\\n\\r\\n..dot\\r\\n.\\r\\n'

    ``top_lines=None`` sends the whole message (RETR); ``n`` sends the header, the blank line and
    the first ``n`` lines of the body (TOP, RFC 1939 §7). A message without a blank line is all
    header. :attr:`done` turns True once TOP has sent enough, so the reader may stop early.

    Implementation notes:

    - Every CRLF and every bare LF becomes CRLF. A bare CR stays as it is: it is no line end to
      clients, and as every "." after a CRLF is doubled after normalising, no content can
      contain CRLF "." CRLF whatever CRs it holds. A chunk ending in CR holds that CR back
      until the next byte shows whether a LF follows, so a CRLF split between chunks stays one.
    - The normalised stream is tracked by one fact, whether output stands at a line start, so a
      "." opening the next chunk is stuffed as well.
    - Per chunk: two ``count`` calls, at most two ``replace`` calls to normalise, one regex
      substitution to stuff;
      TOP adds a ``find`` for the blank line and a ``count`` (and once a ``split``) for lines.
    """

    __slots__ = ("_at_line_start", "_cr", "_finished", "_in_header", "_lines_left", "_top")

    def __init__(self, top_lines: int | None = None) -> None:
        if top_lines is not None and top_lines < 0:
            raise ValueError(f"top_lines must not be negative: {top_lines}")
        self._top = top_lines is not None
        self._in_header = top_lines is not None  # TOP: the blank line has not been seen yet
        self._lines_left = top_lines or 0  # TOP: body lines still to send
        self._at_line_start = True
        self._cr = False  # a CR ended the last chunk and was held back
        self._finished = False

    @property
    def done(self) -> bool:
        """TOP has sent all it should; the rest of the message is not needed."""
        return self._top and not self._in_header and not self._lines_left

    def feed(self, chunk: bytes) -> bytes:
        """The next piece of the stored message; returns the encoded bytes ready so far."""
        if self._finished:
            raise RuntimeError("MessageEncoder.feed() after finish()")
        if not chunk or self.done:
            return b""
        if self._cr:
            chunk = b"\r" + chunk
            self._cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._cr = True
        return self._encode(_normalise(chunk))

    def finish(self) -> bytes:
        """The rest: a held-back CR, a CRLF if the content does not end with one, and ".\\r\\n"."""
        if self._finished:
            raise RuntimeError("MessageEncoder.finish() called twice")
        self._finished = True
        out = b""
        if not self.done:
            if self._cr:  # a bare CR at the very end: content like any other
                out = self._encode(b"\r")
            if not self._at_line_start:
                out += b"\r\n"
        return out + b".\r\n"

    def _encode(self, text: bytes) -> bytes:
        """Normalised text (never ending in a CR that may start a CRLF) -> output bytes."""
        if self._in_header:
            if self._at_line_start and text.startswith(b"\r\n"):
                end = 2  # an empty line right after a line end (or at the very start)
            else:
                found = text.find(b"\r\n\r\n")
                if found < 0:
                    return self._stuff(text)
                end = found + 4
            self._in_header = False
            return self._stuff(text[:end]) + self._body(text[end:])
        if self._top:
            return self._body(text)
        return self._stuff(text)

    def _body(self, text: bytes) -> bytes:
        """TOP: the part of ``text`` within the first n body lines."""
        left = self._lines_left
        if not left or not text:
            return b""
        ends = text.count(b"\r\n")
        if ends < left:
            self._lines_left = left - ends
            return self._stuff(text)
        self._lines_left = 0
        after = text.split(b"\r\n", left)[-1]  # what follows the last line to send
        return self._stuff(text[: len(text) - len(after)])

    def _stuff(self, text: bytes) -> bytes:
        """RFC 1939 §3: double the "." that starts a line."""
        if not text:
            return text
        stuffed = dot_stuff(text, self._at_line_start)
        self._at_line_start = text.endswith(b"\r\n")
        return stuffed


def _normalise(text: bytes) -> bytes:
    """CRLF and bare LF -> CRLF; bare CR unchanged."""
    lf = text.count(b"\n")
    if not lf:
        return text
    crlf = text.count(b"\r\n")
    if crlf == lf:
        return text
    if not crlf:
        return text.replace(b"\n", b"\r\n")
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def octets_after_crlf(data: bytes) -> int:
    """The size of a message as POP3 reports it (RFC 1939 §5 "exact size"): the octets RETR sends
    as content, with every line end a CRLF and a final CRLF added if missing, before stuffing.
    """
    if not data:
        return 0
    size = len(data) + data.count(b"\n") - data.count(b"\r\n")
    if not data.endswith(b"\n"):
        size += 2  # MessageEncoder.finish() ends the content with CRLF
    return size
