"""The store's part for transfers (import, migrate): cached fingerprints and kept POP3 UIDLs.

`MailStore` inherits `TransferData`; SqliteStore implements it in sqlite/transfer_data.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

__all__ = ["TransferData", "valid_uidl"]


def valid_uidl(uidl: str) -> bool:
    """RFC 1939 §7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E."""
    return 1 <= len(uidl) <= 70 and all("\x21" <= c <= "\x7e" for c in uidl)


class TransferData(Protocol):
    async def message_fingerprints(self, mailbox_id: int) -> list[tuple[int, str, str | None]]:
        """(UID, blob SHA-256, cached `transfer.dedup.fingerprint` or None) of every message in the
        mailbox; a blob's fingerprint never changes, so it is cached by blob."""
        ...

    async def save_fingerprints(self, fingerprints: Mapping[str, str]) -> None:
        """Cache blob SHA-256 -> fingerprint (the blobs need not be referenced yet)."""
        ...

    async def keep_pop3_uidls(self, mailbox_id: int, uidvalidity: int, uidls: Mapping[int, str]) -> None:
        """Serve `uidls[uid]` as the POP3 unique-id of message `uid` (a migrated message keeps
        its old server's UIDL, so a "leave mail on server" client does not fetch it again).
        Invalid unique-ids (RFC 1939 §7) are not kept."""
        ...

    async def kept_pop3_uidls(self, mailbox_id: int, uidvalidity: int) -> dict[int, str]:
        """The unique-ids `keep_pop3_uidls` kept for the mailbox while it has this UIDVALIDITY."""
        ...
