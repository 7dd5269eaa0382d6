"""Typed, frozen configuration read from ``postoffice.toml`` in the data directory.

Every key has a default, so an empty or missing file is a valid configuration. The file is read
with :mod:`tomllib` into frozen, slotted dataclasses; relative paths are resolved against the data
directory, so the rest of the program only ever sees absolute paths.

A single table, ``SCHEMA``, describes every section and key: its default, how to check it, and a
one-line explanation. Loading, :func:`render_config` and :func:`default_config_text` are all
driven by it, so the three can never disagree about which keys exist.

Every problem is reported as a :class:`ConfigError` whose text is one plain sentence naming the
file, the key, the bad value and what is allowed, because that sentence is what ``postoffice
serve`` prints before it exits (DESIGN §5).
"""
from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postoffice import config_values as v
from postoffice.config_schema import (
    SCHEMA,
    AuthConfig,
    DkimConfig,
    DmarcConfig,
    DnsConfig,
    GreylistConfig,
    ImapConfig,
    JunkConfig,
    LimitsConfig,
    ListenConfig,
    OutboundConfig,
    Pop3Config,
    ServerConfig,
    SieveConfig,
    SmtpConfig,
    SpamConfig,
    StoreConfig,
    TlsConfig,
)
from postoffice.config_values import (
    ListenAddress,
    ProviderLimits,
    UnixAddress,
    default_hostname,
)

__all__ = [
    "CONFIG_FILE_NAME", "AuthConfig", "Config", "ConfigError", "DkimConfig", "DnsConfig", "LimitsConfig",
    "ListenAddress", "ListenConfig", "OutboundConfig", "ServerConfig", "SieveConfig", "StoreConfig", "TlsConfig", "UnixAddress",
    "default_config_text", "default_hostname", "load_config", "render_config",
]

CONFIG_FILE_NAME = "postoffice.toml"


class ConfigError(Exception):
    """A problem with the configuration; ``str(error)`` is one plain sentence for the user."""


# DESIGN §4: --dev binds loopback on 10000 + the standard port, so it needs no root.
_DEV_PORTS = {"smtp": 10025, "submission": 10587, "submissions": 10465, "imap": 10143,
              "imaps": 10993, "pop3": 10110, "pop3s": 10995, "lmtp": 10024, "http": 10080,
              "https": 10443, "managesieve": 14190}


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path
    server: ServerConfig
    listen: ListenConfig
    tls: TlsConfig
    store: StoreConfig
    limits: LimitsConfig
    auth: AuthConfig
    dkim: DkimConfig
    smtp: SmtpConfig
    dns: DnsConfig
    imap: ImapConfig
    pop3: Pop3Config
    dmarc: DmarcConfig
    outbound: OutboundConfig
    sieve: SieveConfig
    junk: JunkConfig
    greylist: GreylistConfig
    spam: SpamConfig

    def with_dev_listeners(self) -> Config:
        """Every listener (LMTP and HTTP included) on 127.0.0.1, port 10000 + its standard port."""
        listen = {name: (ListenAddress("127.0.0.1", port),) for name, port in _DEV_PORTS.items()}
        return dataclasses.replace(self, listen=ListenConfig(**listen))

    def with_ephemeral_listeners(self) -> Config:
        """Every listener on 127.0.0.1:0, for tests that read the bound ports afterwards."""
        listen = {name: (ListenAddress("127.0.0.1", 0),) for name in _DEV_PORTS}
        return dataclasses.replace(self, listen=ListenConfig(**listen))


# --- loading -------------------------------------------------------------------------------------

