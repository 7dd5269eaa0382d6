"""Mail authentication of what arrives on port 25 (issue 14): when each check runs, what it costs.

One `InboundChecks` per port-25 connection; the session calls it at three moments:

    checks = InboundChecks(services, conn.peer_ip)
    refusal = await checks.at_connect(allowed=False)     # iprev + DNS blocklists, concurrently
    mail = await checks.at_mail(helo, mail_from)         # SPF of MAIL FROM and of HELO
    judged = await checks.after_data(helo, mail_from, mail, data)   # DKIM, ARC, DMARC, verdict
    judged.headers + received + judged.message           # what gets stored, judged.verdict says where

Implementation notes (invariants):
- A DNSBL listing refuses the connection with 554 5.7.1 naming the list and its reason (RFC 5321
  §3.1 allows a 554 greeting); an allow-listed address is not looked up in the lists at all.
- SPF and DKIM never refuse by themselves; only DMARC does (`mailauth.verdict.decide` holds the
  rules, temporary DNS failures included: 451, never a silent accept of a forgery and never a
  5xx for a transient problem).
- The message is split into header fields and body once (dkim_canon.SplitMessage), and DKIM,
  ARC and DMARC all read that; for a big one the split runs in a thread, as do DKIM's and ARC's
  hashing (mailauth.dkim THREAD_THRESHOLD, mailauth.arc THREAD_BODY_BYTES), so it never holds the
  event loop; below that, a thread would cost more than the work.
- Cheap paths for the usual message, measured with bench/smtp_ingest.py (its "checks alone"
  line): no task where there is nothing to run concurrently, and no ARC validation for a
  message without ARC fields (its result is ``none`` without looking further).
- Every incoming Authentication-Results claiming our host name as authserv-id is removed before
  ours is added (RFC 8601 §5); DKIM verifies the message as it arrived, before that removal.
- `[smtp] trusted_networks`: a relay in front of us (a filtering appliance) is not judged itself:
  its Received field names the client it talked to, and SPF and iprev judge that client. No
  address is exempt by default, loopback included.
- A check that fails on a bug of ours is logged with its traceback and counts as ``permerror``,
  so a bug neither defers every message forever nor lets a session crash.
- Submission (it is our own users' mail, authenticated) and LMTP (a local MTA in front of us
  already judged the message) are not checked.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from postoffice.access_lists import client_address, in_networks
from postoffice.filtering.dnsbl import Listing, check_blocklists
from postoffice.filtering.score import SpamScore
from postoffice.mailauth.arc import arc_overrides_dmarc, check_arc, has_arc_fields
from postoffice.mailauth.dkim import THREAD_THRESHOLD, verify_dkim
from postoffice.mailauth.dkim_canon import SplitMessage
from postoffice.mailauth.dmarc import author_domains, check_dmarc_author
from postoffice.mailauth.dns_types import IPAddress
from postoffice.mailauth.iprev import check_iprev
from postoffice.mailauth.results import (
    ArcResult,
    AuthenticationResults,
    DkimResult,
    DmarcResult,
    IprevResult,
    SpfResult,
)
from postoffice.mailauth.spf import check_helo, check_mail_from, received_spf_header
from postoffice.mailauth.verdict import Verdict, decide
from postoffice.services import Services
from postoffice.smtp.headers import received_clients, remove_authentication_results
from postoffice.smtp.proto import replies as r

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MailChecks:
    """What was found at MAIL FROM, for one transaction."""

    spf: SpfResult | None = None
    spf_helo: SpfResult | None = None


@dataclass
class Judgement:
    """One message judged: the fields to prepend, the message to store, what to do with it."""

    verdict: Verdict
    results: AuthenticationResults
    headers: bytes  # Authentication-Results and Received-SPF, CRLF-terminated
    message: bytes  # the data without forged Authentication-Results of ours
    client_ip: str  # the client judged (behind a trusted relay: the relay's client)
    removed: int = 0  # forged Authentication-Results fields removed
    relayed: bool = False  # from a trusted relay: client_ip comes from its Received field
    dnsbl: tuple[Listing, ...] = ()  # the client's listings in [spam] blocklists (scored, not refused)
    spam: SpamScore | None = None  # set by the spam score stage when [spam] scored the message

    def log_fields(self) -> dict[str, str]:
        """The results and the action, for the transaction's log line (docs/logging.md)."""
        res = self.results
        fields = {
            "spf": res.spf.result if res.spf else "none",
            "dkim": _signatures(res.dkim),
            "dmarc": f"{res.dmarc.result}:{res.dmarc.from_domain}" if res.dmarc else "none",
            "arc": res.arc.result if res.arc else "none",
            "iprev": res.iprev.result if res.iprev else "none",
            "action": self.verdict.action,
        }
        if self.relayed:
            fields["client"] = self.client_ip or "unknown"
        if self.spam is not None:
            fields["spam"] = f"{self.spam.score:.1f}"
        return fields


