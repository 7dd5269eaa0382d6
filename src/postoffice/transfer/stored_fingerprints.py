"""The fingerprints of what a postoffice mailbox already holds, for de-duplication.

A blob's fingerprint is computed once (reading the blob file, in a thread) and cached in the
store, so the next import or migration into the same mailbox reads no message again.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from postoffice.store.interface import MailStore
from postoffice.transfer.dedup import fingerprint

_READ_BATCH = 200


def _fingerprints(blobs: dict[str, bytes]) -> dict[str, str]:
    return {sha: fingerprint(raw) for sha, raw in blobs.items()}


async def mailbox_fingerprints(store: MailStore, mailbox_id: int) -> Counter[str]:
    """How many messages of each fingerprint the mailbox holds now."""
    rows = await store.message_fingerprints(mailbox_id)
    found: Counter[str] = Counter()
    missing: dict[str, int] = {}
    for sha, fp in rows:
        if fp is None:
            missing[sha] = missing.get(sha, 0) + 1
        else:
            found[fp] += 1
    shas = list(missing)
    for start in range(0, len(shas), _READ_BATCH):
        blobs = await store.read_blobs(shas[start : start + _READ_BATCH])
        computed = await asyncio.to_thread(_fingerprints, blobs)
        await store.save_fingerprints(computed)
        for sha, fp in computed.items():
            found[fp] += missing[sha]
    return found
