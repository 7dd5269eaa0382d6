"""DKIM keys and signatures: key records (RFC 6376 §3.6.1), rsa-sha256 (RFC 8301), ed25519-sha256
(RFC 8463), all with `cryptography`.

    key = parse_key_record("v=DKIM1; k=ed25519; p=11qYAYKx...")
    verify_signature(key, "ed25519-sha256", signed_bytes, signature)   # raises SignatureInvalid
    signature = sign_bytes(load_signing_key(pem), signed_bytes)

Policy from RFC 8301: rsa-sha1 is never valid (`WeakAlgorithm`), RSA keys under 1024 bits are
refused (`KeyTooShort`). ed25519-sha256 signs the SHA-256 digest of the data, not the data
(RFC 8463 §3). An empty ``p=`` is a revoked key. Every problem with a record or a signature is a
`DkimKeyError` subclass whose message is one plain sentence, for the Authentication-Results
comment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from postoffice.mailauth.dkim_tags import TagListError, parse_tag_list, split_colon_list, strip_fws

__all__ = ["ALGORITHMS", "Algorithm", "DkimKey", "DkimKeyError", "KeyRevoked", "KeyTooShort",
           "SignatureInvalid", "SigningKey", "WeakAlgorithm", "algorithm_of", "hash_function",
           "load_signing_key", "parse_key_record", "sign_bytes", "verify_signature"]

Algorithm = Literal["rsa-sha256", "ed25519-sha256", "rsa-sha1"]
ALGORITHMS: tuple[Algorithm, ...] = ("rsa-sha256", "ed25519-sha256", "rsa-sha1")
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey
SigningKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

MIN_RSA_BITS = 1024  # RFC 8301 §3.2: verifiers MUST NOT consider shorter keys valid
MAX_RSA_BITS = 8192  # bounds the cost of one verification a stranger can make us do


_KEY_TYPES: dict[str, Literal["rsa", "ed25519"]] = {"rsa": "rsa", "ed25519": "ed25519"}


class DkimKeyError(ValueError):
    """A key record or signature that cannot be used; the message is one plain sentence."""


class KeyRevoked(DkimKeyError):
    pass


class KeyTooShort(DkimKeyError):
    pass


class WeakAlgorithm(DkimKeyError):
    pass


class SignatureInvalid(DkimKeyError):
    pass


@dataclass(frozen=True, slots=True)
class DkimKey:
    """A parsed DKIM key record."""

    key_type: Literal["rsa", "ed25519"]
    public_key: PublicKey
    hash_algorithms: tuple[str, ...] | None  # h=: None means any
    testing: bool  # t=y
    strict_identity: bool  # t=s: i= must be exactly d=, not a subdomain
    notes: str = ""


# Parsed key records by their exact text. Loading an RSA key (DER, then the key object) cost more
# than the rest of one message's checks; the same few records come with most mail. Keyed by the
# record text, so a record that changes in DNS (after the resolver's TTL) is parsed afresh.
KEY_CACHE_ENTRIES = 1024
KEY_CACHE_MAX_RECORD = 4096  # longer records (never a real key: 8192-bit RSA is ~1.4 KB) are not kept


class _ParsedKeyCache:
    """A bounded LRU of record text -> DkimKey or the DkimKeyError it raised; thread-safe (the
    checks of big messages run in threads)."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._items: OrderedDict[str, DkimKey | DkimKeyError] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, record: str) -> DkimKey | DkimKeyError | None:
        with self._lock:
            found = self._items.get(record)
            if found is not None:
                self._items.move_to_end(record)
            return found

    def put(self, record: str, parsed: DkimKey | DkimKeyError) -> None:
        if len(record) > KEY_CACHE_MAX_RECORD:
            return
        with self._lock:
            self._items[record] = parsed
            self._items.move_to_end(record)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


parsed_keys = _ParsedKeyCache(KEY_CACHE_ENTRIES)


def parse_key_record(record: str) -> DkimKey:
    """The key in a ``<selector>._domainkey.<domain>`` TXT record.

    Raises `KeyRevoked` for an empty p=, `KeyTooShort` for RSA under 1024 bits, and
    `DkimKeyError` for any other fault (syntax, v= other than DKIM1, unknown k=, a key that does
    not decode, a service type list without "email" or "*"). Results (and faults) are remembered
    by the record's text in `parsed_keys`.
    """
    found = parsed_keys.get(record)
    if found is None:
        try:
            found = _parse_key_record(record)
        except DkimKeyError as e:
            found = e
        parsed_keys.put(record, found)
    if isinstance(found, DkimKeyError):
        raise type(found)(str(found))  # a fresh exception: a cached one would gather tracebacks
    return found


