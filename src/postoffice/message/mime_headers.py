"""Header fields for the MIME parser: unfolding, parameters, encoded-words, ids and dates.

- RFC 5322 §2.2: header fields, folding (unfolding removes only the line break before WSP).
- RFC 2045 §5.1: Content-Type and its parameters; RFC 2183: Content-Disposition.
- RFC 2231: parameter continuations (`name*0`, `name*1*`) and charset'language'value encoding.
- RFC 2047: encoded-words in unstructured text and phrases.

Everything here is lenient: real mail breaks every rule, and the callers must never fail.
"""
from __future__ import annotations

import binascii
import codecs
import re
from email.utils import mktime_tz, parsedate_tz
from functools import lru_cache

# A line break followed by white space is a fold (RFC 5322 §2.2.3); unfolding drops the break.
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
# RFC 2045 token characters, for the Content-Transfer-Encoding value.
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_MSG_ID = re.compile(r"<([^<>]*)>")
# The payload may hold white space: broken senders fold inside encoded-words.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?]*)\?=")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_GLUED_NEXT = re.compile(r"\s+(?=[^\s=;\"]+\s*=)")
_GLUED_PARAM = re.compile(r"([^\s=]+)\s+([^\s=]+\s*=.*)", re.DOTALL)

# Labels that mail uses but Python's codec registry lacks, or whose superset decodes more mail
# correctly (what browsers do too, WHATWG Encoding Standard).
_CHARSET_ALIASES = {
    "us-ascii": "utf-8",  # 8-bit text mislabelled as ASCII is nearly always UTF-8
    "ascii": "utf-8",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "x-sjis": "shift_jis",
    "unicode-1-1-utf-7": "utf-7",
    "x-unknown": "utf-8",
    "unknown-8bit": "utf-8",
    "unknown": "utf-8",
    "default": "utf-8",
}


