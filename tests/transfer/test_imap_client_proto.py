"""The IMAP client's response parser: bytes in, events out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from postoffice.transfer.imap_client_proto import (
    SPOOL_OVER,
    Atom,
    Continuation,
    Malformed,
    ResponseParser,
    SpooledLiteral,
    Tagged,
    Untagged,
    fetch_attributes,
    parse_internaldate,
)


def events(*chunks: bytes) -> list[object]:
    parser = ResponseParser()
    out: list[object] = []
    for chunk in chunks:
        parser.feed(chunk)
        while (event := parser.next_event()) is not None:
            out.append(event)
    return out


def test_fetch_with_literal_body_is_one_event() -> None:
    (fetch, done) = events(
        b'* 3 FETCH (UID 9 FLAGS (\\Seen $Junk) INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
        b"BODY[] {5}\r\nHello)\r\nA1 OK done\r\n"
    )
    assert isinstance(fetch, Untagged) and fetch.kind == "FETCH" and fetch.number == 3
    attrs = fetch_attributes(fetch.values)
    assert attrs["UID"] == "9" and attrs["BODY[]"] == b"Hello"
    assert attrs["FLAGS"] == ["\\Seen", "$Junk"]
    assert parse_internaldate(attrs["INTERNALDATE"]) == datetime(1996, 7, 17, 9, 44, 25, tzinfo=UTC)
    assert done == Tagged("A1", "OK", None, [], "done")


def test_bytes_split_anywhere_give_the_same_events() -> None:
    data = b"* LIST (\\HasNoChildren) \"/\" {6}\r\nFo\"o)(\r\n* 2 EXISTS\r\nT1 NO [TRYCREATE] no such\r\n"
    whole = events(data)
    for cut in range(1, len(data)):
        assert events(data[:cut], data[cut:]) == whole
    assert whole[0] == Untagged("LIST", None, [[Atom("\\HasNoChildren")], b"/", b'Fo"o)('])
    assert whole[2] == Tagged("T1", "NO", "TRYCREATE", [], "no such")


def test_large_literal_is_spooled_not_kept_as_bytes() -> None:
    body = b"x" * (SPOOL_OVER * 3)
    (fetch,) = events(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(body), body[:1000], body[1000:] + b")\r\n")
    assert isinstance(fetch, Untagged)
    literal = fetch_attributes(fetch.values)["BODY[]"]
    assert isinstance(literal, SpooledLiteral) and literal.size == len(body) and literal.read() == body


def test_status_codes_and_capabilities() -> None:
    (greeting, cont, ok) = events(
        b"* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR] ready\r\n+ \r\nT2 OK [APPENDUID 38505 3955] APPEND done\r\n"
    )
    assert isinstance(greeting, Untagged) and greeting.code == "CAPABILITY"
    assert greeting.code_values == ["IMAP4rev1", "LITERAL+", "SASL-IR"] and greeting.text == "ready"
    assert cont == Continuation(b"")
    assert ok == Tagged("T2", "OK", "APPENDUID", ["38505", "3955"], "APPEND done")


@pytest.mark.parametrize(
    "line",
    [
        b"* 4 FETCH (UID 4 FLAGS (\\Seen)\r\n",  # unbalanced
        b'* 4 FETCH (UID 4 ENVELOPE ("unterminated))\r\n',
        b"* 4 FETCH (UID 4))\r\n",
    ],
)
def test_malformed_fetch_is_an_event_and_the_stream_stays_in_step(line: bytes) -> None:
    (bad, good) = events(line + b"* 5 FETCH (UID 5)\r\n")
    assert isinstance(bad, Malformed) and bad.kind == "FETCH" and bad.number == 4
    assert isinstance(good, Untagged) and good.number == 5


def test_body_section_atoms_keep_their_brackets() -> None:
    (fetch,) = events(b"* 1 FETCH (UID 2 BODY[HEADER.FIELDS (FROM TO)]<0> {2}\r\nab)\r\n")
    assert isinstance(fetch, Untagged)
    assert fetch_attributes(fetch.values) == {"UID": "2", "BODY[HEADER.FIELDS (FROM TO)]": b"ab"}
