"""One fetch, whatever the source and destination: what the CLI and scheduled jobs call.

>>> async with open_target("maildir:~/Mail", data_dir) as target:
...     summary = await run_fetch(FetchRequest(url, credentials), target)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from postoffice.transfer.credentials import AccountUrl, Credentials
from postoffice.transfer.fetch_destinations import (
    Destination,
    LocalDestination,
    MaildirDestination,
    MboxDestination,
)
from postoffice.transfer.fetch_summary import FetchProgress, FetchSummary
from postoffice.transfer.imap_fetch import FetchOptions, fetch_imap
from postoffice.transfer.source import TransferError

__all__ = ["FetchRequest", "open_target", "run_fetch"]


@dataclass(frozen=True)
class FetchRequest:
    url: AccountUrl
    credentials: Credentials
    folders: tuple[str, ...] = ()
    connections: int = 1
    max_bytes: int | None = None
    gmail_labels: str = "keywords"
    delete_after: bool = False  # POP3 only: DELE what was copied (scheduled jobs)


@contextlib.asynccontextmanager
async def open_target(spec: str, data_dir: Path) -> AsyncIterator[Destination]:
    """``maildir:DIR``, ``mbox:DIR`` or ``local:ADDR`` (a user of the data directory)."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest or kind not in ("maildir", "mbox", "local"):
        raise TransferError(f"'{spec}' is not a destination: use maildir:DIR, mbox:DIR or local:ADDR.")
    if kind == "maildir":
        yield MaildirDestination(Path(rest).expanduser())
        return
    if kind == "mbox":
        yield MboxDestination(Path(rest).expanduser())
        return
    from postoffice.config import load_config
    from postoffice.services import open_services

    async with open_services(load_config(data_dir)) as services:
        account = await services.directory.get_user(rest)
        if account is None:
            raise TransferError(f"There is no user {rest}; create it with `postoffice user add {rest}`.")
        yield LocalDestination(services.store, account, data_dir)


async def run_fetch(
    request: FetchRequest, destination: Destination, progress: FetchProgress | None = None
) -> FetchSummary:
    if request.url.protocol == "pop3":
        from postoffice.transfer.pop3_fetch import fetch_pop3

        return await fetch_pop3(request.url, request.credentials, destination, progress,
                                max_bytes=request.max_bytes, delete_after=request.delete_after)
    options = FetchOptions(
        folders=request.folders,
        connections=request.connections,
        max_bytes=request.max_bytes,
        gmail_labels="folders" if request.gmail_labels == "folders" else "keywords",
    )
    return await fetch_imap(request.url, request.credentials, destination, options, progress)
