"""Recently verified passwords, so that a client logging in again and again pays argon2 once.

Mail clients open many connections: IMAP clients keep several, phones reconnect at every wake-up,
POP3 clients poll every few minutes, and each connection logs in. argon2id is slow on purpose
(about 0.25 s of CPU and 64 MiB per check here); paying it for every reconnect makes logins a busy
server's main load. After a successful check the password is remembered for `ttl` seconds as an
HMAC under a key made at startup and kept only in memory (Dovecot's auth_cache does the same
job): a later login with the same password against the same stored hash is accepted without
argon2. A changed password (a new hash, also when another process changed it) misses; wrong
passwords are never remembered, so guessing still costs argon2 and the login throttle.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

__all__ = ["VerifiedPasswords"]


class VerifiedPasswords:
    """Per account: a keyed digest of (stored hash, password) and when it expires."""

    def __init__(self, ttl: float, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: dict[int, tuple[float, bytes]] = {}  # account id -> (expiry, digest)

    def _digest(self, password_hash: str, password: str) -> bytes:
        message = password_hash.encode() + b"\0" + password.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def check(self, account_id: int, password_hash: str, password: str) -> bool:
        """True if this password was verified against this hash within the last `ttl` seconds."""
        entry = self._entries.get(account_id)
        if entry is None:
            return False
        expiry, digest = entry
        if self._clock() >= expiry:
            del self._entries[account_id]
            return False
        return hmac.compare_digest(digest, self._digest(password_hash, password))

    def remember(self, account_id: int, password_hash: str, password: str) -> None:
        """Record a password argon2 has just accepted."""
        if self.ttl <= 0:
            return
        entries = self._entries
        entries.pop(account_id, None)  # re-inserted last: the dict stays in expiry order
        while len(entries) >= self.max_entries:
            del entries[next(iter(entries))]  # the oldest entry expires first
        entries[account_id] = (self._clock() + self.ttl, self._digest(password_hash, password))

    def forget(self, account_id: int | None = None) -> None:
        """Drop one account's entry, or all of them."""
        if account_id is None:
            self._entries.clear()
        else:
            self._entries.pop(account_id, None)

    def __len__(self) -> int:
        return len(self._entries)
