"""BODY[section], BINARY[part] and BINARY.SIZE[part] by slicing the stored message.

RFC 9051 §6.4.5 (section specifiers) and §7.5.2 (FETCH response), RFC 3501 §6.4.5, RFC 3516
(BINARY). The parser recorded every part's byte offsets at delivery (see
`postoffice.message.mime_model`), so answering a FETCH is slicing `raw`, plus header-field
filtering for HEADER.FIELDS and transfer decoding for BINARY. Nothing here raises, whatever the
message; nothing is cached.

Implementation notes (what the FETCH code relies on):

- Part numbers (RFC 9051 §6.4.5, `find_part`): a number counts the children of a multipart; a
  message that is not multipart (the message itself, or one attached as message/rfc822 or
  message/global) has exactly one part, 1, which is its body (so BODY[1] of a single-part
  message is its body and BODY[1.MIME] its header); a number after a message/rfc822 part counts
  inside the attached message. A leaf inside a multipart has no parts: BODY[1.1] of a text part
  is "" (Dovecot's `imap_msgpart_find` answers it with the part itself, a side effect of its
  loop, not something RFC 9051 says).
- A part that does not exist (BODY[3] of a two-part message, BODY[1.2] of a text part, HEADER
  or TEXT of a part that is not a message) is answered with an empty string, b"": RFC 9051 gives
  no error for it, and Dovecot sends "" too. `None` is reserved for a malformed `Section` that
  the command parser should already have rejected with BAD (MIME without a part number, an
  unknown text, HEADER.FIELDS without names).
- BODY[n.MIME] of a message/rfc822 part is that part's own MIME header, BODY[n.HEADER] the
  attached message's header (Dovecot's choice; RFC 9051 leaves MIME of a message open).
- Header sections (HEADER, n.HEADER, n.MIME and the HEADER.FIELDS forms) end with the empty
  line that ends the header, as RFC 9051 §6.4.5 requires, unless the stored header had none
  (a message without a body). HEADER.FIELDS keeps every matching field, duplicates included,
  in message order, continuation lines included; names match case-insensitively.
- BODY sections never contain NUL: a NUL octet becomes 0x80 (as Dovecot does), so the data
  always fits a plain literal `{n}` (RFC 9051 `CHAR8` excludes NUL). BINARY data keeps NULs and
  must then go as `~{n}` (literal8, RFC 3516 §4.3).
- BINARY[part] decodes base64 and quoted-printable (RFC 2045 §6.7, §6.8) leniently: characters
  outside the base64 alphabet are skipped, an incomplete last group is dropped, `=` padding in
  the middle starts a new group run, trailing white space on quoted-printable lines is removed,
  and invalid `=` escapes stay as written. Only an encoding that is not 7bit, 8bit, binary,
  base64 or quoted-printable makes it return None (NO [UNKNOWN-CTE]). For a multipart, an
  attached message or the whole message (BINARY[]), the parts inside are decoded in place and
  each decoded part's header says `Content-Transfer-Encoding: binary` instead, as Dovecot does.
"""

from __future__ import annotations

import binascii
import re
from typing import Any

from postoffice.imap.proto.sections import Section
from postoffice.message.mime_model import BodyPart

__all__ = [
    "binary_bytes",
    "binary_size",
    "decode_base64",
    "decode_quoted_printable",
    "find_part",
    "partial",
    "section_bytes",
]

_TEXTS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"})
_IDENTITY = frozenset({"7bit", "8bit", "binary"})
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_B64_JUNK = bytes(c for c in range(256) if c not in _B64_ALPHABET)
_B64_PADDING = re.compile(rb"=+")
# RFC 2045 §6.7 rule 3: white space at the end of an encoded line is not part of the data.
_QP_TRAILING_SPACE = re.compile(rb"[ \t]+(?=\r?\n|\Z)")
_CTE_BINARY = b"Content-Transfer-Encoding: binary"
_CTE_NAME = "CONTENT-TRANSFER-ENCODING"


# --- part numbers -------------------------------------------------------------------------------


def find_part(body: BodyPart, part: tuple[int, ...]) -> BodyPart | None:
    """The part a section number names (RFC 9051 §6.4.5); `body` itself for (); None if absent.

    A message (the top level, or the one a message/rfc822 part holds) that is not multipart has
    one part, 1: its body. Numbers after a message/rfc822 part count inside the attached message.
    A part inside a multipart that is neither multipart nor a message has no parts of its own.
    """
    node = body
    top = True  # `node` is a message's top entity, whose single body part is "1"
    last = len(part) - 1
    for i, number in enumerate(part):
        if node.children:
            if not 1 <= number <= len(node.children):
                return None
            node = node.children[number - 1]
        elif number != 1 or not top:
            return None
        top = False
        if i < last and node.message is not None:
            node = node.message[1]  # go on inside the attached message
            top = True
    return node


