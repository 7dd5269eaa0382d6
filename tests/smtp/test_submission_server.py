"""Submission (587 STARTTLS, 465 implicit TLS; RFC 6409, RFC 8314) and LMTP (RFC 2033)."""
from __future__ import annotations

import base64
import smtplib
import ssl
import time
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer
from smtp_client import RawSmtp


def tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def submit(server: LiveServer, *, implicit: bool = False) -> smtplib.SMTP:
    if implicit:
        client: smtplib.SMTP = smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=tls_context(), timeout=10)
    else:
        client = smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=10)
        client.starttls(context=tls_context())
    client.ehlo("laptop.example.test")
    return client


def letter(sender: str = "alice@example.test", to: str = "bob@example.test", extra: str = "") -> bytes:
    return f"From: Alice <{sender}>\r\nTo: {to}\r\nSubject: hi\r\n{extra}\r\nHello.\r\n".encode()


def test_mail_requires_auth(server: LiveServer) -> None:
    with submit(server) as client:
        assert "PLAIN" in client.esmtp_features["auth"] and "LOGIN" in client.esmtp_features["auth"]
        code, text = client.mail("alice@example.test")
        assert code == 530 and text.startswith(b"5.7.0")


def test_starttls_auth_plain_local_and_remote_recipients(server: LiveServer) -> None:
    with submit(server) as client:
        client.login("alice@example.test", PASSWORD)
        refused = client.sendmail("alice@example.test", ["bob@example.test", "carol@remote.example"], letter())
        assert refused == {}
    (stored,) = server.messages("bob@example.test")
    assert b"Message-ID: <" in stored and b"\r\nDate: " in stored  # added: the client sent none
    assert b"with ESMTPSA id" in stored
    assert b"authenticated as" not in stored  # not shown unless configured
    queued = server.call(server.services.store.list_queue())  # type: ignore[union-attr]
    assert [r.address for r in queued[0].envelope.recipients] == ["carol@remote.example"]
    assert queued[0].envelope.auth_account is not None


def test_implicit_tls_on_465_with_auth_login(server: LiveServer) -> None:
    with submit(server, implicit=True) as client:
        client.user, client.password = "alice@example.test", PASSWORD
        code, _ = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        assert code == 235
        client.sendmail("alice@example.test", ["bob@example.test"], letter())
    assert len(server.messages("bob@example.test")) == 1


def test_sender_and_from_header_must_belong_to_the_user(server: LiveServer) -> None:
    with submit(server) as client:
        client.login("alice@example.test", PASSWORD)
        code, text = client.mail("bob@example.test")
        assert code == 553 and text.startswith(b"5.7.1")
        client.rset()
        assert client.mail("alice@example.test")[0] == 250
        assert client.rcpt("bob@example.test")[0] == 250
        code, text = client.data(letter(sender="bob@example.test"))
        assert code == 553 and text.startswith(b"5.7.1")
    assert server.messages("bob@example.test") == []


def test_alias_and_detail_addresses_may_be_used_as_sender(server: LiveServer) -> None:
    server.call(server.services.directory.add_alias("sales@example.test", ["alice@example.test"]))  # type: ignore[union-attr]
    with submit(server) as client:
        client.login("alice@example.test", PASSWORD)
        client.sendmail("sales@example.test", ["bob@example.test"], letter(sender="sales@example.test"))
        client.sendmail("alice+news@example.test", ["bob@example.test"], letter(sender="alice+news@example.test"))
    assert len(server.messages("bob@example.test")) == 2


def test_failed_auth_is_refused_and_slowed_down(server: LiveServer) -> None:
    raw = RawSmtp(server.ports["submission"])
    raw.cmd("EHLO laptop.example.test")
    wrong = base64.b64encode(b"\0alice@example.test\0wrong password!").decode()
    timings = []
    for _ in range(3):
        started = time.monotonic()
        code, text = raw.cmd(f"AUTH PLAIN {wrong}")
        assert code == 535 and "5.7.8" in text
        timings.append(time.monotonic() - started)
    assert timings[0] >= 0.18 and timings[1] >= 0.38 and timings[2] >= 0.78  # doubling per failure
    right = base64.b64encode(b"\0alice@example.test\0" + PASSWORD.encode()).decode()
    assert raw.cmd(f"AUTH PLAIN {right}")[0] == 235  # the right password still works
    raw.close()


def test_auth_plain_with_initial_response_and_cancel(server: LiveServer) -> None:
    raw = RawSmtp(server.ports["submission"])
    raw.cmd("EHLO laptop.example.test")
    assert raw.cmd("AUTH PLAIN")[0] == 334
    assert raw.cmd("*")[0] == 501
    token = base64.b64encode(b"\0alice@example.test\0" + PASSWORD.encode()).decode()
    assert raw.cmd(f"AUTH PLAIN {token}")[0] == 235
    assert raw.cmd("AUTH PLAIN")[0] == 503  # already authenticated
    raw.close()


def test_no_auth_without_tls_when_loopback_plaintext_is_off(tmp_path) -> None:
    live = LiveServer(tmp_path / "data", ["submission"], auth={"plaintext_on_loopback": False}).start()
    try:
        raw = RawSmtp(live.ports["submission"])
        _, ehlo = raw.cmd("EHLO laptop.example.test")
        assert "AUTH" not in ehlo and "STARTTLS" in ehlo
        code, text = raw.cmd("AUTH PLAIN AGFsaWNlAHBhc3M=")
        assert code == 538 and "5.7.11" in text
        raw.starttls()
        raw.buffer = b""
        _, ehlo = raw.cmd("EHLO laptop.example.test")
        assert "AUTH PLAIN LOGIN" in ehlo
        raw.close()
    finally:
        live.stop()


