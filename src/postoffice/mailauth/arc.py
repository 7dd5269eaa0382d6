"""ARC chain validation (RFC 8617 §5.2): is the Authenticated Received Chain of a message intact?

    result = await check_arc(resolver, message_bytes)      # ArcResult: none / pass / fail
    # (or a dkim_canon.SplitMessage in place of the bytes, read once for DKIM and DMARC too)
    if dmarc.result == "fail" and arc_overrides_dmarc(result, config.smtp.trusted_arc_sealers): ...

Each intermediary that handled the message added one ARC Set with instance i=1..N: an
ARC-Authentication-Results (AAR, what it found), an ARC-Message-Signature (AMS, a DKIM-like
signature over the message as it passed) and an ARC-Seal (AS, a signature over every ARC Set up
to its own). The steps of §5.2, in order:

1. No ARC header field: ``none``. An instance above 50 (more than 50 sets): ``fail``.
2. The newest seal says ``cv=fail``: ``fail`` (an earlier hop already found the chain broken).
3. Structure: instances 1..N with exactly one AAR, AMS and AS each; ``cv=none`` at i=1 and
   ``cv=pass`` above. Any header field that does not parse is a broken chain too.
4. The newest AMS must verify (body hash and signature): the message is what the last sealer saw.
5. (MAY) ``oldest_pass``: the older AMSs are checked downwards; the lowest instance from which
   every AMS still verifies is reported, 0 when all do (RFC 8617 §5.2 step 5, RFC 8601's
   ``header.oldest-pass``).
6. Every AS, newest first, must verify over the sets 1..i in order (§5.1.1): AAR, AMS, AS of each,
   relaxed header canonicalisation, the AS's own b= emptied. Otherwise ``fail``.

Once the structure holds, the keys of the newest few signers are asked for at once
(``PREFETCHED_KEYS``), not one after the other as the steps reach them.

Tag lists, canonicalisation, key records and signature checks are DKIM's (dkim_tags, dkim_canon,
dkim_crypto), as RFC 8617 §4.1 defines them by reference. Choices: ``a=`` may be rsa-sha256 or
ed25519-sha256 (the DKIM algorithms RFC 8301/8463 allow; rsa-sha1 is refused as for DKIM); no
clock is applied (ARC has no x=, and t= only informs). A DNS failure while fetching a key is a
``fail`` with the reason in ``problem``: ARC has no temperror, and a failed chain only means no
override of DMARC. The body hash is linear in the body: above `THREAD_BODY_BYTES` it runs in a
thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from postoffice.mailauth.dkim_canon import (
    Canonicalization,
    HeaderField,
    SplitMessage,
    body_hash,
    canonicalize_header,
    parse_canonicalization,
    signed_header_data,
    without_signature_value,
)
from postoffice.mailauth.dkim_crypto import (
    DkimKey,
    DkimKeyError,
    hash_function,
    parse_key_record,
    verify_signature,
)
from postoffice.mailauth.dkim_tags import TagListError, parse_tag_list, split_colon_list, strip_fws
from postoffice.mailauth.dns_types import DnsTemporaryError, Resolver
from postoffice.mailauth.results import ArcResult

MAX_INSTANCES = 50  # RFC 8617 §4.2.1
THREAD_BODY_BYTES = 256 * 1024
PREFETCHED_KEYS = 8  # distinct signer keys asked for at once, newest sets first

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")  # RFC 8617 §4.1.2 by reference, RFC 8301/8463
_AAR, _AMS, _AS = b"arc-authentication-results", b"arc-message-signature", b"arc-seal"
_KINDS = {_AAR: "ARC-Authentication-Results", _AMS: "ARC-Message-Signature", _AS: "ARC-Seal"}
_AAR_INSTANCE = re.compile(r"[ \t\r\n]*i[ \t\r\n]*=[ \t\r\n]*([0-9]{1,5})[ \t\r\n]*;")
_INSTANCE = re.compile(r"[0-9]{1,5}")
_AMS_REQUIRED = ("i", "a", "b", "bh", "d", "h", "s")
_AS_REQUIRED = ("i", "a", "b", "cv", "d", "s")


class _Broken(Exception):
    """The chain fails; the message says why in one sentence."""


@dataclass(slots=True)
class _Set:
    aar: list[HeaderField] = field(default_factory=list)
    ams: list[tuple[HeaderField, dict[str, str]]] = field(default_factory=list)
    seal: list[tuple[HeaderField, dict[str, str]]] = field(default_factory=list)


def arc_overrides_dmarc(arc: ArcResult, trusted_sealers: Iterable[str]) -> bool:
    """Whether a DMARC failure may be overridden because a trusted intermediary vouches for the
    message: the chain passes and its newest sealer (the hop that handed us the message, whose
    AMS still covers it as it is) is on the list. An older trusted sealer is not enough: any hop
    after it could have changed the message and sealed again."""
    if arc.result != "pass" or not arc.sealers:
        return False
    trusted = {name.lower().rstrip(".") for name in trusted_sealers}
    return arc.sealers[-1].lower().rstrip(".") in trusted


async def check_arc(resolver: Resolver, message: bytes | SplitMessage) -> ArcResult:
    """Validate the message's ARC chain (RFC 8617 §5.2)."""
    split = SplitMessage.of(message)
    fields, body = split.fields, split.body
    try:
        sets = _collect(fields)
    except _Broken as e:
        return ArcResult("fail", problem=str(e))
    if not sets:
        return ArcResult("none")
    count = max(sets)
    seals = [sets[i].seal[0][1] if i in sets and len(sets[i].seal) == 1 else {}
             for i in range(1, count + 1)]
    sealers = tuple(s.get("d", "").lower() for s in seals)
    try:
        _check_structure(sets, count)
        verifier = _Verifier(resolver, fields, body)
        await verifier.prefetch_keys(sets, count)
        await verifier.check_ams(count, sets[count].ams[0])
        oldest_pass = 0
        for i in range(count - 1, 0, -1):
            try:
                await verifier.check_ams(i, sets[i].ams[0])
            except _Broken:
                oldest_pass = i + 1
                break
        for i in range(count, 0, -1):
            await verifier.check_seal(i, sets)
    except _Broken as e:
        return ArcResult("fail", count, sealers, problem=str(e))
    return ArcResult("pass", count, sealers, oldest_pass)


