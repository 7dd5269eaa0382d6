"""The errors of the Sieve script store (store/sieve_interface.py); each str() is one sentence.

Apart from sieve_interface.py because they derive from store/interface.py's errors, which
imports sieve_interface.py for MailStore.
"""

from __future__ import annotations

from typing import Literal

from postoffice.store.interface import NotFound, QuotaExceeded, StoreError


class ScriptNotFound(NotFound):
    pass


class ScriptIsActive(StoreError):
    """DELETESCRIPT of the active script (RFC 5804 §2.10 answers NO (ACTIVE))."""


class SieveQuotaExceeded(QuotaExceeded):
    """One more script, or a longer one, than ``[sieve]`` allows."""

    def __init__(self, message: str, limit: Literal["maxscripts", "maxsize"]) -> None:
        super().__init__(message)
        self.limit = limit  # RFC 5804 §1.3 response codes QUOTA/MAXSCRIPTS and QUOTA/MAXSIZE
