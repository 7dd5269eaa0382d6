"""REQUIRETLS (RFC 8689 §4) on our SMTP server: offered and accepted only under TLS, on port 25
and on submission, and kept on the queued message for the outbound client."""
from __future__ import annotations

import smtplib
import ssl

import pytest

from live_server import PASSWORD, LiveServer
from postoffice.smtp.proto.grammar import ParseError, parse_mail_from


def tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def test_the_parameter_is_recognised_only_where_the_extension_is_offered() -> None:
    address, params = parse_mail_from("FROM:<a@example.org> REQUIRETLS", requiretls_allowed=True)
    assert address == "a@example.org" and params.requiretls
    with pytest.raises(ParseError) as refused:
        parse_mail_from("FROM:<a@example.org> REQUIRETLS")
    assert (refused.value.reply.code, refused.value.reply.enhanced) == (555, "5.5.4")
    with pytest.raises(ParseError):
        parse_mail_from("FROM:<a@example.org> REQUIRETLS=YES", requiretls_allowed=True)  # takes no value


@pytest.mark.parametrize("listener", ["smtp", "submission"])
def test_requiretls_is_offered_and_accepted_only_under_tls(server: LiveServer, listener: str) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports[listener], timeout=10) as client:
        client.ehlo("client.example.test")
        assert not client.has_extn("requiretls")
        if listener == "smtp":
            code, _ = client.mail("someone@remote.example", ["REQUIRETLS"])
            assert code == 555  # RFC 8689 §4: not in a session without TLS
            client.rset()
        client.starttls(context=tls_context())
        client.ehlo("client.example.test")
        assert client.has_extn("requiretls")
        if listener == "submission":
            client.login("alice@example.test", PASSWORD)
        code, _ = client.mail("alice@example.test" if listener == "submission" else "someone@remote.example",
                              ["REQUIRETLS"])
        assert code == 250


def test_submission_keeps_requiretls_on_the_queued_message(server: LiveServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=10) as client:
        client.starttls(context=tls_context())
        client.ehlo("laptop.example.test")
        client.login("alice@example.test", PASSWORD)
        for subject, options in (("required", ["REQUIRETLS"]), ("plain", [])):
            letter = f"From: <alice@example.test>\r\nTo: <carol@remote.example>\r\nSubject: {subject}\r\n\r\nHi.\r\n"
            assert client.sendmail("alice@example.test", ["carol@remote.example"], letter.encode(),
                                   mail_options=options) == {}
    queued = server.call(server.services.store.list_queue())  # type: ignore[union-attr]
    assert [q.envelope.requiretls for q in queued] == [True, False]
