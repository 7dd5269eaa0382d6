"""`postoffice fetch pop3[s]://...`: copy a POP3 maildrop into INBOX of a Maildir, mbox or account.

Incremental by UIDL (RFC 1939 §7): the state keeps every unique id copied, and only messages
with a new one are retrieved. A message is written durably, then its UIDL recorded; within the
destination it is known by a number derived from its UIDL (the first 48 bits of its SHA-256),
so a Maildir recognises a message written before a crash. POP3 has no flags and no internal
date: a message is unseen, dated by its Date header (else the time of the fetch).
``delete_after`` (scheduled jobs, like getmail's ``delete``) deletes every message whose UIDL is
recorded (copied by this run or an earlier one) from the server, at QUIT.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import datetime
from email.utils import parsedate_to_datetime

from postoffice.transfer.credentials import AccountUrl, Credentials
from postoffice.transfer.fetch_destinations import Destination
from postoffice.transfer.fetch_state import FetchState
from postoffice.transfer.fetch_summary import Failure, FetchProgress, FetchSummary
from postoffice.transfer.pop3_client import Pop3Client, Pop3ConnectionLost, Pop3Error
from postoffice.transfer.source import TransferError

__all__ = ["fetch_pop3", "uidl_number"]

FOLDER = "INBOX"
SYNC_EVERY = 100


def uidl_number(uidl: str) -> int:
    """A stable number standing for a UIDL in destination file names."""
    return int(hashlib.sha256(uidl.encode()).hexdigest()[:12], 16)


def _date_of(raw: bytes) -> datetime | None:
    end = raw.find(b"\r\n\r\n")
    for line in raw[: end if end >= 0 else len(raw)].split(b"\r\n"):
        if line[:5].lower() == b"date:":
            try:
                when = parsedate_to_datetime(line[5:].decode("latin-1").strip())
            except (ValueError, TypeError):
                return None
            return when if when.tzinfo is not None else None
    return None


async def fetch_pop3(
    url: AccountUrl,
    credentials: Credentials,
    destination: Destination,
    progress: FetchProgress | None = None,
    *,
    max_bytes: int | None = None,
    delete_after: bool = False,
    timeout: float = 60.0,
) -> FetchSummary:
    started = time.monotonic()
    progress = progress or FetchProgress()
    summary = FetchSummary(folders=1)
    state = await asyncio.to_thread(FetchState.load, destination.state_path)
    source = state.source(url.key)
    if credentials.password is None:
        raise TransferError(f"No password for {credentials.authuser or credentials.user}.")
    try:
        client = await Pop3Client.connect(
            url.host, url.port, security=url.security, ssl_context=url.ssl_context(), timeout=timeout
        )
    except Pop3Error as exc:
        raise TransferError(str(exc)) from exc
    lock = asyncio.Lock()

    async def save() -> None:
        async with lock:
            await asyncio.to_thread(state.write, state.snapshot())

    try:
        if credentials.authuser:
            await client.login(credentials.authuser, credentials.password, authzid=credentials.user)
        else:
            await client.login(credentials.user, credentials.password)
        ids = await client.uidl()
        sizes = await client.list()
        folder_state = source.folder(FOLDER)
        writer = await destination.open_folder(FOLDER, url.key, 0, folder_state)
        await save()
        by_number = {uidl_number(u): u for u in ids.values()}
        for number, _ in (await writer.present_uids()).items():
            if number in by_number:
                source.uidls.add(by_number[number])  # written by a run killed before recording it
        todo = [n for n in sorted(ids) if ids[n] not in source.uidls]
        summary.skipped_duplicates = len(ids) - len(todo)
        if max_bytes is not None:
            budget, planned = max_bytes, list[int]()
            for n in todo:
                if sizes.get(n, 0) > budget:
                    summary.deferred = len(todo) - len(planned)
                    break
                budget -= sizes.get(n, 0)
                planned.append(n)
            todo = planned
        progress.folder_started(FOLDER, len(todo), sum(sizes.get(n, 0) for n in todo))
        unsynced: list[str] = []

        async def commit() -> None:
            duplicates = await writer.sync()
            summary.copied -= duplicates
            summary.skipped_duplicates += duplicates
            source.uidls.update(unsynced)
            unsynced.clear()
            await save()

        try:
            async for number, raw in client.retrieve(todo):
                if isinstance(raw, Pop3Error):
                    summary.failures.append(Failure(FOLDER, ids[number], f"the server answered -ERR {raw}"))
                    continue
                await writer.add(raw, frozenset(), _date_of(raw), uidl_number(ids[number]))
                unsynced.append(ids[number])
                summary.copied += 1
                summary.bytes += len(raw)
                progress.advanced(FOLDER, 1, len(raw))
                if len(unsynced) >= SYNC_EVERY:
                    await commit()
        except Pop3ConnectionLost as exc:
            summary.failures.append(Failure(FOLDER, None, f"{exc}; run fetch again to finish"))
        finally:
            await commit()
            await writer.close()
            progress.folder_done(FOLDER)
        recorded = [n for n in sorted(ids) if ids[n] in source.uidls]
        if delete_after and recorded and not client.writer.is_closing():
            await client.delete(recorded)  # copied now or by an earlier run: all recorded
    except Pop3ConnectionLost as exc:
        summary.failures.append(Failure(FOLDER, None, str(exc)))
    except Pop3Error as exc:
        await client.close()
        raise TransferError(str(exc)) from exc
    await client.quit()
    summary.seconds = time.monotonic() - started
    return summary
