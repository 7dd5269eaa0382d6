"""Pending ACME challenges (RFC 8555 §8.3 HTTP-01, RFC 8737 TLS-ALPN-01), shared by the ACME
client that sets them and the listeners that answer them (the HTTP listener serves
`/.well-known/acme-challenge/<token>`; the TLS listeners answer the `acme-tls/1` ALPN)."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class AlpnCertificate:
    """The self-signed certificate with the acmeIdentifier extension for one name (PEM)."""

    cert_pem: bytes
    key_pem: bytes


class AcmeChallenges:
    """Thread-safe: the ACME client may run in a thread while the event loop answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._http: dict[str, str] = {}
        self._alpn: dict[str, AlpnCertificate] = {}

    def put_http(self, token: str, key_authorization: str) -> None:
        with self._lock:
            self._http[token] = key_authorization

    def http(self, token: str) -> str | None:
        """The key authorization to answer for TOKEN, or None when no order waits for it."""
        with self._lock:
            return self._http.get(token)

    def put_alpn(self, name: str, certificate: AlpnCertificate) -> None:
        with self._lock:
            self._alpn[name.lower().rstrip(".")] = certificate

    def alpn(self, name: str) -> AlpnCertificate | None:
        with self._lock:
            return self._alpn.get(name.lower().rstrip("."))

    def remove(self, *, token: str | None = None, name: str | None = None) -> None:
        with self._lock:
            if token is not None:
                self._http.pop(token, None)
            if name is not None:
                self._alpn.pop(name.lower().rstrip("."), None)
