"""`postoffice migrate`: move an account between servers (IMAP->IMAP, POP3->IMAP, local:ADDR)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import netrc
import os
import sys
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import parse_qs, unquote, urlsplit

import typer

from postoffice.cli.common import DATA, DataDir, JsonFlag, console, fail, with_services
from postoffice.services import Services
from postoffice.transfer.imap_client import ImapError
from postoffice.transfer.migrate import Decision, MigrateSummary, migrate
from postoffice.transfer.migrate_folders import parse_maps
from postoffice.transfer.migrate_remote import Endpoint, ImapDestination, ImapSource, Pop3Source
from postoffice.transfer.migrate_sides import (
    LocalDestination,
    LocalSource,
    MigrationDestination,
    MigrationSource,
)
from postoffice.transfer.source import TransferError

_PORTS = {"imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995}


def parse_side(text: str) -> Endpoint | str:
    """`local:ADDR` (the address) or an account URL (an Endpoint)."""
    if text.startswith("local:"):
        address = text[len("local:"):]
        if "@" not in address:
            raise TransferError(f"{text} names no user: write local:USER@DOMAIN.")
        return address
    url = urlsplit(text)
    if url.scheme not in _PORTS or not url.hostname or not url.username:
        raise TransferError(
            f"{text} is not an account: write imap[s]://USER@HOST[:PORT], pop3[s]://USER@HOST[:PORT]"
            " or local:ADDR.")
    tls = parse_qs(url.query).get("tls", ["verify"])[-1]
    if tls not in ("verify", "insecure", "none"):
        raise TransferError(f"{text}: tls= must be verify, insecure or none.")
    try:
        port = url.port or _PORTS[url.scheme]
    except ValueError as exc:
        raise TransferError(f"{text} has a bad port.") from exc
    return Endpoint(url.scheme, unquote(url.username), url.hostname, port, tls)  # type: ignore[arg-type]


def _password(endpoint: Endpoint, variable: str, stdin_line: str | None) -> str:
    if stdin_line is not None:
        return stdin_line
    value = os.environ.get(variable)
    if value:
        return value
    with contextlib.suppress(OSError, netrc.NetrcParseError):
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(endpoint.host)
        if entry is not None and entry[2] and entry[0] in (endpoint.user, None, ""):
            return entry[2]
    raise TransferError(
        f"No password for {endpoint}: give it with --password-stdin (the source), the"
        f" environment variable {variable}, or a netrc entry for {endpoint.host}.")


def migrate_command(
    from_: Annotated[str, typer.Option("--from", help="The source: imap:// or imaps://USER@HOST[:PORT], pop3:// or pop3s://..., or local:ADDR.")],
    to: Annotated[str, typer.Option("--to", help="The destination: imap:// or imaps://USER@HOST[:PORT], or local:ADDR.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be copied and skipped, and why; store nothing.")] = False,
    maps: Annotated[list[str] | None, typer.Option("--map", help="Put source folder A (and its subfolders) into B: --map A=B (repeatable).")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the source's password from the first line of standard input.")] = False,
    authuser: Annotated[str | None, typer.Option("--authuser", help="Log in to the IMAP source as this admin (master) user, for USER.")] = None,
    data: DataDir = DATA,
    json_out: JsonFlag = False,
) -> None:
    """Copy every folder of an account to another server, with flags and dates; never twice.

    Folders are mapped by SPECIAL-USE ([Gmail]/Sent Mail -> Sent; Drafts, Trash, Junk,
    Archive) and --map. A message the destination already holds (compared by a fingerprint
    that ignores header fields servers and POP3 clients add) is skipped, so a rerun, or merging
    a POP3 client's copy with the IMAP one, gives no duplicates. Into local:ADDR, messages from
    a POP3 server keep their UIDL, so POP3 clients that leave mail on the server do not fetch
    them again. Passwords: --password-stdin (source), POSTOFFICE_FROM_PASSWORD,
    POSTOFFICE_TO_PASSWORD, or netrc. ?tls=none after the URL allows plaintext (loopback).
    Exits 1 when any message failed (listed at the end); a rerun completes the job.

    Examples: postoffice migrate --from imaps://bob@imap.gmail.com --to local:bob@example.org
              postoffice migrate --from pop3s://bob@pop.old.example --to local:bob@example.org --dry-run
    """
    try:
        source_side = parse_side(from_)
        dest_side = parse_side(to)
        if isinstance(dest_side, Endpoint) and dest_side.scheme.startswith("pop3"):
            raise TransferError("A POP3 account cannot be the destination: POP3 has no way to store mail.")
        mapping = parse_maps(maps or [])
        stdin_line = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
        from_password = (_password(source_side, "POSTOFFICE_FROM_PASSWORD", stdin_line)
                         if isinstance(source_side, Endpoint) else "")
        to_password = (_password(dest_side, "POSTOFFICE_TO_PASSWORD", None)
                       if isinstance(dest_side, Endpoint) else "")
    except TransferError as exc:
        fail(str(exc))

    def show(decision: Decision) -> None:
        if dry_run and not json_out:
            console.print(f"{decision.action} {decision.folder} {decision.message} ({decision.size:,} bytes)"
                          f" -> {decision.target}: {decision.why}")

    async def run(services: Services | None) -> MigrateSummary:
        async with _side(source_side, from_password, authuser, services, source=True) as source, \
                _side(dest_side, to_password, None, services, source=False) as destination:
            return await migrate(source, destination, maps=mapping, dry_run=dry_run,  # type: ignore[arg-type]
                                 on_decision=show)

    try:
        if isinstance(source_side, str) or isinstance(dest_side, str):
            summary = with_services(data, run)
        else:
            summary = asyncio.run(run(None))
    except (TransferError, ImapError, OSError) as exc:
        fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps(summary.to_json()) + "\n")
    else:
        for plan in summary.plan:
            if plan.target is None:
                console.print(f"left out {plan.source.name}: {plan.why}")
            elif plan.target != plan.source.name:
                console.print(f"{plan.source.name} -> {plan.target} ({plan.why})")
        verb = "Would copy" if dry_run else "Copied"
        console.print(
            f"{verb} {summary.copied:,} messages ({summary.bytes:,} bytes) from {summary.folders} folders"
            f" in {summary.seconds:.1f} s; {summary.skipped_duplicates:,} already there were skipped;"
            f" {summary.failed:,} failed.")
        for failure in summary.failures:
            console.print(f"failed: {failure}")
    if summary.failed:
        raise typer.Exit(1)


@contextlib.asynccontextmanager
async def _side(
    side: Endpoint | str, password: str, authuser: str | None, services: Services | None, *, source: bool
) -> AsyncIterator[MigrationSource | MigrationDestination]:
    opened: MigrationSource | MigrationDestination
    if isinstance(side, str):
        assert services is not None
        account = await services.directory.get_user(side)
        if account is None:
            fail(f"There is no user {side} here; create it with `postoffice user add {side}`.")
        opened = LocalSource(services.store, account) if source else LocalDestination(services.store, account)
    elif side.scheme.startswith("pop3"):
        opened = await Pop3Source.open(side, password)
    elif source:
        opened = await ImapSource.open(side, password, authuser)
    else:
        opened = await ImapDestination.open(side, password)
    try:
        yield opened
    finally:
        await opened.close()