# --- BODY[section] ------------------------------------------------------------------------------


def section_bytes(raw: bytes, body: BodyPart, section: Section) -> bytes | None:
    """The data of BODY[section] (RFC 9051 §6.4.5), before any <partial>.

    `body` is the message's root `BodyPart`. Returns b"" for a part that does not exist and None
    for a malformed `section` (see the module notes); NUL octets come back as 0x80.
    """
    try:
        data = _section(raw, body, section)
    except Exception:  # hand-made or corrupt offsets must not take the session down
        return b""
    if data is not None and b"\x00" in data:
        data = data.replace(b"\x00", b"\x80")
    return data


def _section(raw: bytes, body: BodyPart, section: Section) -> bytes | None:
    text = section.text.upper() if section.text else None
    if text is not None and text not in _TEXTS:
        return None
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT") and not section.fields:
        return None
    if not section.part:
        if text is None:
            return raw
        if text == "MIME":
            return None  # RFC 9051 grammar: MIME needs a part number
        message = body
    else:
        found = find_part(body, section.part)
        if found is None:
            return b""
        if text is None:
            return raw[found.body_start : found.end]
        if text == "MIME":
            return raw[found.header_start : found.body_start]
        if found.message is None:
            return b""  # HEADER, HEADER.FIELDS(.NOT) and TEXT only name an attached message
        message = found.message[1]
    if text == "TEXT":
        return raw[message.body_start : message.end]
    header = raw[message.header_start : message.body_start]
    if text == "HEADER":
        return header
    wanted = frozenset(name.upper() for name in section.fields)
    return _select_fields(header, wanted, keep=text == "HEADER.FIELDS")


def _header_lines(header: bytes) -> tuple[list[tuple[str | None, bytes]], bytes]:
    """Split a header block into fields and the empty line that ends it (b"" when missing).

    Each field is (upper-cased name, or None for a line that is no field; its bytes, with every
    continuation line and line break). The block is a stored header, `header_start:body_start`.
    """
    spans: list[list[Any]] = []  # [name, start, stop]: slices are taken once, at the end
    end = b""
    pos, n = 0, len(header)
    while pos < n:
        eol = header.find(b"\n", pos)
        stop = n if eol < 0 else eol + 1
        if stop - pos <= 2 and header[pos:stop] in (b"\r\n", b"\n"):
            end = header[pos:]  # the empty line, and (never) anything after it
            break
        if header[pos] in b" \t" and spans:
            spans[-1][2] = stop  # RFC 5322 §2.2.3: a folded line continues its field
        else:
            colon = header.find(b":", pos, stop)
            name = header[pos:colon].rstrip(b" \t").decode("latin-1").upper() if colon > pos else None
            spans.append([name, pos, stop])
        pos = stop
    return [(name, header[a:b]) for name, a, b in spans], end


def _select_fields(header: bytes, wanted: frozenset[str], *, keep: bool) -> bytes:
    """HEADER.FIELDS (keep=True) or HEADER.FIELDS.NOT (keep=False) of one header block."""
    fields, end = _header_lines(header)
    # A line that is not a field has no name to match: .NOT keeps it, FIELDS never selects it.
    chosen = [line for name, line in fields if (name is not None and name in wanted) == keep]
    return b"".join(chosen) + end


def partial(data: bytes, start: int, length: int | None) -> bytes:
    """The <start.length> slice of a section (RFC 9051 §6.4.5): b"" when start is past the end.

    The response names it `BODY[...]<start>` with the start the client asked for.
    """
    start = max(start, 0)
    if length is None:
        return data[start:]
    return data[start : start + max(length, 0)]


# --- BINARY[part] (RFC 3516) -------------------------------------------------------------------


def binary_bytes(raw: bytes, body: BodyPart, part: tuple[int, ...]) -> bytes | None:
    """BINARY[part] data: the section with its Content-Transfer-Encoding removed (RFC 3516 §4.2).

    `part` is the section-binary number, () for the whole message. Returns b"" for a part that
    does not exist and None when some encoding in it is unknown: answer NO [UNKNOWN-CTE].
    NULs are kept: send the data as literal8 (`~{n}`) when it contains one.
    """
    try:
        found = find_part(body, part)
        if found is None:
            return b""
        out: list[bytes] = []
        if not _decode_part(raw, found, not part, out):
            return None
        return b"".join(out)
    except Exception:  # hand-made or corrupt offsets must not take the session down
        return b""


