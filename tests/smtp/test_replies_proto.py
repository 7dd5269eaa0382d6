"""Replies on the wire: single and multi-line, enhanced codes on every line (RFC 2034)."""

from __future__ import annotations

import pytest

from postoffice.smtp.proto import replies as r
from postoffice.smtp.proto.replies import Reply

WIRE = [
    (Reply(250, "2.0.0", "Ok"), b"250 2.0.0 Ok\r\n"),
    (Reply(354, None, "Go ahead"), b"354 Go ahead\r\n"),
    (
        Reply(250, None, ("mx.example.org", "PIPELINING", "SIZE 10")),
        b"250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 10\r\n",
    ),
    (
        Reply(550, "5.1.1", ("No such user", "here")),
        b"550-5.1.1 No such user\r\n550 5.1.1 here\r\n",
    ),
    (Reply(250, "2.0.0", ()), b"250 2.0.0 \r\n"),
    (Reply(250, "2.0.0", "caf\u00e9"), "250 2.0.0 caf\u00e9\r\n".encode()),
]


@pytest.mark.parametrize(("reply", "wire"), WIRE)
def test_to_bytes(reply: Reply, wire: bytes) -> None:
    assert reply.to_bytes() == wire


@pytest.mark.parametrize(
    ("code", "enhanced", "text"),
    [
        (250, "2.0.0", "a\r\n250 injected"),
        (250, "2.0.0", ("ok", "b\n")),
        (250, "5.0.0", "class must match the code"),
        (354, "3.0.0", "no class 3"),
        (250, "2.0", "too short"),
        (99, None, "code"),
        (600, None, "code"),
    ],
)
def test_bad_replies_are_refused(code: int, enhanced: str | None, text: str) -> None:
    with pytest.raises(ValueError):
        Reply(code, enhanced, text)


CONSTANTS = [
    (r.OK, 250, "2.0.0"),
    (r.SENDER_OK, 250, "2.1.0"),
    (r.RCPT_OK, 250, "2.1.5"),
    (r.START_DATA, 354, None),
    (r.READY_FOR_TLS, 220, "2.0.0"),
    (r.CLOSING, 221, "2.0.0"),
    (r.AUTH_OK, 235, "2.7.0"),
    (r.AUTH_FAILED, 535, "5.7.8"),
    (r.ENCRYPTION_REQUIRED, 538, "5.7.11"),
    (r.VRFY_CANNOT, 252, "2.5.0"),
    (r.HELP, 214, "2.0.0"),
    (r.BAD_SEQUENCE, 503, "5.5.1"),
    (r.UNKNOWN_COMMAND, 500, "5.5.2"),
    (r.SYNTAX_ERROR, 501, "5.5.4"),
    (r.LINE_TOO_LONG, 500, "5.5.2"),
    (r.PARAM_NOT_RECOGNIZED, 555, "5.5.4"),
    (r.TOO_MANY_RECIPIENTS, 452, "4.5.3"),
    (r.MESSAGE_TOO_BIG, 552, "5.3.4"),
    (r.NO_VALID_RECIPIENTS, 554, "5.5.1"),
    (r.TIMEOUT, 421, "4.4.2"),
    (r.TOO_MANY_ERRORS, 421, "4.7.0"),
    (r.SHUTDOWN, 421, "4.3.0"),
]


@pytest.mark.parametrize(("reply", "code", "enhanced"), CONSTANTS)
def test_constants(reply: Reply, code: int, enhanced: str | None) -> None:
    assert (reply.code, reply.enhanced) == (code, enhanced)


def test_constant_texts_the_driver_relies_on() -> None:
    assert r.START_DATA.text == "End data with <CR><LF>.<CR><LF>"
    assert r.LINE_TOO_LONG.text == "Line too long"
    assert r.TIMEOUT.text == "Timeout, closing connection"
    assert r.TOO_MANY_ERRORS.text == "Too many errors, closing connection"
    assert r.ENCRYPTION_REQUIRED.text == (
        "Encryption required for requested authentication mechanism"
    )
    assert r.VRFY_CANNOT.text == "Cannot VRFY user, but will accept message and attempt delivery"
    assert r.OK.text == "Ok"
