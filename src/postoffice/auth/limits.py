"""Failed-login slow-down, per-IP and total connection limits (DESIGN §4).

:class:`LoginThrottle` remembers recent authentication failures per client address and per
account, and tells a protocol driver how long to hold back its answer; :class:`ConnectionLimiter`
counts open connections per client address and in all. Neither does I/O, except that
:meth:`LoginThrottle.wait_before_reply` sleeps.

Both group IPv6 addresses by their /64: one subscriber or one server usually owns a whole /64
(RFC 6177 recommends at least that much per site), so counting single IPv6 addresses would let
one host appear as 2**64 clients. IPv4-mapped IPv6 addresses count as the IPv4 address they hold,
so a dual-stack socket cannot double anyone's allowance.

How the slow-down limits guessing: the driver sleeps before answering a failed attempt while the
connection keeps its slot in the :class:`ConnectionLimiter` (a client that hangs up does not end
the sleep early). An address therefore gets at most ``max_per_ip`` answers per delay period, and
the delay doubles with every failure up to ``max_delay``. An attempt that arrives before the
delay since its address's (or account's) last failure is over is *throttled*: it is not checked
at all, but told to try again once the delay is over (auth/login.py), so guesses fired in
parallel cannot queue up behind the slow password check and delay everyone else's login. It is
not counted as a failure either: people sharing an address with someone who mistyped (an
office behind NAT) would otherwise extend each other's delay.

The throttle also remembers which account logged in successfully from which address group
(for ``KNOWN_SECONDS``): such a known pair is never throttled (a flood of guesses at someone's
account must not lock its owner out) and goes first in the password check queue
(auth/check_queue.py); its failures are still counted and answered after the delay.
"""
from __future__ import annotations

import asyncio
import enum
import ipaddress
import resource
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

__all__ = ["KNOWN_SECONDS", "ConnectionLimiter", "LoginThrottle", "Refusal", "address_group",
           "connection_cap"]

KNOWN_SECONDS = 30 * 86400.0  # how long a successful login makes its (account, address) known


def address_group(ip: str) -> str:
    """The key an address is counted under: IPv4 as is, IPv6 as its /64 network.

    Anything that is not an IP address (a Unix socket peer, say) is its own group.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        # Drop a zone index ("fe80::1%eth0") with the host bits: it names our interface, not them.
        network = int(address) >> 64 << 64
        return f"{ipaddress.IPv6Address(network)}/64"
    return str(address)


class _FailureTable:
    """Failure counts by key, oldest failure first, at most ``limit`` keys.

    An OrderedDict kept in order of each key's latest failure gives O(1) expiry from the front
    and O(1) eviction of the oldest key when a flood of new keys arrives.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._entries: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def count(self, key: str, now: float, window: float) -> int:
        return self.entry(key, now, window)[0]

    def entry(self, key: str, now: float, window: float) -> tuple[int, float]:
        """``(failures, time of the last one)``; ``(0, 0.0)`` when none are recent."""
        entry = self._entries.get(key)
        if entry is None:
            return 0, 0.0
        if now - entry[1] > window:
            del self._entries[key]
            return 0, 0.0
        return entry

    def add(self, key: str, now: float, window: float) -> None:
        count = self.count(key, now, window)
        self._entries[key] = (count + 1, now)
        self._entries.move_to_end(key)
        self.expire(now, window)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)

    def clear(self, key: str) -> None:
        self._entries.pop(key, None)

    def expire(self, now: float, window: float) -> None:
        while self._entries:
            key, (_, last) = next(iter(self._entries.items()))
            if now - last <= window:
                break
            del self._entries[key]


