"""The daily `check domain` inside `serve`: postmaster@ hears what changed, and only that.

    task = asyncio.create_task(run_daily_checks(services))   # app.serve, cancelled at stop

A few minutes after start, then once a day, every local domain is checked as `postoffice check
domain` does (DNS from its authoritative servers, live probes of its MX addresses). Its problems
(warnings and errors, by id and subject) are compared with those of the previous run, kept in
``<data dir>/domain-checks.json``; when something is new, changed or fixed, one plain-text
message goes to ``postmaster@<domain>`` through `deliver_message` (so it reaches whoever
postmaster@ resolves to), from the null sender: no bounce or auto-reply comes back. Nothing
changed: no mail. The first run compares with nothing, so it reports every problem once.

A domain whose check fails (a bug, say) is logged and left for the next run; the others go on.
``POSTOFFICE_DOMAIN_CHECK_SECONDS="FIRST,EVERY"`` (for tests) replaces the delays.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
from dataclasses import dataclass, field
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postoffice.delivery import Envelope, deliver_message
from postoffice.diagnostics.checks import Finding, Severity
from postoffice.diagnostics.domain_check import DomainCheck, check_domain
from postoffice.durable import write_file

if TYPE_CHECKING:
    from postoffice.services import Services

log = logging.getLogger(__name__)
STATE_FILE = "domain-checks.json"
FIRST_DELAY = 300.0  # after start: let the listeners and the queue settle first
EVERY = 86_400.0
SCHEDULE_ENV = "POSTOFFICE_DOMAIN_CHECK_SECONDS"
_Key = tuple[str, str]  # (id, subject)


@dataclass
class Changes:
    new: list[Finding] = field(default_factory=list)  # problems not there last time (or worse)
    fixed: list[dict[str, Any]] = field(default_factory=list)  # last time's problems now gone

    def __bool__(self) -> bool:
        return bool(self.new or self.fixed)


def problems(findings: list[Finding]) -> dict[_Key, dict[str, Any]]:
    return {(f.id, f.subject): f.as_json() for f in findings if f.severity is not Severity.OK}


def changes(previous: dict[_Key, dict[str, Any]], findings: list[Finding]) -> Changes:
    """What differs from PREVIOUS (the problems of the last run): new problems, problems whose
    severity or sentence changed, and problems gone."""
    current = problems(findings)
    found = Changes()
    for finding in findings:
        before = previous.get((finding.id, finding.subject))
        if finding.severity is not Severity.OK and (
                before is None or (before["severity"], before["problem"]) != (finding.severity.value, finding.problem)):
            found.new.append(finding)
    found.fixed = [old for key, old in previous.items() if key not in current]
    return found


def schedule() -> tuple[float, float]:
    """(first delay, interval) in seconds: a few minutes and a day, or the test's."""
    value = os.environ.get(SCHEDULE_ENV, "")
    try:
        first, every = (float(part) for part in value.split(","))
        return max(first, 0.0), max(every, 0.1)
    except ValueError:
        return FIRST_DELAY, EVERY


async def run_daily_checks(services: Services) -> None:
    first, every = schedule()
    await asyncio.sleep(first)
    while True:
        try:
            await check_all(services)
        except Exception:  # never the end of the task: tomorrow's run may go better
            log.exception("the daily domain check failed")
        await asyncio.sleep(every)


async def check_all(services: Services) -> list[str]:
    """Check every local domain once; mail postmaster@ of those with changes (returned)."""
    path = services.config.data_dir / STATE_FILE
    state = await asyncio.to_thread(_read_state, path)
    domains = [d.name for d in await services.directory.list_domains()]
    check = DomainCheck.from_services(services)
    mailed = []
    fresh: dict[str, list[dict[str, Any]]] = {}
    for domain in domains:
        previous = {(p["id"], p.get("subject", "")): p for p in state.get(domain, [])}
        try:
            report = await check_domain(check, domain)
        except Exception:
            log.exception("the daily check of %s failed", domain)
            fresh[domain] = list(previous.values())
            continue
        found = changes(previous, report.findings)
        fresh[domain] = list(problems(report.findings).values())
        log.info("daily domain check of %s: %d problems, %d new, %d fixed", domain,
                 len(fresh[domain]), len(found.new), len(found.fixed))
        if found:
            await _mail_postmaster(services, domain, found, report.servers)
            mailed.append(domain)
    await asyncio.to_thread(_write_state, path, fresh)
    return mailed


async def _mail_postmaster(services: Services, domain: str, found: Changes, servers: list[str]) -> None:
    address = f"postmaster@{domain}"
    raw = report_message(domain, found, servers, services.config.server.hostname)
    report = await deliver_message(services.store, services.directory, Envelope("", (address,)), raw)
    if not report.all_delivered:
        log.warning("the daily check of %s could not be mailed to %s: it reaches no mailbox here",
                    domain, address)


def report_message(domain: str, found: Changes, servers: list[str], hostname: str) -> bytes:
    """The postmaster's mail: what is new (with the fix), then what was fixed."""
    lines = [f"The daily check of {domain} found changes since its last run"
             f" (DNS answers from {', '.join(servers) or 'the configured resolver'}).", ""]
    if found.new:
        lines += ["New problems:", ""]
        for finding in found.new:
            about = f" ({finding.subject})" if finding.subject else ""
            lines += [f"- {finding.severity.value} {finding.id}{about}: {finding.problem}",
                      f"  Fix: {finding.fix}", ""]
    if found.fixed:
        lines += ["Fixed since the last run:", ""]
        for old in found.fixed:
            about = f" ({old['subject']})" if old.get("subject") else ""
            lines += [f"- {old['id']}{about}: no longer found.", ""]
    lines += [f"The whole report: postoffice check domain {domain}", ""]
    counts = [f"{len(found.new)} new" if found.new else "", f"{len(found.fixed)} fixed" if found.fixed else ""]
    subject = f"check domain {domain}: " + ", ".join(c for c in counts if c)
    headers = [
        f'From: "postoffice domain check" <postmaster@{domain}>',
        f"To: <postmaster@{domain}>",
        f"Subject: {subject}",
        f"Date: {format_datetime(dt.datetime.now(dt.UTC), usegmt=True)}",
        f"Message-ID: {make_msgid('domain-check', domain=hostname or domain)}",
        "Auto-Submitted: auto-generated",  # RFC 3834: no automatic answer to this
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(lines)).encode()


def _read_state(path: Path) -> dict[str, list[dict[str, Any]]]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.warning("%s cannot be read (%s): the daily check starts afresh", path, error)
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(path: Path, state: dict[str, list[dict[str, Any]]]) -> None:
    write_file(path, json.dumps(state, indent=1, sort_keys=True).encode(), mode=0o600)
