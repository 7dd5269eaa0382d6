"""DKIM signatures on outgoing mail (RFC 6376, RFC 8301, RFC 8463): every message whose author
domain is served here leaves with an RSA-2048 and an Ed25519 signature.

    signer = MessageSigner(data_dir, default_selector="mail", is_local_domain=directory.is_local_domain)
    raw = await signer.sign(raw, envelope_sender="alice@example.org")   # fields prepended

Rules, and why:
- The signing domain is the RFC5322.From domain (what DMARC aligns with, RFC 7489 §3.1), or the
  envelope sender's domain when From has no usable address; signed only when that domain is
  served here (`is_local_domain`). Others pass through unchanged.
- Sign the bytes that will be sent, after the final encoding: nothing may convert 8-bit to
  7-bit afterwards (that breaks the body hash); the SMTP client fails such a message instead.
- Both algorithms, from the domain's ``signing`` selector (mailauth/dkim_selectors.py): RSA
  under ``<selector>``, Ed25519 under ``<selector>-ed25519``. Never Ed25519 alone (RFC 8463 §4:
  many verifiers still only know RSA, and a message whose only signature they cannot check
  fails DMARC's DKIM leg there): without the RSA key the message goes unsigned. Without the
  Ed25519 key, RSA alone.
- A domain without keys (or with a damaged key file or record) is not a delivery failure: the
  message goes unsigned (a damaged Ed25519 key alone: RSA only) and a WARNING names the domain
  and the fix, once per domain and cause until it changes (not once per message).
- Keys are loaded once and kept while their files are unchanged (mtime and size); the selector
  record likewise, so `dkim rotate`/`retire` take effect without a restart: within
  ``recheck_seconds`` (1 s), as the files are looked at no more often (three stat calls per
  message cost more than the rest of choosing the keys).
- Canonicalization relaxed/relaxed (survives the header rewrapping common on the way); the same
  t= on both signatures. The CPU work is linear in the message: above
  ``mailauth.dkim.THREAD_THRESHOLD`` bytes it runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path

from postoffice.mailauth.dkim import THREAD_THRESHOLD, sign_message_with
from postoffice.mailauth.dkim_canon import split_message
from postoffice.mailauth.dkim_crypto import SigningKey, load_signing_key
from postoffice.mailauth.dkim_selectors import (
    DomainSelectors,
    SelectorError,
    read_selectors,
    selectors_path,
)
from postoffice.mailauth.dkimkeys import domain_key_files

__all__ = ["MessageSigner", "SignatureSet", "author_domain"]

log = logging.getLogger(__name__)
_MAX_FROM_BYTES = 16 * 1024  # a From field longer than this is not parsed (a hostile message)


@dataclass(frozen=True, slots=True)
class SignatureSet:
    """What signs a domain's mail now: its selector and the loaded keys (RSA, then Ed25519)."""

    domain: str
    keys: tuple[tuple[str, SigningKey], ...]  # (selector, key)
    problem: str = ""  # why nothing (or only RSA) signs, in plain words


def author_domain(raw: bytes, envelope_sender: str) -> str:
    """The first RFC5322.From address's domain, lower-case; the envelope sender's domain when
    From has none (or is unreadable); "" when neither has one (the null sender)."""
    end = raw.find(b"\r\n\r\n")
    fields, _ = split_message(raw if end < 0 else raw[:end + 2])
    for field in fields:
        if field.name == b"from" and len(field.raw) <= _MAX_FROM_BYTES:
            value = field.raw.partition(b":")[2]
            text = value.decode("utf-8", "replace").replace("\r\n", "")
            for _, address in getaddresses([text]):
                domain = address.rpartition("@")[2].strip().lower().removesuffix(".")
                if "@" in address and domain:
                    return domain
            break
    return envelope_sender.rpartition("@")[2].strip().lower().removesuffix(".")


