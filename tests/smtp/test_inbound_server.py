"""Port 25 (the MX) over real sockets: smtplib for the rules, raw bytes for hostile input."""
from __future__ import annotations

import smtplib
import ssl
import time

import pytest

from live_server import LiveServer
from smtp_client import RawSmtp

MESSAGE = b"From: Sender <sender@remote.example>\r\nTo: alice@example.test\r\nSubject: hello\r\n\r\nHello Alice.\r\n"


def smtp(server: LiveServer) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10)
    client.ehlo("client.remote.example")
    return client


def test_ehlo_offers_the_extensions_and_no_auth_on_the_mx(server: LiveServer) -> None:
    with smtp(server) as client:
        for extension in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes",
                          "starttls", "chunking", "binarymime", "dsn"):
            assert client.has_extn(extension), extension
        assert client.esmtp_features["size"] == "1000000"
        assert not client.has_extn("auth")


def test_local_delivery_adds_received_and_return_path(server: LiveServer) -> None:
    with smtp(server) as client:
        refused = client.sendmail("sender@remote.example", ["alice@example.test"], MESSAGE)
        assert refused == {}
    (stored,) = server.messages("alice@example.test")
    assert stored.startswith(b"Return-Path: <sender@remote.example>\r\nAuthentication-Results: mail.example.test;")
    # The mail authentication fields of port 25 sit above this hop's Received (RFC 8601 §5).
    assert b"\r\nReceived: from client.remote.example ([127.0.0.1])" in stored.split(b"\r\nFrom: ")[0]
    assert b"with ESMTP id " in stored and b"for <alice@example.test>;" in stored
    assert stored.endswith(MESSAGE)


def test_unknown_user_is_refused_at_rcpt(server: LiveServer) -> None:
    with smtp(server) as client:
        client.mail("sender@remote.example")
        code, text = client.rcpt("nobody@example.test")
        assert (code, text[:5]) == (550, b"5.1.1")


@pytest.mark.parametrize(
    ("recipient", "code", "enhanced"),
    [
        ("someone@remote.example", 554, b"5.7.1"),
        ("<@example.test:someone@remote.example>", 554, b"5.7.1"),  # source route: the final address counts
        ("someone%remote.example@example.test", 550, b"5.1.1"),  # % is just a local part here
        ("remote.example!someone@example.test", 550, b"5.1.1"),
        ("alice@example.test.remote.example", 554, b"5.7.1"),
    ],
)
def test_never_an_open_relay(server: LiveServer, recipient: str, code: int, enhanced: bytes) -> None:
    raw = RawSmtp(server.ports["smtp"])
    assert raw.cmd("EHLO c.example")[0] == 250
    assert raw.cmd("MAIL FROM:<x@remote.example>")[0] == 250
    got, text = raw.cmd(f"RCPT TO:{recipient if recipient.startswith('<') else '<' + recipient + '>'}")
    assert got == code and enhanced.decode() in text
    raw.close()


def test_null_sender_and_postmaster_are_accepted(server: LiveServer) -> None:
    raw = RawSmtp(server.ports["smtp"])
    raw.cmd("EHLO c.example")
    assert raw.cmd("MAIL FROM:<>")[0] == 250
    assert raw.cmd("RCPT TO:<postmaster@example.test>")[0] == 250
    assert raw.cmd("RCPT TO:<Postmaster>")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    code, _ = raw.cmd(b"Subject: bounce\r\n\r\nundeliverable\r\n.")
    assert code == 250
    raw.close()
    assert any(b"undeliverable" in m for m in server.messages("alice@example.test"))


def test_vrfy_never_reveals_users_and_help_answers(server: LiveServer) -> None:
    with smtp(server) as client:
        assert client.verify("alice@example.test")[0] == 252
        assert client.verify("nobody@example.test")[0] == 252
        assert client.docmd("HELP")[0] == 214


def test_command_sequence_errors(server: LiveServer) -> None:
    raw = RawSmtp(server.ports["smtp"])
    assert raw.cmd("MAIL FROM:<a@remote.example>")[0] == 503  # before EHLO
    raw.cmd("EHLO c.example")
    assert raw.cmd("RCPT TO:<alice@example.test>")[0] == 503  # before MAIL
    assert raw.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    assert raw.cmd("DATA")[0] in (503, 554)  # no recipient yet
    assert raw.cmd("RSET")[0] == 250
    assert raw.cmd("RCPT TO:<alice@example.test>")[0] == 503  # RSET ended the transaction
    assert raw.cmd("NOSUCHCOMMAND")[0] == 500
    assert raw.cmd("QUIT")[0] == 221
    raw.close()