def split_header(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """Find the header block at raw[start:end].

    Returns (header_end, body_start): the fields are raw[start:header_end] and the body starts at
    body_start, after the empty line. Without an empty line the whole range is header and the
    body is empty (body_start == end).
    """
    if raw.startswith(b"\n", start) and start < end:
        return start, start + 1
    if raw.startswith(b"\r\n", start) and start + 1 < end:
        return start, start + 2
    crlf = raw.find(b"\n\r\n", start, end)
    lf = raw.find(b"\n\n", start, crlf + 2 if crlf >= 0 else end)
    if lf >= 0:
        return lf + 1, lf + 2
    if crlf >= 0:
        return crlf + 1, crlf + 3
    return end, end


def _decode_text(data: bytes) -> str:
    """Header bytes to text: UTF-8 (RFC 6532) when valid, else Latin-1 line by line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        lines = []
        for line in data.split(b"\n"):
            try:
                lines.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append(line.decode("cp1252", "replace"))
        text = "\n".join(lines)
    if "\x00" in text:
        # NUL cannot travel in an IMAP string or a search index; it carries no meaning in mail.
        text = text.replace("\x00", "")
    return text


def parse_fields(block: bytes) -> list[tuple[str, str, str]]:
    """Split an unterminated header block into (lowercase name, name, unfolded value) triples.

    Lines that are not fields (no colon, white space in the name, an mbox "From " line, a stray
    continuation at the top) are skipped, as RFC 5322 parsers commonly do.
    """
    if b"\n " in block or b"\n\t" in block:
        block = _FOLD.sub(b"", block)
    fields = []
    for line in _decode_text(block).split("\n"):
        name, colon, value = line.partition(":")
        if not colon:
            continue
        name = name.rstrip(" \t")  # obs-optional: "Subject :" (RFC 5322 §4.5)
        if not name or " " in name or "\t" in name:
            continue
        fields.append((name.lower(), name, value.strip(" \t\r")))
    return fields


# --- Content-Type, Content-Disposition (RFC 2045, RFC 2183, RFC 2231) -------------------------


def _strip_comments(value: str) -> str:
    """Drop RFC 822 comments that stand apart (`text/plain (note); a=b (x)`), outside quotes.

    A parenthesis glued to a word (`name=report(1).pdf`) is left alone: that is a broken but
    common unquoted file name, not a comment.
    """
    out = []
    i, n, depth, quoted = 0, len(value), 0, False
    while i < n:
        c = value[i]
        if depth:
            if c == "\\":
                i += 1
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
        elif quoted:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(value[i + 1])
                i += 1
            elif c == '"':
                quoted = False
        elif c == "(" and (i == 0 or value[i - 1] in " \t;="):
            depth = 1
        else:
            if c == '"':
                quoted = True
            out.append(c)
        i += 1
    return "".join(out)


def _unquote(value: str) -> str:
    """The content of a quoted-string; an unterminated one runs to the end of the value."""
    out = []
    i, n = 1, len(value)
    while i < n:
        c = value[i]
        if c == "\\" and i + 1 < n:
            out.append(value[i + 1])
            i += 2
            continue
        if c == '"':
            break
        out.append(c)
        i += 1
    return "".join(out)


def _split_params(value: str) -> tuple[str, list[tuple[str, str]]]:
    """Split `main; a=1; b="x;y"` into ("main", [("a", "1"), ("b", "x;y")]), names lowercased."""
    if "(" in value:
        value = _strip_comments(value)
    main, _, rest = value.partition(";")
    main = main.strip(" \t\r\n")
    if "=" in main:
        # A parameter without its ";" (`multipart/mixed boundary=x`): split it off.
        m = _GLUED_PARAM.match(main)
        if m:
            main, rest = m.group(1), m.group(2) + ";" + rest
    params: list[tuple[str, str]] = []
    n = len(rest)
    i = 0
    while i < n:
        eq = rest.find("=", i)
        semi = rest.find(";", i)
        if eq < 0 or (0 <= semi < eq):  # a bare word without "=": skip it
            if semi < 0:
                break
            i = semi + 1
            continue
        name = rest[i:eq].strip(" \t\r\n").lower()
        j = eq + 1
        while j < n and rest[j] in " \t\r\n":
            j += 1
        if j < n and rest[j] == '"':
            # Find the closing quote, honouring backslash escapes.
            k = j + 1
            while k < n and rest[k] != '"':
                k += 2 if rest[k] == "\\" else 1
            val = _unquote(rest[j : k + 1])
            semi = rest.find(";", k)
        else:
            semi = rest.find(";", j)
            raw_val = rest[j : semi if semi >= 0 else n]
            glued = _GLUED_NEXT.search(raw_val) if "=" in raw_val else None
            if glued:
                # `a=1 b=2`: a lost ";" between two parameters; read them as two.
                semi = j + glued.start()
                rest = rest[:semi] + ";" + rest[semi:]
                n = len(rest)
                raw_val = raw_val[: glued.start()]
            val = raw_val.strip(" \t\r\n")
        if name:
            params.append((name, val))
        if semi < 0:
            break
        i = semi + 1
    return main, params


def _pct_encode(value: str) -> str:
    """Percent-encode a plain RFC 2231 segment so it can join an extended (`*`) value."""
    return "".join(
        c if c.isascii() and (c.isalnum() or c in "!#$&+-.^_`|~") else
        "".join(f"%{b:02X}" for b in c.encode("utf-8"))
        for c in value
    )


def join_rfc2231(params: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Join RFC 2231 continuations and drop duplicate names (the first one wins).

    `title*0*=us-ascii'en'This%20is; title*1=" fun"` becomes `("title*", "us-ascii'en'This%20is%20
    fun")`: the value stays in RFC 2231 extended form, as Dovecot sends it in BODYSTRUCTURE, so
    that it remains 7-bit; `decode_rfc2231` turns it into text.
    """
    if not any("*" in name for name, _ in params):
        seen: dict[str, str] = {}
        for name, val in params:
            seen.setdefault(name, val)
        return tuple(seen.items())
    result: dict[str, str] = {}
    groups: dict[str, list[tuple[int, bool, str]]] = {}
    order: list[str] = []
    for name, val in params:
        base, star, tail = name.partition("*")
        number = tail.rstrip("*")
        if star and number.isascii() and number.isdecimal():
            section = int(number)
            if base not in groups:
                groups[base] = []
                order.append(base)
            groups[base].append((section, tail.endswith("*"), val))
        else:
            if name not in result:
                order.append(name)
                result[name] = val
    for base, segs in groups.items():
        segs.sort(key=lambda s: s[0])
        if any(ext for _, ext, _ in segs):
            joined = "".join(v if ext else _pct_encode(v) for _, ext, v in segs)
            if not segs[0][1]:  # the first segment must carry charset'language'
                joined = "''" + joined
            result.setdefault(base + "*", joined)
            order[order.index(base)] = base + "*"
        else:
            result.setdefault(base, "".join(v for _, _, v in segs))
    return tuple((name, result[name]) for name in dict.fromkeys(order) if name in result)


def decode_rfc2231(value: str) -> str:
    """Decode an RFC 2231 extended value `charset'lang'%xx...` to text."""
    parts = value.split("'", 2)
    charset, encoded = (parts[0], parts[2]) if len(parts) == 3 else (None, value)
    return decode_bytes(_unpercent(encoded), charset)


def _unpercent(value: str) -> bytes:
    out = bytearray()
    parts = value.encode("utf-8", "replace").split(b"%")
    out += parts[0]
    for part in parts[1:]:
        try:
            out.append(int(part[:2], 16))
            out += part[2:]
        except ValueError:
            out += b"%" + part
    return bytes(out)


def parse_content_type(value: str | None) -> tuple[str, str, tuple[tuple[str, str], ...]] | None:
    """Content-Type to (type, subtype, params), lowercased type names; None when unusable."""
    if not value:
        return None
    main, params = _split_params(value)
    maintype, slash, subtype = main.partition("/")
    maintype = maintype.strip().lower()
    subtype = subtype.strip().lower()
    if not slash or not maintype or not subtype or " " in maintype or " " in subtype:
        return None  # RFC 2045 §5.2: an invalid Content-Type means the default
    return maintype, subtype, join_rfc2231(params)


def parse_disposition(value: str | None) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """Content-Disposition (RFC 2183) to (type, params); None when absent or without a type."""
    if not value:
        return None
    main, params = _split_params(value)
    main = main.lower()
    if not main or " " in main:
        return None
    return main, join_rfc2231(params)


def parse_encoding(value: str | None) -> str:
    """Content-Transfer-Encoding, lowercased; an invalid value means the default "7bit"."""
    if value and _TOKEN.fullmatch(value):
        return value.lower()
    return "7bit"


def parse_language(value: str | None) -> tuple[str, ...] | None:
    """Content-Language (RFC 3282): a list of tags."""
    if not value:
        return None
    if "(" in value:
        value = _strip_comments(value)
    tags = tuple(tag.strip(" \t") for tag in value.split(",") if tag.strip(" \t"))
    return tags or None


# --- text: RFC 2047 encoded-words, charsets -----------------------------------------------------


@lru_cache(maxsize=256)
def _codec(charset: str | None) -> str | None:
    """A Python codec name for a MIME charset label, or None when unknown."""
    if not charset:
        return None
    label = charset.strip().strip('"').lower()
    label = _CHARSET_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError):
        return None


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes in a declared charset to text; undeclared/unknown: UTF-8, else Windows-1252."""
    codec = _codec(charset)
    if codec is None or codec == "utf-8":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("cp1252", "replace")
    try:
        return data.decode(codec, "replace")
    except Exception:  # some codecs (utf-7, idna) raise despite errors="replace"
        return data.decode("utf-8", "replace")


def decodes_cleanly(data: bytes, charset: str | None) -> bool:
    """Whether `data` is valid in `charset` (UTF-8 when undeclared or unknown)."""
    try:
        data.decode(_codec(charset) or "utf-8")
    except Exception:  # UnicodeDecodeError, or a codec that is not a text encoding
        return False
    return True


def _word_bytes(enc: str, payload: str) -> bytes | None:
    data = payload.encode("ascii", "replace")
    try:
        if enc in "Qq":
            return binascii.a2b_qp(data, header=True)
        # Folding may have put white space inside the word; anything else is not base64.
        data = data.translate(None, b" \t\r\n").rstrip(b"=")
        if _B64_JUNK.search(data) or len(data) % 4 == 1:
            return None
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded-words; white space between adjacent words is dropped (§6.2).

    Adjacent words in one charset are decoded together, because senders split multi-byte
    characters across words. Undecodable words stay as they are.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pending = b""
    pending_charset: str | None = None
    pos = 0
    for m in _ENCODED_WORD.finditer(value):
        between = value[pos : m.start()]
        data = _word_bytes(m.group(2), m.group(3))
        if data is None:
            continue  # keep the text verbatim: it is emitted with the next "between"
        charset = m.group(1).partition("*")[0].lower()  # RFC 2231 §5: charset*language
        adjacent = pending_charset is not None and not between.strip(" \t\r\n")
        if pending_charset is not None and not (adjacent and charset == pending_charset):
            out.append(decode_bytes(pending, pending_charset))
            pending, pending_charset = b"", None
        if not adjacent:
            out.append(between)
        pending += data
        pending_charset = charset
        pos = m.end()
    if pending_charset is not None:
        out.append(decode_bytes(pending, pending_charset))
    out.append(value[pos:])
    return "".join(out)


# --- ids and dates -------------------------------------------------------------------------------


def msg_ids(value: str | None) -> list[str]:
    """Every `<id>` in a Message-ID/In-Reply-To/References value, white space removed."""
    if not value:
        return []
    return ["<" + "".join(m.split()) + ">" for m in _MSG_ID.findall(value) if m.strip()]


def first_msg_id(value: str | None) -> str | None:
    """The first `<id>`, or a bare id without brackets written as `<id>` (a common slip)."""
    ids = msg_ids(value)
    if ids:
        return ids[0]
    if value and "<" not in value and ">" not in value:
        words = value.split()
        if len(words) == 1 and "@" in words[0]:
            return "<" + words[0] + ">"
    return None


def parse_date(value: str | None) -> int | None:
    """An RFC 5322 date as unix seconds, or None when missing or unparsable."""
    if not value:
        return None
    try:
        parts = parsedate_tz(value)
        if parts is None:
            return None
        if parts[9] is None:  # no zone: read it as UTC rather than this machine's zone
            parts = (*parts[:9], 0)
        return int(mktime_tz(parts))
    except Exception:  # the stdlib date parser raises assorted errors on hostile input
        return None