def has_arc_fields(fields: Sequence[HeaderField]) -> bool:
    """Whether any ARC header field is there (without one, `check_arc` says ``none`` at once
    and asks no DNS)."""
    return any(f.name in _KINDS for f in fields)


def _collect(fields: Sequence[HeaderField]) -> dict[int, _Set]:
    """The ARC header fields grouped by instance; a field that does not parse breaks the chain."""
    sets: dict[int, _Set] = {}
    for f in fields:
        if f.name not in _KINDS:
            continue
        value = f.raw.partition(b":")[2].decode("utf-8", "surrogateescape")
        if f.name == _AAR:
            m = _AAR_INSTANCE.match(value)
            if m is None:
                raise _Broken("an ARC-Authentication-Results does not start with i=<n>;")
            instance = _instance(m.group(1), _KINDS[f.name])
            sets.setdefault(instance, _Set()).aar.append(f)
            continue
        try:
            tags = parse_tag_list(value)
        except TagListError as e:
            raise _Broken(f"an {_KINDS[f.name]} is not a valid tag list: {e}") from None
        instance = _instance(tags.get("i", ""), _KINDS[f.name])
        entry = sets.setdefault(instance, _Set())
        (entry.ams if f.name == _AMS else entry.seal).append((f, tags))
    return sets


def _instance(text: str, kind: str) -> int:
    if not _INSTANCE.fullmatch(text) or not 1 <= int(text) <= MAX_INSTANCES:
        raise _Broken(f"an {kind} has i={text[:10]!s}, not an instance 1-{MAX_INSTANCES}")
    return int(text)


