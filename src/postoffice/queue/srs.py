"""The Sender Rewriting Scheme (SRS), written as postsrsd and libsrs2 write it, so forwarded mail
passes SPF where it goes and bounces to it come back to the original sender.

    srs = SenderRewriter(data_dir / "keys" / "srs.secret")
    srs.forward("carol@origin.test", "example.org")   # "SRS0=HHHH=TT=origin.test=carol@example.org"
    srs.reverse("SRS0=HHHH=TT=origin.test=carol@example.org")   # "carol@origin.test"

Forms (the separator after SRS0/SRS1 may be "=", "+" or "-" on input; we write "="):
- ``SRS0=HHHH=TT=orig-domain=orig-local@our-domain``: TT is the day (days since 1970 mod 1024,
  two base32 characters), HHHH the first 4 base64 characters of HMAC-SHA1(secret, TT +
  orig-domain + orig-local), lower-cased first as libsrs2 does.
- ``SRS1=HHHH=first-forwarder=<the SRS0 local part minus "SRS0">@our-domain``: a sender another
  forwarder already rewrote, forwarded again (the bounce goes back to that forwarder, which
  alone can check its own hash); a sender already in SRS1 form keeps its first forwarder.

Why so, briefly:
- Mail systems on the way may change the case of a local part: hashes are made over lower-cased
  text and compared ignoring case, and the day is read in upper case.
- An address is honoured for `VALIDITY_DAYS` after it was made (bounces arrive within days);
  an older one, one from the future, or one whose hash does not match is refused
  (`SrsRefused`): nobody can use our domain to send through us to addresses of their choice.
- The secret (32 random bytes, base64) is made on first use in ``keys/srs.secret``, mode 0600,
  and must stay: with a new secret, bounces to earlier rewritten senders are refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from pathlib import Path

from postoffice.durable import write_file

__all__ = ["HASH_LENGTH", "VALIDITY_DAYS", "SenderRewriter", "SrsRefused", "is_srs_address", "srs_secret_path"]

HASH_LENGTH = 4  # base64 characters of the HMAC kept (libsrs2's default)
VALIDITY_DAYS = 21
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_DAYS = 1024  # timestamps wrap: 10 bits of days
_PREFIX = re.compile(r"^SRS([01])[=+-]", re.IGNORECASE)
# RFC 5322 atext plus ".": what may stand unquoted in the local part we write.
_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")


class SrsRefused(ValueError):
    """An SRS address that is malformed, forged (hash), or expired (timestamp)."""


def srs_secret_path(data_dir: Path) -> Path:
    return Path(data_dir) / "keys" / "srs.secret"


def is_srs_address(address: str) -> bool:
    """Whether the local part has the SRS0/SRS1 form (a rewritten sender), valid or not."""
    return bool(_PREFIX.match(address.rpartition("@")[0]))


def _timestamp(now: float) -> str:
    day = int(now // 86400) % _DAYS
    return _BASE32[day >> 5] + _BASE32[day & 31]


def _day(stamp: str) -> int:
    stamp = stamp.upper()
    if len(stamp) != 2 or any(c not in _BASE32 for c in stamp):
        raise SrsRefused("malformed SRS timestamp")
    return (_BASE32.index(stamp[0]) << 5) | _BASE32.index(stamp[1])


class SenderRewriter:
    """Makes and checks SRS addresses with the secret in `secret_file` (made on first use)."""

    def __init__(self, secret_file: Path, *, validity_days: int = VALIDITY_DAYS) -> None:
        self.secret_file = Path(secret_file)
        self.validity_days = validity_days
        self._secret: bytes | None = None

    # --- the secret -----------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """Whether the secret is in memory (else the next `forward` reads or makes the file)."""
        return self._secret is not None

    def load(self) -> None:
        """Read the secret, making it if there is none (a durable write: call it off the event
        loop, once)."""
        self._key(create=True)

    def _key(self, *, create: bool) -> bytes | None:
        """The HMAC key; None when there is none yet and `create` is off (nothing we made can
        be checked then: every address is refused)."""
        if self._secret is None:
            try:
                text = self.secret_file.read_bytes().strip()
            except FileNotFoundError:
                if not create:
                    return None
                text = base64.b64encode(secrets.token_bytes(32))
                self.secret_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                try:
                    write_file(self.secret_file, text + b"\n", mode=0o600, replace=False)
                except FileExistsError:  # another process made it first: use theirs
                    text = self.secret_file.read_bytes().strip()
            if not text:
                raise SrsRefused(f"{self.secret_file} is empty; remove it to have a new secret made")
            self._secret = text
        return self._secret

    def _hash(self, key: bytes, *parts: str) -> str:
        data = "".join(parts).lower().encode("utf-8", "surrogateescape")
        digest = hmac.new(key, data, hashlib.sha1).digest()
        return base64.b64encode(digest).decode("ascii")[:HASH_LENGTH]

    def _check(self, key: bytes | None, given: str, *parts: str) -> None:
        if key is None or len(given) < HASH_LENGTH:
            raise SrsRefused("SRS address not made here (hash mismatch)")
        expected = self._hash(key, *parts)
        # Compared ignoring case (a mail system on the way may fold it), in constant time.
        if not hmac.compare_digest(given[:HASH_LENGTH].lower().encode(), expected.lower().encode()):
            raise SrsRefused("SRS address not made here (hash mismatch)")

    # --- forward and reverse ----------------------------------------------------------------

    def forward(self, sender: str, our_domain: str, *, now: float | None = None) -> str:
        """`sender` rewritten as an address of `our_domain`; unchanged when it cannot be (the
        null sender, no domain, a quoted local part or an address literal, which no SRS form
        can carry unquoted)."""
        local, at, domain = sender.rpartition("@")
        if not (at and local and domain) or not _DOT_ATOM.match(local) or not _DOT_ATOM.match(domain):
            return sender
        key = self._key(create=True)
        assert key is not None
        prefix = _PREFIX.match(local)
        if prefix is None:  # an ordinary sender: SRS0
            stamp = _timestamp(time.time() if now is None else now)
            return f"SRS0={self._hash(key, stamp, domain, local)}={stamp}={domain}={local}@{our_domain}"
        if prefix.group(1) == "0":  # SRS0 of another forwarder (domain): SRS1 naming it
            rest = local[4:]  # from the separator on: "=HHHH=TT=orig-domain=orig-local"
            return f"SRS1={self._hash(key, domain, rest)}={domain}={rest}@{our_domain}"
        # SRS1 already: keep its first forwarder and what follows, with our own hash.
        fields = local[5:].split("=", 2)  # old hash, first forwarder, rest
        if len(fields) < 3 or not fields[1]:
            return sender  # not an SRS1 address after all: leave it alone
        first, rest = fields[1], fields[2]
        return f"SRS1={self._hash(key, first, rest)}={first}={rest}@{our_domain}"

    def reverse(self, address: str, *, now: float | None = None) -> str:
        """The address an SRS address of ours stands for: the original sender (SRS0) or the
        first forwarder's SRS0 address (SRS1). Raises `SrsRefused` when it is not one of ours,
        malformed, or (SRS0) older than `validity_days`."""
        local = address.rpartition("@")[0]
        prefix = _PREFIX.match(local)
        if prefix is None:
            raise SrsRefused("not an SRS address")
        key = self._key(create=False)
        if prefix.group(1) == "0":
            fields = local[5:].split("=", 3)  # hash, timestamp, domain, local part
            if len(fields) < 4 or not all(fields):
                raise SrsRefused("malformed SRS0 address")
            given, stamp, domain, original = fields
            self._check(key, given, stamp, domain, original)
            today = int((time.time() if now is None else now) // 86400) % _DAYS
            if (today - _day(stamp)) % _DAYS > self.validity_days:
                raise SrsRefused(f"SRS address expired (older than {self.validity_days} days)")
            return f"{original}@{domain}"
        fields = local[5:].split("=", 2)  # hash, first forwarder, its SRS0 local part minus "SRS0"
        if len(fields) < 3 or not fields[0] or not fields[1] or not fields[2]:
            raise SrsRefused("malformed SRS1 address")
        given, first, rest = fields
        self._check(key, given, first, rest)
        return f"SRS0{rest}@{first}"
