"""Traffic shaping per destination: which limits apply, and a rate limit that throttles.

Big providers publish (or enforce without saying) how much one sender may send: too many
connections or messages a minute from a new IP earn 421/451 deferrals, then a poor reputation.
A destination is the set of MX hosts (queue/routing.py), so every domain Google hosts shares
Google's limits; `[outbound] providers` names providers by a suffix of their MX host names.

    limits = limits_for(("aspmx.l.google.com", "alt1.aspmx.l.google.com"), providers,
                        default=ProviderLimits("", 5, 100, 0))
    rate = MessageRate(limits.messages_per_minute)
    delay = rate.reserve(now)      # seconds to wait before this message may go (0: at once)

Beyond a limit mail waits (throttled), it is never refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from postoffice.config_values import ProviderLimits

__all__ = ["MessageRate", "limits_for"]


def limits_for(hosts: Iterable[str], providers: Iterable[ProviderLimits], *,
               default: ProviderLimits) -> ProviderLimits:
    """The limits of the provider whose MX suffix matches one of `hosts` (the longest suffix
    wins, so "eu.example.com" can differ from "example.com"), else `default`."""
    names = [h.lower().rstrip(".") for h in hosts]
    best: ProviderLimits | None = None
    for provider in providers:
        suffix = provider.mx_suffix
        longer = best is None or len(suffix) > len(best.mx_suffix)
        if longer and any(n == suffix or n.endswith("." + suffix) for n in names):
            best = provider
    return best or default


class MessageRate:
    """At most `per_minute` messages a minute, spread evenly (one every 60/per_minute s), with
    a burst of up to a tenth of a minute's worth: a reservation returns how long to wait."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.burst = max(1, per_minute // 10) if per_minute > 0 else 0
        self._next_free = 0.0  # when the next message may go, with the burst used up

    def reserve(self, now: float) -> float:
        """Take the next slot; the seconds until it (0 when it is free now)."""
        if self.per_minute <= 0:
            return 0.0
        earliest = now - self.interval * (self.burst - 1)  # a burst's worth may go at once
        start = max(self._next_free, earliest)
        self._next_free = start + self.interval
        return max(0.0, start - now)