def _check_structure(sets: dict[int, _Set], count: int) -> None:
    """§5.2 steps 2 and 3."""
    newest = sets[count].seal
    if len(newest) == 1 and newest[0][1].get("cv") == "fail":
        raise _Broken(f"the ARC-Seal i={count} says the chain had already failed (cv=fail)")
    for i in range(1, count + 1):
        entry = sets.get(i, _Set())
        for kind, n in (("ARC-Authentication-Results", len(entry.aar)),
                        ("ARC-Message-Signature", len(entry.ams)), ("ARC-Seal", len(entry.seal))):
            if n != 1:
                raise _Broken(f"ARC set i={i} has {n} {kind} fields, not one")
        cv = entry.seal[0][1].get("cv")
        expected = "none" if i == 1 else "pass"
        if cv != expected:
            raise _Broken(f"the ARC-Seal i={i} has cv={cv}, not cv={expected}")


class _Verifier:
    """Signature checks for one message: keys and body hashes are fetched/computed once."""

    def __init__(self, resolver: Resolver, fields: Sequence[HeaderField], body: bytes) -> None:
        self.resolver = resolver
        self.fields = fields
        self.body = body
        self.keys: dict[str, DkimKey | str] = {}  # name -> key, or why there is none
        self.body_hashes: dict[tuple[Canonicalization, str, int | None], bytes] = {}
        self.canonical: dict[int, bytes] = {}  # id() of an ARC set's field -> its relaxed form

    async def prefetch_keys(self, sets: dict[int, _Set], count: int) -> None:
        """Ask for the keys of the newest `PREFETCHED_KEYS` distinct signers at once: a chain of
        a few hops then waits for one round trip, not one per signature. (The older ones, in a
        long chain, are asked for when their turn comes, so that one message cannot make us
        send a hundred questions at once.)"""
        names: list[str] = []
        for i in range(count, 0, -1):
            for tags in (sets[i].ams[0][1], sets[i].seal[0][1]):
                selector, domain = tags.get("s", ""), tags.get("d", "")
                name = f"{selector}._domainkey.{domain}"
                if selector and domain and name not in names and name not in self.keys:
                    names.append(name)
        names = names[:PREFETCHED_KEYS]
        if len(names) > 1:
            found = await asyncio.gather(*(self._fetch_key(name) for name in names))
            self.keys.update(zip(names, found, strict=True))

    async def check_ams(self, i: int, ams: tuple[HeaderField, dict[str, str]]) -> None:
        """§5.2 step 4 for instance i: the AMS verifies like a DKIM signature (RFC 6376 §6.1.3).

        Without c=, RFC 6376's default simple/simple is tried, then relaxed/relaxed: signers
        built on dkimpy's ARC code (the ValiMail suite's) omit c= and mean relaxed."""
        f, tags = ams
        what = f"ARC-Message-Signature i={i}"
        _require(tags, _AMS_REQUIRED, what)
        if "c" in tags:
            await self._check_ams_with(tags["c"], f, tags, what)
            return
        try:
            await self._check_ams_with("simple/simple", f, tags, what)
        except _Broken:
            await self._check_ams_with("relaxed/relaxed", f, tags, what)

    async def _check_ams_with(self, c: str, f: HeaderField, tags: dict[str, str],
                              what: str) -> None:
        try:
            header_c, body_c = parse_canonicalization(c)
        except ValueError as e:
            raise _Broken(f"{what}: {e}") from None
        # An empty h= or an empty name in it signs nothing more (the ValiMail suite passes both).
        names = [n for n in split_colon_list(tags["h"]) if n]
        if any(n.lower() == "arc-seal" for n in names):
            raise _Broken(f"{what} signs ARC-Seal, which RFC 8617 §4.1.2 forbids")
        length = None
        if "l" in tags:
            if not _INSTANCE.fullmatch(tags["l"]):
                raise _Broken(f"{what} has an invalid l=")
            length = int(tags["l"])
        algorithm = tags["a"]
        if algorithm not in ALGORITHMS:  # before a= picks the body's hash function
            raise _Broken(f"{what} has a={algorithm[:30]}, not rsa-sha256 or ed25519-sha256")
        expected = _decode(tags["bh"], what, "bh=")
        actual = await self._body_hash(body_c, hash_function(algorithm), length, what)
        if actual != expected:
            raise _Broken(f"{what}: the body has changed (body hash mismatch)")
        signed = signed_header_data(header_c, self.fields, names, f)
        await self._verify(tags, signed, what)

    async def check_seal(self, i: int, sets: dict[int, _Set]) -> None:
        """§5.2 step 6 for instance i: the AS over ARC sets 1..i (§5.1.1)."""
        f, tags = sets[i].seal[0]
        what = f"ARC-Seal i={i}"
        _require(tags, _AS_REQUIRED, what)
        if "h" in tags:
            raise _Broken(f"{what} has h=, which an ARC-Seal must not have (RFC 8617 §4.1.3)")
        signed = []
        for j in range(1, i + 1):
            signed.append(self._relaxed(sets[j].aar[0]))
            signed.append(self._relaxed(sets[j].ams[0][0]))
            if j < i:
                signed.append(self._relaxed(sets[j].seal[0][0]))
        own = canonicalize_header("relaxed", without_signature_value(f))
        signed.append(own[:-2] if own.endswith(b"\r\n") else own)
        await self._verify(tags, b"".join(signed), what)

    def _relaxed(self, f: HeaderField) -> bytes:
        """A field of an ARC set, canonicalised once: seal i covers sets 1..i, so without this
        50 sets of 20 KB cost 1,275 canonicalisations (25 s on the event loop, not 0.5 s)."""
        canonical = self.canonical.get(id(f))
        if canonical is None:
            canonical = self.canonical[id(f)] = canonicalize_header("relaxed", f)
        return canonical

    async def _verify(self, tags: dict[str, str], signed: bytes, what: str) -> None:
        signature = _decode(tags["b"], what, "b=")
        key = await self._key(tags["s"], tags["d"], what)
        try:
            verify_signature(key, tags["a"], signed, signature)
        except DkimKeyError as e:
            raise _Broken(f"{what} (d={tags['d']}): {e}") from None

    async def _key(self, selector: str, domain: str, what: str) -> DkimKey:
        if not selector or not domain:
            raise _Broken(f"{what} has an empty s= or d=")
        name = f"{selector}._domainkey.{domain}"
        if name not in self.keys:
            self.keys[name] = await self._fetch_key(name)
        key = self.keys[name]
        if isinstance(key, str):
            raise _Broken(f"{what}: {key}")
        return key

    async def _fetch_key(self, name: str) -> DkimKey | str:
        if len(name) > 253 or any(not 0 < len(label) <= 63 for label in name.split(".")):
            return f"{name[:60]} is not a DNS name"
        try:
            answer = await self.resolver.txt(name)
        except DnsTemporaryError as e:
            return f"temporary DNS error for the key {name}: {e}"
        if not answer.records:
            return f"no key at {name}"
        try:
            return parse_key_record(answer.records[0])
        except DkimKeyError as e:
            return f"key {name}: {e}"

    async def _body_hash(self, method: Canonicalization, hash_name: str, length: int | None,
                         what: str) -> bytes:
        cache_key = (method, hash_name, length)
        if cache_key not in self.body_hashes:
            try:
                if len(self.body) > THREAD_BODY_BYTES:
                    digest = await asyncio.to_thread(body_hash, method, self.body, hash_name, length)
                else:
                    digest = body_hash(method, self.body, hash_name, length)
            except ValueError as e:
                raise _Broken(f"{what}: {e}") from None
            self.body_hashes[cache_key] = digest
        return self.body_hashes[cache_key]


def _require(tags: dict[str, str], names: tuple[str, ...], what: str) -> None:
    missing = [n for n in names if n not in tags]
    if missing:
        raise _Broken(f"{what} lacks " + ", ".join(f"{n}=" for n in missing))


def _decode(value: str, what: str, tag: str) -> bytes:
    try:
        decoded = base64.b64decode(strip_fws(value), validate=True)
    except (binascii.Error, ValueError):
        raise _Broken(f"{what}: {tag} is not base64") from None
    if not decoded:
        raise _Broken(f"{what}: {tag} is empty")
    return decoded
