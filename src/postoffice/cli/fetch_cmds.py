"""`postoffice fetch`: copy a remote IMAP or POP3 account to Maildir, mbox or a local account."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn
from typer.core import TyperGroup

from postoffice.cli.common import (
    DATA,
    DataDir,
    JsonFlag,
    console,
    err_console,
    fail,
    load,
    parse_size,
    print_json,
    run_async,
    with_services,
)
from postoffice.services import Services
from postoffice.transfer.credentials import (
    AccountUrl,
    Credentials,
    parse_account_url,
    password_from,
)
from postoffice.transfer.fetch_jobs import FetchJob, add_job, load_jobs, remove_job
from postoffice.transfer.fetch_runner import FetchRequest, open_target, run_fetch
from postoffice.transfer.fetch_summary import FetchProgress, FetchSummary
from postoffice.transfer.imap_client import ImapError
from postoffice.transfer.source import TransferError

SOURCE_ENV = "POSTOFFICE_FROM_PASSWORD"


class _FetchGroup(TyperGroup):
    """`fetch URL ...` runs a fetch; `fetch add|list|remove` manage scheduled jobs."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # click's Context (typer vendors click)
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


fetch_app = typer.Typer(
    cls=_FetchGroup,
    help="Copy a remote account (IMAP or POP3) to Maildir, mbox or a local account; schedule pulls.\n\n"
         "postoffice fetch URL --to maildir:DIR|mbox:DIR|local:ADDR [OPTIONS] (see `postoffice fetch run --help`)\n\n"
         "Example: postoffice fetch imaps://bob@mail.example.org --to maildir:~/Mail --password-stdin",
    no_args_is_help=True,
)


class GmailLabels(StrEnum):
    keywords = "keywords"
    folders = "folders"


