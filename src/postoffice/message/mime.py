"""Parse a message once, at delivery: ENVELOPE, BODYSTRUCTURE with byte offsets, search data.

`parse_message(raw)` never raises. It reads the bytes as stored (CRLF, or LF as given) and returns
a `MessageMetadata` that the store keeps beside the blob, so that later IMAP FETCH, SEARCH, SORT
and THREAD never parse the message again.

RFCs: RFC 5322 (message format), RFC 2045/2046 (MIME entities, multipart delimiters), RFC 2047
(encoded-words), RFC 2183 (Content-Disposition), RFC 2231 (parameter continuations), RFC 6532
(UTF-8 headers), RFC 9051 §7.5.2 / RFC 3501 §7.4.2 (ENVELOPE, BODYSTRUCTURE), RFC 8970 (PREVIEW).

Implementation notes (invariants a FETCH implementer relies on):

- Offsets are exact byte positions in `raw`; see `mime_model` for their meaning. BODY[n.MIME] is
  `raw[p.header_start:p.body_start]` (header block and its empty line), BODY[n] is
  `raw[p.body_start:p.end]`. For a part of a multipart, `end` stops before the line break that
  precedes the next delimiter line (RFC 2046 §5.1.1). A multipart's own body runs from its
  preamble to the end of its epilogue, delimiter lines included.
- When a part's body is empty, the empty line after its header is the line break of the next
  delimiter (the RFC 2046 grammar, as Dovecot reads it), so the header slice ends without it.
- A message/rfc822 (or message/global) part's `message` holds the embedded envelope and root:
  the root's `header_start` is the part's `body_start` and its `end` is the part's `end`. So
  BODY[n.HEADER] is `raw[root.header_start:root.body_start]`, BODY[n.TEXT] is
  `raw[root.body_start:root.end]`, and BODY[n.1] is the root itself when it is not multipart
  (its children otherwise). The top-level message numbers its parts the same way.
- Delimiter lines are recognised the RFC 2046 way: a line starting with "--" + boundary (the rest
  of the line is not checked), the innermost of the open multiparts winning a tie and the
  longest boundary winning a prefix clash (as Dovecot does). A delimiter of an enclosing
  multipart also ends every part nested inside it, headers included (RFC 2046 §5.1.2).
- Every multipart has at least one child: without any delimiter in its body it gets one empty
  text/plain child (Dovecot's rule). A multipart with no usable boundary parameter is read as
  text/plain, so that clients can show the body. Every message/rfc822 and message/global part
  has `message` set, whatever its transfer encoding (as Dovecot does).
- Text parts always carry a charset parameter; "us-ascii" is added when missing (RFC 2045 §5.2,
  and what Dovecot sends). Type, subtype, encoding and parameter names are lowercased; parameter
  values are kept as written, RFC 2231 continuations joined into one `name*` parameter.
- An entity nested deeper than MAX_DEPTH, or past the first MAX_PARTS parts, is read as a
  text/plain leaf: the structure stays valid and the work stays bounded.
"""
from __future__ import annotations

from postoffice.message.mime_address import format_addresses, parse_address_list
from postoffice.message.mime_headers import (
    decode_words,
    first_msg_id,
    msg_ids,
    parse_content_type,
    parse_date,
    parse_disposition,
    parse_encoding,
    parse_fields,
    parse_language,
    split_header,
)
from postoffice.message.mime_json import dump_structure, load_structure
from postoffice.message.mime_model import (
    Address,
    BodyPart,
    Envelope,
    MessageMetadata,
    SearchHeaders,
)
from postoffice.message.mime_text import make_preview, part_text

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "TEXT_LIMIT",
    "Address",
    "BodyPart",
    "Envelope",
    "MessageMetadata",
    "SearchHeaders",
    "dump_structure",
    "load_structure",
    "parse_message",
]

MAX_DEPTH = 50  # nested multiparts/messages; deeper entities are read as text/plain leaves
MAX_PARTS = 10_000  # body parts per message; protects memory against a flood of delimiters
TEXT_LIMIT = 512 * 1024  # characters of search text (and of header text) kept per message

