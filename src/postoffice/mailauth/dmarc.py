"""DMARC evaluation: DMARCbis (RFC 9989, which obsoletes RFC 7489 and RFC 9091).

Use::

    author = author_domains(message_bytes)               # the RFC5322.From domain(s); or of a
                                                         # dkim_canon.SplitMessage (read once)
    result = await check_dmarc_author(resolver, author, spf, dkim_results)
    # or, for one known domain: await check_dmarc(resolver, "example.com", spf, dkim_results)
    if result.result == "fail" and result.disposition == "reject": refuse with 550 5.7.1

Like mox's `dmarc.Verify`, this consumes the SPF and DKIM results already computed; it asks DNS
only for `_dmarc` TXT records (and, for `np=`, whether the From domain exists).

Implementation notes (section numbers and titles are RFC 9989's):

- Policy discovery (§4.10.1): the record at `_dmarc.<From domain>`; failing that, the record of
  the From domain's Organizational Domain, or of its Public Suffix Domain (`psd=y`). There is no
  public suffix list: the Organizational Domain comes from the DNS Tree Walk (§4.10): after the
  first query, a name of 8 or more labels jumps to its last 7 labels, then one label at a time to
  the top, so one walk costs at most 8 queries. The walk stops early only at a record with
  `psd=y` or `psd=n`. Each `_dmarc` name is asked at most once per evaluation (the walks for the
  From domain and for the authenticated identifiers share the answers).
- Organizational Domain ("Identifier Alignment Evaluation"): a `psd=n` record's domain; else one
  label below a `psd=y` record (not the start's own); else the record with the fewest labels;
  else the start itself.
- Records (§4.7): `v=DMARC1` must come first and exactly one record may be at a name (several
  count as none). Unknown tags are ignored and a bad value falls back to the tag's default. A
  missing or invalid `p=` (or an invalid `sp=`/`np=`) means `p=none` when `rua=` holds a valid
  URI, else the record cannot be applied: result `permerror` (RFC 8601's meaning).
- `t=y` asks for one step less than the policy (reject -> quarantine -> none). `pct=` is gone
  ("Removal of the pct Tag"); as the RFC explains, `pct=0` meant what `t=y` means, so a record
  with `pct=0` and no `t=` counts as testing, and other `pct` values are ignored.
- Alignment ("Identifier Alignment Explained"): SPF's MAIL FROM domain (with `spf=pass`; RFC 7208
  §2.4's postmaster@HELO when MAIL FROM was empty) and the `d=` of every `dkim=pass`, strict
  (equal) or relaxed (same Organizational Domain). A domain that does not end in the From
  domain's Organizational Domain cannot share it, so it costs no query; at most
  `MAX_IDENTIFIER_WALKS` other domains are walked.
- DNS trouble ("Apply Policy If Appropriate"): a temporary error finding the policy, or a
  temperror of SPF/DKIM for an identifier that could have aligned, when nothing else passes, is
  `temperror` (never a `fail`: a transient problem must not become a permanent refusal).
- `np=` (non-existent subdomains, "Domain Existence Test"): the From domain does not exist when
  asking for it gives NXDOMAIN (RFC 8020). That question is asked only when the message fails
  and `np=` would give another disposition than `sp=`/`p=`.
- Several author domains ("Denial of DMARC Processing Attacks"): a From field with addresses in
  several domains, or several From fields (invalid per RFC 5322 §3.6), are each evaluated and the
  strictest failing policy wins, up to `MAX_AUTHOR_DOMAINS`; more, or no usable domain at all,
  is a `permerror` with ``from_domain`` empty: the caller should refuse such a message (the RFC:
  "most such messages are abusive"); it is not ours to deliver it unjudged.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from postoffice.mailauth.dkim_canon import SplitMessage
from postoffice.mailauth.dns_types import DnsTemporaryError, Resolver
from postoffice.mailauth.results import DkimResult, DmarcResult, Policy, SpfResult
from postoffice.message.mime_address import MISSING_DOMAIN, parse_address_list
from postoffice.message.mime_headers import parse_fields, split_header

MAX_WALK_QUERIES = 8  # §4.10: the first query plus at most 7 more
MAX_IDENTIFIER_WALKS = 8  # distinct authenticated domains walked for relaxed alignment
MAX_CACHED_RECORD = 1024  # characters of a `_dmarc` record whose parse is remembered (1024 of them)
MAX_CACHED_FROM = 512  # characters of a From value whose domains are remembered (1024 of them)
MAX_AUTHOR_DOMAINS = 4  # the domains of a multi-valued From evaluated ("Denial of DMARC ...")
# One author domain's evaluation as a whole: the walks allow ~70 sequential `_dmarc` queries,
# each up to the resolver's timeout, so a slow zone could hold a session for minutes.
MAX_SECONDS = 20.0

_POLICIES: dict[str, Policy] = {"none": "none", "quarantine": "quarantine", "reject": "reject"}
_STRICTNESS = {"none": 0, "quarantine": 1, "reject": 2}
_ONE_STEP_LESS: dict[Policy, Policy] = {"reject": "quarantine", "quarantine": "none", "none": "none"}
_VERSION = re.compile(r"[vV][ \t]*=[ \t]*DMARC1[ \t]*")  # Formal Definition: "v" equals %s"DMARC1"
# The value starts with a non-space: with "[ \t]*" before it, a value that may start with spaces
# made a run of spaces ending in a bad character cost quadratic time (a minute for a 64 KB TXT).
_TAG = re.compile(r"([A-Za-z]+)[ \t]*=[ \t]*((?:[\x21-\x3a\x3c-\x7e][\x20-\x3a\x3c-\x7e]*)?)")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s,!]+(?:![0-9]+[kmgt]?)?")


# --- records ("Policy Record Format", "Formal Definition") ----------------------------------------


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    """One parsed `_dmarc` TXT record. Policies are None when absent or invalid."""

    p: Policy | None = None
    sp: Policy | None = None
    np: Policy | None = None
    adkim: Literal["r", "s"] = "r"
    aspf: Literal["r", "s"] = "r"
    psd: Literal["y", "n", "u"] = "u"
    testing: bool = False
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    fo: tuple[str, ...] = ("0",)
    invalid_policy: str = ""  # e.g. "p=rejct": the p/sp/np that could not be read

    def applicable(self) -> DmarcRecord | None:
        """The record as §4.10.1 applies it: as `p=none` when a policy tag is unusable but
        `rua=` holds a URI, None (cannot be applied) when it is unusable without one."""
        if not self.invalid_policy:
            return self
        if not self.rua:
            return None
        return DmarcRecord(p="none", adkim=self.adkim, aspf=self.aspf, psd=self.psd,
                           testing=self.testing, rua=self.rua, ruf=self.ruf, fo=self.fo,
                           invalid_policy=self.invalid_policy)


def parse_dmarc_record(text: str) -> DmarcRecord | None:
    """Parse a TXT record; None when it is not a DMARC record (no leading ``v=DMARC1``)."""
    parts = text.split(";")
    if not _VERSION.fullmatch(parts[0].strip(" \t")):
        return None
    tags: dict[str, str] = {}
    for part in parts[1:]:
        m = _TAG.fullmatch(part.strip(" \t"))
        if m is not None:
            tags.setdefault(m.group(1).lower(), m.group(2).strip(" \t"))  # first one wins
    bad = []
    policies: dict[str, Policy | None] = {}
    for name in ("p", "sp", "np"):
        value = tags.get(name)
        policies[name] = _POLICIES.get(value.lower()) if value is not None else None
        if value is not None and policies[name] is None:
            bad.append(f"{name}={value}")
    if "p" not in tags:
        bad.insert(0, "no p=")
    testing = tags.get("t", "").lower() == "y"
    if "t" not in tags or tags["t"].lower() not in ("y", "n"):
        testing = tags.get("pct", "").strip() == "0"  # t=y replaced pct=0 ("Removal of the pct Tag")
    return DmarcRecord(
        p=policies["p"], sp=policies["sp"], np=policies["np"],
        adkim="s" if tags.get("adkim", "").lower() == "s" else "r",
        aspf="s" if tags.get("aspf", "").lower() == "s" else "r",
        psd=_psd(tags.get("psd", "")), testing=testing,
        rua=_uris(tags.get("rua", "")), ruf=_uris(tags.get("ruf", "")),
        fo=tuple(f for f in tags.get("fo", "0").split(":") if f in ("0", "1", "d", "s")) or ("0",),
        invalid_policy=", ".join(bad),
    )


_cached_record = functools.lru_cache(maxsize=1024)(parse_dmarc_record)


def _parsed_record(text: str) -> DmarcRecord | None:
    """`parse_dmarc_record`, remembered by the record's text (records of a realistic size):
    the same few policies come with most mail, and DmarcRecord is immutable."""
    return _cached_record(text) if len(text) <= MAX_CACHED_RECORD else parse_dmarc_record(text)


def _psd(value: str) -> Literal["y", "n", "u"]:
    value = value.lower()
    return "y" if value == "y" else "n" if value == "n" else "u"


def _uris(value: str) -> tuple[str, ...]:
    """The syntactically valid URIs of a comma-separated list (invalid ones are dropped)."""
    return tuple(u for u in (x.strip(" \t") for x in value.split(",")) if _URI.fullmatch(u))


# --- the author domain ("Extract Author Domain", "Denial of DMARC Processing Attacks") ------------


@dataclass(frozen=True, slots=True)
class AuthorDomains:
    """The RFC5322.From domain(s) of a message, as A-labels, lower-case, first seen first.

    ``problem`` says what is irregular: no From field, several From fields, several domains, or
    addresses without a usable domain. Exactly one domain and no problem is the normal case.
    """

    domains: tuple[str, ...]
    problem: str = ""


def author_domains(message: bytes | SplitMessage) -> AuthorDomains:
    """The From domain(s) of a message (its header block, or the whole message, or the message
    already split for DKIM: the same values either way)."""
    if isinstance(message, SplitMessage):
        values = [_field_value(f.raw) for f in message.fields
                  if (f.name == b"from" or b"\0" in f.raw or b"\n" in f.name) and _is_from(f.raw)]
    else:
        header_end, _ = split_header(message, 0, len(message))
        values = [value for name, _, value in parse_fields(message[:header_end]) if name == "from"]
    if not values:
        return AuthorDomains((), "no From header field")
    problems = []
    if len(values) > 1:
        problems.append(f"{len(values)} From header fields (RFC 5322 allows one)")
    domains: list[str] = []
    unusable = 0
    for value in values:
        found, unusable_here = _value_domains(value)
        unusable += unusable_here
        domains += [d for d in found if d not in domains]
    if not domains:
        problems.append("From holds no address with a usable domain")
    elif len(domains) > 1:
        problems.append(f"From holds addresses in {len(domains)} domains")
    if unusable and domains:
        problems.append(f"{unusable} From address(es) without a usable domain ignored")
    return AuthorDomains(tuple(domains), "; ".join(problems))


def _is_from(raw: bytes) -> bool:
    """Whether a field of a SplitMessage is one that mime_headers.parse_fields calls "from": it
    unfolds and drops NULs before it reads names, so "Fr\\0om:" and "From\\r\\n :" are From
    fields to it, and so to the mail clients reading our IMAP ENVELOPE; DMARC must not miss them."""
    name, colon, _ = _unfolded(raw).replace(b"\0", b"").partition(b":")
    return bool(colon) and name.rstrip(b" \t").lower() == b"from"


def _field_value(raw: bytes) -> str:
    """A field's value as mime_headers.parse_fields gives it: unfolded, UTF-8 or else cp1252,
    without NULs, trimmed."""
    value = _unfolded(raw).partition(b":")[2]
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("cp1252", "replace")
    return text.replace("\0", "").strip(" \t\r\n")


def _unfolded(raw: bytes) -> bytes:
    """A field of a SplitMessage without its folds (RFC 5322 §2.2.3: the line break before
    white space goes, the white space stays); within a field every CRLF but the last is one."""
    return raw.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t")


def _value_domains(value: str) -> tuple[tuple[str, ...], int]:
    """The usable domains of one From value, first seen first, and the count of addresses
    without one. Remembered by the value (up to `MAX_CACHED_FROM` characters): the same senders
    write most mail, and parsing an address list costs more than the rest of the evaluation."""
    if len(value) <= MAX_CACHED_FROM:
        return _cached_value_domains(value)
    return _parse_value_domains(value)


def _parse_value_domains(value: str) -> tuple[tuple[str, ...], int]:
    domains: list[str] = []
    unusable = 0
    for address in parse_address_list(value) or ():
        if address.host is None:  # group markers
            continue
        domain = _a_label(address.host)
        if domain is None:
            unusable += 1
        elif domain not in domains:
            domains.append(domain)
    return tuple(domains), unusable


_cached_value_domains = functools.lru_cache(maxsize=1024)(_parse_value_domains)


def _a_label(host: str) -> str | None:
    """A domain as a lower-case A-label ("Extract Author Domain", RFC 5890), or None."""
    host = host.strip().rstrip(".").lower()
    if host == MISSING_DOMAIN.lower() or not host or host.startswith("["):
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return host if _valid_name(host) else None


_NOT_IN_NAMES = re.compile(r'[\s@;"\\]')  # \s is str.isspace(); one C scan, not a loop per character


def _valid_name(name: str) -> bool:
    labels = name.split(".")
    return len(name) <= 253 and all(0 < len(label) <= 63 for label in labels) and (
        _NOT_IN_NAMES.search(name) is None)


# --- evaluation (§4.10, "Mail Receiver Actions") --------------------------------------------------


async def check_dmarc(resolver: Resolver, from_domain: str, spf: SpfResult | None,
                      dkim: Sequence[DkimResult], *, time_limit: float = MAX_SECONDS) -> DmarcResult:
    """The DMARC result for one author domain, from the SPF and DKIM results of the message;
    ``temperror`` when finding it takes longer than ``time_limit`` seconds."""
    domain = _a_label(from_domain)
    if domain is None:
        return DmarcResult("permerror", from_domain, problem=f"{from_domain!r} is not a domain name")
    try:
        async with asyncio.timeout(time_limit):
            return await _Evaluation(resolver, domain).run(spf, dkim)
    except TimeoutError:
        return DmarcResult("temperror", domain, problem=f"the DMARC evaluation of {domain} took"
                                                        f" more than {time_limit:g} s")


async def check_dmarc_author(resolver: Resolver, author: AuthorDomains, spf: SpfResult | None,
                             dkim: Sequence[DkimResult]) -> DmarcResult:
    """DMARC for a message's author domain(s): see the module notes on several domains."""
    if not author.domains:
        return DmarcResult("permerror", "", problem=author.problem)
    if len(author.domains) > MAX_AUTHOR_DOMAINS:
        return DmarcResult("permerror", "", problem=f"{author.problem}; at most "
                           f"{MAX_AUTHOR_DOMAINS} are evaluated, so none is")
    results = [await check_dmarc(resolver, d, spf, dkim) for d in author.domains]
    chosen = min(results, key=_rank)
    if not author.problem:
        return chosen
    problem = f"{author.problem}; {chosen.problem}" if chosen.problem else author.problem
    return DmarcResult(chosen.result, chosen.from_domain, chosen.policy_domain, chosen.policy,
                       chosen.disposition, chosen.spf_aligned, chosen.dkim_aligned,
                       chosen.testing, problem)


