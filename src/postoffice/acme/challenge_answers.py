"""What the CA expects to find when it validates a name: the key authorization (RFC 8555 §8.1),
served as is for HTTP-01 (§8.3), or hashed into a certificate for TLS-ALPN-01 (RFC 8737 §3)."""
from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from postoffice.setup.acme_challenges import AlpnCertificate

__all__ = ["ACME_IDENTIFIER_OID", "key_authorization", "tls_alpn_certificate"]

# RFC 8737 §6.1: id-pe-acmeIdentifier.
ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")


def key_authorization(token: str, thumbprint: str) -> str:
    """RFC 8555 §8.1: the token, a dot, the account key's thumbprint."""
    return f"{token}.{thumbprint}"


def tls_alpn_certificate(name: str, authorization: str) -> AlpnCertificate:
    """A self-signed certificate naming only ``name`` and carrying, in a critical acmeIdentifier
    extension, the SHA-256 of ``authorization`` as a DER OCTET STRING (RFC 8737 §3)."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(authorization.encode("ascii")).digest()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACME challenge")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, b"\x04\x20" + digest),
                       critical=True)
        .sign(key, hashes.SHA256())
    )
    return AlpnCertificate(
        cert_pem=certificate.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
