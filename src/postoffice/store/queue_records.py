"""Records of the outbound queue (store/interface.py re-exports them): envelopes, entries, attempts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueuedRecipient:
    """One remote recipient of a queued message, with its RFC 3461 DSN parameters."""

    address: str
    notify: tuple[str, ...] = ()  # NEVER | SUCCESS, FAILURE, DELAY; empty: the default
    orcpt: str | None = None
    status: str = "pending"  # pending | delivered | failed
    delay_warned: bool = False  # a delay DSN went to the sender for this recipient


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """The envelope of a message for the outbound queue."""

    sender: str
    recipients: tuple[QueuedRecipient, ...]
    envid: str | None = None
    ret: str | None = None  # FULL | HDRS
    auth_account: int | None = None
    requiretls: bool = False  # RFC 8689: deliver only over verified TLS to a REQUIRETLS peer


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: int
    blob: str
    size: int
    envelope: OutboundMessage
    created: float
    next_attempt: float
    attempts: int
    last_error: str | None
    held: bool = False  # `postoffice queue hold`: never picked until released


@dataclass(frozen=True, slots=True)
class QueueAttemptRecord:
    """One recipient's part of one delivery attempt, as `postoffice queue show` lists it."""

    time: float
    recipient: str
    outcome: str  # delivered | deferred | failed
    host: str = ""
    address: str = ""
    reply: str = ""  # the remote server's reply, or the reason in plain words
    tls: str = ""


@dataclass(frozen=True, slots=True)
class QueueAttemptResult:
    """What the runner writes after one attempt, in one transaction: the recipients with their
    new status, the attempt's rows, and when to try again (None: every recipient is finished
    and the entry is removed)."""

    recipients: tuple[QueuedRecipient, ...]
    attempts: tuple[QueueAttemptRecord, ...]
    next_attempt: float | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class QueueSummary:
    """The queue at a glance (`postoffice status`): counted in the store, no entry loaded."""

    messages: int
    held: int  # `queue hold`: never sent until released
    deferred: int  # tried at least once, waiting for the next attempt
    oldest: float | None  # when the oldest entry was queued (Unix time); None when empty
