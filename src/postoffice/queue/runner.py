"""The queue runner: takes due entries of the outbound queue, hands each to its transport,
records what happened, retries, bounces (DESIGN §1, §2).

    runner = QueueRunner(store, directory, config.outbound, hostname, remote=None)
    task = asyncio.create_task(runner.run())
    ...
    await runner.stop(grace=10)  # in-flight attempts finish, the rest keep their entries

Invariants:
- Leases, not locks: an entry is taken by writing `lease_owner` (this process's id) and
  `lease_until` in one store transaction; a runner that dies leaves leases that expire, and a
  runner starting on the same machine drops at once those of processes that no longer exist.
  Several processes sharing one store never attempt one entry at the same time. An attempt
  renews its lease every third of `lease_seconds` while it runs (a slow peer, several MX hosts
  each with RFC 5321's long timeouts), so no other runner takes the entry over mid-attempt; if
  a renewal finds the lease gone (this process stalled longer than a lease), the attempt's
  result is not recorded (`finish_queue_attempt` refuses it) and a warning says so.
- Per recipient: only `pending` recipients are tried; each ends `delivered` or `failed` on its
  own; the entry goes when none is pending.
- Nothing accepted is lost: an attempt's result is written in one transaction after the
  transport returns. A crash between a remote `250` and that commit sends the message once more
  on restart (RFC 1047 accepts such a duplicate), never more. Notices (DSNs) are written before
  the commit for the same reason: duplicated by a crash, never lost.
- Retries follow `[outbound] retry_schedule` with ±10% jitter (so a burst of deferrals does not
  come back as a burst), the last interval repeating; at `max_queue_time` the pending
  recipients fail with status 4.4.7 (RFC 3463: delivery time expired) and bounce.
- Bounces (RFC 3464, see dsn.py) go with the null sender, never for a null-sender message, as
  NOTIFY asks (RFC 3461 §4.1); a local sender gets them in the INBOX, a remote one through
  the queue.
- Routing: recipients in our own domains go to the local transport (`deliver_message`); the
  others to the injected remote transport (serve: queue/transports.py), by domain. Without one
  (some tests), remote recipients stay queued with a `last_error` saying so.
- Every recipient of every attempt leaves one `queue delivery` log line (logevents,
  docs/logging.md) once the attempt is committed: the server's reply, host, TLS and delay.
- The store is polled every `poll_interval` (1 s) for due entries: that is how `postoffice
  queue retry|flush` in another process reaches the running server. One indexed query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Sequence

from postoffice import logevents
from postoffice.config import OutboundConfig
from postoffice.delivery import Envelope, deliver_message
from postoffice.directory import Directory
from postoffice.filtering.pipeline import FilterPipeline
from postoffice.queue.dsn import Action, DsnRecipient, build_dsn, wants_notice
from postoffice.queue.local_transport import LocalTransport
from postoffice.queue.outcomes import RecipientOutcome, Transport
from postoffice.store.interface import (
    MailStore,
    OutboundMessage,
    QueueAttemptRecord,
    QueueAttemptResult,
    QueuedMessage,
    QueuedRecipient,
)

log = logging.getLogger(__name__)

REMOTE_UNAVAILABLE = ("this runner was started without a transport for other mail servers; the message"
                      " stays queued until one that has it runs")
LEASE_SECONDS = 600.0  # renewed while the attempt runs, so it only bounds how long a dead runner's entries wait
RENEW_EVERY = 1 / 3  # of the lease: two renewals may fail (a busy store) before the lease runs out
JITTER = 0.1


def next_attempt_at(attempts: int, now: float, schedule: Sequence[float],
                    rng: Callable[[], float] = random.random) -> float:
    """When to try again after the `attempts`-th failed attempt (1 = the first): the schedule's
    entry for it (its last entry repeats), give or take a tenth at random."""
    delay = schedule[min(max(attempts, 1), len(schedule)) - 1]
    return now + delay * (1 + JITTER * (2 * rng() - 1))


def runner_id() -> str:
    """This process's lease owner: host, pid (to tell a dead process's leases) and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _owner_is_gone(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine's runner: its lease expires on its own
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class QueueRunner:
    def __init__(self, store: MailStore, directory: Directory, config: OutboundConfig, hostname: str, *,
                 remote: Transport | None = None, local: Transport | None = None, poll_interval: float = 1.0,
                 clock: Callable[[], float] = time.time, lease_seconds: float = LEASE_SECONDS,
                 filters: FilterPipeline | None = None) -> None:
        self.store = store
        self.directory = directory
        self.config = config
        self.hostname = hostname
        self.remote = remote
        self.local = local if local is not None else LocalTransport(
            store, directory, hostname, srs=directory.srs if config.srs else None, filters=filters)
        self.filters = filters
        self.poll_interval = poll_interval
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.owner = runner_id()
        self._stopping = False
        self._wake = asyncio.Event()
        self._attempts: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Look for due entries now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        await self._take_over_dead_leases()
        while not self._stopping:
            free = self.config.concurrency - len(self._attempts)
            if free > 0:
                try:
                    due = await self.store.claim_due_queue(self.owner, self.clock(), self.lease_seconds, free)
                except Exception:  # a full disk or a busy store: the next poll tries again
                    log.exception("the queue runner could not read the queue; trying again shortly")
                    due = []
                for entry in due:
                    task = asyncio.create_task(self._attempt(entry))
                    self._attempts.add(task)
                    task.add_done_callback(self._finished)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._attempts.discard(task)
        self._wake.set()  # a free slot: the next due entry need not wait for the poll

    async def stop(self, grace: float = 10.0) -> None:
        """Take no more entries; let attempts under way finish for `grace` seconds, then cancel
        the rest and give their entries back (they are tried again as they were)."""
        self._stopping = True
        self._wake.set()
        if self._attempts:
            await asyncio.wait(set(self._attempts), timeout=grace)
        for task in list(self._attempts):
            task.cancel()
        if self._attempts:
            await asyncio.wait(set(self._attempts), timeout=5)
        with contextlib.suppress(Exception):
            await self.store.release_queue_leases([self.owner])
        close = getattr(self.remote, "close", None)  # QUIT the connections kept for reuse
        if close is not None:
            with contextlib.suppress(Exception):
                await close()

    async def _take_over_dead_leases(self) -> None:
        try:
            gone = [owner for owner in await self.store.queue_lease_owners() if _owner_is_gone(owner)]
            if gone and (count := await self.store.release_queue_leases(gone)):
                log.info("the queue runner took over %d queued message(s) from stopped processes", count)
        except Exception:
            log.exception("the queue runner could not check for leases of stopped processes")

    async def _attempt(self, entry: QueuedMessage) -> None:
        keeper = asyncio.create_task(self._keep_lease(entry.id))
        try:
            await self.attempt(entry)
        except asyncio.CancelledError:
            raise
        except Exception:  # our bug: the lease expires and the entry is tried again later
            log.exception("queue entry %d: the attempt failed", entry.id)
        finally:
            # Not awaited: a renewal already handed to the store lands after the attempt's
            # commit and then matches nothing (the lease is dropped or another runner's).
            keeper.cancel()

    async def _keep_lease(self, queue_id: int) -> None:
        """Renew the lease on `queue_id` while its attempt runs."""
        every = self.lease_seconds * RENEW_EVERY
        while True:
            await asyncio.sleep(every)
            try:
                held = await self.store.renew_queue_lease(queue_id, self.owner, self.clock() + self.lease_seconds)
            except Exception:  # a busy or full store: the next renewal may get through in time
                log.warning("queue entry %d: the lease could not be renewed; trying again in %.0f s",
                            queue_id, every, exc_info=True)
                continue
            if not held:
                log.warning("queue entry %d: the attempt outlived its lease and another runner took the"
                            " entry; this attempt's result will not be recorded", queue_id)
                return

    async def attempt(self, entry: QueuedMessage) -> None:
        """One attempt at every pending recipient of `entry`, recorded in the store."""
        started = self.clock()
        pending = tuple(r.address for r in entry.envelope.recipients if r.status == "pending")
        outcomes = await self._deliver(entry, pending)
        result, notices = self._decide(entry, outcomes, started)
        if notices and entry.envelope.sender:
            await self._notify_sender(entry, notices)
        if not await self.store.finish_queue_attempt(entry.id, self.owner, result):
            log.warning("queue entry %d: its lease passed to another runner during the attempt", entry.id)
            return
        _log_attempt(entry, result, started)

    async def _deliver(self, entry: QueuedMessage, pending: tuple[str, ...]) -> dict[str, RecipientOutcome]:
        try:
            raw = await self.store.read_blob(entry.blob, entry.size)
        except Exception as exc:
            reason = f"the queued message cannot be read ({exc})"
            log.error("queue entry %d: %s", entry.id, reason)
            return {a: RecipientOutcome(a, "deferred", reason=reason) for a in pending}
        local: list[str] = []
        remote: dict[str, list[str]] = {}
        for address in pending:
            domain = address.rpartition("@")[2].lower()
            if await self.directory.is_local_domain(domain):
                local.append(address)
            else:
                remote.setdefault(domain, []).append(address)
        outcomes: dict[str, RecipientOutcome] = {}
        groups: list[tuple[Transport | None, list[str]]] = [(self.local, local)] if local else []
        groups += [(self.remote, group) for group in remote.values()]
        for transport, group in groups:
            if transport is None:
                outcomes.update({a: RecipientOutcome(a, "deferred", reason=REMOTE_UNAVAILABLE) for a in group})
                continue
            try:
                found = await transport.deliver(entry, raw, tuple(group))
            except Exception as exc:  # a transport's bug must not stop the queue
                log.exception("queue entry %d: the transport failed", entry.id)
                found = tuple(RecipientOutcome(a, "deferred", reason=f"internal error: {exc}") for a in group)
            outcomes.update({o.recipient: o for o in found})
        for address in pending:  # a transport that forgot one: try it again later
            outcomes.setdefault(address, RecipientOutcome(address, "deferred", reason="no outcome reported"))
        return outcomes

    def _decide(self, entry: QueuedMessage, outcomes: dict[str, RecipientOutcome],
                now: float) -> tuple[QueueAttemptResult, list[tuple[QueuedRecipient, DsnRecipient]]]:
        cfg = self.config
        expired = now - entry.created >= cfg.max_queue_time
        warn = cfg.delay_warning_after > 0 and now - entry.created >= cfg.delay_warning_after
        give_up_at = entry.created + cfg.max_queue_time
        recipients: list[QueuedRecipient] = []
        records: list[QueueAttemptRecord] = []
        notices: list[tuple[QueuedRecipient, DsnRecipient]] = []
        errors: list[str] = []
        for r in entry.envelope.recipients:
            outcome = outcomes.get(r.address)
            if r.status != "pending" or outcome is None:
                recipients.append(r)
                continue
            records.append(QueueAttemptRecord(now, r.address, outcome.kind, outcome.host, outcome.address,
                                              _said(outcome), _tls(outcome)))
            status, code = "pending", _status(outcome)
            action: Action | None = None
            warned = r.delay_warned
            if outcome.kind == "delivered":
                status, action = "delivered", "delivered"
            elif outcome.kind == "failed":
                status, action = "failed", "failed"
            elif expired:
                status, action, code = "failed", "failed", "4.4.7"
            else:
                errors.append(f"{r.address}: {_said(outcome)}")
                if warn and not warned:
                    action, warned = "delayed", True
            recipients.append(QueuedRecipient(r.address, r.notify, r.orcpt, status, warned))
            if action is not None and wants_notice(r.notify, action):
                reason = outcome.reason
                if code == "4.4.7":  # the report's text says it gave up; this says after what
                    reason = f"{_said(outcome)} (still so after {_duration(cfg.max_queue_time)} in the queue)"
                notices.append((r, DsnRecipient(
                    r.address, action, code, original=r.orcpt,
                    reply=outcome.reply if code != "4.4.7" else None, reason=reason, remote_mta=outcome.host,
                    last_attempt=now, will_retry_until=give_up_at if action == "delayed" else None)))
        still = any(r.status == "pending" for r in recipients)
        next_at = None
        if still:
            next_at = min(next_attempt_at(entry.attempts + 1, now, cfg.retry_schedule), give_up_at)
        result = QueueAttemptResult(tuple(recipients), tuple(records), next_at, "; ".join(errors) or None)
        return result, notices

    async def _notify_sender(self, entry: QueuedMessage, notices: list[tuple[QueuedRecipient, DsnRecipient]]) -> None:
        sender = entry.envelope.sender
        try:
            original = await self.store.read_blob(entry.blob, entry.size)
        except Exception:
            original = b""
        raw = build_dsn(reporting_mta=self.hostname, original=original, recipients=[n for _, n in notices],
                        ret=entry.envelope.ret, envid=entry.envelope.envid, arrival=entry.created,
                        now=self.clock(), sender_note=sender)
        if await self.directory.is_local_domain(sender.rpartition("@")[2].lower()):
            report = await deliver_message(self.store, self.directory, Envelope("", (sender,)), raw,
                                           filters=self.filters, way="local")
            if not report.accepted(sender):
                log.warning("queue entry %d: the delivery report for <%s> could not be delivered (no such"
                            " local user?); dropped", entry.id, sender)
            return
        # RFC 3461 §6.2 asks for no report on a report: the null sender already ensures it.
        outbound = OutboundMessage("", (QueuedRecipient(sender),))
        await deliver_message(self.store, self.directory, Envelope("", ()), raw, outbound=outbound)


def _log_attempt(entry: QueuedMessage, result: QueueAttemptResult, started: float) -> None:
    """One `queue delivery` event per recipient tried, once the attempt is recorded: what an
    administrator greps for when a user asks where a message went."""
    status = {r.address: r.status for r in result.recipients}
    words = {"delivered": "delivered", "failed": "bounced"}
    for record in result.attempts:
        outcome = words.get(status.get(record.recipient, ""), "deferred")
        logevents.queue_delivery(entry.id, entry.envelope.sender, record.recipient, outcome, host=record.host,
                                 ip=record.address, reply=record.reply, tls=record.tls,
                                 attempt=entry.attempts + 1, delay=started - entry.created)


def _duration(seconds: float) -> str:
    """Plain words for a span: "5 days", "4 hours", "20 seconds"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = round(seconds / size, 1)
            return f"{count:g} {unit}{'' if count == 1 else 's'}"
    return f"{seconds:g} second{'' if seconds == 1 else 's'}"


def _said(outcome: RecipientOutcome) -> str:
    if outcome.reply is not None:
        # A reply to the session, not to the recipient (a refused login, a 554 banner) comes
        # with the reason saying which step it answered.
        return f"{outcome.reason}: {outcome.reply}" if outcome.reason else str(outcome.reply)
    return outcome.reason or outcome.kind


def _status(outcome: RecipientOutcome) -> str:
    """The RFC 3463 code of a DSN: the peer's, else the transport's (routing's 5.1.10 for a null
    MX, 5.1.2 for no such domain, REQUIRETLS's 5.7.30), else one for the kind."""
    if outcome.reply is not None and outcome.reply.enhanced:
        return outcome.reply.enhanced
    if outcome.status:
        return outcome.status
    if outcome.kind == "delivered":
        return "2.0.0"
    if outcome.kind == "failed":
        return "5.0.0"
    return "4.0.0"


def _tls(outcome: RecipientOutcome) -> str:
    tls = outcome.tls
    if tls is None:
        return ""
    if not tls.used:
        return f"none ({tls.failure})" if tls.failure else "none"
    said = " ".join(p for p in (tls.version, tls.cipher, "verified" if tls.verified else "unverified",
                                f"policy {tls.policy}") if p)
    return f"{said} ({tls.failure})" if tls.failure else said  # e.g. an MTA-STS testing mismatch

