"""DKIM signing keys in the data directory, and the DNS record that publishes each one.

A domain's key for a selector lives in ``<data dir>/keys/<domain>.<selector>.pem`` as an
unencrypted PKCS#8 PEM file, mode 0600. Its public half is published as a TXT record at
``<selector>._domainkey.<domain>`` (RFC 6376 §3.6.1), whose value :func:`dkim_public_record`
builds.

RSA with 2048 bits is the default: RFC 8301 §3.2 requires at least 1024 and recommends 2048, and
larger keys no longer fit in one 255-byte TXT string, which some DNS hosting panels mishandle.
Each domain also gets an Ed25519 key (RFC 8463) under its own selector, `ed25519_selector`: a
verifier that knows ed25519-sha256 checks that signature, the others the RSA one (RFC 8463 §4
expects signers to send both while Ed25519 support spreads).

These functions are synchronous. Generating a 2048-bit RSA key takes tens to hundreds of
milliseconds, so async callers run them in a thread: ``await asyncio.to_thread(generate_dkim_key,
path)``.
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from postoffice.durable import write_file

__all__ = ["dkim_key_path", "dkim_public_record", "domain_key_files", "ed25519_selector",
           "generate_dkim_key"]

_EXISTS = ("The DKIM key {path} already exists; remove it first if you really want a new key, "
           "then publish the new DNS record.")


def dkim_key_path(data_dir: Path, domain: str, selector: str) -> Path:
    """``data_dir/keys/<domain>.<selector>.pem``, with both names lower-cased.

    DNS names are case-insensitive, so "Example.COM" and "example.com" must share one key file.
    Raises ValueError for names that could escape the keys directory.
    """
    domain = domain.lower().removesuffix(".")
    selector = selector.lower()
    for name in (domain, selector):
        if not name or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
            raise ValueError(f"{name!r} cannot be part of a DKIM key file name")
    return Path(data_dir) / "keys" / f"{domain}.{selector}.pem"


def ed25519_selector(selector: str) -> str:
    """The selector of a domain's Ed25519 key, beside ``selector`` of its RSA key:
    "mail" -> "mail-ed25519"."""
    return f"{selector}-ed25519"


def domain_key_files(data_dir: Path, domain: str, selector: str) -> list[tuple[str, Path]]:
    """(selector, key file) of the keys a domain gets: RSA under ``selector``, then Ed25519."""
    return [(s, dkim_key_path(data_dir, domain, s)) for s in (selector, ed25519_selector(selector))]


def generate_dkim_key(key_file: Path, bits: int = 2048, *,
                      kind: Literal["rsa", "ed25519"] = "rsa") -> None:
    """Write a new private key to ``key_file`` (PKCS#8 PEM, mode 0600, atomically): RSA with
    ``bits`` bits, or Ed25519 (``bits`` ignored).

    Refuses to overwrite an existing file, because replacing a published key breaks the DKIM
    signatures of mail still in flight: raises FileExistsError with a plain sentence.
    """
    if kind == "rsa" and not 1024 <= bits <= 4096:
        raise ValueError(f"a DKIM RSA key must have 1024 to 4096 bits, not {bits} (RFC 8301)")
    key_file = Path(key_file)
    if key_file.exists():
        raise FileExistsError(_EXISTS.format(path=key_file))
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write_new_file(key_file, pem)


def dkim_public_record(key_file: Path) -> str:
    """The TXT value that publishes ``key_file``'s public key: ``v=DKIM1; k=rsa; p=...``.

    ``p=`` is the base64 DER SubjectPublicKeyInfo (RFC 6376 §3.6.1). An Ed25519 key gets
    ``k=ed25519`` and its raw 32-byte key instead (RFC 8463 §4.2).
    """
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        der = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"
    raise ValueError(f"{key_file} holds a {type(key).__name__}, but DKIM keys must be RSA or "
                     "Ed25519")


def _write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data``, complete and durable, or fail if it already exists."""
    # 0700: the directory holds private keys; mkdir only applies the mode to the last part.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        write_file(path, data, mode=0o600, replace=False)
    except FileExistsError:
        raise FileExistsError(_EXISTS.format(path=path)) from None
