"""DATA framing: only CRLF.CRLF ends a message; smuggling variants are content; any split works."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postoffice.smtp.proto.dotstuff import DataScanner, stuff_dots


def scan(*pieces: bytes) -> tuple[bytes, bytes | None]:
    """Feed the pieces in order; (all content, rest after the terminator or None)."""
    scanner = DataScanner()
    out = []
    for i, piece in enumerate(pieces):
        content, rest = scanner.feed(piece)
        out.append(content)
        if rest is not None:
            return b"".join(out), rest + b"".join(pieces[i + 1 :])
    return b"".join(out), None


SCAN_CASES = [
    # wire bytes after 354, content, rest (None: not ended)
    (b".\r\n", b"", b""),  # empty message: the dot right at the start
    (b"a\r\n.\r\n", b"a\r\n", b""),
    (b"a\r\n.\r\nQUIT\r\n", b"a\r\n", b"QUIT\r\n"),
    (b"..a\r\n.\r\n", b".a\r\n", b""),  # stuffed dot on the first line
    (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n", b""),  # a line holding one dot
    (b"a\r\n...b\r\n.\r\n", b"a\r\n..b\r\n", b""),
    (b"a\r\n.b\r\n.\r\n", b"a\r\nb\r\n", b""),  # unstuffed lone dot (sloppy client) dropped
    (b"a\r\n\r\n.\r\n", b"a\r\n\r\n", b""),
    (b"\r\n.\r\n", b"\r\n", b""),
    # Not ended: the content so far, less a held-back possible start of the terminator.
    (b"a", b"a", None),
    (b"a\r\n", b"a", None),
    (b"a\r\n.", b"a", None),
    (b"a\r\n.\r", b"a", None),
    (b"a\r\n.x", b"a\r\nx", None),
    # SMTP smuggling (CVE-2023-51764 and friends): none of these ends the message.
    (b"a\n.\nb", b"a\n.\nb", None),
    (b"a\r.\rb", b"a\r.\rb", None),
    (b"a\r\n.\nb", b"a\r\n\nb", None),  # dot after CRLF is unstuffed; "\n" is no line end
    (b"a\n.\r\nb", b"a\n.\r\nb", None),
    (b"a\r.\r\nb", b"a\r.\r\nb", None),
    (b"a\r\n.\rb", b"a\r\n\rb", None),
    (b"a\n\n.\r\n", b"a\n\n.", None),
    (b"a\n.\n\r\n.\r\n", b"a\n.\n\r\n", b""),  # the real terminator after a fake one
    (b"a\r\n\x00.\r\n", b"a\r\n\x00.", None),
]


@pytest.mark.parametrize(("wire", "content", "rest"), SCAN_CASES)
def test_scan_table(wire: bytes, content: bytes, rest: bytes | None) -> None:
    assert scan(wire) == (content, rest)


@pytest.mark.parametrize(("wire", "content", "rest"), SCAN_CASES)
def test_every_split_gives_the_same_result(wire: bytes, content: bytes, rest: bytes | None) -> None:
    for i in range(len(wire) + 1):
        assert scan(wire[:i], wire[i:]) == (content, rest), i
    assert scan(*[wire[i : i + 1] for i in range(len(wire))]) == (content, rest)


def test_terminator_split_at_every_index_of_a_real_message() -> None:
    body = b"Subject: hi\r\n\r\n.leading\r\n..\r\nend\r\n"
    wire = stuff_dots(body) + b".\r\nQUIT\r\n"
    for i in range(len(wire) + 1):
        for j in range(i, len(wire) + 1):
            assert scan(wire[:i], wire[i:j], wire[j:]) == (body, b"QUIT\r\n"), (i, j)


def test_scanner_holds_back_at_most_four_bytes() -> None:
    scanner = DataScanner()
    fed = out = 0
    for piece in [b"x" * 1000 + b"\r", b"\n", b".", b"\r", b"\nrest"]:
        content, rest = scanner.feed(piece)
        fed += len(piece)
        out += len(content)
        if rest is None:
            assert fed - out <= 4
    assert rest == b"rest"


def test_feed_after_end_is_a_bug() -> None:
    scanner = DataScanner()
    scanner.feed(b".\r\n")
    assert scanner.done
    with pytest.raises(RuntimeError):
        scanner.feed(b"x")


STUFF_CASES = [
    (b"", b""),
    (b".", b".."),
    (b"a\r\n.b\r\n", b"a\r\n..b\r\n"),
    (b".a\r\n..\r\n", b"..a\r\n...\r\n"),
    (b"a\n.b\n", b"a\n.b\n"),  # bare LF: no line start, not stuffed (matches the scanner)
]


@pytest.mark.parametrize(("data", "stuffed"), STUFF_CASES)
def test_stuff_dots_table(data: bytes, stuffed: bytes) -> None:
    assert stuff_dots(data) == stuffed


body_bytes = st.lists(
    st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"\r\n.", b".\r\n", b"\x00", b"\xff"]),
    max_size=40,
).map(b"".join)


@given(body=body_bytes, cuts=st.lists(st.integers(0, 200), max_size=6))
def test_stuff_then_scan_round_trips_in_any_split(body: bytes, cuts: list[int]) -> None:
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    wire = stuff_dots(body) + b".\r\nNEXT"
    points = sorted({c for c in cuts if c <= len(wire)})
    pieces = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    assert scan(*pieces) == (body, b"NEXT")


@given(wire=body_bytes, cuts=st.lists(st.integers(0, 200), max_size=6))
def test_arbitrary_bytes_scan_the_same_in_any_split(wire: bytes, cuts: list[int]) -> None:
    points = sorted({c for c in cuts if c <= len(wire)})
    pieces = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    whole = scan(wire)
    assert scan(*pieces) == whole
    _content, rest = whole
    if rest is not None:  # it ended: at the first CRLF.CRLF (or . CRLF at the start)
        end = len(wire) - len(rest)
        assert (b"\r\n" + wire[:end]).find(b"\r\n.\r\n") == end - 3
