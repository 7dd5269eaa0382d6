"""TLS peers for the outbound TLS-policy tests: a test CA (cryptography), an HTTPS server serving
MTA-STS policies on 127.0.0.x:443 (stdlib http.server + ssl in a thread; we run as root), and
aiosmtpd MX hosts offering STARTTLS with a certificate of the test CA.

    ca = TestCa(tmp_path)                                   # ca.ca_file: trust it in a context
    cert, key = ca.issue("mx.example.test")                 # PEM files of a server certificate
    with PolicyServer(ca, {"mta-sts.d.test": POLICY}):      # https://mta-sts.d.test/... on 127.0.0.83
        ...
    peer = StartTlsPeer(ca, "127.0.0.84", port, "wrong.example.test").start()   # .envelopes, .stop()

Zone: tests/zones/mtasts.test.zone names these addresses.
"""
from __future__ import annotations

import datetime as dt
import http.server
import ssl
import threading
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

POLICY_HOST = "127.0.0.83"  # mta-sts.*.mtasts.test
MX_WRONG = "127.0.0.84"  # mx-wrong.mtasts.test: a certificate for wrong.mtasts.test
MX_GOOD = "127.0.0.86"  # mx-good.mtasts.test: a certificate for its own name


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


class TestCa:
    """A CA of the test's own; server certificates issued by it, written as PEM files."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(_name("postoffice test CA"))
                     .issuer_name(_name("postoffice test CA")).public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                    critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def context(self) -> ssl.SSLContext:
        """A client context trusting only this CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def issue(self, *names: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(self.cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        stem = names[0].replace("*", "star")
        cert_file, key_file = self.dir / f"{stem}.crt", self.dir / f"{stem}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_file, key_file

    def server_context(self, *names: str) -> ssl.SSLContext:
        cert_file, key_file = self.issue(*names)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context


class PolicyServer:
    """HTTPS on ``host``:443 answering GET /.well-known/mta-sts.txt per Host header."""

    def __init__(self, ca: TestCa, policies: dict[str, str], host: str = POLICY_HOST) -> None:
        self.policies = policies
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = (self.headers.get("Host") or "").split(":")[0].lower()
                outer.requests.append(f"{name}{self.path}")
                text = outer.policies.get(name)
                if self.path != "/.well-known/mta-sts.txt" or text is None:
                    self.send_error(404)
                    return
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, 443), Handler)
        context = ca.server_context(*(policies or {"mta-sts.invalid": ""}))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PolicyServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


class Recorder:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 2.0.0 OK"


class StartTlsPeer:
    """An aiosmtpd MX on ``host``:``port`` offering STARTTLS with a certificate for ``names``."""

    def __init__(self, ca: TestCa, host: str, port: int, *names: str) -> None:
        self.recorder = Recorder()
        self.controller = Controller(self.recorder, hostname=host, port=port,
                                     tls_context=ca.server_context(*names), require_starttls=False)

    @property
    def envelopes(self) -> list[Envelope]:
        return self.recorder.envelopes

    def start(self) -> StartTlsPeer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