@dataclass
class InboundChecks:
    """The checks of one port-25 connection (see the module docstring)."""

    services: Services
    peer_ip: str
    trusted_relay: bool = False
    iprev: IprevResult | None = None
    dnsbl: str = "none"  # for the log: "none", "skipped", "listed:zone", "scored:zone" ...
    # Listings in [spam] blocklists: they add to the spam score instead of refusing.
    scored_listings: tuple[Listing, ...] = ()
    _helo_spf: dict[tuple[IPAddress, str], SpfResult] = field(default_factory=dict)  # (client, HELO)
    _peer: IPAddress | None = None  # peer_ip parsed once per connection, not once per check

    def __post_init__(self) -> None:
        self._peer = client_address(self.peer_ip)
        self.trusted_relay = in_networks(self._peer, self.services.config.smtp.trusted_networks)

    @property
    def authserv_id(self) -> str:
        return self.services.config.server.hostname

    async def _guarded(self, what: str, check: Awaitable[T], fallback: T) -> T:
        try:
            return await check
        except Exception:
            log.exception("%s failed for a message from %s; counted as permerror", what, self.peer_ip)
            return fallback

    # --- connect ---------------------------------------------------------------------------

    async def at_connect(self, *, allowed: bool = False) -> r.Reply | None:
        """iprev and the DNS blocklists; a refusal for a listed client, else None. `allowed`:
        the allow list names the client, so no blocklist is asked."""
        if self.trusted_relay:
            self.dnsbl = "skipped"
            return None
        refusing = self.services.config.dns.blocklists
        spam = self.services.config.spam
        scoring = tuple(z for z in spam.blocklists if z not in refusing) if spam.enabled else ()
        zones = refusing + scoring
        iprev_check = self._iprev(self._peer)
        if not zones or allowed or self._peer is None:
            self.dnsbl = "allowed" if zones and allowed else "none"
            self.iprev = await iprev_check
            return None
        self.iprev, listings = await asyncio.gather(
            iprev_check,
            self._guarded("the DNS blocklist check",
                          check_blocklists(self.services.resolver, self._peer, zones), []))
        self.scored_listings = tuple(item for item in listings if item.zone in scoring)
        listings = [item for item in listings if item.zone not in scoring]
        if not listings:
            if self.scored_listings:
                self.dnsbl = "scored:" + ",".join(item.zone for item in self.scored_listings)
            return None
        listing = listings[0]
        self.dnsbl = "listed:" + ",".join(item.zone for item in listings)
        reason = f": {listing.reason}" if listing.reason else ""
        return r.Reply(554, "5.7.1", f"Service unavailable; client [{self.peer_ip}] is listed by"
                                     f" {listing.zone}{reason}")

    async def _iprev(self, ip: IPAddress | None) -> IprevResult | None:
        if ip is None:
            return None
        fallback = IprevResult("permerror", str(ip), problem="internal error")
        return await self._guarded("iprev", check_iprev(self.services.resolver, ip), fallback)

    # --- MAIL FROM -------------------------------------------------------------------------

    async def at_mail(self, helo: str, mail_from: str) -> MailChecks:
        """SPF of MAIL FROM (postmaster@HELO for the null sender) and of the HELO name."""
        if self.trusted_relay:
            return MailChecks()  # judged after the data, by the relay's Received field
        return await self._spf(self._peer, helo, mail_from)

    async def _spf(self, ip: IPAddress | None, helo: str, mail_from: str) -> MailChecks:
        if ip is None:
            return MailChecks()
        resolver = self.services.resolver
        sender = mail_from or f"postmaster@{helo}"
        fallback = SpfResult("permerror", "mailfrom", sender, sender.rpartition("@")[2], problem="internal error")
        mail_check = self._guarded(
            "SPF", check_mail_from(resolver, ip, mail_from, helo, receiver=self.authserv_id), fallback)
        helo_result = self._helo_spf.get((ip, helo))
        if helo_result is not None or not helo:
            return MailChecks(await mail_check, helo_result)
        helo_fallback = SpfResult("permerror", "helo", f"postmaster@{helo}", helo, problem="internal error")
        mail_result, helo_checked = await asyncio.gather(
            mail_check,
            self._guarded("SPF (HELO)", check_helo(resolver, ip, helo, receiver=self.authserv_id), helo_fallback))
        self._helo_spf[ip, helo] = helo_checked  # once per client and HELO name, not per message
        return MailChecks(mail_result, helo_checked)

    # --- after the data --------------------------------------------------------------------

    async def after_data(self, helo: str, mail_from: str, mail: MailChecks, data: bytes) -> Judgement:
        client_ip, client, iprev = self.peer_ip, self._peer, self.iprev
        if self.trusted_relay:
            client_ip, helo = self._client_behind_relays(data, helo)
            client = client_address(client_ip) if client_ip else None
            iprev = await self._iprev(client)
            mail = await self._spf(client, helo, mail_from)
        split = await asyncio.to_thread(SplitMessage.parse, data) if len(data) > THREAD_THRESHOLD \
            else SplitMessage.parse(data)
        if has_arc_fields(split.fields):  # both may wait for DNS: at once
            dkim, arc = await asyncio.gather(self._dkim(split), self._arc(split))
        else:  # what check_arc says of a message without ARC fields, without a task for it
            dkim, arc = await self._dkim(split), ArcResult("none")
        dmarc = await self._dmarc(split, mail.spf, dkim)
        results = AuthenticationResults(
            self.authserv_id, spf=mail.spf, spf_helo=mail.spf_helo, dkim=dkim, dmarc=dmarc, arc=arc,
            iprev=iprev)
        trusted = self.services.config.smtp.trusted_arc_sealers
        override = bool(dmarc and dmarc.result == "fail" and arc is not None and trusted
                        and arc_overrides_dmarc(arc, trusted))
        verdict = decide(results, arc_override=override)
        message, removed = remove_authentication_results(data, self.authserv_id)
        if removed:
            log.info("removed %d Authentication-Results field(s) claiming to be ours from a message"
                     " from %s", removed, self.peer_ip)
        headers = _field("Authentication-Results", results.header_value())
        if mail.spf is not None and client is not None:
            headers += _field("Received-SPF", received_spf_header(mail.spf, client, helo, self.authserv_id))
        return Judgement(verdict, results, headers, message, client_ip, removed, self.trusted_relay,
                         self.scored_listings)

    def _client_behind_relays(self, data: bytes, helo: str) -> tuple[str, str]:
        """The first client, newest Received first, that is not itself a trusted relay."""
        networks = self.services.config.smtp.trusted_networks
        for received_helo, address in received_clients(data):
            if not address:
                break
            if not in_networks(address, networks):
                return address, received_helo
        log.info("no client address in the Received fields of a message from trusted relay %s", self.peer_ip)
        return "", helo

    async def _dkim(self, data: SplitMessage) -> tuple[DkimResult, ...]:
        fallback = (DkimResult("permerror", problem="internal error"),)
        return await self._guarded("DKIM", verify_dkim(self.services.resolver, data), fallback)

    async def _arc(self, data: SplitMessage) -> ArcResult:
        return await self._guarded("ARC", check_arc(self.services.resolver, data),
                                   ArcResult("fail", problem="internal error"))

    async def _dmarc(self, data: SplitMessage, spf: SpfResult | None,
                     dkim: tuple[DkimResult, ...]) -> DmarcResult | None:
        author = author_domains(data)
        if not author.domains:
            # No From domain at all: not judged (verdict rule 0 would refuse it). Bounces and
            # machine mail without From still reach port 25, and refusing them is a policy change
            # of its own; several From fields or domains do get dmarc.py's permerror.
            return None
        fallback = DmarcResult("permerror", author.domains[0], problem="internal error")
        return await self._guarded("DMARC", check_dmarc_author(self.services.resolver, author, spf, dkim), fallback)


