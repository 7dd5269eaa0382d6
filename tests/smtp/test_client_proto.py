"""The SMTP client core, sans-IO: peer bytes in, events and our bytes out (smtp/proto/client.py)."""
from __future__ import annotations

import pytest

from postoffice.smtp.proto.client import (
    AuthDone,
    Capabilities,
    ClientEvent,
    Closed,
    ContentWanted,
    EhloDone,
    Greeting,
    OutgoingMessage,
    OutgoingRecipient,
    ProtocolError,
    Replied,
    SmtpClientConnection,
    StartTlsReply,
    TransactionDone,
    needs_smtputf8,
    parse_capabilities,
    xtext,
)
from postoffice.smtp.proto.events import NEED_DATA
from postoffice.smtp.proto.replies import Reply
from postoffice.smtp.proto.reply_reader import ReplyError, ReplyReader

EHLO_FULL = (b"250-mx.example.org hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
             b"250-SMTPUTF8\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n")
EHLO_PLAIN = b"250-mx.example.org\r\n250 SIZE\r\n"


def events(conn: SmtpClientConnection, data: bytes) -> list[ClientEvent]:
    conn.receive_data(data)
    found = []
    while (event := conn.next_event()) is not NEED_DATA:
        found.append(event)
    return found


def pending(conn: SmtpClientConnection) -> list[ClientEvent]:
    found = []
    while (event := conn.next_event()) is not NEED_DATA:
        found.append(event)
    return found


def ready(ehlo: bytes) -> SmtpClientConnection:
    conn = SmtpClientConnection("client.example.test")
    (greeting,) = events(conn, b"220 mx.example.org ESMTP\r\n")
    assert isinstance(greeting, Greeting)
    assert conn.data_to_send() == b"EHLO client.example.test\r\n"
    (done,) = events(conn, ehlo)
    assert isinstance(done, EhloDone) and done.reply.is_positive
    return conn


def message(*recipients: str, size: int = 10, **kw: object) -> OutgoingMessage:
    return OutgoingMessage("a@example.test", tuple(OutgoingRecipient(r) for r in recipients), size, **kw)  # type: ignore[arg-type]


# --- replies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "code", "enhanced", "lines"),
    [
        (b"250 ok\r\n", 250, None, ("ok",)),
        (b"250-first\r\n250-second\r\n250 third\r\n", 250, None, ("first", "second", "third")),
        (b"550 5.1.1 No such user\r\n", 550, "5.1.1", ("No such user",)),
        (b"550-5.1.1 The email account\r\n550 5.1.1 does not exist\r\n", 550, "5.1.1",
         ("The email account", "does not exist")),
        (b"451 4.07.001 later\r\n", 451, "4.7.1", ("later",)),
        (b"550 4.1.1 class differs, so no code\r\n", 550, None, ("4.1.1 class differs, so no code",)),
        (b"250\r\n", 250, None, ("",)),
        (b"250 bare LF\n", 250, None, ("bare LF",)),
        (b"554 bell\x07 and \xff\r\n", 554, None, ("bell  and \ufffd",)),
    ],
)
def test_replies_are_parsed_with_their_enhanced_codes(wire: bytes, code: int, enhanced: str | None,
                                                      lines: tuple[str, ...]) -> None:
    reader = ReplyReader()
    for byte in range(len(wire) - 1):  # byte by byte: nothing before the last line ends
        reader.feed(wire[byte:byte + 1])
        assert reader.next_reply() is None
    reader.feed(wire[-1:])
    reply = reader.next_reply()
    assert reply is not None and (reply.code, reply.enhanced, reply.lines) == (code, enhanced, lines)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n", "not an SMTP reply"),
        (b"2500 too many digits\r\n", "not an SMTP reply"),
        (b"\x16\x03\x01\x02\x00\x01\r\n", "not an SMTP reply"),
        (b"100 informational\r\n", "not an SMTP reply"),
        (b"250-one\r\n354 two\r\n", "reply code 354 inside a 250 reply"),
        (b"220 " + b"x" * 5000, "a reply line longer than 4096 bytes"),
        (b"220-banner line\r\n" * 300, "a reply longer than"),
    ],
)
def test_garbage_and_huge_replies_are_errors(wire: bytes, message: str) -> None:
    reader = ReplyReader()
    reader.feed(wire)
    with pytest.raises(ReplyError, match=message):
        while reader.next_reply() is not None:
            pass


