"""SqliteStore's Sieve script methods (a mixin of store.py; the SQL is in sieve_ops.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from postoffice.store.sieve_interface import SieveScriptRecord
from postoffice.store.sqlite import sieve_ops
from postoffice.store.sqlite.writer import Transaction

T = TypeVar("T")


class SieveScriptStore:
    # Provided by SqliteStore.
    async def _read(self, fn: Callable[..., T], *args: object) -> T:
        raise NotImplementedError

    async def _write(self, fn: Callable[[Transaction], T]) -> T:
        raise NotImplementedError

    async def list_sieve_scripts(self, account_id: int) -> list[SieveScriptRecord]:
        return await self._read(sieve_ops.list_scripts, account_id)

    async def get_sieve_script(self, account_id: int, name: str) -> str:
        return await self._read(sieve_ops.get_script, account_id, name)

    async def put_sieve_script(self, account_id: int, name: str, text: str, *,
                               max_scripts: int = 0, max_size: int = 0) -> bool:
        return await self._write(lambda tx: sieve_ops.put_script(tx, account_id, name, text, max_scripts, max_size))

    async def activate_sieve_script(self, account_id: int, name: str) -> None:
        await self._write(lambda tx: sieve_ops.activate_script(tx, account_id, name))

    async def deactivate_sieve_script(self, account_id: int) -> bool:
        return await self._write(lambda tx: sieve_ops.deactivate_script(tx, account_id))

    async def delete_sieve_script(self, account_id: int, name: str) -> None:
        await self._write(lambda tx: sieve_ops.delete_script(tx, account_id, name))

    async def rename_sieve_script(self, account_id: int, old: str, new: str) -> None:
        await self._write(lambda tx: sieve_ops.rename_script(tx, account_id, old, new))

    async def active_sieve_script(self, account_id: int) -> tuple[str, str] | None:
        return await self._read(sieve_ops.active_script, account_id)
