"""TLS for every listener: server contexts, self-signed certificates and hot reload.

DESIGN §4: TLS 1.2 or newer only (RFC 8996 retires 1.0 and 1.1; RFC 7525 / BCP 195 guides the
rest). ``postoffice init`` makes a self-signed certificate for the host name; real deployments
point ``[tls] cert_file`` and ``key_file`` at files such as certbot's ``fullchain.pem`` and
``privkey.pem``, which :class:`ReloadingServerContext` re-reads when they change, so a renewal
applies without a restart.

Implementation notes:

- Every problem with the files becomes a :class:`TlsConfigError` whose text is one plain sentence
  saying what is wrong and how to fix it. The files are checked with ``cryptography`` before
  OpenSSL sees them, because OpenSSL's own errors ("KEY_VALUES_MISMATCH") help nobody.
- Files are written atomically (temp file, fsync, rename, fsync of the directory) so that a crash
  or a concurrent reader never sees half a key.
- Everything here is synchronous and fast except key generation and the first load, which take a
  few milliseconds; async callers that care use ``asyncio.to_thread``.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
import ssl
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from postoffice.durable import write_file
from postoffice.net.client_hello import offered_alpn

if TYPE_CHECKING:
    from postoffice.setup.acme_challenges import AcmeChallenges, AlpnCertificate

__all__ = [
    "ReloadingServerContext", "TlsConfigError", "certificate_expiry",
    "create_self_signed_certificate", "leaf_certificate", "server_context",
]

log = logging.getLogger(__name__)

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# TLS 1.2 suites with forward secrecy and AEAD only (RFC 7525 §4.2); OpenSSL's TLS 1.3 suites
# are all of that kind already. RSA and ECDSA certificates both work with these.
_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)
ACME_TLS_ALPN = b"acme-tls/1"  # RFC 8737 §6.2


class TlsConfigError(Exception):
    """A certificate or key cannot be used; ``str(error)`` is one plain sentence for the user."""


# --- certificates --------------------------------------------------------------------------------

def create_self_signed_certificate(cert_file: Path, key_file: Path, hostname: str,
                                   days: int = 825) -> None:
    """Write a new ECDSA P-256 key and a self-signed certificate for ``hostname``.

    The certificate also names ``localhost`` and 127.0.0.1 so local clients and tests can verify
    it. 825 days is the longest validity Apple platforms accept for a server certificate.
    Existing files are replaced; parent directories are created; the key file is mode 0600.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for name in (hostname, "localhost", "127.0.0.1", "::1"):
        try:
            general: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            general = x509.DNSName(name)
        if general not in names:
            names.append(general)
    # X.509 caps a common name at 64 characters; clients match on the SAN anyway (RFC 6125).
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            hostname if len(hostname) <= 64 else "postoffice")])
    now = dt.datetime.now(dt.UTC)
    usage = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment",
                           "key_agreement", "key_cert_sign", "crl_sign", "encipher_only",
                           "decipher_only"), False)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))  # clients whose clocks run a little slow
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, **usage), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    # Key first: a reloader that sees the new key with the old certificate reports a mismatch and
    # keeps the old pair until the certificate arrives a moment later.
    _write_atomically(key_file, key_pem, mode=0o600)
    _write_atomically(cert_file, certificate.public_bytes(serialization.Encoding.PEM),
                          mode=0o644)


def certificate_expiry(cert_file: Path) -> dt.datetime:
    """When the first (leaf) certificate in ``cert_file`` expires, as an aware UTC datetime."""
    return leaf_certificate(cert_file).not_valid_after_utc


