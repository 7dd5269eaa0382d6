"""SPF: may this client IP send mail for this domain? (RFC 7208)

    result = await check_mail_from(resolver, ip, "alice@example.org", "mail.example.org")
    result.result         # "pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"
    received_spf_header(result, ip, "mail.example.org", "mx.example.net")   # §9.1 field body

`check_host` is the RFC's function (§4); `check_mail_from` and `check_helo` choose the identity
(§2.3, §2.4: an empty MAIL FROM is checked as postmaster@<HELO name>). Records are parsed whole
before evaluation (spf_record.py), macros expanded by spf_macro.py; this module walks the terms
and asks the injected `Resolver`, nothing else.

Implementation notes (each bound holds for any record, however hostile):
- At most 10 terms that query DNS (include, a, mx, ptr, exists, redirect) per check, all
  includes and redirects together; the 11th is a permerror (§4.6.4). Include loops and long
  include chains therefore end at the 11th step; the recursion depth is bounded by it too.
- At most 2 "void" lookups (NXDOMAIN or no records) for those terms; the 3rd is a permerror.
- An "mx" that would need the addresses of an 11th MX name is a permerror; a "ptr" (and %{p})
  looks at the first 10 names only (§4.6.4).
- Address lookups of MX and PTR names do not count against the limits above, but are bounded by
  them (10 per term); "a" has no limit on the records it compares (§4.6.4).
- Records over 8192 characters are a permerror (spf_record.MAX_RECORD_LENGTH; §3.4 asks for
  under 450), so parsing one never holds the event loop long; parsed records are cached.
- Macro expansions are capped (spf_macro.MAX_EXPANSION) and names longer than 253 characters lose
  labels on the left (§7.3); a name that still is not a valid DNS name cannot exist, and is
  treated as one without records (§4.3 for check_host itself: "none").
- Temporary DNS failures give temperror (§4.4, §5), except in "ptr" and %{p}, where a failed
  lookup only means no match (§5.5) and "unknown" (§7.3); the explanation (exp=) is best effort:
  any failure to get it leaves it empty (§6.2).
- IPv4-mapped IPv6 clients (::ffff:192.0.2.1) are checked as IPv4 (§5.6).
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Literal

from postoffice.mailauth.dns_types import DnsTemporaryError, IPAddress, Resolver
from postoffice.mailauth.results import SpfCode, SpfResult
from postoffice.mailauth.spf_macro import (
    MacroTooLong,
    MacroValues,
    SpfSyntaxError,
    expand,
    parse_macro_string,
)
from postoffice.mailauth.spf_record import (
    DNS_MECHANISMS,
    QUALIFIER_RESULTS,
    Directive,
    DomainSpec,
    SpfRecord,
    is_spf_record,
    parse_record,
)

MAX_DNS_TERMS = 10
MAX_VOID_LOOKUPS = 2
MAX_NAMES_PER_TERM = 10
# §4.6.4: the whole check_host() gets at most this long ("at least 20 seconds"), then temperror:
# the term limits allow ~100 sequential lookups, each up to the resolver's timeout.
MAX_SECONDS = 20.0
MAX_EXPLANATION = 400  # characters of exp= text kept (an SMTP reply line holds 512 octets)
# Parsed records are kept (the same few providers' records are asked for all day); only ones of
# a realistic size, so the cache stays within about 2 MB.
MAX_CACHED_RECORD = 2048
PARSED_RECORDS_CACHED = 1024
Identity = Literal["mailfrom", "helo"]

__all__ = ["check_helo", "check_host", "check_mail_from", "received_spf_header"]


async def check_mail_from(resolver: Resolver, ip: IPAddress | str, mail_from: str, helo: str, *,
                          receiver: str = "unknown", now: float | None = None) -> SpfResult:
    """SPF for the MAIL FROM identity (§2.4); ``<>`` is checked as postmaster@<helo> (§2.4)."""
    mail_from = mail_from.strip().removeprefix("<").removesuffix(">")
    if not mail_from:
        return await check_helo(resolver, ip, helo, receiver=receiver, now=now, identity="mailfrom")
    local, at, domain = mail_from.rpartition("@")
    if not at:
        local, domain = "postmaster", mail_from
    sender = f"{local or 'postmaster'}@{domain}"  # §4.3: no local-part -> "postmaster"
    return await check_host(resolver, ip, domain, sender, helo, receiver=receiver, now=now,
                            identity="mailfrom")


async def check_helo(resolver: Resolver, ip: IPAddress | str, helo: str, *,
                     receiver: str = "unknown", now: float | None = None,
                     identity: Identity = "helo") -> SpfResult:
    """SPF for the HELO identity (§2.3): check_host(ip, helo, postmaster@helo)."""
    return await check_host(resolver, ip, helo, f"postmaster@{helo}", helo, receiver=receiver,
                            now=now, identity=identity)


async def check_host(resolver: Resolver, ip: IPAddress | str, domain: str, sender: str,
                     helo: str, *, receiver: str = "unknown", now: float | None = None,
                     identity: Identity = "mailfrom", time_limit: float = MAX_SECONDS) -> SpfResult:
    """RFC 7208 §4: the SPF result for ``ip`` sending as ``sender`` (whose domain is ``domain``).

    ``receiver`` is the checking host's name (%{r}), ``now`` the Unix time (%{t}); both only
    appear in explanations. Never raises for anything DNS or the record contains; a check that
    takes longer than ``time_limit`` seconds is a temperror (§4.6.4).
    """
    client = ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(client, IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped  # §5.6: IPv4-mapped IPv6 is IPv4
    check = _Check(resolver, client, sender, helo, receiver,
                   int(time.time() if now is None else now))
    domain = _a_labels(domain.removesuffix("."))
    try:
        async with asyncio.timeout(time_limit):
            outcome = await check.evaluate(domain, in_include=False)
    except TimeoutError:
        outcome = _Outcome("temperror", problem=f"the SPF check of {domain} took more than "
                                                f"{time_limit:g} s ({check.dns_terms} DNS terms)")
    problem = outcome.problem
    if not problem and outcome.result not in ("pass", "none"):
        problem = _describe(outcome.result, sender, client)
    return SpfResult(outcome.result, identity, sender, domain.lower(),
                     outcome.mechanism, outcome.explanation, problem,
                     outcome.decided_by)


@functools.lru_cache(maxsize=PARSED_RECORDS_CACHED)
def _parse_cached(record: str) -> SpfRecord:
    return parse_record(record)


def _describe(result: SpfCode, sender: str, ip: IPAddress) -> str:
    if result == "neutral":
        return f"{ip} is neither permitted nor denied by the domain of {sender}"
    if result == "softfail":
        return f"the domain of {sender} discourages mail from {ip} (softfail)"
    return f"the domain of {sender} does not designate {ip} as a permitted sender"


def valid_domain(name: str) -> bool:
    """§4.3: a multi-label name of at most 253 characters, labels of 1 to 63 characters; not
    an address literal ("[192.0.2.1]") nor an address."""
    name = name.removesuffix(".")
    if not name or len(name) > 253 or "." not in name or name.startswith("["):
        return False
    if name.rpartition(".")[2].isdigit():
        return False  # a dotted quad: no top-level domain is all digits
    return _valid_query_name(name)


def _valid_query_name(name: str) -> bool:
    """A name that can be asked about: ASCII (A-labels), labels of 1 to 63 characters (one label
    is enough: the HELO name in %{h} may be anything). A backslash, which would be an escape in
    a name's text form, makes it a name that cannot be asked about."""
    return (bool(name) and name.isascii() and "\\" not in name
            and all(0 < len(label) <= 63 for label in name.split(".")))


