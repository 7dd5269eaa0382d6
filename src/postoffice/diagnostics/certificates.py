"""What a certificate says, for the diagnostics: names, validity, issuer; and whether it is valid
for a host name (RFC 6125 §6.4, as browsers and mail clients match: the subjectAltName only).

    seen = describe_certificate(der)           # CertificateSeen(subject, issuer, names, ...)
    matches_name(seen.names, "mx.example.org")  # "*.example.org" matches one label
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = ["CertificateSeen", "describe_certificate", "matches_name", "split_pem"]


@dataclass(frozen=True)
class CertificateSeen:
    """One certificate as a server sent it."""

    subject: str  # RFC 4514, e.g. "CN=mx.example.org"
    issuer: str
    names: tuple[str, ...]  # subjectAltName DNS names and IP addresses
    not_before: dt.datetime  # aware, UTC
    not_after: dt.datetime
    sha256: str  # hex fingerprint of the DER
    is_ca: bool
    der: bytes = field(repr=False, compare=False)

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer

    def as_json(self) -> dict[str, object]:
        return {"subject": self.subject, "issuer": self.issuer, "names": list(self.names),
                "not_before": self.not_before.isoformat(), "not_after": self.not_after.isoformat(),
                "sha256": self.sha256}


def describe_certificate(der: bytes) -> CertificateSeen:
    """Parse one DER certificate; raises ValueError when it is not one."""
    cert = x509.load_der_x509_certificate(der)
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        names += san.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertificateSeen(
        subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
        names=tuple(names), not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
        sha256=hashlib.sha256(der).hexdigest(), is_ca=is_ca, der=der)


def matches_name(names: tuple[str, ...], host: str) -> bool:
    """Whether a certificate naming ``names`` is valid for ``host``: an IP address against the IP
    names; a host name against the DNS names, case-insensitively, in A-label form, with a
    wildcard only as the whole left-most label standing for exactly one label (RFC 6125 §6.4.3)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return any(_same_ip(name, ip) for name in names)
    wanted = _a_labels(host)
    for name in names:
        pattern = name.rstrip(".").lower()
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and "." in wanted:
            first, rest = wanted.split(".", 1)
            if first and rest == pattern[2:] and "." in rest:  # no "*.com"
                return True
    return False


def split_pem(data: bytes) -> list[bytes]:
    """The DER of every certificate in a PEM file (other blocks ignored)."""
    try:
        return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(data)]
    except ValueError:
        return []


def _a_labels(host: str) -> str:
    host = host.rstrip(".").lower()
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _same_ip(name: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(name) == ip
    except ValueError:
        return False
