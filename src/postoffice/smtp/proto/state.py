"""The SMTP/LMTP command sequence as data (RFC 5321 §4.1.4, §3.3; RFC 3030; RFC 4954; RFC 3207).

Theory of operation
-------------------

A connection is in one :class:`State` at a time. A command moves it only when the driver
accepts it: the core emits an event, the driver answers with a reply, and the reply decides
the new state (:func:`state_after_reply`). Two tables say everything:

- :data:`REFUSALS`: ``(verb, state) -> reply`` for commands that are out of sequence. A pair
  missing from the table is allowed, as far as sequence goes (syntax, TLS and authentication
  are checked separately). MAIL needs a greeting first and is not allowed inside a transaction;
  RCPT needs MAIL; DATA and BDAT need an accepted recipient (554 5.5.1 without one, as
  Postfix answers); DATA after a BDAT chunk, or RCPT between chunks, mixes the two and is
  refused (RFC 3030 §3). AUTH needs a greeting and is refused inside a transaction
  (RFC 4954 §4). STARTTLS inside a transaction is refused: the handshake would discard it.
- :data:`AFTER_REPLY`: ``(event kind, positive reply?) -> new state``. A positive reply is 2xx.
  EHLO/HELO/LHLO and RSET end a transaction (§4.1.4: "as if a RSET command had been issued");
  any reply to the end of a message (DATA's dot, BDAT LAST) ends it, and so does a failed
  BDAT chunk, unless it failed for size: then the transaction stays, too large, so that the
  chunks the client already pipelined are read and refused one by one (RFC 3030 §3). A
  missing pair leaves the state as it is.

Two situations are input modes rather than states and live in the connection: reading message
content after 354 (DATA) or the announced bytes of a BDAT chunk, and reading an AUTH response
line after 334. TLS_PENDING (after 220 to STARTTLS) and CLOSED (after 221, a 421, or a fatal
error) read nothing at all.
"""

from __future__ import annotations

import enum
from typing import Final

from postoffice.smtp.proto import events as ev
from postoffice.smtp.proto.replies import NO_VALID_RECIPIENTS, Reply

__all__ = [
    "AFTER_REPLY",
    "END_TRANSACTION",
    "IN_TRANSACTION",
    "REFUSALS",
    "State",
    "refusal",
    "state_after_reply",
]


class State(enum.Enum):
    CONNECTED = "connected"  # no EHLO/HELO/LHLO accepted yet (or again, after STARTTLS)
    GREETED = "greeted"  # no mail transaction
    MAIL = "mail"  # MAIL FROM accepted, no recipient yet
    RCPT = "rcpt"  # at least one RCPT TO accepted
    BDAT = "bdat"  # at least one BDAT chunk received
    TLS_PENDING = "tls-pending"  # 220 sent to STARTTLS; waiting for tls_started()
    CLOSED = "closed"  # 221 or 421 sent, or a fatal error answered


IN_TRANSACTION: Final = frozenset({State.MAIL, State.RCPT, State.BDAT})

NEED_HELO = Reply(503, "5.5.1", "Send EHLO/HELO first")
NEED_LHLO = Reply(503, "5.5.1", "Send LHLO first")
NEED_MAIL = Reply(503, "5.5.1", "Send MAIL FROM first")
NESTED_MAIL = Reply(503, "5.5.1", "Mail transaction already in progress")
MIXED_DATA_BDAT = Reply(503, "5.5.1", "DATA and BDAT cannot be mixed in one transaction")
RCPT_AFTER_BDAT = Reply(503, "5.5.1", "RCPT TO after BDAT")
AUTH_IN_TRANSACTION = Reply(503, "5.5.1", "AUTH not allowed during a mail transaction")
TLS_IN_TRANSACTION = Reply(503, "5.5.1", "STARTTLS not allowed during a mail transaction")

_C, _G, _M, _R, _B = State.CONNECTED, State.GREETED, State.MAIL, State.RCPT, State.BDAT

