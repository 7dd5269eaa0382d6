"""Links in a message's text, looked up in domain blocklists (URIBL, SURBL, Spamhaus DBL).

    domains = link_domains(raw, metadata.body, ignore={"example.org"})   # ["spammy.example", ...]
    listed = await listed_link_domains(resolver, domains, ("dbl.spamhaus.org",), timeout=2.0)
    # [UriListing(domain="spammy.example", zone="dbl.spamhaus.org", reason="...")]

What is looked at, and the bounds that keep one message's cost small whatever it holds:
- The text/plain and text/html parts that are not attachments, decoded (transfer encoding,
  charset), at most `MAX_PART_CHARS` of each and `MAX_TOTAL_CHARS` in all.
- Links written as http(s)://host... or www.host... (in HTML that includes href attributes); a
  bare "example.com" in running text is not a link. IP-address hosts are left out: domain lists
  list names.
- Each host (without "www.") is asked, and its registrable domain (mail_domains.base_domain)
  when that differs: lists list both (a spammer's whole domain, or one host of a hacked one).
  Links to our own domains are not asked; at most `MAX_DOMAINS` distinct names, the first ones
  in the message.
- Every (domain, list) question goes out at once through the project's resolver (its cache
  included); what has not answered within `timeout` seconds counts as not listed, so a slow list
  delays a message by at most that. A list that cannot be asked lists nothing (dnsbl.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass

from postoffice.filtering.attachments import leaf_parts
from postoffice.filtering.dnsbl import ask_domain_list
from postoffice.filtering.mail_domains import base_domain
from postoffice.mailauth.dns_types import Resolver
from postoffice.message.mime import BodyPart
from postoffice.message.mime_headers import decode_bytes
from postoffice.message.mime_text import charset_of, decode_transfer

MAX_PART_CHARS = 256 * 1024
MAX_TOTAL_CHARS = 1024 * 1024
MAX_DOMAINS = 20

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_LINK = re.compile(rf"(?:https?://(?:[^\s/@<>\"'?#]{{0,64}}@)?|(?<![\w.-])www\.)({_LABEL}(?:\.{_LABEL})+)",
                   re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class UriListing:
    domain: str
    zone: str
    reason: str = ""


def link_domains(raw: bytes, body: BodyPart, ignore: Iterable[str] = ()) -> list[str]:
    """The host names and registrable domains of the links in the message's text, first seen
    first."""
    skip = {base_domain(d) for d in ignore}
    found: dict[str, None] = {}
    budget = MAX_TOTAL_CHARS
    for leaf in leaf_parts(body):
        part = leaf.part
        if leaf.attachment or part.type != "text" or part.subtype not in ("plain", "html"):
            continue
        # Enough encoded bytes for MAX_PART_CHARS characters (base64 is 4/3 the size).
        encoded = raw[part.body_start:min(part.end, part.body_start + MAX_PART_CHARS * 2)]
        text = decode_bytes(decode_transfer(encoded, part.encoding), charset_of(part.params))
        text = text[:min(MAX_PART_CHARS, budget)]
        budget -= len(text)
        for match in _LINK.finditer(text):
            host = match.group(1).lower()
            if host.rpartition(".")[2].isdigit():
                continue  # an IP address
            base = base_domain(host)
            if base in skip:
                continue
            for name in (host.removeprefix("www."), base):
                found.setdefault(name, None)
            if len(found) >= MAX_DOMAINS:
                return list(found)[:MAX_DOMAINS]
        if budget <= 0:
            break
    return list(found)


async def listed_link_domains(resolver: Resolver, domains: Iterable[str], zones: Iterable[str],
                              timeout: float) -> list[UriListing]:
    """The listings of DOMAINS in ZONES, asked all at once; unanswered within TIMEOUT seconds
    counts as not listed. In the order of the domains, then of the zones."""
    questions = [(domain, zone) for domain in domains for zone in zones]
    if not questions:
        return []
    tasks = [asyncio.ensure_future(ask_domain_list(resolver, domain, zone)) for domain, zone in questions]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    listings: list[UriListing] = []
    for task in tasks:
        if task not in done or task.cancelled() or task.exception() is not None:
            continue
        answer = task.result()
        if answer.listing is not None:
            listings.append(UriListing(answer.subject, answer.zone, answer.listing.reason))
    return listings
