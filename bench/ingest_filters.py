"""Filtering for bench/smtp_ingest.py's "filtering off" and "filtering on" targets (issue 17).

Off: `[spam] enabled = false` and no Sieve script. On: the spam score as configured by default
(no DNS lists: the bench's DNS answers nothing) and, for every user, the 30-rule Sieve script
below as the active script, stored through the store as `postoffice sieve put --activate` does.
The rules are the kind people write: sender and list filing, subaddress folders, flags by
subject words, size, a vacation window that is not open, header and body tests. About one
message in five of the workload matches a filing rule ("weekly" is in every subject: rule 30
files those whose number ends in 7 via a :matches capture), so both fileinto and the implicit
keep are exercised.
"""

from __future__ import annotations

import smtplib
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

from benchkit import DOMAIN, BenchError, set_toml_keys

SIEVE_RULES = 30

SIEVE_SCRIPT = r"""require ["fileinto", "mailbox", "imap4flags", "envelope", "subaddress", "relational",
         "comparator-i;ascii-numeric", "variables", "body", "date", "copy"];
# 1-5: senders and lists
if address :is "from" "boss@example.org" { addflag "\\Flagged"; }
if header :contains "list-id" "<announce.example.org>" { fileinto :create "Lists/Announce"; stop; }
if header :contains "list-id" "<dev.example.org>" { fileinto :create "Lists/Dev"; stop; }
if address :domain :is "from" "github.com" { fileinto :create "GitHub"; stop; }
if exists "list-unsubscribe" { addflag "$List"; }
# 6-10: subaddresses and envelope
if envelope :detail "to" "shop" { fileinto :create "Shopping"; stop; }
if envelope :detail "to" "bank" { fileinto :create "Bank"; stop; }
if envelope :localpart :is "from" "noreply" { addflag "$Robot"; }
if address :localpart :is "to" "postmaster" { fileinto :create "Postmaster"; stop; }
if envelope :domain :is "from" "calendar.example.org" { fileinto :create "Calendar"; stop; }
# 11-15: subjects
if header :contains "subject" ["invoice", "receipt"] { fileinto :create "Receipts"; stop; }
if header :matches "subject" "*[SPAM]*" { fileinto :create "Junk"; stop; }
if header :contains "subject" "urgent" { addflag "\\Flagged"; }
if header :is "subject" "" { addflag "$NoSubject"; }
if header :matches "subject" ["Re: *deadline*", "Fwd: *deadline*"] { addflag "$Deadline"; }
# 16-20: authentication results and size
if header :contains "authentication-results" "dmarc=fail" { addflag "$DmarcFail"; }
if size :over 5M { fileinto :create "Large"; stop; }
if size :under 100 { addflag "$Tiny"; }
if header :value "ge" :comparator "i;ascii-numeric" "x-priority" "4" { addflag "$LowPriority"; }
if not exists "date" { addflag "$NoDate"; }
# 21-25: not, anyof, allof
if not address :is "from" ["bench@remote.test", "boss@example.org"] { addflag "$Unknown"; }
if anyof (header :contains "x-mailer" "PHPMailer", header :contains "x-spam-flag" "YES") {
  fileinto :create "Suspicious"; stop;
}
if allof (address :domain :is "from" "remote.test", header :contains "subject" "quarterly") {
  fileinto :create "Reports"; stop;
}
if header :count "ge" :comparator "i;ascii-numeric" "received" "30" { discard; stop; }
if body :contains "unsubscribe from this newsletter" { fileinto :create "Newsletters"; stop; }
# 26-30: variables and dates
if header :matches "from" "*<*@*>*" { set "sender_domain" "${3}"; }
if string :is "${sender_domain}" "partner.example" { fileinto :create "Partners"; stop; }
if date :value "ge" :originalzone "date" "year" "2100" { addflag "$FromTheFuture"; }
if currentdate :value "lt" "date" "2000-01-01" { fileinto :create "Vacation-window"; stop; }
if header :matches "subject" "bench message *7 about*" { fileinto :create "Sevens"; stop; }
"""


def configure_filtering(data: Path, enabled: bool) -> None:
    """Turn filtering off (no score, no script) or on (the default score and the script above
    active for user1..user100) in the data directory `data` of a server not yet started."""
    set_toml_keys(data / "postoffice.toml", {"spam": {"enabled": enabled}})
    if not enabled:
        return
    rules = sum(1 for line in SIEVE_SCRIPT.splitlines() if line.startswith("if "))
    if rules != SIEVE_RULES:
        raise BenchError(f"the bench Sieve script has {rules} rules, not {SIEVE_RULES}")
    program = f"""
import asyncio, sys
from pathlib import Path
from postoffice.config import load_config
from postoffice.filtering.sieve import compile_script
from postoffice.services import open_services

async def main():
    text = sys.stdin.read()
    compile_script(text)  # a script the server would refuse must stop the bench here
    async with open_services(load_config(Path({str(data)!r}))) as s:
        for account in await s.store.list_accounts({DOMAIN!r}):
            await s.store.put_sieve_script(account.id, "bench", text)
            await s.store.activate_sieve_script(account.id, "bench")

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", program], input=SIEVE_SCRIPT, text=True, capture_output=True)
    if done.returncode != 0:
        raise BenchError(f"installing the bench Sieve script failed: {done.stderr.strip().splitlines()[-1:]}")


class Messages(Protocol):
    count: int
    recipients: list[tuple[int, ...]]

    def message(self, i: int) -> bytes: ...


def paired_latencies(work: Messages, ports: dict[str, int], sender: str) -> dict[str, float]:
    """Median seconds from MAIL FROM to the 250 after the data, per server, each message sent
    to every server in `ports` in turn on one connection each (the first server alternates).
    `work.message(i)` is the data as sent after 354, dot-stuffed, with the final dot."""
    clients = {name: smtplib.SMTP("127.0.0.1", port, local_hostname="client.remote.test", timeout=60,
                                  source_address=("127.0.0.2", 0)) for name, port in ports.items()}
    latencies: dict[str, list[float]] = {name: [] for name in ports}
    try:
        for client in clients.values():
            client.ehlo()
        order = list(clients)
        for i in range(work.count):
            recipients = [f"user{u}@{DOMAIN}" for u in work.recipients[i]]
            for name in (order if i % 2 == 0 else order[::-1]):
                client = clients[name]
                began = time.perf_counter()
                if client.mail(sender)[0] != 250 or any(client.rcpt(r)[0] != 250 for r in recipients):
                    raise BenchError(f"{name}: MAIL or RCPT refused")
                if client.docmd("DATA")[0] != 354:
                    raise BenchError(f"{name}: DATA refused")
                client.send(work.message(i))
                code, text = client.getreply()
                if code != 250:
                    raise BenchError(f"{name}: {code} {text!r} after the data")
                latencies[name].append(time.perf_counter() - began)
    finally:
        for client in clients.values():
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()
    return {name: statistics.median(values) for name, values in latencies.items()}
