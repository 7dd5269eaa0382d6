"""Compact JSON for ENVELOPE and BODYSTRUCTURE data, stored per message and read on every FETCH.

Positional lists, not objects, keep the text short and loading fast. The layout, version 1:

    [1, envelope, body]
    envelope = [date, subject, from, sender, reply_to, to, cc, bcc, in_reply_to, message_id]
               with each address list null or [[name, adl, mailbox, host], ...]; sender and
               reply_to are 1 when they equal from
    body     = [type, subtype, [k, v, k, v, ...], id, description, encoding, size, lines, md5,
                disposition (null or [type, [k, v, ...]]), language (null or [...]), location,
                [child body, ...], message (null or [envelope, body]),
                header_start, body_start, end]

`load_structure(dump_structure(e, b)) == (e, b)` holds exactly.
"""
from __future__ import annotations

import json
from typing import Any

from postoffice.message.mime_model import Address, BodyPart, Envelope

FORMAT_VERSION = 1

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def _flat(params: tuple[tuple[str, str], ...]) -> list[str]:
    return [item for pair in params for item in pair]


def _pairs(flat: list[str]) -> tuple[tuple[str, str], ...]:
    return tuple(zip(flat[::2], flat[1::2], strict=True))


def _addresses_out(addresses: tuple[Address, ...] | None) -> list[list[str | None]] | None:
    if addresses is None:
        return None
    return [[a.name, a.adl, a.mailbox, a.host] for a in addresses]


def _envelope_out(e: Envelope) -> list[Any]:
    # Sender and Reply-To usually repeat From (RFC 3501 §7.4.2 defaults): 1 stands for that.
    from_ = _addresses_out(e.from_)
    sender = 1 if e.from_ is not None and e.sender == e.from_ else _addresses_out(e.sender)
    reply_to = 1 if e.from_ is not None and e.reply_to == e.from_ else _addresses_out(e.reply_to)
    return [
        e.date, e.subject, from_, sender, reply_to, _addresses_out(e.to), _addresses_out(e.cc),
        _addresses_out(e.bcc), e.in_reply_to, e.message_id,
    ]


def _body_out(b: BodyPart) -> list[Any]:
    return [
        b.type, b.subtype, _flat(b.params), b.id, b.description, b.encoding, b.size, b.lines,
        b.md5,
        None if b.disposition is None else [b.disposition[0], _flat(b.disposition[1])],
        None if b.language is None else list(b.language),
        b.location,
        [_body_out(c) for c in b.children],
        None if b.message is None else [_envelope_out(b.message[0]), _body_out(b.message[1])],
        b.header_start, b.body_start, b.end,
    ]


def dump_structure(envelope: Envelope, body: BodyPart) -> str:
    """ENVELOPE and BODYSTRUCTURE data as compact JSON text."""
    return _encode([FORMAT_VERSION, _envelope_out(envelope), _body_out(body)])


# Where `dump_structure` puts the message's own From, To, Cc and Bcc lists, as JSON paths (for
# readers that pick them out of the stored text without loading all of it: SQLite's JSON
# functions in the store).
ENVELOPE_ADDRESS_PATHS: dict[str, str] = {"from": "$[1][2]", "to": "$[1][5]", "cc": "$[1][6]", "bcc": "$[1][7]"}


def addresses_in(items: list[list[str | None]] | None) -> tuple[Address, ...] | None:
    """An address list as `dump_structure` writes it, read back."""
    if items is None:
        return None
    return tuple(Address(*item) for item in items)


def _envelope_in(e: list[Any]) -> Envelope:
    from_ = addresses_in(e[2])
    return Envelope(
        e[0], e[1], from_, from_ if e[3] == 1 else addresses_in(e[3]),
        from_ if e[4] == 1 else addresses_in(e[4]),
        addresses_in(e[5]), addresses_in(e[6]), addresses_in(e[7]), e[8], e[9],
    )


def _body_in(b: list[Any]) -> BodyPart:
    disposition = b[9]
    message = b[13]
    return BodyPart(
        b[0], b[1], _pairs(b[2]), b[3], b[4], b[5], b[6], b[7], b[8],
        None if disposition is None else (disposition[0], _pairs(disposition[1])),
        None if b[10] is None else tuple(b[10]),
        b[11],
        tuple(_body_in(c) for c in b[12]),
        None if message is None else (_envelope_in(message[0]), _body_in(message[1])),
        b[14], b[15], b[16],
    )


def load_structure(s: str) -> tuple[Envelope, BodyPart]:
    """Inverse of `dump_structure`. Raises ValueError on text it did not write."""
    try:
        version, envelope, body = json.loads(s)
        if version != FORMAT_VERSION:
            raise ValueError(f"unknown structure format version {version!r}")
        return _envelope_in(envelope), _body_in(body)
    except (TypeError, IndexError, KeyError) as exc:
        raise ValueError(f"malformed structure data: {exc}") from exc
