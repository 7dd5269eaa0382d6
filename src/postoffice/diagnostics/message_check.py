"""`postoffice check message FILE.eml`: is this email real? A verdict, genuine, suspicious or
forged, with every reason as a `Finding`.

    report = await check_message(resolver, raw, trusted_hosts=("mx.example.org",),
                                 local_domains=("example.org",))
    report.verdict    # "genuine" | "suspicious" | "forged"
    report.findings   # errors make it forged, warnings suspicious; oks say what passed

What is checked, with the modules that do it (nothing here speaks DNS or parses a record itself):
- DKIM (mailauth/dkim.py): every signature; ARC (mailauth/arc.py): the chain of a forwarder.
- SPF (mailauth/spf.py) for the client that the newest Received field written by a trusted
  host (ours, or --trusted-host) names: fields above it were added by us, fields below it by
  hosts anyone could impersonate. The envelope sender is the Return-Path our delivery recorded.
- DMARC (mailauth/dmarc.py): alignment of SPF and DKIM with the From domain, and its policy.
- Impersonation, from the headers and HTML alone: a display name holding an address or a
  brand whose domain is not the From domain, Reply-To in another domain, look-alike domains
  (diagnostics/lookalike.py) in From, Reply-To and link targets, and HTML links whose text
  shows another host than the one they lead to.

Severity, so the verdict is simply the worst finding: an error says the message is not from
whom it claims (DMARC fails under an enforcing policy, a brand's domain unauthenticated, a
look-alike or an impersonating display name); a warning says something a genuine sender rarely
does or that could not be verified. The message is parsed with the stdlib `email` package and
the message/ helpers; the only I/O is the resolver's.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from html.parser import HTMLParser
from ipaddress import ip_address
from typing import Any, Literal
from urllib.parse import urlsplit

from postoffice.diagnostics.checks import Finding, Severity
from postoffice.diagnostics.lookalike import BRANDS, brand_in_name, is_within, lookalike_of
from postoffice.mailauth.arc import check_arc
from postoffice.mailauth.dkim import verify_dkim
from postoffice.mailauth.dkim_canon import SplitMessage, to_crlf
from postoffice.mailauth.dmarc import author_domains, check_dmarc_author
from postoffice.mailauth.dns_types import Resolver
from postoffice.mailauth.results import ArcResult, DkimResult, DmarcResult, SpfResult
from postoffice.mailauth.spf import check_helo, check_mail_from
from postoffice.message.mime_address import parse_address_list
from postoffice.message.mime_headers import decode_words, parse_fields, split_header
from postoffice.smtp.headers import ReceivedHop, received_hops

__all__ = ["MessageReport", "Verdict", "check_message"]

Verdict = Literal["genuine", "suspicious", "forged"]
MAX_LINKS = 200  # links looked at per message: enough for any newsletter, bounded for hostile HTML
MAX_HTML = 2 * 1024 * 1024  # characters of HTML read per message
_HOST_TEXT = re.compile(
    r"^\s*(?:https?://)?(?P<host>(?:[\w-]+\.)+[^\W\d_]{2,}|xn--[\w-]+(?:\.[\w-]+)+)(?::\d+)?(?:[/?#]\S*)?\s*$",
    re.IGNORECASE)


@dataclass
class MessageReport:
    """The verdict about one message and what it rests on."""

    verdict: Verdict
    findings: list[Finding]
    from_address: str = ""
    from_domain: str = ""
    client_ip: str = ""  # the address SPF was checked for ("" when no trusted Received field)
    spf: SpfResult | None = None
    dkim: tuple[DkimResult, ...] = ()
    dmarc: DmarcResult | None = None
    arc: ArcResult | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "from": self.from_address, "from_domain": self.from_domain,
            "client_ip": self.client_ip,
            "spf": None if self.spf is None else {"result": self.spf.result, "domain": self.spf.domain,
                                                  "decided_by": self.spf.decided_by},
            "dkim": [{"result": d.result, "domain": d.domain, "selector": d.selector,
                      "problem": d.problem} for d in self.dkim],
            "dmarc": None if self.dmarc is None else {
                "result": self.dmarc.result, "policy": self.dmarc.policy,
                "spf_aligned": self.dmarc.spf_aligned, "dkim_aligned": self.dmarc.dkim_aligned},
            "arc": None if self.arc is None else {"result": self.arc.result,
                                                  "sealers": list(self.arc.sealers)},
        }


def verdict_of(findings: Sequence[Finding]) -> Verdict:
    if any(f.severity is Severity.ERROR for f in findings):
        return "forged"
    if any(f.severity is Severity.WARNING for f in findings):
        return "suspicious"
    return "genuine"


async def check_message(resolver: Resolver, raw: bytes, *, trusted_hosts: Sequence[str],
                        local_domains: Sequence[str] = ()) -> MessageReport:
    """The verdict about RAW (a whole message as saved, .eml), received by TRUSTED_HOSTS."""
    raw = to_crlf(raw)
    header_end, _ = split_header(raw, 0, len(raw))
    fields = parse_fields(raw[:header_end])
    findings: list[Finding] = []
    from_name, from_address, from_domain = _author(fields, findings)
    split = SplitMessage.parse(raw)

    client, spf = await _spf(resolver, raw, fields, trusted_hosts, from_address, findings)
    dkim = await verify_dkim(resolver, split)
    arc = await check_arc(resolver, split)
    author = author_domains(split)
    dmarc = await check_dmarc_author(resolver, author, spf, dkim) if author.domains else None
    _authentication(findings, from_domain, spf, dkim, dmarc, arc)
    if from_domain:
        _impersonation(findings, fields, from_name, from_domain, dmarc, local_domains)
    _links(findings, raw, local_domains)
    return MessageReport(verdict_of(findings), findings, from_address, from_domain, client, spf,
                         dkim, dmarc, arc)


# --- who the message says it is from ----------------------------------------------------------


def _first(fields: list[tuple[str, str, str]], name: str) -> str | None:
    return next((value for lower, _, value in fields if lower == name), None)


def _author(fields: list[tuple[str, str, str]], findings: list[Finding]) -> tuple[str, str, str]:
    """(display name, address, domain) of the first From address."""
    addresses = [a for a in parse_address_list(_first(fields, "from")) or () if a.host]
    if not addresses:
        findings.append(Finding("message-no-from", Severity.ERROR,
                                "The message has no From address, so nothing says who sent it.",
                                "Treat it as unverified: genuine senders always name themselves."))
        return "", "", ""
    first = addresses[0]
    name = decode_words(first.name or "")
    return name, f"{first.mailbox}@{first.host}", (first.host or "").lower().rstrip(".")


# --- SPF, DKIM, DMARC, ARC ----------------------------------------------------------------------


def _trusted_hop(hops: list[ReceivedHop], trusted: Sequence[str]) -> ReceivedHop | None:
    names = {t.lower().rstrip(".") for t in trusted}
    return next((hop for hop in hops if hop.by in names), None)


async def _spf(resolver: Resolver, raw: bytes, fields: list[tuple[str, str, str]],
               trusted: Sequence[str], from_address: str,
               findings: list[Finding]) -> tuple[str, SpfResult | None]:
    hop = _trusted_hop(received_hops(raw), trusted)
    try:
        client = ip_address(hop.ip if hop is not None else "")
    except ValueError:
        findings.append(Finding(
            "message-spf-unchecked", Severity.WARNING,
            f"No Received field written by {', '.join(trusted) or 'a trusted host'} names the"
            " client address, so SPF could not be checked.",
            "Give --trusted-host with the name in the 'by' part of the Received field your own"
            " mail server added (the topmost one, usually)."))
        return "", None
    assert hop is not None
    return_path = _first(fields, "return-path")
    sender = (return_path or "").strip().strip("<>").strip()
    if return_path is None:
        sender = from_address  # no envelope recorded: the From address is the best guess
    helo = hop.helo or "unknown"
    if sender:
        spf = await check_mail_from(resolver, client, sender, helo)
    else:
        spf = await check_helo(resolver, client, helo, identity="mailfrom")
    return str(client), spf


def _authentication(findings: list[Finding], from_domain: str, spf: SpfResult | None,
                    dkim: tuple[DkimResult, ...], dmarc: DmarcResult | None,
                    arc: ArcResult) -> None:
    aligned_dkim = [d for d in dkim if d.result == "pass" and from_domain
                    and _same_organisation(d.domain, from_domain)]
    for result in dkim:
        if result.result == "pass":
            findings.append(Finding("message-dkim", Severity.OK,
                                    f"DKIM signature of {result.domain} (selector {result.selector})"
                                    " verifies: the signed content is unchanged since it was sent.",
                                    subject=result.domain))
        else:
            # With DMARC passing (another signature, or SPF), a broken extra signature is only
            # worth knowing: mailing lists and forwarders break signatures honestly.
            findings.append(Finding(
                "message-dkim", Severity.OK if _dmarc_passes(dmarc) else Severity.WARNING,
                f"DKIM signature of {result.domain or 'an unknown domain'} gives {result.result}:"
                f" {result.problem or 'it does not verify'}.",
                "Altered in transit (a mailing list footer, a forwarder) or forged: do not trust"
                " what the signature would have vouched for.", result.domain))
    if not dkim and _dmarc_passes(dmarc):
        findings.append(Finding("message-dkim", Severity.OK,
                                "The message carries no DKIM signature; SPF authenticates it instead."))
    elif not dkim:
        findings.append(Finding("message-dkim", Severity.WARNING,
                                "The message carries no DKIM signature.",
                                "Almost every genuine sender signs its mail today; be careful with it."))
    if spf is not None:
        by = f" (decided by {spf.decided_by})" if spf.decided_by else ""
        text = f"SPF {spf.result} for {spf.sender} from the sending server{by}"
        if spf.result == "pass":
            findings.append(Finding("message-spf", Severity.OK, text + ".", subject=spf.domain))
        elif spf.result == "fail" and not aligned_dkim and not _arc_passes(arc):
            findings.append(Finding("message-spf", Severity.ERROR,
                                    text + f": {spf.domain} does not allow that server to send its mail.",
                                    f"Do not trust it: mail from {spf.domain} comes from other servers.",
                                    spf.domain))
        else:
            # A forwarded message fails SPF honestly: with DMARC passing through DKIM, it is fine.
            findings.append(Finding("message-spf", Severity.OK if _dmarc_passes(dmarc) else Severity.WARNING,
                                    text + (f": {spf.problem}." if spf.problem else "."),
                                    "A forwarded message can fail SPF honestly; rely on DKIM and DMARC.",
                                    spf.domain))
    if arc.result == "pass":
        findings.append(Finding("message-arc", Severity.OK,
                                f"ARC chain of {arc.instances} forwarder(s) verifies: sealed by"
                                f" {', '.join(arc.sealers)}.", subject=", ".join(arc.sealers)))
    elif arc.result == "fail":
        findings.append(Finding("message-arc", Severity.WARNING,
                                f"The ARC chain is broken: {arc.problem or 'it does not verify'}.",
                                "What the forwarders say about the original checks cannot be trusted."))
    if dmarc is not None:
        _dmarc_finding(findings, dmarc, arc)


def _dmarc_finding(findings: list[Finding], dmarc: DmarcResult, arc: ArcResult) -> None:
    domain = dmarc.from_domain or "the From domain"
    if dmarc.result == "pass":
        how = " and ".join(n for n, ok in (("DKIM", dmarc.dkim_aligned), ("SPF", dmarc.spf_aligned)) if ok)
        findings.append(Finding("message-dmarc", Severity.OK,
                                f"DMARC pass: {how} authenticate {domain}, the From domain.",
                                subject=domain))
    elif dmarc.result == "fail":
        policy = dmarc.policy or "none"
        enforcing = policy != "none" and not dmarc.testing
        if enforcing and not _arc_passes(arc):
            findings.append(Finding(
                "message-dmarc", Severity.ERROR,
                f"DMARC fail: neither DKIM nor SPF authenticates {domain}, whose owner asks to"
                f" {'reject' if policy == 'reject' else 'quarantine'} such mail (p={policy}).",
                f"Treat it as forged: it did not come from {domain}'s servers.", domain))
        else:
            why = " (a forwarder's ARC chain vouches for it)" if _arc_passes(arc) else ""
            findings.append(Finding(
                "message-dmarc", Severity.WARNING,
                f"DMARC fail: neither DKIM nor SPF authenticates {domain} (policy p={policy}){why}.",
                f"Be careful: {domain} does not ask receivers to refuse such mail, so forgeries get through.",
                domain))
    elif dmarc.result == "none":
        findings.append(Finding("message-dmarc", Severity.WARNING,
                                f"{domain} publishes no DMARC policy, so nothing ties its From"
                                " address to the servers that sent it.",
                                "Rely on the other findings: anyone can put this domain in From.",
                                domain))
    else:
        findings.append(Finding("message-dmarc", Severity.WARNING,
                                f"DMARC {dmarc.result} for {domain}: {dmarc.problem}.",
                                "Check again later (temperror) or treat it as unverified.", domain))


def _dmarc_passes(dmarc: DmarcResult | None) -> bool:
    return dmarc is not None and dmarc.result == "pass"


def _arc_passes(arc: ArcResult) -> bool:
    return arc.result == "pass"


def _same_organisation(a: str, b: str) -> bool:
    """Relaxed alignment without a public suffix list: one is the other or below it."""
    return is_within(a, b) or is_within(b, a)


# --- impersonation ------------------------------------------------------------------------------

_ADDRESS_IN_NAME = re.compile(r"[\w.+-]+@(?P<domain>[\w-]+(?:\.[\w-]+)+)")


def _impersonation(findings: list[Finding], fields: list[tuple[str, str, str]], name: str,
                   from_domain: str, dmarc: DmarcResult | None, local: Sequence[str]) -> None:
    shown = _ADDRESS_IN_NAME.search(name)
    if shown and not _same_organisation(shown["domain"].lower(), from_domain):
        findings.append(Finding(
            "message-display-name-address", Severity.ERROR,
            f"The sender's name shows the address {shown[0]}, but the message is from"
            f" {from_domain}: mail programs that show only the name hide the real sender.",
            f"Treat it as an impersonation: the real sender is @{from_domain}.", shown[0]))
    brand = brand_in_name(name)
    if brand is not None and not any(is_within(from_domain, d) for d in brand.domains):
        findings.append(Finding(
            "message-display-name-brand", Severity.ERROR,
            f"The sender's name says {brand.name}, but the message is from {from_domain}, which"
            f" is not {brand.name}'s ({', '.join(brand.domains[:3])}).",
            f"Treat it as an impersonation of {brand.name}: do not click its links or answer it.",
            from_domain))
    brand_domain = next((b for b in BRANDS for d in b.domains if is_within(from_domain, d)), None)
    if brand_domain is not None and not _dmarc_passes(dmarc):
        findings.append(Finding(
            "message-brand-unauthenticated", Severity.ERROR,
            f"The message claims to be from {from_domain} ({brand_domain.name}), which signs all its"
            " mail, but nothing authenticates it (no DMARC pass).",
            f"Treat it as forged: genuine {brand_domain.name} mail passes DMARC.", from_domain))
    _lookalike(findings, from_domain, "From", local)
    for address in parse_address_list(_first(fields, "reply-to")) or ():
        if not address.host:
            continue
        reply_domain = address.host.lower().rstrip(".")
        if not _same_organisation(reply_domain, from_domain):
            findings.append(Finding(
                "message-reply-to-other-domain", Severity.WARNING,
                f"Replies go to {address.mailbox}@{reply_domain}, another domain than the"
                f" sender's ({from_domain}).",
                "Check the address before answering: scams collect answers this way.",
                reply_domain))
        _lookalike(findings, reply_domain, "Reply-To", local)


def _lookalike(findings: list[Finding], domain: str, where: str, local: Sequence[str]) -> None:
    real = lookalike_of(domain, local)
    if real is None:
        return
    shown = domain
    if "xn--" in domain:
        try:
            shown = f"{domain.encode('ascii').decode('idna')} ({domain})"
        except UnicodeError:
            pass
    findings.append(Finding(
        "message-lookalike-domain", Severity.ERROR,
        f"The {where} domain {shown} imitates {real}.",
        f"Treat it as a phishing attempt: it is not {real}.", domain))


# --- links ---------------------------------------------------------------------------------------


class _Links(HTMLParser):
    """(href, text) of each <a> in an HTML document, up to MAX_LINKS."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a" and len(self.links) < MAX_LINKS:
            self._href = dict(attrs).get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None


