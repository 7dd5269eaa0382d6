"""`postoffice migrate`: move an account between servers (IMAP->IMAP, POP3->IMAP, local:ADDR)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Annotated

import typer

from postoffice.cli.common import DATA, DataDir, JsonFlag, console, fail, with_services
from postoffice.services import Services
from postoffice.transfer.credentials import (
    AccountUrl,
    Credentials,
    parse_account_url,
    password_from,
)
from postoffice.transfer.imap_client import ImapError
from postoffice.transfer.migrate import Decision, MigrateSummary, migrate
from postoffice.transfer.migrate_folders import parse_maps
from postoffice.transfer.migrate_remote import ImapDestination, ImapSource, Pop3Source
from postoffice.transfer.migrate_sides import (
    LocalDestination,
    LocalSource,
    MigrationDestination,
    MigrationSource,
)
from postoffice.transfer.source import TransferError

FROM_ENV = "POSTOFFICE_FROM_PASSWORD"
TO_ENV = "POSTOFFICE_TO_PASSWORD"


def parse_side(text: str) -> AccountUrl | str:
    """`local:ADDR` (the address) or an account URL."""
    if text.startswith("local:"):
        address = text[len("local:"):]
        if "@" not in address:
            raise TransferError(f"{text} names no user: write local:USER@DOMAIN.")
        return address
    if "://" not in text:
        raise TransferError(f"'{text}' is not an account: write imap[s]://USER@HOST[:PORT],"
                            " pop3[s]://USER@HOST[:PORT] or local:ADDR.")
    return parse_account_url(text)


def _credentials(url: AccountUrl, env_name: str, stdin_line: str | None, token_command: str | None,
                 authuser: str | None) -> Credentials:
    if token_command:
        return Credentials(url.user, None, token_command, authuser)
    password = password_from(url, stdin_line=stdin_line, env_name=env_name, login=authuser)
    if password is None:
        raise TransferError(f"No password for {authuser or url.user} at {url.host}: pipe it with"
                            f" --password-stdin (the source's), set {env_name}, or add it to ~/.netrc.")
    return Credentials(url.user, password, None, authuser)


def migrate_command(
    from_: Annotated[str, typer.Option("--from", help="The source: imap:// or imaps://USER@HOST[:PORT], pop3:// or pop3s://..., or local:ADDR.")],
    to: Annotated[str, typer.Option("--to", help="The destination: imap:// or imaps://USER@HOST[:PORT], or local:ADDR.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be copied and skipped, and why; store nothing.")] = False,
    maps: Annotated[list[str] | None, typer.Option("--map", help="Put source folder A (and its subfolders) into B: --map A=B (repeatable).")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help=f"Read the source's password from standard input (else ${FROM_ENV}, else ~/.netrc).")] = False,
    oauth_token_command: Annotated[str | None, typer.Option("--oauth-token-command", help="A shell command printing the IMAP source's OAuth access token (XOAUTH2/OAUTHBEARER); run again when it expires.")] = None,
    authuser: Annotated[str | None, typer.Option("--authuser", help="Log in to the IMAP source as this admin (master) user on USER's behalf; the password is the admin's.")] = None,
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
    POSTOFFICE_TO_PASSWORD, or netrc; --oauth-token-command for an OAuth source, --authuser
    for an admin login. ?tls=none after the URL allows plaintext (loopback).
    Exits 1 when any message failed (listed at the end); a rerun completes the job.

    Examples: postoffice migrate --from imaps://bob@imap.gmail.com --to local:bob@example.org
              postoffice migrate --from pop3s://bob@pop.old.example --to local:bob@example.org --dry-run
    """
    try:
        source_side = parse_side(from_)
        dest_side = parse_side(to)
        if isinstance(dest_side, AccountUrl) and dest_side.protocol == "pop3":
            raise TransferError("A POP3 account cannot be the destination: POP3 has no way to store mail.")
        mapping = parse_maps(maps or [])
        stdin_line = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
        from_login = (_credentials(source_side, FROM_ENV, stdin_line, oauth_token_command, authuser)
                      if isinstance(source_side, AccountUrl) else None)
        to_login = (_credentials(dest_side, TO_ENV, None, None, None)
                    if isinstance(dest_side, AccountUrl) else None)
    except TransferError as exc:
        fail(str(exc))

    def show(decision: Decision) -> None:
        if dry_run and not json_out:
            console.print(f"{decision.action} {decision.folder} {decision.message} ({decision.size:,} bytes)"
                          f" -> {decision.target}: {decision.why}")

    async def run(services: Services | None) -> MigrateSummary:
        async with _side(source_side, from_login, services, source=True) as source, \
                _side(dest_side, to_login, services, source=False) as destination:
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
    side: AccountUrl | str, login: Credentials | None, services: Services | None, *, source: bool
) -> AsyncIterator[MigrationSource | MigrationDestination]:
    opened: MigrationSource | MigrationDestination
    if isinstance(side, str):
        assert services is not None
        account = await services.directory.get_user(side)
        if account is None:
            fail(f"There is no user {side} here; create it with `postoffice user add {side}`.")
        opened = LocalSource(services.store, account) if source else LocalDestination(services.store, account)
    else:
        assert login is not None
        if side.protocol == "pop3":
            if login.password is None:
                raise TransferError("A POP3 source needs a password (no OAuth token command).")
            opened = await Pop3Source.open(side, login.password)
        elif source:
            opened = await ImapSource.open(side, login)
        else:
            opened = await ImapDestination.open(side, login)
    try:
        yield opened
    finally:
        await opened.close()