_DEFAULT_CHARSET = (("charset", "us-ascii"),)
_EMPTY_ENVELOPE = Envelope(None, None, None, None, None, None, None, None, None, None)
# Delimiter match: (line start, index into the boundary stack, is closing, next line start).
_Delimiter = tuple[int, int, bool, int]
# Signature and key parts describe the message; mail clients do not list them as attachments.
_NOT_ATTACHMENTS = {
    ("application", "pgp-signature"),
    ("application", "pkcs7-signature"),
    ("application", "x-pkcs7-signature"),
    ("application", "pgp-encrypted"),
}


def _find_delimiter(raw: bytes, pos: int, end: int, stack: tuple[bytes, ...]) -> _Delimiter | None:
    """The first delimiter line of any open multipart at a line start in raw[pos:end]."""
    if not stack:
        return None
    while True:
        if raw.startswith(b"--", pos, end) and (pos == 0 or raw[pos - 1] == 10):
            line = pos
        else:
            hit = raw.find(b"\n--", pos, end)
            if hit < 0:
                return None
            line = hit + 1
        eol = raw.find(b"\n", line, end)
        stop = eol if eol >= 0 else end
        best, best_len = -1, -1
        for k in range(len(stack) - 1, -1, -1):  # innermost first: it wins ties
            boundary = stack[k]
            if len(boundary) > best_len and raw.startswith(boundary, line + 2, stop):
                best, best_len = k, len(boundary)
        if best >= 0:
            close = raw.startswith(b"--", line + 2 + best_len, stop)
            return line, best, close, (eol + 1 if eol >= 0 else end)
        pos = line + 2


def _before_break(raw: bytes, line: int, floor: int) -> int:
    """Where a part ends when a delimiter starts at `line`: the line break before it is the
    delimiter's (RFC 2046 §5.1.1), unless that break already belongs to the header block."""
    pos = line
    if pos > floor and raw[pos - 1] == 10:
        pos -= 1
        if pos > floor and raw[pos - 1] == 13:
            pos -= 1
    return pos


def _empty_part(pos: int) -> BodyPart:
    """The stand-in child of a multipart without parts (RFC 9051 needs at least one)."""
    return BodyPart(
        "text", "plain", _DEFAULT_CHARSET, None, None, "7bit", 0, 0, None, None, None, None,
        (), None, pos, pos, pos,
    )


def _envelope_from(first: dict[str, str]) -> Envelope:
    """ENVELOPE from a header (first occurrence of each field); RFC 3501 §7.4.2 defaults."""
    get = first.get
    from_ = parse_address_list(get("from"))
    return Envelope(
        get("date"),
        get("subject"),
        from_,
        parse_address_list(get("sender")) or from_,
        parse_address_list(get("reply-to")) or from_,
        parse_address_list(get("to")),
        parse_address_list(get("cc")),
        parse_address_list(get("bcc")),
        get("in-reply-to"),
        get("message-id"),
    )


