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


async def mailbox_fingerprint_uids(store: MailStore, mailbox_id: int) -> dict[str, list[int]]:
    """The UIDs of the mailbox's messages by fingerprint, in UID order."""
    rows = await store.message_fingerprints(mailbox_id)
    known: dict[str, str] = {sha: fp for _, sha, fp in rows if fp is not None}
    missing = list(dict.fromkeys(sha for _, sha, fp in rows if fp is None))
    for start in range(0, len(missing), _READ_BATCH):
        blobs = await store.read_blobs(missing[start : start + _READ_BATCH])
        computed = await asyncio.to_thread(_fingerprints, blobs)
        await store.save_fingerprints(computed)
        known.update(computed)
    found: dict[str, list[int]] = {}
    for uid, sha, _ in rows:
        fp = known.get(sha)
        if fp is not None:  # a blob file that cannot be read counts as absent
            found.setdefault(fp, []).append(uid)
    return found


async def mailbox_fingerprints(store: MailStore, mailbox_id: int) -> Counter[str]:
    """How many messages of each fingerprint the mailbox holds now."""
    return Counter({fp: len(uids) for fp, uids in (await mailbox_fingerprint_uids(store, mailbox_id)).items()})
