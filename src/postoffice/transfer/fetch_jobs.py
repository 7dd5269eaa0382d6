"""Scheduled pulls: `postoffice fetch add` jobs that `serve` runs every N minutes into a local account.

Like mailcow's sync jobs or getmail run from cron with ``delete_after``: each job names a remote
account (``imap[s]://`` or ``pop3[s]://``), the local user it delivers into, how often, which
folders, and whether to delete what was copied from a POP3 server. Jobs live in
``DATA/fetch-jobs.json`` (mode 0600: it holds the remote password, which an unattended pull
needs; an OAuth job holds its token command instead), written atomically; each run's summary
is recorded on the job (``fetch list`` shows it) and logged.

`serve` calls :func:`run_fetch_jobs`: every 30 seconds it runs the jobs that are due, one at a
time (a slow remote server delays the others, it does not multiply connections), a new job at
once. A run uses the same engine and state as `postoffice fetch ... --to local:ADDR`, so a
pull interrupted by a restart goes on where it stopped, without duplicates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from postoffice.directory import Directory
from postoffice.durable import write_file
from postoffice.store.interface import MailStore
from postoffice.transfer.credentials import Credentials, parse_account_url
from postoffice.transfer.fetch_destinations import LocalDestination
from postoffice.transfer.fetch_runner import FetchRequest, run_fetch
from postoffice.transfer.source import TransferError

__all__ = ["FetchJob", "add_job", "load_jobs", "remove_job", "run_due_jobs", "run_fetch_jobs"]

log = logging.getLogger("postoffice.fetch")
JOBS_FILE = "fetch-jobs.json"
CHECK_EVERY = 30.0


@dataclass(frozen=True)
class FetchJob:
    id: int
    url: str
    into: str
    every_minutes: int = 15
    folders: tuple[str, ...] = ()
    delete_after: bool = False
    password: str | None = field(default=None, repr=False)
    token_command: str | None = None
    authuser: str | None = None
    last_run: float | None = None
    last_result: dict[str, object] | None = None
    last_error: str | None = None

    def due(self, now: float) -> bool:
        return self.last_run is None or now >= self.last_run + self.every_minutes * 60

    def public(self) -> dict[str, object]:
        """What `fetch list` shows: everything but the password."""
        out = asdict(self)
        out.pop("password")
        out["folders"] = list(self.folders)
        return out


def _path(data_dir: Path) -> Path:
    return data_dir / JOBS_FILE


def load_jobs(data_dir: Path) -> list[FetchJob]:
    try:
        text = _path(data_dir).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    try:
        return [
            FetchJob(**{**item, "folders": tuple(item.get("folders", ()))})
            for item in json.loads(text)["jobs"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise TransferError(f"{_path(data_dir)} cannot be read ({exc}).") from exc


def _save(data_dir: Path, jobs: list[FetchJob]) -> None:
    content = json.dumps({"jobs": [asdict(j) for j in jobs]}, indent=1).encode() + b"\n"
    write_file(_path(data_dir), content, mode=0o600)


def add_job(data_dir: Path, job: FetchJob) -> FetchJob:
    """Add ``job`` (its id is given here) after checking its URL; returns it."""
    parse_account_url(job.url)
    jobs = load_jobs(data_dir)
    job = replace(job, id=max((j.id for j in jobs), default=0) + 1)
    _save(data_dir, [*jobs, job])
    return job


def remove_job(data_dir: Path, job_id: int) -> bool:
    jobs = load_jobs(data_dir)
    kept = [j for j in jobs if j.id != job_id]
    if len(kept) == len(jobs):
        return False
    _save(data_dir, kept)
    return True


def _record(data_dir: Path, job_id: int, **changes: object) -> None:
    """Note a run on the job as the file now has it (the CLI may have changed other jobs)."""
    jobs = load_jobs(data_dir)
    _save(data_dir, [replace(j, **changes) if j.id == job_id else j for j in jobs])  # type: ignore[arg-type]


async def run_job(store: MailStore, directory: Directory, data_dir: Path, job: FetchJob) -> None:
    """Run one job now and record its result."""
    started = time.time()
    try:
        url = parse_account_url(job.url)
        account = await directory.get_user(job.into)
        if account is None:
            raise TransferError(f"there is no user {job.into}")
        credentials = Credentials(url.user, job.password, job.token_command, job.authuser)
        request = FetchRequest(url, credentials, job.folders, delete_after=job.delete_after)
        summary = await run_fetch(request, LocalDestination(store, account, data_dir))
    except Exception as exc:  # whatever fails, serve goes on; the job records why
        log.warning("fetch job %d (%s into %s) failed: %s", job.id, job.url, job.into, exc)
        await asyncio.to_thread(_record, data_dir, job.id, last_run=started, last_error=str(exc))
        return
    log.info("fetch job %d (%s into %s): %d copied, %d already there, %d failed",
             job.id, job.url, job.into, summary.copied, summary.skipped_duplicates, summary.failed)
    # What `fetch` prints for a person goes to the log, unattended. Some come back every run
    # (a server refusing QRESYNC, mbox flags not carried): WARNING only when new since the last.
    earlier = (job.last_result or {}).get("warnings")
    said_before = set(earlier) if isinstance(earlier, list) else set()
    for warning in summary.warnings:
        level = logging.INFO if warning in said_before else logging.WARNING
        log.log(level, "fetch job %d (%s into %s): %s", job.id, job.url, job.into, warning)
    await asyncio.to_thread(_record, data_dir, job.id, last_run=started, last_result=summary.to_json(),
                            last_error=None)


async def run_due_jobs(store: MailStore, directory: Directory, data_dir: Path) -> int:
    """Run every job that is due; how many ran."""
    jobs = await asyncio.to_thread(load_jobs, data_dir)
    ran = 0
    for job in jobs:
        if job.due(time.time()):
            await run_job(store, directory, data_dir, job)
            ran += 1
    return ran


async def run_fetch_jobs(store: MailStore, directory: Directory, data_dir: Path) -> None:
    """`serve`'s loop: run due jobs every CHECK_EVERY seconds, until cancelled."""
    while True:
        try:
            await run_due_jobs(store, directory, data_dir)
        except TransferError as exc:
            log.warning("fetch jobs: %s", exc)
        await asyncio.sleep(CHECK_EVERY)
