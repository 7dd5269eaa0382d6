"""When the background full-text indexer works: deliveries first, the index when they pause.

Indexing a message costs about as much CPU as receiving, judging and storing it (parsing it
again, the trigram postings with positions, the short grams: ~3 ms for a signed 5 KB message).
Run beside a burst of incoming mail it halves the rate at which the server can answer 250.
Nothing needs the index at once: a search reads the messages not indexed yet itself
(text_ops), and only that mailbox's, so a backlog costs searches some time, never
correctness. So the indexer waits while new messages keep arriving and catches up when they
pause, the way a mail server's other deferred work does.

Under load that never pauses (a long import, a busy list server) the wait is bounded twice:
once messages have been waiting `max_wait` seconds the indexer works during deliveries, with
pauses as long as its batches (half a core), and past `high_water` waiting it works at full
speed, so a search never has more than that many messages to read itself.

`IndexPacing` is the decision alone (sans-IO, times and counts in); `index_in_background`, the
task `serve` runs, asks the store, follows the decision and sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from postoffice.store.interface import MailStore, StorageFull

__all__ = ["IndexPacing", "PacingStep", "index_in_background"]

log = logging.getLogger("postoffice")

QUIET_SECONDS = 0.5  # no new message for this long: deliveries have paused
MAX_WAIT_SECONDS = 30.0  # a burst longer than this shares the core with the indexer
HIGH_WATER = 20_000  # messages waiting above which the indexer works at full speed, mail or not
IDLE_SECONDS = 1.0  # the index is complete: how long until the next look
LOOK_SECONDS = 0.25  # while mail arrives: how long until the next look (the backlog may pass the high water)


@dataclass(frozen=True)
class PacingStep:
    """What to do now: index one batch (then pause `pause` seconds, or as long as the batch
    took when `share_core`), or look again in `wait` seconds."""

    index: bool
    wait: float = 0.0
    share_core: bool = False


class IndexPacing:
    """Decides, from what the store says at each look, whether to index now."""

    def __init__(self, quiet: float = QUIET_SECONDS, high_water: int = HIGH_WATER,
                 idle: float = IDLE_SECONDS, look: float = LOOK_SECONDS,
                 max_wait: float = MAX_WAIT_SECONDS) -> None:
        self.quiet = quiet
        self.high_water = high_water
        self.idle = idle
        self.look = look
        self.max_wait = max_wait
        self._newest = -1
        self._changed_at = float("-inf")
        self._waiting_since: float | None = None  # when the backlog was last seen empty, roughly

    def step(self, now: float, newest_blob: int, backlog: int) -> PacingStep:
        """`newest_blob`: the highest blob id in the store (it grows with every new message,
        in any process); `backlog`: messages waiting to be indexed (or unindexed)."""
        if newest_blob != self._newest:
            if self._newest >= 0:  # the first look is not an arrival
                self._changed_at = now
            self._newest = newest_blob
        if backlog <= 0:
            self._waiting_since = None
            return PacingStep(index=False, wait=self.idle)
        if self._waiting_since is None:
            self._waiting_since = now
        since = now - self._changed_at
        if since >= self.quiet or backlog >= self.high_water:
            return PacingStep(index=True)
        if now - self._waiting_since >= self.max_wait:
            return PacingStep(index=True, share_core=True)
        return PacingStep(index=False, wait=min(self.look, self.quiet - since))

async def index_in_background(store: MailStore, pacing: IndexPacing | None = None, pause: float = 0.01) -> None:
    """Keep the full-text index complete (store/sqlite/text_ops.py), a batch at a time, paced by
    `pacing`: while deliveries pause, and during them once messages have waited long or many."""
    pacing = pacing or IndexPacing()
    loop = asyncio.get_running_loop()
    while True:
        try:
            newest, backlog = await store.text_backlog(pacing.high_water)
            step = pacing.step(loop.time(), newest, backlog)
            if not step.index:
                await asyncio.sleep(step.wait)
                continue
            started = loop.time()
            await store.index_unindexed()
            pause_now = max(pause, loop.time() - started) if step.share_core else pause
        except StorageFull as exc:  # temporary, and said once a minute at most
            log.warning("full-text indexing paused for a minute: %s", exc)
            pause_now = 60.0
        except Exception:
            log.exception("full-text indexing failed; retrying in a minute")
            pause_now = 60.0
        await asyncio.sleep(pause_now)