def test_a_ten_megabyte_banner_is_a_protocol_error_without_holding_it() -> None:
    conn = SmtpClientConnection("c.example")
    line = b"220-" + b"b" * 996 + b"\r\n"
    for _ in range(10_000):  # 10 MB in 1 KB lines, fed as a peer would send them
        found = events(conn, line)
        if found:
            break
    (error,) = found
    assert isinstance(error, ProtocolError) and "reply longer than 65536 bytes" in error.reason
    assert conn.finished and len(conn._reader._buffer) < 70_000  # nothing more is kept


def test_eof_is_closed_and_a_reply_nobody_asked_for_is_an_error() -> None:
    conn = ready(EHLO_PLAIN)
    assert events(conn, b"250 surprise\r\n") == [ProtocolError("a reply nobody asked for: 250")]
    conn = ready(EHLO_PLAIN)
    conn.quit()
    assert events(conn, b"221 bye\r\n") == [Replied("QUIT", Reply(221, None, "bye"))]
    assert events(conn, b"") == [Closed(expected=True)]
    conn = ready(EHLO_PLAIN)
    conn.send_mail(message("b@example.org"))
    assert events(conn, b"") == [Closed(expected=False)]
    assert conn.waiting_for == "MAIL"
    # Replies received before the EOF still count, even when both arrive before next_event().
    conn = ready(EHLO_PLAIN)
    conn.rset()
    conn.receive_data(b"421 4.3.0 shutting down\r\n")
    assert events(conn, b"") == [Replied("RSET", Reply(421, "4.3.0", "shutting down")), Closed(expected=False)]


# --- capabilities and EHLO -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["PIPELINING", "SIZE 35882577", "8BITMIME", "SMTPUTF8", "CHUNKING", "DSN", "STARTTLS",
          "AUTH PLAIN LOGIN XOAUTH2", "REQUIRETLS", "ENHANCEDSTATUSCODES"],
         Capabilities(pipelining=True, size=35882577, eightbitmime=True, smtputf8=True, chunking=True,
                      dsn=True, starttls=True, auth=frozenset({"PLAIN", "LOGIN", "XOAUTH2"}),
                      requiretls=True, enhancedstatuscodes=True)),
        (["pipelining", "size", "auth=login plain"],
         Capabilities(pipelining=True, size=0, auth=frozenset({"LOGIN", "PLAIN"}))),
        (["SIZE nonsense", "X-UNKNOWN 1 2", "", "  ", "-bad", "8BITMIME extra words"],
         Capabilities(size=0, eightbitmime=True)),
        (["SIZE 99999999999999999999999"], Capabilities(size=0)),
    ],
)
def test_capabilities_are_parsed_leniently(lines: list[str], expected: Capabilities) -> None:
    assert parse_capabilities(Reply(250, None, ("mx.example.org", *lines))) == expected


def test_ehlo_refused_falls_back_to_helo_without_extensions() -> None:
    conn = SmtpClientConnection("c.example")
    events(conn, b"220 old server\r\n")
    assert conn.data_to_send() == b"EHLO c.example\r\n"
    assert events(conn, b"502 5.5.2 what?\r\n") == []
    assert conn.data_to_send() == b"HELO c.example\r\n"
    (done,) = events(conn, b"250 old.example\r\n")
    assert done == EhloDone(Reply(250, None, "old.example"), Capabilities(), False)
    conn.send_mail(message("b@example.org"))
    assert conn.data_to_send() == b"MAIL FROM:<a@example.test>\r\n"  # no SIZE= to a HELO peer


def test_a_refused_greeting_sends_nothing() -> None:
    conn = SmtpClientConnection("c.example")
    assert events(conn, b"554 5.7.1 go away\r\n") == [Greeting(Reply(554, "5.7.1", "go away"))]
    assert conn.data_to_send() == b""


def test_starttls_drops_what_came_before_the_handshake_and_says_ehlo_again() -> None:
    conn = ready(EHLO_FULL)
    conn.starttls()
    assert conn.data_to_send() == b"STARTTLS\r\n"
    assert events(conn, b"220 2.0.0 go ahead\r\n") == [StartTlsReply(Reply(220, "2.0.0", "go ahead"))]
    conn.tls_started()
    assert conn.tls and conn.capabilities == Capabilities()
    assert conn.data_to_send() == b"EHLO client.example.test\r\n"
    # An injected reply glued to the 220 is a protocol error, not a reply in TLS.
    conn = ready(EHLO_FULL)
    conn.starttls()
    assert events(conn, b"220 go ahead\r\n250 injected\r\n") == [
        ProtocolError("data after the STARTTLS reply, before the TLS handshake")]


