"""Cross-checks with dkimpy, an independent implementation (a test dependency only): what we sign
it verifies, and what it signs we verify, for RSA and Ed25519 and every canonicalisation."""
from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from tests.mailauth.memory_resolver import MemoryResolver

from postoffice.mailauth.dkim import sign_message, verify_dkim
from postoffice.mailauth.dkim_crypto import SigningKey, load_signing_key
from postoffice.mailauth.dkimkeys import dkim_public_record, generate_dkim_key

dkim = pytest.importorskip("dkim", reason="dkimpy is not installed (pip package dkimpy, in the "
                                          "[test] extras: make test installs it)")

MESSAGE = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nCc: carol@example.net\r\n"
           b"Subject: Interop\r\nDate: Sun, 06 Dec 2026 11:00:00 +0000\r\n"
           b"Message-ID: <interop@example.org>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
           b"Tabs\tand  spaces  \r\nstay \t put.\r\n\r\n\r\n")
CANONICALIZATIONS = ["simple/simple", "simple/relaxed", "relaxed/simple", "relaxed/relaxed"]


@pytest.fixture(scope="module", params=["rsa", "ed25519"])
def key(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[SigningKey, str]:
    """A key as `postoffice domain add` writes it, and the TXT record it publishes."""
    path = tmp_path_factory.mktemp("keys") / f"example.org.{request.param}.pem"
    generate_dkim_key(path, kind=request.param)
    return load_signing_key(path.read_bytes()), dkim_public_record(path)


def dnsfunc(record: str) -> Callable[..., bytes]:
    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return record.encode() if name.rstrip(b".") == b"sel._domainkey.example.org" else b""
    return lookup


def pkcs8_pem(private: SigningKey) -> bytes:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        # dkimpy takes the raw Ed25519 seed, base64-encoded.
        return base64.b64encode(private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()))
    assert isinstance(private, rsa.RSAPrivateKey)
    return private.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())


@pytest.mark.parametrize("canonicalization", CANONICALIZATIONS)
def test_dkimpy_verifies_what_we_sign(key: tuple[SigningKey, str], canonicalization: str) -> None:
    private, record = key
    field = sign_message(MESSAGE, "example.org", "sel", private, canonicalization=canonicalization)
    assert dkim.verify(field + MESSAGE, dnsfunc=dnsfunc(record))
    assert not dkim.verify(field + MESSAGE.replace(b"put", b"out"), dnsfunc=dnsfunc(record))


@pytest.mark.parametrize("canonicalization", CANONICALIZATIONS)
@pytest.mark.parametrize("length", [False, True])
def test_we_verify_what_dkimpy_signs(key: tuple[SigningKey, str], canonicalization: str,
                                     length: bool) -> None:
    private, record = key
    header, body = (c.encode() for c in canonicalization.split("/"))
    algorithm = b"ed25519-sha256" if isinstance(private, ed25519.Ed25519PrivateKey) else b"rsa-sha256"
    field = dkim.sign(MESSAGE, b"sel", b"example.org", pkcs8_pem(private), canonicalize=(header, body),
                      signature_algorithm=algorithm, length=length)
    resolver = MemoryResolver({"sel._domainkey.example.org": {"TXT": [record]}})
    [result] = asyncio.run(verify_dkim(resolver, field + MESSAGE))
    assert (result.result, result.domain, result.body_length_limited) == ("pass", "example.org", length)
    if length:
        # l= lets anyone append to the body: still a pass, but the result says so.
        [appended] = asyncio.run(verify_dkim(resolver, field + MESSAGE + b"Buy now!\r\n"))
        assert (appended.result, appended.body_length_limited) == ("pass", True)
