"""DKIM signing of outgoing mail (queue/signing.py) with the keys `init`/`domain add` make: what
we sign verifies with our own verify_dkim through the real loopback DNS, and with dkimpy."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.mailauth.memory_resolver import MemoryResolver

from dns_server import DnsServers
from live_server import _initialised_copy
from postoffice.config import load_config
from postoffice.mailauth.dkim import verify_dkim
from postoffice.mailauth.dkim_selectors import read_selectors, rotate
from postoffice.mailauth.dkimkeys import dkim_public_record, domain_key_files
from postoffice.mailauth.resolver import DnsResolver
from postoffice.queue.signing import MessageSigner, author_domain
from postoffice.services import Services, open_services
from postoffice.setup.domain_keys import create_domain_keys

dkim = pytest.importorskip("dkim", reason="dkimpy is not installed (pip package dkimpy, in the "
                                          "[test] extras: make test installs it)")

MESSAGE = (b"From: Alice <alice@example.test>\r\nTo: bob@example.net\r\nSubject: Outbound\r\n"
           b"Date: Sun, 06 Dec 2026 12:00:00 +0000\r\nMessage-ID: <out@example.test>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           b"Caf\xc3\xa9 \t at  noon.\r\n.dot line\r\n\r\n")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """An initialised data directory serving example.test, with its keys (selector "mail")."""
    _initialised_copy(tmp_path / "data")
    return tmp_path / "data"


class Signing:
    """A MessageSigner on a data directory's real store, and a loop to drive it from a test."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.loop = asyncio.new_event_loop()
        self.config = load_config(data)
        self._services = open_services(self.config)
        self.services: Services = self.loop.run_until_complete(self._services.__aenter__())
        # recheck_seconds=0: these tests change key files and sign at once
        self.signer = MessageSigner(data, default_selector=self.config.dkim.selector,
                                    is_local_domain=self.services.directory.is_local_domain, recheck_seconds=0)

    def sign(self, raw: bytes, sender: str = "alice@example.test") -> bytes:
        return self.loop.run_until_complete(asyncio.wait_for(self.signer.sign(raw, sender), 60))

    def run(self, coro: object) -> object:
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.run_until_complete(self._services.__aexit__(None, None, None))
        self.loop.close()


@pytest.fixture
def signing(data: Path) -> Iterator[Signing]:
    s = Signing(data)
    yield s
    s.close()


def published(data: Path, domain: str, selector: str) -> dict[str, str]:
    """The TXT records of a selector's key pair, as `domain add` prints them."""
    return {f"{s}._domainkey.{domain}": dkim_public_record(path)
            for s, path in domain_key_files(data, domain, selector) if path.exists()}


def memory_verify(records: dict[str, str], message: bytes) -> list[tuple[str, str, str, str]]:
    resolver = MemoryResolver({name: {"TXT": [value]} for name, value in records.items()})
    return sorted((r.result, r.algorithm, r.domain, r.selector)
                  for r in asyncio.run(verify_dkim(resolver, message)))


def dkimpy_verifies(records: dict[str, str], message: bytes) -> list[bool]:
    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode().rstrip("."), "").encode()
    checker = dkim.DKIM(message)
    count = sum(1 for line in message.split(b"\r\n\r\n")[0].split(b"\r\n")
                if line.lower().startswith(b"dkim-signature:"))
    outcomes = []
    for i in range(count):
        try:
            outcomes.append(bool(checker.verify(idx=i, dnsfunc=lookup)))
        except dkim.DKIMException:  # dkimpy raises for some failures instead of returning False
            outcomes.append(False)
    return outcomes


def signature_fields(message: bytes) -> list[bytes]:
    header = message.split(b"\r\n\r\n")[0]
    return [line for line in header.replace(b"\r\n\t", b" ").replace(b"\r\n ", b" ").split(b"\r\n")
            if line.lower().startswith(b"dkim-signature:")]