@pytest.mark.parametrize(
    ("mechanism", "dialogue"),
    [
        ("PLAIN", [(b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n", b"235 2.7.0 ok\r\n")]),
        ("LOGIN", [(b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"), (b"dXNlcg==\r\n", b"334 UGFzc3dvcmQ6\r\n"),
                   (b"c2VjcmV0\r\n", b"235 2.7.0 ok\r\n")]),
        # base64 of "user=user\x01auth=Bearer secret\x01\x01"
        ("XOAUTH2", [(b"AUTH XOAUTH2 dXNlcj11c2VyAWF1dGg9QmVhcmVyIHNlY3JldAEB\r\n", b"235 2.7.0 ok\r\n")]),
    ],
)
def test_auth_plain_login_and_xoauth2(mechanism: str, dialogue: list[tuple[bytes, bytes]]) -> None:
    conn = ready(EHLO_FULL)
    conn.authenticate(mechanism, "user", "secret")
    found: list[ClientEvent] = []
    for sent, answer in dialogue:
        assert conn.data_to_send() == sent
        found += events(conn, answer)
    assert found == [AuthDone(Reply(235, "2.7.0", "ok"))]


def test_a_refused_xoauth2_token_gets_the_empty_answer_then_the_final_reply() -> None:
    # Google's way: the error is a 334 challenge (base64 JSON); the client answers with an empty
    # line (not "*"), then the server sends 535; the connection can AUTH again.
    conn = ready(EHLO_FULL)
    conn.authenticate("XOAUTH2", "user", "expired")
    conn.data_to_send()
    assert events(conn, b"334 eyJzdGF0dXMiOiI0MDEifQ==\r\n") == []
    assert conn.data_to_send() == b"\r\n"
    assert events(conn, b"535 5.7.8 Username and Password not accepted\r\n") == [
        AuthDone(Reply(535, "5.7.8", "Username and Password not accepted"))]
    conn.authenticate("XOAUTH2", "user", "fresh")
    assert conn.data_to_send().startswith(b"AUTH XOAUTH2 ")
    assert events(conn, b"235 2.7.0 Accepted\r\n") == [AuthDone(Reply(235, "2.7.0", "Accepted"))]


# --- transactions -------------------------------------------------------------------------------------


def test_pipelining_sends_mail_rcpts_and_data_in_one_flight_with_parameters() -> None:
    conn = ready(EHLO_FULL)
    msg = OutgoingMessage("a@example.test", (OutgoingRecipient("b@example.org", ("SUCCESS", "FAILURE"),
                                                               "rfc822;b+x=y@example.org"),
                                             OutgoingRecipient("c@example.org")),
                          size=500, eight_bit=True, ret="HDRS", envid="id 1+2")
    conn.send_mail(msg)
    assert conn.data_to_send() == (
        b"MAIL FROM:<a@example.test> SIZE=500 BODY=8BITMIME RET=HDRS ENVID=id+201+2B2\r\n"
        b"RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx+3Dy@example.org\r\n"
        b"RCPT TO:<c@example.org>\r\n"
        b"DATA\r\n")
    found = events(conn, b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go\r\n")
    assert found == [ContentWanted()]
    conn.send_content(b"Subject: x\r\n\r\n.dot", last=True)
    assert conn.data_to_send() == b"Subject: x\r\n\r\n..dot\r\n.\r\n"
    assert conn.waiting_for == "end of data"
    (done,) = events(conn, b"250 2.0.0 queued as 1\r\n")
    assert done == TransactionDone((("b@example.org", Reply(250, "2.0.0", "queued as 1")),
                                    ("c@example.org", Reply(550, "5.1.1", "no such user"))))


def test_without_pipelining_each_command_waits_for_its_reply() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send_mail(message("b@example.org", "c@example.org"))
    assert conn.data_to_send() == b"MAIL FROM:<a@example.test> SIZE=10\r\n"
    assert events(conn, b"250 ok\r\n") == [] and conn.data_to_send() == b"RCPT TO:<b@example.org>\r\n"
    assert events(conn, b"250 ok\r\n") == [] and conn.data_to_send() == b"RCPT TO:<c@example.org>\r\n"
    assert events(conn, b"250 ok\r\n") == [] and conn.data_to_send() == b"DATA\r\n"
    assert conn.waiting_for == "DATA"
    assert events(conn, b"354 go\r\n") == [ContentWanted()]


@pytest.mark.parametrize("pipelining", [True, False])
def test_refused_mail_decides_every_recipient(pipelining: bool) -> None:
    conn = ready(EHLO_FULL if pipelining else EHLO_PLAIN)
    conn.send_mail(message("b@example.org", "c@example.org"))
    refusal = Reply(553, "5.7.1", "sender refused")
    answer = b"553 5.7.1 sender refused\r\n" + (b"503 5.5.1 no\r\n" * 3 if pipelining else b"")
    (done,) = events(conn, answer)
    assert done == TransactionDone((("b@example.org", refusal), ("c@example.org", refusal)))
    assert conn.waiting_for is None


def test_no_recipient_accepted_sends_no_data() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send_mail(message("b@example.org"))
    events(conn, b"250 ok\r\n")
    conn.data_to_send()
    (done,) = events(conn, b"450 4.2.1 try later\r\n")
    assert done == TransactionDone((("b@example.org", Reply(450, "4.2.1", "try later")),))
    assert conn.data_to_send() == b""


def test_a_pipelined_354_without_accepted_recipients_gets_an_empty_end() -> None:
    conn = ready(EHLO_FULL)
    conn.send_mail(message("b@example.org"))
    conn.data_to_send()
    assert events(conn, b"250 ok\r\n550 no\r\n354 go\r\n") == []
    assert conn.data_to_send() == b".\r\n"
    (done,) = events(conn, b"554 no valid recipients\r\n")
    assert done == TransactionDone((("b@example.org", Reply(550, None, "no")),))


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_2xx_to_data_is_a_protocol_error_not_a_delivery(pipelining: bool) -> None:
    conn = ready(EHLO_FULL if pipelining else EHLO_PLAIN)
    conn.send_mail(message("b@example.org"))
    conn.data_to_send()
    found = events(conn, b"250 ok\r\n250 ok\r\n" if not pipelining else b"250 ok\r\n250 ok\r\n250 ok\r\n")
    if not pipelining:  # DATA went out after the RCPT reply
        assert conn.data_to_send().endswith(b"\r\nDATA\r\n")
        found = events(conn, b"250 2.0.0 queued\r\n")
    assert found == [ProtocolError("a 250 reply to DATA instead of 354 (the message was not sent)")]
    assert conn.finished and not any(isinstance(e, TransactionDone) for e in found)


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (b"354 go\r\n", "a 354 reply to MAIL, which takes no intermediate reply"),
        (b"250 ok\r\n334 what\r\n", "a 334 reply to RCPT, which takes no intermediate reply"),
        (b"250 ok\r\n250 ok\r\n354 go\r\n", None),  # the one place 354 belongs
    ],
)
def test_intermediate_replies_only_where_they_belong(answers: bytes, reason: str | None) -> None:
    conn = ready(EHLO_FULL)
    conn.send_mail(message("b@example.org"))
    conn.data_to_send()
    found = events(conn, answers)
    assert found == ([ProtocolError(reason)] if reason else [ContentWanted()])


def test_a_3xx_banner_or_end_of_data_reply_is_a_protocol_error() -> None:
    conn = SmtpClientConnection("client.example.test")
    assert events(conn, b"354 hello\r\n") == [
        ProtocolError("a 354 reply to the connection (the banner), which takes no intermediate reply")]
    assert conn.data_to_send() == b""
    conn = ready(EHLO_FULL)
    conn.send_mail(message("b@example.org"))
    events(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    conn.send_content(b"x\r\n", last=True)
    assert events(conn, b"354 again\r\n") == [
        ProtocolError("a 354 reply to the end of data, which takes no intermediate reply")]


@pytest.mark.parametrize(
    ("pieces", "wire"),
    [
        ([b".starts with a dot\r\n"], b"..starts with a dot\r\n.\r\n"),
        ([b"a\r\n", b".b\r\n"], b"a\r\n..b\r\n.\r\n"),
        ([b"a\r", b"\n.b\r\n"], b"a\r\n..b\r\n.\r\n"),  # a CRLF split between pieces
        ([b"a\r\n.", b"b\r\n"], b"a\r\n..b\r\n.\r\n"),
        ([b"no final line end"], b"no final line end\r\n.\r\n"),
        ([b""], b".\r\n"),
        ([b"x\r\n.\r\n", b"y\r\n"], b"x\r\n..\r\ny\r\n.\r\n"),  # smuggled terminator stays content
    ],
)
def test_data_is_dot_stuffed_across_pieces(pieces: list[bytes], wire: bytes) -> None:
    conn = ready(EHLO_FULL)
    conn.send_mail(message("b@example.org"))
    conn.data_to_send()
    assert events(conn, b"250 ok\r\n250 ok\r\n354 go\r\n") == [ContentWanted()]
    sent = b""
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        conn.send_content(piece, last=last)
        assert pending(conn) == ([] if last else [ContentWanted()])
        sent += conn.data_to_send()
    assert sent == wire


def test_bdat_chunks_wait_for_the_recipients_and_for_each_chunk() -> None:
    conn = ready(EHLO_FULL.replace(b"250 STARTTLS", b"250 CHUNKING"))
    conn.send_mail(message("b@example.org", size=7))
    assert conn.data_to_send() == b"MAIL FROM:<a@example.test> SIZE=7\r\nRCPT TO:<b@example.org>\r\n"
    assert events(conn, b"250 ok\r\n250 ok\r\n") == [ContentWanted()]
    conn.send_content(b".abc\r\n", last=False)
    assert conn.data_to_send() == b"BDAT 6\r\n.abc\r\n"  # raw octets: no dot-stuffing in BDAT
    assert events(conn, b"250 2.0.0 6 octets\r\n") == [ContentWanted()]
    conn.send_content(b"x", last=True)
    assert conn.data_to_send() == b"BDAT 1 LAST\r\nx"
    (done,) = events(conn, b"250 2.0.0 queued\r\n")
    assert done == TransactionDone((("b@example.org", Reply(250, "2.0.0", "queued")),))


def test_a_refused_bdat_chunk_ends_the_transaction() -> None:
    conn = ready(b"250-mx\r\n250 CHUNKING\r\n")
    conn.send_mail(message("b@example.org"))
    conn.data_to_send()
    events(conn, b"250 ok\r\n")
    conn.data_to_send()
    assert events(conn, b"250 ok\r\n") == [ContentWanted()]
    conn.send_content(b"abc", last=False)
    conn.data_to_send()
    (done,) = events(conn, b"552 5.3.4 too big\r\n")
    assert done == TransactionDone((("b@example.org", Reply(552, "5.3.4", "too big")),))


def test_rset_and_a_second_message_on_the_same_connection() -> None:
    conn = ready(EHLO_FULL)
    for number in (1, 2):
        if number == 2:
            conn.rset()
            assert events(conn, b"250 2.0.0 ok\r\n") == [Replied("RSET", Reply(250, "2.0.0", "ok"))]
        conn.send_mail(message(f"b{number}@example.org"))
        assert f"RCPT TO:<b{number}@example.org>".encode() in conn.data_to_send()
        assert events(conn, b"250 ok\r\n250 ok\r\n354 go\r\n") == [ContentWanted()]
        conn.send_content(b"body\r\n", last=True)
        conn.data_to_send()
        (done,) = events(conn, b"250 ok\r\n")
        assert isinstance(done, TransactionDone)


@pytest.mark.parametrize(
    ("ehlo", "msg", "reason", "permanent"),
    [
        (EHLO_PLAIN, message("b@example.org", eight_bit=True), "8BITMIME", True),
        (EHLO_PLAIN, message("b@example.org", smtputf8=True), "SMTPUTF8", True),
        (EHLO_FULL, message("b@example.org", size=1001), "accepts at most 1000", True),
        (EHLO_FULL, message("b@example.org", requiretls=True), "REQUIRETLS", False),
        (EHLO_FULL, message("b@example.org", eight_bit=True, smtputf8=True, size=1000), None, None),
    ],
)
def test_what_the_peer_cannot_take_is_refused_before_sending(
        ehlo: bytes, msg: OutgoingMessage, reason: str | None, permanent: bool | None) -> None:
    refusal = ready(ehlo).refusal(msg)
    if reason is None:
        assert refusal is None
    else:
        assert refusal is not None and reason in refusal.reason and refusal.permanent is permanent


def test_smtputf8_is_needed_for_utf8_addresses_and_headers_only() -> None:
    assert needs_smtputf8("a@example.test", ("b@exämple.org",), b"S: x\r\n\r\n")
    assert needs_smtputf8("a@example.test", ("b@example.org",), "Subject: é\r\n\r\nbody".encode())
    assert not needs_smtputf8("a@example.test", ("b@example.org",), "S: x\r\n\r\nbödy".encode())
    conn = ready(EHLO_FULL)
    conn.send_mail(message("b@exämple.org", smtputf8=True))
    assert conn.data_to_send().startswith(b"MAIL FROM:<a@example.test> SIZE=10 SMTPUTF8\r\n")


def test_xtext_encodes_plus_equals_space_and_non_ascii() -> None:
    assert xtext("plain") == "plain"
    assert xtext("a+b=c d\u00e9") == "a+2Bb+3Dc+20d+C3+A9"
