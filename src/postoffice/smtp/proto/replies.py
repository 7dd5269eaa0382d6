"""SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 2034, RFC 3463), and the common ones.

A :class:`Reply` is a three-digit code, an optional enhanced code "class.subject.detail" and one
or more lines of text. :meth:`Reply.to_bytes` renders it: every line but the last as
``250-...``, the last as ``250 ...`` (RFC 5321 §4.2.1), the enhanced code repeated on each line
(RFC 2034 §3). Replies to the greeting and to HELO/EHLO/LHLO carry no enhanced code (RFC 2034 §3),
nor does 354 (it is not a completion reply).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "AUTH_FAILED",
    "AUTH_OK",
    "BAD_SEQUENCE",
    "CLOSING",
    "ENCRYPTION_REQUIRED",
    "HELP",
    "LINE_TOO_LONG",
    "MESSAGE_TOO_BIG",
    "NO_VALID_RECIPIENTS",
    "OK",
    "PARAM_NOT_RECOGNIZED",
    "RCPT_OK",
    "READY_FOR_TLS",
    "SENDER_OK",
    "SHUTDOWN",
    "START_DATA",
    "SYNTAX_ERROR",
    "TIMEOUT",
    "TOO_MANY_ERRORS",
    "TOO_MANY_HOPS",
    "TOO_MANY_RECIPIENTS",
    "UNKNOWN_COMMAND",
    "VRFY_CANNOT",
    "Reply",
]

# RFC 3463 §2: class "." subject "." detail; class is 2, 4 or 5; subject and detail 1-3 digits.
_ENHANCED = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}")


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: ``Reply(250, "2.1.5", "Ok")`` or with several lines of text as a tuple."""

    code: int
    enhanced: str | None
    text: str | tuple[str, ...]

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"reply code out of range: {self.code}")
        if self.enhanced is not None and (
            not _ENHANCED.fullmatch(self.enhanced) or self.enhanced[0] != str(self.code)[0]
        ):
            raise ValueError(f"bad enhanced status code {self.enhanced!r} for {self.code}")
        # A CR or LF in the text would let whoever chose the text inject reply lines.
        for line in self.lines:
            if "\r" in line or "\n" in line:
                raise ValueError(f"line break inside reply text: {line!r}")

    @property
    def lines(self) -> tuple[str, ...]:
        """The text as lines (at least one, possibly empty)."""
        if isinstance(self.text, str):
            return (self.text,)
        return self.text or ("",)

    @property
    def is_positive(self) -> bool:
        """2xx: the command was accepted (RFC 5321 §4.2.1)."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """3xx: accepted so far, more input expected (354 after DATA, 334 during AUTH)."""
        return 300 <= self.code < 400

    def to_bytes(self) -> bytes:
        """The reply as sent on the wire, CRLF-terminated, UTF-8 (RFC 6531 §3.7.4.2)."""
        prefix = f"{self.code} {self.enhanced} " if self.enhanced else f"{self.code} "
        lines = self.lines
        if len(lines) == 1:
            return f"{prefix}{lines[0]}\r\n".encode()
        more = f"{self.code}-{self.enhanced} " if self.enhanced else f"{self.code}-"
        head = "".join(f"{more}{line}\r\n" for line in lines[:-1])
        return f"{head}{prefix}{lines[-1]}\r\n".encode()


OK = Reply(250, "2.0.0", "Ok")
SENDER_OK = Reply(250, "2.1.0", "Sender ok")
RCPT_OK = Reply(250, "2.1.5", "Recipient ok")
START_DATA = Reply(354, None, "End data with <CR><LF>.<CR><LF>")
READY_FOR_TLS = Reply(220, "2.0.0", "Ready to start TLS")
CLOSING = Reply(221, "2.0.0", "Bye")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
ENCRYPTION_REQUIRED = Reply(
    538, "5.7.11", "Encryption required for requested authentication mechanism"
)
VRFY_CANNOT = Reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
HELP = Reply(214, "2.0.0", "See RFC 5321; https://www.rfc-editor.org/rfc/rfc5321")
BAD_SEQUENCE = Reply(503, "5.5.1", "Bad sequence of commands")
UNKNOWN_COMMAND = Reply(500, "5.5.2", "Command not recognized")
SYNTAX_ERROR = Reply(501, "5.5.4", "Syntax error in parameters or arguments")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
PARAM_NOT_RECOGNIZED = Reply(555, "5.5.4", "MAIL FROM/RCPT TO parameter not recognized")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
# RFC 5321 §4.2.2 452 "insufficient system storage"; RFC 3463 X.3.1 "mail system full".
INSUFFICIENT_STORAGE = Reply(452, "4.3.1", "Insufficient system storage, try again later")
LOCAL_ERROR = Reply(451, "4.3.0", "Local error in processing, try again later")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
TOO_MANY_HOPS = Reply(554, "5.4.6", "Too many Received: header fields, a mail loop")  # RFC 5321 §6.3
NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "No valid recipients")
TIMEOUT = Reply(421, "4.4.2", "Timeout, closing connection")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing connection")
SHUTDOWN = Reply(421, "4.3.0", "Server shutting down, closing connection")
