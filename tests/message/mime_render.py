"""Test-only helpers: render parsed structures in IMAP syntax and answer BODY[section] by slicing.

They show how the IMAP FETCH code is meant to use `BodyPart` (RFC 9051 §6.4.5, §7.5.2); they
are not the server's encoder.
"""
from __future__ import annotations

from postoffice.message.mime import Address, BodyPart, Envelope


def q(s: str | None) -> str:
    if s is None:
        return "NIL"
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _params(params: tuple[tuple[str, str], ...]) -> str:
    if not params:
        return "NIL"
    return "(" + " ".join(f"{q(k)} {q(v)}" for k, v in params) + ")"


def _addresses(addresses: tuple[Address, ...] | None) -> str:
    if addresses is None:
        return "NIL"
    return "(" + "".join(
        f"({q(a.name)} {q(a.adl)} {q(a.mailbox)} {q(a.host)})" for a in addresses
    ) + ")"


def render_envelope(e: Envelope) -> str:
    fields = [
        q(e.date), q(e.subject), _addresses(e.from_), _addresses(e.sender),
        _addresses(e.reply_to), _addresses(e.to), _addresses(e.cc), _addresses(e.bcc),
        q(e.in_reply_to), q(e.message_id),
    ]
    return "(" + " ".join(fields) + ")"


def _extension(part: BodyPart) -> str:
    disposition = "NIL"
    if part.disposition is not None:
        disposition = f"({q(part.disposition[0])} {_params(part.disposition[1])})"
    language = "NIL"
    if part.language is not None:
        language = "(" + " ".join(q(x) for x in part.language) + ")"
    return f" {disposition} {language} {q(part.location)}"


def render_body(part: BodyPart, extended: bool = True) -> str:
    """BODYSTRUCTURE (extended) or BODY (not extended), without the outer parentheses."""
    if part.children:
        out = "".join("(" + render_body(c, extended) + ")" for c in part.children)
        out += " " + q(part.subtype)
        if extended:
            out += " " + _params(part.params) + _extension(part)
        return out
    out = (
        f"{q(part.type)} {q(part.subtype)} {_params(part.params)} {q(part.id)} "
        f"{q(part.description)} {q(part.encoding)} {part.size}"
    )
    if part.message is not None:
        envelope, inner = part.message
        out += f" {render_envelope(envelope)} ({render_body(inner, extended)}) {part.lines}"
    elif part.lines is not None:
        out += f" {part.lines}"
    if extended:
        out += " " + q(part.md5) + _extension(part)
    return out


def _resolve(root: BodyPart, path: list[int]) -> BodyPart:
    """The part named by a section number path (RFC 9051 §6.4.5)."""
    part: BodyPart | None = None
    body = root  # the body whose parts the next number counts
    for n in path:
        if part is not None:
            if part.message is not None:
                body = part.message[1]  # into an attached message
            elif part.children:
                body = part  # into a nested multipart
            else:
                raise KeyError(path)
        if body.children:
            part = body.children[n - 1]
        elif n == 1:
            part = body  # a non-multipart message has one part: its body
        else:
            raise KeyError(path)
    assert part is not None
    return part


def section_bytes(raw: bytes, root: BodyPart, section: str) -> bytes:
    """BODY[section] by slicing the stored message with the parsed offsets."""
    names = section.upper().split(".") if section else []
    path = []
    while names and names[0].isdigit():
        path.append(int(names.pop(0)))
    suffix = names[0] if names else ""
    part = _resolve(root, path) if path else root
    if not path:
        if suffix == "HEADER":
            return raw[root.header_start : root.body_start]
        if suffix == "TEXT":
            return raw[root.body_start : root.end]
        return raw
    if suffix == "MIME":
        return raw[part.header_start : part.body_start]
    if suffix in ("HEADER", "TEXT"):
        assert part.message is not None, "HEADER/TEXT need a message/rfc822 part"
        inner = part.message[1]
        if suffix == "HEADER":
            return raw[inner.header_start : inner.body_start]
        return raw[inner.body_start : inner.end]
    return raw[part.body_start : part.end]


def assert_well_formed(part: BodyPart, lo: int, hi: int) -> None:
    """Offsets within [lo, hi], ordered, nested and non-overlapping; the type invariants hold."""
    assert lo <= part.header_start <= part.body_start <= part.end <= hi, (part, lo, hi)
    assert part.size == part.end - part.body_start
    if part.type == "multipart":
        assert part.children, "a multipart always has at least one part"
    if part.type == "message" and part.subtype in ("rfc822", "global"):
        assert part.message is not None
    if part.lines is not None:
        assert part.lines >= 0
    previous = part.body_start
    for child in part.children:
        assert child.header_start >= previous, "parts must not overlap"
        assert_well_formed(child, part.body_start, part.end)
        previous = child.end
    if part.message is not None:
        inner = part.message[1]
        assert inner.header_start == part.body_start and inner.end == part.end
        assert_well_formed(inner, part.body_start, part.end)
