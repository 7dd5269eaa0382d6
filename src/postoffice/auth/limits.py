"""Failed-login slow-down; connection limits per address, per user and address, and in all
(DESIGN §4).

:class:`LoginThrottle` remembers recent authentication failures per client address and per
account, and tells a protocol driver how long to hold back its answer; :class:`ConnectionLimiter`
counts open connections per client address before login, per user and address after it, and in
all. Neither does I/O, except that :meth:`LoginThrottle.wait_before_reply` sleeps. With
``[smtp]``/``[smtp]`/`[pop3] processes`` both keep their counts in shared memory (auth/shared_table.py), so the
limits hold for all processes together.

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

from postoffice.auth.shared_table import SharedTable

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


class _SharedFailureTable:
    """:class:`_FailureTable` kept in a :class:`SharedTable`, for every process of a `serve`.

    Keys carry a prefix (one table holds the address, account and known-pair entries); expired
    entries are dropped when read, and the table itself evicts the oldest when it is full.
    """

    def __init__(self, table: SharedTable, prefix: str) -> None:
        self._table = table
        self._prefix = prefix

    def __len__(self) -> int:
        return len(self._table)

    def count(self, key: str, now: float, window: float) -> int:
        return self.entry(key, now, window)[0]

    def entry(self, key: str, now: float, window: float) -> tuple[int, float]:
        name = self._prefix + key
        with self._table.locked():
            count, last = self._table.get(name)
            if count and now - last > window:
                self._table.put(name, 0, 0.0)
                return 0, 0.0
            return count, last

    def add(self, key: str, now: float, window: float) -> None:
        with self._table.locked():
            self._table.put(self._prefix + key, self.count(key, now, window) + 1, now)

    def clear(self, key: str) -> None:
        self._table.put(self._prefix + key, 0, 0.0)

    def expire(self, now: float, window: float) -> None:
        pass  # entries expire when read, and make room for new ones when the table is full


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

    ``shared``: keep every count in that table, shared by the processes of one `serve`
    (``[smtp]``/``[smtp]`/`[pop3] processes``), so that spreading guesses over them gains nothing; its size then
    bounds the memory instead of ``max_entries``.
    """

    def __init__(self, base_delay: float = 2.0, max_delay: float = 60.0, window: float = 900.0,
                 clock: Callable[[], float] = time.monotonic, *,
                 max_entries: int = 100_000, shared: SharedTable | None = None) -> None:
        if base_delay < 0 or max_delay < 0 or window <= 0 or max_entries < 1:
            raise ValueError("delays must not be negative; window and max_entries must be positive")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.window = window
        self._clock = clock
        self._by_ip: _FailureTable | _SharedFailureTable
        self._by_account: _FailureTable | _SharedFailureTable
        # "account address-group" -> (1, last successful login), at most max_entries.
        self._known: _FailureTable | _SharedFailureTable
        if shared is None:
            self._by_ip = _FailureTable(max_entries)
            self._by_account = _FailureTable(max_entries)
            self._known = _FailureTable(max_entries)
        else:
            self._by_ip = _SharedFailureTable(shared, "ip ")
            self._by_account = _SharedFailureTable(shared, "account ")
            self._known = _SharedFailureTable(shared, "known ")

    @property
    def entries(self) -> int:
        """How many addresses and accounts are remembered (for tests and metrics; with a
        shared table, every entry it holds)."""
        if isinstance(self._by_ip, _SharedFailureTable):
            return len(self._by_ip)
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
        return self._known.count(_known_key(account_key, ip), self._clock(), KNOWN_SECONDS) > 0

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
            key = _known_key(account_key, ip)
            self._known.clear(key)  # added again as the newest, with a count of 1
            self._known.add(key, self._clock(), KNOWN_SECONDS)

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


def _known_key(account_key: str, ip: str) -> str:
    return f"{account_key} {address_group(ip)}"  # a group holds no space: unambiguous


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


