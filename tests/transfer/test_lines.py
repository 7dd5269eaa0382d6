"""to_crlf / to_lf: every kind of line end, and no copy when nothing changes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postoffice.message.lines import to_crlf, to_lf

CASES = [
    # input, to_crlf, to_lf
    (b"", b"", b""),
    (b"no line end", b"no line end", b"no line end"),
    (b"a\nb\n", b"a\r\nb\r\n", b"a\nb\n"),
    (b"a\r\nb\r\n", b"a\r\nb\r\n", b"a\nb\n"),
    (b"a\rb\r", b"a\r\nb\r\n", b"a\nb\n"),
    (b"a\r\nb\nc\rd", b"a\r\nb\r\nc\r\nd", b"a\nb\nc\nd"),
    (b"\n\n", b"\r\n\r\n", b"\n\n"),
    (b"\r\r\n", b"\r\n\r\n", b"\n\n"),  # bare CR, then CRLF: two line ends
    (b"\n\r", b"\r\n\r\n", b"\n\n"),  # LF, then a bare CR: two line ends, not one CRLF
    (b"\r\n\r\n", b"\r\n\r\n", b"\n\n"),
    (b"caf\xc3\xa9\n\xff\x00\n", b"caf\xc3\xa9\r\n\xff\x00\r\n", b"caf\xc3\xa9\n\xff\x00\n"),
]


@pytest.mark.parametrize(("data", "crlf", "lf"), CASES)
def test_line_end_table(data: bytes, crlf: bytes, lf: bytes) -> None:
    assert to_crlf(data) == crlf
    assert to_lf(data) == lf


def test_crlf_input_is_returned_without_a_copy() -> None:
    data = b"Subject: x\r\n\r\nbody\r\n" * 1000
    assert to_crlf(data) is data


def test_lf_input_is_returned_without_a_copy() -> None:
    data = b"Subject: x\n\nbody\n" * 1000
    assert to_lf(data) is data


@given(st.binary())
def test_conversions_agree_on_the_lines(data: bytes) -> None:
    crlf = to_crlf(data)
    assert to_lf(crlf) == to_lf(data)
    assert to_crlf(to_lf(data)) == crlf
    assert to_crlf(crlf) == crlf
    # Every CR in the result is followed by LF and every LF preceded by CR.
    assert crlf.count(b"\r") == crlf.count(b"\n") == crlf.count(b"\r\n")
    assert b"\r" not in to_lf(data)
