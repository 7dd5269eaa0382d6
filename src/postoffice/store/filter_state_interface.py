"""The store's part for filtering state: junk-learning token counts and greylisting triplets.

`MailStore` inherits `FilterStateData`; backends implement it beside the mail itself, so the
learning and the greylist survive restarts and are shared by every process on the store.

- Junk learning (filtering/junk_classifier.py): per account, how many trained spam and ham
  messages held each token, and which messages (by blob hash) were trained in which direction,
  so that each message counts once per direction and a move back untrains it. Training
  requests are queued by the store itself when a message is copied or moved into or out of the
  account's \\Junk mailbox or gets the `$Junk`/`$NotJunk` keyword (RFC 5788), in the same
  transaction, so every way of moving mail (IMAP today, JMAP later) feeds it and the command
  that moved the mail waits for nothing but one more row.
- Greylisting (filtering/greylist.py, RFC 6647): the triplets seen and the client networks
  that passed; expiry is `sweep_greylist`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class JunkTrainingRequest:
    """A message to learn from: queued by a copy, move or keyword change."""

    id: int
    account_id: int
    sha256: str
    spam: bool  # True: learn as spam (into \\Junk, $Junk); False: as ham


@dataclass(frozen=True, slots=True)
class JunkTotals:
    """How many messages an account trained as spam and as ham."""

    spam: int = 0
    ham: int = 0


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """In how many of an account's trained spam and ham messages one token appeared."""

    spam: int
    ham: int


@dataclass(frozen=True, slots=True)
class JunkLesson:
    """One message's tokens, to be learned for `account_id` in one direction (`spam`)."""

    request_id: int
    account_id: int
    sha256: str
    spam: bool
    tokens: frozenset[str] | None  # None: the message could not be read; only the request goes


@dataclass(frozen=True, slots=True)
class GreylistState:
    """What the store knows of one triplet and of its client network."""

    first_seen: float | None  # None: never seen (or forgotten)
    passed: bool              # retried in time once: it passes from now on
    last_seen: float | None
    network_passes: int       # triplets of this client network that passed (auto-allow)
    network_last_seen: float | None


class FilterStateData(Protocol):
    # --- junk learning -----------------------------------------------------------------------
    async def queue_junk_training(self, account_id: int, sha256: str, spam: bool) -> None:
        """Ask for one message to be learned (the store queues moves by itself; this is for
        callers that judge otherwise, such as an admin command)."""
        ...

    async def pending_junk_training(self, limit: int = 100) -> list[JunkTrainingRequest]:
        """The oldest queued training requests, at most `limit`."""
        ...

    async def learn_junk(self, lessons: Sequence[JunkLesson], now: float) -> int:
        """Apply lessons in one transaction and drop their requests: a message already trained
        in that direction is skipped, one trained the other way is untrained first. Returns
        how many messages changed the counts."""
        ...

    async def forget_junk_training(self, request_ids: Collection[int]) -> None:
        """Drop queued requests unlearned ([junk] learning off)."""
        ...

    async def junk_token_counts(self, account_id: int, tokens: Collection[str]) -> tuple[JunkTotals, dict[str, TokenCounts]]:
        """The account's totals and the counts of those of `tokens` it has seen."""
        ...

    async def junk_trained_as(self, account_id: int, sha256: str) -> bool | None:
        """How a message was trained for the account: True spam, False ham, None not at all."""
        ...

    async def prune_junk_tokens(self, max_tokens: int, older_than: float) -> int:
        """Forget tokens seen in a single trained message and not since `older_than`, and, per
        account, the least useful ones beyond `max_tokens`. Returns how many went."""
        ...

    # --- greylisting -------------------------------------------------------------------------
    async def greylist_state(self, network: str, sender: str, recipient: str) -> GreylistState: ...

    async def greylist_seen(self, network: str, sender: str, recipient: str, now: float, *,
                            first: bool = False, passed: bool = False) -> None:
        """Record a triplet: `first` (re)starts its delay at `now`, `passed` marks it as
        retried in time (and counts a pass for its client network); otherwise only its
        last_seen moves."""
        ...

    async def sweep_greylist(self, unpassed_before: float, passed_before: float) -> int:
        """Forget triplets never retried since `unpassed_before` and passed ones (and client
        networks) not seen since `passed_before`. Returns how many rows went."""
        ...
