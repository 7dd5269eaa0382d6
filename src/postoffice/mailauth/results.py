"""Typed results of every check on an incoming message, and the Authentication-Results header.

Each evaluator (spf.py, dkim.py, dmarc.py, arc.py, iprev.py) returns one of these; the SMTP
service gathers them in `AuthenticationResults`, which renders the RFC 8601 header and feeds
DMARC, the spam score and the log line. ``problem`` is a short plain-language reason for any
result other than pass/none, for the header comment, the log and `postoffice explain`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

SpfCode = Literal["none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"]
DkimCode = Literal["none", "pass", "fail", "policy", "neutral", "temperror", "permerror"]
DmarcCode = Literal["none", "pass", "fail", "temperror", "permerror"]
ArcCode = Literal["none", "pass", "fail"]
IprevCode = Literal["pass", "fail", "temperror", "permerror"]
Policy = Literal["none", "quarantine", "reject"]


@dataclass(frozen=True, slots=True)
class SpfResult:
    """check_host() for one identity (RFC 7208 §2.3, §2.4)."""

    result: SpfCode
    identity: Literal["mailfrom", "helo"]
    sender: str  # the identity as checked: local@domain, or postmaster@helo-name
    domain: str  # the domain check_host() started at
    mechanism: str = ""  # the directive that matched, e.g. "ip4:192.0.2.0/24" ("default" if none)
    explanation: str = ""  # the expanded exp= text, for a fail
    problem: str = ""
    # The deciding term with its qualifier and the path to it through includes and redirects,
    # e.g. "include:_spf.example.net > ip4:192.0.2.0/24", "redirect=_spf.example.com > -all",
    # "~all"; "default" when no term matched (neutral); "" for none, permerror, temperror.
    decided_by: str = ""


@dataclass(frozen=True, slots=True)
class DkimResult:
    """One DKIM-Signature's verification (RFC 6376 §6.1, RFC 8601 §2.7.1)."""

    result: DkimCode
    domain: str = ""  # d=
    selector: str = ""  # s=
    algorithm: str = ""  # a=
    identity: str = ""  # i= (defaults to @d=)
    signature_prefix: str = ""  # the first characters of b=, to tell signatures apart
    body_length_limited: bool = False  # l= was present: content may have been appended
    testing: bool = False  # the key record says t=y
    problem: str = ""


@dataclass(frozen=True, slots=True)
class DmarcResult:
    """The DMARC verdict for the RFC5322.From domain (DMARCbis)."""

    result: DmarcCode
    from_domain: str
    policy_domain: str = ""  # where the record was found (the From domain or an organisational one)
    policy: Policy | None = None  # the p=/sp=/np= that applies; None without a record
    disposition: Policy = "none"  # what the policy asks of this message (before local overrides)
    spf_aligned: bool = False
    dkim_aligned: bool = False
    testing: bool = False  # t=y: the owner asks to apply one step less
    problem: str = ""


@dataclass(frozen=True, slots=True)
class ArcResult:
    """The ARC chain validation (RFC 8617 §5.2)."""

    result: ArcCode
    instances: int = 0
    sealers: tuple[str, ...] = ()  # d= of each ARC-Seal, i=1 first
    oldest_pass: int = 0  # the oldest instance whose AMS still verifies (0: all of them)
    problem: str = ""


@dataclass(frozen=True, slots=True)
class IprevResult:
    """Forward-confirmed reverse DNS of the client address (RFC 8601 §3)."""

    result: IprevCode
    address: str
    name: str = ""  # the confirmed host name, for a pass
    problem: str = ""


