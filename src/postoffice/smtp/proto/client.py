"""The client side of an SMTP connection, sans-IO (RFC 5321): the outbound queue's dialogue.

Calls in, bytes out; bytes in, events out::

    conn = SmtpClientConnection("mail.example.org")
    while (event := conn.next_event()) is NEED_DATA:     # the banner
        conn.receive_data(sock.recv(65536))              # b"" at EOF
    sock.sendall(conn.data_to_send())                    # EHLO went out by itself
    ...                                                  # EhloDone(reply, capabilities)
    conn.send_mail(message)                              # MAIL, RCPT..., DATA as the peer allows
    ...                                                  # ContentWanted: conn.send_content(raw, last=True)
    ...                                                  # TransactionDone(replies per recipient)
    conn.quit()

The core writes commands into an outbox (:meth:`SmtpClientConnection.data_to_send`) and
reports one event per finished step; the driver only moves bytes, starts TLS when told, and
chooses the timeout from :attr:`SmtpClientConnection.waiting_for` (RFC 5321 §4.5.3.2).

Implementation notes (invariants):

- Every command sent is remembered in order; replies are matched to them first in, first out,
  which is what makes PIPELINING (RFC 2920) safe: MAIL, every RCPT and DATA leave in one write
  when the peer offers it, one at a time otherwise. BDAT (RFC 3030) starts only after the RCPT
  replies, so no chunk is sent when no recipient was accepted; each chunk then waits for its
  reply, so a refused chunk ends the transaction without more being sent.
- Replies come from :class:`ReplyReader` (bounded line, reply size and line count); anything
  else, or a reply when none is due, is a :class:`ProtocolError` event and the connection is
  finished. EOF is :class:`Closed`, after the replies that came before it. So is a reply of the
  wrong class: 3xx anywhere but 354 to DATA and 334 to AUTH, and a 2xx to DATA (taken as the
  end of the transaction it would report a message as delivered that was never sent).
- EHLO answered with 5xx falls back to HELO (RFC 5321 §4.1.1.1, §3.2); a HELO session has no
  extensions. After STARTTLS's 220 everything buffered is dropped (a reply injected before the
  handshake, CVE-2011-0411's client side) and EHLO is sent again in TLS (RFC 3207 §4.2).
- What the peer cannot take is decided before anything is sent (:meth:`SmtpClientConnection.
  refusal`): 8-bit content without 8BITMIME (no 7-bit downgrade: the message may be DKIM-signed
  already), UTF-8 addresses or headers without SMTPUTF8 (RFC 6531 §3.4), a SIZE beyond the
  peer's limit (RFC 1870), REQUIRETLS (RFC 8689) without TLS and the extension.
- DATA content is dot-stuffed on the way (RFC 5321 §4.5.2, ``dotstuff.stuff_dots``) in whole
  lines, the unfinished last line of a piece kept for the next, and ended with CRLF "." CRLF; a
  last line without CRLF gets one.
- The result of a transaction is one reply per recipient: MAIL's when MAIL failed, the RCPT's
  when that failed, else the reply to the end of data (or to DATA, or to a failed BDAT).
"""

from __future__ import annotations

import base64
import enum
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from postoffice.smtp.proto.dotstuff import stuff_dots
from postoffice.smtp.proto.events import NEED_DATA, NeedData
from postoffice.smtp.proto.replies import Reply
from postoffice.smtp.proto.reply_reader import ReplyError, ReplyReader

__all__ = [
    "AuthDone",
    "Capabilities",
    "ClientEvent",
    "Closed",
    "ContentWanted",
    "EhloDone",
    "Greeting",
    "OutgoingMessage",
    "OutgoingRecipient",
    "ProtocolError",
    "Refusal",
    "Replied",
    "SmtpClientConnection",
    "StartTlsReply",
    "TransactionDone",
    "needs_smtputf8",
    "parse_capabilities",
    "xtext",
]


# --- what the peer offers ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The EHLO keywords we use (RFC 5321 §4.1.1.1); a HELO session offers none."""

    pipelining: bool = False  # RFC 2920
    size: int | None = None  # RFC 1870: the limit; 0 or no number means "no fixed limit"
    eightbitmime: bool = False  # RFC 6152
    smtputf8: bool = False  # RFC 6531
    chunking: bool = False  # RFC 3030
    dsn: bool = False  # RFC 3461
    starttls: bool = False  # RFC 3207
    auth: frozenset[str] = frozenset()  # RFC 4954 mechanisms, upper-cased
    requiretls: bool = False  # RFC 8689
    enhancedstatuscodes: bool = False  # RFC 2034


