"""`postoffice migrate`: copy every folder of one account into another, never twice.

For each source folder (mapped by `migrate_folders.plan_folders`), the destination folder's
fingerprints are read once, as a multiset (`dedup.DuplicateFilter`); each source message is
fingerprinted as it arrives and copied only when the destination has no unmatched copy of it.
So a rerun, a run after an interrupted one, or a source whose mail a POP3 client already put in
the destination (with header fields of its own) copies nothing twice, while true duplicates in
the source are each copied. `dry_run` makes the same decisions and stores nothing, so its
counts are those of the real run. Copies go to the destination in batches; a failure of one
message (or one folder) is reported and the rest goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from postoffice.store.interface import StoreError
from postoffice.transfer.dedup import DuplicateFilter, fingerprint
from postoffice.transfer.imap_client import ImapError
from postoffice.transfer.migrate_folders import FolderPlan, plan_folders
from postoffice.transfer.migrate_sides import (
    ItemFailure,
    MigrationDestination,
    MigrationSource,
    SourceItem,
)
from postoffice.transfer.source import TransferError

__all__ = ["SIDE_ERRORS", "Decision", "MigrateSummary", "migrate"]

# What a failing server or disk raises: reported in the summary, never a traceback.
SIDE_ERRORS = (ImapError, TransferError, OSError, StoreError)

BATCH = 200
BATCH_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class Failure:
    folder: str
    message: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.folder}" + (f" {self.message}" if self.message else "") + f": {self.reason}"


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens (or, in a dry run, would happen) to one source message."""

    folder: str  # the source folder
    target: str
    message: str  # "UID 12", "UIDL abc"
    size: int
    action: str  # "copy" or "skip"
    why: str


@dataclass
class MigrateSummary:
    folders: int = 0
    copied: int = 0
    skipped_duplicates: int = 0
    bytes: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    failures: list[Failure] = field(default_factory=list)
    plan: list[FolderPlan] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def to_json(self) -> dict[str, object]:
        return {
            "folders": self.folders,
            "copied": self.copied,
            "skipped_duplicates": self.skipped_duplicates,
            "failed": self.failed,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 2),
            "dry_run": self.dry_run,
            "failures": [{"folder": f.folder, "message": f.message, "reason": f.reason} for f in self.failures],
            "mapping": [{"from": p.source.name, "to": p.target, "why": p.why} for p in self.plan],
        }


async def migrate(
    source: MigrationSource,
    destination: MigrationDestination,
    *,
    maps: Mapping[str, str] | None = None,
    dry_run: bool = False,
    on_decision: Callable[[Decision], None] | None = None,
) -> MigrateSummary:
    """Copy what the destination lacks; see the module text. `on_decision` hears of every
    message as it is decided (in a real run, a copy is decided before it is stored)."""
    started = time.monotonic()
    summary = MigrateSummary(dry_run=dry_run)
    summary.plan = plan_folders(await source.folders(), await destination.folders(), maps or {})
    for plan in summary.plan:
        if plan.target is None:
            continue
        summary.folders += 1
        try:
            await _migrate_folder(source, destination, plan, plan.target, summary, dry_run, on_decision)
        except SIDE_ERRORS as exc:  # the destination failed: this folder stops, the next is tried
            summary.failures.append(Failure(plan.source.name, None, _reason(exc)))
    summary.seconds = time.monotonic() - started
    return summary


async def _migrate_folder(
    source: MigrationSource,
    destination: MigrationDestination,
    plan: FolderPlan,
    target: str,
    summary: MigrateSummary,
    dry_run: bool,
    on_decision: Callable[[Decision], None] | None,
) -> None:
    name = plan.source.name
    use = plan.source.special_use or (plan.why if plan.why.startswith("\\") else None)
    present = DuplicateFilter(await destination.fingerprints(target))
    batch: list[SourceItem] = []
    batch_bytes = 0

    async def flush() -> None:
        nonlocal batch, batch_bytes
        if not batch:
            return
        results = await destination.store(target, batch, use)
        for item, error in zip(batch, results, strict=True):
            if error is None:
                summary.copied += 1
                summary.bytes += len(item.raw)
            else:
                summary.failures.append(Failure(name, item.ident, error))
        batch, batch_bytes = [], 0

    messages = source.messages(plan.source)
    while True:
        try:
            item = await anext(messages)
        except StopAsyncIteration:
            break
        except SIDE_ERRORS as exc:  # the source failed (a dropped connection): keep what came whole
            summary.failures.append(Failure(name, None, f"reading it failed: {_reason(exc)}"))
            break
        if isinstance(item, ItemFailure):
            summary.failures.append(Failure(name, item.ident, item.reason))
            continue
        fp = fingerprint(item.raw) if present else ""
        duplicate = bool(fp) and present.is_duplicate(fp)
        if on_decision is not None:
            on_decision(Decision(name, target, item.ident, len(item.raw),
                                 "skip" if duplicate else "copy",
                                 f"already in {target}" if duplicate else f"not in {target}"))
        if duplicate:
            summary.skipped_duplicates += 1
            if not dry_run:
                await destination.note_duplicate(target, fp, item)
            continue
        if dry_run:
            summary.copied += 1
            summary.bytes += len(item.raw)
            continue
        batch.append(item)
        batch_bytes += len(item.raw)
        if len(batch) >= BATCH or batch_bytes >= BATCH_BYTES:
            await flush()
    await flush()


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__