def _signatures(dkim: tuple[DkimResult, ...], shown: int = 5) -> str:
    """`pass:example.com,fail:list.example` for the log; a message with many signatures gets
    the first few and a count, so one hostile message cannot make a huge line."""
    words = [f"{d.result}:{d.domain}" if d.domain else d.result for d in dkim[:shown]]
    if len(dkim) > shown:
        words.append(f"+{len(dkim) - shown} more")
    return ",".join(words) or "none"


_WORD = re.compile(r'(?:"(?:\\.|[^"\\])*"?|[^ "]+)+')  # a run without spaces, quoted strings whole


def _field(name: str, value: str, width: int = 78) -> bytes:
    """A header field, folded at white space outside quoted strings so that no line (its tab
    included) passes `width` where it can be helped (RFC 5322 §2.2.3): clients and fetchers
    refold longer lines, which changes the message they keep."""
    lines: list[str] = []
    for part in value.split("\r\n\t"):
        line = "\t" if lines else f"{name}:"
        if len(line) + 1 + len(part) <= width:  # most lines: nothing to fold
            lines.append(line + part if line == "\t" else f"{line} {part}")
            continue
        # Lengths are counted and each line joined once: building the line word by word cost
        # more than the rest of rendering both header fields.
        words: list[str] = []
        size = len(line)
        for word in _WORD.findall(part):
            if words and size + 1 + len(word) > width:
                lines.append(_line(line, words))
                line, words, size = "\t", [word], 1 + len(word)
            else:
                size += len(word) + (0 if line == "\t" and not words else 1)
                words.append(word)
        lines.append(_line(line, words))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "replace")


def _line(start: str, words: list[str]) -> str:
    """A folded line: a continuation's tab and its words, or "Name:" SP and its words."""
    if not words:
        return start
    return start + ("" if start == "\t" else " ") + " ".join(words)
