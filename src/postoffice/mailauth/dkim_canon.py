"""DKIM canonicalisation (RFC 6376 §3.4): the exact bytes a signature's hashes cover.

    >>> fields, body = split_message(b"Subject:  Hi \\r\\n there\\r\\n\\r\\nA  b \\r\\n\\r\\n")
    >>> canonicalize_header("relaxed", fields[0])
    b'subject:Hi there\\r\\n'
    >>> canonicalize_body("relaxed", body)
    b'A b\\r\\n'

`SplitMessage.parse` does `to_crlf` and `split_message` once for a message that DKIM, ARC and
DMARC all read (smtp/inbound_checks.py): each accepts it in place of the bytes.

Messages are bytes with CRLF line ends (`to_crlf` fixes a message stored with bare LF). The body
canonicalisers run a fixed number of passes of C-speed bytes methods (translate, replace, find)
over the whole body instead of a regex per line; dkimpy's regexes cost 50-100 ms per MB, these
a few ms (bench numbers in the commit message). Their cost is still linear in the body, so async
callers run them in a thread for big messages (mailauth.dkim does).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Canonicalization", "HeaderField", "SplitMessage", "body_hash", "canonicalize_body",
           "canonicalize_header", "parse_canonicalization", "select_headers", "signed_header_data",
           "split_message", "to_crlf", "without_signature_value"]

Canonicalization = Literal["simple", "relaxed"]

_METHODS: dict[str, Canonicalization] = {"simple": "simple", "relaxed": "relaxed"}
_TAB_TO_SPACE = bytes.maketrans(b"\t", b" ")
_LONE_LF = re.compile(rb"(?<!\r)\n")
_TRAILING_CRLFS_REVERSED = re.compile(rb"(?:\n\r)*")
_B_TAG = re.compile(rb"^[ \t\r\n]*b[ \t\r\n]*=")


class HeaderField:
    """One header field as it appears in the message: ``raw`` is every byte of it, folding and
    the final CRLF included; ``name`` is the lower-cased field name, for selection by h=."""

    __slots__ = ("name", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.name = raw.partition(b":")[0].rstrip(b" \t").lower()

    def __repr__(self) -> str:
        return f"HeaderField({self.raw!r})"


def to_crlf(message: bytes) -> bytes:
    """``message`` with every bare LF turned into CRLF (mail stored or tested with Unix lines)."""
    if message.count(b"\n") == message.count(b"\r\n"):
        return message
    return _LONE_LF.sub(b"\r\n", message)


def split_message(message: bytes) -> tuple[list[HeaderField], bytes]:
    """The header fields in order and the body (everything after the empty line).

    A line that starts with white space continues the field before it; a header line without a
    colon (not a field, RFC 5322 §2.2) is kept as a field of that name so that nothing is lost,
    but no h= list can select it. A message without an empty line is all header.
    """
    if message.startswith(b"\r\n"):
        return [], message[2:]
    end = message.find(b"\r\n\r\n")
    if end < 0:
        header, body = message, b""
        if header.endswith(b"\r\n"):
            header = header[:-2]
    else:
        header, body = message[:end], message[end + 4:]
    fields: list[HeaderField] = []
    current: list[bytes] = []
    for line in header.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and current:
            current.append(line)
            continue
        if current:
            fields.append(HeaderField(b"\r\n".join(current) + b"\r\n"))
        current = [line]
    if current:
        fields.append(HeaderField(b"\r\n".join(current) + b"\r\n"))
    return fields, body


@dataclass(frozen=True, slots=True)
class SplitMessage:
    """A message read once: its header fields in order and its body, CRLF line ends throughout
    (`to_crlf`). Its size is that of the message as given, for the callers that move linear work
    to a thread above a threshold."""

    fields: tuple[HeaderField, ...]
    body: bytes
    size: int

    @classmethod
    def parse(cls, message: bytes) -> SplitMessage:
        """`to_crlf` then `split_message`: linear in the message (run it in a thread for a big
        one)."""
        fields, body = split_message(to_crlf(message))
        return cls(tuple(fields), body, len(message))

    @classmethod
    def of(cls, message: bytes | SplitMessage) -> SplitMessage:
        """``message`` itself when already split, else `parse` of it."""
        return message if isinstance(message, SplitMessage) else cls.parse(message)

    def named(self, name: bytes) -> list[HeaderField]:
        """The fields whose lower-case name is ``name`` (e.g. b"from"), in order."""
        return [field for field in self.fields if field.name == name]


def select_headers(fields: Sequence[HeaderField], names: Sequence[str]) -> list[HeaderField]:
    """The fields an h= list signs (RFC 6376 §5.4.2): for each name, the next instance from the
    bottom up; a name with no instance left signs nothing (that is how "oversigning" works)."""
    by_name: dict[bytes, list[HeaderField]] = {}
    for field in fields:
        by_name.setdefault(field.name, []).append(field)
    chosen: list[HeaderField] = []
    for name in names:
        instances = by_name.get(name.lower().encode("ascii", "replace"))
        if instances:
            chosen.append(instances.pop())
    return chosen


def canonicalize_header(method: Canonicalization, field: HeaderField | bytes) -> bytes:
    """One header field, canonicalised, ending in CRLF (RFC 6376 §3.4.1, §3.4.2)."""
    raw = field.raw if isinstance(field, HeaderField) else field
    if method == "simple":
        return raw
    name, _, value = raw.partition(b":")
    value = _collapse_spaces(value.replace(b"\r\n", b"")).strip(b" ")
    return name.rstrip(b" \t").lower() + b":" + value + b"\r\n"


def canonicalize_body(method: Canonicalization, body: bytes, length: int | None = None) -> bytes:
    """The body canonicalised (RFC 6376 §3.4.3, §3.4.4), cut to ``length`` octets (l=) if given.

    Raises ValueError when ``length`` is longer than the canonical body: such a signature cannot
    be verified (RFC 6376 §3.5, l=).
    """
    if method == "relaxed":
        body = _relax_lines(body)
    elif body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    # Drop the empty lines at the end: the longest run of CRLFs, found on the reversed tail so a
    # body of a million empty lines costs one C-level match, not one Python step per line.
    tail_start = len(body.rstrip(b"\r\n"))
    trailing = _TRAILING_CRLFS_REVERSED.match(body[tail_start:][::-1])
    extra = trailing.end() if trailing else 0
    if extra == len(body):
        body = b""
    elif extra > 2:
        body = body[:len(body) - extra + 2]  # keep the CRLF that ends the last line
    if not body and method == "simple":
        body = b"\r\n"  # RFC 6376 §3.4.3: an empty body is one CRLF for "simple", empty for "relaxed"
    if length is not None:
        if length > len(body):
            raise ValueError(f"l={length} is longer than the body ({len(body)} octets)")
        body = body[:length]
    return body


def _collapse_spaces(text: bytes) -> bytes:
    """Every run of WSP (SP, HTAB) as one SP: C-level passes instead of a regex, which cost more
    than the rest of a header field's canonicalisation. Each pass halves every run of spaces:
    log2(longest run) passes, typically none or one."""
    if b"\t" in text:
        text = text.translate(_TAB_TO_SPACE)
    while b"  " in text:
        text = text.replace(b"  ", b" ")
    return text


def _relax_lines(body: bytes) -> bytes:
    """Relaxed body rules for every line at once: WSP runs become one SP, WSP at line ends goes."""
    body = _collapse_spaces(body)
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"  # the last line's trailing space is removed like any other line's
    if b" \r\n" in body:
        body = body.replace(b" \r\n", b"\r\n")  # runs are single spaces now: one pass suffices
    return body


def parse_canonicalization(value: str | None) -> tuple[Canonicalization, Canonicalization]:
    """c= as (header, body): "relaxed/simple"; a missing body part, or the whole tag, means
    "simple" (RFC 6376 §3.5). Raises ValueError for anything else."""
    header, _, body = (value or "simple/simple").partition("/")
    header_method = _METHODS.get(header.strip())
    body_method = _METHODS.get(body.strip() or "simple")
    if header_method is None or body_method is None:
        raise ValueError(f"unknown canonicalization c={value}")
    return header_method, body_method


def without_signature_value(field: HeaderField | bytes) -> bytes:
    """The signature field with its b= value emptied, every other byte kept (RFC 6376 §3.7):
    what the header hash covers in place of the signature itself."""
    raw = field.raw if isinstance(field, HeaderField) else field
    name, colon, value = raw.partition(b":")
    specs = value.split(b";")
    for i, spec in enumerate(specs):
        if match := _B_TAG.match(spec):
            specs[i] = spec[:match.end()]
    return name + colon + b";".join(specs)


def signed_header_data(method: Canonicalization, fields: Sequence[HeaderField], names: Sequence[str],
                       signature_field: HeaderField | bytes) -> bytes:
    """The bytes the signature covers (RFC 6376 §3.7): the h= fields canonicalised, then the
    signature field itself with b= emptied and without its final CRLF. DKIM signs these; so
    does ARC's ARC-Message-Signature (RFC 8617 §4.1.2).

    The signature field being verified is never one of the h= fields, even when h= names its
    kind ("dkim-signature" to sign older signatures, RFC 6376 §5.4): it did not exist when the
    signer chose them, so a bottom-up pick must skip it."""
    others = [field for field in fields if field is not signature_field]
    signed = [canonicalize_header(method, field) for field in select_headers(others, names)]
    own = canonicalize_header(method, without_signature_value(signature_field))
    signed.append(own[:-2] if own.endswith(b"\r\n") else own)
    return b"".join(signed)


def body_hash(method: Canonicalization, body: bytes, hash_name: str = "sha256",
              length: int | None = None) -> bytes:
    """The raw digest bh= holds (base64-encoded): ``hash_name`` ("sha256" or "sha1") over the
    canonical body, cut to ``length`` (l=). Raises ValueError when l= exceeds the body. Linear
    in the body: run it in a thread for a big one."""
    return hashlib.new(hash_name, canonicalize_body(method, body, length)).digest()