class _Bars(FetchProgress):
    """One rich progress bar per folder: messages and bytes."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def folder_started(self, folder: str, messages: int, size: int) -> None:
        self.tasks[folder] = self.progress.add_task(folder, total=size or None, count=0, of=messages)

    def advanced(self, folder: str, messages: int, size: int) -> None:
        task = self.tasks.get(folder)
        if task is not None:
            done = self.progress.tasks[task].fields["count"] + messages
            self.progress.update(task, advance=size, count=done)

    def folder_done(self, folder: str) -> None:
        task = self.tasks.get(folder)
        if task is not None:
            self.progress.update(task, completed=self.progress.tasks[task].total or 0)


def credentials_for(
    url: AccountUrl, password_stdin: bool, token_command: str | None, authuser: str | None
) -> Credentials:
    """The login for ``url`` (see transfer/credentials.py for the order of password sources)."""
    line = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    try:
        password = None if token_command else password_from(url, stdin_line=line, env_name=SOURCE_ENV, login=authuser)
    except TransferError as exc:
        fail(str(exc))
    if password is None and token_command is None:
        fail(f"No password for {authuser or url.user} at {url.host}: pipe it with --password-stdin,"
             f" set {SOURCE_ENV}, or add it to ~/.netrc.")
    return Credentials(url.user, password, token_command, authuser)


PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help=f"Read the source's password from standard input (else ${SOURCE_ENV}, else ~/.netrc).")]
TokenCommand = Annotated[str | None, typer.Option("--oauth-token-command", help="A shell command printing an OAuth access token (XOAUTH2/OAUTHBEARER); run again when the token expires.")]
AuthUser = Annotated[str | None, typer.Option("--authuser", help="Log in as this admin (master) user on USER's behalf; the password is the admin's.")]
Folders = Annotated[list[str] | None, typer.Option("--folder", help="Only folders matching this glob (repeatable), e.g. 'Archive/*'.")]


@fetch_app.command("run", hidden=True)
def fetch_command(
    url: Annotated[str, typer.Argument(metavar="URL", help="imap[s]://USER@HOST[:PORT] or pop3[s]://USER@HOST[:PORT].")],
    to: Annotated[str, typer.Option("--to", help="maildir:DIR, mbox:DIR or local:ADDR.")],
    folder: Folders = None,
    connections: Annotated[int, typer.Option("--connections", min=1, max=16, help="Folders fetched in parallel.")] = 1,
    max_bytes: Annotated[str | None, typer.Option("--max-bytes", help="Stop after this much (e.g. 2G); the next run goes on.")] = None,
    gmail_labels: Annotated[GmailLabels, typer.Option("--gmail-labels", help="Gmail: All Mail with labels as keywords, or one folder per label (hard links).")] = GmailLabels.keywords,
    delete_after: Annotated[bool, typer.Option("--delete-after", help="POP3: delete from the server what was copied.")] = False,
    password_stdin: PasswordStdin = False,
    oauth_token_command: TokenCommand = None,
    authuser: AuthUser = None,
    data: DataDir = DATA,
    json_out: JsonFlag = False,
) -> None:
    """Copy every folder of a remote account, with flags and dates; a rerun copies only what is new.

    The state (what was copied, by UIDVALIDITY and UID, or POP3 UIDL) is kept in
    DIR.fetch-state.json next to a Maildir or mbox destination, in the data directory for
    local:ADDR. Messages are written durably before they are recorded, so an interrupted
    fetch (even killed) is finished by running it again, without duplicates.

    Examples: postoffice fetch imaps://me@gmail.com --to maildir:~/Mail/gmail --oauth-token-command 'oauth2l fetch --scope mail'
              POSTOFFICE_FROM_PASSWORD=... postoffice fetch imaps://bob@mail.example.org --to mbox:~/mail-backup --connections 4
              postoffice fetch pop3s://bob@pop.example.net --to local:bob@example.org --password-stdin
    """
    try:
        source = parse_account_url(url)
    except TransferError as exc:
        fail(str(exc))
    cap = parse_size(max_bytes) if max_bytes else None
    credentials = credentials_for(source, password_stdin, oauth_token_command, authuser)
    try:
        request = FetchRequest(source, credentials, tuple(folder or ()), connections, cap or None,
                               gmail_labels.value, delete_after)
        summary = run_async(_run(request, to, data, json_out))
    except (TransferError, ImapError, OSError) as exc:
        fail(str(exc))
    report(summary, json_out)
    if summary.failures:
        raise typer.Exit(1)


async def _run(request: FetchRequest, to: str, data: Path, quiet: bool) -> FetchSummary:
    async with open_target(to, data) as target:
        if quiet:
            return await run_fetch(request, target, None)
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}/{task.fields[of]}"),
            DownloadColumn(), console=err_console, transient=False,
        )
        with progress:
            return await run_fetch(request, target, _Bars(progress))


def report(summary: FetchSummary, json_out: bool) -> None:
    if json_out:
        print_json(summary.to_json())
        return
    out = err_console
    out.print(
        f"{summary.folders} folder(s): {summary.copied:,} messages copied ({summary.bytes / 1e6:,.1f} MB),"
        f" {summary.skipped_duplicates:,} already there, {summary.failed:,} failed, in {summary.seconds:.1f} s."
    )
    if summary.deferred:
        out.print(f"{summary.deferred:,} messages were left for the next run (--max-bytes).")
    # What a rerun with CONDSTORE/QRESYNC did besides copying (RFC 7162); silent when nothing.
    if summary.unchanged_folders:
        out.print(f"{summary.unchanged_folders:,} folder(s) unchanged at the source since the last run.")
    if summary.flags_updated:
        out.print(f"{summary.flags_updated:,} message(s) copied earlier had their flags updated to the source's.")
    if summary.removed_at_source:
        out.print(f"{summary.removed_at_source:,} message(s) copied earlier were removed at the source;"
                  " their copies here are kept.")
    for warning in summary.warnings:
        out.print(f"warning: {warning}")
    for failure in summary.failures:
        out.print(f"failed: {failure}")


@fetch_app.command("add")
def fetch_add_command(
    url: Annotated[str, typer.Argument(metavar="URL", help="imap[s]://USER@HOST[:PORT] or pop3[s]://USER@HOST[:PORT].")],
    into: Annotated[str, typer.Option("--into", help="The local user the mail goes to.")],
    every: Annotated[int, typer.Option("--every", min=1, help="Minutes between pulls.")] = 15,
    folder: Folders = None,
    delete_after: Annotated[bool, typer.Option("--delete-after", help="POP3: delete from the server what was copied.")] = False,
    password_stdin: PasswordStdin = False,
    oauth_token_command: TokenCommand = None,
    authuser: AuthUser = None,
    data: DataDir = DATA,
    json_out: JsonFlag = False,
) -> None:
    """Schedule a pull that `serve` runs every N minutes into a local account.

    The password is kept with the job in DATA/fetch-jobs.json (readable by the owner only);
    `serve` runs a new job at once, then every --every minutes.

    Example: postoffice fetch add pop3s://bob@pop.example.net --into bob@example.org --every 10 --delete-after --password-stdin
    """
    try:
        source = parse_account_url(url)
    except TransferError as exc:
        fail(str(exc))
    load(data)
    credentials = credentials_for(source, password_stdin, oauth_token_command, authuser)

    async def check_user(s: Services) -> bool:
        return await s.directory.get_user(into) is not None

    if not with_services(data, check_user):
        fail(f"There is no user {into}; create it with `postoffice user add {into}`.")
    try:
        job = add_job(data, FetchJob(0, url, into, every, tuple(folder or ()), delete_after,
                                     credentials.password, oauth_token_command, authuser))
    except (TransferError, OSError) as exc:
        fail(str(exc))
    if json_out:
        print_json(job.public())
        return
    console.print(f"Added fetch job {job.id}: {url} into {into} every {every} min; `serve` runs it.")


@fetch_app.command("list")
def fetch_list_command(data: DataDir = DATA, json_out: JsonFlag = False) -> None:
    """List the scheduled pulls with their last result.

    Example: postoffice fetch list --json
    """
    load(data)
    try:
        jobs = load_jobs(data)
    except TransferError as exc:
        fail(str(exc))
    if json_out:
        print_json([j.public() for j in jobs])
        return
    if not jobs:
        console.print("No fetch jobs; add one with `postoffice fetch add URL --into ADDR`.")
    for j in jobs:
        result = j.last_error or (
            f"{j.last_result.get('copied')} copied, {j.last_result.get('failed')} failed" if j.last_result else "not run yet"
        )
        console.print(f"{j.id}: {j.url} -> {j.into} every {j.every_minutes} min; last: {result}")


@fetch_app.command("remove")
def fetch_remove_command(
    job_id: Annotated[int, typer.Argument(metavar="ID", help="The job's number (see `fetch list`).")],
    data: DataDir = DATA,
) -> None:
    """Remove a scheduled pull (what it fetched stays).

    Example: postoffice fetch remove 2
    """
    load(data)
    if not remove_job(data, job_id):
        fail(f"There is no fetch job {job_id}; `postoffice fetch list` shows them.")
    console.print(f"Removed fetch job {job_id}.")
