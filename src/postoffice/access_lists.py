"""The local block and allow lists (`postoffice block|allow add|list|remove`), as port 25 uses them.

An entry is one of four kinds, told apart by its shape when it is added (`parse_target`):

- IP (`192.0.2.7`, `2001:db8::7`): the connecting client's address. IPv4-mapped IPv6
  clients (`::ffff:192.0.2.7`) match their IPv4 entries.
- CIDR (`192.0.2.0/24`, `2001:db8::/32`): every client address inside the network (host bits
  are cleared: `192.0.2.7/24` is stored as `192.0.2.0/24`).
- DOMAIN (`example.com`): that domain and every domain under it (`mail.example.com`), as the
  domain of the envelope sender (MAIL FROM) or of a recipient (RCPT TO).
- ADDRESS (`user@example.com`): that address, ignoring case (like every address here), and its
  `+detail` forms (`user+news@example.com`), as the envelope sender or a recipient.

Where each applies, on port 25 only (submission is our own authenticated users, whose home
networks an MX block list must not lock out; LMTP is local delivery we were asked to make):
at connect an IP or CIDR block refuses the client (554 5.7.1, RFC 5321 §3.1); at MAIL a
blocked sender domain or address is refused (554 5.7.1); at RCPT a blocked recipient address
or domain is refused (550 5.7.1), so an address that only receives spam can be shut.

Allow entries win: an IP, CIDR, sender domain or sender address on the allow list is never
refused by a block entry and skips the DNS blocklists (`AccessSnapshot.is_allowed`). They are
matched against the client and the envelope sender only, never a recipient.

The lists live in the store, so `postoffice block add` in another process takes effect at once:
`AccessLists.current()` compares the store's list version (one indexed read, ~0.1 ms) on every
new connection and reloads the lists only when it changed (indexed in a thread). Matching is a few dictionary lookups,
whatever the size of the lists: one per distinct CIDR prefix length, one per domain label.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from postoffice.directory import DirectoryError, canonical_domain
from postoffice.store.interface import (
    AccessEntry,
    AccessKind,
    AccessListName,
    MailStore,
    StoreError,
)

log = logging.getLogger(__name__)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_REASON = 200


class AccessListError(ValueError):
    """A target or reason that cannot be an entry; str() is one plain sentence."""


def parse_target(text: str) -> tuple[AccessKind, str]:
    """The kind and canonical value of what an admin typed: an IP, a network, an address or a
    domain. Raises AccessListError with what to type instead."""
    value = text.strip()
    if not value:
        raise AccessListError("Give an IP address, a network (CIDR), a domain or an email address.")
    try:
        return "ip", str(_unmapped(ipaddress.ip_address(value)))
    except ValueError:
        pass
    if "/" in value:
        try:
            return "cidr", str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise AccessListError(f"{text!r} is not a network: write one like 192.0.2.0/24 or 2001:db8::/32.") from None
    if "@" in value:
        local, _, domain = value.removeprefix("<").removesuffix(">").rpartition("@")
        if not local or any(c.isspace() or c in '<>"' or not c.isprintable() for c in local):
            raise AccessListError(f"{text!r} is not an email address: write one like user@example.com.")
        return "address", f"{local.lower()}@{_domain(domain, text)}"
    return "domain", _domain(value, text)


def check_reason(reason: str) -> str:
    """A reason ends up in SMTP replies: one line of printable text, not too long."""
    reason = reason.strip()
    if not reason.isprintable():
        raise AccessListError("The reason must be one line of printable text.")
    if len(reason) > MAX_REASON:
        raise AccessListError(f"The reason is {len(reason)} characters long; keep it under {MAX_REASON}.")
    return reason


def _domain(text: str, typed: str) -> str:
    try:
        return canonical_domain(text)
    except DirectoryError:
        raise AccessListError(
            f"{typed!r} is not an IP address, a network, a domain or an email address: write one like "
            "192.0.2.7, 192.0.2.0/24, example.com or user@example.com."
        ) from None


def _unmapped(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_address(text: str) -> IPAddress | None:
    """The connection's peer as an address, or None (a Unix socket has none); IPv4 seen through
    a dual-stack socket (::ffff:a.b.c.d) is IPv4, as every check judges it."""
    try:
        return _unmapped(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return None


def in_networks(address: str | IPAddress | None,
                networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether the client `address` (text as the connection gives it, or parsed) is in one of
    `networks` (trusted relays, relay_networks)."""
    ip = client_address(address) if isinstance(address, str) else address
    return ip is not None and any(ip in network for network in networks)