_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


def parse_capabilities(reply: Reply) -> Capabilities:
    """The extensions of an EHLO reply: the lines after the first, keyword then parameters.

    Unknown keywords and malformed parameters are ignored (a SIZE without a number is offered
    without a limit); ``AUTH=PLAIN LOGIN``, the pre-standard form some servers still send,
    counts like ``AUTH PLAIN LOGIN``.
    """
    found: dict[str, object] = {}
    mechanisms: set[str] = set()
    for line in reply.lines[1:]:
        words = line.replace("=", " ", 1).split() if line[:5].upper() == "AUTH=" else line.split()
        if not words or not _KEYWORD.fullmatch(words[0]):
            continue
        keyword, params = words[0].upper(), words[1:]
        if keyword == "AUTH":
            mechanisms.update(p.upper() for p in params if _KEYWORD.fullmatch(p))
        elif keyword == "SIZE":
            found["size"] = int(params[0]) if params and params[0].isdigit() and len(params[0]) < 19 else 0
        elif keyword in _FLAGS:
            found[_FLAGS[keyword]] = True
    return Capabilities(auth=frozenset(mechanisms), **found)  # type: ignore[arg-type]


_FLAGS = {
    "PIPELINING": "pipelining", "8BITMIME": "eightbitmime", "SMTPUTF8": "smtputf8",
    "CHUNKING": "chunking", "DSN": "dsn", "STARTTLS": "starttls", "REQUIRETLS": "requiretls",
    "ENHANCEDSTATUSCODES": "enhancedstatuscodes",
}


# --- what we send ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutgoingRecipient:
    address: str
    notify: tuple[str, ...] = ()  # RFC 3461 §4.1: passed on when the peer offers DSN
    orcpt: str | None = None  # "rfc822;user@example.org", not yet xtext-encoded


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One transaction's envelope and what the content needs from the peer."""

    sender: str  # "" for the null reverse-path
    recipients: tuple[OutgoingRecipient, ...]
    size: int  # octets of the content as sent, before dot-stuffing
    eight_bit: bool = False  # some octet >= 0x80: BODY=8BITMIME
    smtputf8: bool = False  # UTF-8 in an address or a header: SMTPUTF8 (RFC 6531)
    ret: str | None = None  # RFC 3461 §4.3 FULL | HDRS
    envid: str | None = None  # RFC 3461 §4.4
    requiretls: bool = False  # RFC 8689


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message cannot go to this peer; ``permanent`` when no retry here will help."""

    reason: str
    permanent: bool


def needs_smtputf8(sender: str, recipients: tuple[str, ...], content: bytes) -> bool:
    """RFC 6531 §3.4: a non-ASCII address, or non-ASCII octets in the header section."""
    if not sender.isascii() or not all(r.isascii() for r in recipients):
        return True
    end = content.find(b"\r\n\r\n")
    header = content if end < 0 else content[:end]
    return not header.isascii()


def xtext(text: str) -> str:
    """RFC 3461 §4: "+", "=", controls, space and non-ASCII octets as ``+XX``."""
    if all("!" <= c <= "~" and c not in "+=" for c in text):
        return text
    return "".join(
        chr(b) if 0x21 <= b <= 0x7E and b not in (0x2B, 0x3D) else f"+{b:02X}"
        for b in text.encode("utf-8"))


# --- events ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Greeting:
    """The banner (RFC 5321 §4.3.1). On 220 EHLO has already been written to the outbox."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class EhloDone:
    """The final answer to EHLO (or to HELO after EHLO failed); check ``reply.is_positive``."""

    reply: Reply
    capabilities: Capabilities
    extended: bool  # EHLO worked; False after the HELO fallback


@dataclass(frozen=True, slots=True)
class StartTlsReply:
    """220: start the TLS handshake now, then call :meth:`SmtpClientConnection.tls_started`."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class AuthDone:
    reply: Reply  # 235 on success (RFC 4954 §6)


@dataclass(frozen=True, slots=True)
class ContentWanted:
    """Call :meth:`SmtpClientConnection.send_content` with the next piece of the message."""


@dataclass(frozen=True, slots=True)
class TransactionDone:
    """One reply per recipient (in the order given), deciding its fate."""

    replies: tuple[tuple[str, Reply], ...]


@dataclass(frozen=True, slots=True)
class Replied:
    """The reply to RSET, NOOP or QUIT."""

    command: str
    reply: Reply


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The peer broke the protocol; the connection is finished. ``reason`` is plain words."""

    reason: str


