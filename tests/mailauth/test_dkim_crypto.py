"""DKIM key records and the two signature algorithms, with RFC 8301's refusals."""
from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from postoffice.mailauth.dkim_crypto import (
    DkimKeyError,
    KeyRevoked,
    KeyTooShort,
    SignatureInvalid,
    WeakAlgorithm,
    algorithm_of,
    load_signing_key,
    parse_key_record,
    sign_bytes,
    verify_signature,
)

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def rsa_record(key: rsa.RSAPrivateKey | rsa.RSAPublicKey, extra: str = "", fmt: str = "spki") -> str:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    der = (public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
           if fmt == "pkcs1" else
           public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo))
    return f"v=DKIM1; k=rsa; {extra}p={base64.b64encode(der).decode()}"


def ed_record(key: ed25519.Ed25519PrivateKey, extra: str = "") -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; {extra}p={base64.b64encode(raw).decode()}"


@pytest.mark.parametrize("fmt", ["spki", "pkcs1"])
def test_rsa_signature_round_trip_with_either_public_key_form(fmt: str) -> None:
    key = parse_key_record(rsa_record(RSA_KEY, fmt=fmt))
    assert algorithm_of(RSA_KEY) == "rsa-sha256"
    signature = sign_bytes(RSA_KEY, b"signed bytes")
    verify_signature(key, "rsa-sha256", b"signed bytes", signature)
    with pytest.raises(SignatureInvalid):
        verify_signature(key, "rsa-sha256", b"signed bytez", signature)


def test_ed25519_signs_the_sha256_digest_as_rfc_8463_says() -> None:
    import hashlib
    key = parse_key_record(ed_record(ED_KEY))
    signature = sign_bytes(ED_KEY, b"data")
    assert algorithm_of(ED_KEY) == "ed25519-sha256"
    ED_KEY.public_key().verify(signature, hashlib.sha256(b"data").digest())
    verify_signature(key, "ed25519-sha256", b"data", signature)
    with pytest.raises(SignatureInvalid):
        verify_signature(key, "ed25519-sha256", b"other", signature)


def test_rsa_sha1_is_never_valid() -> None:
    key = parse_key_record(rsa_record(RSA_KEY))
    with pytest.raises(WeakAlgorithm, match="RFC 8301"):
        verify_signature(key, "rsa-sha1", b"x", b"whatever")


def test_keys_under_1024_bits_are_refused() -> None:
    # cryptography refuses to generate such keys; a public one needs only a 512-bit modulus.
    short = rsa.RSAPublicNumbers(65537, (1 << 511) | 0x1234567 | 1).public_key()
    with pytest.raises(KeyTooShort, match="fewer than 1024"):
        parse_key_record(rsa_record(short))


@pytest.mark.parametrize(("record", "complaint"), [
    ("v=DKIM1; k=rsa; p=", "revoked"),
    ("v=DKIM1: k=rsa; p=AAAA", "v= is not DKIM1"),
    ("k=rsa; v=DKIM1; p=AAAA", "v= is not DKIM1"),
    ("v=DKIM1; k=ed25519-sha256; p=AAAA", "k=ed25519-sha256 is not rsa or ed25519"),
    ("v=DKIM1; k=rsa", "no p="),
    ("v=DKIM1; k=rsa; p=!!!!", "not base64"),
    ("v=DKIM1; k=rsa; p=AAAA", "not an RSA public key"),
    ("v=DKIM1; k=ed25519; p=AAAA", "32 bytes"),
    ("v=DKIM1; k=rsa; s=tlsrpt; p=AAAA", "not for email"),
    ("v=DKIM1; k=rsa;; p=AAAA", "not a valid tag list"),
])
def test_bad_key_records_say_what_is_wrong(record: str, complaint: str) -> None:
    with pytest.raises(DkimKeyError, match=complaint) as raised:
        parse_key_record(record)
    assert isinstance(raised.value, KeyRevoked) == (complaint == "revoked")


def test_flags_and_hash_list_are_read_and_enforced() -> None:
    key = parse_key_record(rsa_record(RSA_KEY, extra="t=y:s; h=sha1; s=email:*; "))
    assert key.testing and key.strict_identity and key.hash_algorithms == ("sha1",)
    with pytest.raises(DkimKeyError, match="h= does not allow sha256"):
        verify_signature(key, "rsa-sha256", b"x", sign_bytes(RSA_KEY, b"x"))


def test_the_key_type_must_match_the_algorithm() -> None:
    key = parse_key_record(ed_record(ED_KEY))
    with pytest.raises(DkimKeyError, match="k=ed25519"):
        verify_signature(key, "rsa-sha256", b"x", sign_bytes(RSA_KEY, b"x"))


def test_signing_keys_load_from_pkcs8_pem_and_refuse_other_kinds() -> None:
    for key in (RSA_KEY, ED_KEY):
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        assert type(load_signing_key(pem)) is type(key)
    from cryptography.hazmat.primitives.asymmetric import ec
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(DkimKeyError, match="RSA or Ed25519"):
        load_signing_key(other)


def test_a_key_record_is_parsed_once_and_then_served_from_the_cache() -> None:
    from postoffice.mailauth.dkim_crypto import parsed_keys
    record = rsa_record(RSA_KEY, extra="n=cached; ")
    first = parse_key_record(record)
    assert parse_key_record(record) is first  # not loaded again
    assert parsed_keys.get(record) is first
    other = ed_record(ED_KEY, extra="n=cached; ")  # another record text: its own key
    assert parse_key_record(other) is not first and parse_key_record(other).key_type == "ed25519"


def test_a_changed_record_gives_the_new_key_not_the_cached_one() -> None:
    # The cache is keyed by the record's text: once the resolver's TTL lets a new record in,
    # signatures by the new key verify and those by the old key do not.
    old_key, new_key = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    old = parse_key_record(ed_record(old_key))
    verify_signature(old, "ed25519-sha256", b"data", sign_bytes(old_key, b"data"))
    new = parse_key_record(ed_record(new_key))
    verify_signature(new, "ed25519-sha256", b"data", sign_bytes(new_key, b"data"))
    with pytest.raises(SignatureInvalid):
        verify_signature(new, "ed25519-sha256", b"data", sign_bytes(old_key, b"data"))


def test_a_bad_record_raises_the_same_fault_every_time_from_the_cache() -> None:
    from postoffice.mailauth.dkim_crypto import parsed_keys
    record = "v=DKIM1; k=rsa; n=cached-fault; p="
    for _ in range(3):
        with pytest.raises(KeyRevoked, match="revoked") as raised:
            parse_key_record(record)
        assert raised.value is not parsed_keys.get(record)  # a fresh exception each time
    assert isinstance(parsed_keys.get(record), KeyRevoked)


def test_the_parsed_key_cache_is_bounded() -> None:
    from postoffice.mailauth.dkim_crypto import KEY_CACHE_ENTRIES, parsed_keys
    base = ed_record(ED_KEY)
    for i in range(KEY_CACHE_ENTRIES + 50):
        parse_key_record(f"{base}; n=number {i}")
    assert len(parsed_keys) == KEY_CACHE_ENTRIES
    assert parsed_keys.get(f"{base}; n=number 0") is None  # the least recently used went first
    assert parsed_keys.get(f"{base}; n=number {KEY_CACHE_ENTRIES + 49}") is not None
    huge = f"{base}; n={'x' * 5000}"
    parse_key_record(huge)
    assert parsed_keys.get(huge) is None  # records no key needs are not kept
