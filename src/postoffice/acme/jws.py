"""The ACME account key and the JSON Web Signatures every ACME request carries.

RFC 8555 §6.2: each POST body is a flattened JWS (RFC 7515 §7.2.2) whose protected header has
``alg``, ``nonce``, ``url`` and either ``jwk`` (new account) or ``kid`` (the account URL). We use
ES256 (ECDSA P-256 with SHA-256), which every ACME server supports; its signature is the 64-byte
``r || s``, not the DER that ``cryptography`` returns (RFC 7518 §3.4).
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from postoffice.durable import write_file

__all__ = ["AccountKey", "b64url"]


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class AccountKey:
    """An ES256 key pair identifying one ACME account."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"an ACME account key must be P-256, not {key.curve.name}")
        self._key = key
        numbers = key.public_key().public_numbers()
        # RFC 7518 §6.2.1: coordinates as fixed-length big-endian octets.
        self.jwk: dict[str, str] = {
            "crv": "P-256", "kty": "EC",
            "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big")),
        }

    @classmethod
    def load_or_create(cls, path: Path) -> AccountKey:
        """The key in ``path`` (PEM), made and written (mode 0600) on first use."""
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            try:
                write_file(path, pem, mode=0o600, replace=False)
            except FileExistsError:  # another process made it meanwhile: use that one
                pem = path.read_bytes()
        loaded = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} does not hold an ECDSA key")
        return cls(loaded)

    def thumbprint(self) -> str:
        """RFC 7638: SHA-256 of the JWK's required members, sorted, without whitespace."""
        canonical = json.dumps(self.jwk, sort_keys=True, separators=(",", ":")).encode()
        return b64url(hashlib.sha256(canonical).digest())

    def sign(self, url: str, nonce: str, payload: Any, *, kid: str | None = None) -> bytes:
        """The request body for ``url``: ``payload`` None means POST-as-GET (an empty payload,
        RFC 8555 §6.3); ``kid`` None puts the public key in the header (newAccount)."""
        protected: dict[str, Any] = {"alg": "ES256", "nonce": nonce, "url": url}
        if kid is None:
            protected["jwk"] = self.jwk
        else:
            protected["kid"] = kid
        encoded_protected = b64url(json.dumps(protected).encode())
        encoded_payload = "" if payload is None else b64url(json.dumps(payload).encode())
        der = self._key.sign(f"{encoded_protected}.{encoded_payload}".encode("ascii"),
                             ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return json.dumps({"protected": encoded_protected, "payload": encoded_payload,
                           "signature": b64url(signature)}).encode()
