"""What a Sieve run may know beyond the message: the world it runs in, and its bounds.

Everything stateful or clock-dependent reaches the pure interpreter through `SieveEnvironment`:
plain values (RFC 5183 environment items, the spam and virus results for RFC 5235, the current
time for RFC 5260 currentdate) and synchronous callables the executor provides (does a mailbox
exist, RFC 5490; was this id seen, RFC 7352). `SieveLimits` bounds a runaway script.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata


@dataclass(frozen=True, slots=True)
class SieveLimits:
    """Bounds on one compile or run. Exceeding a run bound is a runtime error (implicit keep)."""

    max_actions: int = 32
    max_redirects: int = 4
    max_script_bytes: int = 1 << 20
    max_nesting: int = 32
    max_include_depth: int = 10
    max_includes: int = 32  # distinct scripts one script can pull in, transitively
    max_variable_bytes: int = 4096  # longer values are truncated (RFC 5229 §3 allows it)
    max_variables: int = 256
    max_string_chars: int = 1 << 20  # a string after variable expansion
    cpu_seconds: float = 1.0  # the run's CPU time (this thread's), checked as it goes
    vacation_min_seconds: int = 3600  # RFC 6131 §2: implementations bound the period
    vacation_max_seconds: int = 90 * 86400
    vacation_default_seconds: int = 7 * 86400  # RFC 5230 §4.1: the default is 7 days
    duplicate_default_seconds: int = 7 * 86400  # RFC 7352 §3.3 leaves the default to us
    duplicate_max_seconds: int = 90 * 86400


@dataclass(frozen=True, slots=True)
class SieveEnvironment:
    """The run's surroundings. Every field has a harmless default for tests.

    - `items`: RFC 5183 items ("domain", "host", "location", "name", "phase", "remote-host",
      "remote-ip", "version"); "name", "version", "location" and "phase" have defaults.
    - `now`: the current time for currentdate and the default zone of date (an aware
      datetime; None: the system clock in the local zone).
    - `subaddress_delimiter`: RFC 5233 separator between user and detail (e.g. "+").
    - `mailbox_exists(name)`: RFC 5490 mailboxexists; None: no mailbox exists.
    - `duplicate_seen(id, seconds)`: RFC 7352: was `id` recorded in the last `seconds`?
      None: never. The run lists the ids to record in `SieveResult.duplicates`.
    - `spam_percent`: 0-100 how sure the score is that this is spam; None: not tested
      (RFC 5235 spamtest is derived from it). `virus_level`: RFC 5235 §3.3 1-5; None: not tested.
    """

    items: Mapping[str, str] = field(default_factory=dict)
    now: datetime | None = None
    subaddress_delimiter: str = "+"
    mailbox_exists: Callable[[str], bool] | None = None
    duplicate_seen: Callable[[str, int], bool] | None = None
    spam_percent: float | None = None
    virus_level: int | None = None

    def item(self, name: str) -> str | None:
        value = self.items.get(name)
        if value is not None:
            return value
        return _DEFAULT_ITEMS.get(name)


def _version() -> str:
    try:
        return metadata.version("postoffice")
    except metadata.PackageNotFoundError:
        return "0"


_DEFAULT_ITEMS = {"name": "postoffice", "version": _version(), "location": "MDA", "phase": "during"}
