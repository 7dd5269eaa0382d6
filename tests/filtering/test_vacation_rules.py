"""Vacation replies (RFC 5230 §4.5, §5): which messages get none, and what a reply looks like.
Pure: bytes in, a reason or a message out."""

from __future__ import annotations

import dataclasses

import pytest

from postoffice.delivery import Envelope
from postoffice.filtering.pipeline import IncomingMessage
from postoffice.filtering.sieve.actions import Vacation
from postoffice.filtering.vacation import memory_key, vacation_reply, why_no_reply

ME = "alice@example.org"
ACTION = Vacation(recipient="carol@remote.example", from_=None, subject="Auto: hello", reason="Away.",
                  handle="h1", seconds=86400, in_reply_to="<m1@remote.example>", references="<m0@remote.example>")


def incoming(sender: str = "carol@remote.example", to: str = ME, extra: str = "") -> IncomingMessage:
    raw = f"From: {sender}\r\nTo: {to}\r\nSubject: hello\r\nMessage-ID: <m1@remote.example>\r\n{extra}\r\nbody\r\n"
    return IncomingMessage(Envelope(sender, (ME,)), raw.encode())


@pytest.mark.parametrize(("message", "reason"), [
    (incoming(), None),
    (incoming(to=f"Team <team@example.org>, Alice <{ME}>"), None),
    (incoming(to="someone@else.example", extra=f"Cc: {ME}\r\n"), None),
    (incoming(to="list@else.example", extra=f"Resent-To: {ME}\r\n"), None),
    (incoming(extra="Auto-Submitted: no\r\n"), None),
    (incoming(sender=""), "the null sender"),
    (incoming(sender="MAILER-DAEMON@remote.example"), "a system or list sender"),
    (incoming(sender="owner-talk@lists.example"), "a system or list sender"),
    (incoming(sender="talk-request@lists.example"), "a system or list sender"),
    (incoming(sender=ME), "mail from the account itself"),
    (incoming(extra="Auto-Submitted: auto-replied\r\n"), "Auto-Submitted"),
    (incoming(extra="List-Id: <talk.lists.example>\r\n"), "mailing list"),
    (incoming(extra="List-Unsubscribe: <mailto:u@lists.example>\r\n"), "mailing list"),
    (incoming(extra="Precedence: Bulk\r\n"), "Precedence"),
    (incoming(to="undisclosed-recipients:;"), "not named"),
])
def test_when_no_reply_is_sent(message: IncomingMessage, reason: str | None) -> None:
    got = why_no_reply(message, [ME], ACTION)
    assert (got is None) if reason is None else (got is not None and reason in got), got


def test_addresses_count_as_the_accounts_own() -> None:
    message = incoming(to="alice.smith@example.org")
    assert why_no_reply(message, [ME], ACTION) is not None
    with_alias = dataclasses.replace(ACTION, addresses=("alice.smith@example.org",))
    assert why_no_reply(message, [ME], with_alias) is None


def test_the_reply_is_auto_submitted_threaded_and_plain_text() -> None:
    sender, raw = vacation_reply(ACTION, ME)
    head, _, body = raw.partition(b"\r\n\r\n")
    fields = head.split(b"\r\n")
    assert sender == ME and b"From: <alice@example.org>" in fields and b"To: <carol@remote.example>" in fields
    assert b"Auto-Submitted: auto-replied (vacation)" in fields and b"Subject: Auto: hello" in fields
    assert b"In-Reply-To: <m1@remote.example>" in fields
    assert b"References: <m0@remote.example> <m1@remote.example>" in fields
    assert body == b"Away.\r\n"


def test_a_non_ascii_subject_is_encoded_and_the_key_ignores_case() -> None:
    _, raw = vacation_reply(Vacation("c@r.example", None, "Abwesend: Grüße", "Weg.", "h", 3600), ME)
    assert b"\r\nSubject: =?utf-8?" in raw and raw.isascii()
    assert memory_key("Carol@Remote.Example", "h") == memory_key("carol@remote.example", "h")
