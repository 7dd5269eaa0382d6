"""What every check reports: findings with a stable id, a severity, the problem and the fix.

`check domain`, `check tls`, `check spf`, `check message` and the daily check inside `serve` all
speak in `Finding`s, so the same sentence reaches the terminal, `--json` and the postmaster's mail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"      # mail is lost, bounced or rejected because of it
    WARNING = "warning"  # works today, but deliverability or security suffers, or will soon
    OK = "ok"            # checked and fine: said so, so a report shows what was covered


@dataclass(frozen=True)
class Finding:
    """One thing a check found. `id` is stable (scripts and tests rely on it, e.g. `spf-missing`);
    `problem` and `fix` are one plain sentence each (`fix` empty for an `ok`)."""

    id: str
    severity: Severity
    problem: str
    fix: str = ""
    subject: str = ""  # what it is about (a host name, an address, a record), when several share an id

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.ERROR]


def exit_status(findings: Iterable[Finding]) -> int:
    """1 when anything is an error (the commands' documented exit status), else 0."""
    return 1 if errors(findings) else 0


def report_json(findings: Sequence[Finding], **extra: Any) -> dict[str, Any]:
    """The `--json` shape of every check: `{"findings": [{"id", "severity", "problem", "fix", ...}]}`."""
    return {**extra, "findings": [f.as_json() for f in findings]}
