"""`postoffice smtp-test`: send one test message the way a mail program does and show the whole
dialogue, like swaks: connect, EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA, QUIT, each command
with the server's reply, and on failure one line saying why and what to try.

    report = await smtp_test("mail.example.org", 587, sender="a@example.org",
                             recipients=("b@example.net",), mode="starttls",
                             user="a@example.org", password=secret)
    report.ok, report.failure, report.lines     # TranscriptLine(kind, text, tls)

Implementation notes:

- The dialogue is the sans-IO client core's (``smtp.proto.client``), the one the outbound queue
  uses; this module moves bytes, records them and explains failures. PIPELINING and CHUNKING
  are not used even when offered, so every command is followed by its own reply and the content
  goes through DATA as lines, which is what the transcript is for.
- Each reply is paired with the command it answers (first in, first out), so a failure is
  explained by the command that failed and the reply's code, enhanced code and words.
- The password never appears in the transcript: what is sent for AUTH shows as ``<hidden>``.
- Never raises for the server's trouble: refused connections, timeouts, TLS failures and
  unexpected closes all end the report with ``ok`` false and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import socket
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from postoffice.diagnostics.certificates import describe_certificate
from postoffice.diagnostics.starttls import describe_os_error, describe_tls_error
from postoffice.net.streams import close_stream
from postoffice.smtp.proto.client import (
    AuthDone,
    ClientEvent,
    ContentWanted,
    EhloDone,
    Greeting,
    OutgoingMessage,
    OutgoingRecipient,
    Replied,
    SmtpClientConnection,
    StartTlsReply,
    TransactionDone,
    needs_smtputf8,
)
from postoffice.smtp.proto.events import NEED_DATA
from postoffice.smtp.proto.replies import Reply
from postoffice.smtp.proto.reply_reader import ReplyError, ReplyReader

__all__ = ["Mode", "SmtpTestReport", "TranscriptLine", "smtp_test", "test_message"]

Mode = Literal["plain", "starttls", "tls"]
LineKind = Literal["info", "sent", "received", "error"]
_READ_SIZE = 65536
_E = TypeVar("_E", bound=ClientEvent)


@dataclass(frozen=True)
class TranscriptLine:
    kind: LineKind  # info: what happened; sent/received: the wire; error: why it stopped
    text: str
    tls: bool = False  # inside TLS (shown with ~ arrows, as swaks does)

    def render(self) -> str:
        arrow = {"info": "===", "error": "***",
                 "sent": " ~>" if self.tls else " ->", "received": "<~ " if self.tls else "<- "}
        return f"{arrow[self.kind]} {self.text}"


@dataclass
class SmtpTestReport:
    lines: list[TranscriptLine] = field(default_factory=list)
    ok: bool = False
    failure: str = ""  # one line: why it failed and what to try
    step: str = ""  # the step that failed: connect, banner, EHLO, STARTTLS, TLS, AUTH, MAIL, RCPT, DATA, ...

    def as_json(self) -> dict[str, object]:
        return {"ok": self.ok, "failure": self.failure, "step": self.step,
                "transcript": [{"kind": line.kind, "text": line.text, "tls": line.tls}
                               for line in self.lines]}


class _Stop(Exception):
    """The test ends here; ``step`` and ``why`` go into the report."""

    def __init__(self, step: str, why: str) -> None:
        super().__init__(why)
        self.step = step
        self.why = why


def test_message(sender: str, recipients: tuple[str, ...], helo_name: str) -> bytes:
    """A short plain-text message, CRLF line ends, as a mail program would send it."""
    now = email.utils.formatdate(localtime=True)
    lines = [f"Date: {now}", f"From: <{sender}>" if sender else "From: <postmaster>",
             "To: " + ", ".join(f"<{r}>" for r in recipients), f"Subject: postoffice smtp-test {now}",
             f"Message-ID: {email.utils.make_msgid('smtp-test', domain=helo_name)}",
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "",
             "This is a test message sent by postoffice smtp-test.", ""]
    return "\r\n".join(lines).encode()


async def smtp_test(host: str, port: int, *, sender: str, recipients: tuple[str, ...],
                    mode: Mode = "plain", user: str | None = None, password: str | None = None,
                    ca_file: Path | None = None, insecure: bool = False, helo_name: str | None = None,
                    timeout: float = 30.0, message: bytes | None = None,
                    on_line: Callable[[TranscriptLine], None] | None = None) -> SmtpTestReport:
    """Send ``message`` (default :func:`test_message`) from ``sender`` to ``recipients`` through
    ``host``:``port``. ``mode``: plaintext, STARTTLS (RFC 3207) or TLS from the first byte (RFC
    8314); with ``user``, AUTH PLAIN or LOGIN (RFC 4954). The certificate must be valid for
    ``host`` (system CAs plus ``ca_file``) unless ``insecure``. ``on_line`` sees each transcript
    line as it happens."""
    helo = helo_name or socket.gethostname() or "localhost"
    session = _Session(host, port, helo, timeout, SmtpTestReport(), on_line)
    content = message if message is not None else test_message(sender, recipients, helo)
    try:
        await session.run(mode, sender, recipients, content, user, password,
                          _client_context(ca_file, insecure))
        session.report.ok = True
    except _Stop as stop:
        session.report.step, session.report.failure = stop.step, stop.why
        await session.quit_quietly()
    finally:
        await session.close()
    if session.report.failure:  # last, so it is the line a user reads
        session.say("error", session.report.failure)
    return session.report


class _Session:
    def __init__(self, host: str, port: int, helo: str, timeout: float, report: SmtpTestReport,
                 on_line: Callable[[TranscriptLine], None] | None) -> None:
        self.host, self.port, self.helo, self.timeout = host, port, helo, timeout
        self.report = report
        self.on_line = on_line
        self.conn = SmtpClientConnection(helo)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.tls = False
        self.awaiting: deque[str] = deque(["banner"])  # the commands whose replies are due
        self.answers: list[tuple[str, Reply]] = []  # (command, its reply), in order
        self.replies = ReplyReader()  # a second reading of what came, to pair replies
        self.in_content = False
        self.hidden = 0  # AUTH lines sent so far, while AUTH runs (0: not in AUTH)

    # -- the dialogue -------------------------------------------------------------------------

    async def run(self, mode: Mode, sender: str, recipients: tuple[str, ...], content: bytes,
                  user: str | None, password: str | None, context: ssl.SSLContext) -> None:
        await self.connect()
        if mode == "tls":
            await self.start_tls(context)
        greeting = await self.expect(Greeting, "banner")
        if greeting.reply.code != 220:
            raise self.refused("banner", greeting.reply)
        await self.ehlo()
        if mode == "starttls":
            if not self.conn.capabilities.starttls:
                raise _Stop("STARTTLS", "The server does not offer STARTTLS: it may expect TLS from "
                            "the first byte (try --tls, usually port 465), or has no certificate "
                            "configured.")
            self.conn.starttls()
            reply = (await self.expect(StartTlsReply, "STARTTLS")).reply
            if reply.code != 220:
                raise self.refused("STARTTLS", reply)
            await self.start_tls(context)
            self.conn.tls_started()
            await self.ehlo()
        if user is not None:
            await self.authenticate(user, password or "")
        await self.transaction(sender, recipients, content)
        self.conn.quit()
        with contextlib.suppress(_Stop):
            await self.expect(Replied, "QUIT")

    async def connect(self) -> None:
        self.say("info", f"Trying {self.host}:{self.port}...")
        try:
            async with asyncio.timeout(self.timeout):
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port,
                                                                         limit=_READ_SIZE)
        except TimeoutError:
            raise _Stop("connect", f"No connection to {self.host}:{self.port} within "
                        f"{self.timeout:g} s: a firewall drops the packets or the host is down "
                        "(many providers block outgoing port 25); check the address and "
                        "firewalls.") from None
        except socket.gaierror:
            raise _Stop("connect", f"The name {self.host} does not resolve: check its spelling "
                        "and its DNS records.") from None
        except ConnectionRefusedError:
            raise _Stop("connect", f"Connection refused by {self.host}:{self.port}: nothing listens "
                        "on that port (is the server running, is the port right?) or a firewall "
                        "rejects it.") from None
        except OSError as error:
            raise _Stop("connect", f"No connection to {self.host}:{self.port}: "
                        f"{describe_os_error(error)}; check the address, the port and "
                        "firewalls.") from None
        peer = self.writer.get_extra_info("peername")
        self.say("info", f"Connected to {peer[0] if peer else self.host}.")

    async def ehlo(self) -> None:
        done = await self.expect(EhloDone, "EHLO")
        if not done.reply.is_positive:
            raise self.refused("EHLO", done.reply)
        # One command, one reply, and content as lines: see the module notes.
        self.conn.capabilities = dataclasses.replace(done.capabilities, pipelining=False,
                                                     chunking=False)

    async def start_tls(self, context: ssl.SSLContext) -> None:
        writer = self.stream()[1]
        try:
            async with asyncio.timeout(self.timeout):
                await writer.start_tls(context, server_hostname=self.host.strip("[]"))
        except TimeoutError:
            raise _Stop("TLS", f"No TLS handshake within {self.timeout:g} s: the server does not "
                        "speak TLS on this port.") from None
        except ssl.SSLCertVerificationError as error:
            raise _Stop("TLS", f"The server's certificate was not accepted ({error.verify_message}): "
                        f"`postoffice check tls {self.host}:{self.port}` shows what is wrong; for a "
                        "private CA give --ca-file, to test anyway --insecure.") from None
        except (ssl.SSLError, OSError, EOFError) as error:
            reason = describe_tls_error(error)
            hint = (" the port speaks plaintext first: use --starttls instead of --tls."
                    if "wrong version number" in reason or "packet length too long" in reason
                    else f" `postoffice check tls {self.host}:{self.port}` tells more.")
            raise _Stop("TLS", f"The TLS handshake failed ({reason}):{hint}") from None
        self.tls = True
        ssl_object = writer.get_extra_info("ssl_object")
        cipher = ssl_object.cipher() if ssl_object is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        certificate = describe_certificate(der).subject if der else "none"
        checked = ("verified for " + self.host if context.verify_mode == ssl.CERT_REQUIRED
                   else "not verified (--insecure)")
        self.say("info", f"TLS started: {ssl_object.version() if ssl_object else ''}, "
                 f"{cipher[0] if cipher else ''}; certificate {certificate}, {checked}.")

    async def authenticate(self, user: str, password: str) -> None:
        offered = self.conn.capabilities.auth
        mechanism = next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
        if mechanism is None:
            if not offered and not self.tls:
                why = ("The server offers no AUTH before TLS: most servers offer it only after "
                       "STARTTLS; add --starttls (or --tls for port 465).")
            elif not offered:
                why = ("The server offers no AUTH even over TLS: this port may be for incoming mail "
                       "only (25); use the submission port 587 with --starttls, or 465 with --tls.")
            else:
                why = (f"The server offers AUTH {' '.join(sorted(offered))} but not PLAIN or LOGIN, "
                       "which smtp-test speaks.")
            raise _Stop("AUTH", why)
        self.hidden = 1
        self.conn.authenticate(mechanism, user, password)
        reply = (await self.expect(AuthDone, "AUTH")).reply
        self.hidden = 0
        if reply.code != 235:
            raise self.refused("AUTH", reply, user=user)

    async def transaction(self, sender: str, recipients: tuple[str, ...], content: bytes) -> None:
        message = OutgoingMessage(
            sender=sender, recipients=tuple(OutgoingRecipient(r) for r in recipients),
            size=len(content), eight_bit=not content.isascii(),
            smtputf8=needs_smtputf8(sender, recipients, content))
        refusal = self.conn.refusal(message)
        if refusal is not None:
            raise _Stop("MAIL", f"Not sent: {refusal.reason}.")
        self.conn.send_mail(message)
        while True:
            event = await self.next_event("MAIL")
            if isinstance(event, ContentWanted):
                self.in_content = True
                self.conn.send_content(content, last=True)
                await self.flush()
                self.in_content = False
            elif isinstance(event, TransactionDone):
                break
            else:
                raise self.unexpected(event, "MAIL")
        failed = [(command, reply) for command, reply in self.answers
                  if command in ("MAIL", "RCPT", "DATA", "end of data") and reply.code >= 400]
        if failed:
            command, reply = failed[0]
            raise self.refused(command, reply)
        self.say("info", f"The server accepted the message for {', '.join(recipients)}.")

    # -- wire -----------------------------------------------------------------------------------

    async def expect(self, kind: type[_E], step: str) -> _E:
        event = await self.next_event(step)
        if not isinstance(event, kind):
            raise self.unexpected(event, step)
        return event

    async def next_event(self, step: str) -> ClientEvent:
        reader = self.stream()[0]
        while True:
            await self.flush()  # commands queued by the caller
            event = self.conn.next_event()
            await self.flush()  # and those the replies just read made the core send
            if event is not NEED_DATA:
                return event
            waiting = self.awaiting[0] if self.awaiting else step
            try:
                async with asyncio.timeout(self.timeout):
                    data = await reader.read(_READ_SIZE)
            except TimeoutError:
                raise _Stop(waiting, f"No reply to {waiting} within {self.timeout:g} s: the server "
                            "stalls; its log may say why.") from None
            except OSError as error:
                raise _Stop(waiting, f"The connection broke while waiting for the reply to "
                            f"{waiting} ({describe_os_error(error)}).") from None
            self.received(data)
            self.conn.receive_data(data)

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if not data:
            return
        self.sent(data)
        writer = self.stream()[1]
        writer.write(data)
        try:
            async with asyncio.timeout(self.timeout):
                await writer.drain()
        except (TimeoutError, OSError) as error:
            raise _Stop(self.awaiting[-1] if self.awaiting else "send",
                        f"The server took no data ({describe_os_error(error)}).") from None

    def sent(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        lines = text.split("\r\n")[:-1] if text.endswith("\r\n") else text.split("\r\n")
        if self.in_content:
            for line in lines:
                self.say("sent", line)
            self.awaiting.append("end of data")
            return
        for line in lines:
            command = line.split(" ", 1)[0].upper()
            if self.hidden:  # "AUTH PLAIN <hidden>", then LOGIN's answers "<hidden>"
                words = line.split(" ")
                shown = (" ".join(words[:2]) + (" <hidden>" if len(words) > 2 else "")
                         if self.hidden == 1 else "<hidden>")
                self.hidden += 1
                self.awaiting.append("AUTH")
            else:
                shown = line
                self.awaiting.append(command if command in _COMMANDS else line)
            self.say("sent", shown)

    def received(self, data: bytes) -> None:
        if not data:
            return
        for line in data.decode("utf-8", "replace").splitlines():
            self.say("received", line)
        self.replies.feed(data)
        with contextlib.suppress(ReplyError):
            while (reply := self.replies.next_reply()) is not None:
                command = self.awaiting.popleft() if self.awaiting else "?"
                self.answers.append((command, reply))

    def say(self, kind: LineKind, text: str) -> None:
        line = TranscriptLine(kind, text, self.tls and kind in ("sent", "received"))
        self.report.lines.append(line)
        if self.on_line is not None:
            self.on_line(line)

    def stream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            raise _Stop("connect", "Not connected.")
        return self.reader, self.writer

    async def quit_quietly(self) -> None:
        """QUIT after a refusal, as a polite client does, when the connection still stands."""
        if self.writer is None or self.conn.finished or self.writer.is_closing():
            return
        with contextlib.suppress(Exception):
            self.conn.quit()
            async with asyncio.timeout(min(self.timeout, 5)):
                await self.expect(Replied, "QUIT")

    async def close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        await close_stream(writer)
        self.say("info", "Connection closed.")

    # -- explanations --------------------------------------------------------------------------

    def refused(self, step: str, reply: Reply, *, user: str = "") -> _Stop:
        return _Stop(step, explain_refusal(step, reply, host=self.host, user=user, tls=self.tls))

    def unexpected(self, event: ClientEvent, step: str) -> _Stop:
        waiting = self.awaiting[0] if self.awaiting else step
        reason = getattr(event, "reason", "")
        if reason:
            return _Stop(waiting, f"The server broke the SMTP protocol ({reason}).")
        return _Stop(waiting, f"The server closed the connection while we waited for the reply to "
                     f"{waiting}: its log says why (a limit, a filter, or a crash).")


_COMMANDS = {"EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "BDAT"}


def explain_refusal(step: str, reply: Reply, *, host: str, user: str = "", tls: bool = False) -> str:
    """One line: what the refusal of ``step`` with ``reply`` means and what to try."""
    said = " ".join(reply.to_bytes().decode("utf-8", "replace").split("\r\n")[0].split())
    words = " ".join(reply.lines).lower()
    enhanced = reply.enhanced or ""
    if step == "banner":
        if reply.code == 421:
            return f"The server is busy or shutting down ({said}): try again later."
        return (f"The server refused the connection at its banner ({said}): this address may be "
                "blocked or on a blocklist; the reply says why.")
    if step == "EHLO":
        return (f"The server refused EHLO ({said}): give a proper host name with --helo.")
    if step == "STARTTLS":
        return (f"The server refused STARTTLS ({said}): its TLS is not set up or broken; its log "
                "says why.")
    if step == "AUTH":
        if reply.code in (534, 538) or enhanced in ("5.7.11", "5.7.9") or "encrypt" in words:
            return (f"The server wants TLS before the login ({said}): add --starttls (port 587) or "
                    "--tls (port 465).")
        if reply.code == 454 or reply.code // 100 == 4:
            return (f"The login failed for a temporary reason ({said}): try again later; the "
                    "server's log says why.")
        return (f"The server refused the login of {user} ({said}): wrong user name or password "
                "(the user name is often the full address), or the account is disabled.")
    if "starttls" in words and reply.code == 530:
        return f"The server requires STARTTLS first ({said}): add --starttls."
    if reply.code == 530 or (enhanced == "5.7.0" and "auth" in words):
        return (f"The server requires a login before it takes mail here ({said}): add --auth USER "
                "(with the password in POSTOFFICE_PASSWORD or --password-stdin).")
    if step == "MAIL":
        if enhanced in ("5.7.1", "5.7.8") or "not owned" in words or "not allowed" in words:
            return (f"The server refused the sender ({said}): the logged-in user may not send as "
                    "that address; use your own address with --from.")
        if reply.code == 552 or enhanced == "5.3.4":
            return f"The message is too big for the server ({said})."
        return f"The server refused the sender ({said}); the reply says why."
    if step == "RCPT":
        if "relay" in words or (enhanced == "5.7.1" and reply.code in (550, 554)):
            return (f"The server refused to relay ({said}): without a login it only takes mail for "
                    "its own domains; add --auth USER on the submission port (587 or 465).")
        if enhanced == "5.1.1" or "unknown" in words or "does not exist" in words:
            return f"The server has no such recipient ({said}): check the address."
        if reply.code // 100 == 4:
            return (f"The server deferred the recipient ({said}): temporary, perhaps greylisting; "
                    "try again in a few minutes.")
        return f"The server refused the recipient ({said}); the reply says why."
    if step == "end of data":
        return (f"The server refused the message after its content ({said}): the reply says why "
                "(a content filter, SPF, DKIM or DMARC, or its size).")
    return f"The server refused {step} ({said})."


def _client_context(ca_file: Path | None, insecure: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as error:
            raise _Stop("TLS", f"The CA file {ca_file} cannot be used ({describe_tls_error(error)}); "
                        "give a PEM file of CA certificates.") from None
    return context

