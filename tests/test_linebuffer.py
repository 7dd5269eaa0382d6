"""LineBuffer: lines with CRLF or bare LF, the length limit, skipping, raw takes, any split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postoffice.proto.linebuffer import LineBuffer, LineTooLong


def drain(buffer: LineBuffer) -> list[bytes]:
    lines = []
    while (line := buffer.next_line()) is not None:
        lines.append(line)
    return lines


LINE_CASES = [
    # fed, lines out, bytes left
    (b"", [], b""),
    (b"NOOP", [], b"NOOP"),
    (b"NOOP\r\n", [b"NOOP\r\n"], b""),
    (b"NOOP\n", [b"NOOP\n"], b""),  # bare LF ends a command line, as in Postfix
    (b"NOOP\r", [], b"NOOP\r"),  # a bare CR does not
    (b"A\rB\r\n", [b"A\rB\r\n"], b""),  # ... and stays inside the line for the caller to judge
    (b"A\r\nB\nC\r\nD", [b"A\r\n", b"B\n", b"C\r\n"], b"D"),
    (b"\r\n\n", [b"\r\n", b"\n"], b""),
]


@pytest.mark.parametrize(("data", "lines", "left"), LINE_CASES)
def test_lines_table(data: bytes, lines: list[bytes], left: bytes) -> None:
    buffer = LineBuffer(100)
    buffer.feed(data)
    assert drain(buffer) == lines
    assert len(buffer) == len(left)
    assert buffer.take_all() == left


def test_line_split_across_feeds() -> None:
    buffer = LineBuffer(100)
    for piece in (b"MAIL FR", b"OM:<a@b>\r", b"\nRC", b"PT"):
        buffer.feed(piece)
    assert drain(buffer) == [b"MAIL FROM:<a@b>\r\n"]
    assert buffer.take_all() == b"RCPT"


def test_line_of_exactly_max_line_is_fine() -> None:
    buffer = LineBuffer(10)
    buffer.feed(b"12345678\r\n")
    assert buffer.next_line() == b"12345678\r\n"


def test_complete_line_over_max_line_raises_and_leaves_buffer() -> None:
    buffer = LineBuffer(10)
    buffer.feed(b"123456789\r\nNEXT\r\n")
    with pytest.raises(LineTooLong):
        buffer.next_line()
    assert len(buffer) == 17
    assert buffer.skip_line() is True
    assert buffer.next_line() == b"NEXT\r\n"


def test_unterminated_input_over_max_line_raises() -> None:
    buffer = LineBuffer(10)
    buffer.feed(b"x" * 10)
    assert buffer.next_line() is None  # max_line bytes without a line end: not over it yet
    buffer.feed(b"x")
    with pytest.raises(LineTooLong):
        buffer.next_line()


def test_skip_line_keeps_discarding_until_a_line_end_arrives() -> None:
    buffer = LineBuffer(10)
    buffer.feed(b"x" * 50)
    with pytest.raises(LineTooLong):
        buffer.next_line()
    assert buffer.skip_line() is False
    assert len(buffer) == 0
    buffer.feed(b"y" * 1000)  # still the same over-long line: discarded on arrival
    assert len(buffer) == 0
    buffer.feed(b"yy\r\nQUIT\r\n")
    assert drain(buffer) == [b"QUIT\r\n"]


def test_take_and_take_all() -> None:
    buffer = LineBuffer(100)
    buffer.feed(b"HEAD\r\n0123456789")
    assert buffer.next_line() == b"HEAD\r\n"
    assert buffer.take(4) == b"0123"
    assert len(buffer) == 6
    assert buffer.take(100) == b"456789"
    assert buffer.take(5) == b""
    buffer.feed(b"abc")
    assert buffer.take_all() == b"abc"
    assert len(buffer) == 0


def test_clear_forgets_everything_including_skipping() -> None:
    buffer = LineBuffer(10)
    buffer.feed(b"x" * 20)
    buffer.skip_line()
    buffer.clear()
    buffer.feed(b"EHLO\r\n")
    assert buffer.next_line() == b"EHLO\r\n"


def test_many_pipelined_lines_come_out_in_order() -> None:
    buffer = LineBuffer(100)
    lines = [b"RCPT TO:<u%d@example.org>\r\n" % i for i in range(20000)]
    buffer.feed(b"".join(lines))
    assert drain(buffer) == lines
    assert len(buffer) == 0


def test_max_line_below_two_is_refused() -> None:
    with pytest.raises(ValueError):
        LineBuffer(1)


@given(
    data=st.lists(st.sampled_from([b"a", b"b", b"\r", b"\n", b"\r\n", b"xyz"]), max_size=60).map(
        b"".join
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_any_split_gives_the_same_lines(data: bytes, cuts: list[int]) -> None:
    def lines_of(pieces: list[bytes]) -> tuple[list[bytes], bytes]:
        buffer = LineBuffer(1000)
        out: list[bytes] = []
        for piece in pieces:
            buffer.feed(piece)
            out += drain(buffer)
        return out, buffer.take_all()

    points = sorted({c for c in cuts if c <= len(data)})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert lines_of(pieces) == lines_of([data])
    lines, rest = lines_of([data])
    assert b"".join(lines) + rest == data
