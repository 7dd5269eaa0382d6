"""The local block and allow lists on a live server's port 25, over real sockets: each refusal's
reply text, allow entries winning, the ports they leave alone, and `postoffice block` in another
process taking effect on the next connection."""
from __future__ import annotations

import logging
import smtplib

import pytest

from cli_run import po
from live_server import LiveServer
from postoffice.store.interface import AccessEntry, AccessKind, AccessListName
from smtp_client import RawSmtp

MESSAGE = b"From: <x@remote.example>\r\nTo: <bob@example.test>\r\nSubject: hi\r\n\r\nHello.\r\n"


def add(server: LiveServer, name: AccessListName, kind: AccessKind, value: str, reason: str = "") -> None:
    assert server.services is not None
    server.call(server.services.store.add_access_entry(AccessEntry(name, kind, value, reason)))


def remove(server: LiveServer, name: AccessListName, value: str) -> None:
    assert server.services is not None
    assert server.call(server.services.store.remove_access_entry(name, value))


def greeted(server: LiveServer, port: str = "smtp") -> RawSmtp:
    raw = RawSmtp(server.ports[port])
    assert raw.greeting[0] == 220, raw.greeting
    assert raw.cmd("EHLO client.remote.example")[0] == 250
    return raw


def test_blocked_ip_gets_554_instead_of_the_greeting_then_503_until_quit(
        server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="postoffice.events")
    add(server, "block", "ip", "127.0.0.1", "spam since June")
    raw = RawSmtp(server.ports["smtp"])
    assert raw.greeting == (554, "554 5.7.1 127.0.0.1 is blocked here: spam since June\r\n")
    code, text = raw.cmd("EHLO client.remote.example")  # RFC 5321 §3.1: 503 to anything but QUIT
    assert code == 503 and "127.0.0.1 is blocked here" in text
    assert raw.cmd("MAIL FROM:<x@remote.example>")[0] == 503
    assert raw.cmd("QUIT")[0] == 221
    assert raw.closed()
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10)
    assert refused.value.smtp_code == 554
    assert any("smtp blocked: protocol=smtp ip=127.0.0.1" in line and "stage=connect entry=\"ip 127.0.0.1\"" in line
               for line in caplog.messages), caplog.messages


def test_blocked_network_refuses_port_25_but_not_submission_or_lmtp(server: LiveServer) -> None:
    add(server, "block", "cidr", "127.0.0.0/8")
    raw = RawSmtp(server.ports["smtp"])
    assert raw.greeting == (554, "554 5.7.1 127.0.0.1 is blocked here\r\n")
    raw.close()
    for port in ("submission", "lmtp"):  # our users, and local delivery we were asked to make
        raw = RawSmtp(server.ports[port])
        assert raw.greeting[0] == 220, port
        raw.close()


def test_blocked_sender_domain_and_its_subdomains_are_refused_at_mail(server: LiveServer) -> None:
    add(server, "block", "domain", "spam.example", "forged mail")
    raw = greeted(server)
    for sender in ("x@spam.example", "X@Mail.SPAM.example"):
        assert raw.cmd(f"MAIL FROM:<{sender}>") == (554, "554 5.7.1 spam.example is blocked here: forged mail\r\n")
    assert raw.cmd("MAIL FROM:<x@notspam.example>")[0] == 250  # a suffix is not a subdomain
    raw.close()


def test_blocked_sender_address_is_refused_at_mail_in_any_case_and_with_detail(server: LiveServer) -> None:
    add(server, "block", "address", "spammer@remote.example")
    raw = greeted(server)
    for sender in ("spammer@remote.example", "Spammer@REMOTE.example", "spammer+x@remote.example"):
        code, text = raw.cmd(f"MAIL FROM:<{sender}>")
        assert (code, text) == (554, "554 5.7.1 spammer@remote.example is blocked here\r\n"), sender
    assert raw.cmd("MAIL FROM:<other@remote.example>")[0] == 250
    raw.close()


def test_blocked_recipient_is_refused_at_rcpt_with_550_and_the_others_get_the_message(server: LiveServer) -> None:
    add(server, "block", "address", "alice@example.test", "receives only spam")
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as client:
        client.ehlo("client.remote.example")
        client.mail("x@remote.example")
        assert client.rcpt("alice@example.test") == (550, b"5.7.1 alice@example.test is blocked here: receives only spam")
        assert client.rcpt("bob@example.test")[0] == 250
        client.data(MESSAGE)
    assert len(server.messages("bob@example.test")) == 1
    assert server.messages("alice@example.test") == []


def test_allow_entries_win_over_block_entries(server: LiveServer) -> None:
    add(server, "block", "cidr", "127.0.0.0/8")
    add(server, "allow", "ip", "127.0.0.1")
    add(server, "block", "domain", "partner.example")
    add(server, "allow", "address", "billing@partner.example")
    raw = greeted(server)  # the allowed IP inside the blocked network
    raw.close()
    remove(server, "allow", "127.0.0.1")
    raw = RawSmtp(server.ports["smtp"])
    assert raw.greeting[0] == 554
    raw.close()
    remove(server, "block", "127.0.0.0/8")
    raw = greeted(server)
    assert raw.cmd("MAIL FROM:<billing@partner.example>")[0] == 250  # an allowed sender of a blocked domain
    assert raw.cmd("RSET")[0] == 250
    assert raw.cmd("MAIL FROM:<sales@partner.example>")[0] == 554
    raw.close()


def test_block_command_takes_effect_on_the_next_connection_of_a_running_server(server: LiveServer) -> None:
    data = server.data_dir
    greeted(server).close()  # the server has read the (empty) lists already
    po("block", "add", "127.0.0.1", "--reason", "seen in a botnet", data=data)
    assert RawSmtp(server.ports["smtp"]).greeting == (554, "554 5.7.1 127.0.0.1 is blocked here: seen in a botnet\r\n")
    po("block", "remove", "127.0.0.1", data=data)
    raw = greeted(server)
    po("block", "add", "remote.example", data=data)
    po("allow", "add", "friend@remote.example", data=data)
    raw.close()
    raw = greeted(server)
    assert raw.cmd("MAIL FROM:<foe@remote.example>")[0] == 554
    assert raw.cmd("MAIL FROM:<friend@remote.example>")[0] == 250
    raw.close()
    listed = po("block", "list", "--json", data=data).stdout
    assert '"value": "remote.example"' in listed and '"kind": "domain"' in listed
    ours = po("block", "add", "Alice@Example.TEST", "--reason", "spam trap", data=data)
    assert "alice@example.test is served here" in ours.stderr  # a warning: the admin may not mean it
    raw = greeted(server)
    assert raw.cmd("MAIL FROM:<x@other.example>")[0] == 250
    assert raw.cmd("RCPT TO:<alice@example.test>") == (550, "550 5.7.1 alice@example.test is blocked here: spam trap\r\n")
    raw.close()
