"""Reading SMTP replies as a client (RFC 5321 §4.2): bytes in, :class:`Reply` out.

A reply is one or more lines ``250-text`` ... ``250 text`` (RFC 5321 §4.2.1); an enhanced
status code (RFC 2034, RFC 3463) at the start of the text is taken out of every line into
``Reply.enhanced`` when its class matches the reply code's first digit. The result is the same
:class:`~postoffice.smtp.proto.replies.Reply` the server core sends, so both sides share it.

Implementation notes (a peer is untrusted input):

- Lines come from :class:`LineBuffer` with a hard length limit (RFC 5321 §4.5.3.1.5 allows 512
  octets; we accept ``max_line``, default 4096, as mail servers' long EHLO lines need); one
  reply may be at most ``max_reply`` octets and ``max_lines`` lines. Beyond either, or a line
  that is not ``DDD[ -]``, or lines of one reply with different codes, or a code outside
  2xx-5xx, is a :class:`ReplyError`: the connection is unusable, never memory growth.
- Text is decoded as UTF-8 (RFC 6531 §3.7.4.2) with U+FFFD for bad bytes, and control
  characters become spaces, so a peer's reply can be logged and shown in ``queue show`` as is.
- A bare LF ends a line as CRLF does (some servers send it); the terminator is stripped.
"""

from __future__ import annotations

import re

from postoffice.proto.linebuffer import LineBuffer, LineTooLong
from postoffice.smtp.proto.replies import Reply

__all__ = ["ReplyError", "ReplyReader"]

_REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])([ -]|\r?\n)")
_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: +|$)")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


class ReplyError(Exception):
    """The peer sent something that is not an SMTP reply (or too much of one)."""


class ReplyReader:
    """Bytes in; complete replies out, or :class:`ReplyError` for garbage."""

    __slots__ = ("_buffer", "_code", "_lines", "_max_lines", "_max_reply", "_size")

    def __init__(self, *, max_line: int = 4096, max_reply: int = 65536, max_lines: int = 200) -> None:
        self._buffer = LineBuffer(max_line)
        self._max_reply = max_reply
        self._max_lines = max_lines
        self._code = b""
        self._lines: list[bytes] = []
        self._size = 0

    @property
    def partial(self) -> bool:
        """Some bytes of a reply arrived but not all of it."""
        return bool(self._lines) or len(self._buffer) > 0

    def feed(self, data: bytes) -> None:
        self._buffer.feed(data)

    def clear(self) -> None:
        """Forget buffered bytes (after STARTTLS's 220: nothing sent before TLS counts)."""
        self._buffer.clear()
        self._code, self._lines, self._size = b"", [], 0

    def next_reply(self) -> Reply | None:
        """The next complete reply, or None until more bytes arrive; raises :class:`ReplyError`."""
        while True:
            try:
                line = self._buffer.next_line()
            except LineTooLong:
                raise ReplyError(f"a reply line longer than {self._buffer.max_line} bytes") from None
            if line is None:
                return None
            self._size += len(line)
            if self._size > self._max_reply or len(self._lines) >= self._max_lines:
                raise ReplyError(
                    f"a reply longer than {self._max_reply} bytes or {self._max_lines} lines")
            match = _REPLY_LINE.match(line)
            if match is None:
                shown = _printable(line[:60].rstrip(b"\r\n"))
                raise ReplyError(f"not an SMTP reply: {shown!r}")
            code = match[1]
            if self._lines and code != self._code:
                raise ReplyError(f"reply code {_printable(code)} inside a {_printable(self._code)} reply")
            self._code = code
            self._lines.append(line[4:].rstrip(b"\r\n") if match[2] in b" -" else b"")
            if match[2] != b"-":
                return self._finish()

    def _finish(self) -> Reply:
        code = int(self._code)
        texts = [_printable(raw) for raw in self._lines]
        self._code, self._lines, self._size = b"", [], 0
        return Reply(code, *_split_enhanced(code, texts))


def _split_enhanced(code: int, texts: list[str]) -> tuple[str | None, str | tuple[str, ...]]:
    """Take the enhanced status code off every line that carries the first line's (RFC 2034 §3).
    One line of text is a str, several a tuple, as replies are written in replies.py."""
    match = _ENHANCED.match(texts[0])
    if match is None or match[1] != str(code)[0]:
        return None, texts[0] if len(texts) == 1 else tuple(texts)
    enhanced = f"{match[1]}.{int(match[2])}.{int(match[3])}"
    stripped = []
    for text in texts:
        line_match = _ENHANCED.match(text)
        stripped.append(text[line_match.end():] if line_match else text)
    return enhanced, stripped[0] if len(stripped) == 1 else tuple(stripped)


def _printable(raw: bytes) -> str:
    return _CONTROLS.sub(" ", raw.decode("utf-8", "replace"))
