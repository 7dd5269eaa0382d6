"""The arguments of MAIL FROM and RCPT TO: paths and ESMTP parameters (RFC 5321 §4.1.2).

:func:`parse_mail_from` and :func:`parse_rcpt_to` take what follows the verb (``"FROM:<a@b>
SIZE=10"``) and return the address plus typed parameters, or raise :class:`ParseError` carrying
the reply to send.

Implementation notes:

- Paths must be in angle brackets. Spaces after the colon are tolerated (``MAIL FROM: <a@b>``,
  as most servers do); the address itself follows the RFC 5321 grammar: a Dot-string or
  Quoted-string local part, then a domain or an address literal (``[192.0.2.1]``,
  ``[IPv6:2001:db8::1]``, ``[tag:content]``).
- A quoted local part that needs no quotes is returned unquoted (``"john"@x`` -> ``john@x``,
  RFC 5321 §4.1.2 says they are the same mailbox); otherwise it is returned as written.
- ``%`` and ``!`` are ordinary atext in a local part: whether ``a%b@c`` relays is for the policy.
- Source routes (``<@relay1,@relay2:user@domain>``, §4.1.1.3 and appendix C) are accepted and
  dropped; ``parse_rcpt_to`` reports that there was one so the policy can refuse it.
- ``<Postmaster>`` without a domain is accepted by RCPT only (§4.5.1) and returned as
  ``"postmaster"``.
- Non-ASCII (UTF-8) in local parts and domains is allowed only when MAIL carried SMTPUTF8
  (RFC 6531 §3.3); otherwise 553 5.6.7 (§3.6.1 of RFC 6531 / RFC 6532).
- Parameter keywords are case-insensitive and may each appear once (RFC 5321 §4.1.2). Known:
  SIZE (RFC 1870), BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), AUTH (RFC 4954 §5),
  RET, ENVID, NOTIFY, ORCPT (RFC 3461). xtext values (``+2B`` for ``+``, RFC 3461 §4) are
  decoded. Anything else is 555 5.5.4.
- Lengths (RFC 5321 §4.5.3.1): local part 64 octets, domain 255, path 256.
- All regular expressions here run in linear time (no nested or overlapping repetitions), so
  hostile 4 KiB arguments cost nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from postoffice.smtp.proto.events import MailParams, RcptParams
from postoffice.smtp.proto.replies import PARAM_NOT_RECOGNIZED, Reply

__all__ = ["ParseError", "decode_xtext", "parse_mail_from", "parse_rcpt_to"]


class ParseError(Exception):
    """The arguments are malformed; ``reply`` says how, ready to send."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.to_bytes().decode().strip())
        self.reply = reply


MAIL_SYNTAX = Reply(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]")
RCPT_SYNTAX = Reply(501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]")
BAD_SENDER = Reply(553, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT = Reply(553, "5.1.3", "Bad recipient address syntax")
NON_ASCII_ADDRESS = Reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
BAD_PARAMETER = Reply(501, "5.5.4", "Malformed parameter")
DUPLICATE_PARAMETER = Reply(501, "5.5.4", "Duplicate parameter")

# --- RFC 5321 §4.1.2, widened by RFC 6531 §3.3 to UTF-8 (checked separately) ----------------
# Non-ASCII is U+00A0 and above: C1 controls (U+0080..U+009F) are never allowed.
_U = "\u00a0-\U0010ffff"
_ATEXT = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-{_U}]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_U}]|\\[\x20-\x7e])*"'
# Sub-domains are Let-dig [Ldh-str]; the "no hyphen at the end" rule is checked afterwards
# rather than with a backtracking pattern.
_SUB_DOMAIN = rf"[A-Za-z0-9{_U}][A-Za-z0-9\-{_U}]*"
_DOMAIN = rf"{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*"
_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]+\]"  # dcontent, §4.1.3
_PATH = re.compile(
    rf"<(?:(?P<route>@{_DOMAIN}(?:,@{_DOMAIN})*):)?"
    rf"(?P<local>{_DOT_STRING}|{_QUOTED})@(?P<domain>{_DOMAIN}|{_LITERAL})>"
)
_DOT_STRING_ONLY = re.compile(_DOT_STRING)
_QUOTED_PAIR = re.compile(r"\\(.)")
_GENERAL_LITERAL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?:[\x21-\x5a\x5e-\x7e]+")

# esmtp-keyword ["=" esmtp-value]; the value excludes "=", SP and controls (RFC 6531 adds UTF-8).
_PARAM = re.compile(
    rf"(?P<key>[A-Za-z0-9][A-Za-z0-9\-]*)(?:=(?P<value>[\x21-\x3c\x3e-\x7e{_U}]+))?"
)
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-Fa-f]{2})*")
_XTEXT_HEX = re.compile(rb"\+([0-9A-Fa-f]{2})")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+")
_SIZE = re.compile(r"[0-9]{1,20}")

MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256
MAX_ENVID = 100  # RFC 3461 §4.4
MAX_ORCPT = 500  # RFC 3461 §4.2


def parse_mail_from(args: str, *, smtputf8_allowed: bool = True,
                    requiretls_allowed: bool = False) -> tuple[str, MailParams]:
    """Parse ``FROM:<reverse-path> [params]``; the null sender ``<>`` gives ``""``.

    ``smtputf8_allowed`` says whether the server offers SMTPUTF8; without it the SMTPUTF8
    parameter is unrecognized (555). Likewise ``requiretls_allowed`` for REQUIRETLS, which is
    offered only under TLS (RFC 8689 §4.1).
    """
    rest = _strip_prefix(args, "FROM:", MAIL_SYNTAX)
    if rest.startswith("<>"):
        address, tail = "", rest[2:]
    else:
        address, _route, tail = _parse_path(rest, BAD_SENDER, MAIL_SYNTAX)
    raw = _split_params(tail, MAIL_SYNTAX)
    params = _mail_params(raw, smtputf8_allowed, requiretls_allowed)
    if not params.smtputf8 and not args.isascii():
        raise ParseError(NON_ASCII_ADDRESS if not address.isascii() else BAD_PARAMETER)
    return address, params


def parse_rcpt_to(args: str, *, smtputf8: bool = False) -> tuple[str, RcptParams, bool]:
    """Parse ``TO:<forward-path> [params]`` into (address, params, had a source route).

    ``smtputf8`` says whether this transaction's MAIL FROM carried SMTPUTF8 (RFC 6531 §3.4).
    """
    rest = _strip_prefix(args, "TO:", RCPT_SYNTAX)
    if rest[:12].lower() == "<postmaster>":
        address, route, tail = "postmaster", False, rest[12:]
    else:
        address, route, tail = _parse_path(rest, BAD_RECIPIENT, RCPT_SYNTAX)
    raw = _split_params(tail, RCPT_SYNTAX)
    params = _rcpt_params(raw)
    if not smtputf8 and not args.isascii():
        raise ParseError(NON_ASCII_ADDRESS if not address.isascii() else BAD_PARAMETER)
    return address, params, route