@dataclass(frozen=True, slots=True)
class Closed:
    """The peer closed the connection (EOF); ``expected`` after QUIT's reply."""

    expected: bool


ClientEvent = (
    Greeting | EhloDone | StartTlsReply | AuthDone | ContentWanted | TransactionDone | Replied
    | ProtocolError | Closed
)


# --- the connection ----------------------------------------------------------------------------------


class _Await(enum.Enum):
    """What a sent command waits for; the values are what :attr:`waiting_for` reports."""

    GREETING = "greeting"
    EHLO = "EHLO"
    HELO = "HELO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    BDAT = "BDAT"
    END = "end of data"
    RSET = "RSET"
    NOOP = "NOOP"
    QUIT = "QUIT"


@dataclass(slots=True)
class _Transaction:
    message: OutgoingMessage
    use_bdat: bool
    mail: Reply | None = None
    rcpts: list[Reply] = field(default_factory=list)
    final: Reply | None = None  # the reply to DATA, a failed BDAT, or the end of data
    data_sent: bool = False  # DATA or the first BDAT went out
    content_done: bool = False  # the last piece of content went out
    carry: bytes = b""  # DATA: the part after the last CRLF, stuffed with the next piece


class LocalProtocolError(Exception):
    """The driver used the connection wrongly (our bug, not the peer's)."""


