"""Sieve cost per message: compile (cold and cached) and run_script on a 30-rule user script.

    .venv/bin/python bench/sieve_run.py [--count 5000]

Prints one line; the issue 17 budget is 2 ms median per message for all of filtering (the
Sieve script and the spam score), so the run alone should stay well under 1 ms.
"""
from __future__ import annotations

import statistics
import sys
import time
from argparse import ArgumentParser

from postoffice.filtering.sieve import (
    SieveEnvironment,
    SieveMessage,
    compile_cached,
    compile_script,
    run_script,
)

RULES = [
    'if address :is "from" "boss@example.org" { fileinto "Boss"; stop; }',
    'if header :contains "list-id" "<dev.lists.example.net>" { fileinto "Lists/dev"; stop; }',
    'if header :contains "list-id" "<announce.example.net>" { fileinto "Lists/announce"; stop; }',
    'if address :domain :is "from" ["bank.example", "insurer.example"] { fileinto "Money"; }',
    'if header :matches "subject" "*[JIRA]*" { fileinto "Jira"; stop; }',
    'if header :contains "subject" ["invoice", "receipt", "order confirmation"] { fileinto "Receipts"; }',
    'if allof (header :contains "from" "noreply", header :contains "subject" "newsletter") { fileinto "News"; }',
    'if exists "x-github-reason" { fileinto "GitHub"; stop; }',
    'if size :over 10M { fileinto "Large"; }',
    'if envelope :detail "to" "shop" { fileinto "Shopping"; }',
    'if header :is "x-spam-flag" "YES" { fileinto "Junk"; stop; }',
    'if header :matches "subject" "Re: *" { addflag "reply"; }',
    'if address :localpart :is "to" "postmaster" { fileinto "Admin"; }',
    'if header :contains "precedence" ["bulk", "list", "junk"] { fileinto "Bulk"; }',
    'if not exists "date" { addflag "nodate"; }',
    'if header :value "ge" :comparator "i;ascii-numeric" "x-priority" "4" { fileinto "Low"; }',
    'if address :is "to" "ceo@example.com" { addflag "\\\\Flagged"; }',
    'if header :contains "subject" "urgent" { addflag "\\\\Flagged"; }',
    'if anyof (header :contains "from" "calendar", header :contains "content-type" "text/calendar") { fileinto "Calendar"; }',
    'if address :domain :matches "from" "*.gov.example" { fileinto "Government"; }',
    'if header :contains "x-mailer" "bulkmailer" { fileinto "Bulk"; }',
    'if header :matches "from" "*@*.example.biz" { fileinto "Junk"; stop; }',
    'if string :is "${1}" "never" { discard; }',
    'if header :contains "subject" "[ticket #" { fileinto "Support"; }',
    'if address :user "to" "me" { addflag "direct"; }',
    'if header :contains "auto-submitted" "auto-replied" { fileinto "Auto"; }',
    'if body :contains "unsubscribe" { addflag "has-unsubscribe"; }',
    'if header :is "x-original-to" "archive@example.com" { fileinto "Archive"; }',
    'if header :matches "subject" "*password*reset*" { fileinto "Security"; }',
    'if true { set "done" "yes"; }',
]
SCRIPT = ('require ["fileinto", "envelope", "imap4flags", "relational", "comparator-i;ascii-numeric",'
          ' "subaddress", "variables", "body"];\n' + "\n".join(RULES) + "\n")

MESSAGE = (
    b"Received: from mx.example.net (mx.example.net [192.0.2.1]) by mail.example.com; Sun, 6 Dec 2026 10:00:00 +0000\r\n"
    b"From: Carol Example <carol@example.net>\r\nTo: Me <me+work@example.com>\r\n"
    b"Cc: team@example.com\r\nSubject: Re: the quarterly numbers\r\nDate: Sun, 6 Dec 2026 09:59:00 +0000\r\n"
    b"Message-ID: <20261206.1@example.net>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + b"Here are the numbers we talked about.\r\n" * 100
)


def main() -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    started = time.perf_counter()
    script = compile_script(SCRIPT)
    compile_us = (time.perf_counter() - started) * 1e6
    compile_cached(SCRIPT)  # the first call compiles and stores
    started = time.perf_counter()
    for _ in range(100):
        compile_cached(SCRIPT)
    cached_us = (time.perf_counter() - started) * 1e6 / 100
    env = SieveEnvironment()
    samples = []
    for _ in range(args.count):
        message = SieveMessage(MESSAGE, "carol@example.net", "me+work@example.com")
        t0 = time.perf_counter()
        result = run_script(script, message, env)
        samples.append((time.perf_counter() - t0) * 1e6)
        assert not result.errors, result.errors
    median = statistics.median(samples)
    p95 = statistics.quantiles(samples, n=20)[-1]
    verdict = "PASS" if median < 1000 else "FAIL"
    print(f"sieve_run: {len(RULES)} rules, {len(MESSAGE)} B message, N={args.count} | run median "
          f"{median:.0f} us p95 {p95:.0f} us | compile {compile_us:.0f} us, cached {cached_us:.0f} us "
          f"| target run <1000 us median: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
