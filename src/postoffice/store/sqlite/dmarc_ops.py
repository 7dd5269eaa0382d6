"""DMARC data in SQLite: per-message evaluations (for the aggregate reports we will send) and
the aggregate reports other servers send us (RFC 7489 §7.2, appendix C).

Evaluations older than KEEP_DAYS are removed as new ones arrive (reports cover a day, so a
month leaves ample room to send late); a report received twice (same organisation, report id
and domain) is kept once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict
from typing import Any

from postoffice.mailauth.dmarc_reports import AggregateReport
from postoffice.store.interface import DkimOutcome, DmarcEvaluation, DmarcSourceSummary
from postoffice.store.sqlite.writer import Transaction

KEEP_DAYS = 31
PRUNE_EVERY = 1024  # evaluations between two prunes: the delete is cheap but not free

_EVALUATION_COLUMNS = (
    "received, source_ip, header_from, envelope_from, envelope_to, dmarc, disposition, policy_domain,"
    " policy, spf, spf_domain, spf_aligned, dkim, dkim_aligned, reason"
)


def record_dmarc_evaluation(tx: Transaction, e: DmarcEvaluation) -> None:
    dkim = json.dumps([[d.domain, d.selector, d.result] for d in e.dkim])
    row = tx.execute(
        f"INSERT INTO dmarc_evaluations({_EVALUATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (e.received, e.source_ip, e.header_from.lower(), e.envelope_from.lower(), e.envelope_to.lower(), e.dmarc,
         e.disposition, e.policy_domain.lower(), e.policy, e.spf, e.spf_domain.lower(), int(e.spf_aligned), dkim,
         int(e.dkim_aligned), e.reason),
    ).fetchone()
    if int(row[0]) % PRUNE_EVERY == 0:
        tx.execute("DELETE FROM dmarc_evaluations WHERE received < ?", (time.time() - KEEP_DAYS * 86400,))


def dmarc_evaluations(conn: sqlite3.Connection, since: float) -> list[DmarcEvaluation]:
    rows = conn.execute(
        f"SELECT {_EVALUATION_COLUMNS} FROM dmarc_evaluations WHERE received >= ? ORDER BY id", (since,)
    ).fetchall()
    return [_evaluation(row) for row in rows]


def _evaluation(row: tuple[Any, ...]) -> DmarcEvaluation:
    (received, source_ip, header_from, envelope_from, envelope_to, dmarc, disposition, policy_domain,
     policy, spf, spf_domain, spf_aligned, dkim, dkim_aligned, reason) = row
    return DmarcEvaluation(
        received, source_ip, header_from, envelope_from, envelope_to, dmarc, disposition,
        policy_domain=policy_domain, policy=policy, spf=spf, spf_domain=spf_domain,
        spf_aligned=bool(spf_aligned), dkim=tuple(DkimOutcome(*d) for d in json.loads(dkim)),
        dkim_aligned=bool(dkim_aligned), reason=reason,
    )


def add_dmarc_report(tx: Transaction, report: AggregateReport, received: float) -> bool:
    row = tx.execute(
        "INSERT INTO dmarc_reports(org_name, email, report_id, domain, range_begin, range_end, policy, received)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(org_name, report_id, domain) DO NOTHING RETURNING id",
        (report.org_name, report.email, report.report_id, report.policy.domain, report.begin, report.end,
         json.dumps(asdict(report.policy)), received),
    ).fetchone()
    if row is None:
        return False
    tx.conn.executemany(
        "INSERT INTO dmarc_report_rows(report, source_ip, count, disposition, dkim, spf, header_from,"
        " envelope_from, auth_results) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(row[0], r.source_ip, r.count, r.disposition, r.dkim, r.spf, r.header_from, r.envelope_from,
          json.dumps({"dkim": [asdict(a) for a in r.dkim_results], "spf": [asdict(a) for a in r.spf_results],
                      "reasons": [list(reason) for reason in r.reasons]}))
         for r in report.rows],
    )
    return True


def dmarc_report_summary(conn: sqlite3.Connection, domain: str | None) -> list[DmarcSourceSummary]:
    """Per (policy domain, source IP): who reported it, how many messages, how many passed."""
    rows = conn.execute(
        "SELECT r.domain, w.source_ip, json_group_array(DISTINCT r.org_name), count(DISTINCT r.id),"
        " sum(w.count), sum(CASE WHEN w.dkim = 'pass' OR w.spf = 'pass' THEN w.count ELSE 0 END),"
        " sum(CASE WHEN w.disposition = 'quarantine' THEN w.count ELSE 0 END),"
        " sum(CASE WHEN w.disposition = 'reject' THEN w.count ELSE 0 END),"
        " min(r.range_begin), max(r.range_end)"
        " FROM dmarc_report_rows w JOIN dmarc_reports r ON r.id = w.report"
        " WHERE ?1 IS NULL OR r.domain = ?1 OR w.header_from = ?1"
        "  OR (length(w.header_from) > length(?1) AND substr(w.header_from, -length(?1) - 1) = '.' || ?1)"
        " GROUP BY r.domain, w.source_ip ORDER BY r.domain, sum(w.count) DESC, w.source_ip",
        (domain.lower() if domain else None,),
    ).fetchall()
    return [
        DmarcSourceSummary(
            domain=d, source_ip=ip, reporters=tuple(sorted(json.loads(orgs))), reports=reports,
            messages=messages, passed=passed, failed=messages - passed, quarantined=quarantined,
            rejected=rejected, first=first, last=last,
        )
        for d, ip, orgs, reports, messages, passed, quarantined, rejected, first, last in rows
    ]