def test_auth_is_not_offered_on_the_mx(server: LiveServer) -> None:
    raw = RawSmtp(server.ports["smtp"])
    raw.cmd("EHLO c.example")
    assert raw.cmd("AUTH PLAIN AGFsaWNlAHBhc3M=")[0] in (502, 503)
    raw.close()


def test_lmtp_answers_per_recipient(server: LiveServer) -> None:
    server.add_user("full@example.test", quota=10)
    raw = RawSmtp(server.ports["lmtp"])
    assert raw.cmd("LHLO mta.example.test")[0] == 250
    raw.cmd("MAIL FROM:<a@remote.example>")
    assert raw.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert raw.cmd("RCPT TO:<full@example.test>")[0] == 250
    assert raw.cmd("RCPT TO:<nobody@example.test>")[0] == 550
    assert raw.cmd("DATA")[0] == 354
    raw.send(b"Subject: lmtp\r\n\r\nbody\r\n.\r\n")
    first, second = raw.reply(), raw.reply()
    assert first[0] == 250 and "2.1.5" in first[1]
    assert second[0] == 452 and "4.2.2" in second[1]  # over quota: only this recipient fails
    raw.close()
    assert len(server.messages("alice@example.test")) == 1
    assert server.messages("full@example.test") == []


def test_lmtp_on_a_unix_socket(server: LiveServer, tmp_path) -> None:
    import socket

    from postoffice.app import LISTENER_FACTORIES
    from postoffice.config import UnixAddress

    path = tmp_path / "run" / "lmtp.sock"
    listener = server.call(LISTENER_FACTORIES["lmtp"](server.services, UnixAddress(path)))  # type: ignore[arg-type]
    try:
        assert listener.address == f"unix:{path}"
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(path))
        sock.settimeout(10)
        replies = b""

        def read_until(marker: bytes) -> None:
            nonlocal replies
            while marker not in replies:
                replies += sock.recv(65536)

        read_until(b"220 ")
        sock.sendall(b"LHLO mta.example.test\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        read_until(b"354 ")
        sock.sendall(b"Subject: unix\r\n\r\nvia socket\r\n.\r\nQUIT\r\n")
        read_until(b"221 ")
        sock.close()
        assert b"250 2.1.5" in replies
        (stored,) = server.messages("bob@example.test")
        assert b"(local unix socket)" in stored and b"with LMTP" in stored
    finally:
        server.call(listener.close())


def test_received_names_the_user_only_when_configured(tmp_path) -> None:
    live = LiveServer(tmp_path / "data", ["submission"], smtp={"received_shows_user": True}).start()
    try:
        live.add_user("alice@example.test")
        with submit(live) as client:
            client.login("alice@example.test", PASSWORD)
            client.sendmail("alice@example.test", ["alice@example.test"], letter(to="alice@example.test"))
        (stored,) = live.messages("alice@example.test")
        assert b"(authenticated as alice@example.test)" in stored
    finally:
        live.stop()


def test_logins_per_user_and_address_are_limited_on_submission(tmp_path: Path) -> None:
    """[limits] max_userip_connections holds for submission (587 and 465 together): one login
    too many is a temporary failure (RFC 4954 §6), and the connection may try again later."""
    live = LiveServer(tmp_path / "data", ["submission", "submissions"],
                      limits={"max_userip_connections": 2}).start()
    try:
        live.add_user("alice@example.test")
        live.add_user("bob@example.test")
        first, second = submit(live), submit(live, implicit=True)
        first.login("alice@example.test", PASSWORD)
        second.login("alice@example.test", PASSWORD)
        third = submit(live)
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            third.login("alice@example.test", PASSWORD)
        assert refused.value.smtp_code == 454
        assert refused.value.smtp_error == (b"4.7.0 Maximum number of connections from user+IP"
                                            b" exceeded (max_userip_connections=2)")
        third.login("bob@example.test", PASSWORD)  # another user: its own count
        assert third.sendmail("bob@example.test", ["alice@example.test"], letter("bob@example.test")) == {}
        second.quit()
        fourth = submit(live)
        fourth.login("alice@example.test", PASSWORD)  # one of alice's two has gone
        for client in (first, third, fourth):
            client.quit()
    finally:
        live.stop()


def test_mail_leaving_for_other_servers_is_dkim_signed_once_in_the_queue(server: LiveServer) -> None:
    with submit(server) as client:
        client.login("alice@example.test", PASSWORD)
        assert client.sendmail("alice@example.test", ["carol@remote.example"], letter(to="carol@remote.example")) == {}
    store = server.services.store  # type: ignore[union-attr]
    (queued,) = server.call(store.list_queue())
    raw = server.call(store.read_blob(queued.blob, queued.size))
    head = raw.split(b"\r\n\r\n", 1)[0]
    signatures = (b"\r\n" + head).split(b"\r\nDKIM-Signature:")[1:]
    algorithms = sorted(s.split(b"a=", 1)[1].split(b";", 1)[0].decode() for s in signatures)
    assert algorithms == ["ed25519-sha256", "rsa-sha256"], head
    assert all(b"d=example.test" in s for s in signatures)
    assert head.startswith(b"DKIM-Signature:") and b"\r\nReceived:" in head  # on top: signs what is sent
