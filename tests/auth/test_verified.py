"""VerifiedPasswords: remembered only for the same password and hash, for ttl seconds, bounded."""

from __future__ import annotations

from postoffice.auth.verified import VerifiedPasswords


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_same_password_same_hash_within_ttl() -> None:
    clock = Clock()
    cache = VerifiedPasswords(ttl=60, clock=clock)
    assert not cache.check(1, "$argon2id$h1", "secret password")
    cache.remember(1, "$argon2id$h1", "secret password")
    assert cache.check(1, "$argon2id$h1", "secret password")
    assert not cache.check(1, "$argon2id$h1", "secret passwore")
    assert not cache.check(1, "$argon2id$h2", "secret password")  # the password was changed
    assert not cache.check(2, "$argon2id$h1", "secret password")  # another account
    clock.now += 59.9
    assert cache.check(1, "$argon2id$h1", "secret password")
    clock.now += 0.2
    assert not cache.check(1, "$argon2id$h1", "secret password")
    assert len(cache) == 0  # the expired entry went


def test_off_bounded_and_forgotten() -> None:
    off = VerifiedPasswords(ttl=0)
    off.remember(1, "h", "p")
    assert not off.check(1, "h", "p") and len(off) == 0
    cache = VerifiedPasswords(ttl=60, max_entries=3)
    for account in range(1, 6):
        cache.remember(account, "h", "p")
    assert len(cache) == 3
    assert [cache.check(a, "h", "p") for a in range(1, 6)] == [False, False, True, True, True]
    cache.forget(4)
    assert not cache.check(4, "h", "p")
    cache.forget()
    assert len(cache) == 0


def test_keys_differ_per_instance_and_passwords_are_not_kept() -> None:
    a, b = VerifiedPasswords(ttl=60), VerifiedPasswords(ttl=60)
    a.remember(1, "h", "correct horse")
    b.remember(1, "h", "correct horse")
    assert a._entries[1][1] != b._entries[1][1]  # a digest under a random key per process
    assert b"correct horse" not in a._entries[1][1]
    assert not a.check(1, "h", "correct horse\udcff")  # odd code points are compared, not dropped