def load_config(data_dir: Path, config_file: Path | None = None) -> Config:
    """Read and check the configuration; a missing file means every key has its default.

    ``config_file`` defaults to ``data_dir / "postoffice.toml"``. Raises :class:`ConfigError`.
    """
    data_dir = Path(os.path.abspath(os.path.expanduser(data_dir)))
    path = config_file if config_file is not None else data_dir / CONFIG_FILE_NAME
    return _build(_read_toml(path), data_dir, str(path))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, but it must be a TOML file.") from None
    except PermissionError:
        raise ConfigError(f"{path} cannot be read: this user has no permission to read it.") from None
    except OSError as error:
        raise ConfigError(f"{path} cannot be read: {error.strerror}.") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not UTF-8 text (bad byte at offset {error.start}); "
                          "save it as UTF-8.") from None
    except tomllib.TOMLDecodeError as error:
        # tomllib's message carries "(at line N, column M)", which is what the user needs.
        raise ConfigError(f"{path} is not valid TOML: {error}.") from None


def _build(raw: dict[str, Any], data_dir: Path, name: str) -> Config:
    for section, table in raw.items():
        if section not in SCHEMA:
            raise ConfigError(f"{name}: {_unknown_section(section, table)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: {section} is {_show(table)}, but it must be a section "
                              f"written as [{section}] on a line of its own.")
    sections: dict[str, Any] = {}
    for section, (cls, keys) in SCHEMA.items():
        table = raw.get(section, {})
        known = {key.name for key in keys}
        for key_name in table:
            if key_name not in known:
                raise ConfigError(f"{name}: {_unknown_key(section, key_name)}")
        values = {}
        for key in keys:
            value = table.get(key.name, key.default)
            if callable(value):
                value = value()
            try:
                values[key.name] = key.parse(value, data_dir)
            except v.Invalid as bad:
                shown = (f"contains {_show(bad.part)}, but each entry must be"
                         if bad.part is not None else f"is {_show(value)}, but it must be")
                raise ConfigError(f"{name}: [{section}] {key.name} {shown} {bad.expected}.") from None
        sections[section] = cls(**values)
    _check_listeners_distinct(sections["listen"], name)
    smtp = sections["smtp"]
    if (wide := v.wide_relay_networks(smtp.relay_networks)) and not smtp.relay_networks_allow_wide:
        raise ConfigError(
            f"{name}: [smtp] relay_networks lets {', '.join(wide)} send anywhere without a login,"
            " and an entry wider than a /24 (IPv6: /64) or outside private addresses makes an open"
            " relay, which is blocklisted within hours; list the devices' own addresses, or set"
            " relay_networks_allow_wide = true if you mean it.")
    spam = sections["spam"]
    if spam.junk_threshold >= spam.refuse_threshold:
        raise ConfigError(
            f"{name}: [spam] junk_threshold is {spam.junk_threshold:g}, but it must be below"
            f" refuse_threshold ({spam.refuse_threshold:g}): mail is filed as junk before it is"
            " refused.")
    return Config(data_dir=data_dir, **sections)


def _unknown_section(section: str, value: Any) -> str:
    owner = next((s for s, (_, keys) in SCHEMA.items() if any(k.name == section for k in keys)),
                 None)
    if owner:  # `hostname = ...` written above every [section] header
        return f"{section} is not inside a section, but it must go under [{owner}]."
    if not isinstance(value, dict):
        every_key = [k.name for _, keys in SCHEMA.values() for k in keys]
        return (f"{section} is not a known key{_suggest(section, every_key)}, and every key goes "
                "under a section such as [server].")
    known = ", ".join(f"[{s}]" for s in SCHEMA)
    return f"[{section}] is not a known section{_suggest(section, list(SCHEMA))}; the sections are {known}."


