"""Live TLS checks of a server: what it offers and sends, and the findings `check tls` and
`check domain` report about it.

    probe = await probe_tls("mail.example.org", 993)                     # implicit TLS
    probe = await probe_tls("mx.example.org", 25, "smtp", ca_file=path)  # STARTTLS first
    probe.versions, probe.version, probe.cipher, probe.chain, probe.chain_status
    findings = tls_findings(probe)                                       # tls-expired, ...
    findings = await probe_mx("mx.example.org", 25, address="192.0.2.25")  # mx-unreachable, ...

Implementation notes:

- The chain is judged by OpenSSL, the library most mail servers and clients verify with, in the
  handshake itself: trust anchors are the system's CA store plus the self-signed certificates of
  ``ca_file``; time is not checked there (OpenSSL's NO_CHECK_TIME) so an expired certificate
  is reported as expired, not as an untrusted chain. Names and dates are read from the
  certificates with ``cryptography`` and matched as RFC 6125 says.
- "Incomplete chain" is only said when it is proven: the chain failed with the roots alone and
  verifies once the other (intermediate) certificates of ``ca_file`` are offered to OpenSSL as
  well. Without them the finding is ``tls-untrusted``, whose fix names both causes.
- Each judgement that needs a different client setting is a new connection (a verifying one,
  then an unverifying one to see the chain when verification failed, one per TLS version when
  ``versions``), one after the other, each with its own deadline; a probe of a healthy server
  is one connection plus the version probes.
- TLS 1.0 and 1.1 are tried only where this machine's OpenSSL can still speak them (OpenSSL 3
  needs security level 0 for them); a version it cannot speak is reported as not tested.
- Contexts are built in a thread: loading the system's CA store reads a file of a few hundred
  kilobytes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import platform
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from postoffice.diagnostics.certificates import (
    CertificateSeen,
    describe_certificate,
    matches_name,
    split_pem,
)
from postoffice.diagnostics.checks import Finding, Severity
from postoffice.diagnostics.starttls import (
    CertificateRejected,
    ProbeError,
    StartTls,
    hang_up,
    open_tls,
)

__all__ = [
    "EXPIRING_DAYS",
    "ChainStatus",
    "ProbeError",
    "TlsProbe",
    "VersionSupport",
    "connection_finding",
    "mx_findings",
    "probe_mx",
    "probe_tls",
    "tls_findings",
]

EXPIRING_DAYS = 21  # the threshold; ACME renews at 30 days, so 21 means renewal failed
ChainStatus = Literal["trusted", "incomplete", "untrusted"]
_NO_CHECK_TIME = 0x200000  # X509_V_FLAG_NO_CHECK_TIME: dates are judged apart, with clearer words
_VERSIONS: tuple[tuple[str, ssl.TLSVersion], ...] = (
    ("TLS 1.0", ssl.TLSVersion.TLSv1), ("TLS 1.1", ssl.TLSVersion.TLSv1_1),
    ("TLS 1.2", ssl.TLSVersion.TLSv1_2), ("TLS 1.3", ssl.TLSVersion.TLSv1_3))


@dataclass(frozen=True)
class VersionSupport:
    version: str  # "TLS 1.2"
    offered: bool | None  # None: not tested (this machine's OpenSSL cannot speak it)
    note: str = ""  # why it was refused, or why it was not tested

    def as_json(self) -> dict[str, object]:
        return {"version": self.version, "offered": self.offered, "note": self.note}


@dataclass(frozen=True)
class TlsProbe:
    """What one server showed: the TLS it negotiated with a default client, the certificates it
    sent (its own first), how they verified, and (when probed) the versions it accepts."""

    host: str
    port: int
    name: str  # the name the certificate must be valid for
    starttls: StartTls | None
    banner: str
    version: str  # negotiated: "TLSv1.3"
    cipher: str
    chain: tuple[CertificateSeen, ...]
    chain_status: ChainStatus
    verify_error: str  # OpenSSL's reason when not "trusted"
    versions: tuple[VersionSupport, ...] = ()

    @property
    def leaf(self) -> CertificateSeen | None:
        return self.chain[0] if self.chain else None

    @property
    def name_matches(self) -> bool:
        return self.leaf is not None and matches_name(self.leaf.names, self.name)

    def as_json(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "name": self.name, "starttls": self.starttls,
                "banner": self.banner, "version": self.version, "cipher": self.cipher,
                "chain": [c.as_json() for c in self.chain], "chain_status": self.chain_status,
                "verify_error": self.verify_error, "name_matches": self.name_matches,
                "versions": [v.as_json() for v in self.versions]}


async def probe_tls(host: str, port: int, starttls: StartTls | None = None, *, name: str | None = None,
                    address: str | None = None, ca_file: Path | None = None, versions: bool = True,
                    helo_name: str | None = None, timeout: float = 30.0) -> TlsProbe:
    """Connect to ``host`` (at ``address`` when given) on ``port``, with ``starttls``'s
    protocol first, and report what the server showed. ``name`` (default ``host``) is what the
    certificate must name and what is sent as SNI. Raises :class:`ProbeError` when TLS was not
    reached: ``stage`` says whether the connection, the banner, STARTTLS or the handshake failed;
    ValueError when ``ca_file`` cannot be used."""
    name = name or host
    anchors, intermediates = await asyncio.to_thread(_read_ca_file, ca_file)
    opening = _Opening(host, port, starttls, address, name, helo_name or platform.node() or "localhost",
                       timeout)
    verifying = await asyncio.to_thread(_verifying_context, anchors)
    verify_error = ""
    try:
        seen = await opening.handshake(verifying)
        status: ChainStatus = "trusted"
    except CertificateRejected as rejected:
        verify_error = rejected.verify_message
        seen = await opening.handshake(_unverified_context())
        status = "untrusted"
        if intermediates:
            try:
                await opening.handshake(await asyncio.to_thread(_verifying_context, anchors + intermediates))
                status = "incomplete"
            except CertificateRejected:
                pass
    offered = await _probe_versions(opening) if versions else ()
    return TlsProbe(host, port, name, starttls, seen.banner, seen.version, seen.cipher, seen.chain,
                    status, verify_error, offered)


def tls_findings(probe: TlsProbe, *, now: dt.datetime | None = None,
                 expiring_days: int = EXPIRING_DAYS) -> list[Finding]:
    """The problems of ``probe`` (expired, expiring, wrong name, incomplete or untrusted chain,
    old versions offered), or one ``tls-valid`` finding of severity ok."""
    now = now or dt.datetime.now(dt.UTC)
    where = f"{probe.host}:{probe.port}"
    leaf = probe.leaf
    if leaf is None:  # TLS without a certificate: only anonymous suites, which we never offer
        return [Finding("tls-untrusted", Severity.ERROR, f"{where} sent no certificate.",
                        "Configure a certificate and key on the server.", probe.name)]
    found: list[Finding] = []
    for index, cert in enumerate(probe.chain):
        which = (f"The certificate of {where}" if index == 0
                 else f"The intermediate certificate {cert.subject} sent by {where}")
        if cert.not_after <= now:
            found.append(Finding(
                "tls-expired", Severity.ERROR, f"{which} expired on {_date(cert.not_after)}.",
                "Renew it (certbot renew, or [tls] acme = true in postoffice) and make the server load "
                "the new files.", probe.name))
        elif cert.not_before > now:
            found.append(Finding(
                "tls-not-yet-valid", Severity.ERROR,
                f"{which} is valid only from {_date(cert.not_before)}.",
                "Check the clock of the machine that made it, or serve the previous certificate "
                "until then.", probe.name))
    left = leaf.not_after - now
    if dt.timedelta(0) < left < dt.timedelta(days=expiring_days):
        found.append(Finding(
            "tls-expiring", Severity.WARNING,
            f"The certificate of {where} expires in {left.days} days, on {_date(leaf.not_after)}.",
            "Renew it now and find out why automatic renewal did not (certbot renews 30 days "
            "before, as does postoffice with [tls] acme = true).", probe.name))
    if not probe.name_matches:
        names = ", ".join(leaf.names) or "no name (it has no subjectAltName)"
        found.append(Finding(
            "tls-name-mismatch", Severity.ERROR,
            f"The certificate of {where} is valid for {names}, not for {probe.name}.",
            f"Get a certificate that names {probe.name} (add it to certbot's -d list), or use a "
            "name the certificate covers.", probe.name))
    if probe.chain_status == "incomplete":
        found.append(Finding(
            "tls-chain-incomplete", Severity.ERROR,
            f"{where} sends its certificate without the intermediate certificate that links it to a "
            f"trusted root (issuer {probe.chain[-1].issuer}), so clients that do not have it "
            "already cannot verify it.",
            "Serve the full chain: point the server at fullchain.pem rather than cert.pem (in "
            "postoffice, [tls] cert_file).", probe.name))
    elif probe.chain_status == "untrusted":
        found.append(_untrusted(probe, where))
    old = [v.version for v in probe.versions if v.offered and v.version in ("TLS 1.0", "TLS 1.1")]
    if old:
        found.append(Finding(
            "tls-old-version", Severity.WARNING,
            f"{where} accepts {' and '.join(old)}, which RFC 8996 retired as insecure.",
            "Accept TLS 1.2 and newer only (postoffice does by default: [tls] min_version).",
            probe.name))
    if not any(f.severity is not Severity.OK for f in found):
        found.append(Finding(
            "tls-valid", Severity.OK,
            f"The certificate of {where} is valid for {probe.name} until {_date(leaf.not_after)} "
            f"and its chain verifies ({probe.version}, {probe.cipher}).", "", probe.name))
    return found


def _untrusted(probe: TlsProbe, where: str) -> Finding:
    last = probe.chain[-1]
    if len(probe.chain) == 1 and last.self_signed:
        problem = f"The certificate of {where} is self-signed, so clients cannot verify it."
        fix = ("Use a certificate from a CA that clients trust (Let's Encrypt: [tls] acme = true, "
               "or certbot); to test a private CA, give its certificate with --ca-file.")
    else:
        problem = (f"The certificate chain of {where} does not lead to a trusted root "
                   f"({probe.verify_error}; last certificate issued by {last.issuer}).")
        fix = ("If that issuer is an intermediate CA, serve the full chain (fullchain.pem, not "
               "cert.pem); otherwise use a certificate from a CA that clients trust, or give "
               "your private CA's certificate with --ca-file.")
    return Finding("tls-untrusted", Severity.ERROR, problem, fix, probe.name)


async def probe_mx(host: str, port: int = 25, *, address: str | None = None,
                   ca_file: Path | None = None, helo_name: str | None = None,
                   timeout: float = 30.0, now: dt.datetime | None = None) -> list[Finding]:
    """The live checks of one MX host (``check domain``): a 220 banner on ``port``
    (``mx-unreachable``), STARTTLS offered and working (``mx-no-starttls``,
    ``tls-handshake-failed``), then :func:`tls_findings` for the MX name. ``address``: the
    address to connect to (the MX name's A/AAAA record, resolved by the caller's resolver);
    without it the system resolver is asked."""
    try:
        probe = await probe_tls(host, port, "smtp", address=address, ca_file=ca_file,
                                versions=False, helo_name=helo_name, timeout=timeout)
    except ProbeError as error:
        return [mx_findings(error, host, port, address)]
    target = host if address is None else f"{host} [{address}]"
    return [Finding("mx-reachable", Severity.OK,
                    f"{target} answers on port {port} with a banner and STARTTLS.", "", host),
            *tls_findings(probe, now=now)]


def mx_findings(error: ProbeError, host: str, port: int, address: str | None = None) -> Finding:
    """The finding for an MX host that did not get as far as TLS."""
    if error.stage in ("connect", "greeting"):
        if error.reply is not None:
            fix = ("The server turns this machine away at the banner; check its access rules, or "
                   "whether this address is on a blocklist.")
        else:
            fix = (f"Check that the mail server runs and that port {port} is open in every firewall "
                   "(many hosting providers block port 25 until asked).")
        return Finding("mx-unreachable", Severity.ERROR, f"{error.reason}.", fix, host)
    if error.stage == "starttls":
        return Finding("mx-no-starttls", Severity.ERROR, f"{error.reason}, so mail to it travels "
                       "unencrypted.",
                       "Give the server a certificate and turn STARTTLS on (postoffice offers it "
                       "whenever [tls] has one; Postfix: smtpd_tls_security_level = may).", host)
    return _handshake_failed(error, host)


def connection_finding(error: ProbeError, host: str, port: int, starttls: StartTls | None) -> Finding:
    """`check tls`'s finding when TLS was not reached: the MX ids for SMTP, else ``tls-unreachable``,
    ``tls-no-starttls`` or ``tls-handshake-failed``."""
    if starttls == "smtp":
        return mx_findings(error, host, port)
    if error.stage in ("connect", "greeting"):
        return Finding("tls-unreachable", Severity.ERROR, f"{error.reason}.",
                       f"Check that the server runs and that port {port} is open in every firewall.",
                       host)
    if error.stage == "starttls":
        return Finding("tls-no-starttls", Severity.ERROR, f"{error.reason}.",
                       "Give the server a certificate and turn STARTTLS on, or check whether this "
                       "port expects TLS from the first byte (--starttls none).", host)
    return _handshake_failed(error, host)


def _handshake_failed(error: ProbeError, host: str) -> Finding:
    return Finding("tls-handshake-failed", Severity.ERROR, f"{error.reason}.",
                   "Check the server's TLS settings and that its certificate and key files load "
                   "(its log says why); for a port that speaks plaintext first, use --starttls.",
                   host)


# --- connections ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Seen:
    banner: str
    version: str
    cipher: str
    chain: tuple[CertificateSeen, ...]


@dataclass(frozen=True)
class _Opening:
    """How to reach the server; each :meth:`handshake` is a connection of its own."""

    host: str
    port: int
    starttls: StartTls | None
    address: str | None
    name: str
    helo_name: str
    timeout: float

    async def handshake(self, context: ssl.SSLContext) -> _Seen:
        reader, writer, banner = await open_tls(
            self.host, self.port, self.starttls, context, address=self.address,
            server_hostname=self.name.strip("[]"), helo_name=self.helo_name, timeout=self.timeout)
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            cipher = ssl_object.cipher() if ssl_object is not None else None
            chain = []
            for der in _chain_as_sent(ssl_object):
                try:
                    chain.append(describe_certificate(der))
                except ValueError:  # a certificate cryptography cannot parse: show what we can
                    continue
            return _Seen(banner, (ssl_object.version() or "") if ssl_object else "",
                         cipher[0] if cipher else "", tuple(chain))
        finally:
            await hang_up(reader, writer, self.starttls)


async def _probe_versions(opening: _Opening) -> tuple[VersionSupport, ...]:
    results = []
    for label, version in _VERSIONS:
        context = _pinned_context(version)
        if context is None:
            results.append(VersionSupport(label, None, "this machine's OpenSSL cannot speak it"))
            continue
        try:
            await opening.handshake(context)
        except ProbeError as error:
            if error.stage != "handshake":  # the server went away: say so, not "refused"
                results.append(VersionSupport(label, None, error.reason))
            elif "no protocols available" in error.reason or "no ciphers available" in error.reason:
                results.append(VersionSupport(label, None, "this machine's OpenSSL cannot speak it"))
            else:
                results.append(VersionSupport(label, False, error.reason.rsplit(": ", 1)[-1]))
        else:
            results.append(VersionSupport(label, True))
    return tuple(results)


def _chain_as_sent(ssl_object: ssl.SSLObject | None) -> list[bytes]:
    """The certificates the server sent, its own first, as DER."""
    if ssl_object is None:
        return []
    public = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13+
    if public is not None:
        return [bytes(c) for c in public() or ()]
    private = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)  # 3.10-3.12
    if private is not None:
        import _ssl

        der_format = getattr(_ssl, "ENCODING_DER", 2)
        return [bytes(c.public_bytes(der_format)) for c in private() or ()]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _read_ca_file(ca_file: Path | None) -> tuple[list[bytes], list[bytes]]:
    """(self-signed roots, other certificates) of ``ca_file``, as DER. A file that cannot be
    used is the caller's mistake, not the server's: ValueError with one sentence."""
    if ca_file is None:
        return [], []
    try:
        data = Path(ca_file).read_bytes()
    except OSError as error:
        raise ValueError(f"The CA file {ca_file} cannot be read ({error.strerror or error}); give "
                         "a readable PEM file of CA certificates.") from None
    certificates = split_pem(data)
    if not certificates:
        raise ValueError(f"The CA file {ca_file} holds no PEM certificate; give a PEM file of CA "
                         "certificates (-----BEGIN CERTIFICATE----- blocks).")
    roots: list[bytes] = []
    others: list[bytes] = []
    for der in certificates:
        (roots if describe_certificate(der).self_signed else others).append(der)
    return roots, others


def _verifying_context(extra: Sequence[bytes]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # names are matched apart (tls-name-mismatch)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_default_certs()
    if extra:
        context.load_verify_locations(cadata=b"".join(extra))
    context.verify_flags = (context.verify_flags & ~ssl.VERIFY_X509_PARTIAL_CHAIN) | _NO_CHECK_TIME
    return context


def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _pinned_context(version: ssl.TLSVersion) -> ssl.SSLContext | None:
    """A client context speaking only ``version``, or None when this OpenSSL cannot."""
    context = _unverified_context()
    try:
        with warnings.catch_warnings():  # TLSv1 and TLSv1_1 are deprecated names; we probe them
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = version
            context.maximum_version = version
            if version < ssl.TLSVersion.TLSv1_2:
                context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3: old versions need level 0
    except (ValueError, ssl.SSLError):
        return None
    return context


def _date(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"