def _parse_key_record(record: str) -> DkimKey:
    try:
        tags = parse_tag_list(record)
    except TagListError as e:
        raise DkimKeyError(f"the key record is not a valid tag list: {e}") from None
    if "v" in tags and (tags["v"] != "DKIM1" or next(iter(tags)) != "v"):
        raise DkimKeyError("the key record's v= is not DKIM1 as its first tag")
    key_type = _KEY_TYPES.get(tags.get("k", "rsa"))
    if key_type is None:
        raise DkimKeyError(f"the key record's k={tags['k'][:30]} is not rsa or ed25519")
    services = split_colon_list(tags.get("s", "*"))
    if "*" not in services and "email" not in services:
        raise DkimKeyError("the key record is not for email (s=)")
    if "p" not in tags:
        raise DkimKeyError("the key record has no p=")
    encoded = strip_fws(tags["p"])
    if not encoded:
        raise KeyRevoked("the key has been revoked (empty p=)")
    try:
        der = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise DkimKeyError("the key record's p= is not base64") from None
    flags = split_colon_list(tags.get("t", ""))
    hashes_allowed = tuple(split_colon_list(tags["h"])) if "h" in tags else None
    public_key = _load_public_key(key_type, der)
    return DkimKey(key_type, public_key, hashes_allowed, "y" in flags, "s" in flags, tags.get("n", ""))


def _load_public_key(key_type: Literal["rsa", "ed25519"], der: bytes) -> PublicKey:
    if key_type == "ed25519":
        if len(der) != 32:
            raise DkimKeyError(f"an ed25519 key is 32 bytes, not {len(der)} (RFC 8463)")
        return ed25519.Ed25519PublicKey.from_public_bytes(der)
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        # Some signers publish the bare PKCS#1 RSAPublicKey instead of SubjectPublicKeyInfo.
        pem = b"-----BEGIN RSA PUBLIC KEY-----\n" + base64.encodebytes(der) + b"-----END RSA PUBLIC KEY-----\n"
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm):
            raise DkimKeyError("the key record's p= is not an RSA public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise DkimKeyError("the key record says k=rsa but p= holds another kind of key")
    if key.key_size < MIN_RSA_BITS:
        raise KeyTooShort(f"the RSA key has {key.key_size} bits, fewer than 1024 (RFC 8301)")
    if key.key_size > MAX_RSA_BITS:
        raise DkimKeyError(f"the RSA key has {key.key_size} bits, more than {MAX_RSA_BITS}")
    return key


def hash_function(algorithm: str) -> str:
    """The hashlib name behind an a= value: "sha256" or "sha1"."""
    return algorithm.rpartition("-")[2]


def verify_signature(key: DkimKey, algorithm: str, signed: bytes, signature: bytes) -> None:
    """Check ``signature`` over the canonical header bytes ``signed``; return only if it holds.

    Raises `WeakAlgorithm` for rsa-sha1 (RFC 8301 §3.1), `DkimKeyError` when the key does not
    fit the algorithm (k=, h=), `SignatureInvalid` when the signature does not verify.
    """
    if algorithm == "rsa-sha1":
        raise WeakAlgorithm("rsa-sha1 signatures are not accepted (RFC 8301)")
    if algorithm not in ("rsa-sha256", "ed25519-sha256"):
        raise DkimKeyError(f"unknown signature algorithm {algorithm[:30]}")
    if algorithm.partition("-")[0] != key.key_type:
        raise DkimKeyError(f"the key is k={key.key_type}, the signature a={algorithm}")
    if key.hash_algorithms is not None and hash_function(algorithm) not in key.hash_algorithms:
        raise DkimKeyError(f"the key record's h= does not allow {hash_function(algorithm)}")
    try:
        if isinstance(key.public_key, ed25519.Ed25519PublicKey):
            key.public_key.verify(signature, hashlib.sha256(signed).digest())
        else:
            key.public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise SignatureInvalid("the signature does not verify") from None


def load_signing_key(pem: bytes) -> SigningKey:
    """A private key from the PEM that mailauth.dkimkeys writes (PKCS#8, RSA or Ed25519)."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise DkimKeyError(f"a DKIM key must be RSA or Ed25519, not {type(key).__name__}")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
        raise KeyTooShort(f"the RSA key has {key.key_size} bits, fewer than 1024 (RFC 8301)")
    return key


def algorithm_of(key: SigningKey) -> Algorithm:
    """The a= value a signature made with ``key`` carries."""
    return "ed25519-sha256" if isinstance(key, ed25519.Ed25519PrivateKey) else "rsa-sha256"


def sign_bytes(key: SigningKey, signed: bytes) -> bytes:
    """The raw signature (b= before base64) over the canonical header bytes ``signed``."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(hashlib.sha256(signed).digest())
    return key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
