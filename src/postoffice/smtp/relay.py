"""Devices that cannot log in (`[smtp] relay_networks`): who they are, and how much they may send.

A client whose address is in `relay_networks` may send on port 25 and on the submission port
without AUTH and without TLS, to any recipient (smtp/policy.py). Each such client address may
start `relay_messages_per_minute` messages in any 60 seconds; past that, MAIL FROM is answered
451 4.7.1 (the device tries again later) rather than anything being dropped. The count is per
address and kept for every listener of the process, in memory: a restart forgets it.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from collections.abc import Callable, Iterable

from postoffice.access_lists import in_networks
from postoffice.smtp.proto import replies as r

__all__ = ["RelayNetworks"]

WINDOW_SECONDS = 60.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RelayNetworks:
    def __init__(self, networks: Iterable[Network], per_minute: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.networks = tuple(networks)
        self.per_minute = per_minute
        self._clock = clock
        self._sent: dict[str, deque[float]] = {}  # client address -> start times in the window

    def covers(self, ip: str) -> bool:
        """Whether the client at `ip` may relay without logging in."""
        # the checks' reading of an address: IPv4 seen through a dual-stack socket is IPv4
        return bool(self.networks) and in_networks(ip, self.networks)

    def start_message(self, ip: str) -> r.Reply | None:
        """Count one more message from `ip`; a 451 instead when it has had its share of the
        last minute (that attempt does not count)."""
        now = self._clock()
        times = self._sent.setdefault(ip, deque())
        while times and times[0] <= now - WINDOW_SECONDS:
            times.popleft()
        if len(times) >= self.per_minute:
            wait = max(1, int(times[0] + WINDOW_SECONDS - now + 0.999))
            return r.Reply(451, "4.7.1", f"Too many messages from {ip}: [smtp] relay_networks devices may send"
                           f" {self.per_minute} a minute; try again in {wait} seconds")
        times.append(now)
        if len(self._sent) > 10_000:  # bounded: addresses idle for a minute are forgotten
            for key in [k for k, v in self._sent.items() if not v or v[-1] <= now - WINDOW_SECONDS]:
                del self._sent[key]
        return None