def leaf_certificate(cert_file: Path) -> x509.Certificate:
    """The first (leaf) certificate in ``cert_file``; :class:`TlsConfigError` says what is wrong."""
    return _load_certificates(cert_file)[0]


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mixture."""
    write_file(path, data, mode=mode)


# --- server contexts -----------------------------------------------------------------------------

def server_context(cert_file: Path, key_file: Path, min_version: str = "1.2") -> ssl.SSLContext:
    """An SSLContext for a listener: TLS ``min_version``+ only, no compression, our cipher order.

    Raises :class:`TlsConfigError` if a file is missing or unreadable, the key does not belong to
    the certificate, or the certificate has expired.
    """
    if min_version not in _VERSIONS:
        raise TlsConfigError(f'The minimum TLS version "{min_version}" is not supported; '
                             'use "1.2" or "1.3".')
    leaf = _load_certificates(cert_file)[0]
    key = _load_private_key(key_file)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise TlsConfigError(
            f"The TLS key in {key_file} does not match the certificate in {cert_file}; use the "
            "key that was made together with this certificate (with certbot, privkey.pem from "
            "the same directory as fullchain.pem).")
    expired = leaf.not_valid_after_utc
    if expired <= dt.datetime.now(dt.UTC):
        raise TlsConfigError(
            f"The TLS certificate in {cert_file} ([tls] cert_file) expired on "
            f"{expired:%Y-%m-%d at %H:%M} UTC; renew it (for example with certbot renew), run "
            "postoffice init to replace it with a new self-signed one, or set [tls] acme = true "
            "to have postoffice get and renew one from Let's Encrypt.")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[min_version]
    # No compression (CRIME), our cipher order rather than the client's, no renegotiation.
    context.options |= (ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
                        | ssl.OP_NO_RENEGOTIATION)
    context.set_ciphers(_CIPHERS)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as error:
        # Only reachable if a file changed between our check and OpenSSL's read, or OpenSSL
        # rejects something cryptography accepted (such as a too-weak key).
        raise TlsConfigError(f"OpenSSL could not load the TLS certificate {cert_file} with the "
                             f"key {key_file} ({error}); check both files.") from None
    return context


def _read(path: Path, what: str, key: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise TlsConfigError(f"The TLS {what} file {path} ([tls] {key}) does not exist; run "
                             "postoffice init to make a new self-signed certificate and key, or "
                             f"set [tls] {key} to your {what} (with certbot: "
                             f"{'fullchain.pem' if key == 'cert_file' else 'privkey.pem'}), or set "
                             "[tls] acme = true to have postoffice get one from Let's Encrypt.") from None
    except OSError as error:
        raise TlsConfigError(f"The TLS {what} file {path} cannot be read ({error.strerror}); "
                             "make it readable by the user running postoffice.") from None


def _pem_blocks(data: bytes, *labels: bytes) -> list[bytes]:
    # Files may hold several kinds of blocks (certbot's fullchain, a combined cert+key file).
    return [m.group(0) for m in _PEM_BLOCK.finditer(data) if m.group(1) in labels]


def _load_certificates(cert_file: Path) -> list[x509.Certificate]:
    blocks = _pem_blocks(_read(cert_file, "certificate", "cert_file"), b"CERTIFICATE")
    if not blocks:
        raise TlsConfigError(f"The TLS certificate file {cert_file} holds no PEM certificate "
                             "(a -----BEGIN CERTIFICATE----- block); point [tls] cert_file at "
                             "one.")
    try:
        return [x509.load_pem_x509_certificate(block) for block in blocks]
    except ValueError as error:
        raise TlsConfigError(f"The TLS certificate file {cert_file} holds a damaged certificate "
                             f"({error}); replace it with a good copy.") from None


def _load_private_key(key_file: Path) -> PrivateKeyTypes:
    blocks = _pem_blocks(_read(key_file, "key", "key_file"), b"PRIVATE KEY", b"RSA PRIVATE KEY",
                         b"EC PRIVATE KEY", b"ENCRYPTED PRIVATE KEY")
    if not blocks:
        raise TlsConfigError(f"The TLS key file {key_file} holds no PEM private key (a -----BEGIN "
                             "PRIVATE KEY----- block); point [tls] key_file at one.")
    try:
        key = serialization.load_pem_private_key(blocks[0], password=None)
    except TypeError:  # cryptography's way of saying "needs a password"
        raise TlsConfigError(f"The TLS key file {key_file} is protected by a passphrase, which "
                             "a server cannot type; save it without one, for example with "
                             f"openssl pkey -in {key_file} -out key.pem.") from None
    except (ValueError, UnsupportedAlgorithm) as error:
        raise TlsConfigError(f"The TLS key file {key_file} holds a damaged or unsupported key "
                             f"({error}); replace it with a good copy.") from None
    return key


# --- hot reload ----------------------------------------------------------------------------------

_Stamp = tuple[tuple[int, int, int] | None, ...]


class ReloadingServerContext:
    """A server context that follows its certificate and key files as they are replaced.

    ``current()`` looks at the files' modification times at most once per ``check_interval``
    seconds and builds a new context when they change; if the new files are broken it keeps the
    old context and logs a warning, once per change. Use ``current()`` for STARTTLS, and give
    ``handshake_context()`` to ``asyncio.start_server(ssl=...)`` for implicit-TLS ports: it is
    one fixed context that switches every new handshake to ``current()``.

    With ``challenges`` (``[tls] acme``), a handshake that offers only the ALPN protocol
    ``acme-tls/1`` for a name with a pending TLS-ALPN-01 challenge gets that challenge's
    certificate instead (RFC 8737 §3); every other client still gets ``current()``.
    """

    def __init__(self, cert_file: Path, key_file: Path, min_version: str = "1.2", *,
                 check_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 challenges: AcmeChallenges | None = None) -> None:
        self._files = (Path(cert_file), Path(key_file))
        self._min_version = min_version
        self._check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._context = server_context(cert_file, key_file, min_version)  # fail at start-up
        # A context of its own, never served from: every handshake leaves it in the SNI callback,
        # so the per-message callback below costs nothing after the ClientHello.
        self._handshake = server_context(cert_file, key_file, min_version)
        self._handshake.sni_callback = self._switch_context
        self._next_check = clock() + check_interval
        self._challenges = challenges
        # Connection -> did its ClientHello offer acme-tls/1 (read before the SNI callback runs).
        self._wants_acme: weakref.WeakKeyDictionary[object, bool] = weakref.WeakKeyDictionary()
        self._challenge_contexts: dict[bytes, ssl.SSLContext] = {}
        if challenges is not None:
            # Python has no ClientHello callback; the message callback sees the raw ClientHello.
            setattr(self._handshake, "_msg_callback", self._note_client_hello)  # noqa: B010

    def current(self) -> ssl.SSLContext:
        """The context for the newest good certificate and key."""
        if self._clock() >= self._next_check and self._lock.acquire(blocking=False):
            try:
                self._next_check = self._clock() + self._check_interval
                stamp = self._file_stamp()
                if stamp != self._stamp:
                    # Remember the stamp even if loading fails, so a broken file warns once.
                    self._stamp = stamp
                    self._load()
            finally:
                self._lock.release()
        return self._context

    def reload(self) -> bool:
        """Re-read both files now (for SIGHUP); True if they were good and are now in use."""
        with self._lock:
            self._stamp = self._file_stamp()
            return self._load()

    def handshake_context(self) -> ssl.SSLContext:
        """A fixed context whose handshakes switch to ``current()`` (via the SNI callback)."""
        return self._handshake

    def _load(self) -> bool:
        cert_file, key_file = self._files
        try:
            self._context = server_context(cert_file, key_file, self._min_version)
        except TlsConfigError as error:
            log.warning("Keeping the TLS certificate already loaded: %s", error)
            return False
        log.info("Loaded the new TLS certificate from %s", cert_file)
        return True

    def _file_stamp(self) -> _Stamp:
        stamps: list[tuple[int, int, int] | None] = []
        for path in self._files:
            try:
                st = path.stat()  # follows symlinks, as certbot's live/ directory needs
            except OSError:
                stamps.append(None)
            else:
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stamps)

    def _switch_context(self, connection: ssl.SSLSocket | ssl.SSLObject, server_name: str | None,
                        context: ssl.SSLContext) -> None:
        # OpenSSL calls this for every ClientHello, with or without SNI; swapping the context
        # here swaps the certificate and key used for this handshake.
        try:
            newest = self._challenge_context(connection, server_name) or self.current()
            if newest is not context:
                connection.context = newest
        except Exception:  # an exception here would abort the handshake with a vague alert
            log.exception("Could not switch to the newest TLS certificate")

    # --- TLS-ALPN-01 (RFC 8737) ------------------------------------------------------------------

    def _note_client_hello(self, connection: object, direction: str, _version: object,
                           content_type: int, message_type: int, data: bytes) -> None:
        if direction == "read" and content_type == 22 and message_type == 1:  # handshake, ClientHello
            try:
                self._wants_acme[connection] = ACME_TLS_ALPN in offered_alpn(data)
            except TypeError:  # not weakly referable: then it gets the normal certificate
                pass

    def _challenge_context(self, connection: object, server_name: str | None) -> ssl.SSLContext | None:
        if self._challenges is None or not server_name or not self._wants_acme.get(connection):
            return None
        challenge = self._challenges.alpn(server_name)
        if challenge is None:
            return None
        context = self._challenge_contexts.get(challenge.cert_pem)
        if context is None:
            if len(self._challenge_contexts) > 32:  # old orders' certificates
                self._challenge_contexts.clear()
            context = self._challenge_contexts[challenge.cert_pem] = _alpn_context(challenge)
        log.info("Answering the ACME TLS-ALPN-01 challenge for %s", server_name)
        return context


def _alpn_context(challenge: AlpnCertificate) -> ssl.SSLContext:
    """A context serving only the challenge certificate and only ``acme-tls/1`` (RFC 8737 §3:
    the validation handshake must negotiate it)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ACME_TLS_ALPN.decode()])
    # ssl loads certificates from files only; the directory is private and gone at once.
    with tempfile.TemporaryDirectory(prefix="postoffice-acme-") as directory:
        cert_file, key_file = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_file.write_bytes(challenge.cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(challenge.key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context
