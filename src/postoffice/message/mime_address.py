"""Address lists (RFC 5322 §3.4) as IMAP ENVELOPE address structures (RFC 9051 §7.5.2).

The stdlib `email.utils.getaddresses` loses what IMAP needs (groups, source routes), so this is a
small tokenizer plus a forgiving parser. Display names stay as written (quotes removed, RFC 2047
encoded-words kept), which is what IMAP servers send. Following Dovecot, which the imaptest suite
checks: a comment stands in for a missing display name (`user@host (Real Name)`), and a missing
local part or domain is filled with "MISSING_MAILBOX" / "MISSING_DOMAIN", because a NIL host means
a group marker on the wire.
"""
from __future__ import annotations

import bisect
import re
from collections.abc import Callable

from postoffice.message.mime_model import Address

MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"
MAX_LIST_CHARS = 64 * 1024  # longer address lists are cut at the last "," before this

_TOKENS = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<qs>"(?P<qtext>(?:[^"\\]|\\.)*)"?)
  | (?P<comment>\()
  | (?P<special>[<>@,;:.])
  | (?P<dlit>\[[^\]]*\]?)
  | (?P<atom>[^ \t\r\n"(<>@,;:.\[]+)
    """,
    re.VERBOSE | re.DOTALL,
)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)

# Token kinds. A word is (kind, text, space_before).
_ATOM, _QS, _SPECIAL = "a", "q", "s"


def _tokens(value: str) -> tuple[list[tuple[str, str, bool]], list[tuple[int, str]]]:
    """Words and specials with a "white space before" flag, plus comments by word position."""
    words: list[tuple[str, str, bool]] = []
    comments: list[tuple[int, str]] = []
    pos, n, space = 0, len(value), False
    while pos < n:
        m = _TOKENS.match(value, pos)
        if m is None:  # cannot happen with the patterns above; be safe anyway
            pos += 1
            continue
        kind = m.lastgroup
        if kind == "ws":
            space = True
        elif kind == "comment":
            depth, i = 1, pos + 1
            while i < n and depth:
                c = value[i]
                if c == "\\":
                    i += 1
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                i += 1
            text = value[pos + 1 : i - 1 if depth == 0 else n]
            comments.append((len(words), " ".join(_UNESCAPE.sub(r"\1", text).split())))
            space = True
            pos = i
            continue
        elif kind == "qs":
            words.append((_QS, _UNESCAPE.sub(r"\1", m.group("qtext")), space))
            space = False
        elif kind == "special":
            words.append((_SPECIAL, m.group(), space))
            space = False
        else:
            words.append((_ATOM, m.group(), space))
            space = False
        pos = m.end()
    return words, comments


def _phrase(words: list[tuple[str, str, bool]]) -> str | None:
    """A display name: the words as written, single-spaced, quoted-strings unquoted."""
    out: list[str] = []
    for _kind, text, space in words:
        if out and space:
            out.append(" ")
        out.append(text)
    name = "".join(out).strip()
    return name or None


def _quote_local(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _addr_spec(words: list[tuple[str, str, bool]]) -> tuple[str, str]:
    """(mailbox, host) from the words of an addr-spec; the last "@" separates them."""
    at = max((i for i, w in enumerate(words) if w[0] == _SPECIAL and w[1] == "@"), default=-1)
    local_words = words[:at] if at >= 0 else words
    local = "".join(_quote_local(t) if k == _QS else t for k, t, _ in local_words)
    host = "".join(t for _, t, _ in words[at + 1 :]) if at >= 0 else ""
    return local or MISSING_MAILBOX, host or MISSING_DOMAIN


def _comment_name(comments: list[tuple[int, str]], lo: int, hi: int) -> str | None:
    """The last non-empty comment among words lo..hi, used when there is no display name.
    `comments` is in word order: a bisection, not a scan of every comment of the field for
    every address (6,000 "a@b (c)," took a second)."""
    at = bisect.bisect_right(comments, hi, key=lambda comment: comment[0])
    while at > 0:
        at -= 1
        index, text = comments[at]
        if index < lo:
            return None
        if text:
            return text
    return None


def parse_address_list(value: str | None) -> tuple[Address, ...] | None:
    """Parse an address-list header value; None when it holds no address at all."""
    if not value:
        return None
    if len(value) > MAX_LIST_CHARS:
        # Bound the work on hostile headers: keep the whole addresses before the limit.
        cut = value.rfind(",", 0, MAX_LIST_CHARS)
        value = value[: cut if cut > 0 else MAX_LIST_CHARS]
    return _simple_list(value) or _parsed_list(value)


# Most address fields are "a@b", "Name <a@b>" or lists of those: without quotes, comments,
# groups, routes or literals, they are read by one pattern per address, with the very result of
# the tokenizer below (tests/message/test_mime_address_fast.py compares the two on the corpora).
_NOT_SIMPLE = re.compile(r'["()\\\[\]:;]')
_SIMPLE = re.compile(
    r"[ \t\r\n]*(?:(?P<name>[^<>@,]*?)<(?P<local>[^ \t\r\n<>@,]+)@(?P<host>[^ \t\r\n<>@,]+)>"
    r"|(?P<bare_local>[^ \t\r\n<>@,]+)@(?P<bare_host>[^ \t\r\n<>@,]+))[ \t\r\n]*")
_WHITE_SPACE = re.compile(r"[ \t\r\n]+")


def _simple_list(value: str) -> tuple[Address, ...] | None:
    """The addresses of a simple list (see above), or None to use the full parser."""
    if _NOT_SIMPLE.search(value):
        return None
    out = []
    for piece in value.split(","):
        m = _SIMPLE.fullmatch(piece)
        if m is None:
            return None
        if m["local"] is None:
            out.append(Address(None, None, m["bare_local"], m["bare_host"]))
        else:
            name = _WHITE_SPACE.sub(" ", m["name"]).strip()
            out.append(Address(name or None, None, m["local"], m["host"]))
    return tuple(out)


def _parsed_list(value: str) -> tuple[Address, ...] | None:
    """The full parser: groups, routes, quoted strings, comments, and what is broken."""
    words, comments = _tokens(value)
    out: list[Address] = []
    in_group = False
    i, n = 0, len(words)
    start = 0  # index of the first word of the current mailbox
    while i <= n:
        word = words[i] if i < n else (_SPECIAL, ",", False)
        kind, text = word[0], word[1]
        if kind != _SPECIAL or text in ".@":
            i += 1
            continue
        pending = words[start:i]
        if text == "<":
            # name-addr: [phrase] "<" [route ":"] addr-spec ">"
            close = next((j for j in range(i + 1, n) if words[j][:2] == (_SPECIAL, ">")), n)
            inner = words[i + 1 : close]
            adl = None
            colon = next((j for j, w in enumerate(inner) if w[:2] == (_SPECIAL, ":")), -1)
            if colon >= 0 and inner and inner[0][:2] == (_SPECIAL, "@"):
                adl = "".join(t for _, t, _ in inner[:colon]) or None
                inner = inner[colon + 1 :]
            name = _phrase(pending) or _comment_name(comments, start, close + 1)
            if inner:
                mailbox, host = _addr_spec(inner)
                out.append(Address(name, adl, mailbox, host))
            # Skip anything after ">" up to the next separator.
            i = close + 1
            while i < n and not (words[i][0] == _SPECIAL and words[i][1] in ",;"):
                i += 1
            if i < n and words[i][1] == ";" and in_group:
                out.append(Address(None, None, None, None))
                in_group = False
            i += 1
            start = i
            continue
        if text == ":" and not in_group and not any(w[:2] == (_SPECIAL, "@") for w in pending):
            out.append(Address(None, None, _phrase(pending) or "", None))
            in_group = True
        elif text in ",;" or text == ":":
            if pending and text != ":":
                mailbox, host = _addr_spec(pending)
                out.append(Address(_comment_name(comments, start, i), None, mailbox, host))
            if text == ";" and in_group:
                out.append(Address(None, None, None, None))
                in_group = False
        i += 1
        start = i
    if in_group:  # an unterminated group still gets its end marker
        out.append(Address(None, None, None, None))
    return tuple(out) or None


def format_addresses(
    addresses: tuple[Address, ...] | None, decode: Callable[[str], str]
) -> str:
    """Addresses as display text, "Name <local@host>, ...", names passed through `decode`."""
    if not addresses:
        return ""
    out = []
    for a in addresses:
        if a.host is None:  # group markers carry no address
            continue
        addr = a.mailbox if a.host == MISSING_DOMAIN else f"{a.mailbox}@{a.host}"
        if a.mailbox == MISSING_MAILBOX:
            addr = "" if a.host == MISSING_DOMAIN else f"@{a.host}"
        name = decode(a.name) if a.name else None
        out.append(f"{name} <{addr}>" if name and addr else (name or addr or ""))
    return ", ".join(x for x in out if x)