class _LocalCounts:
    """Counts by key in this process; only non-zero counts are kept (memory stays bounded)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def get(self, key: str) -> int:
        return self._counts.get(key, 0)

    def try_add(self, key: str, limit: int | None) -> bool:
        count = self._counts.get(key, 0)
        if limit is not None and count >= limit:
            return False
        self._counts[key] = count + 1
        return True

    def remove(self, key: str) -> bool:
        count = self._counts.get(key, 0)
        if count == 0:
            return False
        if count == 1:
            del self._counts[key]
        else:
            self._counts[key] = count - 1
        return True


class _SharedCounts:
    """The same counts in a :class:`SharedTable`, for every process of a `serve`."""

    def __init__(self, table: SharedTable) -> None:
        self._table = table

    def __len__(self) -> int:
        return len(self._table)

    def get(self, key: str) -> int:
        return self._table.get(key)[0]

    def try_add(self, key: str, limit: int | None) -> bool:
        return self._table.add(key, 1, time.monotonic(), limit)

    def remove(self, key: str) -> bool:
        return self._table.add(key, -1, time.monotonic())


class ConnectionLimiter:
    """Open connections: per client address before login, per user and address after it, and
    in all (Dovecot's model: its login processes, ``mail_max_userip_connections``).

    A new connection counts against its address (IPv6 by /64) until it logs in: more than
    ``max_per_ip`` such connections from one address are refused. That is the flood limit; an
    MX client's SMTP session never logs in and counts against it throughout. A login moves the
    connection to ``(protocol, account, address)``, of which ``max_per_user_ip`` may be open
    (None: no limit), so an office behind one NAT address is limited per person, not as a
    whole. ``max_total`` (this process's file descriptors) applies to everyone.

    ``exempt`` holds addresses or networks ("127.0.0.1", "10.0.0.0/8") that are counted but
    never refused for their own number before login; loopback is not exempt unless listed,
    because a local webmail or a tunnel can open connections as fast as anyone.

    ``shared``: keep the per-address and per-user counts in that table, shared by the
    processes of one `serve` (``[smtp]``/``[smtp]`/`[pop3] processes``), so that a client spreading connections
    over them gets no more; the total stays per process, like the descriptors it protects.
    """

    def __init__(self, max_per_ip: int, exempt: Iterable[str] = (), *,
                 max_total: int | None = None, max_per_user_ip: int | None = None,
                 shared: SharedTable | None = None) -> None:
        for name, value in (("max_per_ip", max_per_ip), ("max_total", max_total),
                            ("max_per_user_ip", max_per_user_ip)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        self.max_per_ip = max_per_ip
        self.max_total = max_total
        self.max_per_user_ip = max_per_user_ip
        self._exempt = tuple(ipaddress.ip_network(net, strict=False) for net in exempt)
        self._counts: _LocalCounts | _SharedCounts = (
            _LocalCounts() if shared is None else _SharedCounts(shared))
        self._total = 0

    @property
    def total(self) -> int:
        """Open connections counted in this process, from every address."""
        return self._total

    def acquire(self, ip: str) -> Refusal | None:
        """Count a new connection from ``ip``; or why not (and nothing counted)."""
        if self.max_total is not None and self._total >= self.max_total:
            return Refusal.TOTAL
        limit = None if self._is_exempt(ip) else self.max_per_ip
        if not self._counts.try_add(_ip_key(ip), limit):
            return Refusal.PER_IP
        self._total += 1
        return None

    def try_acquire(self, ip: str) -> bool:
        """Count a new connection from ``ip``; False (and nothing counted) if over a limit."""
        return self.acquire(ip) is None

    def log_in(self, ip: str, protocol: str, account: str) -> str | None:
        """Move an acquired connection from ``ip`` to ``account`` on ``protocol`` ("imap",
        "pop3", "smtp"); or the sentence refusing it (and the connection stays counted as not
        logged in). Release it afterwards with ``release(ip, (protocol, account))``."""
        if not self._counts.try_add(_user_key(ip, protocol, account), self.max_per_user_ip):
            return ("Maximum number of connections from user+IP exceeded"
                    f" (max_userip_connections={self.max_per_user_ip})")
        self._counts.remove(_ip_key(ip))
        return None

    def release(self, ip: str, login: tuple[str, str] | None = None) -> None:
        """Forget one connection from ``ip``, logged in as ``login`` = ``(protocol, account)``
        (see :meth:`log_in`) or not; extra releases are ignored."""
        key = _ip_key(ip) if login is None else _user_key(ip, *login)
        if self._counts.remove(key):
            self._total -= 1

    @property
    def keys(self) -> int:
        """Addresses and (user, address) pairs with open connections (for tests and metrics)."""
        return len(self._counts)

    def count(self, ip: str) -> int:
        """Connections from ``ip``'s group that have not logged in."""
        return self._counts.get(_ip_key(ip))

    def count_user(self, ip: str, protocol: str, account: str) -> int:
        """Connections of ``account`` on ``protocol`` from ``ip``'s group."""
        return self._counts.get(_user_key(ip, protocol, account))

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


def _ip_key(ip: str) -> str:
    return f"ip {address_group(ip)}"


def _user_key(ip: str, protocol: str, account: str) -> str:
    # The group holds no space, the protocol is a word: the key is unambiguous.
    return f"user {protocol} {address_group(ip)} {_account_key(account)}"
