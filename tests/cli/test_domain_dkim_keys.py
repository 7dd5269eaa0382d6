"""`postoffice domain add` (and `init --domain`) make the domain's DKIM keys, RSA-2048 and
Ed25519, each under its own selector, and print the TXT records that publish them."""
from __future__ import annotations

import asyncio
import datetime as dt
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from tests.mailauth.memory_resolver import MemoryResolver

from cli_run import po
from postoffice.mailauth.dkim import sign_message, verify_dkim
from postoffice.mailauth.dkim_crypto import load_signing_key

MONTH = dt.datetime.now(dt.UTC).strftime("%Y%m")
MESSAGE = b"From: a@example.net\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    po("init", "--hostname", "mail.example.org", data=d)
    return d


def printed_records(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^  (\S+\._domainkey\.\S+)  (v=DKIM1; .*)$", stdout, re.MULTILINE))


def test_domain_add_creates_rsa_and_ed25519_keys_that_sign_and_verify(data: Path) -> None:
    out = po("domain", "add", "Example.NET", data=data).stdout
    assert "Added the domain example.net." in out
    assert "selector mail, rsa-sha256" in out and "selector mail-ed25519, ed25519-sha256" in out
    every = printed_records(out)
    spare = [name for name in every if not name.startswith("mail")]
    assert spare == [f"{MONTH}._domainkey.example.net", f"{MONTH}-ed25519._domainkey.example.net"]
    assert f"spare DKIM key {data}/keys/example.net.{MONTH}.pem" in out
    assert "postoffice domain records example.net" in out
    records = {name: value for name, value in every.items() if name.startswith("mail")}
    assert list(records) == ["mail._domainkey.example.net", "mail-ed25519._domainkey.example.net"]
    assert records["mail._domainkey.example.net"].startswith("v=DKIM1; k=rsa; p=")
    assert records["mail-ed25519._domainkey.example.net"].startswith("v=DKIM1; k=ed25519; p=")

    rsa_pem = data / "keys" / "example.net.mail.pem"
    ed_pem = data / "keys" / "example.net.mail-ed25519.pem"
    rsa_key = serialization.load_pem_private_key(rsa_pem.read_bytes(), password=None)
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and rsa_key.key_size == 2048
    assert isinstance(serialization.load_pem_private_key(ed_pem.read_bytes(), password=None),
                      ed25519.Ed25519PrivateKey)
    assert {stat.S_IMODE(p.stat().st_mode) for p in (data / "keys").iterdir()} == {0o600}

    # What a receiver does with the published records: both signatures verify.
    resolver = MemoryResolver({name: {"TXT": [value]} for name, value in records.items()})
    message = MESSAGE
    for selector, pem in (("mail", rsa_pem), ("mail-ed25519", ed_pem)):
        message = sign_message(message, "example.net", selector, load_signing_key(pem.read_bytes())) + message
    results = asyncio.run(verify_dkim(resolver, message))
    assert sorted((r.result, r.selector) for r in results) == [("pass", "mail"), ("pass", "mail-ed25519")]


def test_init_with_a_domain_makes_the_same_two_keys(tmp_path: Path) -> None:
    out = po("init", "--domain", "example.org", "--hostname", "mail.example.org", data=tmp_path / "d").stdout
    assert sorted(p.name for p in (tmp_path / "d" / "keys").iterdir()) == [
        f"example.org.{MONTH}-ed25519.pem", f"example.org.{MONTH}.pem", "example.org.mail-ed25519.pem",
        "example.org.mail.pem", "example.org.selectors.json"]
    assert "selector mail-ed25519" in out and "mail._domainkey.example.org" in out
    assert "spare DKIM key" in out and f"{MONTH}._domainkey.example.org" in out


def test_a_refused_domain_makes_no_key_and_a_readded_one_keeps_its_keys(data: Path) -> None:
    bad = po("domain", "add", "bad_domain", data=data, check=False)
    assert bad.returncode == 1 and not (data / "keys").exists()

    po("domain", "add", "example.net", data=data)
    before = {p.name: p.read_bytes() for p in (data / "keys").iterdir()}
    again = po("domain", "add", "example.net", data=data, check=False)
    assert again.returncode == 1
    po("domain", "remove", "example.net", data=data)
    readded = po("domain", "add", "example.net", data=data).stdout
    assert readded.count("Kept the existing DKIM key") == 2
    assert readded.count("Kept the spare DKIM key") == 2
    assert {p.name: p.read_bytes() for p in (data / "keys").iterdir()} == before
    assert list(printed_records(readded)) == [
        "mail._domainkey.example.net", "mail-ed25519._domainkey.example.net",
        f"{MONTH}._domainkey.example.net", f"{MONTH}-ed25519._domainkey.example.net"]


def test_domain_add_help_names_both_selectors() -> None:
    out = po("domain", "add", "--help").stdout
    assert "Ed25519" in out and "mail-ed25519" in out and "spare" in out
