"""ARC chain validation (RFC 8617 §5.2) on chains sealed here: forwarding hops, a list footer
between hops (oldest-pass), tampering with each part, hostile header fields, the DMARC override
rule. The conformance suites are in tests/conformance/test_arc_suite.py."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.mailauth.memory_resolver import MemoryResolver

from postoffice.mailauth import arc
from postoffice.mailauth.arc import arc_overrides_dmarc, check_arc
from postoffice.mailauth.dkim_canon import (
    Canonicalization,
    HeaderField,
    body_hash,
    canonicalize_header,
    signed_header_data,
    split_message,
)
from postoffice.mailauth.dkim_crypto import SigningKey, algorithm_of, sign_bytes
from postoffice.mailauth.results import ArcResult, AuthenticationResults

KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
SEALERS = ("lists.example", "fwd.example", "relay.example")

MESSAGE = (b"From: Alice <alice@example.com>\r\nTo: list@lists.example\r\nSubject: hello\r\n"
           b"Date: Thu, 14 Jan 2015 15:00:01 -0800\r\nMessage-ID: <1@example.com>\r\n\r\n"
           b"Hi all,\r\nthis goes through a list.\r\n")


def resolver(**extra: dict[str, list[str]]) -> MemoryResolver:
    zone: dict[str, dict[str, list[str]]] = {
        f"arc._domainkey.{d}": {"TXT": [f"v=DKIM1; k=rsa; p={PUBLIC}"]} for d in SEALERS}
    zone.update(extra)
    return MemoryResolver(zone)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def seal(message: bytes, domain: str, cv: str | None = None, key: SigningKey = KEY) -> bytes:
    """Add one ARC Set as an intermediary would (RFC 8617 §5.1): AAR, AMS, then AS."""
    a = algorithm_of(key)
    fields, body = split_message(message)
    sets = [f for f in fields if f.name == b"arc-seal"]
    i = len(sets) + 1
    cv = cv or ("none" if i == 1 else "pass")
    aar = HeaderField(f"ARC-Authentication-Results: i={i}; {domain}; spf=pass "
                      f"smtp.mailfrom=example.com\r\n".encode())
    bh = _b64(body_hash("relaxed", body))
    ams_unsigned = (f"ARC-Message-Signature: i={i}; a={a}; c=relaxed/relaxed; d={domain};"
                    f" s=arc; h=from:to:subject:date:message-id; bh={bh}; b=")
    signed = signed_header_data("relaxed", [aar, *fields], ["from", "to", "subject", "date",
                                "message-id"], ams_unsigned.encode() + b"\r\n")
    ams = HeaderField((ams_unsigned + _b64(sign_bytes(key, signed)) + "\r\n").encode())
    as_unsigned = f"ARC-Seal: i={i}; a={a}; cv={cv}; d={domain}; s=arc; b="
    data = b"".join(canonicalize_header("relaxed", h) for arc_set in _arc_sets(fields)
                    for h in arc_set)
    data += canonicalize_header("relaxed", aar) + canonicalize_header("relaxed", ams)
    data += canonicalize_header("relaxed", as_unsigned.encode())[:-2]
    seal_field = (as_unsigned + _b64(sign_bytes(key, data)) + "\r\n").encode()
    return seal_field + ams.raw + aar.raw + message


def _arc_sets(fields: list[HeaderField]) -> list[tuple[HeaderField, ...]]:
    """The existing sets 1..n, each (AAR, AMS, AS), in instance order."""
    by_instance: dict[int, dict[bytes, HeaderField]] = {}
    for f in fields:
        if f.name.startswith(b"arc-"):
            value = f.raw.partition(b":")[2]
            i = int(value.split(b"i=", 1)[1].split(b";", 1)[0])
            by_instance.setdefault(i, {})[f.name] = f
    return [(s[b"arc-authentication-results"], s[b"arc-message-signature"], s[b"arc-seal"])
            for _, s in sorted(by_instance.items())]


async def test_no_arc_header_is_none() -> None:
    assert await check_arc(resolver(), MESSAGE) == ArcResult("none")


async def test_two_hop_chain_passes() -> None:
    message = seal(seal(MESSAGE, "lists.example"), "fwd.example")
    r = await check_arc(resolver(), message)
    assert r == ArcResult("pass", 2, ("lists.example", "fwd.example"), 0), r.problem


async def test_body_changed_after_the_last_seal_fails() -> None:
    message = seal(MESSAGE, "lists.example").replace(b"through a list", b"through a LIST")
    r = await check_arc(resolver(), message)
    assert r.result == "fail" and "body hash" in r.problem


async def test_list_footer_between_hops_passes_with_oldest_pass() -> None:
    first = seal(MESSAGE, "lists.example") + b"--\r\nlist footer\r\n"
    r = await check_arc(resolver(), seal(first, "fwd.example"))
    assert (r.result, r.oldest_pass, r.instances) == ("pass", 2, 2), r.problem
    header = AuthenticationResults("mx.example.org", arc=r).header_value()
    assert "arc=pass header.oldest-pass=2" in header


@pytest.mark.parametrize("old, new", [
    (b"i=1; lists.example; spf=pass", b"i=1; lists.example; spf=fail"),  # AAR(1)
    (b"s=arc; h=from", b"s=arc;  h=from"),  # AMS(1): relaxed canon hides this; see next
    (b"d=lists.example; s=arc; h=from", b"d=lists.example; s=arc; h=to:from"),  # AMS(1)
])
async def test_tampering_with_an_older_set_breaks_a_seal(old: bytes, new: bytes) -> None:
    message = seal(seal(MESSAGE, "lists.example"), "fwd.example")
    pos = message.rfind(old)
    tampered = message[:pos] + new + message[pos + len(old):]
    r = await check_arc(resolver(), tampered)
    if old == b"s=arc; h=from":
        assert r.result == "pass"  # white space inside a field: relaxed canonicalisation
    else:
        assert r.result == "fail" and "ARC-Seal" in r.problem


async def test_a_seal_that_says_fail_ends_the_chain() -> None:
    message = seal(seal(MESSAGE, "lists.example"), "fwd.example", cv="fail")
    r = await check_arc(resolver(), message)
    assert r.result == "fail" and "cv=fail" in r.problem


async def test_first_seal_must_say_none() -> None:
    r = await check_arc(resolver(), seal(MESSAGE, "lists.example", cv="pass"))
    assert r.result == "fail" and "cv=none" in r.problem


async def test_missing_set_member_fails() -> None:
    message = seal(seal(MESSAGE, "lists.example"), "fwd.example")
    start = message.find(b"ARC-Authentication-Results: i=1")
    end = message.find(b"\r\n", start) + 2
    r = await check_arc(resolver(), message[:start] + message[end:])
    assert r.result == "fail" and "ARC set i=1 has 0 ARC-Authentication-Results" in r.problem


async def test_key_lookup_timeout_fails_with_the_reason() -> None:
    res = resolver(**{"arc._domainkey.lists.example": {"TIMEOUT": ["1"]}})
    r = await check_arc(res, seal(MESSAGE, "lists.example"))
    assert r.result == "fail" and "temporary DNS error" in r.problem


async def test_ed25519_seals_verify() -> None:
    # RFC 8617 takes a= from DKIM; ed25519-sha256 (RFC 8463) is accepted like rsa-sha256.
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    res = resolver(**{"arc._domainkey.fwd.example": {"TXT": [f"v=DKIM1; k=ed25519; p={_b64(raw)}"]}})
    message = seal(seal(MESSAGE, "lists.example"), "fwd.example", key=key)
    assert (await check_arc(res, message)).result == "pass"


@pytest.mark.parametrize("garbage", [
    b"ARC-Seal: ;;;==\r\n",
    b"ARC-Seal: i=1; i=1; a=rsa-sha256\r\n",
    b"ARC-Seal: i=0; a=rsa-sha256; cv=none; d=x; s=y; b=AA==\r\n",
    b"ARC-Seal: i=51; a=rsa-sha256; cv=pass; d=x; s=y; b=AA==\r\n",
    b"ARC-Seal: i=99999999999999999999; a=rsa-sha256\r\n",
    b"ARC-Message-Signature: \x00\x01\xff\r\n",
    b"ARC-Authentication-Results: lists.example; i=1; none\r\n",
])
async def test_hostile_fields_fail_without_an_exception(garbage: bytes) -> None:
    r = await check_arc(resolver(), garbage + MESSAGE)
    assert r.result == "fail" and r.problem


async def test_fifty_sets_validate_in_bounded_time_and_fifty_one_fail() -> None:
    message = MESSAGE
    for n in range(50):
        message = seal(message, SEALERS[n % 3])
    started = time.monotonic()
    r = await check_arc(resolver(), message)
    assert (r.result, r.instances, len(r.sealers)) == ("pass", 50, 50), r.problem
    assert time.monotonic() - started < 20  # generous for a loaded 2-core machine; ~0.2 s idle
    r = await check_arc(resolver(), seal(message, "lists.example"))
    assert r.result == "fail" and "1-50" in r.problem


def test_override_needs_a_passing_chain_whose_newest_sealer_is_trusted() -> None:
    chain = ArcResult("pass", 2, ("lists.example", "fwd.example"), 0)
    assert arc_overrides_dmarc(chain, ["FWD.example."])
    assert not arc_overrides_dmarc(chain, ["lists.example"])  # an older hop is not enough
    assert not arc_overrides_dmarc(ArcResult("fail", 2, chain.sealers, problem="x"), ["fwd.example"])
    assert not arc_overrides_dmarc(ArcResult("none"), ["fwd.example"])
    assert not arc_overrides_dmarc(chain, [])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([b"ARC-Seal", b"ARC-Message-Signature", b"ARC-Authentication-Results"]),
       st.binary(max_size=200))
async def test_fuzz_any_arc_field_gives_a_result(name: bytes, value: bytes) -> None:
    r = await check_arc(resolver(), name + b": " + value.replace(b"\r\n", b" ") + b"\r\n" + MESSAGE)
    assert r.result in ("pass", "fail", "none")


@pytest.mark.parametrize("algorithm", [b"rsa-shake_128", b"rsa-sha512", b"rsa-md5", b"rsa-", b"rsa-sha1"])
async def test_an_ams_with_another_algorithm_fails_without_an_exception(algorithm: bytes) -> None:
    # a= named the body hash function: "shake_128" made hashlib's digest() raise TypeError out of
    # check_arc; others hashed the whole body with a function no ARC signature may use.
    message = seal(MESSAGE, "lists.example")
    ams_at = message.index(b"ARC-Message-Signature:")
    message = message[:ams_at] + message[ams_at:].replace(b"a=rsa-sha256", b"a=" + algorithm, 1)
    r = await check_arc(resolver(), message)
    assert r.result == "fail" and "ARC-Message-Signature i=1" in r.problem and "a=" in r.problem


async def test_each_arc_field_is_canonicalised_once_for_all_seals(monkeypatch: pytest.MonkeyPatch) -> None:
    # Seal i covers sets 1..i, and each field was canonicalised again for every seal above it:
    # 1,275 times for 50 sets, so 50 sets with 20 KB results fields (1 MB) held the event loop
    # 25 s (0.5 s now). Counted rather than timed, so the test stays quick.
    message = MESSAGE
    for n in range(50):
        message = seal(message, SEALERS[n % 3])
    calls = []

    def counting(method: Canonicalization, field: HeaderField | bytes) -> bytes:
        calls.append(field)
        return canonicalize_header(method, field)

    monkeypatch.setattr(arc, "canonicalize_header", counting)
    r = await check_arc(resolver(), message)
    assert (r.result, r.instances) == ("pass", 50), r.problem
    assert len(calls) <= 3 * 50 + 50  # each AAR, AMS and AS once, plus each seal's own b= form


class SlowResolver(MemoryResolver):
    """Answers after a pause, counting the questions in flight at once."""

    def __init__(self, records: MemoryResolver) -> None:
        super().__init__({})
        self.records = records.records
        self.in_flight = self.most_in_flight = 0

    async def txt(self, name: str) -> Any:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.05)
            return await super().txt(name)
        finally:
            self.in_flight -= 1


async def test_the_keys_of_a_chain_are_asked_for_at_once() -> None:
    slow = SlowResolver(resolver())
    sealed = MESSAGE
    for sealer in SEALERS:
        sealed = seal(sealed, sealer)
    result = await check_arc(slow, sealed)
    assert result.result == "pass" and result.sealers == SEALERS
    assert slow.most_in_flight == len(SEALERS)  # one round trip, not one per sealer
