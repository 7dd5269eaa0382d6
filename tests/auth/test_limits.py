"""Failed-login slow-down and connection limits, on a fake clock.

The throttle and limiter tests run twice: with counts in this process, and in the shared memory
table that `[pop3] processes` uses (auth/shared_table.py)."""
from __future__ import annotations

import asyncio
import ipaddress
import random
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from postoffice.auth.limits import ConnectionLimiter, LoginThrottle, Refusal, address_group
from postoffice.auth.shared_table import SharedTable


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["local", "shared"])
def shared(request: pytest.FixtureRequest) -> Iterator[SharedTable | None]:
    if request.param == "local":
        yield None
        return
    table = SharedTable.create(10_000, evicting=True)
    yield table
    table.close()


@pytest.fixture
def throttle(clock: FakeClock, shared: SharedTable | None) -> LoginThrottle:
    return LoginThrottle(base_delay=2.0, max_delay=60.0, window=900.0, clock=clock, shared=shared)


def test_no_failures_means_no_delay(throttle: LoginThrottle) -> None:
    assert throttle.delay_for("192.0.2.1", "alice@example.org") == 0
    assert throttle.delay_for("192.0.2.1") == 0


def test_delay_doubles_per_failure_up_to_the_cap(throttle: LoginThrottle) -> None:
    delays = []
    for _ in range(8):
        throttle.record_failure("192.0.2.1", "alice@example.org")
        delays.append(throttle.delay_for("192.0.2.1", "alice@example.org"))
    assert delays == [2, 4, 8, 16, 32, 60, 60, 60]


def test_thousands_of_failures_do_not_overflow(throttle: LoginThrottle) -> None:
    for _ in range(5000):
        throttle.record_failure("192.0.2.1")
    assert throttle.delay_for("192.0.2.1") == 60


def test_larger_of_ip_and_account_delay_applies(throttle: LoginThrottle) -> None:
    # One attacker address spreading guesses over many accounts...
    for n in range(4):
        throttle.record_failure("192.0.2.1", f"user{n}@example.org")
    assert throttle.delay_for("192.0.2.1", "fresh@example.org") == 16
    # ...and many addresses guessing one account.
    for n in range(5):
        throttle.record_failure(f"198.51.100.{n}", "ceo@example.org")
    assert throttle.delay_for("203.0.113.9", "ceo@example.org") == 32
    assert throttle.delay_for("203.0.113.9", "other@example.org") == 0


def test_account_names_are_case_insensitive(throttle: LoginThrottle) -> None:
    throttle.record_failure("192.0.2.1", "Alice@Example.ORG")
    throttle.record_failure("192.0.2.2", " alice@example.org")
    assert throttle.failures("203.0.113.1", "alice@example.org") == (0, 2)


def test_failures_expire_after_a_quiet_window(throttle: LoginThrottle,
                                              clock: FakeClock) -> None:
    for _ in range(3):
        throttle.record_failure("192.0.2.1", "alice")
    clock.now += 900
    assert throttle.delay_for("192.0.2.1", "alice") == 8   # exactly the window: still counted
    clock.now += 1
    assert throttle.delay_for("192.0.2.1", "alice") == 0
    throttle.record_failure("192.0.2.1", "alice")
    assert throttle.delay_for("192.0.2.1", "alice") == 2   # counting starts again


def test_each_failure_extends_the_window(throttle: LoginThrottle, clock: FakeClock) -> None:
    for _ in range(3):
        throttle.record_failure("192.0.2.1")
        clock.now += 600
    assert throttle.failures("192.0.2.1") == (3, 0)


def test_expired_entries_are_dropped(clock: FakeClock) -> None:
    throttle = LoginThrottle(base_delay=2.0, max_delay=60.0, window=900.0, clock=clock)
    for n in range(100):
        throttle.record_failure(f"192.0.2.{n}", f"user{n}")
    assert throttle.entries == 200
    clock.now += 1000
    throttle.record_failure("198.51.100.1")
    assert throttle.entries == 1


def test_success_clears_ip_and_account(throttle: LoginThrottle) -> None:
    for _ in range(3):
        throttle.record_failure("192.0.2.1", "alice")
    throttle.record_failure("192.0.2.7", "alice")
    throttle.record_success("192.0.2.1", "alice")
    assert throttle.failures("192.0.2.1", "alice") == (0, 0)
    assert throttle.failures("192.0.2.7") == (1, 0)  # other addresses keep their count