@dataclass(frozen=True, slots=True)
class AuthenticationResults:
    """Everything found about one message; `header_value` renders it for RFC 8601."""

    authserv_id: str
    spf: SpfResult | None = None  # MAIL FROM (or HELO when MAIL FROM is <>)
    spf_helo: SpfResult | None = None
    dkim: tuple[DkimResult, ...] = ()
    dmarc: DmarcResult | None = None
    arc: ArcResult | None = None
    iprev: IprevResult | None = None
    extra: tuple[str, ...] = field(default=())  # further resinfo, already formatted

    def header_value(self) -> str:
        """The field body, one resinfo per line (folded), ``none`` when nothing was checked."""
        parts = [_resinfo(r) for r in self._resinfos()] + list(self.extra)
        if not parts:
            return f"{self.authserv_id}; none"
        return f"{self.authserv_id};\r\n\t" + ";\r\n\t".join(parts)

    def _resinfos(self) -> list[SpfResult | DkimResult | DmarcResult | ArcResult | IprevResult]:
        found: list[SpfResult | DkimResult | DmarcResult | ArcResult | IprevResult] = []
        found += [r for r in (self.iprev, self.spf, self.spf_helo) if r is not None]
        found += self.dkim
        found += [r for r in (self.dmarc, self.arc) if r is not None]
        return found


def _resinfo(r: SpfResult | DkimResult | DmarcResult | ArcResult | IprevResult) -> str:
    props: list[str] = []
    comment = r.problem
    if isinstance(r, SpfResult):
        method = "spf"
        props.append(f"smtp.{r.identity}={_value(r.sender if r.identity == 'mailfrom' else r.domain)}")
    elif isinstance(r, DkimResult):
        method = "dkim"
        flags = [f for f, on in (("l= body length limited", r.body_length_limited),
                                 ("testing key", r.testing)) if on]
        comment = "; ".join([*flags, comment] if comment else flags)
        props += [f"header.d={_value(r.domain)}"] if r.domain else []
        props += [f"header.i={_value(r.identity)}"] if r.identity else []
        props += [f"header.s={_value(r.selector)}"] if r.selector else []
        props += [f"header.a={_value(r.algorithm)}"] if r.algorithm else []
        props += [f"header.b={_value(r.signature_prefix)}"] if r.signature_prefix else []
    elif isinstance(r, DmarcResult):
        method = "dmarc"
        if r.policy is not None:
            detail = f"p={r.policy.upper()} dis={r.disposition.upper()}" + (" t=y" if r.testing else "")
            comment = f"{detail}; {comment}" if comment else detail
        props.append(f"header.from={_value(r.from_domain)}")
    elif isinstance(r, ArcResult):
        method = "arc"
        if r.instances:
            props.append(f"header.oldest-pass={r.oldest_pass}")
    else:
        method = "iprev"
        if r.name:
            comment = f"{r.name}; {comment}" if comment else r.name
        props.append(f"policy.iprev={r.address}")
    text = f"{method}={r.result}"
    if comment:
        text += f" ({_comment(comment)})"
    return " ".join([text, *props])


_SPECIALS = set('()<>@,;:\\"/[]?= \t')
_MAX_COMMENT = 200
# A bare value: printable ASCII but the specials; "@" allowed (RFC 8601 §2.2 takes a local-part
# "@" domain-name as a value too). One C-level match per value, not a Python step per character.
_TOKEN = re.compile("[" + re.escape("".join(c for c in map(chr, range(33, 127))
                                            if c not in _SPECIALS or c == "@")) + "]+")


def _value(text: str) -> str:
    """A property value: a bare token when it can be one, else a quoted string (RFC 8601 §2.2).
    Control characters (a CR or LF would end the header field) become "?"."""
    if _TOKEN.fullmatch(text):
        return text
    text = _printable(text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    """Text safe inside a header comment: one line, no control characters, parentheses and
    backslashes escaped. Cut before escaping, so no cut leaves a lone backslash that would
    escape the closing parenthesis."""
    text = _printable(" ".join(text.split()))[:_MAX_COMMENT]
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _printable(text: str) -> str:
    """``text`` with C0 controls, DEL and lone surrogates (undecodable bytes) replaced by "?"."""
    if text.isascii() and text.isprintable():  # the usual case, in two C-level scans
        return text
    return "".join("?" if c < " " or c == "\x7f" or "\ud800" <= c <= "\udfff" else c
                   for c in text)
