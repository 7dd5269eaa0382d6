"""DKIM vectors from $POSTOFFICE_CORPORA: dkimpy's test data (dkim-dkimpy, its key records listed in
dns-records.txt) and Stalwart mail-auth's DKIM cases (mail-auth-stalwart/dkim), served from
memory. See each corpus's SOURCE.txt for what upstream asserts."""
from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from tests.mailauth.memory_resolver import MemoryResolver

from postoffice.mailauth.dkim import sign_message, verify_dkim
from postoffice.mailauth.dkim_crypto import SigningKey
from postoffice.mailauth.results import DkimResult

STALWART_CLOCK = 1667843664  # upstream's fixed clock; 005.txt has an x= that has passed since
GMAIL_KEY = (
    "k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1Kd87/UeJjenpabgbFwh+eBCsSTrqmwIYYvywlbh"
    "bqoo2DymndFkbjOVIPIldNs/m40KF+yzMn1skyoxcTUGCQs8g3FgD2Ap3ZB5DekAo5wMmk4wimDO+U8QzI3SD07y2+07w"
    "lNWwIt8svnxgdxGkVbbhzY8i+RQ9DpSVpPbF7ykQxtKXkv/ahW3KjViiAH+ghvvIhkx4xYSIc9oSwVmAl5OctMEeWUwg8"
    "Istjqz8BZeTWbf41fbNhte7Y+YqZOwq1Sd0DbvYAD9NOZK9vlfuac0598HY+vtSBczUiKERHv1yRbcaQtZFh5wtiRrN0"
    "4BLUTD21MycBX5jYchHjPY/wIDAQAB")
RFC8463_ED25519 = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
CANONICALIZATIONS = ["simple/simple", "simple/relaxed", "relaxed/simple", "relaxed/relaxed"]


@pytest.fixture(scope="module")
def dkimpy_data(corpora: Path) -> Path:
    return corpora / "dkim-dkimpy" / "data"


def dkimpy_records(data: Path, test_record: str | None = None) -> MemoryResolver:
    """dns-records.txt as a resolver; ``test_record`` replaces test._domainkey.example.com."""
    rsa_record = (data / "test.txt").read_text().strip()
    return MemoryResolver({
        "test._domainkey.example.com": {"TXT": [test_record or rsa_record]},
        "test._domainkey.football.example.com": {"TXT": [rsa_record]},
        "brisbane._domainkey.football.example.com": {"TXT": [RFC8463_ED25519]},
        "test._domainkey.example.net": {"TXT": [(data / "ed25519test.dns").read_text().strip()]},
        "sed._domainkey.test.ex": {"TXT": [(data / "eximtest.dns").read_text().strip()]},
        "20120113._domainkey.gmail.com": {"TXT": [GMAIL_KEY]},
    })


def verify(resolver: MemoryResolver, message: bytes, now: float | None = None) -> list[DkimResult]:
    return list(asyncio.run(verify_dkim(resolver, message, now=now)))