def test_ipv6_counts_per_64(throttle: LoginThrottle) -> None:
    throttle.record_failure("2001:db8:1:2::1")
    throttle.record_failure("2001:db8:1:2:ffff:ffff:ffff:ffff")
    throttle.record_failure("2001:db8:1:3::1")
    assert throttle.failures("2001:db8:1:2:abcd::42") == (2, 0)
    assert throttle.failures("2001:db8:1:3::99") == (1, 0)


@pytest.mark.parametrize(("ip", "group"), [
    ("192.0.2.1", "192.0.2.1"),
    ("::ffff:192.0.2.1", "192.0.2.1"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:DB8:1:2::9", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::1", "::/64"),
    ("not-an-ip", "not-an-ip"),
])
def test_address_group(ip: str, group: str) -> None:
    assert address_group(ip) == group


def random_ip(rng: random.Random, n: int) -> str:
    if n % 2:
        return str(ipaddress.IPv4Address(rng.getrandbits(32)))
    return str(ipaddress.IPv6Address(rng.getrandbits(128)))


def test_entries_are_capped_under_a_flood_of_random_addresses(clock: FakeClock) -> None:
    throttle = LoginThrottle(clock=clock)  # the default cap: 100,000 of each
    rng = random.Random(7)
    throttle.record_failure("192.0.2.1", "victim@example.org")
    for n in range(200_000):
        ip = random_ip(rng, n)
        throttle.record_failure(ip, f"guess{n}@example.org")
    assert throttle.entries == 200_000  # 100,000 addresses + 100,000 accounts
    # The oldest entries went first; the newest are still counted.
    assert throttle.failures("192.0.2.1", "victim@example.org") == (0, 0)
    assert throttle.failures(ip, f"guess{n}@example.org") == (1, 1)


def test_memory_stays_flat_once_the_cap_is_reached(clock: FakeClock) -> None:
    throttle = LoginThrottle(clock=clock, max_entries=2000)
    rng = random.Random(8)
    tracemalloc.start()
    try:
        for n in range(5000):
            throttle.record_failure(random_ip(rng, n), f"guess{n}")
        full, _ = tracemalloc.get_traced_memory()
        for n in range(5000, 12_000):
            throttle.record_failure(random_ip(rng, n), f"guess{n}")
        later, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert throttle.entries == 4000
    assert later - full < 100_000  # 7,000 more failures, no more memory
    assert full < 4000 * 600       # a few hundred bytes an entry


def test_small_table_evicts_oldest_first(clock: FakeClock) -> None:
    throttle = LoginThrottle(clock=clock, max_entries=3)
    for n in range(5):
        clock.now += 1
        throttle.record_failure(f"192.0.2.{n}")
    assert [throttle.failures(f"192.0.2.{n}")[0] for n in range(5)] == [0, 0, 1, 1, 1]
    clock.now += 1
    throttle.record_failure("192.0.2.2")  # a fresh failure makes it the newest again
    throttle.record_failure("192.0.2.9")
    assert [throttle.failures(f"192.0.2.{n}")[0] for n in (2, 3, 4, 9)] == [2, 0, 1, 1]


def test_zero_base_delay_turns_the_slow_down_off(clock: FakeClock) -> None:
    throttle = LoginThrottle(base_delay=0, clock=clock)
    throttle.record_failure("192.0.2.1", "alice")
    assert throttle.delay_for("192.0.2.1", "alice") == 0


async def test_wait_before_reply_sleeps_the_delay() -> None:
    throttle = LoginThrottle(base_delay=0.05, max_delay=0.1)
    started = time.monotonic()
    assert await throttle.wait_before_reply("192.0.2.1", "alice") == 0
    assert time.monotonic() - started < 0.05
    throttle.record_failure("192.0.2.1", "alice")
    throttle.record_failure("192.0.2.1", "alice")
    started = time.monotonic()
    assert await throttle.wait_before_reply("192.0.2.1", "alice") == pytest.approx(0.1)
    assert time.monotonic() - started >= 0.09


async def test_wait_before_reply_slows_only_the_failing_client() -> None:
    throttle = LoginThrottle(base_delay=0.2)
    throttle.record_failure("192.0.2.1", "alice")
    started = time.monotonic()
    slow = asyncio.create_task(throttle.wait_before_reply("192.0.2.1", "alice"))
    await throttle.wait_before_reply("198.51.100.1", "bob")
    assert time.monotonic() - started < 0.1
    await slow


