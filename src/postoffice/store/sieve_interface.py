"""The store contract for users' Sieve scripts (RFC 5228 scripts managed over RFC 5804).

Each account holds any number of named scripts (up to ``[sieve] max_scripts``), at most one of
them active: the one delivery runs. Script names are case-sensitive UTF-8 without control
characters (RFC 5804 §1.6); the text is kept as the user uploaded it, so GETSCRIPT returns it
byte for byte. Errors are in store/sieve_errors.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SieveScriptRecord:
    name: str
    active: bool
    size: int  # octets of the UTF-8 text, as ManageSieve counts them (HAVESPACE, MAXSIZE)
    updated: float  # Unix time of the last PUTSCRIPT or RENAMESCRIPT


class SieveScriptData(Protocol):
    """Sieve script storage; every method is a coroutine that returns after a durable write."""

    async def list_sieve_scripts(self, account_id: int) -> list[SieveScriptRecord]:
        """The account's scripts, sorted by name."""
        ...

    async def get_sieve_script(self, account_id: int, name: str) -> str:
        """The script's text; raises ScriptNotFound."""
        ...

    async def put_sieve_script(self, account_id: int, name: str, text: str, *,
                               max_scripts: int = 0, max_size: int = 0) -> bool:
        """Store (create or replace) a script; True if it was new. Raises InvalidName for a name
        RFC 5804 forbids, SieveQuotaExceeded when a new script would pass ``max_scripts`` or the
        text is longer than ``max_size`` octets (0 = no limit). Replacing the active script
        keeps it active."""
        ...

    async def activate_sieve_script(self, account_id: int, name: str) -> None:
        """Make ``name`` the account's only active script; raises ScriptNotFound."""
        ...

    async def deactivate_sieve_script(self, account_id: int) -> bool:
        """No active script any more; False if there was none."""
        ...

    async def delete_sieve_script(self, account_id: int, name: str) -> None:
        """Raises ScriptNotFound, or ScriptIsActive (RFC 5804 §2.10: deactivate it first)."""
        ...

    async def rename_sieve_script(self, account_id: int, old: str, new: str) -> None:
        """Rename, keeping the active mark; raises ScriptNotFound, InvalidName or AlreadyExists."""
        ...

    async def active_sieve_script(self, account_id: int) -> tuple[str, str] | None:
        """(name, text) of the account's active script, or None: what delivery runs."""
        ...