def binary_size(raw: bytes, body: BodyPart, part: tuple[int, ...]) -> int | None:
    """BINARY.SIZE[part] (RFC 3516 §4.2): the length BINARY[part] has; None for UNKNOWN-CTE.

    Decoding is the only exact way to know the size, so this costs what BINARY[part] costs,
    except when nothing in the part needs decoding.
    """
    try:
        found = find_part(body, part)
        if found is None:
            return 0
        if _nothing_to_decode(found):
            # The same slices binary_bytes would join, without copying them.
            return found.end - (found.header_start if not part else found.body_start)
    except Exception:
        return 0
    data = binary_bytes(raw, body, part)
    return None if data is None else len(data)


def _nothing_to_decode(part: BodyPart) -> bool:
    if part.children:
        return all(_nothing_to_decode(child) for child in part.children)
    if part.encoding not in _IDENTITY:
        return False
    return part.message is None or _nothing_to_decode(part.message[1])


def _decode_part(raw: bytes, part: BodyPart, with_header: bool, out: list[bytes]) -> bool:
    """Append the decoded form of `part` (its header first when `with_header`) to `out`.

    False when an encoding is unknown. Everything between parts (preambles, delimiter lines,
    epilogues) is copied as stored.
    """
    if part.children:
        # RFC 2045 §6.4: a multipart is never encoded; its children may be.
        if with_header:
            out.append(raw[part.header_start : part.body_start])
        pos = part.body_start
        for child in part.children:
            out.append(raw[pos : child.header_start])
            if not _decode_part(raw, child, True, out):
                return False
            pos = max(pos, child.end)
        out.append(raw[pos : part.end])
        return True
    encoding = part.encoding
    if encoding in _IDENTITY:
        if with_header:
            out.append(raw[part.header_start : part.body_start])
        if part.message is not None:
            return _decode_part(raw, part.message[1], True, out)
        out.append(raw[part.body_start : part.end])
        return True
    # A leaf, or an attached message sent base64/quoted-printable (RFC 2046 §5.2.1 forbids it,
    # senders do it): the whole body is decoded as one piece.
    if encoding == "base64":
        decoded = decode_base64(raw[part.body_start : part.end])
    elif encoding == "quoted-printable":
        decoded = decode_quoted_printable(raw[part.body_start : part.end])
    else:
        return False
    if with_header:
        out.append(_binary_header(raw[part.header_start : part.body_start]))
    out.append(decoded)
    return True


def _binary_header(header: bytes) -> bytes:
    """The header with its Content-Transfer-Encoding fields replaced by one saying binary."""
    fields, end = _header_lines(header)
    kept = [line for name, line in fields if name != _CTE_NAME]
    eol = b"\r\n" if b"\r\n" in header else b"\n"
    if kept and not kept[-1].endswith(b"\n"):
        kept.append(eol)
    return b"".join(kept) + _CTE_BINARY + eol + end


def decode_base64(data: bytes) -> bytes:
    """Lenient base64 (RFC 2045 §6.8): junk skipped, bad padding and partial groups tolerated."""
    clean = data.translate(None, _B64_JUNK)
    if b"=" not in clean.rstrip(b"="):
        return _b64_run(clean.rstrip(b"="))
    # Padding in the middle: some senders join separately encoded chunks. Decode each run.
    return b"".join(_b64_run(run) for run in _B64_PADDING.split(clean) if run)


def _b64_run(run: bytes) -> bytes:
    extra = len(run) % 4
    if extra == 1:
        run = run[:-1]  # six bits make no octet
    elif extra:
        run += b"=" * (4 - extra)
    try:
        return binascii.a2b_base64(run)
    except (binascii.Error, ValueError):
        return b""


def decode_quoted_printable(data: bytes) -> bytes:
    """Quoted-printable (RFC 2045 §6.7): trailing white space dropped, soft breaks joined,
    `=XX` decoded; anything invalid stays as written. Hard line breaks are kept as stored."""
    if b" \r" in data or b"\t\r" in data or b" \n" in data or b"\t\n" in data or (
        data.endswith((b" ", b"\t"))
    ):
        data = _QP_TRAILING_SPACE.sub(b"", data)
    try:
        return binascii.a2b_qp(data)
    except (binascii.Error, ValueError):
        return data