def rsa_key(data: Path) -> SigningKey:
    key = serialization.load_pem_private_key((data / "test.private").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def ed25519_key(data: Path) -> SigningKey:
    seed = base64.b64decode((data / "ed25519test.key").read_text())
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


@pytest.mark.parametrize(("name", "domains"), [
    ("rfc6376.signed.msg", ["football.example.com", "football.example.com"]),
    ("ed25519test2.msg", ["test.ex"]),  # signed by an early Exim ed25519 implementation
    ("test2.message", ["gmail.com"]),  # real Gmail mail with degenerate folding (Debian #711751)
])
def test_dkimpy_signed_messages_verify(dkimpy_data: Path, name: str, domains: list[str]) -> None:
    results = verify(dkimpy_records(dkimpy_data), (dkimpy_data / name).read_bytes())
    assert [(r.result, r.domain) for r in results] == [("pass", d) for d in domains]


@pytest.mark.parametrize("canonicalization", CANONICALIZATIONS)
@pytest.mark.parametrize(("key", "domain"), [(rsa_key, "example.com"),
                                             (ed25519_key, "example.net")])
def test_sign_then_verify_every_canonicalization(dkimpy_data: Path, canonicalization: str,
                                                 key: object, domain: str) -> None:
    message = (dkimpy_data / "test.message").read_bytes()
    signing_key = key(dkimpy_data)  # type: ignore[operator]
    field = sign_message(message, domain, "test", signing_key, canonicalization=canonicalization)
    assert f"c={canonicalization};".encode() in field
    resolver = dkimpy_records(dkimpy_data)
    [result] = verify(resolver, field + message)
    assert (result.result, result.domain, result.problem) == ("pass", domain, "")
    [altered] = verify(resolver, field + message.replace(b"a test", b"a tested"))
    assert (altered.result, altered.problem) == ("fail", "the body hash did not verify")


@pytest.mark.parametrize("name", ["message.mbox", "test_extra.message"])
def test_sign_then_verify_with_many_and_repeated_headers(dkimpy_data: Path, name: str) -> None:
    message = (dkimpy_data / name).read_bytes()
    if message.startswith(b"From "):
        message = message.split(b"\n", 1)[1]  # the mbox separator line is not a header field
    field = sign_message(message, "example.com", "test", rsa_key(dkimpy_data),
                         headers=["from", "to", "subject", "received", "received", "date"])
    results = verify(dkimpy_records(dkimpy_data), field + message)
    assert [r.result for r in results if r.domain == "example.com"] == ["pass"]


@pytest.mark.parametrize(("record", "outcome"), [
    ("test2.txt", ("pass", "")),  # no k=: rsa is implied
    ("badversion.txt", ("permerror", "the key record's v= is not DKIM1 as its first tag")),
    ("badk.txt", ("permerror", "the key record's k=ed25519-sha256 is not rsa or ed25519")),
    ("test_tlsrpt.txt", ("permerror", "the key record is not for email (s=)")),
    ("test_bad.txt", ("permerror", "the key record's p= is not an RSA public key")),
])
def test_dkimpy_key_record_variants(dkimpy_data: Path, record: str,
                                    outcome: tuple[str, str]) -> None:
    message = (dkimpy_data / "test.message").read_bytes()
    field = sign_message(message, "example.com", "test", rsa_key(dkimpy_data))
    resolver = dkimpy_records(dkimpy_data, (dkimpy_data / record).read_text().strip())
    [result] = verify(resolver, field + message)
    assert (result.result, result.problem) == outcome


def test_a_message_without_from_is_not_signed(dkimpy_data: Path) -> None:
    message = (dkimpy_data / "test_nofrom.message").read_bytes()
    with pytest.raises(ValueError, match="without a From"):
        sign_message(message, "example.com", "test", rsa_key(dkimpy_data))


def stalwart_cases(corpora: Path) -> list[Path]:
    return sorted((corpora / "mail-auth-stalwart" / "dkim").glob("*.txt"))


def read_stalwart_case(path: Path) -> tuple[MemoryResolver, bytes]:
    records, _, message = path.read_bytes().partition(b"\n\n")
    zone: dict[str, dict[str, list[str]]] = {}
    for line in records.decode().splitlines():
        name, value = line.split(" ", 1)
        zone.setdefault(name, {"TXT": []})["TXT"].append(value)
    return MemoryResolver(zone), message.replace(b"\n", b"\r\n")


def test_stalwart_dkim_cases_all_pass_at_the_fixed_clock(corpora: Path) -> None:
    cases = stalwart_cases(corpora)
    assert len(cases) == 6
    for path in cases:
        resolver, message = read_stalwart_case(path)
        results = verify(resolver, message, now=STALWART_CLOCK)
        assert results and all(r.result == "pass" for r in results), (path.name, results)
        assert not any(r.body_length_limited or r.testing for r in results)


def test_stalwart_signature_with_x_has_expired_by_now(corpora: Path) -> None:
    resolver, message = read_stalwart_case(corpora / "mail-auth-stalwart" / "dkim" / "005.txt")
    [result] = verify(resolver, message)
    assert (result.result, result.problem) == ("permerror", "the signature has expired (x=)")
