"""Records produced by `postoffice.message.mime.parse_message`.

The shapes follow IMAP: `Address` and `Envelope` are the ENVELOPE structures of RFC 9051 §7.5.2
(RFC 3501 §7.4.2), `BodyPart` is one node of BODYSTRUCTURE plus the byte offsets that let a FETCH
of BODY[section] be answered by slicing the stored message. Import them from `mime`, which
re-exports them; they live here so that `mime_json` can build them without an import cycle.

Offsets (all byte indexes into the raw message, `raw[a:b]` style):

- `header_start:body_start` is the part's header block *including* the empty line that ends it
  (BODY[n.MIME], or BODY[HEADER] / BODY[n.HEADER] for a message).
- `body_start:end` is the body as stored, still transfer-encoded (BODY[n], BODY[TEXT]).
- Inside a multipart, a part ends before the line break that precedes the next delimiter line,
  because RFC 2046 §5.1.1 makes that line break part of the delimiter.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

Params = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Address:
    """One IMAP address: RFC 9051 §7.5.2 (name, adl, mailbox, host).

    Group syntax (RFC 5322 §3.4) is flattened the IMAP way: a start marker with `host` None and
    the group name in `mailbox`, then the members, then an end marker with `mailbox` and `host`
    both None.
    """

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None


@dataclass(frozen=True, slots=True)
class Envelope:
    """RFC 9051 §7.5.2 ENVELOPE, fields in wire order. Strings are unfolded, not decoded."""

    date: str | None
    subject: str | None
    from_: tuple[Address, ...] | None
    sender: tuple[Address, ...] | None
    reply_to: tuple[Address, ...] | None
    to: tuple[Address, ...] | None
    cc: tuple[Address, ...] | None
    bcc: tuple[Address, ...] | None
    in_reply_to: str | None
    message_id: str | None


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One node of BODYSTRUCTURE (RFC 9051 §7.5.2) with its byte offsets in the raw message.

    An IMAP encoder should dispatch on `children` (non-empty: the multipart form) and `message`
    (not None: the message/rfc822 form with envelope, body and lines), never on the type string.
    """

    type: str
    subtype: str
    params: Params
    id: str | None
    description: str | None
    encoding: str
    size: int
    lines: int | None
    md5: str | None
    disposition: tuple[str, Params] | None
    language: tuple[str, ...] | None
    location: str | None
    children: tuple[BodyPart, ...]
    message: tuple[Envelope, BodyPart] | None
    header_start: int
    body_start: int
    end: int

    def shifted(self, at: int, by: int) -> BodyPart:
        """The same structure in the message with `by` bytes inserted at offset `at` (header
        fields added in a header): every offset from `at` on moves by `by`, except a header
        that starts there, which now starts with the inserted bytes."""
        def move(offset: int) -> int:
            return offset + by if offset >= at else offset

        inner = None if self.message is None else (self.message[0], self.message[1].shifted(at, by))
        return dataclasses.replace(self, children=tuple(c.shifted(at, by) for c in self.children), message=inner,
                                   header_start=self.header_start + by if self.header_start > at else self.header_start,
                                   body_start=move(self.body_start), end=move(self.end))


@dataclass(frozen=True, slots=True)
class SearchHeaders:
    """Decoded header values for SEARCH, SORT and THREAD (RFC 9051 §6.4.4, RFC 5256)."""

    subject: str
    from_: str
    to: str
    cc: str
    bcc: str
    date: int | None
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    header_text: str


@dataclass(frozen=True, slots=True)
class MessageMetadata:
    """Everything computed once at delivery and stored beside the message."""

    envelope: Envelope
    body: BodyPart
    headers: SearchHeaders
    text: str
    preview: str
    attachment_count: int

    def with_fields_inserted(self, at: int, by: int) -> MessageMetadata:
        """The parse of the message with `by` bytes of header fields (trace fields, our X-Spam
        fields: none that an envelope, a search field or the text reads) inserted at offset `at`
        of its top-level header: the same, with the structure's offsets moved. Only
        `headers.header_text` then lacks the new fields (the full-text index reads the file)."""
        return dataclasses.replace(self, body=self.body.shifted(at, by))
