"""The remote `Transport` (queue/outcomes.py): a message for recipients of one domain goes to
that domain's MX hosts (queue/routing.py), tried in order, over the SMTP client sessions of
queue/smtp_session.py.

    transport = MxTransport(resolver, open_session=smtp_sessions(helo_name="mail.example.org"),
                            mx_port=25)
    outcomes = await transport.deliver(message, raw, ("bob@example.org", "carol@example.org"))
    await transport.close()                # QUIT the connections kept for reuse

``open_session(target, tls)`` makes a session (``deliver(message, raw, recipients)`` and
``close()``, as `SmtpSession` has) to ``target.host`` at ``target.address:target.port`` with the
`TlsPolicy` ``tls``; the session keeps its connection between messages and connects again by
itself when it broke. `smtp_sessions` makes the usual factory (the source addresses of
``[outbound]``). The TLS policy of each MX host comes from ``tls_policies``
(queue/destination_tls.py: DANE, MTA-STS, REQUIRETLS); without it, opportunistic STARTTLS.

Rules, and why:
- Recipients are grouped by domain (a caller may pass several); each domain is routed once.
  A routing problem answers all its recipients at once: null MX and NXDOMAIN ``failed``
  (RFC 7505, RFC 5321 §5.1), DNS trouble ``deferred``; the RFC 3463 code is in ``status``.
- Addresses are tried in the route's order, at most ``max_targets`` of them (Postfix tries 5),
  IPv4 first for MX hosts under ``ipv4_first`` (providers that refuse IPv6 senders without
  PTR records), IPv6 first otherwise. A recipient moves on to the next address only when this
  one gave no answer for it (no connection, a broken session) or said 421 (closing); any other
  reply decides it (RFC 5321 §4.2.1: 5xx fails, 4xx retries on the queue's schedule).
- Traffic is shaped per destination (the sorted MX host set, so every domain one provider
  hosts shares it), not per domain: at most ``concurrency`` deliveries at once (more wait,
  never refused), connections kept for reuse (``max_messages_per_connection``, closed after
  ``idle_seconds`` unused); a destination whose MX names match one of ``providers`` (by host
  suffix, queue/shaping.py) gets that provider's concurrency, messages per connection and
  messages per minute instead (a message waits for its slot, or is deferred with 4.4.5 when
  the wait would pass ``max_throttle_wait``), and a destination where ``failures_before_backoff`` deliveries in a
  row reached no server at all is backed off as a whole, in memory, doubling from
  ``backoff_seconds`` up to ``max_backoff_seconds``: its messages are deferred at once with the
  reason, without a connection, until then. One answering server ends the back-off.
- An MTA-STS ``enforce`` policy limits the targets to the MX hosts it names (RFC 8461 §4.1);
  naming none defers the mail with that reason. Kept connections are per host, address, port
  and TLS policy, so a message needing verified TLS never rides an opportunistic session.
- A REQUIRETLS message (RFC 8689) that no MX host could take over verified TLS with the
  REQUIRETLS extension fails with 5.7.30 (§5) and bounces; any other trouble defers it.
- Never raises for the network's or the peer's trouble: every recipient gets an outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from postoffice.config_values import DEFAULT_IPV4_FIRST, ProviderLimits
from postoffice.mailauth.dns_types import Resolver
from postoffice.queue.destination_tls import DomainTls, TlsPolicies
from postoffice.queue.outcomes import RecipientOutcome, one_per_recipient, try_next_server
from postoffice.queue.routing import Family, Route, RouteProblem, Target, route
from postoffice.queue.shaping import MessageRate, limits_for
from postoffice.queue.smtp_session import REQUIRETLS_STATUS, SmtpSession, Timeouts, TlsPolicy
from postoffice.store.interface import QueuedMessage

__all__ = ["DEFAULT_IPV4_FIRST", "MxTransport", "OutboundSession", "SessionFactory", "smtp_sessions"]

_MAX_DESTINATIONS = 10_000  # healthy idle destination states kept beyond this are dropped


class OutboundSession(Protocol):
    async def deliver(self, message: QueuedMessage, raw: bytes,
                      recipients: tuple[str, ...]) -> tuple[RecipientOutcome, ...]: ...

    async def close(self) -> None: ...


SessionFactory = Callable[[Target, TlsPolicy], OutboundSession]
_Key = tuple[str, str, int, TlsPolicy]  # host, address, port, TLS policy


@dataclass
class _Idle:
    session: OutboundSession
    since: float
    uses: int


@dataclass
class _Destination:
    """In-memory state of one destination: its concurrency, kept connections and back-off."""

    semaphore: asyncio.Semaphore
    limits: ProviderLimits  # concurrency, messages per connection and per minute
    rate: MessageRate
    failures: int = 0  # deliveries in a row that reached no server
    down_until: float = 0.0
    down_reason: str = ""
    active: int = 0
    idle: dict[_Key, list[_Idle]] = field(default_factory=dict)


def smtp_sessions(*, helo_name: str, source_ipv4: str = "", source_ipv6: str = "",
                  timeouts: Timeouts | None = None) -> SessionFactory:
    """An `SmtpSession` per target and TLS policy, sending from ``source_ipv4`` or
    ``source_ipv6`` ("" = the system's choice) by the target's family."""
    def open_session(target: Target, tls: TlsPolicy) -> OutboundSession:
        return SmtpSession(target.host, str(target.address), target.port, helo_name=helo_name,
                           tls=tls, source_ipv4=source_ipv4 or None, source_ipv6=source_ipv6 or None,
                           timeouts=timeouts)
    return open_session


class MxTransport:
    def __init__(self, resolver: Resolver, *, open_session: SessionFactory, mx_port: int = 25,
                 concurrency: int = 5, max_targets: int = 5,
                 ipv4_first: Iterable[str] = DEFAULT_IPV4_FIRST, local_hosts: Iterable[str] = (),
                 max_messages_per_connection: int = 100, idle_seconds: float = 5.0,
                 failures_before_backoff: int = 3, backoff_seconds: float = 60.0,
                 max_backoff_seconds: float = 3600.0, providers: Iterable[ProviderLimits] = (),
                 max_throttle_wait: float = 30.0, tls_policies: TlsPolicies | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if concurrency < 1 or max_targets < 1 or max_messages_per_connection < 1:
            raise ValueError("concurrency, max_targets and max_messages_per_connection must be at least 1")
        self.resolver = resolver
        self.open_session = open_session
        self.mx_port = mx_port
        self.concurrency = concurrency
        self.max_targets = max_targets
        self.ipv4_first = tuple(s.lower().strip(".") for s in ipv4_first)
        self.local_hosts = tuple(local_hosts)
        self.max_messages_per_connection = max_messages_per_connection
        self.idle_seconds = idle_seconds
        self.failures_before_backoff = failures_before_backoff
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.providers = tuple(providers)
        self.max_throttle_wait = max_throttle_wait
        self.tls_policies = tls_policies
        self.clock = clock
        self.destinations: dict[str, _Destination] = {}
        self._closing: set[asyncio.Task[None]] = set()  # sessions being closed in the background
        self._swept = clock()

    async def deliver(self, message: QueuedMessage, raw: bytes,
                      recipients: tuple[str, ...]) -> tuple[RecipientOutcome, ...]:
        self._sweep()
        by_domain: dict[str, list[str]] = {}
        for recipient in recipients:
            by_domain.setdefault(recipient.rpartition("@")[2].lower(), []).append(recipient)
        done = await asyncio.gather(*(self._deliver_domain(message, raw, domain, tuple(group))
                                      for domain, group in by_domain.items()))
        return one_per_recipient(recipients, done, "the SMTP session")

    async def close(self) -> None:
        """QUIT every kept connection."""
        sessions = [idle.session for d in self.destinations.values() for kept in d.idle.values()
                    for idle in kept]
        for destination in self.destinations.values():
            destination.idle.clear()
        await asyncio.gather(*(_close(s) for s in sessions), *self._closing)

    def _sweep(self) -> None:
        """At most once a second: QUIT connections unused for ``idle_seconds``, so a destination
        mail stopped going to holds no connection (and no file descriptor) for long."""
        now = self.clock()
        if now - self._swept < 1.0:
            return
        self._swept = now
        for state in self.destinations.values():
            for key, kept in list(state.idle.items()):
                fresh = [idle for idle in kept if now - idle.since <= self.idle_seconds]
                for idle in kept:
                    if now - idle.since > self.idle_seconds:
                        self._close_later(idle.session)
                if fresh:
                    state.idle[key] = fresh
                else:
                    del state.idle[key]

    def _close_later(self, session: OutboundSession) -> None:
        task = asyncio.ensure_future(_close(session))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def backed_off(self, destination: str) -> float:
        """Seconds until ``destination`` is tried again (0: not backed off)."""
        state = self.destinations.get(destination)
        return max(0.0, state.down_until - self.clock()) if state else 0.0

    # -- one domain ---------------------------------------------------------------------------------

    async def _deliver_domain(self, message: QueuedMessage, raw: bytes, domain: str,
                              recipients: tuple[str, ...]) -> tuple[RecipientOutcome, ...]:
        found = await route(self.resolver, domain, mx_port=self.mx_port, local_hosts=self.local_hosts)
        if found.problem is not None:
            return _route_failure(recipients, found.problem)
        state = self._destination(found)
        if state.down_until > self.clock():
            return tuple(RecipientOutcome(r, "deferred", reason=state.down_reason, status="4.4.1")
                         for r in recipients)
        requiretls = message.envelope.requiretls
        plan = (await self.tls_policies.plan(domain, requiretls=requiretls)
                if self.tls_policies is not None else None)
        if plan is not None and (refusal := plan.refusal([h.name for h in found.hosts])):
            return tuple(RecipientOutcome(r, "deferred", reason=refusal, status="4.7.5") for r in recipients)
        wait = state.rate.reserve(self.clock())
        if wait > self.max_throttle_wait:  # throttled: the queue tries again later, never refused
            return tuple(RecipientOutcome(
                r, "deferred", status="4.4.5",
                reason=(f"{state.limits.messages_per_minute} messages a minute to {found.domain}'s mail"
                        f" servers reached ([outbound] providers); sent later")) for r in recipients)
        if wait > 0:
            await asyncio.sleep(wait)
        async with state.semaphore:
            state.active += 1
            try:
                outcomes = await self._try_targets(message, raw, found, state, recipients, plan)
            finally:
                state.active -= 1
        if requiretls:  # RFC 8689 §5: no MX host could take it as it requires: it bounces
            outcomes = tuple(_requiretls_failed(o) for o in outcomes)
        return outcomes

    async def _try_targets(self, message: QueuedMessage, raw: bytes, found: Route,
                           state: _Destination, recipients: tuple[str, ...],
                           plan: DomainTls | None) -> tuple[RecipientOutcome, ...]:
        decided: dict[str, RecipientOutcome] = {}
        pending = recipients
        last: dict[str, RecipientOutcome] = {}
        answered = False
        targets = [t for t in found.targets(self._family(found)) if plan is None or plan.allows(t.host)]
        for target in targets[: self.max_targets]:
            tls = await plan.for_host(target.host) if plan is not None else _OPPORTUNISTIC
            session, uses = self._take(state, target, tls)
            outcomes = await session.deliver(message, raw, pending)
            unanswered = [o for o in outcomes if try_next_server(o)]
            answered = answered or any(o.reply is not None for o in outcomes)
            for outcome in outcomes:
                (last if outcome in unanswered else decided)[outcome.recipient] = outcome
            if unanswered or uses + 1 >= state.limits.messages_per_connection:
                await _close(session)  # broken, or used enough: a new connection next time
            else:
                self._keep(state, target, tls, session, uses + 1)
            pending = tuple(o.recipient for o in unanswered)
            if not pending:
                break
        self._record(state, found, answered)
        decided.update({r: last[r] for r in pending if r in last})
        return tuple(decided[r] for r in recipients if r in decided)

    def _family(self, found: Route) -> Family:
        names = [h.name for h in found.hosts]
        if any(n == s or n.endswith("." + s) for n in names for s in self.ipv4_first):
            return "ipv4"
        return "ipv6"

    # -- destination state ---------------------------------------------------------------------------

    def _destination(self, found: Route) -> _Destination:
        state = self.destinations.get(found.destination)
        if state is None:
            if len(self.destinations) >= _MAX_DESTINATIONS:
                self._prune()
            default = ProviderLimits("", self.concurrency, self.max_messages_per_connection, 0)
            limits = limits_for((h.name for h in found.hosts), self.providers, default=default)
            state = self.destinations[found.destination] = _Destination(
                asyncio.Semaphore(limits.concurrency), limits, MessageRate(limits.messages_per_minute))
        return state

    def _prune(self) -> None:
        now = self.clock()
        for key, state in list(self.destinations.items()):
            if not state.active and not state.idle and state.down_until <= now and not state.failures:
                del self.destinations[key]

    def _record(self, state: _Destination, found: Route, answered: bool) -> None:
        if answered:
            state.failures, state.down_until, state.down_reason = 0, 0.0, ""
            return
        state.failures += 1
        if state.failures < self.failures_before_backoff:
            return
        doublings = state.failures - self.failures_before_backoff
        wait = min(self.backoff_seconds * 2 ** min(doublings, 30), self.max_backoff_seconds)
        state.down_until = self.clock() + wait
        hosts = ", ".join(h.name for h in found.hosts)
        state.down_reason = (f"no mail server of {found.domain} ({hosts}) could be reached in "
                             f"{state.failures} deliveries in a row; not trying that destination "
                             f"again for {wait:.0f} s")

    def _take(self, state: _Destination, target: Target, tls: TlsPolicy) -> tuple[OutboundSession, int]:
        key = (target.host, str(target.address), target.port, tls)
        kept = state.idle.get(key, [])
        now = self.clock()
        while kept:
            idle = kept.pop()
            if now - idle.since <= self.idle_seconds:
                return idle.session, idle.uses
            self._close_later(idle.session)  # unused too long: the peer may have hung up
        return self.open_session(target, tls), 0

    def _keep(self, state: _Destination, target: Target, tls: TlsPolicy, session: OutboundSession,
              uses: int) -> None:
        kept = state.idle.setdefault((target.host, str(target.address), target.port, tls), [])
        if len(kept) >= state.limits.concurrency:
            self._close_later(session)
            return
        kept.append(_Idle(session, self.clock(), uses))


_OPPORTUNISTIC = TlsPolicy()


def _requiretls_failed(outcome: RecipientOutcome) -> RecipientOutcome:
    """The last word for a REQUIRETLS recipient was that TLS fell short (the peer lacks the
    extension, no TLS, a certificate that did not verify): a failure with 5.7.30."""
    tls = outcome.tls
    short = outcome.status == REQUIRETLS_STATUS or (
        outcome.reply is None and tls is not None and not (tls.used and tls.verified))
    if outcome.kind != "deferred" or not short:
        return outcome
    return RecipientOutcome(outcome.recipient, "failed", outcome.reply,
                            f"REQUIRETLS could not be honoured: {outcome.reason}", outcome.host,
                            outcome.address, tls, REQUIRETLS_STATUS)


def _route_failure(recipients: tuple[str, ...], problem: RouteProblem) -> tuple[RecipientOutcome, ...]:
    return tuple(RecipientOutcome(r, problem.kind, reason=problem.reason, status=problem.status)
                 for r in recipients)


async def _close(session: OutboundSession) -> None:
    with contextlib.suppress(Exception):  # closing is best effort: QUIT to a dead peer may fail
        await session.close()
