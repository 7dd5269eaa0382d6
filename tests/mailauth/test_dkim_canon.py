"""DKIM canonicalisation (RFC 6376 §3.4): the RFC's own example, edge cases of the body rules, and
the fast relaxed body canonicaliser against a line-by-line reference written from the RFC text."""
from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postoffice.mailauth.dkim_canon import (
    body_hash,
    canonicalize_body,
    canonicalize_header,
    parse_canonicalization,
    select_headers,
    signed_header_data,
    split_message,
    to_crlf,
    without_signature_value,
)

# RFC 6376 §3.4.6 example.
EXAMPLE = b"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n"


def test_rfc_6376_example_relaxed() -> None:
    fields, body = split_message(EXAMPLE)
    assert b"".join(canonicalize_header("relaxed", f) for f in fields) == b"a:X\r\nb:Y Z\r\n"
    assert canonicalize_body("relaxed", body) == b" C\r\nD E\r\n"


def test_rfc_6376_example_simple() -> None:
    fields, body = split_message(EXAMPLE)
    assert b"".join(canonicalize_header("simple", f) for f in fields) == (
        b"A: X\r\nB : Y\t\r\n\tZ  \r\n")
    assert canonicalize_body("simple", body) == b" C \r\nD \t E\r\n"


@pytest.mark.parametrize(("body", "simple", "relaxed"), [
    (b"", b"\r\n", b""),
    (b"\r\n", b"\r\n", b""),
    (b"\r\n\r\n \r\n", b"\r\n\r\n \r\n", b""),
    (b"x", b"x\r\n", b"x\r\n"),
    (b"x \t", b"x \t\r\n", b"x\r\n"),
    (b"x\r\n\r\n\r\n", b"x\r\n", b"x\r\n"),
    (b"x\r\r\n\r\n", b"x\r\r\n", b"x\r\r\n"),
    (b"x\r", b"x\r\r\n", b"x\r\r\n"),
    (b"\r\n\r\nx", b"\r\n\r\nx\r\n", b"\r\n\r\nx\r\n"),
    (b"a\x0b  b\x0c\r\n", b"a\x0b  b\x0c\r\n", b"a\x0b b\x0c\r\n"),
])
def test_body_edge_cases(body: bytes, simple: bytes, relaxed: bytes) -> None:
    assert canonicalize_body("simple", body) == simple
    assert canonicalize_body("relaxed", body) == relaxed


def test_body_length_cuts_the_canonical_body_and_refuses_more_than_there_is() -> None:
    assert canonicalize_body("relaxed", b"Hi  there\r\n", length=4) == b"Hi t"
    assert canonicalize_body("relaxed", b"Hi\r\n", length=0) == b""
    with pytest.raises(ValueError, match="longer than the body"):
        canonicalize_body("relaxed", b"Hi\r\n", length=5)


def test_headers_are_chosen_bottom_up_and_missing_names_sign_nothing() -> None:
    fields, _ = split_message(b"Received: a\r\nFrom: x\r\nReceived: b\r\nSubject: s\r\n\r\n")
    chosen = select_headers(fields, ["received", "From", "received", "received", "to"])
    assert [f.raw for f in chosen] == [b"Received: b\r\n", b"From: x\r\n", b"Received: a\r\n"]


def test_header_without_body_and_folded_fields_split_right() -> None:
    fields, body = split_message(b"A: 1\r\n  2\r\nB:3\r\n")
    assert [f.raw for f in fields] == [b"A: 1\r\n  2\r\n", b"B:3\r\n"] and body == b""
    fields, body = split_message(b"\r\nbody")
    assert fields == [] and body == b"body"


def test_relaxed_header_drops_space_around_the_colon_and_lowercases_the_name() -> None:
    assert canonicalize_header("relaxed", b"SUBJect \t:\t Hello \r\n\t World \t\r\n") == (
        b"subject:Hello World\r\n")


def test_bare_lf_messages_become_crlf() -> None:
    assert to_crlf(b"A: 1\n\nx\r\ny\n") == b"A: 1\r\n\r\nx\r\ny\r\n"
    message = b"A: 1\r\n\r\nx\r\n"
    assert to_crlf(message) is message


@pytest.mark.parametrize(("value", "expected"), [
    (None, ("simple", "simple")), ("relaxed", ("relaxed", "simple")),
    ("relaxed/relaxed", ("relaxed", "relaxed")), ("simple/relaxed", ("simple", "relaxed")),
])
def test_canonicalization_tag(value: str | None, expected: tuple[str, str]) -> None:
    assert parse_canonicalization(value) == expected


@pytest.mark.parametrize("value", ["nowsp", "relaxed/x", "/relaxed", "relaxed/relaxed/x"])
def test_unknown_canonicalization_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="unknown canonicalization"):
        parse_canonicalization(value)


def reference_relaxed_body(body: bytes) -> bytes:
    """RFC 6376 §3.4.4 read literally, one line at a time."""
    lines = body.split(b"\r\n")
    if lines[-1] == b"":
        lines.pop()
    lines = [re.sub(rb"[ \t]+", b" ", line).rstrip(b" ") for line in lines]
    while lines and lines[-1] == b"":
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines)


def reference_simple_body(body: bytes) -> bytes:
    lines = body.split(b"\r\n")
    if lines[-1] == b"":
        lines.pop()
    while lines and lines[-1] == b"":
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines) or b"\r\n"


@given(st.lists(st.sampled_from([b" ", b"\t", b"\r\n", b"a", b"\r", b"\n", b"  ", b"\x0b"]),
                max_size=60))
def test_fast_body_canonicalisers_match_the_line_by_line_reference(parts: list[bytes]) -> None:
    body = b"".join(parts)
    assert canonicalize_body("relaxed", body) == reference_relaxed_body(body)
    assert canonicalize_body("simple", body) == reference_simple_body(body)


@pytest.mark.parametrize("body", [
    b" " * 2_000_000,
    b"\r\n" * 1_000_000,
    b"\n\r" * 1_000_000,
    b"a \t" * 700_000,
    b"\r\n" * 500_000 + b"\r" + b"\r\n" * 500_000,
])
def test_hostile_bodies_canonicalise_in_linear_time(body: bytes) -> None:
    start = time.perf_counter()
    for method in ("simple", "relaxed"):
        canonicalize_body(method, body)  # type: ignore[arg-type]
    assert time.perf_counter() - start < 2.0  # ~20 ms here; quadratic would take minutes


def test_signature_value_is_emptied_and_everything_else_kept() -> None:
    field = b"DKIM-Signature: v=1; bh=abc=;\r\n\tb=dGVz\r\n dA==; d=x\r\n"
    assert without_signature_value(field) == b"DKIM-Signature: v=1; bh=abc=;\r\n\tb=; d=x\r\n"
    assert without_signature_value(b"X: b=1") == b"X: b="


def test_signed_header_data_ends_with_the_signature_without_crlf() -> None:
    fields, _ = split_message(b"From: a\r\nTo: b\r\nSig: d=x; b=zz\r\n\r\n")
    data = signed_header_data("relaxed", fields, ["to", "from", "from"], fields[2])
    assert data == b"to:b\r\nfrom:a\r\nsig:d=x; b="


def test_body_hash_of_the_empty_body() -> None:
    import base64
    # RFC 6376 §3.4.3/§3.4.4: SHA-256 of "\r\n" (simple) and of "" (relaxed).
    assert base64.b64encode(body_hash("simple", b"")) == b"frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY="
    assert base64.b64encode(body_hash("relaxed", b"")) == b"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