class LoginThrottle:
    """How long to delay the answer to a login attempt, from recent failures.

    With ``n`` failures within ``window`` seconds (counted since the last one), the delay is
    ``base_delay * 2**(n - 1)``, at most ``max_delay``; the larger of the address's and the
    account's delays applies. ``base_delay`` 0 turns the slow-down off. At most ``max_entries``
    addresses and as many accounts are remembered; beyond that the oldest are forgotten, so a
    flood of random addresses or user names costs bounded memory (roughly 300 bytes an entry,
    so about 60 MB with both tables full at the default).

    Use from a driver, after the directory said no::

        throttle.record_failure(conn.peer_ip, username)
        await throttle.wait_before_reply(conn.peer_ip, username)
        send("535 5.7.8 Authentication credentials invalid")

    and after a successful login, ``throttle.record_success(conn.peer_ip, username)``.
    """

    def __init__(self, base_delay: float = 2.0, max_delay: float = 60.0, window: float = 900.0,
                 clock: Callable[[], float] = time.monotonic, *,
                 max_entries: int = 100_000) -> None:
        if base_delay < 0 or max_delay < 0 or window <= 0 or max_entries < 1:
            raise ValueError("delays must not be negative; window and max_entries must be positive")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.window = window
        self._clock = clock
        self._by_ip = _FailureTable(max_entries)
        self._by_account = _FailureTable(max_entries)
        # (account, address group) -> last successful login, oldest first, at most max_entries.
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._max_known = max_entries

    @property
    def entries(self) -> int:
        """How many addresses and accounts are remembered (for tests and metrics)."""
        return len(self._by_ip) + len(self._by_account)

    def failures(self, ip: str, account: str | None = None) -> tuple[int, int]:
        """Recent failure counts ``(for the address, for the account)``."""
        now = self._clock()
        ip_count = self._by_ip.count(address_group(ip), now, self.window)
        account_key = _account_key(account)
        account_count = (self._by_account.count(account_key, now, self.window)
                         if account_key else 0)
        return ip_count, account_count

    def delay_for(self, ip: str, account: str | None = None) -> float:
        """Seconds to wait before answering; 0 without recent failures."""
        return self._delay(max(self.failures(ip, account)))

    def throttled_for(self, ip: str, account: str | None = None) -> float:
        """Seconds until an attempt may be checked: how much of the delay since the last failure
        of this address or account is left; 0 when it is over (or there was none). Drivers
        skip this for a known pair (:meth:`is_known`)."""
        now = self._clock()
        tables = [(self._by_ip, address_group(ip))]
        account_key = _account_key(account)
        if account_key:
            tables.append((self._by_account, account_key))
        left = 0.0
        for table, key in tables:
            failures, last = table.entry(key, now, self.window)
            if failures:
                left = max(left, last + self._delay(failures) - now)
        return left

    def is_known(self, ip: str, account: str | None) -> bool:
        """Whether ``account`` logged in successfully from ``ip``'s group in the last
        ``KNOWN_SECONDS``."""
        account_key = _account_key(account)
        if not account_key:
            return False
        last = self._known.get((account_key, address_group(ip)))
        return last is not None and self._clock() - last <= KNOWN_SECONDS

    def record_failure(self, ip: str, account: str | None = None) -> None:
        """Count one failed attempt against the address and (if given) the account."""
        now = self._clock()
        self._by_ip.add(address_group(ip), now, self.window)
        account_key = _account_key(account)
        if account_key:
            self._by_account.add(account_key, now, self.window)
        else:
            self._by_account.expire(now, self.window)

    def record_success(self, ip: str, account: str | None = None) -> None:
        """Forget the failures of this address and this account, and remember the pair as
        known (:meth:`is_known`).

        Clearing the address too means someone who owns one account can reset their address's
        count by logging in to it, but the per-account count of whatever account they are
        guessing stays, so the target is still protected.
        """
        group = address_group(ip)
        self._by_ip.clear(group)
        account_key = _account_key(account)
        if account_key:
            self._by_account.clear(account_key)
            known = self._known
            known.pop((account_key, group), None)  # re-inserted last: oldest stay first
            known[(account_key, group)] = self._clock()
            while len(known) > self._max_known:
                known.popitem(last=False)

    async def wait_before_reply(self, ip: str, account: str | None = None) -> float:
        """Sleep for :meth:`delay_for` seconds; returns how long that was."""
        delay = self.delay_for(ip, account)
        if delay > 0:
            await asyncio.sleep(delay)
        return delay

    def _delay(self, failures: int) -> float:
        if failures <= 0 or self.base_delay <= 0:
            return 0.0
        # Cap the exponent before multiplying: 2.0 ** 1100 would overflow a float.
        return min(self.base_delay * 2.0 ** min(failures - 1, 64), self.max_delay)


