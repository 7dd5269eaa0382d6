"""Checking one configuration value: the parsers `config_schema.SCHEMA` names for each key.

Each parser takes the value as TOML gave it and the data directory, and returns the typed value
or raises `Invalid` saying what is allowed (`config` turns that into one sentence naming the
file and key). Kept apart from the schema so each file can be read in one sitting.
"""
from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """A TCP address to listen on; port 0 asks the kernel for a free port (tests)."""

    host: str
    port: int

    def __str__(self) -> str:
        # IPv6 literals need brackets, or the port would be read as part of the address.
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UnixAddress:
    """A Unix socket path to listen on (only ``[listen] lmtp`` accepts these)."""

    path: Path

    def __str__(self) -> str:
        return f"unix:{self.path}"


# --- checking one value --------------------------------------------------------------------------

class Invalid(Exception):
    """Raised by a key's parser: ``expected`` says what is allowed (for ``part``, the bad entry
    of a list, if there is one)."""

    def __init__(self, expected: str, part: Any = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.part = part


Parser = Callable[[Any, Path], Any]  # (value from TOML, data directory) -> typed value
_INT64_MAX = 2**63 - 1


def number(minimum: float, maximum: float | None = None, *, unit: str = "", example: float,
            whole: bool = True) -> Parser:
    kind = ("a whole number" if whole else "a number") + (f" of {unit}" if unit else "")
    limits = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
    limits += f" {unit}" if unit else ""
    types = int if whole else int | float

    def parse(value: Any, _data_dir: Path) -> float:
        # bool is a subclass of int in Python, but `true` is not a number in TOML.
        if isinstance(value, bool) or not isinstance(value, types):
            raise Invalid(f"{kind} such as {example}")
        # Comparisons, not math.isfinite, so huge integers cannot overflow; NaN fails them all.
        if not minimum <= value <= (math.inf if maximum is None else maximum):
            raise Invalid(limits)
        if value > _INT64_MAX:  # tomllib allows any size; SQLite and the TOML spec stop here
            raise Invalid(f"at most {_INT64_MAX}")
        return value if whole else float(value)
    return parse


def boolean(value: Any, _data_dir: Path) -> bool:
    if not isinstance(value, bool):
        raise Invalid("true or false, without quotes")
    return value


def choice(*allowed: str, expected: str = "") -> Parser:
    quoted = [f'"{a}"' for a in allowed]
    expected = expected or (f"one of {', '.join(quoted[:-1])} or {quoted[-1]}"
                            if len(quoted) > 1 else quoted[0])

    def parse(value: Any, _data_dir: Path) -> str:
        if not isinstance(value, str) or value.lower() not in allowed:
            raise Invalid(expected)
        return value.lower()
    return parse


def path(value: Any, data_dir: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("a file or directory path in quotes, relative to the data directory "
                       "or absolute")
    return absolute(data_dir, value)


def optional_file(value: Any, data_dir: Path) -> Path | None:
    """A file relative to the data directory or absolute; "" = none."""
    if not isinstance(value, str):
        raise Invalid('a file name in quotes such as "/etc/ssl/my-ca.pem", or ""')
    return absolute(data_dir, value) if value.strip() else None


def absolute(data_dir: Path, text: str) -> Path:
    # abspath normalises ".." without following symlinks, so messages show the path the user knows.
    return Path(os.path.abspath(data_dir / os.path.expanduser(text)))


LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def is_host_name(name: str) -> bool:
    """RFC 1123 §2.1 host name; an all-numeric last label would be an IP address, not a name."""
    labels = name.split(".")
    return (0 < len(name) <= 253 and all(LABEL.fullmatch(label) for label in labels)
            and not labels[-1].isdigit())


def hostname(value: Any, _data_dir: Path) -> str:
    expected = "a DNS host name such as mail.example.com"
    if not isinstance(value, str):
        raise Invalid(expected)
    name = value.lower().removesuffix(".")
    if not name.isascii():
        try:
            expected += f" (write an international name in its ASCII form, {name.encode('idna').decode()})"
        except UnicodeError:
            pass
        raise Invalid(expected)
    if not is_host_name(name):
        raise Invalid(expected + ", made of letters, digits, hyphens and dots")
    return name


def selector(value: Any, _data_dir: Path) -> str:
    # RFC 6376 §3.1: a selector is one or more DNS labels.
    if not isinstance(value, str) or not all(LABEL.fullmatch(p) for p in value.lower().split(".")):
        raise Invalid("a DNS label such as mail or 2024a, made of letters, digits and hyphens")
    return value.lower()


def default_hostname() -> str:
    """The default ``[server] hostname``: this machine's FQDN if it is a valid host name."""
    name = socket.getfqdn().lower().removesuffix(".")
    # A container's odd host name must not make the defaults themselves invalid.
    return name if is_host_name(name) else "localhost"


PORT = re.compile(r"[0-9]{1,5}")


def nameservers(value: Any, _data_dir: Path) -> tuple[ListenAddress, ...]:
    expected = ('a list of DNS servers such as ["127.0.0.1:53", "[::1]:53"] or ["127.0.0.1"]'
                " (port 53 if left out), or [] for the system's /etc/resolv.conf")
    if not isinstance(value, list):
        raise Invalid(expected)
    servers = []
    for item in value:
        text = item if isinstance(item, str) else ""
        literal = text.strip("[]") if text.startswith("[") and text.endswith("]") else text
        try:  # a bare address: port 53
            ipaddress.ip_address(literal)
            servers.append(ListenAddress(literal, 53))
            continue
        except ValueError:
            pass
        address = parse_address(text, _data_dir, False) if text else None
        if not isinstance(address, ListenAddress):
            raise Invalid('an IP address with an optional port such as "127.0.0.1:5353" or'
                           ' "[::1]:53"', part=item)
        try:
            ipaddress.ip_address(address.host)
        except ValueError:
            raise Invalid("an IP address, not a name (the resolver cannot look up its own"
                           " server)", part=item) from None
        servers.append(address)
    return tuple(servers)


def domain_list(what: str, example: str, one: str) -> Parser:
    def parse(value: Any, _data_dir: Path) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise Invalid(f"a list of {what} such as {example}, or []")
        names = []
        for item in value:
            name = item.lower().removesuffix(".") if isinstance(item, str) else ""
            if not is_host_name(name):
                raise Invalid(f"a DNS name such as {one}", part=item)
            names.append(name)
        return tuple(names)
    return parse


def report_address(value: Any, _data_dir: Path) -> str:
    return _address_or_empty(
        value, 'an email address of one of your domains such as "dmarc-reports@example.org", or ""')


def contact_address(value: Any, _data_dir: Path) -> str:
    return _address_or_empty(value, 'an email address such as "hostmaster@example.org", or ""')


def _address_or_empty(value: Any, expected: str) -> str:
    if not isinstance(value, str):
        raise Invalid(expected)
    text = value.strip().lower()
    local, at, domain = text.rpartition("@")
    if text and not (at and local and is_host_name(domain) and local.isprintable() and " " not in local):
        raise Invalid(expected)
    return text


def networks(value: Any, _data_dir: Path) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if not isinstance(value, list):
        raise Invalid('a list of addresses or networks such as ["192.0.2.10", "10.0.0.0/8",'
                       ' "2001:db8::/32"], or []')
    networks = []
    for item in value:
        try:
            networks.append(ipaddress.ip_network(item, strict=False) if isinstance(item, str) else None)
        except ValueError:
            networks.append(None)
        if networks[-1] is None:
            raise Invalid('an IP address or network such as "192.0.2.10" or "10.0.0.0/8"', part=item)
    return tuple(n for n in networks if n is not None)


def ip_addresses(value: Any, _data_dir: Path) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """A list of single IP addresses (no networks), duplicates dropped, in the order given."""
    if not isinstance(value, list):
        raise Invalid('a list of IP addresses such as ["203.0.113.7", "2001:db8::7"], or []')
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for item in value:
        try:
            address = ipaddress.ip_address(item) if isinstance(item, str) else None
        except ValueError:
            address = None
        if address is None:
            raise Invalid('an IP address such as "203.0.113.7" or "2001:db8::7"', part=item)
        if address not in found:
            found.append(address)
    return tuple(found)


def listeners(*, unix: bool) -> Parser:
    expected = 'a list of "host:port" addresses such as ["0.0.0.0:25", "[::]:25"], or [] to turn it off'
    entry = ('"host:port" such as "0.0.0.0:25" or "[::1]:25" with a port from 0 to 65535'
             + (', or "unix:/path/to/socket"' if unix else ""))

    def parse(value: Any, data_dir: Path) -> tuple[ListenAddress | UnixAddress, ...]:
        if not isinstance(value, list):
            raise Invalid(expected)
        addresses: list[ListenAddress | UnixAddress] = []
        for item in value:
            address = parse_address(item, data_dir, unix) if isinstance(item, str) else None
            if address is None:
                raise Invalid(entry, part=item)
            addresses.append(address)
        return tuple(addresses)
    return parse


def parse_address(text: str, data_dir: Path, unix: bool) -> ListenAddress | UnixAddress | None:
    if unix and text.startswith("unix:"):
        return UnixAddress(absolute(data_dir, text[5:])) if text[5:].strip() else None
    if text.startswith("["):
        host, bracket, port = text[1:].partition("]")
        if not (bracket and port.startswith(":")):
            return None
        port = port[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, colon, port = text.rpartition(":")
        if not colon or ":" in host:  # a bare IPv6 literal is ambiguous without brackets
            return None
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if not is_host_name(host.lower()):
                return None
    if not PORT.fullmatch(port) or int(port) > 65535:
        return None
    return ListenAddress(host, int(port))


def retry_schedule(value: Any, _data_dir: Path) -> tuple[float, ...]:
    expected = "a list of one or more numbers of seconds, such as [60, 300, 900, 1800, 3600]"
    if not isinstance(value, list) or not value:
        raise Invalid(expected)
    for entry in value:
        if isinstance(entry, bool) or not isinstance(entry, int | float) or not 1 <= entry <= 86400:
            raise Invalid("a number of seconds from 1 to 86400", part=entry)
    return tuple(float(entry) for entry in value)


def source_address(version: int) -> Parser:
    example = "192.0.2.25" if version == 4 else "2001:db8::25"

    def parse(value: Any, _data_dir: Path) -> str:
        expected = f'an IPv{version} address of this machine in quotes, such as "{example}", or "" for any'
        if not isinstance(value, str):
            raise Invalid(expected)
        if value == "":
            return value
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise Invalid(expected) from None
        if address.version != version:
            raise Invalid(expected)
        return str(address)
    return parse


def relay_host(value: Any, data_dir: Path) -> ListenAddress | None:
    """A smarthost: "host:port" (a name or an address), or "" for none."""
    expected = ('"host:port" of the relay, such as "smtp.example.net:587" or "[2001:db8::1]:465",'
                ' or "" to deliver to each domain\'s MX directly')
    if not isinstance(value, str):
        raise Invalid(expected)
    if value == "":
        return None
    address = parse_address(value, data_dir, False)
    if not isinstance(address, ListenAddress) or address.port == 0:
        raise Invalid(expected)
    return address


def relay_routes(value: Any, data_dir: Path) -> tuple[tuple[str, ListenAddress], ...]:
    """A table of domain = "host:port" (the domain's own relay)."""
    expected = 'a table of domain = "host:port", such as { "example.com" = "relay.example.net:587" }'
    if not isinstance(value, dict):
        raise Invalid(expected)
    routes = []
    for domain, target in value.items():
        name = domain.lower().removesuffix(".")
        if not is_host_name(name):
            raise Invalid("a domain name such as example.com as the key", part=domain)
        address = relay_host(target, data_dir) if isinstance(target, str) and target else None
        if address is None:
            raise Invalid('"host:port" such as "relay.example.net:587"', part=target)
        routes.append((name, address))
    return tuple(routes)


def rule_weights(known: Iterable[str]) -> Parser:
    """A table of RULE_NAME = weight (a number, negative allowed), names from `known`."""
    names = sorted(known)
    expected = "a table of rule = weight, such as { SPF_NONE = 1.0, DKIM_PASS = -1 }"

    def parse(value: Any, _data_dir: Path) -> tuple[tuple[str, float], ...]:
        if not isinstance(value, dict):
            raise Invalid(expected)
        weights = []
        for name, weight in value.items():
            if name not in names:
                close = difflib.get_close_matches(str(name).upper(), names, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise Invalid(f"a rule name of docs/spam.md{hint}, in capitals: {', '.join(names)}",
                              part=name)
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not -100 <= weight <= 100:
                raise Invalid(f"a weight between -100 and 100 for {name}", part=weight)
            weights.append((name, float(weight)))
        return tuple(weights)
    return parse


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    """Traffic shaping for one provider, named by a suffix of its MX host names."""

    mx_suffix: str  # "google.com": every domain whose MX hosts end in it
    concurrency: int  # connections at once
    messages_per_connection: int
    messages_per_minute: int  # 0 = no limit


# Sensible defaults for the big providers (their published or observed limits for a new sender;
# throttled, never refused, beyond them). `[outbound.providers]` entries replace these by suffix.
DEFAULT_PROVIDERS = (
    ProviderLimits("google.com", 10, 50, 600),
    ProviderLimits("outlook.com", 5, 30, 300),  # Microsoft 365 and Outlook.com
    ProviderLimits("yahoodns.net", 5, 20, 300),  # Yahoo and AOL
)
_PROVIDER_KEYS = ("concurrency", "messages_per_connection", "messages_per_minute")


def providers(value: Any, _data_dir: Path) -> tuple[ProviderLimits, ...]:
    """A table of MX suffix = { concurrency, messages_per_connection, messages_per_minute },
    merged over DEFAULT_PROVIDERS (an entry for a suffix replaces the default one)."""
    example = '{ "google.com" = { concurrency = 10, messages_per_connection = 50, messages_per_minute = 600 } }'
    if not isinstance(value, dict):
        raise Invalid(f"a table of MX host suffix = limits, such as {example}")
    given: dict[str, ProviderLimits] = {}
    for suffix, limits in value.items():
        name = suffix.lower().strip(".")
        if not is_host_name(name):
            raise Invalid("an MX host name suffix such as google.com as the key", part=suffix)
        if not isinstance(limits, dict) or set(limits) - set(_PROVIDER_KEYS):
            raise Invalid(f"limits written as {example[18:-2]}", part=limits)
        base = next((p for p in DEFAULT_PROVIDERS if p.mx_suffix == name), ProviderLimits(name, 5, 100, 0))
        numbers = {}
        for key in _PROVIDER_KEYS:
            number_ = limits.get(key, getattr(base, key))
            least = 0 if key == "messages_per_minute" else 1
            if isinstance(number_, bool) or not isinstance(number_, int) or not least <= number_ <= 100_000:
                raise Invalid(f"{key} as a whole number from {least} to 100000", part=limits)
            numbers[key] = number_
        given[name] = ProviderLimits(name, **numbers)
    merged = [given.pop(p.mx_suffix, p) for p in DEFAULT_PROVIDERS]
    return (*merged, *given.values())


def secret_file(value: Any, data_dir: Path) -> Path | None:
    """A file holding a secret (a password, a token), relative to the data directory; "" = none."""
    if not isinstance(value, str):
        raise Invalid('a file name in quotes such as "/etc/postoffice/relay-password", or ""')
    return absolute(data_dir, value) if value else None


LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


def https_url(value: Any, _data_dir: Path) -> str:
    expected = f'an https:// URL in quotes such as "{LETS_ENCRYPT}"'
    if not isinstance(value, str) or not re.fullmatch(r"https://[^\s/?#]+(/\S*)?", value.strip()):
        raise Invalid(expected)
    return value.strip()


def text(value: Any, _data_dir: Path) -> str:
    if not isinstance(value, str) or "\n" in value or "\x00" in value:
        raise Invalid('one line of text in quotes, or ""')
    return value


# MX host suffixes of providers that refuse IPv6 senders without a matching PTR record.
DEFAULT_IPV4_FIRST = ("google.com", "outlook.com", "yahoodns.net")


def wide_relay_networks(networks_: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> list[str]:
    """The relay_networks entries an administrator must confirm (relay_networks_allow_wide):
    wider than a /24 (IPv6: /64), or not private (loopback counts as private)."""
    wide = []
    for network in networks_:
        narrowest = 24 if network.version == 4 else 64
        if network.prefixlen < narrowest or not (network.is_private or network.is_loopback):
            wide.append(str(network))
    return wide
