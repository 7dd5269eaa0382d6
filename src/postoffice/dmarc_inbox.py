"""Incoming DMARC aggregate reports (RFC 7489 §7.2): mail to `[dmarc] report_address`.

Such a mail is delivered like any other first (it stays in that mailbox whatever happens
next); only once it is durable are its attached reports read (mailauth/dmarc_reports.py, in a
thread: decompressing and parsing is work proportional to the input) and stored for
`postoffice dmarc reports`. A mail that holds no readable report is logged, never refused:
nothing the reporter sent is lost, and the admin can read it in the mailbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from postoffice.delivery import DeliveryReport
from postoffice.mailauth.dmarc_reports import ReportError, reports_in_message
from postoffice.services import Services

log = logging.getLogger(__name__)


async def read_incoming_reports(services: Services, recipients: Iterable[str], raw: bytes,
                                delivered: DeliveryReport) -> int:
    """Store the reports of a mail just delivered to the report address; how many were new."""
    address = services.config.dmarc.report_address
    if not address or not any(rc.lower() == address and delivered.accepted(rc) for rc in recipients):
        return 0
    try:
        reports = await asyncio.to_thread(reports_in_message, raw)
    except ReportError as error:
        log.info("mail to the DMARC report address %s holds no report we can read: %s", address, error)
        return 0
    except Exception:  # a parser bug must not turn a delivered message into an error reply
        log.exception("reading the DMARC reports of a mail to %s failed", address)
        return 0
    new = 0
    for report in reports:
        if await services.store.add_dmarc_report(report, time.time()):
            new += 1
            log.info("DMARC aggregate report %s from %s for %s: %d message(s) from %d source(s)",
                     report.report_id, report.org_name or report.email, report.policy.domain,
                     report.messages, len(report.rows))
        else:
            log.info("DMARC aggregate report %s from %s was received before; kept once",
                     report.report_id, report.org_name or report.email)
    return new
