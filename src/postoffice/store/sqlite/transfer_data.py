"""SqliteStore's transfer methods (a mixin of store.py): see store/transfer_interface.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from postoffice.store.sqlite import transfer_ops as t
from postoffice.store.sqlite.writer import Transaction

T = TypeVar("T")


class TransferStoreData:
    # Provided by SqliteStore.
    async def _read(self, fn: Callable[..., T], *args: object) -> T:
        raise NotImplementedError

    async def _write(self, fn: Callable[[Transaction], T]) -> T:
        raise NotImplementedError

    async def message_fingerprints(self, mailbox_id: int) -> list[tuple[int, str, str | None]]:
        return await self._read(t.message_fingerprints, mailbox_id)

    async def save_fingerprints(self, fingerprints: Mapping[str, str]) -> None:
        if fingerprints:
            pairs = dict(fingerprints)
            await self._write(lambda tx: t.save_fingerprints(tx, pairs))

    async def keep_pop3_uidls(self, mailbox_id: int, uidvalidity: int, uidls: Mapping[int, str]) -> None:
        if uidls:
            kept = dict(uidls)
            await self._write(lambda tx: t.keep_pop3_uidls(tx, mailbox_id, uidvalidity, kept))

    async def kept_pop3_uidls(self, mailbox_id: int, uidvalidity: int) -> dict[int, str]:
        return await self._read(t.kept_pop3_uidls, mailbox_id, uidvalidity)
