"""Greylisting (RFC 6647) at RCPT time on port 25, off by default (`[greylist] enabled`).

    greylist = Greylist(store, config.greylist)
    reply = await greylist.check_recipient(client_ip, sender, recipient, skip=None, spf_pass=False)
    # None: go on; else 451 4.7.1 "Greylisted: try again in 300 seconds"

A triplet is (client network, normalised envelope sender, recipient). The first delivery
attempt of an unknown triplet is deferred with 451 4.7.1; a retry after `delay` seconds and
within `retry_window` passes, and the triplet then passes for `remember_days` after it was last
seen. Well-behaved MTAs retry (RFC 5321 §4.5.4.1); most spamware does not.

Implementation notes (invariants):
- The client network is the /24 (IPv4) or /64 (IPv6) (RFC 6647 §4.1 recommends a range for
  senders that retry from another address of a pool); an IPv4-mapped IPv6 address is its IPv4.
- The sender is normalised (RFC 6647 §4.2: VERP and BATV give every message another address):
  lowercased, a BATV `prvs=TAG=` prefix removed, each run of digits in the local part one `#`;
  the null sender is `<>`.
- Auto-allow (as postgrey does): a client network with `auto_allow_after` passed triplets is
  not greylisted while it keeps sending.
- Never greylisted (the caller says which with `skip`): authenticated sessions, `[smtp]
  relay_networks` and `trusted_networks`, allow-listed clients or senders, and sender domains
  in `skip_providers` (subdomains included) when SPF passes for them at MAIL FROM. The issue
  asks for "DMARC-pass senders from well-known providers", but DMARC is known only after DATA;
  SPF pass of the MAIL FROM domain is what DMARC's SPF half would align with for these
  providers' own mail, and deciding at RCPT spares the sender a full transfer that would be
  deferred anyway. docs/greylisting.md says so.
- Only valid recipients are greylisted (the policy checks the user first): an unknown user
  gets its 550 at once.
- The store holds the triplets (store/filter_state_interface.py); a read per RCPT, and a write
  only when a triplet is new, passes, or was last touched more than an hour ago. Old rows are
  swept hourly in the background. A store failure is logged and the recipient accepted:
  greylisting delays mail, it must never be why mail is lost or stuck.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from dataclasses import dataclass

from postoffice.config_schema import GreylistConfig
from postoffice.smtp.proto import replies as r
from postoffice.store.filter_state_interface import FilterStateData, GreylistState

log = logging.getLogger(__name__)

_TOUCH_AFTER = 3600.0  # seconds between last_seen updates of a passing triplet
_SWEEP_EVERY = 3600.0
_BATV = re.compile(r"^prvs=[^=]*=", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")


def client_network(ip: str) -> str:
    """The /24 or /64 a client address belongs to, as text; the address itself if unparsable."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def normalise_sender(address: str) -> str:
    """See the module docstring (RFC 6647 §4.2)."""
    if not address:
        return "<>"
    local, at, domain = address.lower().rpartition("@")
    if not at:
        local, domain = domain, ""
    local = _DIGITS.sub("#", _BATV.sub("", local))
    return f"{local}@{domain}" if at else local


def is_provider(sender: str, providers: tuple[str, ...]) -> bool:
    """The sender's domain is one of `providers` or a subdomain of one."""
    domain = sender.rpartition("@")[2].lower().rstrip(".")
    return bool(domain) and any(domain == p or domain.endswith("." + p) for p in providers)


@dataclass(frozen=True, slots=True)
class GreylistDecision:
    passed: bool
    reason: str          # new, early, expired, retried, known, network
    wait: float = 0.0    # seconds until a retry would pass (deferred only)


@dataclass(frozen=True, slots=True)
class _Write:
    first: bool = False
    passed: bool = False