def test_mail_from_a_local_domain_gets_rsa_and_ed25519_signatures_that_verify(signing: Signing) -> None:
    signed = signing.sign(MESSAGE)
    assert signed.endswith(MESSAGE)  # fields on top, the message itself untouched (8-bit kept)
    fields = signature_fields(signed)
    assert len(fields) == 2
    assert any(b"a=rsa-sha256" in f and b"s=mail;" in f for f in fields)
    assert any(b"a=ed25519-sha256" in f and b"s=mail-ed25519;" in f for f in fields)
    assert all(b"d=example.test;" in f and b"c=relaxed/relaxed;" in f for f in fields)

    records = published(signing.data, "example.test", "mail")
    assert memory_verify(records, signed) == [
        ("pass", "ed25519-sha256", "example.test", "mail-ed25519"),
        ("pass", "rsa-sha256", "example.test", "mail")]
    assert dkimpy_verifies(records, signed) == [True, True]
    tampered = signed.replace(b"noon", b"nine")
    assert dkimpy_verifies(records, tampered) == [False, False]



def txt_strings(value: str) -> str:
    """A TXT value as zone-file character-strings of at most 255 bytes (RFC 1035 §3.3)."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


def test_signatures_verify_through_the_loopback_dns(signing: Signing, dns_server: DnsServers) -> None:
    """A domain of its own (signed.test), added as `domain add` does, its records served by
    NSD and asked through Unbound, as a receiving server would."""
    signing.run(signing.services.directory.add_domain("signed.test"))
    create_domain_keys(signing.data, "signed.test", "mail")
    records = published(signing.data, "signed.test", "mail")
    dns_server.add_zone("signed.test", "".join(
        f"{name.removesuffix('.signed.test')} TXT {txt_strings(value)}\n" for name, value in records.items()))
    message = MESSAGE.replace(b"example.test", b"signed.test")
    signed = signing.sign(message, "alice@signed.test")

    async def over_dns() -> list[tuple[str, str]]:
        resolver = DnsResolver((dns_server.address,), timeout=3.0)
        return sorted((r.result, r.selector) for r in await verify_dkim(resolver, signed))
    assert asyncio.run(over_dns()) == [("pass", "mail"), ("pass", "mail-ed25519")]


def test_mail_from_other_domains_is_not_signed(signing: Signing) -> None:
    other = MESSAGE.replace(b"alice@example.test", b"alice@example.net")
    assert signing.sign(other, "alice@example.net") == other
    # the author domain decides, not the envelope: a forwarded message keeps its author's
    assert signing.sign(other, "alice@example.test") == other
    assert signing.sign(other, "") == other


def test_without_a_usable_from_the_envelope_sender_domain_signs(signing: Signing) -> None:
    message = MESSAGE.replace(b"From: Alice <alice@example.test>", b"From: undisclosed-sender:;")
    assert author_domain(message, "Bob@Example.TEST") == "example.test"
    signed = signing.sign(message, "bob@example.test")
    assert memory_verify(published(signing.data, "example.test", "mail"), signed) == [
        ("pass", "ed25519-sha256", "example.test", "mail-ed25519"),
        ("pass", "rsa-sha256", "example.test", "mail")]


def test_a_local_domain_without_keys_goes_unsigned_with_one_warning(
        signing: Signing, caplog: pytest.LogCaptureFixture) -> None:
    signing.run(signing.services.directory.add_domain("nokeys.test"))
    message = MESSAGE.replace(b"example.test", b"nokeys.test")
    with caplog.at_level(logging.WARNING, logger="postoffice.queue.signing"):
        assert signing.sign(message, "alice@nokeys.test") == message
        assert signing.sign(message, "alice@nokeys.test") == message
    warnings = [r.getMessage() for r in caplog.records if r.name == "postoffice.queue.signing"]
    assert len(warnings) == 1, warnings  # once per domain and cause, not per message
    assert "nokeys.test leaves without a DKIM signature" in warnings[0]
    assert "postoffice dkim rotate nokeys.test" in warnings[0]

    create_domain_keys(signing.data, "nokeys.test", "mail")  # keys appear: signed at once
    assert len(signature_fields(signing.sign(message, "alice@nokeys.test"))) == 2


def test_ed25519_never_signs_alone(signing: Signing) -> None:
    rsa_file, ed_file = (path for _, path in domain_key_files(signing.data, "example.test", "mail"))
    rsa_file.rename(rsa_file.with_suffix(".away"))
    assert signing.sign(MESSAGE) == MESSAGE
    rsa_file.with_suffix(".away").rename(rsa_file)
    ed_file.unlink()  # without Ed25519, RSA alone is fine
    fields = signature_fields(signing.sign(MESSAGE))
    assert len(fields) == 1 and b"a=rsa-sha256" in fields[0]


def test_a_damaged_key_file_leaves_the_message_unsigned_or_rsa_only(
        signing: Signing, caplog: pytest.LogCaptureFixture) -> None:
    (_, rsa_file), (_, ed_file) = domain_key_files(signing.data, "example.test", "mail")
    good = rsa_file.read_bytes()
    damaged = b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n"
    with caplog.at_level(logging.WARNING, logger="postoffice.queue.signing"):
        rsa_file.write_bytes(damaged)
        assert signing.sign(MESSAGE) == MESSAGE
        rsa_file.write_bytes(good)
        ed_file.write_bytes(damaged)
        fields = signature_fields(signing.sign(MESSAGE))
    assert len(fields) == 1 and b"a=rsa-sha256" in fields[0]
    warnings = [r.getMessage() for r in caplog.records if r.name == "postoffice.queue.signing"]
    assert len(warnings) == 2
    assert "without a DKIM signature: its RSA key" in warnings[0]
    assert "with only an RSA DKIM signature: its Ed25519 key" in warnings[1]


def test_a_big_message_is_signed_off_the_event_loop_and_verifies(signing: Signing) -> None:
    big = MESSAGE + (b"y" * 998 + b"\r\n") * 2000  # 2 MB
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async def both() -> bytes:
        stop = asyncio.Event()
        task = asyncio.ensure_future(ticker(stop))
        try:
            return await signing.signer.sign(big, "alice@example.test")
        finally:
            stop.set()
            await task

    signed = signing.loop.run_until_complete(asyncio.wait_for(both(), 120))
    # The loop kept running while the message was hashed: ~4,500 turns here with the thread
    # (1,457 in one clean-clone CI run), ~400 (only while the store answered is_local_domain)
    # when it was signed on the loop; twice that is the bound, so a busy machine does not fail it.
    assert ticks > 800, ticks
    records = published(signing.data, "example.test", "mail")
    assert [r[0] for r in memory_verify(records, signed)] == ["pass", "pass"]


def test_rotate_switches_the_running_signer_to_the_spare_at_once(signing: Signing) -> None:
    selector = signing.config.dkim.selector
    spare = read_selectors(signing.data, "example.test", default=selector).spare
    assert spare is not None  # made with the domain, published with it
    selectors = sorted(f.split(b"s=")[1].split(b";")[0] for f in signature_fields(signing.sign(MESSAGE)))
    assert selectors == [b"mail", b"mail-ed25519"]  # the spare does not sign before the rotation

    done = rotate(signing.data, "example.test", default=selector)
    create_domain_keys(signing.data, "example.test", done.spare)
    assert (done.signing, done.retired) == (spare, "mail")
    signed = signing.sign(MESSAGE)  # the same signer: no restart needed
    assert sorted(r[3] for r in memory_verify(published(signing.data, "example.test", spare), signed)) == [
        spare, f"{spare}-ed25519"]
    assert memory_verify(published(signing.data, "example.test", spare), signed)[0][0] == "pass"


def test_the_key_files_are_looked_at_once_per_recheck_interval(signing: Signing) -> None:
    # A busy server does not stat three files per message: the keys it found are used until
    # recheck_seconds have passed, then a rotation is seen without a restart.
    selector = signing.config.dkim.selector
    signing.signer.recheck_seconds = 3600
    assert len(signature_fields(signing.sign(MESSAGE))) == 2
    done = rotate(signing.data, "example.test", default=selector)
    create_domain_keys(signing.data, "example.test", done.spare)
    kept = sorted(f.split(b"s=")[1].split(b";")[0] for f in signature_fields(signing.sign(MESSAGE)))
    assert kept == [b"mail", b"mail-ed25519"]  # within the interval: what it had
    signing.signer.recheck_seconds = 0  # the interval is over
    now = sorted(f.split(b"s=")[1].split(b";")[0] for f in signature_fields(signing.sign(MESSAGE)))
    assert done.signing is not None
    assert now == sorted([done.signing.encode(), f"{done.signing}-ed25519".encode()])