@dataclass
class _List:
    """One list (block or allow), indexed for lookups."""

    # (IP version, prefix length) -> network address as int -> entry; IPs are /32 or /128.
    networks: dict[tuple[int, int], dict[int, AccessEntry]] = field(default_factory=dict)
    domains: dict[str, AccessEntry] = field(default_factory=dict)
    addresses: dict[str, AccessEntry] = field(default_factory=dict)

    def add(self, entry: AccessEntry) -> None:
        if entry.kind == "ip":  # ip_address is ten times cheaper than ip_network
            ip = ipaddress.ip_address(entry.value)
            self.networks.setdefault((ip.version, ip.max_prefixlen), {})[int(ip)] = entry
        elif entry.kind == "cidr":
            network = ipaddress.ip_network(entry.value, strict=False)
            key = (network.version, network.prefixlen)
            self.networks.setdefault(key, {})[int(network.network_address)] = entry
        elif entry.kind == "domain":
            self.domains[entry.value.lower()] = entry
        else:
            self.addresses[entry.value.lower()] = entry

    def ip(self, ip: IPAddress | None) -> AccessEntry | None:
        if ip is None:
            return None
        number = int(ip)
        bits = ip.max_prefixlen
        for (version, prefix), table in self.networks.items():
            if version == ip.version:
                found = table.get(number >> (bits - prefix) << (bits - prefix))
                if found is not None:
                    return found
        return None

    def address(self, address: str, delimiter: str) -> AccessEntry | None:
        """An ADDRESS entry for `address` (or for it without +detail), else a DOMAIN entry for
        its domain or a parent of it."""
        local, at, domain = address.strip().removeprefix("<").removesuffix(">").rpartition("@")
        if not at or not local:
            return None
        domain = domain.lower().rstrip(".")
        local = local.lower()
        found = self.addresses.get(f"{local}@{domain}")
        if found is None and delimiter and delimiter in local:
            found = self.addresses.get(f"{local.split(delimiter, 1)[0]}@{domain}")
        return found or self.domain(domain)

    def domain(self, domain: str) -> AccessEntry | None:
        if not self.domains:
            return None
        try:
            domain = canonical_domain(domain)
        except DirectoryError:
            domain = domain.lower()
        labels = domain.split(".")
        for start in range(len(labels)):
            found = self.domains.get(".".join(labels[start:]))
            if found is not None:
                return found
        return None


class AccessSnapshot:
    """Both lists as they were at one version of the store; answers without I/O."""

    def __init__(self, entries: list[AccessEntry], version: int = 0, *, delimiter: str = "+") -> None:
        self.version = version
        self.delimiter = delimiter
        self._lists: dict[AccessListName, _List] = {"block": _List(), "allow": _List()}
        for entry in entries:
            self._lists[entry.list].add(entry)
        self.empty = not entries

    def is_allowed(self, ip: str | IPAddress | None, mail_from: str | None = None) -> bool:
        """Whether the client or the envelope sender is on the allow list: it skips the DNS
        blocklists and is never refused by a block entry."""
        return self.allowed_by(ip, mail_from) is not None

    def allowed_by(self, ip: str | IPAddress | None, mail_from: str | None = None) -> AccessEntry | None:
        allow = self._lists["allow"]
        address = client_address(ip) if isinstance(ip, str) else ip
        return allow.ip(address) or (allow.address(mail_from, self.delimiter) if mail_from else None)

    def blocked_client(self, ip: str) -> AccessEntry | None:
        """The block entry refusing this client at connect, unless it is allowed."""
        address = client_address(ip)
        found = self._lists["block"].ip(address)
        return found if found is not None and self._lists["allow"].ip(address) is None else None

    def blocked_sender(self, ip: str, mail_from: str) -> AccessEntry | None:
        """The block entry refusing this envelope sender at MAIL, unless client or sender is allowed."""
        found = self._lists["block"].address(mail_from, self.delimiter) if mail_from else None
        return found if found is not None and not self.is_allowed(ip, mail_from) else None

    def blocked_recipient(self, ip: str, mail_from: str, recipient: str) -> AccessEntry | None:
        """The block entry refusing this recipient at RCPT, unless client or sender is allowed."""
        found = self._lists["block"].address(recipient, self.delimiter)
        return found if found is not None and not self.is_allowed(ip, mail_from or None) else None


class AccessLists:
    """The store's lists for a running server: reloaded when another process changed them."""

    def __init__(self, store: MailStore, *, delimiter: str = "+") -> None:
        self.store = store
        self.delimiter = delimiter
        self._snapshot = AccessSnapshot([], version=-1, delimiter=delimiter)

    async def current(self) -> AccessSnapshot:
        """The lists as the store has them now: one read of the version, and a reload only when
        an admin command changed them since the last call."""
        try:
            version = await self.store.access_lists_version()
            if version != self._snapshot.version:
                entries = await self.store.list_access_entries()
                # In a thread: a long list takes a while to index, and connections keep coming.
                self._snapshot = await asyncio.to_thread(AccessSnapshot, entries, version, delimiter=self.delimiter)
        except StoreError as error:  # the store will say more elsewhere; keep serving
            log.warning("reading the block and allow lists failed, using the last ones read: %s", error)
        return self._snapshot

    async def is_allowed(self, ip: str, mail_from: str | None = None) -> bool:
        """For the DNS blocklist check: allow-listed clients and senders skip it."""
        return (await self.current()).is_allowed(ip, mail_from)


def refusal_text(entry: AccessEntry, what: str) -> str:
    """`<what> is blocked here: <reason>`, for the SMTP reply (what: the client IP, or the
    domain or address the entry names)."""
    reason = " ".join(entry.reason.split())
    return f"{what} is blocked here" + (f": {reason}" if reason else "")