def decode_xtext(text: str) -> str:
    """RFC 3461 §4: ``+XX`` is the octet XX; other characters stand for themselves.

    The decoded octets must be UTF-8 (ASCII in practice). Raises :class:`ParseError`.
    """
    if not _XTEXT.fullmatch(text):
        raise ParseError(BAD_PARAMETER)
    if "+" not in text:
        return text
    raw = _XTEXT_HEX.sub(lambda m: bytes((int(m[1], 16),)), text.encode("ascii"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(BAD_PARAMETER) from None


# --- paths -------------------------------------------------------------------------------------


def _strip_prefix(args: str, prefix: str, syntax: Reply) -> str:
    if args[: len(prefix)].upper() != prefix:
        raise ParseError(syntax)
    return args[len(prefix) :].lstrip(" ")


def _parse_path(rest: str, bad_address: Reply, syntax: Reply) -> tuple[str, bool, str]:
    """(mailbox, had a source route, what follows the closing ">")."""
    if not rest.startswith("<"):
        raise ParseError(syntax)
    match = _PATH.match(rest)
    if match is None:
        raise ParseError(bad_address)
    local, domain = match["local"], match["domain"]
    if len(match[0].encode()) > MAX_PATH:  # brackets included (§4.5.3.1.3)
        raise ParseError(bad_address)
    if local.startswith('"'):
        local = _canonical_quoted(local)
    if len(local.encode()) > MAX_LOCAL_PART or not _valid_domain(domain):
        raise ParseError(bad_address)
    route = match["route"]
    if route is not None and not all(_valid_domain(hop[1:]) for hop in route.split(",")):
        raise ParseError(bad_address)
    return f"{local}@{domain}", route is not None, rest[match.end() :]


def _canonical_quoted(quoted: str) -> str:
    """``"john"`` -> ``john``; ``"john doe"`` stays quoted, with needless backslashes dropped."""
    content = _QUOTED_PAIR.sub(r"\1", quoted[1:-1])
    if _DOT_STRING_ONLY.fullmatch(content):
        return content
    return '"' + content.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _valid_domain(domain: str) -> bool:
    if domain.startswith("["):
        return _valid_literal(domain[1:-1])
    if len(domain.encode()) > MAX_DOMAIN:
        return False
    return not any(label.endswith("-") or len(label) > 63 for label in domain.split("."))


def _valid_literal(content: str) -> bool:
    """§4.1.3: IPv4-address-literal, "IPv6:" IPv6-addr, or General-address-literal."""
    try:
        if content[:5].upper() == "IPV6:":
            ipaddress.IPv6Address(content[5:])
            return True
        if content[:1].isdigit() and ":" not in content:
            ipaddress.IPv4Address(content)
            return True
    except ValueError:
        return False
    return _GENERAL_LITERAL.fullmatch(content) is not None


# --- parameters ----------------------------------------------------------------------------------


def _split_params(tail: str, syntax: Reply) -> dict[str, str | None]:
    """``" SIZE=10 BODY=8BITMIME"`` -> {"SIZE": "10", "BODY": "8BITMIME"}; keys upper-cased."""
    if not tail:
        return {}
    if not tail.startswith(" "):
        raise ParseError(syntax)
    params: dict[str, str | None] = {}
    for word in tail.split(" "):
        if not word:
            continue  # tolerate runs of spaces
        match = _PARAM.fullmatch(word)
        if match is None:
            raise ParseError(BAD_PARAMETER)
        key = match["key"].upper()
        if key in params:
            raise ParseError(DUPLICATE_PARAMETER)
        params[key] = match["value"]
    return params


def _required(value: str | None) -> str:
    if value is None:
        raise ParseError(BAD_PARAMETER)
    return value


def _one_of(value: str | None, allowed: frozenset[str]) -> str:
    upper = _required(value).upper()
    if upper not in allowed:
        raise ParseError(BAD_PARAMETER)
    return upper


def _size(value: str | None) -> int:
    text = _required(value)
    if not _SIZE.fullmatch(text):
        raise ParseError(BAD_PARAMETER)
    return int(text)


def _flag(value: str | None) -> bool:
    if value is not None:
        raise ParseError(BAD_PARAMETER)
    return True


def _envid(value: str | None) -> str:
    text = _required(value)
    if len(text) > MAX_ENVID:
        raise ParseError(BAD_PARAMETER)
    return decode_xtext(text)


def _notify(value: str | None) -> tuple[str, ...]:
    """RFC 3461 §4.1: NEVER, or a list of SUCCESS, FAILURE and DELAY, each once."""
    words = tuple(word.upper() for word in _required(value).split(","))
    if len(set(words)) != len(words) or not set(words) <= _NOTIFY_WORDS:
        raise ParseError(BAD_PARAMETER)
    if "NEVER" in words and len(words) > 1:
        raise ParseError(BAD_PARAMETER)
    return words


def _orcpt(value: str | None) -> str:
    """RFC 3461 §4.2: ``addr-type ";" xtext``, e.g. ``rfc822;user+2Btag@example.org``."""
    text = _required(value)
    addr_type, semicolon, address = text.partition(";")
    if not semicolon or not address or len(text) > MAX_ORCPT or not _ADDR_TYPE.fullmatch(addr_type):
        raise ParseError(BAD_PARAMETER)
    return f"{addr_type};{decode_xtext(address)}"


_BODY_TYPES = frozenset({"7BIT", "8BITMIME", "BINARYMIME"})
_RET_TYPES = frozenset({"FULL", "HDRS"})
_NOTIFY_WORDS = frozenset({"NEVER", "SUCCESS", "FAILURE", "DELAY"})

# keyword -> (MailParams field, value parser)
_MAIL_PARAMS: dict[str, tuple[str, Callable[[str | None], object]]] = {
    "SIZE": ("size", _size),
    "BODY": ("body", lambda v: _one_of(v, _BODY_TYPES)),
    "SMTPUTF8": ("smtputf8", _flag),
    "AUTH": ("auth", lambda v: decode_xtext(_required(v))),
    "RET": ("ret", lambda v: _one_of(v, _RET_TYPES)),
    "ENVID": ("envid", _envid),
    "REQUIRETLS": ("requiretls", _flag),  # RFC 8689 §4
}
_RCPT_PARAMS: dict[str, tuple[str, Callable[[str | None], object]]] = {
    "NOTIFY": ("notify", _notify),
    "ORCPT": ("orcpt", _orcpt),
}


def _mail_params(raw: dict[str, str | None], smtputf8_allowed: bool, requiretls_allowed: bool) -> MailParams:
    if not raw:
        return _NO_MAIL_PARAMS
    fields = _typed(raw, _MAIL_PARAMS)
    if ("smtputf8" in fields and not smtputf8_allowed) or ("requiretls" in fields and not requiretls_allowed):
        raise ParseError(PARAM_NOT_RECOGNIZED)
    return MailParams(**fields)  # type: ignore[arg-type]


def _rcpt_params(raw: dict[str, str | None]) -> RcptParams:
    if not raw:
        return _NO_RCPT_PARAMS
    return RcptParams(**_typed(raw, _RCPT_PARAMS))  # type: ignore[arg-type]


def _typed(
    raw: dict[str, str | None], known: dict[str, tuple[str, Callable[[str | None], object]]]
) -> dict[str, object]:
    fields: dict[str, object] = {}
    for key, value in raw.items():
        spec = known.get(key)
        if spec is None:
            raise ParseError(PARAM_NOT_RECOGNIZED)
        name, parse = spec
        fields[name] = parse(value)
    return fields


_NO_MAIL_PARAMS = MailParams()
_NO_RCPT_PARAMS = RcptParams()
