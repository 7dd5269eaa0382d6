"""`BlobInfoCache`: the indexed data of recently fetched messages, kept in memory.

FETCH ENVELOPE, BODYSTRUCTURE or PREVIEW needs a message's `BlobInfo`, which otherwise costs a
store read (a reader thread hop) every time. The same message is fetched again and again: by
every client of a mailbox's owner (phone, desktop, webmail), by each session of a shared
mailbox, and after every new-mail notification. A blob's info never changes (a blob is named by
the SHA-256 of its content, and its info is derived from that content when it is stored), so an
entry never goes stale; the cache only bounds memory, by an estimate of the bytes its entries
hold, dropping the least recently used first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping

from postoffice.store.interface import BlobInfo

DEFAULT_BYTES = 8 * 1024 * 1024
_OVERHEAD = 400  # the record, its dict slot and its strings' headers, roughly


def _weight(info: BlobInfo) -> int:
    return _OVERHEAD + sum(len(text) for text in (
        info.sha256, info.structure, info.subject, info.from_, info.to, info.cc, info.bcc,
        info.message_id or "", info.in_reply_to or "", info.references, info.preview))


class BlobInfoCache:
    """Least recently used `BlobInfo` records by SHA-256, up to about `max_bytes`."""

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[BlobInfo, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, hashes: Iterable[str]) -> tuple[dict[str, BlobInfo], list[str]]:
        """The infos held for `hashes`, and the hashes not held (to read from the store)."""
        found: dict[str, BlobInfo] = {}
        missing: list[str] = []
        for sha in hashes:
            entry = self._entries.get(sha)
            if entry is None:
                missing.append(sha)
            else:
                self._entries.move_to_end(sha)
                found[sha] = entry[0]
        return found, missing

    def add(self, infos: Mapping[str, BlobInfo]) -> None:
        for sha, info in infos.items():
            weight = _weight(info)
            if weight > self.max_bytes:
                continue  # one huge entry would push out everything else
            old = self._entries.pop(sha, None)
            if old is not None:
                self.bytes -= old[1]
            self._entries[sha] = (info, weight)
            self.bytes += weight
        while self.bytes > self.max_bytes:
            _, (_, weight) = self._entries.popitem(last=False)
            self.bytes -= weight
