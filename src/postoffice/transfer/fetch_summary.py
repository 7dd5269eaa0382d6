"""The end-of-run summary of `postoffice fetch` (and what a scheduled fetch job logs).

``--json`` prints :meth:`FetchSummary.to_json`: ``folders`` (how many were fetched),
``copied``, ``skipped_duplicates`` (already at the destination: fetched by an earlier run, or
the same content found there), ``failed`` (how many messages or folders failed), ``bytes``
(copied), ``seconds``, plus ``failures`` (each with its folder, UID when there is one, and the
reason), ``deferred`` (left for the next run by ``--max-bytes``) and ``warnings``.

With CONDSTORE at the source (RFC 7162): ``flags_updated`` (copies made by earlier runs whose
flags were changed to the source's), ``removed_at_source`` (copies whose message the source
has removed since, counted once; the copies are kept) and ``unchanged_folders`` (folders whose
UIDNEXT and HIGHESTMODSEQ had not moved: nothing was asked beyond EXAMINE).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Failure", "FetchProgress", "FetchSummary", "NoProgress"]


@dataclass(frozen=True, slots=True)
class Failure:
    folder: str
    uid: int | str | None
    reason: str

    def __str__(self) -> str:
        what = f"{self.folder}" + (f" message {self.uid}" if self.uid is not None else "")
        return f"{what}: {self.reason}"


@dataclass
class FetchSummary:
    folders: int = 0
    copied: int = 0
    skipped_duplicates: int = 0
    bytes: int = 0
    seconds: float = 0.0
    deferred: int = 0
    flags_updated: int = 0
    removed_at_source: int = 0
    unchanged_folders: int = 0
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

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
            "deferred": self.deferred,
            "flags_updated": self.flags_updated,
            "removed_at_source": self.removed_at_source,
            "unchanged_folders": self.unchanged_folders,
            "failures": [
                {"folder": f.folder, "uid": f.uid, "reason": f.reason} for f in self.failures
            ],
            "warnings": self.warnings,
        }


class FetchProgress:
    """Told what a fetch is doing, per folder; the CLI draws one progress bar per folder."""

    def folder_started(self, folder: str, messages: int, size: int) -> None:
        """``messages`` (of ``size`` bytes in all) are about to be copied from ``folder``."""

    def advanced(self, folder: str, messages: int, size: int) -> None:
        """``messages`` more (``size`` bytes) are done."""

    def folder_done(self, folder: str) -> None:
        """The folder is complete (or has failed)."""

    def folder_unchanged(self, folder: str) -> None:
        """Nothing changed in ``folder`` at the source since the last run (CONDSTORE): it is
        shown as a folder with nothing to copy."""
        self.folder_started(folder, 0, 0)


NoProgress = FetchProgress
