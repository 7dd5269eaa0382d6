"""Junk learning's I/O half: train from what users sorted, estimate at delivery.

    trainer = JunkTrainer(services.store, services.config.junk)
    await trainer.run()                        # serve's background task: drains the queue
    estimate = await learned_estimate(store, account_id, tokens, config.junk)

Where the lessons come from: the store queues a training request, in the same transaction,
whenever a message is copied or moved into an account's \\Junk mailbox (spam), out of it into
another mailbox but \\Trash (ham), or gets `$Junk`/`$NotJunk` (RFC 5788) (store/sqlite/
filter_state_ops.py). IMAP MOVE, COPY and STORE (and any later way of moving mail) so feed it
without knowing about it, and the command's reply waits for nothing but that row.

Implementation notes:
- The trainer reads the queued messages' blobs, tokenizes them in a thread (junk_tokens.py is
  CPU work proportional to the message) and applies a batch in one store write, a small batch
  at a time with a pause between, so deliveries and IMAP commands come first.
- Losing a request (a blob already gone) loses a lesson, not mail: it is dropped with a debug
  line. A crash before the batch's write keeps the requests queued; they are learned at the
  next start.
- Each message is learned once per direction per account (by blob hash); moving it back untrains
  it (filter_state_ops.learn).
- Pruning of rare, old tokens runs daily, so the token table stays bounded per account.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection

from postoffice.config_schema import JunkConfig
from postoffice.filtering.junk_classifier import JunkEstimate, estimate_junk
from postoffice.filtering.junk_tokens import raw_message_tokens
from postoffice.store.filter_state_interface import FilterStateData, JunkLesson
from postoffice.store.interface import MailStore

log = logging.getLogger(__name__)

BATCH = 32                 # messages learned per store write
PRUNE_EVERY = 86400.0
HAPAX_DAYS = 30            # a token seen in one message only, not since then, is forgotten


async def learned_estimate(store: FilterStateData, account_id: int, tokens: Collection[str],
                           config: JunkConfig) -> JunkEstimate | None:
    """The account's classifier on a message's tokens; None when learning is off or the account
    has not trained enough yet ([junk] min_trained)."""
    if not config.learning or not tokens:
        return None
    totals, counts = await store.junk_token_counts(account_id, tokens)
    return estimate_junk(tokens, totals, counts, min_trained=config.min_trained)


class JunkTrainer:
    """Learns what the store queued (see the module docstring)."""

    def __init__(self, store: MailStore, config: JunkConfig) -> None:
        self.store = store
        self.config = config
        self._pruned = 0.0

    async def train_pending(self, limit: int = BATCH) -> int:
        """Learn up to `limit` queued requests; returns how many requests were handled."""
        requests = await self.store.pending_junk_training(limit)
        if not requests:
            return 0
        if not self.config.learning:
            await self.store.forget_junk_training([r.id for r in requests])
            return len(requests)
        raws = await self.store.read_blobs(list(dict.fromkeys(r.sha256 for r in requests)))
        tokens = await asyncio.to_thread(lambda: {sha: raw_message_tokens(raw) for sha, raw in raws.items()})
        lessons = [JunkLesson(r.id, r.account_id, r.sha256, r.spam, tokens.get(r.sha256)) for r in requests]
        missing = sum(1 for lesson in lessons if lesson.tokens is None)
        if missing:
            log.debug("junk learning: %d message(s) no longer readable, not learned", missing)
        changed = await self.store.learn_junk(lessons, time.time())
        if changed:
            log.info("junk learning: learned %d message(s)", changed)
        return len(requests)

    async def prune(self, now: float) -> int:
        removed = await self.store.prune_junk_tokens(self.config.max_tokens, now - HAPAX_DAYS * 86400.0)
        if removed:
            log.info("junk learning: forgot %d rare token(s)", removed)
        return removed

    async def run(self, idle: float = 2.0, pause: float = 0.05) -> None:
        """Forever: learn what is queued, a batch at a time; prune once a day."""
        while True:
            try:
                handled = await self.train_pending()
                now = time.time()
                if now - self._pruned >= PRUNE_EVERY:
                    self._pruned = now
                    await self.prune(now)
            except Exception:  # learning must never take the server down; try again later
                log.exception("junk learning failed; retrying in a minute")
                handled = 0
                await asyncio.sleep(60.0)
            await asyncio.sleep(pause if handled else idle)
