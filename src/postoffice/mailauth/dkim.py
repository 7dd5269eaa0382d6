"""DKIM verification and signing (RFC 6376, RFC 8301, RFC 8463).

    results = await verify_dkim(resolver, message)            # one DkimResult per signature
    # (message: the bytes, or a dkim_canon.SplitMessage that ARC and DMARC read too)
    field = sign_message(message, "example.org", "mail", key)  # b"DKIM-Signature: ...\\r\\n"
    signed = field + message

Verification checks every DKIM-Signature, up to ``max_signatures`` (the rest are reported once,
as neutral): signatures whose d= is (a parent or child of) the From domain go first, since DMARC
needs those, then the others in header order, then the unreadable ones. Each signature costs one
TXT lookup at ``<s>._domainkey.<d>`` through the injected resolver (lookups run concurrently and
a key shared by several signatures is asked for once) and one public-key operation.

What each outcome is reported as (RFC 8601 §2.7.1):

- pass: body hash and signature verify with a usable key (``l=`` and a t=y key are noted);
- fail: the body hash or the signature does not verify, the body is shorter than l=, or the
  RSA key is shorter than 1024 bits (RFC 8301 §3.2);
- neutral: the signature cannot be read (tag-list syntax, missing or malformed tags, v= not 1,
  unknown algorithm or canonicalisation), or it is beyond ``max_signatures``;
- permerror: RFC 6376's PERMFAILs that are not a broken hash: From not signed, i= outside d=,
  expired (x=), rsa-sha1 (RFC 8301 §3.1), no key record, a key record that is unusable or
  revoked, a key that does not fit the signature (k=, h=, t=s);
- temperror: the key lookup failed for now (DnsTemporaryError).

A t= in the future is not held against a signature: RFC 6376 §3.5 lets verifiers ignore such
signatures (MAY), but a signer's clock running ahead would then turn into a DKIM failure, and
through DMARC into a refusal; x= is what ends a signature's validity. The signature being
verified is never one of its own h= fields (dkim_canon.signed_header_data).

The CPU work, splitting the message and hashing the canonical body and headers, is linear in the
message; `verify_dkim` does it in a thread (asyncio.to_thread) for messages over
``THREAD_THRESHOLD`` bytes. `prepare_checks` is that step alone, for a caller that wants it in
its own thread. No I/O happens here but the resolver's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from postoffice.mailauth.dkim_canon import (
    Canonicalization,
    HeaderField,
    SplitMessage,
    body_hash,
    canonicalize_header,
    parse_canonicalization,
    select_headers,
    signed_header_data,
    split_message,
    to_crlf,
)
from postoffice.mailauth.dkim_crypto import (
    ALGORITHMS,
    DkimKey,
    DkimKeyError,
    KeyTooShort,
    SignatureInvalid,
    SigningKey,
    algorithm_of,
    hash_function,
    parse_key_record,
    sign_bytes,
    verify_signature,
)
from postoffice.mailauth.dkim_tags import TagListError, parse_tag_list, split_colon_list, strip_fws
from postoffice.mailauth.dns_types import DnsTemporaryError, Resolver
from postoffice.mailauth.results import DkimCode, DkimResult

__all__ = ["DEFAULT_SIGNED_HEADERS", "MAX_SIGNATURES", "OVERSIGNED_HEADERS", "THREAD_THRESHOLD",
           "DkimCheck", "DkimSignature", "SignatureError", "finish_check", "parse_signature",
           "prepare_checks", "sign_message", "sign_message_with", "verify_dkim"]

MAX_SIGNATURES = 10  # signatures verified per message; real mail carries one to three
MAX_FIELDS_READ = 1000  # DKIM-Signature fields read at all: ~10 µs each, so 10 ms at most
THREAD_THRESHOLD = 64 * 1024  # bytes of message above which hashing leaves the event loop

# RFC 6376 §5.4.1's list of fields worth signing.
DEFAULT_SIGNED_HEADERS = (
    "from", "reply-to", "subject", "date", "to", "cc", "resent-date", "resent-from",
    "resent-to", "resent-cc", "in-reply-to", "references", "list-id", "list-help",
    "list-unsubscribe", "list-subscribe", "list-post", "list-owner", "list-archive",
    "message-id", "mime-version", "content-type", "content-transfer-encoding",
)
# Signed once more than they appear (RFC 6376 §8.15), so nobody can add one later: a second
# From or Subject, or a Reply-To on a message that had none, breaks the signature.
OVERSIGNED_HEADERS = frozenset({
    "from", "reply-to", "subject", "date", "to", "cc", "message-id", "mime-version",
    "content-type", "content-transfer-encoding",
})

_LABELS = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                     r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*")
_DIGITS = re.compile(r"[0-9]{1,76}")
_SIGNATURE_FIELD = b"dkim-signature"


class SignatureError(ValueError):
    """A DKIM-Signature that cannot be verified as written; ``code`` is its DkimResult code."""

    def __init__(self, code: DkimCode, problem: str) -> None:
        super().__init__(problem)
        self.code = code


@dataclass(frozen=True, slots=True)
class DkimSignature:
    """A DKIM-Signature field whose tags are all valid (RFC 6376 §3.5)."""

    field: HeaderField
    algorithm: str
    domain: str  # d=, lower case, A-labels
    selector: str
    identity: str  # i=, or "@" + d=
    header_names: tuple[str, ...]  # h=
    header_canon: Canonicalization
    body_canon: Canonicalization
    body_hash: bytes  # bh=, decoded
    signature: bytes  # b=, decoded
    length: int | None  # l=
    timestamp: int | None  # t=
    expiry: int | None  # x=

    @property
    def key_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


@dataclass(frozen=True, slots=True)
class DkimCheck:
    """One signature after the CPU work: what remains is its key lookup and one signature check.

    ``result`` is set when the outcome is already known without the key (unreadable, expired,
    beyond the limit); otherwise ``signature`` and ``signed`` (the header hash input) are, and
    ``body_problem`` says why the body does not match ("" when it does).
    """

    result: DkimResult
    signature: DkimSignature | None = None
    signed: bytes = b""
    body_problem: str = ""


def _text(raw: bytes) -> str:
    """Header bytes as text; bytes that are not UTF-8 become U+FFFD, so that every string that
    reaches a result (and the Authentication-Results header) can be written out again."""
    return raw.decode("utf-8", "replace")


def _base64(tags: dict[str, str], name: str) -> bytes:
    value = strip_fws(tags[name])
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("neutral", f"{name}= is not base64") from None


def _number(tags: dict[str, str], name: str) -> int | None:
    if name not in tags:
        return None
    if not _DIGITS.fullmatch(tags[name]):
        raise SignatureError("neutral", f"{name}= is not a number")
    return int(tags[name])


def _dns_name(value: str, what: str) -> str:
    value = value.lower().removesuffix(".")
    if not value.isascii():
        try:
            value = value.encode("idna").decode("ascii")  # RFC 8616 §4: U-labels in d=
        except UnicodeError:
            raise SignatureError("neutral", f"{what} is not a domain name") from None
    if not _LABELS.fullmatch(value):
        raise SignatureError("neutral", f"{what} is not a domain name")
    return value


def parse_signature(field: HeaderField) -> DkimSignature:
    """The signature in a DKIM-Signature field, or `SignatureError` with its result code."""
    value = field.raw.partition(b":")[2]
    try:
        tags = parse_tag_list(value.decode("utf-8"))
    except UnicodeDecodeError:
        raise SignatureError("neutral", "syntax error: the signature is not UTF-8") from None
    except TagListError as e:
        raise SignatureError("neutral", f"syntax error: {e}") from None
    for name in ("v", "a", "b", "bh", "d", "h", "s"):
        if name not in tags:
            raise SignatureError("neutral", f"the signature has no {name}= tag")
    if tags["v"] != "1":
        raise SignatureError("neutral", "v= is not 1")
    if tags["a"] not in ALGORITHMS:
        raise SignatureError("neutral", f"unknown algorithm a={tags['a'][:30]}")
    try:
        header_canon, body_canon = parse_canonicalization(tags.get("c"))
    except ValueError as e:
        raise SignatureError("neutral", str(e)[:80]) from None
    if "q" in tags and "dns/txt" not in split_colon_list(tags["q"]):
        raise SignatureError("neutral", "q= offers no dns/txt key lookup")
    domain = _dns_name(tags["d"], "d=")
    selector = _dns_name(tags["s"], "s=")
    if len(selector) + len(domain) > 240:
        raise SignatureError("neutral", "s= and d= make too long a DNS name")
    signature, bh = _base64(tags, "b"), _base64(tags, "bh")
    length, timestamp, expiry = _number(tags, "l"), _number(tags, "t"), _number(tags, "x")
    if timestamp is not None and expiry is not None and expiry < timestamp:
        raise SignatureError("neutral", "x= is before t=")
    header_names = tuple(split_colon_list(tags["h"]))
    if "from" not in (name.lower() for name in header_names):
        raise SignatureError("permerror", "From is not signed (h=)")
    identity = tags.get("i", "@" + domain)
    identity_domain = identity.rpartition("@")[2].lower().removesuffix(".")
    if "@" not in identity or not (identity_domain == domain or identity_domain.endswith("." + domain)):
        raise SignatureError("permerror", "i= is not within d=")
    return DkimSignature(field, tags["a"], domain, selector, identity, header_names, header_canon,
                         body_canon, bh, signature, length, timestamp, expiry)


def _partial_result(field: HeaderField, code: DkimCode, problem: str) -> DkimResult:
    """A result for a signature that could not be read whole: whatever tags could be read."""
    try:
        tags = parse_tag_list(_text(field.raw.partition(b":")[2]))
    except TagListError:
        tags = {}
    return DkimResult(code, domain=tags.get("d", "")[:253], selector=tags.get("s", "")[:63],
                      algorithm=tags.get("a", "")[:30], identity=tags.get("i", "")[:253],
                      signature_prefix=strip_fws(tags.get("b", ""))[:8], problem=problem)


def _result(sig: DkimSignature, code: DkimCode, problem: str = "") -> DkimResult:
    return DkimResult(code, domain=sig.domain, selector=sig.selector, algorithm=sig.algorithm,
                      identity=sig.identity,
                      signature_prefix=base64.b64encode(sig.signature[:6]).decode("ascii"),
                      body_length_limited=sig.length is not None, problem=problem)


def _from_domain(fields: Sequence[HeaderField]) -> str:
    for field in fields:
        if field.name == b"from":
            address = _text(field.raw.partition(b":")[2]).strip()
            return address.rpartition("@")[2].strip(" \t\r\n>").lower()
    return ""


def _aligned(domain: str, from_domain: str) -> bool:
    return bool(from_domain) and (domain == from_domain or from_domain.endswith("." + domain)
                                  or domain.endswith("." + from_domain))


def prepare_checks(message: bytes | SplitMessage, *, now: float | None = None,
                   max_signatures: int = MAX_SIGNATURES) -> list[DkimCheck]:
    """Everything but the key lookups: read every signature, hash bodies and headers.

    Linear in the message; synchronous, so that an async caller can run it in a thread.
    """
    now = time.time() if now is None else now
    split = SplitMessage.of(message)
    fields, body = split.fields, split.body
    signature_fields = [f for f in fields if f.name == _SIGNATURE_FIELD]
    unread = max(0, len(signature_fields) - MAX_FIELDS_READ)
    readable: list[DkimSignature] = []
    broken: list[DkimCheck] = []
    for field in signature_fields[:MAX_FIELDS_READ]:
        try:
            readable.append(parse_signature(field))
        except SignatureError as e:
            broken.append(DkimCheck(_partial_result(field, e.code, str(e))))
    from_domain = _from_domain(fields)
    readable.sort(key=lambda sig: not _aligned(sig.domain, from_domain))  # stable: header order
    chosen = readable[:max_signatures]
    broken_shown = broken[:max(0, max_signatures - len(chosen))]
    skipped = len(readable) - len(chosen) + len(broken) - len(broken_shown) + unread

    body_hashes: dict[tuple[str, str, int | None], bytes | str] = {}
    checks: list[DkimCheck] = []
    for sig in chosen:
        if sig.algorithm == "rsa-sha1":
            checks.append(DkimCheck(_result(sig, "permerror", "rsa-sha1 signatures are not "
                                                              "accepted (RFC 8301)")))
            continue
        if sig.expiry is not None and sig.expiry < now:
            checks.append(DkimCheck(_result(sig, "permerror", "the signature has expired (x=)")))
            continue
        hashed = (sig.body_canon, hash_function(sig.algorithm), sig.length)
        if hashed not in body_hashes:
            try:
                body_hashes[hashed] = body_hash(sig.body_canon, body, hashed[1], sig.length)
            except ValueError:
                body_hashes[hashed] = "the body is shorter than l= says"
        digest = body_hashes[hashed]
        problem = digest if isinstance(digest, str) else (
            "" if digest == sig.body_hash else "the body hash did not verify")
        signed = signed_header_data(sig.header_canon, fields, list(sig.header_names), sig.field)
        checks.append(DkimCheck(_result(sig, "none"), sig, signed, problem))
    checks += broken_shown
    if skipped:
        checks.append(DkimCheck(DkimResult("neutral", problem=(
            f"{skipped} more DKIM signatures were not checked (at most {max_signatures} are)"))))
    return checks


async def _fetch_key(resolver: Resolver, name: str) -> DkimKey | DkimResult:
    """The key at ``name``, or a result saying why there is none (domain etc. filled later)."""
    try:
        answer = await resolver.txt(name)
    except DnsTemporaryError as e:
        return DkimResult("temperror", problem=f"key lookup failed: {e}")
    if not answer.records:
        return DkimResult("permerror", problem=f"no key at {name}")
    first_error: DkimKeyError | None = None
    for record in answer.records:
        try:
            return parse_key_record(record)
        except DkimKeyError as e:
            first_error = first_error or e
    assert first_error is not None
    code: DkimCode = "fail" if isinstance(first_error, KeyTooShort) else "permerror"
    return DkimResult(code, problem=str(first_error))


def finish_check(check: DkimCheck, key: DkimKey | DkimResult | None) -> DkimResult:
    """The result of one prepared check, given its key (or why there is none). Cheap."""
    sig = check.signature
    if sig is None:
        return check.result
    if isinstance(key, DkimResult) or key is None:
        problem = key.problem if key is not None else "no key lookup"
        return replace(check.result, result=key.result if key else "permerror", problem=problem)
    if key.strict_identity and sig.identity.rpartition("@")[2].lower() != sig.domain:
        return replace(check.result, result="permerror", testing=key.testing,
                       problem="the key (t=s) requires i= to be exactly d=")
    if check.body_problem:
        return replace(check.result, result="fail", testing=key.testing, problem=check.body_problem)
    try:
        verify_signature(key, sig.algorithm, check.signed, sig.signature)
    except SignatureInvalid:
        return replace(check.result, result="fail", testing=key.testing,
                       problem="the signature did not verify")
    except DkimKeyError as e:  # the key does not fit the signature (k=, h=)
        return replace(check.result, result="permerror", testing=key.testing, problem=str(e))
    return replace(check.result, result="pass", testing=key.testing)


async def verify_dkim(resolver: Resolver, message: bytes | SplitMessage, *,
                      now: float | None = None,
                      max_signatures: int = MAX_SIGNATURES) -> tuple[DkimResult, ...]:
    """Verify every DKIM-Signature of ``message`` (bounded by ``max_signatures``).

    ``now`` (unix time) decides x= expiry; it defaults to the clock. No signature: ``()``.
    """
    size = message.size if isinstance(message, SplitMessage) else len(message)
    if size > THREAD_THRESHOLD:
        checks = await asyncio.to_thread(prepare_checks, message, now=now,
                                         max_signatures=max_signatures)
    else:
        checks = prepare_checks(message, now=now, max_signatures=max_signatures)
    names = sorted({c.signature.key_name for c in checks if c.signature is not None})
    if len(names) == 1:  # most mail: one key, and a task for it would cost more than its lookup
        keys = {names[0]: await _fetch_key(resolver, names[0])}
    else:
        keys = dict(zip(names, await asyncio.gather(*(_fetch_key(resolver, n) for n in names)),
                        strict=True))
    return tuple(finish_check(c, keys.get(c.signature.key_name) if c.signature else None)
                 for c in checks)


def _fold(prefix: str, items: Iterable[str], separator: str, width: int = 76) -> str:
    """``prefix`` + items joined by ``separator``, folded with CRLF TAB before a line gets wide
    (FWS is allowed around the separator, RFC 6376 §3.5 h=)."""
    lines = [prefix]
    for i, item in enumerate(items):
        if i and len(lines[-1]) + len(separator) + len(item) > width:
            lines[-1] += separator
            lines.append(item)
        else:
            lines[-1] += (separator if i else "") + item
    return "\r\n\t".join(lines)


def sign_message(message: bytes, domain: str, selector: str, private_key: SigningKey, *,
                 headers: Iterable[str] | None = None, canonicalization: str = "relaxed/relaxed",
                 timestamp: int | None = None, expiry: int | None = None,
                 identity: str | None = None) -> bytes:
    """The DKIM-Signature field (ending in CRLF) to put on top of ``message``.

    ``headers`` is the h= list as given; by default each field of `DEFAULT_SIGNED_HEADERS` that
    the message has, as often as it appears, plus once more for `OVERSIGNED_HEADERS` (present
    or not). ``timestamp`` (t=) defaults to now; ``expiry`` is x= as unix time (none by
    default). The algorithm follows the key: rsa-sha256 or ed25519-sha256. Raises ValueError
    for a message without From (RFC 6376 §5.4) or bad arguments. CPU linear in the message:
    run it in a thread for a big one.
    """
    return sign_message_with(message, domain, [(selector, private_key)], headers=headers,
                             canonicalization=canonicalization, timestamp=timestamp, expiry=expiry,
                             identity=identity)


def sign_message_with(message: bytes, domain: str, keys: Sequence[tuple[str, SigningKey]], *,
                      headers: Iterable[str] | None = None, canonicalization: str = "relaxed/relaxed",
                      timestamp: int | None = None, expiry: int | None = None,
                      identity: str | None = None) -> bytes:
    """`sign_message` with each (selector, key) of ``keys`` in turn (an RSA and an Ed25519
    signature, say), the fields in that order: the message is split, its body hashed and its
    signed header fields canonicalised once for all of them (same h=, same t=)."""
    header_canon, body_canon = parse_canonicalization(canonicalization)
    domain = _dns_name(domain, "the domain")
    selectors = [_dns_name(selector, "the selector") for selector, _ in keys]
    fields, body = split_message(to_crlf(message))
    present: dict[str, int] = {}
    for field in fields:
        name = _text(field.name)
        present[name] = present.get(name, 0) + 1
    if not present.get("from"):
        raise ValueError("a message without a From header field cannot be DKIM-signed "
                         "(RFC 6376 §5.4)")
    if headers is None:
        names = [name for name in DEFAULT_SIGNED_HEADERS
                 for _ in range(present.get(name, 0) + (name in OVERSIGNED_HEADERS))]
    else:
        names = [name.strip().lower() for name in headers]
        if "from" not in names:
            raise ValueError("the signed header fields must include From (RFC 6376 §5.4)")
    timestamp = int(time.time()) if timestamp is None else timestamp
    if expiry is not None and expiry <= timestamp:
        raise ValueError("the expiry must be after the signature's timestamp")
    if identity is not None:
        identity_domain = identity.rpartition("@")[2].lower()
        if "@" not in identity or not (identity_domain == domain
                                       or identity_domain.endswith("." + domain)):
            raise ValueError(f"the identity {identity} is not within {domain}")
    times = f"t={timestamp};" + (f" x={expiry};" if expiry is not None else "")
    times += f" i={identity};" if identity is not None else ""
    signed_names = _fold("h=", names, ":") + ";"
    digests: dict[str, str] = {}  # hash function -> bh= (both of today's algorithms use sha256)
    signed_fields: bytes | None = None  # the h= fields canonicalised: the same for every key
    out: list[bytes] = []
    for selector, (_, private_key) in zip(selectors, keys, strict=True):
        algorithm = algorithm_of(private_key)
        function = hash_function(algorithm)
        if function not in digests:
            digests[function] = base64.b64encode(body_hash(body_canon, body, function)).decode("ascii")
        tags = [f"v=1; a={algorithm}; c={header_canon}/{body_canon}; d={domain}; s={selector};",
                times, signed_names, f"bh={digests[function]};"]
        unsigned = "DKIM-Signature: " + "\r\n\t".join(tags) + "\r\n\tb="
        own = signed_header_data(header_canon, (), (), unsigned.encode("ascii") + b"\r\n")
        if signed_fields is None:
            signed_fields = b"".join(canonicalize_header(header_canon, field)
                                     for field in select_headers(fields, names))
        value = base64.b64encode(sign_bytes(private_key, signed_fields + own)).decode("ascii")
        chunks = [value[i:i + 72] for i in range(0, len(value), 72)]
        out.append((unsigned + "\r\n\t".join(chunks) + "\r\n").encode("ascii"))
    return b"".join(out)
