"""Read the ALPN protocols a TLS ClientHello offers (RFC 8446 §4.1.2, RFC 7301 §3.1). Pure.

    offered_alpn(message)  # b"\\x01\\x00\\x00\\x3f\\x03\\x03..." -> (b"acme-tls/1",)

OpenSSL chooses the certificate before it looks at ALPN, and Python exposes neither the
ClientHello nor a certificate callback; :class:`postoffice.net.tls.ReloadingServerContext` gets
the raw message from the context's message callback and asks this module whether the client
wants ``acme-tls/1`` (RFC 8737 §3), the one case where the certificate depends on ALPN.

Anything malformed reads as "no protocols": OpenSSL rejects that handshake itself a moment later.
"""
from __future__ import annotations

__all__ = ["offered_alpn"]

_CLIENT_HELLO = 1
_ALPN_EXTENSION = 16


class _Truncated(Exception):
    pass


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, size: int) -> bytes:
        end = self._at + size
        if end > len(self._data):
            raise _Truncated
        chunk = self._data[self._at:end]
        self._at = end
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.number(length_size))

    @property
    def done(self) -> bool:
        return self._at >= len(self._data)


def offered_alpn(message: bytes) -> tuple[bytes, ...]:
    """The ALPN protocol names of a ClientHello handshake message (with its 4-byte header)."""
    try:
        return _alpn(message)
    except _Truncated:
        return ()


def _alpn(message: bytes) -> tuple[bytes, ...]:
    header = _Reader(message)
    if header.number(1) != _CLIENT_HELLO:
        return ()
    body = _Reader(header.vector(3))
    body.take(2 + 32)   # legacy_version, random
    body.vector(1)      # legacy_session_id
    body.vector(2)      # cipher_suites
    body.vector(1)      # legacy_compression_methods
    if body.done:       # TLS 1.2 allows a ClientHello without extensions
        return ()
    extensions = _Reader(body.vector(2))
    while not extensions.done:
        kind = extensions.number(2)
        content = extensions.vector(2)
        if kind == _ALPN_EXTENSION:
            names = _Reader(_Reader(content).vector(2))
            found = []
            while not names.done:
                found.append(names.vector(1))
            return tuple(found)
    return ()
