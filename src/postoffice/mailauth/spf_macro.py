"""SPF macros (RFC 7208 §7): parse a macro-string once, expand it per check.

    tokens = parse_macro_string("%{ir}.%{v}._spf.%{d2}")    # SpfSyntaxError if malformed
    expand(tokens, MacroValues(...))    # "1.2.0.192.in-addr._spf.example.com"

Parsing is separate from expansion so a record is checked whole before any of it is evaluated
(§4.6: a syntax error anywhere is a permerror) and so a cached record is not parsed again.
Expansion is pure: the one letter that needs DNS, ``p`` (§7.3, the validated name of the
client), is looked up by the evaluator beforehand and passed in `MacroValues.validated_name`.

Bounds for hostile input: an expansion longer than `MAX_EXPANSION` characters is refused
(`MacroTooLong`), so a record full of ``%{s}`` cannot make megabytes of text; the transformer's
digit count is capped, since Python refuses to convert very long digit strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from urllib.parse import quote

# RFC 7208 §7.1: c, r and t only make sense in explanation text (§7.3: they are not part of the
# check, so a domain-spec using them is a syntax error).
DOMAIN_LETTERS = frozenset("slodiphv")
EXPLANATION_LETTERS = DOMAIN_LETTERS | frozenset("crt")
DELIMITERS = frozenset(".-+,/_=")
MAX_EXPANSION = 8192


class SpfSyntaxError(ValueError):
    """A record, domain-spec or macro-string that does not follow RFC 7208's ABNF."""


class MacroTooLong(ValueError):
    """The expansion would exceed `MAX_EXPANSION` characters."""


@dataclass(frozen=True, slots=True)
class Macro:
    """One ``%{...}``: letter (lower case), digits (0 = all parts), reverse, delimiters."""

    letter: str
    keep: int
    reverse: bool
    delimiters: str
    url_escape: bool  # the letter was upper case (§7.3)


MacroToken = str | Macro  # a literal, or a macro to expand


@dataclass(frozen=True, slots=True)
class MacroValues:
    """What the letters stand for in one check_host() call (§7.3)."""

    sender: str  # s: local-part@domain of the identity checked
    domain: str  # d: the domain check_host() is evaluating now
    ip: IPv4Address | IPv6Address  # i, c, v
    helo: str  # h
    receiver: str = "unknown"  # r
    now: int = 0  # t
    validated_name: str = "unknown"  # p

    def value(self, letter: str) -> str:
        local, _, sender_domain = self.sender.rpartition("@")
        if letter == "s":
            return self.sender
        if letter == "l":
            return local
        if letter == "o":
            return sender_domain
        if letter == "d":
            return self.domain
        if letter == "i":
            return dotted_ip(self.ip)
        if letter == "c":
            return str(self.ip)
        if letter == "v":
            return "in-addr" if isinstance(self.ip, IPv4Address) else "ip6"
        if letter == "h":
            return self.helo
        if letter == "r":
            return self.receiver
        if letter == "t":
            return str(self.now)
        return self.validated_name  # "p"


def dotted_ip(ip: IPv4Address | IPv6Address) -> str:
    """%{i}: dotted quad, or for IPv6 32 dot-separated nibbles (§7.3, upper case as its examples)."""
    if isinstance(ip, IPv4Address):
        return str(ip)
    return ".".join(ip.exploded.replace(":", "").upper())


def parse_macro_string(text: str, *, explanation: bool = False) -> tuple[MacroToken, ...]:
    """The tokens of a macro-string (§7.1); explanation text also allows c, r, t and spaces."""
    allowed = EXPLANATION_LETTERS if explanation else DOMAIN_LETTERS
    tokens: list[MacroToken] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "%":
            if not ("\x21" <= ch <= "\x7e" or (explanation and ch == " ")):
                raise SpfSyntaxError(f"character {ch!r} is not allowed in {text!r}")
            literal.append(ch)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < n else ""
        if nxt in ("%", "_", "-"):
            literal.append({"%": "%", "_": " ", "-": "%20"}[nxt])
            i += 2
            continue
        if nxt != "{":
            raise SpfSyntaxError(f"'%' must be followed by '{{', '%', '_' or '-' in {text!r}")
        end = text.find("}", i + 2)
        if end < 0:
            raise SpfSyntaxError(f"unterminated macro in {text!r}")
        macro = _parse_macro(text[i + 2:end], allowed, text)
        if literal:
            tokens.append("".join(literal))
            literal = []
        tokens.append(macro)
        i = end + 1
    if literal:
        tokens.append("".join(literal))
    return tuple(tokens)


def _parse_macro(body: str, allowed: frozenset[str], text: str) -> Macro:
    # macro-expand = "%{" macro-letter transformers *delimiter "}"; transformers = *DIGIT ["r"]
    if not body or body[0].lower() not in allowed:
        letter = body[:1] or "nothing"
        raise SpfSyntaxError(f"macro letter {letter!r} is not allowed here in {text!r}")
    letter, i = body[0], 1
    start = i
    while i < len(body) and body[i].isascii() and body[i].isdigit():
        i += 1
    digits = body[start:i]
    reverse = i < len(body) and body[i] in "rR"
    i += reverse
    delimiters = body[i:]
    if any(d not in DELIMITERS for d in delimiters):
        raise SpfSyntaxError(f"bad macro transformer or delimiter in {text!r}")
    keep = 0 if not digits else int(digits) if len(digits) <= 6 else 10**6
    if digits and keep == 0:
        raise SpfSyntaxError(f"a macro may not keep zero parts in {text!r}")  # §7.3
    return Macro(letter.lower(), keep, reverse, delimiters or ".", letter.isupper())


def expand(tokens: tuple[MacroToken, ...], values: MacroValues) -> str:
    """The macro-string with every macro replaced (§7.3), or `MacroTooLong`."""
    out: list[str] = []
    size = 0
    for token in tokens:
        piece = token if isinstance(token, str) else _expand_macro(token, values)
        size += len(piece)
        if size > MAX_EXPANSION:
            raise MacroTooLong(f"macro expansion longer than {MAX_EXPANSION} characters")
        out.append(piece)
    return "".join(out)


def _expand_macro(macro: Macro, values: MacroValues) -> str:
    value = values.value(macro.letter)
    if macro.keep or macro.reverse or macro.delimiters != ".":
        parts = _split(value, macro.delimiters)
        if macro.reverse:
            parts.reverse()
        if macro.keep:
            parts = parts[-macro.keep:]
        value = ".".join(parts)
    if macro.url_escape:
        # §7.3: upper-case letters are URL-escaped; everything but RFC 3986 unreserved is escaped.
        value = quote(value.encode("utf-8", "surrogateescape"), safe="-._~")
    return value


def _split(value: str, delimiters: str) -> list[str]:
    if delimiters == ".":
        return value.split(".")
    parts: list[str] = []
    current: list[str] = []
    for ch in value:
        if ch in delimiters:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts
