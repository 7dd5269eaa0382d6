"""DKIM keys: generation on disk, the published TXT record, and that the two belong together."""
from __future__ import annotations

import base64
import re
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from postoffice.mailauth.dkimkeys import dkim_key_path, dkim_public_record, generate_dkim_key


def record_tags(record: str) -> dict[str, str]:
    """RFC 6376 §3.2 tag list, enough for our own records."""
    return dict(part.strip().split("=", 1) for part in record.split(";"))


def test_key_path_is_keys_domain_selector_pem(tmp_path: Path) -> None:
    assert dkim_key_path(tmp_path, "example.com", "mail") == tmp_path / "keys/example.com.mail.pem"
    assert dkim_key_path(tmp_path, "Example.COM.", "Mail") == tmp_path / "keys/example.com.mail.pem"


@pytest.mark.parametrize(("domain", "selector"), [
    ("../etc", "mail"), ("example.com", "a/b"), ("", "mail"), ("example.com", ""),
])
def test_key_path_refuses_names_that_escape_the_keys_directory(tmp_path: Path, domain: str,
                                                               selector: str) -> None:
    with pytest.raises(ValueError):
        dkim_key_path(tmp_path, domain, selector)


def test_generated_key_is_rsa_2048_pkcs8_and_private(tmp_path: Path) -> None:
    key_file = dkim_key_path(tmp_path, "example.com", "mail")
    generate_dkim_key(key_file)

    pem = key_file.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, not "RSA PRIVATE KEY"
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert [p.name for p in key_file.parent.iterdir()] == ["example.com.mail.pem"]


def test_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "example.com.mail.pem"
    generate_dkim_key(key_file, bits=1024)
    before = key_file.read_bytes()

    with pytest.raises(FileExistsError, match="already exists"):
        generate_dkim_key(key_file, bits=1024)
    assert key_file.read_bytes() == before
    assert [p.name for p in key_file.parent.iterdir()] == ["example.com.mail.pem"]


@pytest.mark.parametrize("bits", [512, 8192])
def test_key_sizes_outside_rfc_8301_are_refused(tmp_path: Path, bits: int) -> None:
    with pytest.raises(ValueError, match="RFC 8301"):
        generate_dkim_key(tmp_path / "k.pem", bits=bits)
    assert not (tmp_path / "k.pem").exists()


def test_record_has_the_rfc_6376_format(tmp_path: Path) -> None:
    generate_dkim_key(tmp_path / "k.pem", bits=1024)
    record = dkim_public_record(tmp_path / "k.pem")

    assert re.fullmatch(r"v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+={0,2}", record)
    assert list(record_tags(record)) == ["v", "k", "p"]  # v= must come first (RFC 6376 §3.6.1)


def test_record_public_key_verifies_a_signature_made_with_the_private_key(tmp_path: Path) -> None:
    generate_dkim_key(tmp_path / "k.pem", bits=1024)
    private = serialization.load_pem_private_key((tmp_path / "k.pem").read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    # What a verifier does: decode p= as a SubjectPublicKeyInfo and check an rsa-sha256 signature.
    public = serialization.load_der_public_key(
        base64.b64decode(record_tags(dkim_public_record(tmp_path / "k.pem"))["p"]))
    assert isinstance(public, rsa.RSAPublicKey)
    headers = b"from:alice@example.com\r\nsubject:hello\r\n"
    signature = private.sign(headers, padding.PKCS1v15(), hashes.SHA256())

    public.verify(signature, headers, padding.PKCS1v15(), hashes.SHA256())  # raises if wrong
    with pytest.raises(InvalidSignature):
        public.verify(signature, headers + b"x", padding.PKCS1v15(), hashes.SHA256())


def test_ed25519_key_gets_a_raw_key_record(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "ed.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    tags = record_tags(dkim_public_record(tmp_path / "ed.pem"))
    assert tags["k"] == "ed25519"
    assert len(base64.b64decode(tags["p"])) == 32  # RFC 8463 §4.2: the bare key, not SPKI