class _Parser:
    """One message's parse: the raw bytes, the part budget, and the root's header fields."""

    __slots__ = ("parts_left", "raw", "root_fields")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.parts_left = MAX_PARTS
        self.root_fields: list[tuple[str, str, str]] = []

    def entity(
        self, start: int, limit: int, depth: int, stack: tuple[bytes, ...], digest: bool
    ) -> tuple[BodyPart, _Delimiter | None, dict[str, str]]:
        """Parse the entity (header + body) at raw[start:limit].

        Returns the part, the delimiter line that ended it (None when it ran to `limit`), and
        its header fields (first occurrence of each name, lowercased).
        """
        raw = self.raw
        self.parts_left -= 1
        # The next delimiter of an open multipart bounds the search for the header's empty
        # line (keeping hostile input linear), ends the part even inside its header block,
        # and is where a leaf's body ends.
        ahead = _find_delimiter(raw, start, limit, stack)
        header_end, body_start = split_header(raw, start, ahead[0] if ahead else limit)
        found: _Delimiter | None = None
        if ahead is not None and header_end == body_start == ahead[0]:
            header_end = body_start = limit = _before_break(raw, ahead[0], start)
            found = ahead
        fields = parse_fields(raw[start:header_end]) if header_end > start else []
        if depth == 0:
            self.root_fields = fields
        first: dict[str, str] = {}
        for lname, _name, value in fields:
            first.setdefault(lname, value)

        ctype = parse_content_type(first.get("content-type"))
        if depth >= MAX_DEPTH or self.parts_left < 0:
            ctype = None  # too deep or too many parts: an opaque text leaf ends the recursion
        elif ctype is None and digest:
            ctype = ("message", "rfc822", ())
        type_, subtype, params = ctype or ("text", "plain", ())
        encoding = parse_encoding(first.get("content-transfer-encoding"))
        children: tuple[BodyPart, ...] = ()
        message: tuple[Envelope, BodyPart] | None = None
        boundary = ""
        if type_ == "multipart":
            boundary = next((v for k, v in params if k == "boundary"), "")
            if not boundary:
                type_, subtype = "text", "plain"  # nothing to split on: show the body as text

        if type_ == "multipart":
            end, kids, ended = self._multipart(
                body_start, header_end, limit, depth, stack, boundary, subtype
            )
            children = tuple(kids) or (_empty_part(end),)
        elif type_ == "message" and subtype in ("rfc822", "global"):
            # Parsed whatever the transfer encoding, as Dovecot does: IMAP clients expect an
            # envelope and a body for every message/rfc822 part.
            inner, ended, inner_first = self.entity(body_start, limit, depth + 1, stack, False)
            message = (_envelope_from(inner_first), inner)
            end = inner.end
        else:
            ended = None if found else ahead
            end = _before_break(raw, ended[0], header_end) if ended else limit
        found = found or ended
        # With an empty body, the empty line after the header is the line break that belongs
        # to the delimiter (RFC 2046 §5.1.1 grammar: body-part := headers [CRLF *OCTET]).
        body_start = min(body_start, end)

        lines = None
        if type_ == "text" or message is not None:
            lines = raw.count(b"\n", body_start, end)
        if type_ == "text" and not any(k in ("charset", "charset*") for k, _ in params):
            params = (*params, *_DEFAULT_CHARSET)
        language = parse_language(first.get("content-language"))
        part = BodyPart(
            type_, subtype, params, first.get("content-id"), first.get("content-description"),
            encoding, end - body_start, lines, first.get("content-md5"),
            parse_disposition(first.get("content-disposition")), language,
            first.get("content-location"), children, message, start, body_start, end,
        )
        return part, found, first

    def _multipart(
        self, body_start: int, floor: int, limit: int, depth: int, stack: tuple[bytes, ...],
        boundary: str, subtype: str,
    ) -> tuple[int, list[BodyPart], _Delimiter | None]:
        """Split a multipart body: (end, children, the enclosing delimiter that ended it)."""
        raw = self.raw
        children: list[BodyPart] = []
        own = len(stack)
        inner = (*stack, boundary.encode("utf-8", "surrogateescape"))
        digest = subtype == "digest"  # RFC 2046 §5.1.5: parts default to message/rfc822
        found = _find_delimiter(raw, body_start, limit, inner)
        while found is not None:
            _line, index, close, next_line = found
            if index != own:
                break  # an enclosing multipart's delimiter ends this one too
            if close:
                # The epilogue runs to an enclosing delimiter, or to the end.
                found = _find_delimiter(raw, next_line, limit, stack)
                break
            if self.parts_left <= 0:
                found = _find_delimiter(raw, next_line, limit, inner)
                continue
            child, found, _ = self.entity(next_line, limit, depth + 1, inner, digest)
            children.append(child)
            # An empty last part can sit after the line break that the next delimiter claims;
            # the multipart must still contain it.
            floor = max(floor, child.end)
        end = _before_break(raw, found[0], floor) if found else limit
        return end, children, found