@pytest.mark.parametrize("arguments", [
    {"base_delay": -1}, {"max_delay": -1}, {"window": 0}, {"max_entries": 0},
])
def test_throttle_refuses_nonsense(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LoginThrottle(**arguments)  # type: ignore[arg-type]


# --- ConnectionLimiter ---------------------------------------------------------------------------

def test_limiter_refuses_over_the_limit_and_counts_releases() -> None:
    limiter = ConnectionLimiter(max_per_ip=2)
    assert limiter.try_acquire("192.0.2.1")
    assert limiter.try_acquire("192.0.2.1")
    assert not limiter.try_acquire("192.0.2.1")
    assert limiter.count("192.0.2.1") == 2
    assert limiter.try_acquire("192.0.2.2")  # other addresses are unaffected
    limiter.release("192.0.2.1")
    assert limiter.try_acquire("192.0.2.1")


def test_limiter_forgets_idle_addresses() -> None:
    limiter = ConnectionLimiter(max_per_ip=5)
    for n in range(1000):
        assert limiter.try_acquire(f"10.0.{n // 256}.{n % 256}")
    for n in range(1000):
        limiter.release(f"10.0.{n // 256}.{n % 256}")
    assert limiter.keys == 0
    limiter.release("10.0.0.1")  # an extra release is harmless
    assert limiter.count("10.0.0.1") == 0


def test_loopback_is_limited_unless_exempt() -> None:
    limiter = ConnectionLimiter(max_per_ip=1)
    assert limiter.try_acquire("127.0.0.1")
    assert not limiter.try_acquire("127.0.0.1")
    exempt = ConnectionLimiter(max_per_ip=1, exempt={"127.0.0.1", "::1", "10.0.0.0/8"})
    for ip in ("127.0.0.1", "::1", "10.1.2.3", "::ffff:10.9.9.9"):
        assert all(exempt.try_acquire(ip) for _ in range(5))
    assert exempt.count("127.0.0.1") == 5
    assert exempt.try_acquire("192.0.2.1")
    assert not exempt.try_acquire("192.0.2.1")


def test_limiter_groups_ipv6_by_64_and_mapped_ipv4() -> None:
    limiter = ConnectionLimiter(max_per_ip=2)
    assert limiter.try_acquire("2001:db8::1")
    assert limiter.try_acquire("2001:db8::2")
    assert not limiter.try_acquire("2001:db8::ffff")
    assert limiter.try_acquire("2001:db8:0:1::1")
    assert limiter.try_acquire("192.0.2.1")
    assert limiter.try_acquire("::ffff:192.0.2.1")
    assert not limiter.try_acquire("192.0.2.1")


def test_limiter_needs_a_positive_limit() -> None:
    with pytest.raises(ValueError):
        ConnectionLimiter(0)


def test_attempts_too_soon_after_a_failure_are_throttled(throttle: LoginThrottle, clock: FakeClock) -> None:
    assert throttle.throttled_for("192.0.2.1", "alice@example.org") == 0
    throttle.record_failure("192.0.2.1", "alice@example.org")
    clock.now += 0.5
    assert throttle.throttled_for("192.0.2.1", "bob@example.org") == 1.5  # the address's failure
    assert throttle.throttled_for("192.0.2.9", "Alice@Example.org") == 1.5  # the account's
    assert throttle.throttled_for("192.0.2.9", "bob@example.org") == 0
    clock.now += 1.5  # the delay after one failure is over
    assert throttle.throttled_for("192.0.2.1", "alice@example.org") == 0


def test_a_successful_login_makes_the_pair_known(throttle: LoginThrottle, clock: FakeClock) -> None:
    throttle.record_success("198.51.100.7", "alice@example.org")
    assert throttle.is_known("198.51.100.7", "ALICE@example.org")
    assert not throttle.is_known("198.51.100.8", "alice@example.org")
    assert not throttle.is_known("198.51.100.7", "bob@example.org")
    clock.now += 31 * 86400  # known no more
    assert not throttle.is_known("198.51.100.7", "alice@example.org")


# --- ConnectionLimiter: before and after login (issue 13) -----------------------------------------

def limiter_for(shared: SharedTable | None, *, max_per_ip: int,
                max_per_user_ip: int) -> ConnectionLimiter:
    return ConnectionLimiter(max_per_ip, max_per_user_ip=max_per_user_ip, shared=shared)


def test_an_office_behind_one_address_is_limited_per_user(shared: SharedTable | None) -> None:
    limiter = limiter_for(shared, max_per_ip=100, max_per_user_ip=20)
    users = [f"user{n}@example.org" for n in range(12)]
    for user in users:
        for _ in range(5):
            assert limiter.acquire("192.0.2.1") is None
            assert limiter.log_in("192.0.2.1", "imap", user) is None
    assert limiter.count("192.0.2.1") == 0  # logged in: none counts against the flood limit
    assert limiter.count_user("192.0.2.1", "imap", users[0]) == 5
    assert limiter.total == 60


def test_the_21st_connection_of_a_user_from_one_address_is_refused(
        shared: SharedTable | None) -> None:
    limiter = limiter_for(shared, max_per_ip=100, max_per_user_ip=20)
    for _ in range(20):
        assert limiter.acquire("192.0.2.1") is None
        assert limiter.log_in("192.0.2.1", "imap", "alice@example.org") is None
    assert limiter.acquire("192.0.2.1") is None
    refusal = limiter.log_in("192.0.2.1", "imap", "Alice@Example.org")
    assert refusal == ("Maximum number of connections from user+IP exceeded"
                       " (max_userip_connections=20)")
    assert limiter.count("192.0.2.1") == 1  # still counted as not logged in
    # Other protocols, other users and other addresses have their own counts.
    assert limiter.log_in("192.0.2.1", "pop3", "alice@example.org") is None
    assert limiter.acquire("192.0.2.1") is None
    assert limiter.log_in("192.0.2.1", "imap", "bob@example.org") is None
    assert limiter.acquire("192.0.2.2") is None
    assert limiter.log_in("192.0.2.2", "imap", "alice@example.org") is None
    # One of alice's IMAP connections closes: the next may log in.
    limiter.release("192.0.2.1", ("imap", "alice@example.org"))
    assert limiter.acquire("192.0.2.1") is None
    assert limiter.log_in("192.0.2.1", "imap", "alice@example.org") is None
    assert limiter.count_user("192.0.2.1", "imap", "alice@example.org") == 20


def test_only_connections_before_login_count_against_the_address(
        shared: SharedTable | None) -> None:
    limiter = limiter_for(shared, max_per_ip=3, max_per_user_ip=20)
    for _ in range(3):
        assert limiter.acquire("192.0.2.1") is None
    assert limiter.acquire("192.0.2.1") is Refusal.PER_IP  # the flood limit
    assert limiter.log_in("192.0.2.1", "imap", "alice@example.org") is None
    assert limiter.acquire("192.0.2.1") is None  # the login made room
    limiter.release("192.0.2.1", ("imap", "alice@example.org"))
    for _ in range(3):
        limiter.release("192.0.2.1")
    assert limiter.keys == 0 and limiter.total == 0


def test_limiters_sharing_a_table_count_together() -> None:
    """Two processes' limiters (here two objects) on one table share every per-address and
    per-user count; the total stays each one's own."""
    table = SharedTable.create(1000, evicting=False)
    first = ConnectionLimiter(2, max_per_user_ip=1, shared=table)
    second = ConnectionLimiter(2, max_per_user_ip=1, shared=table)
    assert first.acquire("192.0.2.1") is None
    assert second.acquire("192.0.2.1") is None
    assert first.acquire("192.0.2.1") is Refusal.PER_IP
    assert second.acquire("192.0.2.1") is Refusal.PER_IP
    assert first.log_in("192.0.2.1", "pop3", "alice@example.org") is None
    assert second.log_in("192.0.2.1", "pop3", "alice@example.org") is not None
    assert (first.total, second.total) == (1, 1)
    table.close()


def test_throttles_sharing_a_table_see_each_others_failures(clock: FakeClock) -> None:
    table = SharedTable.create(1000, evicting=True)
    first = LoginThrottle(clock=clock, shared=table)
    second = LoginThrottle(clock=clock, shared=table)
    first.record_failure("192.0.2.1", "alice@example.org")
    assert second.throttled_for("192.0.2.1", "bob@example.org") == 2.0
    assert second.delay_for("192.0.2.9", "alice@example.org") == 2.0
    second.record_success("192.0.2.1", "alice@example.org")
    assert first.is_known("192.0.2.1", "alice@example.org")
    assert first.failures("192.0.2.1", "alice@example.org") == (0, 0)
    table.close()
