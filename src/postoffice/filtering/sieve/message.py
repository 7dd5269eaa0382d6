"""The message a Sieve script looks at: its header fields (editable, RFC 5293), envelope, body.

`SieveMessage` is what the caller hands in (immutable). `HeaderFields` is the run's own copy of
the header, so that addheader/deleteheader are seen by later tests of the same run (RFC 5293
§3) and `edited()` rebuilds the message bytes with untouched fields byte for byte as received.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from postoffice.message.mime_address import parse_address_list
from postoffice.message.mime_headers import _decode_text, decode_words, split_header
from postoffice.message.mime_model import BodyPart

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_FIELD_START = re.compile(rb"^(?=[^ \t\r\n])", re.MULTILINE)

# id(call) -> (the call, its result, the :matches captures of a success)
SharedResults = dict[int, tuple[object, bool, "list[str] | None"]]


@dataclass(frozen=True, slots=True)
class SieveMessage:
    """The delivered message and its SMTP envelope (RFC 5228 §5.4).

    `envelope_from` is the reverse-path ("" for the null sender <>), `envelope_to` the
    recipient this delivery is for, `auth` the authenticated submitter if any. `body` is
    the MIME structure of `raw` (`postoffice.message.mime.parse_message(raw).body`) when the
    caller already has it (the body test then parses nothing again). `shared` holds the results of the tests that
    read only the message (validator.SHAREABLE_TESTS), by the id of their call: the runs for
    every recipient of one message may pass the same dict, so the second recipient's run
    reuses what the first one found (SharedResults: same `raw`, same environment).
    """

    raw: bytes
    envelope_from: str = ""
    envelope_to: str = ""
    auth: str | None = None
    body: BodyPart | None = None
    shared: SharedResults | None = None


@dataclass(slots=True)
class Field:
    name: str  # as written
    lower: str
    raw: bytes  # the whole field as received, line breaks included; b"" for added ones
    value: str  # unfolded, RFC 2047-decoded, trimmed: what tests compare
    addresses: list[ParsedAddress] | None = None  # parsed on first use by an address test

    def raw_value(self) -> str:
        """Unfolded but not RFC 2047-decoded: what the address parser wants."""
        if not self.raw:
            return self.value
        return _FOLD.sub("", _decode_text(self.raw).partition(":")[2]).strip(" \t\r\n")


def field_value(raw_value: str) -> str:
    return decode_words(_FOLD.sub("", raw_value)).strip(" \t\r\n")


def _split_fields(block: bytes) -> list[Field]:
    fields: list[Field] = []
    starts = [m.start() for m in _FIELD_START.finditer(block)]
    for i, start in enumerate(starts):
        chunk = block[start : starts[i + 1] if i + 1 < len(starts) else len(block)]
        text = _decode_text(chunk)
        name, colon, value = text.partition(":")
        name = name.rstrip(" \t")
        if not colon or not name or " " in name or "\t" in name:
            if fields:  # a stray line: keep it with the field before, so edits keep it too
                fields[-1].raw += chunk
            continue
        fields.append(Field(name, name.lower(), chunk, field_value(value)))
    return fields


class HeaderFields:
    """The header as the current run sees it, in order, with edits applied."""

    def __init__(self, raw: bytes) -> None:
        header_end, body_start = split_header(raw, 0, len(raw))
        self.fields = _split_fields(raw[:header_end])
        self.newline = b"\r\n" if b"\r\n" in raw[:header_end + 2] or not raw else b"\n"
        self.separator = raw[header_end:body_start]
        self.body = raw[body_start:]
        self.changed = False

    def values(self, name: str) -> list[str]:
        lower = name.lower()
        return [f.value for f in self.fields if f.lower == lower]

    def addresses(self, name: str) -> list[ParsedAddress]:
        """The addresses in every field called `name`, each field parsed once per run."""
        lower = name.lower()
        out: list[ParsedAddress] = []
        for f in self.fields:
            if f.lower == lower:
                if f.addresses is None:
                    f.addresses = header_addresses(f.raw_value())
                out.extend(f.addresses)
        return out

    def exists(self, name: str) -> bool:
        lower = name.lower()
        return any(f.lower == lower for f in self.fields)

    def add(self, name: str, value: str, last: bool) -> None:
        field = Field(name, name.lower(), b"", value)
        if last:
            self.fields.append(field)
        else:
            self.fields.insert(0, field)
        self.changed = True

    def edited(self, original: bytes) -> bytes:
        """The message with the run's edits, or `original` itself when there were none."""
        if not self.changed:
            return original
        nl = self.newline
        parts = []
        for f in self.fields:
            if f.raw:
                parts.append(f.raw)
            else:
                parts.append(f.name.encode() + b": " + encode_value(f.value).encode() + nl)
        separator = self.separator or nl
        return b"".join(parts) + separator + self.body


def encode_value(value: str) -> str:
    """A header value safe to write: RFC 2047 encoded-words for anything non-ASCII."""
    if value.isascii() and "\r" not in value and "\n" not in value:
        return value
    clean = value.replace("\r", " ").replace("\n", " ")
    if clean.isascii():
        return clean
    raw = clean.encode("utf-8")
    words: list[str] = []
    pos = 0
    while pos < len(raw):  # never split a UTF-8 sequence across words (RFC 2047 §5)
        end = min(pos + 45, len(raw))
        while end < len(raw) and (raw[end] & 0xC0) == 0x80:
            end -= 1
        words.append("=?utf-8?b?" + base64.b64encode(raw[pos:end]).decode() + "?=")
        pos = end
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class ParsedAddress:
    local: str
    domain: str | None

    def full(self) -> str:
        return self.local if self.domain is None else f"{self.local}@{self.domain}"


def header_addresses(raw_value: str) -> list[ParsedAddress]:
    """Addresses in one header field value, group markers dropped."""
    parsed = parse_address_list(raw_value) or ()
    out = []
    for a in parsed:
        if a.mailbox is None or a.host is None:
            continue
        out.append(ParsedAddress(a.mailbox, a.host if a.host else None))
    return out


def envelope_address(address: str) -> ParsedAddress | None:
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    if not address:
        return ParsedAddress("", None)
    local, at, domain = address.rpartition("@")
    if not at:
        return ParsedAddress(address, None)
    return ParsedAddress(local, domain)
