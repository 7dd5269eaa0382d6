"""to_crlf / to_lf: every kind of line end, and no copy when nothing changes; wire_form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postoffice.message.lines import WireForm, dot_stuff, to_crlf, to_lf, wire_form

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



@pytest.mark.parametrize(("data", "form"), [
    (b"", WireForm.READY),
    (b"Subject: x\r\n\r\nbody\r\n", WireForm.READY),
    (b"Subject: x\r\n\r\na.b\r\n", WireForm.READY),  # a dot inside a line needs nothing
    (b"Subject: x\r\n\r\nbody", WireForm.ENCODE),  # no final line end: a transfer adds one
    (b"Subject: x\n\nbody\n", WireForm.ENCODE),  # bare LF
    (b"Subject: x\r\n\r\nbo\rdy\r\n", WireForm.ENCODE),  # bare CR
    (b"Subject: x\n\n.dot\n", WireForm.ENCODE),
    (b"Subject: x\r\n\r\n.dot\r\n", WireForm.STUFF),  # a line to dot-stuff
    (b".first\r\n", WireForm.STUFF),
])
def test_wire_form_table(data: bytes, form: WireForm) -> None:
    assert wire_form(data) is form


@given(st.binary())
def test_wire_form_says_what_a_transfer_changes(data: bytes) -> None:
    form = wire_form(data)
    if form is not WireForm.ENCODE:
        assert to_crlf(data) == data and (not data or data.endswith(b"\r\n"))
        stuffed = dot_stuff(data)
        assert (stuffed == data) is (form is WireForm.READY)
        # Undoing the stuffing (RFC 1939 §3) gives the lines back.
        assert [line[1:] if line.startswith(b".") else line for line in stuffed.split(b"\r\n")] == data.split(b"\r\n")
