"""The command-sequence tables alone (RFC 5321 §4.1.4, RFC 3030, RFC 4954), without bytes."""

from __future__ import annotations

import pytest

from postoffice.smtp.proto import events as ev
from postoffice.smtp.proto import replies as r
from postoffice.smtp.proto.state import (
    AUTH_IN_TRANSACTION,
    MIXED_DATA_BDAT,
    NEED_HELO,
    NEED_MAIL,
    NESTED_MAIL,
    RCPT_AFTER_BDAT,
    TLS_IN_TRANSACTION,
    State,
    refusal,
    state_after_reply,
)

C, G, M, R, B = State.CONNECTED, State.GREETED, State.MAIL, State.RCPT, State.BDAT
OK = None

# verb: the answer in CONNECTED, GREETED, MAIL, RCPT, BDAT.
SEQUENCE = {
    "EHLO": (OK, OK, OK, OK, OK),
    "HELO": (OK, OK, OK, OK, OK),
    "LHLO": (OK, OK, OK, OK, OK),
    "MAIL": (NEED_HELO, OK, NESTED_MAIL, NESTED_MAIL, NESTED_MAIL),
    "RCPT": (NEED_MAIL, NEED_MAIL, OK, OK, RCPT_AFTER_BDAT),
    "DATA": (NEED_MAIL, NEED_MAIL, r.NO_VALID_RECIPIENTS, OK, MIXED_DATA_BDAT),
    "BDAT": (NEED_MAIL, NEED_MAIL, r.NO_VALID_RECIPIENTS, OK, OK),
    "AUTH": (NEED_HELO, OK, AUTH_IN_TRANSACTION, AUTH_IN_TRANSACTION, AUTH_IN_TRANSACTION),
    "STARTTLS": (OK, OK, TLS_IN_TRANSACTION, TLS_IN_TRANSACTION, TLS_IN_TRANSACTION),
    "RSET": (OK, OK, OK, OK, OK),
    "NOOP": (OK, OK, OK, OK, OK),
    "QUIT": (OK, OK, OK, OK, OK),
    "VRFY": (OK, OK, OK, OK, OK),
    "EXPN": (OK, OK, OK, OK, OK),
    "HELP": (OK, OK, OK, OK, OK),
}


@pytest.mark.parametrize("verb", sorted(SEQUENCE))
@pytest.mark.parametrize("index", range(5))
def test_refusal_table(verb: str, index: int) -> None:
    state = (C, G, M, R, B)[index]
    assert refusal(verb, state) == SEQUENCE[verb][index]


def test_refusals_are_503_or_554() -> None:
    for verb in SEQUENCE:
        for state in (C, G, M, R, B):
            reply = refusal(verb, state)
            assert reply is None or (reply.code, reply.enhanced) in {
                (503, "5.5.1"),
                (554, "5.5.1"),
            }


PARAMS = ev.MailParams()
POSITIVE, NEGATIVE, FOUR21 = r.OK, r.Reply(550, "5.7.1", "No"), r.SHUTDOWN

AFTER = [
    # state, event, reply, new state
    (C, ev.Ehlo("x", True), POSITIVE, G),
    (C, ev.Ehlo("x", True), NEGATIVE, C),
    (R, ev.Ehlo("x", True), POSITIVE, G),  # EHLO resets the transaction (§4.1.4)
    (R, ev.Ehlo("x", True), NEGATIVE, G),
    (G, ev.MailFrom("a@b", PARAMS), POSITIVE, M),
    (G, ev.MailFrom("a@b", PARAMS), NEGATIVE, G),
    (M, ev.RcptTo("a@b", ev.RcptParams(), False), POSITIVE, R),
    (M, ev.RcptTo("a@b", ev.RcptParams(), False), NEGATIVE, M),
    (R, ev.RcptTo("a@b", ev.RcptParams(), False), NEGATIVE, R),
    (R, ev.DataRequested(), r.START_DATA, R),  # DATA mode is the connection's business
    (R, ev.DataComplete(10, False), POSITIVE, G),
    (R, ev.DataComplete(10, False), NEGATIVE, G),
    (R, ev.DataComplete(10, True), r.MESSAGE_TOO_BIG, G),
    (R, ev.BdatComplete(10, False, False), POSITIVE, B),
    (B, ev.BdatComplete(10, False, False), POSITIVE, B),
    (B, ev.BdatComplete(10, False, False), r.Reply(451, "4.3.0", "Later"), G),
    (R, ev.BdatComplete(10, False, True), r.MESSAGE_TOO_BIG, B),  # keeps refusing chunks
    (B, ev.BdatComplete(10, True, False), POSITIVE, G),
    (B, ev.BdatComplete(10, True, True), r.MESSAGE_TOO_BIG, G),
    (C, ev.Rset(), POSITIVE, C),
    (G, ev.Rset(), POSITIVE, G),
    (M, ev.Rset(), POSITIVE, G),
    (B, ev.Rset(), POSITIVE, G),
    (G, ev.StartTlsRequested(), r.READY_FOR_TLS, State.TLS_PENDING),
    (G, ev.StartTlsRequested(), r.Reply(502, "5.5.1", "No TLS"), G),
    (R, ev.Quit(), r.CLOSING, State.CLOSED),
    (R, ev.Noop(), POSITIVE, R),
    (R, ev.Vrfy("x"), r.VRFY_CANNOT, R),
    (G, ev.AuthRequested("PLAIN", None), r.AUTH_OK, G),
    (R, ev.CommandError(r.SYNTAX_ERROR), r.SYNTAX_ERROR, R),
    (R, ev.CommandError(r.SYNTAX_ERROR, fatal=True), r.SYNTAX_ERROR, State.CLOSED),
    (R, ev.Noop(), FOUR21, State.CLOSED),  # 421 always closes (§3.8)
    (G, ev.Ehlo("x", True), FOUR21, State.CLOSED),
]


@pytest.mark.parametrize(("state", "event", "reply", "new"), AFTER)
def test_state_after_reply_table(state: State, event: ev.Event, reply: r.Reply, new: State) -> None:
    assert state_after_reply(state, event, reply) is new
