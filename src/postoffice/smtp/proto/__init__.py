"""The SMTP/LMTP protocol core, sans-IO: bytes in, events out; replies in, bytes out.

RFC 5321 (SMTP), RFC 2033 (LMTP), RFC 2920 (PIPELINING), RFC 3030 (CHUNKING, BINARYMIME),
RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3207 (STARTTLS), RFC 4954 (AUTH),
RFC 3461 (DSN), RFC 2034 and RFC 3463 (enhanced status codes). Modules: ``events`` (what can
happen), ``state`` (the command sequence as tables), ``grammar`` (MAIL/RCPT arguments),
``dotstuff`` (DATA framing), ``replies``, and ``server`` (the connection that ties them together).
Nothing here does I/O.
"""

from __future__ import annotations

from postoffice.smtp.proto.events import (
    NEED_DATA,
    AuthRequested,
    AuthResponse,
    BdatComplete,
    CommandError,
    DataChunk,
    DataComplete,
    DataRequested,
    Ehlo,
    Event,
    Expn,
    Help,
    MailFrom,
    MailParams,
    NeedData,
    Noop,
    Quit,
    RcptParams,
    RcptTo,
    Rset,
    StartTlsRequested,
    Vrfy,
)
from postoffice.smtp.proto.grammar import ParseError, parse_mail_from, parse_rcpt_to
from postoffice.smtp.proto.replies import Reply
from postoffice.smtp.proto.server import LocalProtocolError, SmtpServerConnection
from postoffice.smtp.proto.state import State

__all__ = [
    "NEED_DATA",
    "AuthRequested",
    "AuthResponse",
    "BdatComplete",
    "CommandError",
    "DataChunk",
    "DataComplete",
    "DataRequested",
    "Ehlo",
    "Event",
    "Expn",
    "Help",
    "LocalProtocolError",
    "MailFrom",
    "MailParams",
    "NeedData",
    "Noop",
    "ParseError",
    "Quit",
    "RcptParams",
    "RcptTo",
    "Reply",
    "Rset",
    "SmtpServerConnection",
    "StartTlsRequested",
    "State",
    "Vrfy",
    "parse_mail_from",
    "parse_rcpt_to",
]