# (verb, state) -> the reply refusing it. Verbs absent here (EHLO, HELO, LHLO, RSET, NOOP,
# QUIT, VRFY, EXPN, HELP) are allowed in every state that reads commands.
REFUSALS: Final[dict[tuple[str, State], Reply]] = {
    ("MAIL", _C): NEED_HELO,
    ("MAIL", _M): NESTED_MAIL,
    ("MAIL", _R): NESTED_MAIL,
    ("MAIL", _B): NESTED_MAIL,
    ("RCPT", _C): NEED_MAIL,
    ("RCPT", _G): NEED_MAIL,
    ("RCPT", _B): RCPT_AFTER_BDAT,
    ("DATA", _C): NEED_MAIL,
    ("DATA", _G): NEED_MAIL,
    ("DATA", _M): NO_VALID_RECIPIENTS,
    ("DATA", _B): MIXED_DATA_BDAT,
    ("BDAT", _C): NEED_MAIL,
    ("BDAT", _G): NEED_MAIL,
    ("BDAT", _M): NO_VALID_RECIPIENTS,
    ("AUTH", _C): NEED_HELO,
    ("AUTH", _M): AUTH_IN_TRANSACTION,
    ("AUTH", _R): AUTH_IN_TRANSACTION,
    ("AUTH", _B): AUTH_IN_TRANSACTION,
    ("STARTTLS", _M): TLS_IN_TRANSACTION,
    ("STARTTLS", _R): TLS_IN_TRANSACTION,
    ("STARTTLS", _B): TLS_IN_TRANSACTION,
}


class _EndTransaction(enum.Enum):
    END_TRANSACTION = "end-transaction"


END_TRANSACTION: Final = _EndTransaction.END_TRANSACTION
"""Back to GREETED if a transaction is open, else no change (RSET before EHLO stays CONNECTED)."""

# (event kind, reply is 2xx) -> new state. Kinds are event class names, with "+last" or
# "+too_large" for BdatComplete (see _kind).
AFTER_REPLY: Final[dict[tuple[str, bool], State | _EndTransaction]] = {
    ("Ehlo", True): State.GREETED,
    ("Ehlo", False): END_TRANSACTION,  # drivers forget the envelope on any EHLO
    ("Rset", True): END_TRANSACTION,
    ("MailFrom", True): State.MAIL,
    ("RcptTo", True): State.RCPT,
    ("DataComplete", True): State.GREETED,
    ("DataComplete", False): State.GREETED,
    ("BdatComplete", True): State.BDAT,
    ("BdatComplete", False): State.GREETED,
    ("BdatComplete+too_large", True): State.BDAT,
    ("BdatComplete+too_large", False): State.BDAT,
    ("BdatComplete+last", True): State.GREETED,
    ("BdatComplete+last", False): State.GREETED,
    ("StartTlsRequested", True): State.TLS_PENDING,
    ("Quit", True): State.CLOSED,
}


def refusal(verb: str, state: State) -> Reply | None:
    """The reply refusing ``verb`` (upper-case) in ``state``, or None if it is in sequence."""
    return REFUSALS.get((verb, state))


def state_after_reply(state: State, event: ev.Event, reply: Reply) -> State:
    """The state once ``reply`` has been sent to the command ``event`` stood for."""
    if reply.code == 421:  # RFC 5321 §3.8: the server closes the connection
        return State.CLOSED
    if isinstance(event, ev.CommandError):
        return State.CLOSED if event.fatal else state
    target = AFTER_REPLY.get((_kind(event), reply.is_positive))
    if target is None:
        return state
    if target is END_TRANSACTION:
        return State.GREETED if state in IN_TRANSACTION else state
    assert isinstance(target, State)
    return target


def _kind(event: ev.Event) -> str:
    name = type(event).__name__
    if isinstance(event, ev.BdatComplete):
        if event.last:
            return name + "+last"
        if event.too_large:
            return name + "+too_large"
    return name
