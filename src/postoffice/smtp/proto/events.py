"""What the SMTP/LMTP protocol core reports: one event per client command or piece of data.

:class:`~postoffice.smtp.proto.server.SmtpServerConnection` turns received bytes into these
events; the driver answers every command event with one :class:`~postoffice.smtp.proto.replies.Reply`
(``DataChunk`` needs none). ``NEED_DATA`` means: nothing more until more bytes arrive.

Addresses are strings as the client wrote them (RFC 5321 §4.1.2), minus the angle brackets and
any source route; the null reverse-path ``<>`` is ``""``. ESMTP parameters are parsed into
:class:`MailParams` and :class:`RcptParams` (RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 3030
BINARYMIME, RFC 6531 SMTPUTF8, RFC 4954 AUTH, RFC 3461 DSN).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from postoffice.smtp.proto.replies import Reply

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
    "MailFrom",
    "MailParams",
    "NeedData",
    "Noop",
    "Quit",
    "RcptParams",
    "RcptTo",
    "Rset",
    "StartTlsRequested",
    "Vrfy",
]


class _Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Final = _Sentinel.NEED_DATA
"""Returned by ``next_event()`` when the buffered bytes hold no complete event. Test with ``is``."""

NeedData: TypeAlias = Literal[_Sentinel.NEED_DATA]


@dataclass(frozen=True, slots=True)
class MailParams:
    """The ESMTP parameters of MAIL FROM; None (or False) when not given."""

    size: int | None = None  # RFC 1870 SIZE=
    body: str | None = None  # "7BIT", "8BITMIME" (RFC 6152) or "BINARYMIME" (RFC 3030)
    smtputf8: bool = False  # RFC 6531
    auth: str | None = None  # RFC 4954 §5 AUTH=, xtext-decoded; "<>" when the client says so
    ret: str | None = None  # RFC 3461 §4.3: "FULL" or "HDRS"
    envid: str | None = None  # RFC 3461 §4.4, xtext-decoded
    requiretls: bool = False  # RFC 8689 §4: relay only over verified TLS; accepted only under TLS


@dataclass(frozen=True, slots=True)
class RcptParams:
    """The ESMTP parameters of RCPT TO (RFC 3461 DSN)."""

    # §4.1: ("NEVER",), or some of "SUCCESS", "FAILURE", "DELAY"; () when not given.
    notify: tuple[str, ...] = ()
    orcpt: str | None = None  # §4.2: "addr-type;address", the address xtext-decoded


@dataclass(frozen=True, slots=True)
class Ehlo:
    """EHLO (extended=True), HELO (False), or LHLO in LMTP mode (True)."""

    domain: str
    extended: bool


@dataclass(frozen=True, slots=True)
class MailFrom:
    address: str  # "" for the null reverse-path <>
    params: MailParams


@dataclass(frozen=True, slots=True)
class RcptTo:
    address: str  # "postmaster" for <Postmaster> (RFC 5321 §4.5.1)
    params: RcptParams
    source_route: bool  # the client wrote <@relay,...:user@domain>; the route was dropped


@dataclass(frozen=True, slots=True)
class DataRequested:
    """DATA in a transaction with at least one accepted recipient: answer 354 to go ahead."""


@dataclass(frozen=True, slots=True)
class DataChunk:
    """A piece of message content: dot-unstuffed after DATA, raw after BDAT."""

    data: bytes


@dataclass(frozen=True, slots=True)
class DataComplete:
    """The <CRLF>.<CRLF> after DATA arrived. ``size`` counts the unstuffed content."""

    size: int
    too_large: bool  # content beyond max_message_size was discarded, not emitted


@dataclass(frozen=True, slots=True)
class BdatComplete:
    """All ``size`` bytes of one BDAT chunk arrived (RFC 3030 §2)."""

    size: int  # of this chunk
    last: bool
    too_large: bool  # the transaction's chunks exceed max_message_size; the bytes were discarded


@dataclass(frozen=True, slots=True)
class StartTlsRequested:
    """STARTTLS (RFC 3207): answer 220 and hand the socket to TLS, then call ``tls_started()``."""


@dataclass(frozen=True, slots=True)
class AuthRequested:
    """AUTH mechanism [initial-response] (RFC 4954 §4); the response is raw: b"=" means empty."""

    mechanism: str  # upper-cased
    initial_response: bytes | None


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """A line the client sent after a 334 challenge: raw base64 text, or b"*" to cancel."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Rset:
    pass


@dataclass(frozen=True, slots=True)
class Noop:
    pass


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class Vrfy:
    argument: str


@dataclass(frozen=True, slots=True)
class Expn:
    argument: str


@dataclass(frozen=True, slots=True)
class Help:
    argument: str  # "" when none


@dataclass(frozen=True, slots=True)
class CommandError:
    """A command the core refused by itself; send ``reply``, and close afterwards if ``fatal``."""

    reply: Reply
    fatal: bool = False


Event: TypeAlias = (
    Ehlo
    | MailFrom
    | RcptTo
    | DataRequested
    | DataChunk
    | DataComplete
    | BdatComplete
    | StartTlsRequested
    | AuthRequested
    | AuthResponse
    | Rset
    | Noop
    | Quit
    | Vrfy
    | Expn
    | Help
    | CommandError
)
