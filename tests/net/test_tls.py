"""TLS contexts against real handshakes over loopback sockets, plus certificate hot reload."""
from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import os
import socket
import ssl
import stat
import threading
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from postoffice.net.tls import (
    ReloadingServerContext,
    TlsConfigError,
    certificate_expiry,
    create_self_signed_certificate,
    server_context,
)

HOSTNAME = "mail.example.test"


@pytest.fixture
def cert_pair(tmp_path: Path) -> tuple[Path, Path]:
    cert_file, key_file = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    create_self_signed_certificate(cert_file, key_file, HOSTNAME)
    return cert_file, key_file


def serial_of(cert_file: Path) -> int:
    return x509.load_pem_x509_certificate(cert_file.read_bytes()).serial_number


def verifying_client(cert_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert_file))


def lenient_client(*, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client that would accept anything, so only the server's rules decide."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        with warnings.catch_warnings():  # Python deprecates the old versions we need to offer
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = max_version
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let OpenSSL 3 actually send TLS 1.1
    return context


def handshake(server: ssl.SSLContext, client: ssl.SSLContext,
              server_hostname: str | None = None) -> dict[str, object]:
    """One TLS handshake over a socket pair; the server side runs in a thread."""
    server_sock, client_sock = socket.socketpair()
    for sock in (server_sock, client_sock):
        sock.settimeout(10)
    result: dict[str, object] = {}

    def serve() -> None:
        try:
            with server.wrap_socket(server_sock, server_side=True) as tls:
                result["server_version"] = tls.version()
        except (ssl.SSLError, OSError) as error:
            result["server_error"] = error

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(client_sock, server_hostname=server_hostname) as tls:
            result["version"] = tls.version()
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            result["serial"] = x509.load_der_x509_certificate(der).serial_number
    except (ssl.SSLError, OSError) as error:
        result["client_error"] = error
    finally:
        thread.join(10)
        server_sock.close()
        client_sock.close()
    return result


# --- self-signed certificates --------------------------------------------------------------------

def test_self_signed_certificate_names_host_localhost_and_loopback(cert_pair: tuple[Path, Path]
                                                                   ) -> None:
    cert_file, key_file = cert_pair
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    assert san.get_values_for_type(x509.DNSName) == [HOSTNAME, "localhost"]
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(os.listdir(cert_file.parent)) == ["cert.pem", "key.pem"]  # no temp files left


def test_certificate_expiry_is_days_from_now(tmp_path: Path) -> None:
    create_self_signed_certificate(tmp_path / "c.pem", tmp_path / "k.pem", HOSTNAME, days=30)
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    assert abs(certificate_expiry(tmp_path / "c.pem") - expected) < dt.timedelta(minutes=1)


# --- handshakes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("server_hostname", [HOSTNAME, "localhost"])
def test_self_signed_certificate_verifies_in_a_real_handshake(
        cert_pair: tuple[Path, Path], server_hostname: str) -> None:
    result = handshake(server_context(*cert_pair), verifying_client(cert_pair[0]), server_hostname)

    assert result.get("version") in {"TLSv1.2", "TLSv1.3"}, result
    assert result["serial"] == serial_of(cert_pair[0])


def test_client_limited_to_tls_1_2_still_connects(cert_pair: tuple[Path, Path]) -> None:
    result = handshake(server_context(*cert_pair),
                       lenient_client(max_version=ssl.TLSVersion.TLSv1_2))
    assert result.get("version") == "TLSv1.2", result


def test_client_limited_to_tls_1_1_is_refused(cert_pair: tuple[Path, Path]) -> None:
    result = handshake(server_context(*cert_pair),
                       lenient_client(max_version=ssl.TLSVersion.TLSv1_1))

    assert "version" not in result
    assert isinstance(result["client_error"], ssl.SSLError)
    # The refusal comes from the server, not from the client's own OpenSSL settings.
    assert "UNSUPPORTED_PROTOCOL" in str(result["server_error"])


def test_min_version_1_3_refuses_tls_1_2(cert_pair: tuple[Path, Path]) -> None:
    server = server_context(*cert_pair, min_version="1.3")
    refused = handshake(server, lenient_client(max_version=ssl.TLSVersion.TLSv1_2))
    accepted = handshake(server, lenient_client())

    assert "client_error" in refused
    assert accepted.get("version") == "TLSv1.3"


def test_server_context_disables_compression_and_prefers_its_ciphers(
        cert_pair: tuple[Path, Path]) -> None:
    context = server_context(*cert_pair)
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all(c["aead"] and c["kea"] in {"kx-ecdhe", "kx-dhe"} for c in tls12)


# --- configuration errors ------------------------------------------------------------------------

def test_key_from_another_pair_is_a_plain_mismatch_error(tmp_path: Path,
                                                         cert_pair: tuple[Path, Path]) -> None:
    create_self_signed_certificate(tmp_path / "other.pem", tmp_path / "other-key.pem", HOSTNAME)
    with pytest.raises(TlsConfigError, match="does not match the certificate") as caught:
        server_context(cert_pair[0], tmp_path / "other-key.pem")
    assert str(tmp_path / "other-key.pem") in str(caught.value)


def test_missing_files_are_named(tmp_path: Path, cert_pair: tuple[Path, Path]) -> None:
    with pytest.raises(TlsConfigError, match=r"certificate file .*nope\.pem \(\[tls\] cert_file\) does not exist"):
        server_context(tmp_path / "nope.pem", cert_pair[1])
    with pytest.raises(TlsConfigError, match=r"key file .*nope\.pem \(\[tls\] key_file\) does not exist"):
        server_context(cert_pair[0], tmp_path / "nope.pem")


def test_unreadable_key_says_so(tmp_path: Path, cert_pair: tuple[Path, Path]) -> None:
    (tmp_path / "dir.pem").mkdir()  # unreadable even for root, unlike chmod 0
    with pytest.raises(TlsConfigError, match=r"key file .*dir\.pem cannot be read"):
        server_context(cert_pair[0], tmp_path / "dir.pem")


def test_garbage_and_passphrase_keys_are_explained(tmp_path: Path,
                                                   cert_pair: tuple[Path, Path]) -> None:
    (tmp_path / "junk.pem").write_text("hello\n")
    with pytest.raises(TlsConfigError, match="no PEM certificate"):
        server_context(tmp_path / "junk.pem", cert_pair[1])
    with pytest.raises(TlsConfigError, match="no PEM private key"):
        server_context(cert_pair[0], tmp_path / "junk.pem")

    key = serialization.load_pem_private_key(cert_pair[1].read_bytes(), password=None)
    (tmp_path / "locked.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(TlsConfigError, match="passphrase"):
        server_context(cert_pair[0], tmp_path / "locked.pem")


def test_expired_certificate_says_when_and_how_to_fix(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTNAME)])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(1)
                   .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
                   .not_valid_after(dt.datetime(2021, 3, 4, 5, 6, tzinfo=dt.UTC))
                   .sign(key, hashes.SHA256()))
    (tmp_path / "old.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "old-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))

    with pytest.raises(TlsConfigError) as caught:
        server_context(tmp_path / "old.pem", tmp_path / "old-key.pem")
    assert "expired on 2021-03-04 at 05:06 UTC" in str(caught.value)
    assert "certbot renew" in str(caught.value)


