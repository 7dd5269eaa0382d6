"""net/tls_expiry.py: the warnings `serve` logs before a certificate in use expires, from a real
file made here: at the first check, again at each later one (daily in serve), and no more once the
file is renewed."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from postoffice.net.tls_expiry import certificate_status, expiry_warning, watch_certificate_expiry


def write_certificate(path: Path, days: float, name: str = "mail.example.org", *,
                      key_path: Path | None = None) -> None:
    """A self-signed certificate for NAME expiring in DAYS days; its key into KEY_PATH if given."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    after = now + dt.timedelta(days=days)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(min(now, after) - dt.timedelta(days=1)).not_valid_after(after)
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                   .sign(key, hashes.SHA256()))
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    if key_path is not None:
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "postoffice.tls" and r.levelno == logging.WARNING]


def test_a_certificate_expiring_in_ten_days_warns_at_start_and_at_every_check_until_renewed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cert = tmp_path / "cert.pem"
    write_certificate(cert, days=10)

    async def run() -> None:
        watcher = asyncio.ensure_future(watch_certificate_expiry(lambda: [("[tls] cert_file", cert)], every=0.3))
        try:
            async with asyncio.timeout(30):
                while len(warnings(caplog)) < 2:  # the start-up check, then the next "day"
                    await asyncio.sleep(0.05)
                write_certificate(cert, days=90)  # renewed on disk: no restart, no more warnings
                await asyncio.sleep(0.1)  # a check that may have read the old file has logged by now
                seen = len(warnings(caplog))
                await asyncio.sleep(1.0)  # three more checks
                assert len(warnings(caplog)) == seen
        finally:
            watcher.cancel()

    asyncio.run(run())
    first = warnings(caplog)[0]
    assert first.startswith(f"The TLS certificate {cert} ([tls] cert_file) expires in 9 day(s), on "), first
    assert "renew it (certbot renew" in first and "without a restart" in first


def test_what_warns_and_what_does_not(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    write_certificate(cert, days=60)
    fine = certificate_status("[tls] cert_file", cert)
    assert expiry_warning(fine) is None and fine.days_left == 59 and fine.names == ("mail.example.org",)
    assert fine.self_signed
    write_certificate(cert, days=20.5)
    assert "expires in 20 day(s)" in (expiry_warning(certificate_status("[tls] cert_file", cert)) or "")
    write_certificate(cert, days=-2)
    expired = expiry_warning(certificate_status("[tls] cert_file", cert)) or ""
    assert "([tls] cert_file) expired on " in expired and "clients refuse it" in expired
    missing = expiry_warning(certificate_status("[tls] cert_file", tmp_path / "gone.pem")) or ""
    assert "cannot be read" in missing and "does not exist" in missing