class SmtpClientConnection:
    """One outbound SMTP connection's protocol state; no I/O."""

    def __init__(self, helo_name: str, *, max_line: int = 4096, max_reply: int = 65536) -> None:
        self.helo_name = helo_name
        self.capabilities = Capabilities()
        self.extended = False  # EHLO (not HELO) was accepted
        self.tls = False
        self._reader = ReplyReader(max_line=max_line, max_reply=max_reply)
        self._outbox = bytearray()
        self._awaiting: deque[_Await] = deque([_Await.GREETING])
        self._events: deque[ClientEvent] = deque()
        self._transaction: _Transaction | None = None
        self._auth_steps: deque[bytes] = deque()  # LOGIN's answers to the 334 challenges
        self._finished = False  # ProtocolError or Closed reported
        self._eof = False
        self._quitting = False
        # Whether the server may still hold state of a transaction of ours (RFC 5321 §4.1.1.5):
        # from MAIL until the end of the message is answered or an RSET is accepted. While it
        # is False, the next MAIL needs no RSET before it.
        self.reset_needed = False

    # -- I/O side -----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer; ``b""`` means EOF."""
        if self._finished or self._eof:
            return
        if not data:
            self._eof = True  # Closed comes after the replies already received
            return
        self._reader.feed(data)

    def next_event(self) -> ClientEvent | NeedData:
        while not self._events and not self._finished:
            try:
                reply = self._reader.next_reply()
            except ReplyError as error:
                self._finish(ProtocolError(str(error)))
                break
            if reply is None:
                if self._eof:
                    self._finish(Closed(expected=self._quitting and not self._awaiting))
                break
            self._on_reply(reply)
        return self._events.popleft() if self._events else NEED_DATA

    def data_to_send(self) -> bytes:
        """Everything the core wants written, in order; empties the outbox."""
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    @property
    def waiting_for(self) -> str | None:
        """The oldest command still awaiting its reply ("MAIL", "end of data", ...), for the
        driver's choice of timeout; None when nothing is due."""
        return self._awaiting[0].value if self._awaiting else None

    @property
    def finished(self) -> bool:
        return self._finished

    # -- commands -------------------------------------------------------------------------------

    def starttls(self) -> None:
        """RFC 3207: ask for TLS; a :class:`StartTlsReply` follows."""
        self._command(b"STARTTLS", _Await.STARTTLS)

    def tls_started(self) -> None:
        """The handshake succeeded: forget what we knew and say EHLO again (RFC 3207 §4.2)."""
        self.tls = True
        self.capabilities = Capabilities()
        self._reader.clear()
        self._command(f"EHLO {self.helo_name}".encode(), _Await.EHLO)

    def authenticate(self, mechanism: str, user: str, password: str) -> None:
        """AUTH PLAIN (RFC 4616, initial response), LOGIN, or XOAUTH2 (``password`` is the OAuth
        access token); an :class:`AuthDone` follows."""
        mechanism = mechanism.upper()
        if mechanism == "PLAIN":
            token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
            self._command(b"AUTH PLAIN " + token, _Await.AUTH)
        elif mechanism == "LOGIN":
            self._auth_steps = deque([base64.b64encode(user.encode()), base64.b64encode(password.encode())])
            self._command(b"AUTH LOGIN", _Await.AUTH)
        elif mechanism == "XOAUTH2":
            # Google's and Microsoft's SASL mechanism. A refused token comes back as a 334 whose
            # challenge is a JSON error; the client answers it with an empty line and then gets
            # the final 535 (not "*", which some servers take as a protocol error).
            sasl = f"user={user}\x01auth=Bearer {password}\x01\x01".encode()
            self._auth_steps = deque([b""])
            self._command(b"AUTH XOAUTH2 " + base64.b64encode(sasl), _Await.AUTH)
        else:
            raise LocalProtocolError(f"unsupported mechanism {mechanism}")

    def refusal(self, message: OutgoingMessage) -> Refusal | None:
        """Why this peer cannot take ``message`` as it is, or None when it can."""
        caps = self.capabilities
        if message.eight_bit and not caps.eightbitmime:
            return Refusal("the message has 8-bit content and the receiving server does not offer "
                           "8BITMIME (no 7-bit conversion is done after DKIM signing)", True)
        if message.smtputf8 and not caps.smtputf8:
            return Refusal("the message needs SMTPUTF8 (a non-ASCII address or header) and the "
                           "receiving server does not offer it", True)
        if caps.size and message.size > caps.size:
            return Refusal(f"the message is {message.size} bytes and the receiving server accepts "
                           f"at most {caps.size}", True)
        if message.requiretls and not (self.tls and caps.requiretls):
            return Refusal("the message requires TLS (REQUIRETLS) and this server does not offer it "
                           "over TLS", False)
        return None

    def send_mail(self, message: OutgoingMessage) -> None:
        """Start a transaction: MAIL, the RCPTs and (pipelined, with DATA) what may follow."""
        if self._transaction is not None:
            raise LocalProtocolError("a transaction is already running")
        if not message.recipients:
            raise LocalProtocolError("a message without recipients")
        use_bdat = self.capabilities.chunking
        self._transaction = _Transaction(message, use_bdat)
        self.reset_needed = True
        self._command(self._mail_command(message), _Await.MAIL)
        if self.capabilities.pipelining:
            for recipient in message.recipients:
                self._command(self._rcpt_command(recipient), _Await.RCPT)
            if not use_bdat:
                self._transaction.data_sent = True
                self._command(b"DATA", _Await.DATA)

    def send_content(self, piece: bytes, *, last: bool) -> None:
        """The next piece of the message (CRLF line ends) after :class:`ContentWanted`."""
        t = self._transaction
        if t is None or t.content_done:
            raise LocalProtocolError("no content is wanted now")
        if t.use_bdat:
            suffix = b" LAST" if last else b""
            self._command(b"BDAT %d%s" % (len(piece), suffix), _Await.BDAT)
            self._outbox += piece
            t.content_done = last
            return
        # DATA: stuff complete lines now, keep the unfinished one for the next piece.
        data = t.carry + piece
        if last:
            t.carry = b""
            if data and not data.endswith(b"\r\n"):
                data += b"\r\n"
        else:
            cut = data.rfind(b"\r\n") + 2 if b"\r\n" in data else 0
            data, t.carry = data[:cut], data[cut:]
        if data:  # always whole lines: every piece written starts a line
            self._outbox += stuff_dots(data)
        if last:
            self._outbox += b".\r\n"
            self._awaiting.append(_Await.END)
            t.content_done = True
        else:
            self._events.append(ContentWanted())  # no reply to wait for inside DATA

    def rset(self) -> None:
        self._command(b"RSET", _Await.RSET)

    def noop(self) -> None:
        self._command(b"NOOP", _Await.NOOP)

    def quit(self) -> None:
        self._quitting = True
        self._command(b"QUIT", _Await.QUIT)

    # -- internals ----------------------------------------------------------------------------

    def _command(self, line: bytes, awaits: _Await) -> None:
        if self._finished:
            raise LocalProtocolError("the connection is finished")
        self._outbox += line + b"\r\n"
        self._awaiting.append(awaits)

    def _mail_command(self, message: OutgoingMessage) -> bytes:
        caps = self.capabilities
        params = []
        if caps.size is not None:
            params.append(f"SIZE={message.size}")
        if message.eight_bit and caps.eightbitmime:
            params.append("BODY=8BITMIME")
        if message.smtputf8 and caps.smtputf8:
            params.append("SMTPUTF8")
        if message.requiretls and caps.requiretls:
            params.append("REQUIRETLS")
        if caps.dsn:
            if message.ret:
                params.append(f"RET={message.ret}")
            if message.envid:
                params.append(f"ENVID={xtext(message.envid)}")
        return " ".join([f"MAIL FROM:<{message.sender}>", *params]).encode()

    def _rcpt_command(self, recipient: OutgoingRecipient) -> bytes:
        params = []
        if self.capabilities.dsn:
            if recipient.notify:
                params.append("NOTIFY=" + ",".join(recipient.notify))
            if recipient.orcpt:
                addr_type, _, address = recipient.orcpt.partition(";")
                params.append(f"ORCPT={addr_type};{xtext(address)}")
        return " ".join([f"RCPT TO:<{recipient.address}>", *params]).encode()

    def _finish(self, event: ProtocolError | Closed) -> None:
        self._finished = True
        self._events.append(event)

    def _on_reply(self, reply: Reply) -> None:
        if not self._awaiting:
            self._finish(ProtocolError(f"a reply nobody asked for: {reply.code}"))
            return
        awaited = self._awaiting.popleft()
        wrong = _wrong_class(awaited, reply)
        if wrong is not None:
            self._finish(ProtocolError(wrong))
            return
        handler = _HANDLERS[awaited]
        handler(self, reply)

    def _on_greeting(self, reply: Reply) -> None:
        if reply.code == 220:
            self._command(f"EHLO {self.helo_name}".encode(), _Await.EHLO)
        self._events.append(Greeting(reply))

    def _on_ehlo(self, reply: Reply) -> None:
        if reply.is_positive:
            self.extended = True
            self.capabilities = parse_capabilities(reply)
            self._events.append(EhloDone(reply, self.capabilities, True))
        elif 500 <= reply.code < 600:  # RFC 5321 §4.1.1.1: an old server; try HELO
            self._command(f"HELO {self.helo_name}".encode(), _Await.HELO)
        else:
            self._events.append(EhloDone(reply, Capabilities(), True))

    def _on_helo(self, reply: Reply) -> None:
        self.extended = False
        self.capabilities = Capabilities()
        self._events.append(EhloDone(reply, self.capabilities, False))

    def _on_starttls(self, reply: Reply) -> None:
        if reply.code == 220 and self._reader.partial:
            # Bytes after the 220 came before the handshake: injected, or a broken peer.
            self._finish(ProtocolError("data after the STARTTLS reply, before the TLS handshake"))
            return
        self._events.append(StartTlsReply(reply))

    def _on_auth(self, reply: Reply) -> None:
        if reply.code == 334 and self._auth_steps:
            self._command(self._auth_steps.popleft(), _Await.AUTH)
            return
        if reply.code == 334:  # a challenge we have no answer to: cancel (RFC 4954 §4)
            self._command(b"*", _Await.AUTH)
            return
        self._auth_steps.clear()
        self._events.append(AuthDone(reply))

    def _on_mail(self, reply: Reply) -> None:
        t = self._need_transaction()
        t.mail = reply
        if not self.capabilities.pipelining:
            if reply.is_positive:
                self._command(self._rcpt_command(t.message.recipients[0]), _Await.RCPT)
            else:
                self._end_transaction()

    def _on_rcpt(self, reply: Reply) -> None:
        t = self._need_transaction()
        t.rcpts.append(reply)
        done = len(t.rcpts)
        if done < len(t.message.recipients):
            if not self.capabilities.pipelining:
                self._command(self._rcpt_command(t.message.recipients[done]), _Await.RCPT)
            return
        accepted = t.mail is not None and t.mail.is_positive and any(r.is_positive for r in t.rcpts)
        if t.data_sent:  # pipelined DATA: its reply follows
            return
        if not accepted:
            self._end_transaction()
        elif t.use_bdat:
            t.data_sent = True
            self._events.append(ContentWanted())
        else:
            t.data_sent = True
            self._command(b"DATA", _Await.DATA)

    def _on_data(self, reply: Reply) -> None:
        t = self._need_transaction()
        if reply.code == 354:
            accepted = t.mail is not None and t.mail.is_positive and any(r.is_positive for r in t.rcpts)
            if accepted:
                self._events.append(ContentWanted())
            else:  # RFC 2920 §3.1: a 354 although nobody was accepted; end the empty data
                t.final = Reply(554, "5.5.1", "No valid recipients")
                self._outbox += b".\r\n"
                self._awaiting.append(_Await.END)
                t.content_done = True
            return
        t.final = reply
        self._end_transaction()

    def _on_bdat(self, reply: Reply) -> None:
        t = self._need_transaction()
        if not reply.is_positive or t.content_done:  # a refused chunk ends it; send no more
            # The reply to BDAT LAST ends the transaction on the server (RFC 3030 §2); after a
            # refused chunk the server's state is unclear: RSET before the next.
            self.reset_needed = not (t.content_done and reply.is_positive)
            t.final = reply
            t.content_done = True
            self._end_transaction()
        else:
            self._events.append(ContentWanted())

    def _on_end(self, reply: Reply) -> None:
        t = self._need_transaction()
        self.reset_needed = False  # the end of data, whatever its reply, ends the transaction
        if t.final is None:
            t.final = reply
        self._end_transaction()

    def _end_transaction(self) -> None:
        t = self._need_transaction()
        mail = t.mail
        assert mail is not None
        replies = []
        for index, recipient in enumerate(t.message.recipients):
            if not mail.is_positive:
                decided = mail
            elif index < len(t.rcpts) and not t.rcpts[index].is_positive:
                decided = t.rcpts[index]
            else:
                decided = t.final or _NOT_SENT
            replies.append((recipient.address, decided))
        self._transaction = None
        self._events.append(TransactionDone(tuple(replies)))

    def _need_transaction(self) -> _Transaction:
        if self._transaction is None:
            raise LocalProtocolError("a transaction reply without a transaction")
        return self._transaction


