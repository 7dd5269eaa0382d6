"""DANE for SMTP (RFC 7672): TLSA records of an MX host, and whether a certificate matches them.

    found = await dane_records(resolver, "mx1.example.org")   # DaneLookup: records, or why none
    if found.usable:
        problem = check_tlsa(found.records, [leaf_der], "mx1.example.org")   # None: it matches

Rules, and why:
- TLSA records at ``_25._tcp.<mx host>`` count only when the answer is DNSSEC-validated by a
  resolver on this machine (``DnsAnswer.authenticated``, RFC 7672 §2.2). Anything else (no
  validation, no records, a DNS failure) means "no DANE": mail goes with the other policies,
  never stalls waiting for DNSSEC.
- Only DANE-TA(2) and DANE-EE(3) are used for SMTP (§3.1.3); selectors 0 (certificate) and
  1 (SubjectPublicKeyInfo); matching 0 (exact), 1 (SHA-256), 2 (SHA-512). Other records are
  unusable; a validated set with none usable still asks for TLS, unauthenticated (§2.2).
- DANE-EE matches the server's own certificate; names and dates are not checked (§3.1.1).
  DANE-TA matches a certificate of the chain the server sent; the chain up to it must be
  signed link by link, and the server's certificate must name the MX host (§3.2.2, §3.2.3).
- Python before 3.13 shows only the server's certificate, not the chain it sent: DANE-TA
  records cannot be checked there, so a set of only DANE-TA records is then treated like an
  unusable one (TLS required, not authenticated), said in the recorded outcome.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from postoffice.mailauth.dns_types import DnsTemporaryError, TlsaRecord, TlsaResolver

__all__ = ["DANE_EE", "DANE_TA", "DaneLookup", "check_tlsa", "dane_records", "dane_verdict", "tlsa_usable"]

DANE_TA, DANE_EE = 2, 3


@dataclass(frozen=True, slots=True)
class DaneLookup:
    host: str
    records: tuple[TlsaRecord, ...] = ()  # validated and usable; empty: no DANE authentication
    required: bool = False  # validated TLSA records exist: TLS is mandatory (§2.2)
    problem: str = ""  # why DANE does not apply, when it was looked for and is not used

    @property
    def usable(self) -> bool:
        return bool(self.records)


def tlsa_usable(record: TlsaRecord) -> bool:
    return (record.usage in (DANE_TA, DANE_EE) and record.selector in (0, 1)
            and record.matching_type in (0, 1, 2))


async def dane_records(resolver: TlsaResolver, host: str, port: int = 25) -> DaneLookup:
    """The validated, usable TLSA records of ``host``; never raises."""
    name = f"_{port}._tcp.{host.rstrip('.')}"
    try:
        answer = await resolver.tlsa(name)
    except DnsTemporaryError as error:
        return DaneLookup(host, problem=f"TLSA lookup failed, sent without DANE: {error}")
    if not answer.records:
        return DaneLookup(host)
    if not answer.authenticated:
        return DaneLookup(host, problem=f"TLSA records of {name} are not DNSSEC-validated by a "
                                        "resolver on this machine; sent without DANE")
    usable = tuple(r for r in answer.records if tlsa_usable(r))
    if not usable:
        return DaneLookup(host, required=True, problem=f"no usable TLSA record at {name}")
    return DaneLookup(host, usable, required=True)


def check_tlsa(records: Sequence[TlsaRecord], chain: Sequence[bytes], host: str) -> str | None:
    """None when the chain (DER, the server's certificate first) matches a record; otherwise
    why not, in plain words."""
    if not chain:
        return "the server sent no certificate"
    certificates = [x509.load_der_x509_certificate(der) for der in chain]
    for record in records:
        if record.usage == DANE_EE and _matches(record, certificates[0]):
            return None
    for record in records:
        if record.usage != DANE_TA:
            continue
        for depth, anchor in enumerate(certificates):
            if _matches(record, anchor) and _signed_up_to(certificates, depth):
                return None if _names(certificates[0], host) else (
                    f"the certificate matches a DANE-TA record but does not name {host}")
    return f"no TLSA record of {host} matches the certificate it presented"


def dane_verdict(records: Sequence[TlsaRecord], chain: Sequence[bytes], host: str) -> tuple[bool, str]:
    """(accept the session, why it is not DANE-authenticated or ""). Refused when the records
    can be checked and none matches; accepted unauthenticated when only DANE-TA records exist
    and the chain is unknown (Python before 3.13 gives only the server's certificate)."""
    problem = check_tlsa(records, chain, host)
    if problem is None:
        return True, ""
    if len(chain) == 1 and all(r.usage == DANE_TA for r in records):
        return True, ("DANE-TA records not checked: this Python shows only the server's "
                      "certificate, not its chain")
    return False, problem


def _matches(record: TlsaRecord, certificate: x509.Certificate) -> bool:
    if record.selector == 0:
        selected = certificate.public_bytes(Encoding.DER)
    else:
        selected = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if record.matching_type == 1:
        selected = hashlib.sha256(selected).digest()
    elif record.matching_type == 2:
        selected = hashlib.sha512(selected).digest()
    return selected == record.data


def _signed_up_to(chain: list[x509.Certificate], depth: int) -> bool:
    """Each certificate below ``depth`` is issued (and signed) by the next one."""
    try:
        for child, parent in itertools.pairwise(chain[:depth + 1]):
            child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _names(certificate: x509.Certificate, host: str) -> bool:
    """RFC 7672 §3.2.3 with RFC 6125: a DNS name of the certificate (a wildcard for one label)."""
    host = host.lower().rstrip(".")
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    for name in (n.lower().rstrip(".") for n in names):
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False