def test_size_is_announced_and_enforced(server: LiveServer) -> None:
    raw = RawSmtp(server.ports["smtp"])
    raw.cmd("EHLO c.example")
    code, text = raw.cmd("MAIL FROM:<a@remote.example> SIZE=2000000")
    assert code == 552 and "5.3.4" in text
    assert raw.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    assert raw.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    line = b"x" * 998 + b"\r\n"
    for _ in range(1200):  # 1.2 MB, over the 1 MB limit
        raw.send(line)
    code, text = raw.cmd(b".")
    assert code == 552 and "5.3.4" in text
    assert raw.cmd("NOOP")[0] == 250  # the session goes on
    raw.close()
    assert server.messages("alice@example.test") == []


def test_too_many_recipients(server: LiveServer) -> None:
    raw = RawSmtp(server.ports["smtp"])
    raw.cmd("EHLO c.example")
    raw.cmd("MAIL FROM:<a@remote.example>")
    codes = [raw.cmd("RCPT TO:<alice@example.test>")[0] for _ in range(61)]
    assert codes[:60] == [250] * 60 and codes[60] == 452
    raw.close()


def test_fifty_recipients_store_one_blob(server: LiveServer) -> None:
    for i in range(50):
        server.add_user(f"user{i}@example.test")
    with smtp(server) as client:
        client.sendmail("a@remote.example", [f"user{i}@example.test" for i in range(50)], MESSAGE)
    assert all(len(server.messages(f"user{i}@example.test")) == 1 for i in range(50))
    blobs = server.services.store.blobs  # type: ignore[union-attr]
    assert len(list(blobs.all_hashes())) == 1


def test_long_command_line_is_refused_and_the_session_continues(server: LiveServer) -> None:
    raw = RawSmtp(server.ports["smtp"])
    raw.cmd("EHLO c.example")
    code, text = raw.cmd(b"NOOP " + b"a" * 10000)
    assert code == 500 and "5.5.2" in text
    assert raw.cmd("NOOP")[0] == 250
    raw.close()


def test_too_many_errors_end_the_connection_with_421(server: LiveServer) -> None:
    raw = RawSmtp(server.ports["smtp"])
    codes = [raw.cmd(f"BOGUS{i}")[0] for i in range(9)]
    assert codes == [500] * 9
    raw.send(b"BOGUS\r\n")
    assert raw.reply()[0] == 500
    assert raw.reply()[0] == 421
    assert raw.closed()


