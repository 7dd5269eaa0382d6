"""The store's part in filtered delivery (issue 17): one transaction for everything a filtered
message leads to, and what Sieve remembers between deliveries.

`deliver_plan` is `MailStore.deliver` for messages the filtering pipeline changed: several
contents (an account whose Sieve script edited header fields gets its own copy; identical
contents share one blob), mailboxes made on the way (`fileinto :create`, RFC 5490 §3.2),
several outbound queue rows (redirects, vacation replies, rejection notices), and facts to
remember (a vacation reply sent, RFC 5230 §4.2; a duplicate id seen, RFC 7352 §3), all durable
together or not at all, so a 250 covers every one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # interface.py imports this module: its records only for the annotations
    from postoffice.store.interface import DeliveryTarget, NewMessage, OutboundMessage, TargetResult


@dataclass(frozen=True, slots=True)
class PlannedCopy:
    """One local copy: `target` (account, mailbox, flags) of `contents[content]`."""

    target: DeliveryTarget
    content: int = 0
    create: bool = False  # make `target.mailbox` when the account has none of that name


@dataclass(frozen=True, slots=True)
class MemoryEntry:
    """A fact kept for an account until `expires` (epoch seconds): `kind` "vacation" (key: the
    sender and the handle answered) or "duplicate" (key: the duplicate id)."""

    account_id: int
    kind: str
    key: str
    expires: float


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    contents: Sequence[NewMessage]
    copies: Sequence[PlannedCopy]
    queue: Sequence[tuple[NewMessage, OutboundMessage]] = ()
    remember: Sequence[MemoryEntry] = ()


@dataclass(frozen=True, slots=True)
class PlanResult:
    results: list[TargetResult]  # one per copy, in order
    queue_ids: list[int]  # one per queue row, in order
    fell_back: tuple[int, ...] = ()  # copies filed into INBOX: their mailbox does not exist


class DeliveryMemoryData(Protocol):
    async def deliver_plan(self, plan: DeliveryPlan) -> PlanResult:
        """Store every copy, queue row and memory entry of `plan` in one transaction. A copy
        that fails alone (over quota, no INBOX) has its error in its result; a copy into a
        mailbox that does not exist (and is not to be created) lands in INBOX."""
        ...

    async def remembered(self, account_id: int, kind: str, key: str, now: float) -> bool:
        """True when the account keeps (`kind`, `key`) with an expiry after `now`."""
        ...

    async def forget_expired(self, now: float) -> int:
        """Remove the entries that expired before `now`; returns how many."""
        ...