def _a_labels(domain: str) -> str:
    """An internationalised domain (SMTPUTF8) in the A-label form DNS knows; unchanged if it is
    ASCII or cannot be converted (it is then not a valid domain: "none")."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def _truncate(name: str) -> str:
    """§7.3: drop labels on the left until the name fits in 253 characters."""
    name = name.removesuffix(".")
    while len(name) > 253 and "." in name:
        name = name.split(".", 1)[1]
    return name


class _Abort(Exception):
    """Ends the whole evaluation with permerror or temperror (limits, DNS failures)."""

    def __init__(self, result: SpfCode, problem: str) -> None:
        super().__init__(problem)
        self.result: SpfCode = result
        self.problem = problem


@dataclass(slots=True)
class _Outcome:
    result: SpfCode
    mechanism: str = ""
    explanation: str = ""
    problem: str = ""
    decided_by: str = ""  # the path to the deciding term through includes and redirects


@dataclass(slots=True)
class _Check:
    """The state of one check_host() call, shared by its includes and redirects."""

    resolver: Resolver
    ip: IPAddress
    sender: str
    helo: str
    receiver: str
    now: int
    dns_terms: int = 0
    void_lookups: int = 0
    validated_names: dict[str, str] = field(default_factory=dict)  # %{p} per domain
    confirmed: list[str] | None = None  # the client's confirmed PTR names, once looked up
    ptr_void: bool = False  # the PTR lookup found nothing
    included: str = ""  # the last include that passed: the path to its deciding term

    async def evaluate(self, domain: str, *, in_include: bool) -> _Outcome:
        try:
            return await self._check_domain(domain, in_include)
        except _Abort as abort:
            return _Outcome(abort.result, problem=abort.problem)

    async def _check_domain(self, domain: str, in_include: bool) -> _Outcome:
        # §4.3: a malformed domain, or one that does not exist, has no SPF policy.
        if not valid_domain(domain):
            return _Outcome("none", problem=f"{domain!r} is not a valid domain name")
        record, problem = await self._find_record(domain)
        if record is None:
            return _Outcome("none", problem=problem)
        try:
            parsed = _parse_cached(record) if len(record) <= MAX_CACHED_RECORD else parse_record(record)
        except SpfSyntaxError as error:
            raise _Abort("permerror", f"bad SPF record at {domain}: {error}") from None
        return await self._evaluate_record(parsed, domain, in_include)

    async def _find_record(self, domain: str) -> tuple[str | None, str]:
        try:
            answer = await self.resolver.txt(domain)
        except DnsTemporaryError as error:
            raise _Abort("temperror", str(error)) from None
        records = [r for r in answer.records if is_spf_record(r)]
        if len(records) > 1:  # §4.5
            raise _Abort("permerror", f"{domain} publishes {len(records)} SPF records")
        if not records:
            why = "does not exist" if not answer.exists else "has no SPF record"
            return None, f"{domain} {why}"
        return records[0], ""

    async def _evaluate_record(self, record: SpfRecord, domain: str, in_include: bool) -> _Outcome:
        for directive in record.directives:
            if await self._matches(directive, domain):
                result = QUALIFIER_RESULTS[directive.qualifier]
                outcome = _Outcome(result, directive.text)
                # Only on a match: nothing slows the walk through terms that do not match.
                term = directive.text if directive.qualifier == "+" else directive.qualifier + directive.text
                outcome.decided_by = f"{term} > {self.included}" if directive.name == "include" else term
                if result == "fail" and not in_include and record.explanation is not None:
                    outcome.explanation = await self._explanation(record.explanation, domain)
                return outcome
        if record.redirect is not None:
            # §6.1: the redirect target's result is ours, "none" becomes permerror; its exp=
            # (not ours) explains a fail.
            target = await self._target(record.redirect, domain, "redirect")
            self._count_dns_term("redirect")
            outcome = await self._check_domain(target, in_include)
            if outcome.result == "none":
                raise _Abort("permerror", f"redirect={target}: {outcome.problem}")
            outcome.decided_by = f"redirect={target} > {outcome.decided_by}"
            return outcome
        return _Outcome("neutral", "default", decided_by="default")

    def _count_dns_term(self, name: str) -> None:
        self.dns_terms += 1
        if self.dns_terms > MAX_DNS_TERMS:
            raise _Abort("permerror",
                          f"more than {MAX_DNS_TERMS} DNS-querying terms (at {name})")  # §4.6.4

    def _void(self, name: str) -> None:
        self.void_lookups += 1
        if self.void_lookups > MAX_VOID_LOOKUPS:
            raise _Abort("permerror",
                          f"more than {MAX_VOID_LOOKUPS} lookups found nothing (at {name})")

    async def _target(self, spec: DomainSpec | None, domain: str, term: str) -> str:
        if spec is None:
            return domain
        values = await self._macro_values(spec, domain)
        try:
            return _truncate(expand(spec.tokens, values))
        except MacroTooLong as error:
            raise _Abort("permerror", f"{term}: {error}") from None

    async def _macro_values(self, spec: DomainSpec, domain: str) -> MacroValues:
        name = await self._validated_name(domain) if spec.uses_validated_name else "unknown"
        return MacroValues(self.sender, domain, self.ip, self.helo, self.receiver, self.now, name)

    async def _matches(self, directive: Directive, domain: str) -> bool:
        name = directive.name
        if name == "all":
            return True
        if directive.version:  # ip4, ip6
            return directive.network_contains(self.ip.version, int(self.ip))
        if name in DNS_MECHANISMS:
            self._count_dns_term(directive.text)
        target = await self._target(directive.domain, domain, directive.text)
        if name == "include":
            return await self._include(target, directive.text)
        if not _valid_query_name(target):
            return False  # a name that cannot exist has no records (see the module notes)
        if name == "a":
            addresses = await self._addresses(target, directive.text, void=True)
            return self._in_any(addresses, directive)
        if name == "mx":
            return await self._mx(target, directive)
        if name == "ptr":
            return any(_within(n, target) for n in await self._confirmed_names(count_void=True))
        # exists: an A query whatever the client's address family (§5.7)
        try:
            answer = await self.resolver.a(target)
        except DnsTemporaryError as error:
            raise _Abort("temperror", str(error)) from None
        if not answer:
            self._void(directive.text)
        return bool(answer)

    async def _include(self, target: str, term: str) -> bool:
        # §5.2: pass matches; fail, softfail, neutral do not; errors propagate; none -> permerror.
        outcome = await self._check_domain(target, in_include=True)
        if outcome.result == "pass":
            self.included = outcome.decided_by
            return True
        if outcome.result in ("fail", "softfail", "neutral"):
            return False
        if outcome.result == "none":
            raise _Abort("permerror", f"{term}: {outcome.problem}")
        raise _Abort(outcome.result, outcome.problem)

    async def _addresses(self, name: str, term: str, *, void: bool) -> list[IPAddress]:
        lookup = self.resolver.a if isinstance(self.ip, IPv4Address) else self.resolver.aaaa
        try:
            answer = await lookup(name)
        except DnsTemporaryError as error:
            raise _Abort("temperror", str(error)) from None
        if void and not answer:
            self._void(term)
        return list(answer.records)

    def _in_any(self, addresses: list[IPAddress], directive: Directive) -> bool:
        prefix = directive.cidr4 if isinstance(self.ip, IPv4Address) else directive.cidr6
        bits = self.ip.max_prefixlen
        mask = ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1)
        mine = int(self.ip) & mask
        return any(int(a) & mask == mine for a in addresses)

    async def _mx(self, target: str, directive: Directive) -> bool:
        try:
            answer = await self.resolver.mx(target)
        except DnsTemporaryError as error:
            raise _Abort("temperror", str(error)) from None
        if not answer:
            self._void(directive.text)
            return False
        for position, mx in enumerate(sorted(answer.records, key=lambda m: m.preference)):
            if position == MAX_NAMES_PER_TERM:
                # §4.6.4: looking up an 11th MX name's addresses is a permerror (a match among
                # the first 10 never needs it).
                raise _Abort("permerror", f"{directive.text}: {target} has more than "
                                          f"{MAX_NAMES_PER_TERM} MX records")
            if not mx.host or not _valid_query_name(mx.host):
                continue  # "" is the null MX (RFC 7505)
            if self._in_any(await self._addresses(mx.host, directive.text, void=False), directive):
                return True
        return False

    async def _confirmed_names(self, *, count_void: bool) -> list[str]:
        """§5.5: the client's PTR names whose addresses include it (first 10 names only).

        Looked up once per check, however many "ptr" terms and %{p} macros ask for them."""
        if self.confirmed is None:
            self.confirmed, self.ptr_void = await self._confirm_names()
        if count_void and self.ptr_void:
            self._void("ptr")
        return self.confirmed

    async def _confirm_names(self) -> tuple[list[str], bool]:
        try:
            answer = await self.resolver.ptr(self.ip)
        except DnsTemporaryError:
            return [], False  # §5.5: a DNS error means no match
        confirmed: list[str] = []
        for name in answer.records[:MAX_NAMES_PER_TERM]:
            name = name.lower().removesuffix(".")
            if not _valid_query_name(name):
                continue
            try:
                if self.ip in await self._addresses(name, "ptr", void=False):
                    confirmed.append(name)
            except _Abort:
                continue  # §5.5: a failed address lookup skips that name
        return confirmed, not answer

    async def _validated_name(self, domain: str) -> str:
        """§7.3 %{p}: a confirmed name, preferring the domain itself, then its subdomains."""
        if domain not in self.validated_names:
            names = await self._confirmed_names(count_void=False)
            best = ([n for n in names if n == domain.lower()]
                    or [n for n in names if _within(n, domain)] or names or ["unknown"])
            self.validated_names[domain] = best[0]
        return self.validated_names[domain]

    async def _explanation(self, spec: DomainSpec, domain: str) -> str:
        """§6.2: the exp= text, or "" if anything about getting it fails."""
        try:
            target = await self._target(spec, domain, "exp")
            if not _valid_query_name(target):
                return ""
            answer = await self.resolver.txt(target)
            if len(answer) != 1 or not answer.records[0].isascii():
                return ""
            tokens = parse_macro_string(answer.records[0], explanation=True)
            values = await self._macro_values(DomainSpec(answer.records[0], tokens), domain)
            text = expand(tokens, values)
        except (_Abort, DnsTemporaryError, SpfSyntaxError, MacroTooLong):
            return ""
        # It is meant for an SMTP reply: printable ASCII on one line, of a length a reply can
        # carry, whatever the sender's local-part or HELO name put into it.
        return "".join(c if " " <= c <= "~" else "?" for c in text)[:MAX_EXPLANATION]


def _within(name: str, domain: str) -> bool:
    """``name`` is ``domain`` or below it (case-insensitive, trailing dots ignored)."""
    name, domain = name.lower().removesuffix("."), domain.lower().removesuffix(".")
    return name == domain or name.endswith("." + domain)


_COMMENTS = {
    "pass": "domain of {sender} designates {ip} as permitted sender",
    "fail": "domain of {sender} does not designate {ip} as permitted sender",
    "softfail": "domain of transitioning {sender} does not designate {ip} as permitted sender",
    "neutral": "{ip} is neither permitted nor denied by domain of {sender}",
    "none": "{domain} does not designate permitted sender hosts",
    "permerror": "permanent error in processing domain of {domain}: {problem}",
    "temperror": "temporary error in processing during lookup of {domain}: {problem}",
}


def received_spf_header(result: SpfResult, client_ip: IPAddress | str, helo: str,
                        receiver: str) -> str:
    """The Received-SPF field body for ``result`` (RFC 7208 §9.1), folded on one line.

    E.g. ``pass (mx.example.net: domain of a@example.org designates 192.0.2.1 as permitted
    sender) client-ip=192.0.2.1; envelope-from="a@example.org"; helo=mail.example.org;
    receiver=mx.example.net; mechanism="ip4:192.0.2.0/24"; identity=mailfrom``
    """
    ip = ip_address(client_ip) if isinstance(client_ip, str) else client_ip
    comment = _COMMENTS[result.result].format(sender=result.sender, ip=ip, domain=result.domain,
                                              problem=result.problem)
    pairs = [("client-ip", str(ip)),
             ("envelope-from", result.sender),
             ("helo", helo),
             ("receiver", receiver)]
    if result.mechanism and result.result not in ("none", "permerror", "temperror"):
        pairs.append(("mechanism", result.mechanism))
    if result.problem and result.result in ("permerror", "temperror"):
        pairs.append(("problem", result.problem))
    pairs.append(("identity", result.identity))
    fields = "; ".join(f"{key}={_header_value(value)}" for key, value in pairs)
    return f"{result.result} ({_comment(f'{receiver}: {comment}')}) {fields}"


_ATEXT = "[A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~]+"
_DOT_ATOM = re.compile(f"{_ATEXT}(?:\\.{_ATEXT})*")  # RFC 5322 §3.2.3, without CFWS


def _header_value(text: str) -> str:
    """A dot-atom when the value is one, else a quoted-string (RFC 5322 §3.2.3, §3.2.4)."""
    if _DOT_ATOM.fullmatch(text):
        return text
    clean = _printable_ascii(text)
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _printable_ascii(text: str) -> str:
    """``text`` with every character that is not printable ASCII as "?"; the usual all-clean text
    is checked by two C-level scans instead of a Python loop per character (every message)."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if c.isprintable() and c.isascii() else "?" for c in text)


def _comment(text: str) -> str:
    """Text safe inside a header comment: printable ASCII, parentheses and backslashes escaped
    (after the cut to 300 characters, so the cut cannot leave a backslash before the ")")."""
    clean = _printable_ascii(" ".join(text.split()))
    return clean[:300].replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
