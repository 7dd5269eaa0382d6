"""`postoffice check spf`: an SPF record explained term by term, its DNS lookups counted through
its includes, its mistakes found, and with an address the RFC 7208 result (RFC 7208).

    report = await explain_spf(resolver, "example.org")               # the domain's record, from DNS
    report = await explain_spf(resolver, "v=spf1 a mx ~all")           # a record as written
    report = await explain_spf(resolver, "example.org", ip="192.0.2.1", sender="a@example.org")
    report.terms      # one `Term` per term, what it means; included records' terms follow, deeper
    report.findings   # `Finding`s: spf-syntax, spf-multiple, spf-too-many-lookups, spf-plus-all...
    report.result     # with ip: check_host()'s SpfResult; `decided_by` names the deciding term

Records are parsed by mailauth/spf_record.py and evaluated by mailauth/spf.py: this module only
reads what they produce. The walk follows include: and redirect= to count what a receiver would
count (§4.6.4: 10 DNS-querying terms, 2 "void" lookups), reading at most `MAX_RECORDS` records, so
a loop or a huge include tree ends; a name built from macros depends on each message and is not
followed (said in the term's meaning).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import ip_address
from typing import Any

from postoffice.diagnostics.checks import Finding, Severity
from postoffice.mailauth.dns_types import (
    DnsAnswer,
    DnsTemporaryError,
    IPAddress,
    MxRecord,
    Resolver,
)
from postoffice.mailauth.results import SpfResult
from postoffice.mailauth.spf import MAX_DNS_TERMS, MAX_VOID_LOOKUPS, check_host
from postoffice.mailauth.spf_macro import Macro, SpfSyntaxError
from postoffice.mailauth.spf_record import (
    DNS_MECHANISMS,
    QUALIFIER_RESULTS,
    Directive,
    DomainSpec,
    SpfRecord,
    is_spf_record,
    parse_record,
)

__all__ = ["SpfReport", "Term", "explain_spf", "looks_like_record"]

MAX_RECORDS = 30  # records read in one walk: far beyond what a valid record can pull in
RECORD_DOMAIN = "spf-record.invalid"  # where a record given as text is "published" for --ip
RECOMMENDED_LENGTH = 450  # §3.4: larger records may not fit a DNS answer over UDP

# What the usual include: targets are, so "include:spf.protection.outlook.com" reads as a service.
PROVIDERS = {
    "spf.protection.outlook.com": "Microsoft 365 (Office 365, Exchange Online)",
    "_spf.google.com": "Google Workspace (Gmail)",
    "amazonses.com": "Amazon SES",
    "sendgrid.net": "SendGrid",
    "mailgun.org": "Mailgun",
    "servers.mcsv.net": "Mailchimp",
    "spf.mandrillapp.com": "Mailchimp Transactional (Mandrill)",
    "_spf.salesforce.com": "Salesforce",
    "zoho.com": "Zoho Mail",
    "zoho.eu": "Zoho Mail (EU)",
    "spf.messagingengine.com": "Fastmail",
    "_spf.mx.cloudflare.net": "Cloudflare Email Routing",
    "spf.brevo.com": "Brevo",
    "spf.sendinblue.com": "Brevo (Sendinblue)",
    "_spf.protonmail.ch": "Proton Mail",
    "mail.zendesk.com": "Zendesk",
}
# §7.3: what each macro letter stands for, for the meaning of terms that use them.
MACRO_LETTERS = {
    "s": "the sender's address", "l": "the sender's local-part", "o": "the sender's domain",
    "d": "the domain being checked", "i": "the client's IP address", "v": '"in-addr" or "ip6"',
    "h": "the HELO name", "p": "the client's verified host name (slow, do not use)",
    "c": "the client's IP address (readable form)", "r": "the receiving host", "t": "the time",
}
RESULT_WORDS = {
    "pass": "pass (it may send for the domain)",
    "fail": "fail (receivers should refuse the mail)",
    "softfail": "softfail (receivers accept the mail but treat it as suspicious)",
    "neutral": "neutral (no statement either way)",
}
ALL_MEANINGS = {
    "-": ("Any other server: fail. Receivers refuse (or, with DMARC, judge) mail from servers not"
          " listed before this term; the strict choice once every service that sends for the"
          " domain is listed."),
    "~": ("Any other server: softfail. Receivers accept the mail but mark it suspicious (often"
          " junk); the safe choice while you make sure every sending service is listed, and with"
          " DMARC as good as -all in practice."),
    "?": ("Any other server: neutral. It says nothing, as if the domain had no SPF for them:"
          " anyone may send in the domain's name without failing SPF."),
    "+": ("Any server on the Internet: pass. Everyone may send as this domain, so SPF protects"
          " nothing; never publish it."),
}


@dataclass(frozen=True)
class Term:
    """One term of a record: as written, in plain words, and the DNS lookups it costs (with
    everything an include or redirect pulls in) against the limit of 10."""

    text: str
    meaning: str
    lookups: int = 0
    record_of: str = ""  # the domain whose record holds it ("" for a record given as text)
    depth: int = 0  # 0: the record asked about; 1: a record it includes; ...

    def as_json(self) -> dict[str, Any]:
        return {"term": self.text, "meaning": self.meaning, "lookups": self.lookups,
                "record_of": self.record_of, "depth": self.depth}


@dataclass
class SpfReport:
    """Everything `check spf` found out about one record or domain."""

    subject: str  # the domain, or the record as given
    record: str = ""  # the record explained ("" when the domain has none usable)
    terms: list[Term] = field(default_factory=list)
    lookups: int = 0  # DNS-querying terms, includes and redirects followed
    void_lookups: int = 0
    findings: list[Finding] = field(default_factory=list)
    result: SpfResult | None = None
    ip: str = ""

    def as_json(self) -> dict[str, Any]:
        result = None
        if self.result is not None:
            result = {"ip": self.ip, "result": self.result.result, "domain": self.result.domain,
                      "sender": self.result.sender, "decided_by": self.result.decided_by,
                      "explanation": self.result.explanation, "problem": self.result.problem}
        return {"subject": self.subject, "record": self.record,
                "terms": [t.as_json() for t in self.terms], "lookups": self.lookups,
                "void_lookups": self.void_lookups, "result": result}


def looks_like_record(text: str) -> bool:
    """A record as written ("v=spf1 ...", or anything "v=..."), not a domain name."""
    return text.strip().lower().startswith("v=")


async def explain_spf(resolver: Resolver, subject: str, *, ip: str | None = None,
                      sender: str | None = None, helo: str | None = None) -> SpfReport:
    """Explain SUBJECT, a record ("v=spf1 ...") or a domain whose record is read from DNS; with
    ``ip``, also the result check_host() gives that address sending as ``sender`` (default
    postmaster@ the domain) with HELO ``helo`` (default the domain)."""
    subject = subject.strip()
    sender_domain = sender.rpartition("@")[2].lower().rstrip(".") if sender else ""
    walk = _Walk(resolver)
    if looks_like_record(subject):
        report = SpfReport(subject, record=subject)
        domain = sender_domain
        await walk.record(subject, domain or None, depth=0, chain=())
    else:
        domain = _a_labels(subject.lower().rstrip("."))
        report = SpfReport(domain)
        report.record = await walk.follow(domain, depth=0, chain=(), via="") or ""
    report.terms, report.lookups, report.void_lookups = walk.terms, walk.lookups, walk.voids
    report.findings = walk.findings + _limits(walk, report.record)
    if ip is not None:
        report.ip = ip
        report.result, finding = await _result(resolver, report, ip, domain, sender, helo)
        report.findings.append(finding)
    return report


def _limits(walk: _Walk, record: str) -> list[Finding]:
    if not record:
        return []
    found: list[Finding] = []
    if walk.lookups > MAX_DNS_TERMS:
        found.append(Finding(
            "spf-too-many-lookups", Severity.ERROR,
            f"The record needs {walk.lookups} DNS lookups with what it includes; receivers stop"
            f" at {MAX_DNS_TERMS} and give permerror, which DMARC treats as a failure.",
            "Replace include: terms of services you no longer use, or their a/mx terms, with"
            " ip4:/ip6: networks (they cost no lookup), or drop the ptr term."))
    if walk.voids > MAX_VOID_LOOKUPS:
        found.append(Finding(
            "spf-too-many-void-lookups", Severity.ERROR,
            f"{walk.voids} terms name domains without the records they ask for; receivers allow"
            f" {MAX_VOID_LOOKUPS} such lookups and then give permerror.",
            "Remove the a:, mx: and include: terms whose domains no longer exist."))
    if len(record) > RECOMMENDED_LENGTH:
        found.append(Finding(
            "spf-too-long", Severity.WARNING,
            f"The record is {len(record)} characters long; over {RECOMMENDED_LENGTH} it may not"
            " fit a DNS answer over UDP (RFC 7208 §3.4) and some receivers never see it.",
            "Move groups of networks to a subdomain's record and include: it."))
    if not any(f.severity is Severity.ERROR for f in walk.findings + found):
        found.append(Finding(
            "spf-ok", Severity.OK,
            f"The record is valid and needs {walk.lookups} of the {MAX_DNS_TERMS} DNS lookups"
            " allowed."))
    return found


async def _result(resolver: Resolver, report: SpfReport, ip: str, domain: str,
                  sender: str | None, helo: str | None) -> tuple[SpfResult, Finding]:
    try:
        client = ip_address(ip)
    except ValueError:
        raise ValueError(f"{ip!r} is not an IP address: give one like 192.0.2.1 or 2001:db8::1") from None
    if looks_like_record(report.subject):
        # The record is not in DNS: check_host() reads it from an overlay at the sender's
        # domain (so a and mx terms without a domain mean that domain), everything else from DNS.
        domain = domain or RECORD_DOMAIN
        resolver = _RecordAt(resolver, domain, report.subject)
    sender = sender or f"postmaster@{domain}"
    result = await check_host(resolver, client, domain, sender, helo or domain)
    return result, _result_finding(result, str(client), domain)


def _result_finding(result: SpfResult, ip: str, domain: str) -> Finding:
    by = f", decided by {result.decided_by}" if result.decided_by else ""
    allow = (f"If {ip} should send for {domain}, add ip4:{ip} (ip6: for IPv6) or the include: of"
             " its provider before the all term.")
    if result.result == "pass":
        return Finding("spf-result", Severity.OK, f"{ip} may send for {domain}: SPF pass{by}.",
                       subject=ip)
    if result.result == "fail":
        return Finding("spf-result", Severity.ERROR,
                       f"{ip} may not send for {domain}: SPF fail{by}; receivers refuse its mail.",
                       allow, ip)
    if result.result in ("softfail", "neutral"):
        return Finding("spf-result", Severity.WARNING,
                       f"{ip} is not listed for {domain}: SPF {result.result}{by}; receivers"
                       " may file its mail as junk.", allow, ip)
    if result.result == "none":
        return Finding("spf-result", Severity.WARNING,
                       f"SPF none for {domain}: {result.problem or 'no SPF record'}.",
                       f"Publish an SPF record for {domain}, such as v=spf1 mx ~all.", ip)
    if result.result == "temperror":
        return Finding("spf-result", Severity.WARNING,
                       f"SPF temperror for {ip}: {result.problem}.",
                       "Try again later; if it persists, check the domain's DNS servers.", ip)
    return Finding("spf-result", Severity.ERROR, f"SPF permerror for {ip}: {result.problem}.",
                   "Fix the errors in the record listed above.", ip)


class _RecordAt:
    """A `Resolver` that answers TXT at one name with a given record and asks DNS the rest."""

    def __init__(self, resolver: Resolver, name: str, record: str) -> None:
        self.resolver, self.name, self.record = resolver, name.lower().rstrip("."), record

    async def txt(self, name: str) -> DnsAnswer[str]:
        if name.lower().rstrip(".") == self.name:
            return DnsAnswer((self.record,))
        return await self.resolver.txt(name)

    async def a(self, name: str) -> DnsAnswer[Any]:
        return await self.resolver.a(name)

    async def aaaa(self, name: str) -> DnsAnswer[Any]:
        return await self.resolver.aaaa(name)

    async def mx(self, name: str) -> DnsAnswer[MxRecord]:
        return await self.resolver.mx(name)

    async def ptr(self, address: IPAddress) -> DnsAnswer[str]:
        return await self.resolver.ptr(address)


@dataclass
class _Walk:
    """Reads a record and those it includes or redirects to, in the order a receiver would."""

    resolver: Resolver
    terms: list[Term] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    lookups: int = 0
    voids: int = 0
    records_read: int = 0

    def _find(self, id_: str, severity: Severity, problem: str, fix: str, subject: str = "") -> None:
        if not any(f.id == id_ and f.subject == subject for f in self.findings):
            self.findings.append(Finding(id_, severity, problem, fix, subject))

    async def follow(self, domain: str, *, depth: int, chain: tuple[str, ...], via: str) -> str | None:
        """Read DOMAIN's record (reached through VIA, "" for the domain asked about) and walk it;
        the record, or None when there is no usable one."""
        if domain in chain:
            self._find("spf-include-loop", Severity.ERROR,
                       f"{via} leads back to {domain}, whose record is already being evaluated:"
                       " receivers give permerror.", f"Remove {via} from the record of {chain[-1]}.",
                       domain)
            return None
        if self.records_read >= MAX_RECORDS:
            return None  # the lookup limit was passed long ago, and said so
        self.records_read += 1
        try:
            answer = await self.resolver.txt(domain)
        except DnsTemporaryError as error:
            self._find("spf-dns-error", Severity.WARNING,
                       f"The SPF record of {domain} could not be read now: {error}.",
                       "Try again; if it persists, the domain's DNS servers need attention.", domain)
            return None
        records = [r for r in answer.records if is_spf_record(r)]
        if len(records) > 1:
            self._find("spf-multiple", Severity.ERROR,
                       f"{domain} publishes {len(records)} SPF records; receivers then give"
                       " permerror for all its mail (RFC 7208 §4.5).",
                       "Merge them into one TXT record starting v=spf1 and delete the others.",
                       domain)
            return None
        if not records:
            missing = "does not exist" if not answer.exists else "has no SPF record"
            if not via:
                self._find("spf-missing", Severity.ERROR,
                           f"{domain} {missing}: receivers cannot tell its mail from forgeries.",
                           f"Publish a TXT record at {domain}: v=spf1 mx ~all (add the"
                           " include: of every service that sends for it).", domain)
            else:
                self._find("spf-include-missing", Severity.ERROR,
                           f"{via} names {domain}, which {missing}: receivers give permerror.",
                           f"Correct or remove {via}.", domain)
            return None
        await self.record(records[0], domain, depth=depth, chain=(*chain, domain))
        return records[0]

    async def record(self, text: str, domain: str | None, *, depth: int,
                     chain: tuple[str, ...]) -> None:
        """Explain the terms of TEXT, the record of DOMAIN (None: given as text)."""
        where = f"The record of {domain}" if domain else "The record"
        try:
            if not is_spf_record(text):
                raise SpfSyntaxError("it does not start with v=spf1 (v=spf2.0 is Sender ID,"
                                     " which receivers ignore)")
            record = parse_record(text)
        except SpfSyntaxError as error:
            self._find("spf-syntax", Severity.ERROR,
                       f"{where} is invalid: {error}; receivers give permerror"
                       " for all its mail.",
                       "Correct the term; the form is v=spf1 followed by terms such as mx,"
                       " ip4:192.0.2.1, include:example.net and one all at the end.", domain or "")
            return
        seen_all = False
        for directive in record.directives:
            written = _written(directive)
            if seen_all:
                self._find("spf-after-all", Severity.WARNING,
                           f"{written} in {where.lower()} comes after the all term, so no"
                           " receiver ever reaches it.", "Move it before the all term.", domain or "")
            if directive.name == "all":
                seen_all = True
                if directive.qualifier == "+":
                    self._find("spf-plus-all", Severity.ERROR,
                               f"{where} ends in +all: every server on the Internet"
                               " may send as this domain" + (" (and through the include, as"
                               " the domains that include it)" if depth else "") + ".",
                               "Replace +all with ~all (or -all once every sender is listed).",
                               domain or "")
                elif directive.qualifier == "?" and depth == 0:
                    self._find("spf-neutral-all", Severity.WARNING,
                               f"{where} ends in ?all, which says nothing about"
                               " other servers: forgeries of the domain pass as neutral.",
                               "Use ~all, or -all once every sending service is listed.", domain or "")
            if directive.name == "ptr" and depth == 0:
                self._find("spf-ptr", Severity.WARNING,
                           f"{where} uses ptr, which RFC 7208 §5.5 says not to use:"
                           " it is slow, unreliable, and some receivers ignore it.",
                           "Replace it with ip4:/ip6: networks or a: names of your servers.", domain or "")
            await self._directive(directive, domain, depth, chain)
        if record.redirect is not None:
            await self._redirect(record, seen_all, domain, depth, chain)
        elif not seen_all and depth == 0:
            self._find("spf-no-all", Severity.WARNING,
                       f"{where} has no all term and no redirect=, so servers it"
                       " does not list get neutral, as with ?all.",
                       "End the record with ~all (or -all once every sender is listed).", domain or "")
        if record.explanation is not None:
            self.terms.append(Term(
                f"exp={record.explanation.text}",
                f"On a fail, receivers may quote the TXT record at {record.explanation.text} in"
                " their refusal; it costs no lookup against the limit." + _macros(record.explanation),
                record_of=domain or "", depth=depth))

    async def _directive(self, directive: Directive, domain: str | None, depth: int,
                         chain: tuple[str, ...]) -> None:
        before = self.lookups
        if directive.name in DNS_MECHANISMS:
            self.lookups += 1
        index = len(self.terms)
        self.terms.append(Term(_written(directive), _meaning(directive, domain),
                               record_of=domain or "", depth=depth))
        target = _fixed_target(directive.domain, domain)
        if target is not None and directive.name == "include":
            await self.follow(target, depth=depth + 1, chain=chain, via=_written(directive))
        elif target is not None and directive.name in ("a", "mx"):
            await self._void_check(directive, target)
        self.terms[index] = replace(self.terms[index], lookups=self.lookups - before)

    async def _redirect(self, record: SpfRecord, seen_all: bool, domain: str | None, depth: int,
                        chain: tuple[str, ...]) -> None:
        assert record.redirect is not None
        spec = record.redirect
        text = f"redirect={spec.text}"
        where = f"The record of {domain}" if domain else "The record"
        if seen_all:
            self.terms.append(Term(text, "Never used: an all term decides first (RFC 7208 §6.1).",
                                   record_of=domain or "", depth=depth))
            self._find("spf-redirect-ignored", Severity.WARNING,
                       f"{where} has both an all term and redirect=; receivers"
                       " ignore the redirect.", "Remove one of them.", domain or "")
            return
        before = self.lookups
        self.lookups += 1
        index = len(self.terms)
        self.terms.append(Term(text, f"If no term above matches, the SPF record of {spec.text}"
                                     " decides instead, as if it were this domain's (one policy"
                                     " shared by several domains)." + _macros(spec),
                               record_of=domain or "", depth=depth))
        target = _fixed_target(spec, domain)
        if target is not None:
            await self.follow(target, depth=depth + 1, chain=chain, via=text)
        self.terms[index] = replace(self.terms[index], lookups=self.lookups - before)

    async def _void_check(self, directive: Directive, target: str) -> None:
        """§4.6.4: a lookup that finds nothing is "void"; more than 2 make a permerror."""
        try:
            if directive.name == "mx":
                found: bool = bool(await self.resolver.mx(target))
            else:
                found = bool(await self.resolver.a(target)) or bool(await self.resolver.aaaa(target))
        except DnsTemporaryError:
            return
        if not found:
            self.voids += 1
            kind = "MX" if directive.name == "mx" else "A or AAAA"
            self._find("spf-void-lookup", Severity.WARNING,
                       f"{_written(directive)} finds no {kind} record at {target}, so it matches"
                       " nothing and counts as a void lookup (receivers allow 2).",
                       f"Remove {_written(directive)} or publish the records.", target)


def _a_labels(domain: str) -> str:
    """An internationalised domain as DNS knows it (RFC 5891); unchanged if it cannot be."""
    try:
        return domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return domain


def _written(directive: Directive) -> str:
    """The term with its qualifier when not the implicit "+" ("+all" always: it is the one to see)."""
    if directive.qualifier == "+" and directive.name != "all":
        return directive.text
    return directive.qualifier + directive.text


def _has_macros(spec: DomainSpec | None) -> bool:
    return spec is not None and any(isinstance(t, Macro) for t in spec.tokens)


def _fixed_target(spec: DomainSpec | None, domain: str | None) -> str | None:
    """The name a term asks about when it does not depend on the message, else None."""
    if spec is None:
        return domain
    if _has_macros(spec):
        return None
    return spec.text.lower().rstrip(".")


def _macros(spec: DomainSpec | None) -> str:
    if spec is None or not _has_macros(spec):
        return ""
    letters = sorted({t.letter for t in spec.tokens if isinstance(t, Macro)})
    used = "; ".join(f"%{{{letter}}} is {MACRO_LETTERS.get(letter, 'unknown')}" for letter in letters)
    return (f" The name holds macros, filled in for each message ({used}), so its lookups"
            " cannot be counted ahead.")


def _meaning(directive: Directive, domain: str | None) -> str:
    """DIRECTIVE in plain words (RFC 7208 §5)."""
    if directive.name == "all":
        return ALL_MEANINGS[directive.qualifier]
    outcome = RESULT_WORDS[QUALIFIER_RESULTS[directive.qualifier]]
    target = directive.domain.text if directive.domain else (domain or "this domain")
    macros = _macros(directive.domain)
    if directive.name in ("ip4", "ip6"):
        network = directive.network
        assert network is not None
        what = (f"the address {network.network_address}" if network.num_addresses == 1
                else f"one of the {network.num_addresses:,} addresses of {network}")
        return f"A server at {what}: {outcome}. Costs no DNS lookup."
    cidr = ""
    if directive.name in ("a", "mx") and (directive.cidr4 != 32 or directive.cidr6 != 128):
        cidr = f" (or in the /{directive.cidr4} IPv4, /{directive.cidr6} IPv6 network around it)"
    if directive.name == "a":
        return (f"A server at an address (A/AAAA record) of {target}{cidr}: {outcome}. It adds"
                f" only {target}'s own addresses (often its web server); it cannot break mail"
                " sent through Office 365, Google or any other service, since a term that does"
                " not match only passes on to the next term. One DNS lookup." + macros)
    if directive.name == "mx":
        return (f"A server at an address of the mail servers (MX records) of {target}{cidr}:"
                f" {outcome}. Right when the servers receiving mail for it also send it. One"
                " DNS lookup (at most 10 MX names)." + macros)
    if directive.name == "include":
        provider = PROVIDERS.get(target.lower().rstrip("."))
        service = f", the servers of {provider}" if provider else ""
        return (f"A server that the SPF record of {target} allows{service}: {outcome}. A fail,"
                f" softfail or neutral there does not decide here: the next term is tried. One"
                " DNS lookup plus those of that record." + macros)
    if directive.name == "ptr":
        return (f"A server whose reverse DNS name (confirmed forward) ends in {target}: {outcome}."
                " Deprecated (RFC 7208 §5.5): slow, and some receivers skip it. One DNS lookup."
                + macros)
    return (f"A server for which the name {target} has an A record: {outcome}. Used for rules per"
            " sender or per address. One DNS lookup." + macros)
