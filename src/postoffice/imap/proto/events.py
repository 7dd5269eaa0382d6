"""What the IMAP command parser reports (RFC 9051 §2.2, §7.5): one event per command or framing step.

:class:`~postoffice.imap.proto.parser.ImapServerParser` turns received bytes into these events;
``NEED_DATA`` means: nothing more until more bytes arrive.

- :class:`ImapCommand`: a complete, well-formed command; ``args`` is one of the dataclasses of
  :mod:`postoffice.imap.proto.commands`. Answer it with a tagged response.
- :class:`LiteralNeeded`: a synchronising literal ``{n}`` was announced (RFC 9051 §4.3); send
  ``+ Ready`` and keep reading, or refuse with a tagged NO/BAD and call
  ``parser.reject_literal()``.
- :class:`CommandError`: the parser refused a command by itself; send ``tagged(tag, status, text,
  code)`` (untagged when ``tag`` is None), and close the connection if ``fatal``.
- :class:`IdleDone`: the ``DONE`` that ends IDLE (RFC 2177, RFC 9051 §6.3.13).
- :class:`ContinuationLine`: a line answering a ``+`` challenge during AUTHENTICATE.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from postoffice.imap.proto.commands import CommandArgs

__all__ = [
    "NEED_DATA",
    "CommandError",
    "ContinuationLine",
    "Event",
    "IdleDone",
    "ImapCommand",
    "LiteralNeeded",
    "NeedData",
]


class _Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Final = _Sentinel.NEED_DATA
"""Returned by ``next_event()`` when the buffered bytes hold no complete event. Test with ``is``."""

NeedData: TypeAlias = Literal[_Sentinel.NEED_DATA]


@dataclass(frozen=True, slots=True)
class ImapCommand:
    """``A001 UID FETCH 1:* (FLAGS)`` is ImapCommand("A001", "UID FETCH", Fetch(..., uid=True))."""

    tag: str
    name: str  # upper-cased, "UID " included for UID commands
    args: CommandArgs


@dataclass(frozen=True, slots=True)
class LiteralNeeded:
    """``{size}`` ended a command line: the client waits for ``+`` before sending the bytes.

    Nothing of the literal has been read yet. ``name`` is the command's name as far as it is
    known (upper-cased, "" if the line did not get that far).
    """

    tag: str
    size: int
    binary: bool  # ~{size}, a literal8 (RFC 3516)
    name: str = ""


@dataclass(frozen=True, slots=True)
class CommandError:
    """A command (or a line) the parser refused; the whole command has been consumed.

    ``tag`` is None when the line had no usable tag (answer ``* BAD ...``). ``code`` is the
    response code without brackets (``"TOOBIG"``, ``"BADCHARSET (UTF-8 US-ASCII)"``). ``fatal``
    means the input cannot be resynchronised: send the response, then BYE and close.
    """

    tag: str | None
    status: Literal["BAD", "NO"]
    text: str
    code: str | None = None
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class IdleDone:
    """The client ended IDLE with ``DONE``; answer ``<tag> OK IDLE terminated``."""

    tag: str = ""  # the IDLE command's tag


@dataclass(frozen=True, slots=True)
class ContinuationLine:
    """One line sent after a ``+`` challenge (AUTHENTICATE), without its CRLF: raw base64 or ``*``."""

    data: bytes
    tag: str = ""  # the AUTHENTICATE command's tag


Event: TypeAlias = ImapCommand | LiteralNeeded | CommandError | IdleDone | ContinuationLine