# Only reachable when a pipelined reply sequence was cut short by a refused MAIL.
_NOT_SENT = Reply(451, "4.3.0", "The message was not sent")


def _wrong_class(awaited: _Await, reply: Reply) -> str | None:
    """Why ``reply`` cannot answer ``awaited`` (RFC 5321 §4.3.2), or None. Only DATA may get
    354 and only AUTH 334; DATA must get 354 or a failure: a 2xx to DATA taken as the end of
    the transaction would count a message as delivered that was never sent."""
    code = reply.code
    if awaited is _Await.DATA:
        if code == 354 or code >= 400:
            return None
        return f"a {code} reply to DATA instead of 354 (the message was not sent)"
    if reply.is_intermediate and not (awaited is _Await.AUTH and code == 334):
        return f"a {code} reply to {_described(awaited)}, which takes no intermediate reply"
    return None


def _described(awaited: _Await) -> str:
    return {_Await.GREETING: "the connection (the banner)", _Await.END: "the end of data"}.get(
        awaited, awaited.value)


def _replied(command: str) -> _Handler:
    def handle(conn: SmtpClientConnection, reply: Reply) -> None:
        if command == "RSET" and reply.is_positive:
            conn.reset_needed = False
        conn._events.append(Replied(command, reply))
    return handle


_Handler = Callable[[SmtpClientConnection, Reply], None]
_HANDLERS: dict[_Await, _Handler] = {
    _Await.GREETING: SmtpClientConnection._on_greeting,
    _Await.EHLO: SmtpClientConnection._on_ehlo,
    _Await.HELO: SmtpClientConnection._on_helo,
    _Await.STARTTLS: SmtpClientConnection._on_starttls,
    _Await.AUTH: SmtpClientConnection._on_auth,
    _Await.MAIL: SmtpClientConnection._on_mail,
    _Await.RCPT: SmtpClientConnection._on_rcpt,
    _Await.DATA: SmtpClientConnection._on_data,
    _Await.BDAT: SmtpClientConnection._on_bdat,
    _Await.END: SmtpClientConnection._on_end,
    _Await.RSET: _replied("RSET"),
    _Await.NOOP: _replied("NOOP"),
    _Await.QUIT: _replied("QUIT"),
}
