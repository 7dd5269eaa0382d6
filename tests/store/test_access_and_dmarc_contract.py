"""The store contract for the block/allow lists and the DMARC data (every backend)."""
from __future__ import annotations

import dataclasses
import time

import pytest

from postoffice.mailauth.dmarc_reports import (
    AggregateReport,
    AuthResult,
    PolicyPublished,
    ReportRow,
)
from postoffice.mailauth.results import DkimResult, DmarcResult, SpfResult
from postoffice.store.interface import AccessEntry, DkimOutcome, DmarcEvaluation, MailStore
from postoffice.store.sqlite import dmarc_ops


async def test_access_entries_add_update_remove_and_bump_the_version(store: MailStore) -> None:
    assert await store.access_lists_version() == 0 and await store.list_access_entries() == []
    assert await store.add_access_entry(AccessEntry("block", "cidr", "192.0.2.0/24", "spam"))
    first = await store.access_lists_version()
    assert not await store.add_access_entry(AccessEntry("block", "cidr", "192.0.2.0/24", "more spam"))
    assert await store.add_access_entry(AccessEntry("allow", "cidr", "192.0.2.0/24"))  # the other list
    assert await store.access_lists_version() > first
    (blocked,) = await store.list_access_entries("block")
    assert (blocked.kind, blocked.value, blocked.reason) == ("cidr", "192.0.2.0/24", "more spam") and blocked.created > 0
    version = await store.access_lists_version()
    assert not await store.remove_access_entry("block", "192.0.2.9")
    assert await store.access_lists_version() == version  # nothing changed, nothing to reload
    assert await store.remove_access_entry("block", "192.0.2.0/24")
    assert await store.access_lists_version() > version
    assert [e.list for e in await store.list_access_entries()] == ["allow"]


def _report(org: str, report_id: str, rows: tuple[ReportRow, ...]) -> AggregateReport:
    return AggregateReport(org, f"dmarc@{org}", report_id, 1000, 2000, PolicyPublished("example.org", p="reject"), rows)


def _row(ip: str, count: int, dkim: str, disposition: str = "none", header_from: str = "example.org") -> ReportRow:
    return ReportRow(ip, count, disposition, dkim, "fail", header_from,
                     dkim_results=(AuthResult("example.org", dkim, selector="s1"),))


async def test_reports_are_kept_once_and_summed_per_domain_and_source(store: MailStore) -> None:
    google = _report("google.com", "1", (_row("192.0.2.1", 5, "pass"), _row("198.51.100.9", 2, "fail", "reject")))
    assert await store.add_dmarc_report(google, 3000.0)
    assert not await store.add_dmarc_report(google, 3001.0)  # the same report mailed twice
    later = dataclasses.replace(_report("Outlook.com", "x", (_row("192.0.2.1", 3, "fail", "quarantine", "mail.example.org"),)),
                                begin=5000, end=6000)
    assert await store.add_dmarc_report(later, 7000.0)
    other = dataclasses.replace(google, report_id="2", policy=PolicyPublished("example.net"), rows=(_row("203.0.113.5", 1, "pass", header_from="example.net"),))
    assert await store.add_dmarc_report(other, 7000.0)
    summary = await store.dmarc_report_summary("example.org")
    assert [(s.domain, s.source_ip, s.reporters, s.reports, s.messages, s.passed, s.failed, s.quarantined, s.rejected)
            for s in summary] == [
        ("example.org", "192.0.2.1", ("Outlook.com", "google.com"), 2, 8, 5, 3, 3, 0),
        ("example.org", "198.51.100.9", ("google.com",), 1, 2, 0, 2, 0, 2),
    ]
    assert (summary[0].first, summary[0].last) == (1000, 6000)
    assert {s.domain for s in await store.dmarc_report_summary()} == {"example.org", "example.net"}
    assert await store.dmarc_report_summary("nothing.example") == []


async def test_dmarc_evaluations_are_recorded_per_message(store: MailStore) -> None:
    seen = DmarcEvaluation(1000.0, "192.0.2.1", "Example.ORG", "bounce.example.org", "example.net", "fail", "reject",
                           policy_domain="example.org", policy="reject", spf="pass", spf_domain="bounce.example.org",
                           dkim=(DkimOutcome("example.org", "s1", "fail"),))
    await store.record_dmarc_evaluation(seen)
    await store.record_dmarc_evaluation(dataclasses.replace(seen, received=2000.0, dmarc="pass"))
    (stored, later) = await store.dmarc_evaluations()
    assert stored == dataclasses.replace(seen, header_from="example.org")
    assert [e.dmarc for e in await store.dmarc_evaluations(since=1500.0)] == ["pass"] and later.received == 2000.0


async def test_an_evaluation_is_made_from_the_check_results(store: MailStore) -> None:
    dmarc = DmarcResult("fail", "example.org", policy_domain="example.org", policy="reject", disposition="reject",
                        spf_aligned=False, dkim_aligned=False)
    spf = SpfResult("pass", "mailfrom", "bounce@mta.example.net", "mta.example.net")
    dkim = (DkimResult("fail", "example.org", "s1"), DkimResult("pass", "mta.example.net", "k"))
    made = DmarcEvaluation.of(source_ip="192.0.2.1", mail_from="bounce@mta.example.net", recipient="bob@example.com",
                              dmarc=dmarc, spf=spf, dkim=dkim, disposition="reject", received=5.0)
    await store.record_dmarc_evaluation(made)
    (stored,) = await store.dmarc_evaluations()
    assert stored == made
    assert (stored.header_from, stored.envelope_from, stored.envelope_to, stored.policy, stored.spf_domain) == (
        "example.org", "mta.example.net", "example.com", "reject", "mta.example.net")
    assert [(d.domain, d.result) for d in stored.dkim] == [("example.org", "fail"), ("mta.example.net", "pass")]


async def test_old_evaluations_are_pruned_as_new_ones_arrive(store: MailStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dmarc_ops, "PRUNE_EVERY", 2)  # prune at every second row instead of every 1024th
    old = DmarcEvaluation(time.time() - (dmarc_ops.KEEP_DAYS + 1) * 86400, "192.0.2.1", "example.org", "", "example.com",
                          "none", "none")
    await store.record_dmarc_evaluation(old)
    await store.record_dmarc_evaluation(dataclasses.replace(old, received=time.time()))
    assert [e.received > old.received for e in await store.dmarc_evaluations()] == [True]
