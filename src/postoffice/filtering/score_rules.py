"""The spam score's rules: each looks at one thing and says whether it fired, and why.

    for name, detail in find_rules(raw, context, metadata): ...
    # ("REPLYTO_FREEMAIL", "reply-to gmail.com, from example.org"), ("MISSING_DATE", ""), ...

Pure: the message and what was found about it before (mail authentication results, the
connect-time DNSBL listings, the link domains' blocklist listings: `ScoreContext`) in, rule
names out; weights are applied by score.py. docs/spam.md explains every rule. The groups:
- Authentication (RFC 7208 SPF, RFC 6376 DKIM, RFC 7489 DMARC, RFC 8617 ARC, RFC 8601 iprev),
  from the results port 25 already computed: nothing is checked twice.
- The sender's presentation: Reply-To elsewhere (a free-mail Reply-To is the classic of
  advance-fee and invoice fraud: the From looks right, the answer goes to the fraudster), a
  display name showing another address, or the name of one of our users, or a brand, and
  look-alike From domains (diagnostics/lookalike.py).
- Form: no Date or Message-ID (RFC 5322 §3.6 requires the first and asks for the second; bulk
  senders that skip them are mostly spam software), HTML without a plain-text version.
- Content: dangerous attachments (attachments.py), links to listed domains (uri_blocklists.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from postoffice.diagnostics.lookalike import brand_in_name, is_within, lookalike_of
from postoffice.filtering.attachments import dangerous_attachments, leaf_parts
from postoffice.filtering.dnsbl import Listing
from postoffice.filtering.mail_domains import DEFAULT_FREEMAIL, base_domain, same_base
from postoffice.filtering.uri_blocklists import UriListing
from postoffice.mailauth.results import AuthenticationResults
from postoffice.message.mime import BodyPart, MessageMetadata, parse_message
from postoffice.message.mime_address import parse_address_list
from postoffice.message.mime_headers import decode_words, parse_fields, split_header

__all__ = ["ScoreContext", "find_rules", "name_key"]

MAX_HEADER_BYTES = 256 * 1024  # header fields looked at; the rest of a huge header is ignored
_ADDRESS_IN_NAME = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_NAME_WORDS = re.compile(r"[^\W\d_]+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class ScoreContext:
    """What is known about a message besides its bytes."""

    results: AuthenticationResults | None = None
    dnsbl: tuple[Listing, ...] = ()  # connect-time listings of the client ([spam] blocklists)
    uri_listings: tuple[UriListing, ...] = ()
    local_domains: frozenset[str] = frozenset()
    local_names: Mapping[str, str] = field(default_factory=dict)  # name_key(...) -> our address
    freemail: frozenset[str] = frozenset(DEFAULT_FREEMAIL)


def name_key(text: str) -> str:
    """A person's name as compared: its words (letters only), case-folded, sorted, so that
    "Smith, John", "john.smith" and "JOHN SMITH" are one key; "" for fewer than two words
    (a single word such as "Support" or "Admin" is far too common to mean impersonation)."""
    words = sorted(w.casefold() for w in _NAME_WORDS.findall(text) if len(w) >= 2)
    return " ".join(words) if len(words) >= 2 else ""


@dataclass(frozen=True, slots=True)
class _Header:
    from_name: str  # the first From address's display name, decoded
    from_address: str
    from_domain: str
    reply_to: tuple[str, ...]  # domains of Reply-To addresses
    has_date: bool
    has_message_id: bool
    from_fields: int  # RFC 5322 wants exactly one


def _header(raw: bytes) -> _Header:
    end, _ = split_header(raw, 0, min(len(raw), MAX_HEADER_BYTES))
    fields = parse_fields(raw[:end])
    first: dict[str, str] = {}
    from_fields = 0
    for name, _, value in fields:
        first.setdefault(name, value)
        from_fields += name == "from"
    name = address = domain = ""
    for item in parse_address_list(first.get("from")) or ():
        if item.mailbox is not None and item.host is not None:
            name = decode_words(item.name or "")
            address, domain = f"{item.mailbox}@{item.host}".lower(), item.host.lower().rstrip(".")
            break
    reply_to = tuple(item.host.lower().rstrip(".") for item in parse_address_list(first.get("reply-to")) or ()
                     if item.mailbox is not None and item.host)
    return _Header(name, address, domain, reply_to, "date" in first, "message-id" in first, from_fields)


def find_rules(raw: bytes, context: ScoreContext,
               metadata: MessageMetadata | None = None) -> list[tuple[str, str]]:
    """(rule name, detail) for every rule the message fires, in a fixed order."""
    header = _header(raw)
    body = (metadata or parse_message(raw)).body
    rules = list(_authentication(context, header.from_domain))
    if context.dnsbl:
        rules.append(("DNSBL_LISTED", ", ".join(f"{x.address} on {x.zone}" for x in context.dnsbl)))
    rules += _presentation(header, context)
    if unusable := _unusable_from(header):
        rules.append(("FROM_UNUSABLE", unusable))
    if not header.has_date:
        rules.append(("MISSING_DATE", ""))
    if not header.has_message_id:
        rules.append(("MISSING_MESSAGE_ID", ""))
    if _html_only(body):
        rules.append(("HTML_ONLY", ""))
    rules += dangerous_attachments(raw, body)
    if context.uri_listings:
        rules.append(("URIBL_LISTED", ", ".join(f"{x.domain} on {x.zone}" for x in context.uri_listings)))
    return rules


def _authentication(context: ScoreContext, from_domain: str) -> Iterator[tuple[str, str]]:
    results = context.results
    if results is None:
        return
    spf = results.spf
    if spf is not None and spf.result in ("fail", "softfail", "none", "permerror"):
        yield f"SPF_{spf.result.upper()}", spf.domain
    signatures = [d for d in results.dkim if d.result != "none"]
    passing = [d.domain for d in signatures if d.result == "pass"]
    if not signatures:
        yield "DKIM_NONE", ""
    elif not passing:
        yield "DKIM_FAIL", ", ".join(dict.fromkeys(d.domain or "?" for d in signatures))
    elif from_domain and (aligned := next((d for d in passing if d and same_base(d, from_domain)), None)):
        yield "DKIM_PASS", aligned
    dmarc = results.dmarc
    if dmarc is not None and dmarc.result == "fail":
        yield "DMARC_FAIL", f"{dmarc.from_domain}, policy {dmarc.policy or 'none'}"
    elif dmarc is not None and dmarc.result == "none":
        yield "DMARC_NONE", dmarc.from_domain
    if results.arc is not None and results.arc.result == "fail":
        yield "ARC_FAIL", results.arc.problem
    iprev = results.iprev
    if iprev is not None and iprev.result in ("fail", "permerror"):
        yield "IPREV_FAIL", iprev.address


def _unusable_from(header: _Header) -> str:
    """What is wrong with the author fields, or "": no From field or none of its addresses has
    a domain (DMARC then has no policy to apply), or several From fields (RFC 5322 allows one:
    a reader is shown one author while filters may judge another). Real mail software sends
    neither; senders escaping a DMARC policy do."""
    if header.from_fields == 0:
        return "no From field"
    if header.from_fields > 1:
        return f"{header.from_fields} From fields"
    return "" if header.from_domain else "no address with a domain in From"


def _presentation(header: _Header, context: ScoreContext) -> Iterator[tuple[str, str]]:
    domain = header.from_domain
    if not domain:
        return
    elsewhere = [d for d in header.reply_to if not same_base(d, domain)]
    if elsewhere:
        free = next((d for d in elsewhere if base_domain(d) in context.freemail or d in context.freemail), None)
        if free is not None:
            yield "REPLYTO_FREEMAIL", f"reply-to {free} is free mail, from {domain}"
        else:
            yield "REPLYTO_OTHER_DOMAIN", f"reply-to {elsewhere[0]}, from {domain}"
    name = header.from_name
    local = any(is_within(domain, d) for d in context.local_domains)
    if name:
        shown = [a.lower() for a in _ADDRESS_IN_NAME.findall(name)]
        other = next((a for a in shown if a != header.from_address), None)
        if other is not None:
            yield "FROM_NAME_OTHER_ADDRESS", f"name shows {other}, sent from {header.from_address}"
        key = name_key(name)
        if not local and key and key in context.local_names:
            yield "FROM_NAME_LOCAL_USER", f"name of {context.local_names[key]}, sent from {domain}"
        brand = brand_in_name(name)
        if brand is not None and not any(is_within(domain, d) for d in brand.domains):
            yield "FROM_NAME_BRAND", f"name says {brand.name}, sent from {domain}"
    if not local and (real := _lookalike(domain, context.local_domains)) is not None:
        yield "LOOKALIKE_DOMAIN", f"{domain} looks like {real}"


@functools.lru_cache(maxsize=4096)
def _lookalike(domain: str, local_domains: frozenset[str]) -> str | None:
    """lookalike_of, remembered: it compares with some sixty domains, and most mail comes from
    domains that wrote before."""
    return lookalike_of(domain, sorted(local_domains))


def _html_only(body: BodyPart) -> bool:
    kinds = {leaf.part.subtype for leaf in leaf_parts(body)
             if not leaf.attachment and leaf.part.type == "text"}
    return "html" in kinds and "plain" not in kinds
