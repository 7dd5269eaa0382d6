"""Certificates for the TLS diagnostics tests: a root CA and an intermediate CA of the test's own,
and server certificates issued by the intermediate in every state `check tls` must tell apart.

    pki = TestPki(tmp_path)                        # pki.ca_file: root + intermediate, for --ca-file
    cert, key = pki.server("mx.example.test")      # full chain (leaf, then intermediate)
    cert, key = pki.server("mx.example.test", chain=False)        # the intermediate left out
    cert, key = pki.server("mx.example.test", days=10)            # expiring in 10 days
    cert, key = pki.server("mx.example.test", expired=True)       # expired yesterday
    cert, key = pki.server("other.example.test")                  # the wrong name for mx.example.test

The extensions are the ones a public CA sets (key identifiers, basic constraints, key usage,
serverAuth), so OpenSSL builds and verifies the chain exactly as it would a real one.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_PEM = serialization.Encoding.PEM


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                         crl_sign=True, encipher_only=False, decipher_only=False)


class TestPki:
    """A root, an intermediate under it, and server certificates under the intermediate."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        root_public = self.root_key.public_key()
        self.root = (x509.CertificateBuilder().subject_name(_name("postoffice test root"))
                     .issuer_name(_name("postoffice test root")).public_key(root_public)
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(days=30)).not_valid_after(now + dt.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(_ca_usage(), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_public), critical=False)
                     .sign(self.root_key, hashes.SHA256()))
        self.intermediate_key = ec.generate_private_key(ec.SECP256R1())
        public = self.intermediate_key.public_key()
        self.intermediate = (
            x509.CertificateBuilder().subject_name(_name("postoffice test intermediate"))
            .issuer_name(self.root.subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=30)).not_valid_after(now + dt.timedelta(days=1825))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_public), critical=False)
            .sign(self.root_key, hashes.SHA256()))
        self.root_file = directory / "root.pem"
        self.root_file.write_bytes(self.root.public_bytes(_PEM))
        # What a client that knows the intermediate has: enough to prove a chain incomplete.
        self.ca_file = directory / "ca-bundle.pem"
        self.ca_file.write_bytes(self.root.public_bytes(_PEM) + self.intermediate.public_bytes(_PEM))

    def server(self, *names: str, days: int = 90, expired: bool = False,
               chain: bool = True) -> tuple[Path, Path]:
        """(certificate file, key file) for ``names``; the certificate file holds the leaf and,
        with ``chain``, the intermediate after it (certbot's fullchain.pem)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        start, end = ((now - dt.timedelta(days=60), now - dt.timedelta(days=1)) if expired
                      else (now - dt.timedelta(days=1), now + dt.timedelta(days=days)))
        issuer_public = self.intermediate_key.public_key()
        cert = (x509.CertificateBuilder().subject_name(_name(names[0]))
                .issuer_name(self.intermediate.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False)
                .sign(self.intermediate_key, hashes.SHA256()))
        stem = f"{names[0]}-{days}{'-expired' if expired else ''}{'' if chain else '-leaf'}"
        cert_file, key_file = self.dir / f"{stem}.crt", self.dir / f"{stem}.key"
        pem = cert.public_bytes(_PEM) + (self.intermediate.public_bytes(_PEM) if chain else b"")
        cert_file.write_bytes(pem)
        key_file.write_bytes(key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_file.chmod(0o600)
        return cert_file, key_file
