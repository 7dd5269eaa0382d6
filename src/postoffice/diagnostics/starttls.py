"""Bring a connection to TLS the way a client of each protocol does: SMTP (RFC 3207), IMAP
(RFC 3501 §6.2.1), POP3 (RFC 2595 §4), or TLS from the first byte (RFC 8314).

    reader, writer, banner = await open_tls("mx.example.org", 25, "smtp", context,
                                            server_hostname="mx.example.org")

Used by the diagnostics (`check tls`, `check domain`'s MX probe), which only need the handshake:
after it they hang up (:func:`hang_up`).

Implementation notes:

- Every failure is a :class:`ProbeError` naming the stage it happened in (connect, greeting,
  starttls, handshake) and the reason in plain words; a certificate that OpenSSL rejected is a
  :class:`CertificateRejected` carrying OpenSSL's verify code and message. Nothing the peer does
  raises anything else.
- The SMTP dialogue is the sans-IO client core's (``smtp.proto.client``), so the banner, EHLO
  and STARTTLS replies are read with its limits; IMAP and POP3 need two lines each, read with a
  64 KiB line limit. One deadline covers the whole dialogue and handshake.
- Implicit TLS connects in plaintext first and then starts TLS on the socket, so a refused
  connection and a failed handshake stay apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Literal

from postoffice.net.streams import close_stream
from postoffice.smtp.proto.client import (
    EhloDone,
    Greeting,
    SmtpClientConnection,
    StartTlsReply,
)
from postoffice.smtp.proto.events import NEED_DATA
from postoffice.smtp.proto.replies import Reply

__all__ = ["CertificateRejected", "ProbeError", "Stage", "StartTls", "hang_up", "open_tls"]

StartTls = Literal["smtp", "imap", "pop3"]
Stage = Literal["connect", "greeting", "starttls", "handshake"]
_LINE_LIMIT = 65536
_GOODBYE = {"smtp": b"QUIT\r\n", "imap": b"P2 LOGOUT\r\n", "pop3": b"QUIT\r\n"}


class ProbeError(Exception):
    """The connection did not reach TLS. ``stage`` says how far it got; ``reason`` is plain words
    naming the peer (``mx.example.org:25 refused the connection``)."""

    def __init__(self, stage: Stage, reason: str, reply: Reply | None = None) -> None:
        super().__init__(reason)
        self.stage: Stage = stage
        self.reason = reason
        self.reply = reply


class CertificateRejected(ProbeError):
    """OpenSSL did not accept the certificate chain (``verify_code`` as in ``openssl verify``)."""

    def __init__(self, reason: str, verify_code: int, verify_message: str) -> None:
        super().__init__("handshake", reason)
        self.verify_code = verify_code
        self.verify_message = verify_message


async def open_tls(host: str, port: int, starttls: StartTls | None, context: ssl.SSLContext, *,
                   address: str | None = None, server_hostname: str | None = None,
                   helo_name: str = "localhost", timeout: float = 30.0,
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """Connect to ``address`` (or ``host``) at ``port``, speak ``starttls``'s protocol up to its
    STARTTLS, then do the TLS handshake with ``context``. Returns the streams (now TLS) and the
    banner line; raises :class:`ProbeError` for every failure."""
    peer = f"{host}:{port}" if address in (None, host) else f"{host} [{address}]:{port}"
    writer: asyncio.StreamWriter | None = None
    stage: Stage = "connect"
    try:
        async with asyncio.timeout(timeout):
            try:
                reader, writer = await asyncio.open_connection(address or host, port, limit=_LINE_LIMIT)
            except OSError as error:
                raise ProbeError("connect", f"{peer}: {describe_os_error(error)}") from None
            stage = "greeting"
            banner = await _DIALOGUES[starttls](reader, writer, peer, helo_name) if starttls else ""
            stage = "handshake"
            try:
                await writer.start_tls(context, server_hostname=server_hostname)
            except ssl.SSLCertVerificationError as error:
                raise CertificateRejected(f"{peer}: the certificate was not accepted: "
                                          f"{error.verify_message}", error.verify_code,
                                          error.verify_message) from None
            except (ssl.SSLError, OSError, EOFError) as error:
                raise ProbeError("handshake", f"{peer}: the TLS handshake failed: "
                                 f"{describe_tls_error(error)}") from None
            return reader, writer, banner
    except TimeoutError:
        await close_stream(writer)
        raise ProbeError(stage, f"{peer}: no answer within {timeout:g} s "
                         f"({_WAITING[stage]})") from None
    except ProbeError:
        await close_stream(writer)
        raise
    except (OSError, EOFError, ValueError) as error:  # reset, EOF, a line over the limit
        await close_stream(writer)
        stage = "starttls" if stage == "greeting" else stage
        raise ProbeError(stage, f"{peer}: the connection failed ({describe_os_error(error)})") from None


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  starttls: StartTls | None) -> None:
    """Say goodbye in the protocol and let the server close first (a server that sees the client
    vanish inside TLS may log it), then close; never raises. Implicit TLS: just close."""
    if starttls is not None:
        with contextlib.suppress(Exception):
            writer.write(_GOODBYE[starttls])
            async with asyncio.timeout(2):
                while await reader.read(_LINE_LIMIT):
                    pass
    await close_stream(writer)


_WAITING: dict[Stage, str] = {"connect": "while connecting", "greeting": "waiting for the banner",
                              "starttls": "waiting for the STARTTLS reply",
                              "handshake": "during the TLS handshake"}


# --- the dialogues up to STARTTLS ------------------------------------------------------------------


async def _smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str,
                helo_name: str) -> str:
    conn = SmtpClientConnection(helo_name)

    async def next_event() -> object:
        while True:
            writer.write(conn.data_to_send())  # what the last reply or command made the core say
            await writer.drain()
            if (event := conn.next_event()) is not NEED_DATA:
                writer.write(conn.data_to_send())
                return event
            conn.receive_data(await reader.read(_LINE_LIMIT))

    greeting = await next_event()
    if not isinstance(greeting, Greeting):
        raise ProbeError("greeting", f"{peer} sent no SMTP banner ({_what(greeting)})")
    banner = _text(greeting.reply)
    if greeting.reply.code != 220:
        raise ProbeError("greeting", f"{peer} answered {banner!r} instead of a 220 banner",
                         greeting.reply)
    ehlo = await next_event()
    if not isinstance(ehlo, EhloDone) or not ehlo.reply.is_positive:
        raise ProbeError("starttls", f"{peer} refused EHLO ({_what(ehlo)})")
    if not ehlo.capabilities.starttls:
        raise ProbeError("starttls", f"{peer} does not offer STARTTLS")
    conn.starttls()
    reply = await next_event()
    if not isinstance(reply, StartTlsReply) or reply.reply.code != 220:
        raise ProbeError("starttls", f"{peer} refused STARTTLS ({_what(reply)})")
    return banner


async def _imap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str,
                helo_name: str) -> str:
    banner = await _line(reader)
    if not banner.startswith("* OK"):
        raise ProbeError("greeting", f"{peer} answered {banner!r} instead of an IMAP * OK greeting")
    writer.write(b"P1 STARTTLS\r\n")
    await writer.drain()
    for _ in range(100):  # untagged lines (CAPABILITY, notes) may come first
        line = await _line(reader)
        if line.startswith("P1 "):
            if line[3:5].upper() != "OK":
                raise ProbeError("starttls", f"{peer} refused STARTTLS ({line!r})")
            return banner
    raise ProbeError("starttls", f"{peer} never answered STARTTLS")


async def _pop3(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str,
                helo_name: str) -> str:
    banner = await _line(reader)
    if not banner.startswith("+OK"):
        raise ProbeError("greeting", f"{peer} answered {banner!r} instead of a POP3 +OK greeting")
    writer.write(b"STLS\r\n")
    await writer.drain()
    line = await _line(reader)
    if not line.startswith("+OK"):
        raise ProbeError("starttls", f"{peer} refused STLS ({line!r})")
    return banner


_DIALOGUES = {"smtp": _smtp, "imap": _imap, "pop3": _pop3}


async def _line(reader: asyncio.StreamReader) -> str:
    line = await reader.readline()
    if not line:
        raise EOFError("the server closed the connection")
    return line.decode("utf-8", "replace").rstrip("\r\n")


def _text(reply: Reply) -> str:
    return reply.to_bytes().decode("utf-8", "replace").splitlines()[0]


def _what(event: object) -> str:
    reply = getattr(event, "reply", None)
    if isinstance(reply, Reply):
        return _text(reply)
    reason = getattr(event, "reason", None)
    if reason:
        return str(reason)
    return "it closed the connection"


def describe_os_error(error: BaseException) -> str:
    """A refused, reset or unreachable connection in plain words."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, EOFError | asyncio.IncompleteReadError):
        return "the server closed the connection"
    if isinstance(error, ValueError | asyncio.LimitOverrunError):
        return "the server sent a line longer than 64 KiB"
    text = getattr(error, "strerror", None) or str(error)
    return str(text) or type(error).__name__


def describe_tls_error(error: BaseException) -> str:
    """OpenSSL's reason ("wrong version number", "tlsv1 alert protocol version"), or the
    connection's fate when the peer just hung up."""
    reason = getattr(error, "reason", None)
    if isinstance(error, ssl.SSLError) and reason:
        return str(reason).replace("_", " ").lower()
    return describe_os_error(error)