def test_combined_certificate_and_key_file_loads(tmp_path: Path,
                                                 cert_pair: tuple[Path, Path]) -> None:
    combined = tmp_path / "combined.pem"
    combined.write_bytes(cert_pair[0].read_bytes() + cert_pair[1].read_bytes())
    assert handshake(server_context(combined, combined), lenient_client()).get("version")


# --- hot reload ----------------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reloading_context_picks_up_a_replaced_certificate(cert_pair: tuple[Path, Path]) -> None:
    clock = FakeClock()
    reloading = ReloadingServerContext(*cert_pair, clock=clock)
    old_serial = serial_of(cert_pair[0])
    assert handshake(reloading.current(), lenient_client())["serial"] == old_serial

    create_self_signed_certificate(*cert_pair, HOSTNAME)  # what a renewal does
    new_serial = serial_of(cert_pair[0])
    assert new_serial != old_serial
    clock.now += 0.5  # checked at most once per second
    assert handshake(reloading.current(), lenient_client())["serial"] == old_serial
    clock.now += 0.6
    assert handshake(reloading.current(), lenient_client())["serial"] == new_serial


def test_broken_replacement_keeps_the_old_context_and_warns_once(
        cert_pair: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    reloading = ReloadingServerContext(*cert_pair, clock=clock)
    before = reloading.current()
    cert_pair[0].write_text("not a certificate\n")

    with caplog.at_level(logging.WARNING, logger="postoffice.net.tls"):
        for _ in range(3):
            clock.now += 2
            assert reloading.current() is before
    assert len([r for r in caplog.records if "no PEM certificate" in r.getMessage()]) == 1
    assert reloading.reload() is False


def test_reload_now_for_sighup(cert_pair: tuple[Path, Path]) -> None:
    reloading = ReloadingServerContext(*cert_pair, clock=FakeClock())
    create_self_signed_certificate(*cert_pair, HOSTNAME)
    assert reloading.reload() is True
    assert handshake(reloading.current(), lenient_client())["serial"] == serial_of(cert_pair[0])


def test_reloading_context_refuses_broken_files_at_start(tmp_path: Path) -> None:
    with pytest.raises(TlsConfigError):
        ReloadingServerContext(tmp_path / "cert.pem", tmp_path / "key.pem")


def test_implicit_tls_listener_serves_the_renewed_certificate(
        cert_pair: tuple[Path, Path]) -> None:
    """asyncio.start_server keeps one context; handshake_context() still follows renewals."""
    clock = FakeClock()
    reloading = ReloadingServerContext(*cert_pair, clock=clock)

    async def peer_serial(port: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=lenient_client())
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        await reader.readexactly(2)
        writer.close()
        await writer.wait_closed()
        return x509.load_der_x509_certificate(der).serial_number

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hi")
        await writer.drain()
        writer.close()

    async def scenario() -> tuple[int, int]:
        server = await asyncio.start_server(greet, "127.0.0.1", 0,
                                            ssl=reloading.handshake_context())
        port = server.sockets[0].getsockname()[1]
        async with server:
            first = await peer_serial(port)
            create_self_signed_certificate(*cert_pair, HOSTNAME)
            clock.now += 1.5
            second = await peer_serial(port)
        return first, second

    first, second = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert first != second
    assert second == serial_of(cert_pair[0])