def _account_key(account: str | None) -> str:
    # "Alice@Example.org" and "alice@example.org" are one account to the directory, so they
    # must be one counter here, or changing case would reset the slow-down.
    return account.strip().casefold() if account else ""


class Refusal(enum.Enum):
    """Why a connection was refused; the value is a sentence for the protocol's error line."""

    PER_IP = "Too many connections from your address"
    TOTAL = "Too many connections to this server"


def connection_cap(wanted: int) -> int:
    """How many connections this process can hold at once: ``wanted``, unless the open-file
    limit is too low for it. The soft limit is raised towards the hard one first (as servers
    commonly do); half of what remains after a reserve goes to connections, since a session may
    also hold a mailbox lock or a message file."""
    reserve = 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * wanted + reserve
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, (soft - reserve) // 2))


class ConnectionLimiter:
    """Open connections per client address (IPv6 by /64), refusing more than ``max_per_ip``,
    and more than ``max_total`` in all.

    ``exempt`` holds addresses or networks ("127.0.0.1", "10.0.0.0/8") that are counted but
    never refused for their own number; loopback is not exempt unless listed, because a local
    webmail or a tunnel can open connections as fast as anyone. The total limit, which keeps
    the process within its file descriptors, applies to everyone.
    """

    def __init__(self, max_per_ip: int, exempt: Iterable[str] = (), *,
                 max_total: int | None = None) -> None:
        if max_per_ip < 1:
            raise ValueError(f"max_per_ip must be at least 1, not {max_per_ip}")
        if max_total is not None and max_total < 1:
            raise ValueError(f"max_total must be at least 1, not {max_total}")
        self.max_per_ip = max_per_ip
        self.max_total = max_total
        self._exempt = tuple(ipaddress.ip_network(net, strict=False) for net in exempt)
        self._counts: dict[str, int] = {}
        self._total = 0

    @property
    def total(self) -> int:
        """Open connections counted, from every address."""
        return self._total

    def acquire(self, ip: str) -> Refusal | None:
        """Count a new connection from ``ip``; or why not (and nothing counted)."""
        if self.max_total is not None and self._total >= self.max_total:
            return Refusal.TOTAL
        key = address_group(ip)
        count = self._counts.get(key, 0)
        if count >= self.max_per_ip and not self._is_exempt(ip):
            return Refusal.PER_IP
        self._counts[key] = count + 1
        self._total += 1
        return None

    def try_acquire(self, ip: str) -> bool:
        """Count a new connection from ``ip``; False (and nothing counted) if over a limit."""
        return self.acquire(ip) is None

    def release(self, ip: str) -> None:
        """Forget one connection from ``ip``; extra releases are ignored."""
        key = address_group(ip)
        count = self._counts.get(key, 0)
        if count == 0:
            return
        self._total -= 1
        if count == 1:
            del self._counts[key]  # only active addresses are kept: memory stays bounded
        else:
            self._counts[key] = count - 1

    def count(self, ip: str) -> int:
        """Open connections from ``ip``'s group."""
        return self._counts.get(address_group(ip), 0)

    def _is_exempt(self, ip: str) -> bool:
        if not self._exempt:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == net.version and address in net for net in self._exempt)