def _rank(r: DmarcResult) -> tuple[int, int]:
    """Sort key: the strictest failing result first, then temperror, permerror, pass, none."""
    order = {"fail": 0, "temperror": 1, "permerror": 2, "pass": 3, "none": 4}[r.result]
    return order, -_STRICTNESS[r.disposition]


@dataclass(frozen=True, slots=True)
class _Walk:
    start: str
    found: tuple[tuple[str, DmarcRecord], ...]  # valid records from the start upwards

    def organizational_domain(self) -> str:
        """"Identifier Alignment Evaluation" steps 1-3, and the start when no record was found."""
        if not self.found:
            return self.start
        domain, record = self.found[-1]  # the walk stops at the first psd=y/n record
        if record.psd == "n":
            return domain
        if record.psd == "y" and domain != self.start:
            return _suffix(self.start, domain.count(".") + 2)
        return domain  # the fewest labels: the last one found


class _Evaluation:
    """One message's DMARC evaluation: memoises every `_dmarc` answer it gets."""

    def __init__(self, resolver: Resolver, author: str) -> None:
        self.resolver = resolver
        self.author = author
        self.records: dict[str, DmarcRecord | None] = {}
        self.walks: dict[str, _Walk] = {}

    async def record(self, domain: str) -> DmarcRecord | None:
        """The one valid DMARC record at `_dmarc.<domain>` (§4.10 steps 1-2), or None."""
        if domain in self.records:
            return self.records[domain]
        name = f"_dmarc.{domain}"
        found: DmarcRecord | None = None
        if len(name) <= 253:
            answer = await self.resolver.txt(name)  # DnsTemporaryError goes to the caller
            parsed = [r for r in (_parsed_record(t) for t in answer.records) if r is not None]
            found = parsed[0] if len(parsed) == 1 else None
        self.records[domain] = found
        return found

    async def walk(self, start: str) -> _Walk:
        """The DNS Tree Walk (§4.10) from `start`, at most 8 queries."""
        if start in self.walks:
            return self.walks[start]
        labels = start.count(".") + 1
        targets = [start] + [_suffix(start, n) for n in range(min(labels - 1, MAX_WALK_QUERIES - 1), 0, -1)]
        found: list[tuple[str, DmarcRecord]] = []
        for target in targets:
            record = await self.record(target)
            if record is not None:
                found.append((target, record))
                if record.psd in ("y", "n"):
                    break
        self.walks[start] = walk = _Walk(start, tuple(found))
        return walk

    async def policy_record(self) -> tuple[str, DmarcRecord] | None:
        """§4.10.1: the author's record, else its Organizational Domain's, else its PSD's."""
        own = await self.record(self.author)
        if own is not None:
            return self.author, own
        walk = await self.walk(self.author)
        organizational = walk.organizational_domain()
        record = self.records.get(organizational)  # only if the walk asked (8-query budget)
        if record is not None:
            return organizational, record
        psd = [(d, r) for d, r in walk.found if r.psd == "y"]
        return psd[0] if psd else None

    async def aligned(self, identifier: str, mode: str) -> bool:
        """strict is equality; relaxed is the same Organizational Domain."""
        identifier = identifier.lower().rstrip(".")
        if identifier == self.author:
            return True
        if mode == "s" or identifier.rsplit(".", 1)[-1] != self.author.rsplit(".", 1)[-1]:
            return False  # strict, or not even the same top-level label: no walk needed
        organizational = (await self.walk(self.author)).organizational_domain()
        if not _within(identifier, organizational):
            return False  # its Organizational Domain is a suffix of it: it cannot be this one
        return (await self.walk(identifier)).organizational_domain() == organizational

    async def could_align(self, identifier: str, mode: str) -> bool:
        """Whether an identifier that did not pass could have aligned (for temperror)."""
        identifier = identifier.lower().rstrip(".")
        if identifier == self.author or mode == "s":
            return identifier == self.author
        return _within(identifier, (await self.walk(self.author)).organizational_domain())

    async def run(self, spf: SpfResult | None, dkim: Sequence[DkimResult]) -> DmarcResult:
        author = self.author
        try:
            found = await self.policy_record()
        except DnsTemporaryError as e:
            return DmarcResult("temperror", author, problem=f"DMARC policy lookup: {e}")
        if found is None:
            return DmarcResult("none", author, problem="no DMARC policy published")
        policy_domain, raw = found
        record = raw.applicable()
        if record is None:
            return DmarcResult("permerror", author, policy_domain,
                               problem=f"DMARC record of {policy_domain} unusable: {raw.invalid_policy}")
        spf_domain = spf.domain.lower().rstrip(".") if spf is not None and spf.result == "pass" else ""
        dkim_domains = list(dict.fromkeys(r.domain.lower().rstrip(".") for r in dkim
                                          if r.result == "pass" and r.domain))
        dns_trouble = ""
        spf_aligned = dkim_aligned = False
        try:
            spf_aligned = bool(spf_domain) and await self.aligned(spf_domain, record.aspf)
            for d in dkim_domains[:MAX_IDENTIFIER_WALKS]:
                if await self.aligned(d, record.adkim):
                    dkim_aligned = True
                    break
            if not (spf_aligned or dkim_aligned):
                dns_trouble = await self._transient(spf, dkim, record)
        except DnsTemporaryError as e:
            dns_trouble = f"DMARC alignment lookup: {e}"
        subdomain = policy_domain != author
        policy: Policy = (record.sp or record.p or "none") if subdomain else (record.p or "none")
        base = DmarcResult("pass", author, policy_domain, policy, "none", spf_aligned,
                           dkim_aligned, record.testing)
        if spf_aligned or dkim_aligned:
            return base
        if dns_trouble:
            return replace(base, result="temperror", problem=dns_trouble)
        if subdomain and record.np is not None and record.np != policy:
            try:
                exists = (await self.resolver.a(author)).exists
            except DnsTemporaryError as e:
                return replace(base, result="temperror", problem=f"DMARC np= existence check: {e}")
            if not exists:
                policy = record.np
        return replace(base, result="fail", policy=policy,
                       disposition=_ONE_STEP_LESS[policy] if record.testing else policy,
                       problem=_failure_text(spf, dkim, author))

    async def _transient(self, spf: SpfResult | None, dkim: Sequence[DkimResult],
                         record: DmarcRecord) -> str:
        """The temperror of an identifier that could have aligned, if any."""
        if spf is not None and spf.result == "temperror" and spf.domain and \
                await self.could_align(spf.domain, record.aspf):
            return f"SPF temperror for {spf.domain}" + (f": {spf.problem}" if spf.problem else "")
        for r in dkim:
            if r.result == "temperror" and r.domain and await self.could_align(r.domain, record.adkim):
                return f"DKIM temperror for {r.domain}" + (f": {r.problem}" if r.problem else "")
        return ""


def _failure_text(spf: SpfResult | None, dkim: Sequence[DkimResult], author: str) -> str:
    """Why nothing aligned, in one line for the header comment and the log."""
    parts = []
    if spf is None:
        parts.append("no SPF result")
    elif spf.result == "pass":
        parts.append(f"SPF pass for {spf.domain} not aligned")
    else:
        parts.append(f"SPF {spf.result}")
    passing = [r.domain for r in dkim if r.result == "pass"]
    if passing:
        parts.append("DKIM pass for " + ", ".join(dict.fromkeys(passing)) + " not aligned")
    else:
        parts.append("no DKIM pass" if dkim else "no DKIM signature")
    return f"no aligned pass for {author}: " + "; ".join(parts)


def _suffix(domain: str, labels: int) -> str:
    """The last `labels` labels of a domain."""
    return ".".join(domain.split(".")[-labels:])


def _within(name: str, domain: str) -> bool:
    return name == domain or name.endswith("." + domain)
