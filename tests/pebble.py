"""pebble (Let's Encrypt's test CA, Debian package pebble) on loopback, for the ACME tests.

    with Pebble(workdir, tls_port=p, http_port=q, dns=dns_server.nameserver) as ca:
        ca.directory_url   # [tls] acme_directory
        ca.https_ca_file   # [tls] acme_ca_file: pebble's own HTTPS certificate (made here)
        ca.trust()         # an ssl context trusting pebble's issuing root (management API)

pebble validates HTTP-01 on ``http_port`` and TLS-ALPN-01 on ``tls_port`` of the address a name
resolves to through ``dns`` (the loopback DNS server; tests/zones/acme.test.zone), like a real
CA. ``validity``: the lifetime of the certificates it issues, in seconds (pebble's
certificateValidityPeriod), short to see renewals. Nonces are rejected 5% of the time, as pebble
does by default, so the client's badNonce retry is exercised.
"""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from dns_server import _die_with_parent, free_port
from peers import require_peer
from postoffice.net.tls import create_self_signed_certificate

START_SECONDS = 20.0


class Pebble:
    def __init__(self, workdir: Path, *, tls_port: int, http_port: int, dns: str,
                 validity: int | None = None) -> None:
        self.program = require_peer("pebble")
        self.workdir = workdir
        self.tls_port, self.http_port, self.dns, self.validity = tls_port, http_port, dns, validity
        self.port, self.management_port = free_port(), free_port()
        self.https_ca_file = workdir / "pebble-https.pem"
        self.log = workdir / "pebble.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def __enter__(self) -> Pebble:
        self.workdir.mkdir(parents=True, exist_ok=True)
        key_file = self.workdir / "pebble-https-key.pem"
        # Names localhost and 127.0.0.1; the test clients trust it as a CA file.
        create_self_signed_certificate(self.https_ca_file, key_file, "localhost")
        settings: dict[str, object] = {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(self.https_ca_file), "privateKey": str(key_file),
            "httpPort": self.http_port, "tlsPort": self.tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": False,
        }
        if self.validity is not None:
            settings["certificateValidityPeriod"] = self.validity
        config = self.workdir / "pebble.json"
        config.write_text(json.dumps({"pebble": settings}))
        with open(self.log, "wb") as log:
            self._process = subprocess.Popen(
                [self.program, "-config", str(config), "-dnsserver", self.dns],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                env={**os.environ, "PEBBLE_VA_NOSLEEP": "1"}, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                self._get(self.directory_url)
                return self
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise AssertionError(f"pebble did not start:\n{self.log.read_text()}") from None
                time.sleep(0.1)

    def __exit__(self, *_: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)

    def root_pem(self) -> bytes:
        """The root that signs this run's certificates (pebble makes a new one at each start)."""
        return self._get(f"https://127.0.0.1:{self.management_port}/roots/0")

    def trust(self) -> ssl.SSLContext:
        """A client context that accepts only certificates pebble issued (names not checked:
        the tests connect to 127.0.0.1)."""
        context = ssl.create_default_context(cadata=self.root_pem().decode())
        context.check_hostname = False
        return context

    def _get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.https_ca_file))
        with urllib.request.urlopen(url, timeout=10, context=context) as reply:
            body: bytes = reply.read()
            return body