def test_pipelined_commands_are_answered_in_order(server: LiveServer) -> None:
    raw = RawSmtp(server.ports["smtp"])
    raw.cmd("EHLO c.example")
    raw.send(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\n"
             b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
    assert [raw.reply()[0] for _ in range(5)] == [250, 250, 550, 250, 354]
    assert raw.cmd(b"Subject: piped\r\n\r\nbody\r\n.")[0] == 250
    raw.close()
    assert len(server.messages("alice@example.test")) == 1 and len(server.messages("bob@example.test")) == 1


@pytest.mark.parametrize("smuggle", [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r\n.\r", b"\n.\r"])
def test_smuggled_end_of_data_never_ends_the_message(server: LiveServer, smuggle: bytes) -> None:
    raw = RawSmtp(server.ports["smtp"])
    raw.cmd("EHLO c.example")
    raw.cmd("MAIL FROM:<a@remote.example>")
    raw.cmd("RCPT TO:<alice@example.test>")
    assert raw.cmd("DATA")[0] == 354
    raw.send(b"Subject: outer\r\n\r\nfirst part" + smuggle +
             b"MAIL FROM:<evil@remote.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n")
    code, _ = raw.cmd(b".")
    assert code == 250
    assert raw.cmd("QUIT")[0] == 221
    raw.close()
    (stored,) = server.messages("alice@example.test")
    assert b"MAIL FROM:<evil@remote.example>" in stored  # content, not a command
    assert server.messages("bob@example.test") == []


def test_starttls_discards_commands_injected_before_the_handshake(server: LiveServer) -> None:
    raw = RawSmtp(server.ports["smtp"])
    raw.cmd("EHLO c.example")
    raw.send(b"STARTTLS\r\nMAIL FROM:<injected@remote.example>\r\n")  # CVE-2011-0411
    assert raw.reply()[0] == 220
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    raw.sock = context.wrap_socket(raw.sock)
    raw.buffer = b""
    # Had the injected MAIL survived, this would be a second MAIL (503) or skip EHLO.
    assert raw.cmd("MAIL FROM:<a@remote.example>")[0] == 503  # EHLO is required again
    assert raw.cmd("EHLO c.example")[0] == 250
    assert raw.cmd("MAIL FROM:<a@remote.example>")[0] == 250
    raw.close()


def test_starttls_with_smtplib_and_tls_in_received(server: LiveServer) -> None:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with smtp(server) as client:
        client.starttls(context=context)
        client.ehlo("client.remote.example")
        assert not client.has_extn("starttls")
        client.sendmail("a@remote.example", ["alice@example.test"], MESSAGE)
    (stored,) = server.messages("alice@example.test")
    assert b"with ESMTPS id" in stored and b"(version=TLSv1.3 cipher=" in stored


def test_bdat_chunking_with_binary_content(server: LiveServer) -> None:
    raw = RawSmtp(server.ports["smtp"])
    raw.cmd("EHLO c.example")
    raw.cmd("MAIL FROM:<a@remote.example> BODY=BINARYMIME")
    raw.cmd("RCPT TO:<alice@example.test>")
    part1 = b"Subject: chunks\r\n\r\nline one\r\n.\r\nnot the end\r\n"
    part2 = b"\x00\xffbinary\r\n"
    assert raw.cmd(b"BDAT %d\r\n" % len(part1) + part1[:-2])[0] == 250
    assert raw.cmd(b"BDAT %d LAST\r\n" % len(part2) + part2[:-2])[0] == 250
    raw.close()
    (stored,) = server.messages("alice@example.test")
    assert stored.endswith(part1 + part2)


def test_dsn_parameters_are_accepted(server: LiveServer) -> None:
    raw = RawSmtp(server.ports["smtp"])
    raw.cmd("EHLO c.example")
    assert raw.cmd("MAIL FROM:<a@remote.example> RET=HDRS ENVID=QQ314159")[0] == 250
    assert raw.cmd("RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@example.test")[0] == 250
    assert raw.cmd("RCPT TO:<bob@example.test> NOTIFY=NEVER,SUCCESS")[0] == 501
    raw.close()


def test_idle_timeout_closes_with_421(tmp_path) -> None:
    live = LiveServer(tmp_path / "data", ["smtp"], smtp={"command_timeout": 1.0}).start()
    try:
        raw = RawSmtp(live.ports["smtp"])
        started = time.monotonic()
        code, text = raw.reply()
        assert code == 421 and "4.4.2" in text
        assert 0.9 < time.monotonic() - started < 5
        assert raw.closed()
    finally:
        live.stop()


def test_connections_per_ip_are_limited(tmp_path) -> None:
    live = LiveServer(tmp_path / "data", ["smtp"], limits={"max_connections_per_ip": 3}).start()
    try:
        clients = [RawSmtp(live.ports["smtp"]) for _ in range(3)]
        assert all(c.greeting[0] == 220 for c in clients)
        extra = RawSmtp(live.ports["smtp"])
        assert extra.greeting[0] == 421
        clients[0].cmd("QUIT")
        clients[0].close()
        time.sleep(0.2)
        again = RawSmtp(live.ports["smtp"])
        assert again.greeting[0] == 220
        for client in [*clients[1:], extra, again]:
            client.close()
    finally:
        live.stop()


def test_a_message_is_parsed_once_the_spam_stage_parse_is_what_the_store_keeps(
        server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spam score's parse (moved by the fields it inserts and by Return-Path) is what the
    store records: no second parse of the message on its way in (a tenth of what a message
    costs to receive); tests/message/test_parse_with_fields_inserted.py holds the two equal."""
    import postoffice.store.indexing as indexing

    parses: list[int] = []
    real = indexing.parse_message
    monkeypatch.setattr(indexing, "parse_message", lambda raw: parses.append(len(raw)) or real(raw))
    raw = RawSmtp(server.ports["smtp"])
    raw.cmd("EHLO c.example")
    assert raw.cmd("MAIL FROM:<x@remote.example>")[0] == 250
    assert raw.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert raw.cmd("RCPT TO:<bob@example.test>")[0] == 250
    assert raw.cmd("DATA")[0] == 354
    code, _ = raw.cmd(b"From: x@remote.example\r\nSubject: once\r\nMIME-Version: 1.0\r\n"
                      b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
                      b"parsed once\r\n--b--\r\n.")
    assert code == 250
    raw.close()
    stored = [m for m in server.messages("alice@example.test") if b"parsed once" in m]
    assert len(stored) == 1 and b"X-Spam-Score" in stored[0] and stored[0].startswith(b"Return-Path:")
    assert parses == []