def _html_parts(raw: bytes) -> list[str]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    texts: list[str] = []
    for part in message.walk():
        if part.get_content_type() != "text/html" or part.is_multipart():
            continue
        try:
            assert isinstance(part, EmailMessage)
            content = part.get_content()
        except (LookupError, ValueError, AssertionError):
            payload = part.get_payload(decode=True)
            content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        if isinstance(content, str):
            texts.append(content[:MAX_HTML])
    return texts


def _host(url: str) -> str:
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""
    return host.lower().rstrip(".")


def _links(findings: list[Finding], raw: bytes, local: Sequence[str]) -> None:
    seen: set[tuple[str, str]] = set()
    for html in _html_parts(raw):
        parser = _Links()
        try:
            parser.feed(html)
            parser.close()
        except (AssertionError, ValueError):  # HTMLParser on markup it cannot take
            pass
        for href, text in parser.links:
            if not href.lower().startswith(("http://", "https://")):
                continue
            target = _host(href)
            shown = _HOST_TEXT.match(text)
            if target and shown:
                shown_host = shown["host"].lower().rstrip(".")
                if not _same_organisation(target, shown_host) and (shown_host, target) not in seen:
                    seen.add((shown_host, target))
                    findings.append(Finding(
                        "message-link-mismatch", Severity.WARNING,
                        f"A link shows {shown_host} but leads to {target}.",
                        f"Do not follow it; type {shown_host} into the browser yourself if you need it.",
                        target))
            if target and ("lookalike", target) not in seen:
                seen.add(("lookalike", target))
                _lookalike(findings, target, "link", local)
