"""BODY[section] and BINARY[section] specifiers (RFC 9051 §6.4.5)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Section:
    """`BODY[1.2.HEADER.FIELDS (From To)]<0.100>` is
    Section(part=(1, 2), text="HEADER.FIELDS", fields=("FROM", "TO")) with partial (0, 100)
    kept beside it by the fetch item."""

    part: tuple[int, ...] = ()  # () is the whole message
    text: str | None = None  # None | "HEADER" | "HEADER.FIELDS" | "HEADER.FIELDS.NOT" | "TEXT" | "MIME"
    fields: tuple[str, ...] = ()  # upper-cased field names for HEADER.FIELDS(.NOT)
