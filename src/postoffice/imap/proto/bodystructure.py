"""ENVELOPE, BODY and BODYSTRUCTURE in IMAP syntax (RFC 9051 §7.5.2, RFC 3501 §7.4.2).

`envelope_bytes(envelope)` and `bodystructure_bytes(body, extended=...)` turn the records that
`postoffice.message.mime.parse_message` computed at delivery into the parenthesized lists a FETCH
response carries. They do no parsing and keep no state: FETCH 1:* BODYSTRUCTURE calls them once
per message, so they are plain string building (a typical message takes tens of microseconds).

Implementation notes (what the FETCH code can rely on):

- The result is complete IMAP syntax for one fetch item value, starting with "(": write
  `b"BODYSTRUCTURE " + bodystructure_bytes(body, extended=True)` into the response line. It may
  contain literals (`{n}\\r\\n` followed by n octets) in the middle, so the bytes go out as they
  are, never re-quoted, and the response line simply continues after them.
- Strings (RFC 9051 §4.3): a quoted string when the value is 7-bit, has no CR, LF or NUL, at
  most four quoted-specials (`"` and `\\`, as Dovecot does) and at most `MAX_QUOTED` characters;
  otherwise a literal `{n}\\r\\n` followed by the n octets of the value in UTF-8. Literals
  are valid in IMAP4rev1 and IMAP4rev2 alike, with or without UTF8=ACCEPT, so 8-bit header
  values (RFC 6532) need no mode switch. NUL may appear in neither form and is dropped.
- Values are sent as the parser stored them: type, subtype, encoding and parameter names
  lowercased (Dovecot keeps the sender's case; both are right, the names are case-insensitive,
  RFC 2045 §5.1, and imaptest compares them so), parameter values and RFC 2231 `name*` values
  as written, header strings unfolded but not decoded (RFC 2047 words stay encoded).
- Form: a part with children is multipart (`(part)(part) "subtype"`); a part with `message`
  set is message/rfc822 or message/global, with envelope, body and line count (RFC 9051
  `body-type-msg`; message/global there is RFC 9051 and RFC 6532 syntax); any other part with a
  line count is text. Never dispatch on the type string: see `mime_model.BodyPart`.
- BODY (extended=False) stops after the basic fields; BODYSTRUCTURE adds md5, disposition,
  language and location for single parts and parameters, disposition, language and location for
  multiparts (RFC 9051 `body-ext-1part`, `body-ext-mpart`); all four are always present, NIL when
  absent, as Dovecot sends them. Language is always a list.
- An empty address list is NIL (the grammar has no empty list); group syntax is already
  flattened into start and end markers by the parser (RFC 9051 §7.5.2).
"""

from __future__ import annotations

from postoffice.message.mime_model import Address, BodyPart, Envelope, Params

__all__ = ["MAX_QUOTED", "bodystructure_bytes", "envelope_bytes", "nstring"]

MAX_QUOTED = 1024  # longer strings go as literals: quoted strings have to fit on the line
_MAX_ESCAPES = 4  # past this many quoted-specials a literal is shorter (Dovecot's rule)


def nstring(value: str | None) -> str:
    """An IMAP nstring (RFC 9051 §4.3, §4.5) as text; encode the whole response with UTF-8.

    A literal's count is the number of UTF-8 octets, so the text must be encoded with UTF-8 (and
    nothing else) before it is sent; `envelope_bytes` and `bodystructure_bytes` do that.
    """
    if value is None:
        return "NIL"
    if (
        value.isascii()
        and len(value) <= MAX_QUOTED
        and "\r" not in value
        and "\n" not in value
        and "\x00" not in value
    ):
        if '"' not in value and "\\" not in value:
            return '"' + value + '"'
        if value.count('"') + value.count("\\") <= _MAX_ESCAPES:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _literal(value)


def _literal(value: str) -> str:
    # NUL is not a CHAR8 (RFC 9051 §9). A lone surrogate (only possible in hand-made records)
    # becomes "?", so the octet count below is exactly what the final encode produces.
    data = value.replace("\x00", "").encode("utf-8", "replace")
    return "{" + str(len(data)) + "}\r\n" + data.decode("utf-8")


def _params(params: Params) -> str:
    if not params:
        return "NIL"
    return "(" + " ".join(nstring(k) + " " + nstring(v) for k, v in params) + ")"


def _addresses(addresses: tuple[Address, ...] | None) -> str:
    if not addresses:
        return "NIL"
    q = nstring
    return "(" + "".join(
        "(" + q(a.name) + " " + q(a.adl) + " " + q(a.mailbox) + " " + q(a.host) + ")"
        for a in addresses
    ) + ")"


def _envelope(e: Envelope) -> str:
    q = nstring
    return (
        "(" + q(e.date) + " " + q(e.subject) + " " + _addresses(e.from_) + " "
        + _addresses(e.sender) + " " + _addresses(e.reply_to) + " " + _addresses(e.to) + " "
        + _addresses(e.cc) + " " + _addresses(e.bcc) + " " + q(e.in_reply_to) + " "
        + q(e.message_id) + ")"
    )


def _extension(part: BodyPart) -> str:
    """Disposition, language and location: the tail both extension forms share."""
    disposition = "NIL"
    if part.disposition is not None:
        disposition = "(" + nstring(part.disposition[0]) + " " + _params(part.disposition[1]) + ")"
    language = "NIL"
    if part.language:
        language = "(" + " ".join(nstring(tag) for tag in part.language) + ")"
    return " " + disposition + " " + language + " " + nstring(part.location)


def _body(part: BodyPart, extended: bool, out: list[str]) -> None:
    """Append one body (RFC 9051 `body`), parentheses included, to `out`."""
    q = nstring
    if part.children:
        # RFC 9051 body-type-mpart: 1*body SP media-subtype [SP body-ext-mpart]
        out.append("(")
        for child in part.children:
            _body(child, extended, out)
        out.append(" " + q(part.subtype))
        if extended:
            out.append(" " + _params(part.params) + _extension(part))
        out.append(")")
        return
    out.append(
        "(" + q(part.type) + " " + q(part.subtype) + " " + _params(part.params) + " "
        + q(part.id) + " " + q(part.description) + " " + q(part.encoding) + " "
        + str(part.size)
    )
    if part.message is not None:
        # RFC 9051 body-type-msg: ... SP envelope SP body SP body-fld-lines
        envelope, inner = part.message
        out.append(" " + _envelope(envelope) + " ")
        _body(inner, extended, out)
        out.append(" " + str(part.lines or 0))
    elif part.lines is not None:
        out.append(" " + str(part.lines))  # body-type-text
    if extended:
        out.append(" " + q(part.md5) + _extension(part))
    out.append(")")


def envelope_bytes(envelope: Envelope) -> bytes:
    """The ENVELOPE list (RFC 9051 §7.5.2): date, subject, from, sender, reply-to, to, cc, bcc,
    in-reply-to, message-id.

    >>> envelope_bytes(Envelope(None, "Hi", None, None, None, None, None, None, None, None))
    b'(NIL "Hi" NIL NIL NIL NIL NIL NIL NIL NIL)'
    """
    return _envelope(envelope).encode("utf-8")


def bodystructure_bytes(body: BodyPart, *, extended: bool) -> bytes:
    """BODYSTRUCTURE (extended=True) or BODY (extended=False) of a message (RFC 9051 §7.5.2).

    `body` is `MessageMetadata.body` (or the root loaded with `load_structure`); the result is
    the parenthesized list, e.g. `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1)`.
    """
    out: list[str] = []
    _body(body, extended, out)
    return "".join(out).encode("utf-8")
