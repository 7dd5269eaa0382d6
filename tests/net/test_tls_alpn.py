"""TLS-ALPN-01 (RFC 8737) on the real implicit-TLS listeners: a handshake offering `acme-tls/1`
for a name with a pending challenge gets the challenge certificate; everyone else, the normal one."""
from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from live_server import LiveServer
from postoffice.acme.challenge_answers import ACME_IDENTIFIER_OID, tls_alpn_certificate

NAME = "mail.example.test"
AUTHORIZATION = "token-abc.thumbprint-xyz"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("alpn") / "data", ["imaps", "pop3s", "submissions"],
                        tls={"acme": True}).start()
    assert server.services is not None
    server.services.acme_challenges.put_alpn(NAME, tls_alpn_certificate(NAME, AUTHORIZATION))
    yield server
    server.stop()


def served(port: int, *, alpn: list[str] | None, name: str = NAME) -> tuple[x509.Certificate, str | None]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der), tls.selected_alpn_protocol()


def normal_serial(live: LiveServer) -> int:
    cert_file = Path(live.data_dir / "tls" / "cert.pem")
    return x509.load_pem_x509_certificate(cert_file.read_bytes()).serial_number


@pytest.mark.parametrize("protocol", ["imaps", "pop3s", "submissions"])
def test_validation_handshake_gets_the_acme_identifier_certificate(live: LiveServer,
                                                                   protocol: str) -> None:
    certificate, alpn = served(live.ports[protocol], alpn=["acme-tls/1"])

    assert alpn == "acme-tls/1"
    extension = certificate.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    assert extension.critical
    assert extension.value.value == b"\x04\x20" + hashlib.sha256(AUTHORIZATION.encode()).digest()
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [NAME]


@pytest.mark.parametrize("alpn", [None, ["imap"], ["http/1.1", "h2"]])
def test_normal_clients_get_the_normal_certificate_during_a_challenge(live: LiveServer,
                                                                      alpn: list[str] | None) -> None:
    certificate, selected = served(live.ports["imaps"], alpn=alpn)

    assert certificate.serial_number == normal_serial(live)
    assert selected is None


def test_acme_tls_for_a_name_without_challenge_gets_the_normal_certificate(live: LiveServer) -> None:
    certificate, _ = served(live.ports["imaps"], alpn=["acme-tls/1"], name="other.example.test")

    assert certificate.serial_number == normal_serial(live)


def test_removed_challenge_is_no_longer_answered(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", ["imaps"], tls={"acme": True}).start()
    try:
        assert server.services is not None
        challenges = server.services.acme_challenges
        challenges.put_alpn(NAME, tls_alpn_certificate(NAME, AUTHORIZATION))
        first, _ = served(server.ports["imaps"], alpn=["acme-tls/1"])
        challenges.remove(name=NAME)
        second, _ = served(server.ports["imaps"], alpn=["acme-tls/1"])
    finally:
        server.stop()

    assert first.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    assert second.serial_number == normal_serial(server)


def test_without_acme_no_challenge_is_ever_answered(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", ["imaps"]).start()
    try:
        assert server.services is not None
        server.services.acme_challenges.put_alpn(NAME, tls_alpn_certificate(NAME, AUTHORIZATION))
        certificate, _ = served(server.ports["imaps"], alpn=["acme-tls/1"])
    finally:
        server.stop()

    assert certificate.serial_number == normal_serial(server)