def _unknown_key(section: str, key_name: str) -> str:
    owners = [s for s, (_, keys) in SCHEMA.items() if any(k.name == key_name for k in keys)]
    if owners:
        return f"[{section}] {key_name} is not a key of [{section}], but it must go under [{owners[0]}]."
    names = [k.name for k in SCHEMA[section][1]]
    return (f"[{section}] {key_name} is not a known key{_suggest(key_name, names)}; "
            f"[{section}] has {', '.join(names)}.")


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word.lower(), candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _check_listeners_distinct(listen: ListenConfig, name: str) -> None:
    # Two protocols cannot share one socket; port 0 is exempt because each bind gets its own port.
    seen: dict[ListenAddress | UnixAddress, str] = {}
    for service, addresses in listen.by_service().items():
        for address in addresses:
            if isinstance(address, ListenAddress) and address.port == 0:
                continue
            if address in seen:
                raise ConfigError(f'{name}: [listen] {service} contains "{address}", but that '
                                  f"address is already used by [listen] {seen[address]} and each "
                                  "address can serve only one protocol.")
            seen[address] = service


# --- writing -------------------------------------------------------------------------------------

def render_config(config: Config) -> str:
    """The effective configuration as TOML: every key, absolute paths; load_config reads it back."""
    lines = ["# The effective postoffice configuration: every key, with absolute paths."]
    for section, (_, keys) in SCHEMA.items():
        lines += ["", f"[{section}]"]
        values = getattr(config, section)
        for key in keys:
            value = getattr(values, key.name)
            # an empty table (routes) parses to (), which must be written as a table again
            lines.append(f"{key.name} = {_toml({} if key.default == {} and value == () else value)}")
    return "\n".join(lines) + "\n"


def default_config_text(hostname: str) -> str:
    """The commented ``postoffice.toml`` that ``postoffice init`` writes, every key at its default."""
    try:
        hostname = v.hostname(hostname, Path())
    except v.Invalid as bad:
        raise ConfigError(f"The host name {_show(hostname)} cannot be used: it must be "
                          f"{bad.expected}.") from None
    lines = ["# postoffice configuration. Every key is shown with its default; delete a line to",
             "# use the default. Relative paths are relative to the data directory."]
    for section, (_, keys) in SCHEMA.items():
        lines += ["", f"[{section}]"]
        for key in keys:
            default = hostname if key.name == "hostname" else key.default
            # An empty table stays a comment: a line `routes = {}` would forbid the user's
            # own [outbound.routes] table later in the file (TOML cannot define it twice).
            shown = f"# {key.name} = {{}}" if default == {} else f"{key.name} = {_toml(default)}"
            lines += [f"# {key.doc}", shown]
    return "\n".join(lines) + "\n"


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def _toml(value: Any) -> str:
    """One TOML value; covers exactly the types the schema produces."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if value is None:  # an optional address or file left unset
        return '""'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml(str(k))} = {_toml(item)}" for k, item in value.items()) + " }"
    if isinstance(value, ProviderLimits):
        return _toml({k: getattr(value, k) for k in ("concurrency", "messages_per_connection", "messages_per_minute")})
    if isinstance(value, tuple) and value and all(isinstance(i, ProviderLimits) for i in value):
        return _toml({p.mx_suffix: p for p in value})
    if isinstance(value, tuple) and value and all(
            isinstance(i, tuple) and len(i) == 2 and isinstance(i[1], ListenAddress) for i in value):
        return _toml(dict(value))  # routes: domain = "host:port"
    if isinstance(value, tuple) and value and all(
            isinstance(i, tuple) and len(i) == 2 and isinstance(i[1], float) for i in value):
        return _toml(dict(value))  # [spam] weights: rule = weight
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, str | Path | ListenAddress | UnixAddress | ipaddress.IPv4Network
                  | ipaddress.IPv6Network | ipaddress.IPv4Address | ipaddress.IPv6Address):
        # TOML basic strings forbid raw control characters, DEL included.
        text = "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F
                                           else c) for c in str(value))
        return f'"{text}"'
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _show(value: Any) -> str:
    """A value as the user wrote it in the file, shortened for one-line messages."""
    if isinstance(value, dict):
        text = "{" + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + "}"
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(item) for item in value) + "]"
    elif isinstance(value, str | bool | int | float):
        text = _toml(value)
    else:  # dates and times, which TOML has but no key of ours accepts
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
