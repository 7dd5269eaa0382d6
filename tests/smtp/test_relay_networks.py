"""`[smtp] relay_networks`: devices that cannot log in (scanners, printers) send through port 25
and the submission port without AUTH or TLS; everyone else is refused as before. Real sockets:
smtplib from 127.0.0.5 (listed) and 127.0.0.6 (not listed) to a live server on 127.0.0.1."""
from __future__ import annotations

import ipaddress
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import LiveServer
from postoffice.store.interface import QueuedMessage

DEVICE, STRANGER = "127.0.0.5", "127.0.0.6"


def start(tmp_path: Path, per_minute: int = 60) -> LiveServer:
    live = LiveServer(
        tmp_path / "data", ["smtp", "submission"],
        smtp={"relay_networks": (ipaddress.ip_network(f"{DEVICE}/32"),), "relay_messages_per_minute": per_minute},
        limits={"max_connections_per_ip": 1000},
    ).start()
    live.add_user("alice@example.test")
    return live


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = start(tmp_path)
    yield live
    live.stop()


def client(server: LiveServer, port: str, source: str) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", server.ports[port], timeout=30, source_address=(source, 0))
    smtp.ehlo("scanner.lan")
    return smtp


def scan(sender: str = "scanner@example.test", to: str = "someone@remote.test") -> bytes:
    # What a scanner sends: no Date, no Message-ID.
    return f"From: Scanner <{sender}>\r\nTo: <{to}>\r\nSubject: Scan 0001\r\n\r\n(a PDF)\r\n".encode()


def queued(server: LiveServer) -> list[QueuedMessage]:
    assert server.services is not None
    return server.call(server.services.store.list_queue())


def queued_bytes(server: LiveServer, entry: QueuedMessage) -> bytes:
    assert server.services is not None
    return server.call(server.services.store.read_blob(entry.blob))


@pytest.mark.parametrize("port", ["smtp", "submission"])
def test_a_listed_device_relays_without_auth_or_tls_queued_signed_and_logged(
        server: LiveServer, events: pytest.LogCaptureFixture, port: str) -> None:
    with client(server, port, DEVICE) as smtp:
        assert smtp.sock.getpeername()[0] != DEVICE  # sanity: we talk to 127.0.0.1
        assert smtp.sock.getsockname()[0] == DEVICE
        refused = smtp.sendmail("scanner@example.test", ["someone@remote.test", "alice@example.test"], scan())
        assert refused == {}
    (entry,) = queued(server)
    assert entry.envelope.sender == "scanner@example.test"
    assert [r.address for r in entry.envelope.recipients] == ["someone@remote.test"]
    assert entry.envelope.auth_account is None
    raw = queued_bytes(server, entry)
    header = raw.split(b"\r\n\r\n")[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    signatures = [line for line in header.split(b"\r\n") if line.lower().startswith(b"dkim-signature:")]
    assert len(signatures) == 2 and all(b"d=example.test" in s for s in signatures), header  # RSA + Ed25519
    assert b"\r\nMessage-ID: <" in header and b"\r\nDate: " in header  # added for the device
    (local,) = server.messages("alice@example.test")
    assert b"Subject: Scan 0001" in local
    lines = [m for m in events.messages if m.startswith("smtp relay")]
    assert len(lines) == 1, events.messages
    assert f"ip={DEVICE}" in lines[0] and "from=scanner@example.test" in lines[0]
    assert "someone@remote.test" in lines[0] and "alice@example.test" in lines[0]
    assert f"queue_row={entry.id}" in lines[0] and "queue_id=" in lines[0]


def test_an_outside_sender_domain_is_relayed_unsigned(server: LiveServer) -> None:
    with client(server, "smtp", DEVICE) as smtp:
        assert smtp.sendmail("printer@vendor.test", ["someone@remote.test"], scan("printer@vendor.test")) == {}
    (entry,) = queued(server)
    assert entry.envelope.sender == "printer@vendor.test"
    assert b"DKIM-Signature:" not in queued_bytes(server, entry)  # not ours to sign


def test_a_device_not_listed_is_refused_as_before(server: LiveServer) -> None:
    with client(server, "smtp", STRANGER) as smtp:
        assert smtp.mail("scanner@example.test")[0] == 250
        code, text = smtp.rcpt("someone@remote.test")
        assert (code, text[:5]) == (554, b"5.7.1") and b"Relay access denied" in text
    with client(server, "submission", STRANGER) as smtp:
        code, text = smtp.mail("scanner@example.test")
        assert (code, text[:5]) == (530, b"5.7.0")
    assert queued(server) == []


def test_past_the_per_minute_limit_mail_is_deferred_with_451(tmp_path: Path,
                                                            events: pytest.LogCaptureFixture) -> None:
    server = start(tmp_path, per_minute=2)
    try:
        with client(server, "smtp", DEVICE) as smtp:
            for _ in range(2):
                assert smtp.sendmail("scanner@example.test", ["someone@remote.test"], scan()) == {}
            code, text = smtp.mail("scanner@example.test")
            assert (code, text[:5]) == (451, b"4.7.1"), (code, text)
            assert b"relay_networks" in text and b"2 a minute" in text and b"try again" in text
        with client(server, "submission", DEVICE) as smtp:  # the count is per address, every port
            code, _ = smtp.mail("scanner@example.test")
            assert code == 451
        # Another address is not held back by the device's count (it is simply not a relay).
        with client(server, "smtp", STRANGER) as smtp:
            assert smtp.mail("someone@remote.test")[0] == 250
            assert smtp.rcpt("alice@example.test")[0] == 250
        assert len(queued(server)) == 2  # nothing beyond the limit was taken
        assert len([m for m in events.messages if m.startswith("smtp relay")]) == 2
    finally:
        server.stop()
