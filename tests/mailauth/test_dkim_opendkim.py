"""Interop with OpenDKIM (Debian opendkim, opendkim-tools), the signer/verifier of many Postfix
installations: what we sign it verifies, what it signs we verify.

OpenDKIM runs in its test mode (`opendkim -t FILE`: the milter's code on one message, without
Postfix), with its `TestPublicKeys` file standing in for DNS, since libopendkim cannot be pointed
at a DNS server on a loopback port; the signatures it would insert are the `INSHEADER` lines it
prints with -vvv.
"""
from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest
from tests.mailauth.memory_resolver import MemoryResolver

from postoffice.mailauth.dkim import sign_message, verify_dkim
from postoffice.mailauth.dkim_crypto import load_signing_key
from postoffice.mailauth.dkimkeys import dkim_public_record, generate_dkim_key
from postoffice.mailauth.results import DkimResult

pytestmark = pytest.mark.peer("opendkim")

MESSAGE = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: Interop  test\r\n"
           b"Date: Sun, 06 Dec 2026 11:00:00 +0000\r\nMessage-ID: <od@example.org>\r\n\r\n"
           b"Hello \t there.\r\n\r\nBye.\r\n\r\n")
KINDS = ["rsa", "ed25519"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """keys/<kind>.pem as `domain add` writes them, and keys/public.txt for TestPublicKeys."""
    folder = tmp_path_factory.mktemp("keys")
    lines = []
    for kind in KINDS:
        generate_dkim_key(folder / f"{kind}.pem", kind=kind)  # type: ignore[arg-type]
        lines.append(f"{kind}._domainkey.example.org {dkim_public_record(folder / f'{kind}.pem')}\n")
    (folder / "public.txt").write_text("".join(lines))
    return folder


def resolver(keys: Path) -> MemoryResolver:
    return MemoryResolver({name: {"TXT": [value]} for name, value in (
        line.split(" ", 1) for line in (keys / "public.txt").read_text().splitlines())})


def opendkim(conf: str, message: bytes, tmp_path: Path) -> str:
    (tmp_path / "opendkim.conf").write_text(
        conf + "Syslog no\nLogResults yes\nLogWhy yes\nRequireSafeKeys no\n")
    (tmp_path / "message.eml").write_bytes(message)
    run = subprocess.run(["opendkim", "-x", str(tmp_path / "opendkim.conf"), "-vvv", "-t",
                          str(tmp_path / "message.eml")], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=60)
    assert run.returncode == 0, run.stdout
    return run.stdout  # its verdict lines and debug output, both streams


@pytest.mark.parametrize("canonicalization", ["relaxed/relaxed", "simple/simple"])
@pytest.mark.parametrize("kind", KINDS)
def test_opendkim_verifies_what_we_sign(keys: Path, tmp_path: Path, kind: str,
                                        canonicalization: str) -> None:
    field = sign_message(MESSAGE, "example.org", kind,
                         load_signing_key((keys / f"{kind}.pem").read_bytes()),
                         canonicalization=canonicalization)
    conf = f"Mode v\nTestPublicKeys {keys / 'public.txt'}\n"
    verdict = opendkim(conf, field + MESSAGE, tmp_path)
    assert re.search(rf"verification \(s={kind}, d=example\.org, .*\) succeeded", verdict), verdict
    altered = opendkim(conf, field + MESSAGE.replace(b"Bye", b"Bye now"), tmp_path)
    assert "signature verification failed" in altered or "bad body hash" in altered, altered


def opendkim_signature(output: str) -> bytes:
    """The DKIM-Signature field OpenDKIM would insert, from its -vvv INSHEADER line."""
    match = re.search(r"INSHEADER: idx=0 hname='DKIM-Signature' hvalue='([^']*)'", output)
    assert match, output
    return b"DKIM-Signature: " + match.group(1).replace("\n", "\r\n").encode() + b"\r\n"


@pytest.mark.parametrize("canonicalization", ["relaxed/relaxed", "simple/simple", "relaxed/simple"])
@pytest.mark.parametrize("kind", KINDS)
def test_we_verify_what_opendkim_signs(keys: Path, tmp_path: Path, kind: str,
                                       canonicalization: str) -> None:
    conf = (f"Mode s\nDomain example.org\nSelector {kind}\nKeyFile {keys / f'{kind}.pem'}\n"
            f"SignatureAlgorithm {kind}-sha256\nCanonicalization {canonicalization}\n"
            "OversignHeaders From\n")
    field = opendkim_signature(opendkim(conf, MESSAGE, tmp_path))
    assert f"a={kind}-sha256".encode() in field
    [result] = asyncio.run(verify_dkim(resolver(keys), field + MESSAGE))
    if kind == "ed25519" and canonicalization.startswith("simple/"):
        # OpenDKIM 2.11 makes ed25519 signatures with simple header canonicalisation that
        # neither it (below), nor dkimpy, nor we can verify: its bug, and we agree on it.
        own = opendkim(f"Mode v\nTestPublicKeys {keys / 'public.txt'}\n", field + MESSAGE, tmp_path)
        assert "signature verification failed" in own, own
        assert (result.result, result.problem) == ("fail", "the signature did not verify")
        return
    assert (result.result, result.domain, result.selector) == ("pass", "example.org", kind)
    [altered] = asyncio.run(verify_dkim(resolver(keys), field + MESSAGE.replace(b"Bye", b"Bye now")))
    assert (altered.result, altered.problem) == ("fail", "the body hash did not verify")


@pytest.mark.peer("opendkim-testmsg", package="opendkim-tools")
def test_opendkim_testmsg_signs_with_rsa_sha1_which_rfc_8301_refuses(keys: Path) -> None:
    run = subprocess.run(["opendkim-testmsg", "-d", "example.org", "-s", "rsa", "-k",
                          str(keys / "rsa.pem"), "-C"], input=MESSAGE, capture_output=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert b"a=rsa-sha1;" in run.stdout  # opendkim-testmsg's default algorithm
    results = asyncio.run(verify_dkim(resolver(keys), run.stdout))
    assert results == (DkimResult("permerror", domain="example.org", selector="rsa",
                                  algorithm="rsa-sha1", identity="@example.org",
                                  signature_prefix=results[0].signature_prefix,
                                  problem="rsa-sha1 signatures are not accepted (RFC 8301)"),)