def _search_headers(fields: list[tuple[str, str, str]], first: dict[str, str],
                    envelope: Envelope) -> SearchHeaders:
    lines: list[str] = []
    size = 0
    for _lname, name, value in fields:
        line = f"{name}: {decode_words(value)}\n"
        size += len(line)
        if size > TEXT_LIMIT:
            break
        lines.append(line)
    get = first.get
    return SearchHeaders(
        subject=decode_words(get("subject", "")),
        from_=format_addresses(envelope.from_, decode_words),
        to=format_addresses(envelope.to, decode_words),
        cc=format_addresses(envelope.cc, decode_words),
        bcc=format_addresses(envelope.bcc, decode_words),
        date=parse_date(get("date")),
        message_id=first_msg_id(get("message-id")),
        in_reply_to=first_msg_id(get("in-reply-to")),
        references=tuple(msg_ids(get("references"))),
        header_text="".join(lines),
    )


class _TextCollector:
    """Walks the tree for search text, the preview source and the attachment count."""

    __slots__ = ("attachments", "budget", "pieces", "preview", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pieces: list[str] = []
        self.budget = TEXT_LIMIT
        self.preview: str | None = None
        self.attachments = 0

    def walk(self, part: BodyPart, parent: str, want_text: bool, top: bool) -> None:
        if part.children:
            chosen = None
            if part.subtype == "alternative":
                # One rendering is enough for search: plain text if offered, else the richest.
                chosen = next((c for c in part.children if c.type == "text"
                               and c.subtype == "plain"), part.children[-1])
            for child in part.children:
                self.walk(child, part.subtype, want_text and (chosen is None or chosen is child), top)
            return
        disposition = part.disposition[0] if part.disposition else None
        if part.message is not None:
            if top:  # an attached (forwarded) message counts once
                self.attachments += 1
            # A forwarded message is searchable, but its attachments are not ours to count.
            self.walk(part.message[1], "", want_text, False)
            return
        is_text = part.type == "text" and part.subtype in ("plain", "html")
        named = any(k.partition("*")[0] in ("filename", "name") for k, _ in part.params) or (
            part.disposition is not None
            and any(k.partition("*")[0] == "filename" for k, _ in part.disposition[1])
        )
        if disposition == "attachment":
            attachment = True
        elif part.type == "text":
            attachment = named and disposition != "inline"
        elif (part.type, part.subtype) in _NOT_ATTACHMENTS or parent == "related":
            attachment = False  # signatures; images embedded in an HTML body
        else:
            attachment = True
        if attachment and top:
            self.attachments += 1
        if is_text and want_text and self.budget > 0:
            end = min(part.end, part.body_start + self.budget * 12)
            text = part_text(self.raw[part.body_start:end], part.encoding, part.params,
                             part.subtype == "html")[: self.budget]
            self.budget -= len(text) + 1
            self.pieces.append(text)
            if self.preview is None and top and not attachment:
                self.preview = text


def parse_message(raw: bytes) -> MessageMetadata:
    """Parse a stored message (CRLF or LF line ends). Never raises, whatever the input."""
    try:
        return _parse(bytes(raw))
    except Exception:  # a bug must not lose mail: fall back to the bare minimum
        return _fallback(bytes(raw) if isinstance(raw, bytes | bytearray | memoryview) else b"")


def _parse(raw: bytes) -> MessageMetadata:
    parser = _Parser(raw)
    body, _, first = parser.entity(0, len(raw), 0, (), False)
    envelope = _envelope_from(first)
    headers = _search_headers(parser.root_fields, first, envelope)
    collector = _TextCollector(raw)
    collector.walk(body, "", True, True)
    return MessageMetadata(
        envelope=envelope,
        body=body,
        headers=headers,
        text="\n".join(collector.pieces)[:TEXT_LIMIT],
        preview=make_preview(collector.preview or ""),
        attachment_count=collector.attachments,
    )


def _fallback(raw: bytes) -> MessageMetadata:
    """The whole message as one text/plain part, with no header data."""
    _header_end, body_start = split_header(raw, 0, len(raw))
    body = BodyPart(
        "text", "plain", _DEFAULT_CHARSET, None, None, "7bit", len(raw) - body_start,
        raw.count(b"\n", body_start), None, None, None, None, (), None, 0, body_start, len(raw),
    )
    headers = SearchHeaders("", "", "", "", "", None, None, None, (), "")
    return MessageMetadata(_EMPTY_ENVELOPE, body, headers, "", "", 0)