def decide(state: GreylistState, now: float, config: GreylistConfig) -> tuple[GreylistDecision, _Write | None]:
    """The decision on one triplet and what to record (None: nothing). Pure."""
    remember = config.remember_days * 86400.0
    if (config.auto_allow_after and state.network_passes >= config.auto_allow_after
            and state.network_last_seen is not None and state.network_last_seen >= now - remember):
        touch = state.network_last_seen < now - _TOUCH_AFTER
        return GreylistDecision(True, "network"), _Write() if touch else None
    if state.first_seen is None:
        return GreylistDecision(False, "new", config.delay), _Write(first=True)
    last_seen = state.last_seen if state.last_seen is not None else state.first_seen
    if state.passed:
        if last_seen < now - remember:
            return GreylistDecision(False, "expired", config.delay), _Write(first=True)
        return GreylistDecision(True, "known"), _Write() if last_seen < now - _TOUCH_AFTER else None
    age = now - state.first_seen
    if age > config.retry_window:
        return GreylistDecision(False, "expired", config.delay), _Write(first=True)
    if age < config.delay:
        return GreylistDecision(False, "early", config.delay - age), None
    return GreylistDecision(True, "retried"), _Write(passed=True)


def deferral(decision: GreylistDecision) -> r.Reply:
    """451 4.7.1 (RFC 6647 §4: a temporary failure; 4.7.1 "delivery not authorized", as
    postgrey and Postfix's policy servers answer), saying when to come back."""
    seconds = max(1, round(decision.wait))
    return r.Reply(451, "4.7.1", f"Greylisted: this server does not know you yet, please try again"
                                 f" in {seconds} seconds")


class Greylist:
    """The greylist of one server (see the module docstring)."""

    def __init__(self, store: FilterStateData, config: GreylistConfig) -> None:
        self.store = store
        self.config = config
        self._swept = time.time()  # the first sweep an hour after start
        self._sweeper: asyncio.Task[int] | None = None

    async def check_recipient(self, client_ip: str, sender: str, recipient: str, *,
                              skip: str | None, spf_pass: bool) -> r.Reply | None:
        """None when the recipient may be accepted; else the 451 to answer. `skip`: why this
        session is never greylisted (authenticated, relay, allow-listed...), or None."""
        if not self.config.enabled or skip is not None:
            return None
        if spf_pass and is_provider(sender, self.config.skip_providers):
            return None
        network, normalised, rcpt = client_network(client_ip), normalise_sender(sender), recipient.lower()
        now = time.time()
        try:
            state = await self.store.greylist_state(network, normalised, rcpt)
            decision, write = decide(state, now, self.config)
            if write is not None:
                await self.store.greylist_seen(network, normalised, rcpt, now, first=write.first, passed=write.passed)
        except Exception:  # greylisting is a filter, not a gate: a store failure lets mail in
            log.exception("greylist check failed for %s from %s; not greylisted", client_ip, sender or "<>")
            return None
        self._maybe_sweep(now)
        if decision.passed:
            if decision.reason == "retried":
                log.info("greylist: %s from %s to %s passed after %.0f s", network, sender or "<>", recipient,
                         now - (state.first_seen or now))
            return None
        log.info("greylist: deferred %s from %s to %s (%s)", client_ip, sender or "<>", recipient, decision.reason)
        return deferral(decision)

    def _maybe_sweep(self, now: float) -> None:
        if now - self._swept < _SWEEP_EVERY or (self._sweeper is not None and not self._sweeper.done()):
            return
        self._swept = now
        self._sweeper = asyncio.get_running_loop().create_task(self.sweep(now))

    async def sweep(self, now: float) -> int:
        """Forget triplets never retried within the window and passed ones not seen for
        `remember_days`; a failure is logged (the rows wait for the next sweep)."""
        try:
            removed = await self.store.sweep_greylist(now - self.config.retry_window,
                                                      now - self.config.remember_days * 86400.0)
        except Exception:
            log.exception("greylist sweep failed")
            return 0
        if removed:
            log.info("greylist: forgot %d old triplet(s)", removed)
        return removed