class MessageSigner:
    def __init__(self, data_dir: Path, *, default_selector: str,
                 is_local_domain: Callable[[str], Awaitable[bool]], recheck_seconds: float = 1.0) -> None:
        self.data_dir = Path(data_dir)
        self.recheck_seconds = recheck_seconds
        self._sets: dict[str, tuple[float, SignatureSet]] = {}  # domain -> (when made, the set)
        self.default_selector = default_selector
        self.is_local_domain = is_local_domain
        self._keys: dict[Path, tuple[tuple[int, int], SigningKey]] = {}
        self._records: dict[str, tuple[tuple[int, int], DomainSelectors]] = {}
        self._warned: dict[str, str] = {}  # domain -> the problem last logged for it

    async def sign(self, raw: bytes, envelope_sender: str, *, timestamp: int | None = None) -> bytes:
        """``raw`` with the DKIM-Signature fields on top, or unchanged when its author domain is
        not served here or has no usable keys. Never raises for a missing or damaged key."""
        domain = author_domain(raw, envelope_sender)
        if not domain or not await self.is_local_domain(domain):
            return raw
        if len(raw) > THREAD_THRESHOLD:
            return await asyncio.to_thread(self._sign, raw, domain, timestamp)
        return self._sign(raw, domain, timestamp)

    def signature_set(self, domain: str) -> SignatureSet:
        """The keys that sign ``domain``'s mail now (files looked at once per `recheck_seconds`,
        read only when they changed)."""
        now = time.monotonic()
        cached = self._sets.get(domain)
        if cached is not None and now - cached[0] < self.recheck_seconds:
            return cached[1]
        found = self._signature_set(domain)
        self._sets[domain] = (now, found)
        return found

    def _signature_set(self, domain: str) -> SignatureSet:
        try:
            record = self._record(domain)
        except SelectorError as error:
            return SignatureSet(domain, (), str(error))
        except OSError as error:
            return SignatureSet(domain, (), f"its selector record cannot be read ({error})")
        selector = record.signing
        if selector is None:
            return SignatureSet(domain, (), f"{selectors_path(self.data_dir, domain)} names no "
                                            "signing selector")
        (rsa_selector, rsa_path), (ed_selector, ed_path) = domain_key_files(self.data_dir, domain, selector)
        try:
            keys = [(rsa_selector, self._load(rsa_path))]
        except FileNotFoundError:  # never Ed25519 alone
            return SignatureSet(domain, (), (
                f"its RSA key {rsa_path} is missing (make new keys with postoffice dkim rotate "
                f"{domain}, publish their records, then postoffice dkim retire {domain} {selector})"))
        except (OSError, ValueError) as error:
            return SignatureSet(domain, (), f"its RSA key {rsa_path} cannot be used ({error})")
        try:
            keys.append((ed_selector, self._load(ed_path)))
        except FileNotFoundError:
            pass  # RSA alone is what every verifier knows
        except (OSError, ValueError) as error:
            return SignatureSet(domain, tuple(keys), f"its Ed25519 key {ed_path} cannot be used "
                                                     f"({error}); signing with RSA alone")
        return SignatureSet(domain, tuple(keys))

    def _sign(self, raw: bytes, domain: str, timestamp: int | None) -> bytes:
        found = self.signature_set(domain)
        if found.problem and self._warned.get(domain) != found.problem:
            self._warned[domain] = found.problem
            what = "with only an RSA" if found.keys else "without a"
            log.warning("outgoing mail from %s leaves %s DKIM signature: %s", domain, what,
                        found.problem)
        elif not found.problem:
            self._warned.pop(domain, None)
        if not found.keys:
            return raw
        when = int(time.time()) if timestamp is None else timestamp
        try:
            fields = sign_message_with(raw, domain, found.keys, timestamp=when)
        except ValueError as error:  # no From field: nothing DKIM can sign (RFC 6376 §5.4)
            log.warning("outgoing mail from %s leaves without a DKIM signature: %s", domain, error)
            return raw
        return fields + raw

    def _record(self, domain: str) -> DomainSelectors:
        path = selectors_path(self.data_dir, domain)
        try:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = (0, -1)
        cached = self._records.get(domain)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        record = read_selectors(self.data_dir, domain, default=self.default_selector)
        self._records[domain] = (stamp, record)
        return record

    def _load(self, path: Path) -> SigningKey:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._keys.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        key = load_signing_key(path.read_bytes())
        self._keys[path] = (stamp, key)
        return key
