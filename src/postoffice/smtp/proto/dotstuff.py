"""Dot-stuffing of SMTP DATA (RFC 5321 §4.5.2) and the end-of-data scanner.

Sending: :func:`stuff_dots` doubles a period at the start of every line. Receiving:
:class:`DataScanner` is fed the bytes that follow a 354 reply and hands back the unstuffed
content, until ``<CRLF>.<CRLF>`` ends the message.

Implementation notes (SMTP smuggling, CVE-2023-51764/51765/51766):

- Only CRLF "." CRLF ends the data, or "." CRLF at the very start (the CRLF before it being the
  one that ended the DATA command, RFC 5321 §4.1.1.4). ``\\n.\\n``, ``\\r.\\r``, ``\\r\\n.\\n``,
  ``\\n.\\r\\n`` are content. A server that accepted any of them as the end would let a
  client hide a second message inside the first for a downstream server that does not.
- A line start is the position after a CRLF. A leading "." there is removed (§4.5.2); a "."
  after a bare LF or bare CR is content and stays.
- The scanner holds back at most four bytes between feeds (a trailing "\\r", "\\r\\n",
  "\\r\\n." or "\\r\\n.\\r") so a terminator split across reads is still found; it never
  holds a line.
- One ``bytes.find`` for the terminator and one ``bytes.replace`` for the dots per feed: no
  per-byte or per-line Python loop. CRLF "." cannot overlap itself, so the replace is exact.
"""

from __future__ import annotations

__all__ = ["TERMINATOR", "DataScanner", "stuff_dots"]

TERMINATOR = b"\r\n.\r\n"


def stuff_dots(data: bytes) -> bytes:
    """Double the "." that starts a line (after CRLF, or at the start), RFC 5321 §4.5.2.

    The caller adds the terminator: ``stuff_dots(body) + b".\\r\\n"`` for a body that ends in
    CRLF. Lines should already end in CRLF: a "." after a bare LF is not stuffed, matching
    :class:`DataScanner`, which does not unstuff it either.
    """
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..")


class DataScanner:
    """Incremental DATA reader: dot-stuffed bytes in, content out, until CRLF.CRLF.

    >>> scanner = DataScanner()
    >>> scanner.feed(b"Subject: x\\r\\n\\r\\n..dot\\r\\n.")
    (b'Subject: x\\r\\n\\r\\n.dot', None)
    >>> scanner.feed(b"\\r\\nQUIT\\r\\n")
    (b'\\r\\n', b'QUIT\\r\\n')
    """

    __slots__ = ("_done", "_strip", "_tail")

    def __init__(self) -> None:
        # The data follows the CRLF that ended the DATA command line; scanning as if that CRLF
        # were part of it makes ".\r\n" and a stuffed dot at the very start work like anywhere
        # else. It is stripped from the output again (_strip).
        self._tail = b"\r\n"
        self._strip = 2
        self._done = False

    @property
    def done(self) -> bool:
        """The terminator has been seen."""
        return self._done

    def feed(self, data: bytes) -> tuple[bytes, bytes | None]:
        """Scan more bytes; returns (content, rest).

        ``rest`` is None while the terminator has not arrived; once it has, ``rest`` is
        whatever followed it (pipelined commands, RFC 2920), possibly b"", and the scanner is
        done. Content is unstuffed; the CRLF ending the last line is part of it.
        """
        if self._done:
            raise RuntimeError("DataScanner.feed() after the end of data")
        s = self._tail + data
        end = s.find(TERMINATOR)
        if end >= 0:
            region, rest = s[: end + 2], s[end + 5 :]
            self._tail = b""
            self._done = True
        else:
            # Hold back an incomplete terminator at the end; the rest cannot be part of one.
            # Every CRLF "." in region is then complete, and none spans region and tail.
            held = _held_back(s)
            region, rest = s[: len(s) - held], None
            self._tail = s[len(s) - held :]
        if not region:
            return b"", rest
        # RFC 5321 §4.5.2: drop the first "." of every line that starts with one.
        content = region.replace(b"\r\n.", b"\r\n")
        if self._strip:
            content = content[self._strip :]
            self._strip = 0
        return content, rest


def _held_back(s: bytes) -> int:
    """The length of the longest proper prefix of the terminator that ``s`` ends with."""
    if s.endswith(b"\r"):
        return 4 if s.endswith(b"\r\n.\r") else 1
    if s.endswith(b"\r\n."):
        return 3
    if s.endswith(b"\r\n"):
        return 2
    return 0
