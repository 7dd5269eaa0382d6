"""SEARCH criteria (RFC 9051 §6.4.4, RFC 3501, RFC 4731, RFC 5182, RFC 7162): text in -> tree out."""

from __future__ import annotations

from datetime import date

import pytest
from test_parser_proto import command, error

from postoffice.imap.proto.commands import Search
from postoffice.imap.proto.search_keys import (
    MAX_DEPTH,
    MAX_SEARCH_KEYS,
    SearchAge,
    SearchAll,
    SearchAnd,
    SearchBody,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSequence,
    SearchSize,
    SearchText,
    SearchUid,
    parse_search_text,
)
from postoffice.imap.proto.sequence_set import parse_sequence_set
from postoffice.imap.proto.tokens import ParseError

seq = parse_sequence_set
D = date(1994, 2, 1)

KEYS: list[tuple[str, SearchKey]] = [
    ("ALL", SearchAll()),
    ("ANSWERED", SearchFlag("\\Answered")),
    ("BCC bob", SearchHeader("BCC", "bob")),
    ("BEFORE 1-Feb-1994", SearchDate("internal", "before", D)),
    ("BODY hello", SearchBody("hello")),
    ('CC "a b"', SearchHeader("CC", "a b")),
    ("DELETED", SearchFlag("\\Deleted")),
    ("DRAFT", SearchFlag("\\Draft")),
    ("FLAGGED", SearchFlag("\\Flagged")),
    ("FROM user-from@domain.org", SearchHeader("FROM", "user-from@domain.org")),
    ("HEADER x-extra hello", SearchHeader("X-EXTRA", "hello")),
    ('HEADER subject ""', SearchHeader("SUBJECT", "")),
    ("KEYWORD $hello", SearchFlag("$hello")),
    ("LARGER 1000", SearchSize("larger", 1000)),
    ("NEW", SearchAnd((SearchFlag("\\Recent"), SearchFlag("\\Seen", False)))),
    ("NOT SEEN", SearchNot(SearchFlag("\\Seen"))),
    ("OLD", SearchFlag("\\Recent", False)),
    ("ON 01-feb-1994", SearchDate("internal", "on", D)),
    ("OR SEEN FLAGGED", SearchOr(SearchFlag("\\Seen"), SearchFlag("\\Flagged"))),
    ("RECENT", SearchFlag("\\Recent")),
    ("SEEN", SearchFlag("\\Seen")),
    ("SENTBEFORE 24-mar-2007", SearchDate("sent", "before", date(2007, 3, 24))),
    ('SENTON "25-Mar-2007"', SearchDate("sent", "on", date(2007, 3, 25))),
    ("SENTSINCE 1-Feb-1994", SearchDate("sent", "since", D)),
    ("SINCE 1-Feb-1994", SearchDate("internal", "since", D)),
    ("SMALLER 9223372036854775807", SearchSize("smaller", 9223372036854775807)),
    ("SUBJECT NIL", SearchHeader("SUBJECT", "NIL")),
    ("TEXT zxcvbnm", SearchText("zxcvbnm")),
    ("TO realto", SearchHeader("TO", "realto")),
    ("UID 1:4294967295", SearchUid(seq("1:4294967295"))),
    ("UID $", SearchUid(seq("$"))),
    ("UNANSWERED", SearchFlag("\\Answered", False)),
    ("UNDELETED", SearchFlag("\\Deleted", False)),
    ("UNDRAFT", SearchFlag("\\Draft", False)),
    ("UNFLAGGED", SearchFlag("\\Flagged", False)),
    ("UNKEYWORD $Junk", SearchFlag("$Junk", False)),
    ("UNSEEN", SearchFlag("\\Seen", False)),
    ("1:3,5", SearchSequence(seq("1:3,5"))),
    ("*", SearchSequence(seq("*"))),
    ("*:3", SearchSequence(seq("*:3"))),
    ("$", SearchSequence(seq("$"))),
    ("MODSEQ 620162338", SearchModSeq(620162338)),
    ('MODSEQ "/flags/\\\\seen" all 1', SearchModSeq(1, "/flags/\\seen", "ALL")),
    ('MODSEQ "/flags/$Junk" PRIV 5', SearchModSeq(5, "/flags/$Junk", "PRIV")),
    ("OLDER 3600", SearchAge("older", 3600)),
    ("YOUNGER 60", SearchAge("younger", 60)),
    ("SAVEDSINCE 1-Feb-1994", SearchDate("saved", "since", D)),
    ("(SEEN)", SearchFlag("\\Seen")),
    ("(SEEN FLAGGED)", SearchAnd((SearchFlag("\\Seen"), SearchFlag("\\Flagged")))),
    ("seen not flagged", SearchAnd((SearchFlag("\\Seen"), SearchNot(SearchFlag("\\Flagged"))))),
    (
        "OR (FROM a TO b) NOT OR SEEN (UID 3 5)",
        SearchOr(
            SearchAnd((SearchHeader("FROM", "a"), SearchHeader("TO", "b"))),
            SearchNot(
                SearchOr(
                    SearchFlag("\\Seen"), SearchAnd((SearchUid(seq("3")), SearchSequence(seq("5"))))
                )
            ),
        ),
    ),
    (
        "OR OR 1 2 NOT NOT 3",
        SearchOr(
            SearchOr(SearchSequence(seq("1")), SearchSequence(seq("2"))),
            SearchNot(SearchNot(SearchSequence(seq("3")))),
        ),
    ),
    ("((((ALL))))", SearchAll()),
    ("(3) uid 4", SearchAnd((SearchSequence(seq("3")), SearchUid(seq("4"))))),
    ('subject "hello beautiful"', SearchHeader("SUBJECT", "hello beautiful")),
    ('SUBJECT "a\\"b\\\\c"', SearchHeader("SUBJECT", 'a"b\\c')),
    ('SUBJECT "Grüße"', SearchHeader("SUBJECT", "Grüße")),
]


@pytest.mark.parametrize(("text", "key"), KEYS, ids=[k[0] for k in KEYS])
def test_search_keys(text: str, key: SearchKey) -> None:
    assert parse_search_text(text) == (None, key)
    cmd = command(b"a SEARCH " + text.encode() + b"\r\n")
    assert cmd.args == Search(None, key)


@pytest.mark.parametrize("charset", ["UTF-8", "utf-8", "US-ASCII", '"us-ascii"'])
def test_supported_charsets(charset: str) -> None:
    assert parse_search_text(f"CHARSET {charset} ALL") == (charset.strip('"').upper(), SearchAll())


@pytest.mark.parametrize("charset", ["ISO-8859-1", "KOI8-R", '"x"'])
def test_other_charsets_are_no_badcharset(charset: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_search_text(f"CHARSET {charset} SUBJECT x")
    assert info.value.status == "NO"
    assert info.value.code == "BADCHARSET (UTF-8 US-ASCII)"


@pytest.mark.parametrize(
    "text",
    [
        "", "FOO", "SEEN ", "SEEN  FLAGGED", "FROM", "HEADER x", "HEADER x: y", "BEFORE 1994-02-01",
        "BEFORE 32-Feb-1994", "BEFORE 1-Foo-1994", "BEFORE 29-Feb-1993", "LARGER x", "LARGER -1",
        "UID", "UID x", "NOT", "OR SEEN", "(SEEN", "SEEN)", "()", "KEYWORD \\Seen", "KEYWORD (x)",
        "MODSEQ", 'MODSEQ "/flags/x" bogus 1', 'MODSEQ "x" all 1', "OLDER 0", "0", "1,", "$:2",
        "CHARSET", "CHARSET UTF-8", "SUBJECT \"\xff\"",
    ],
)  # fmt: skip
def test_bad_search_programs(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_search_text(text.encode("latin-1"))
    assert info.value.status == "BAD"


def test_number_of_keys_is_bounded() -> None:
    # Every key is checked against every message: "1:* 1:* ..." (16,000 keys in a 64 KiB line)
    # would hold the server for minutes. NOT, OR and parentheses count as keys too.
    assert parse_search_text(" ".join(["1:*"] * MAX_SEARCH_KEYS))[1] is not None
    assert parse_search_text("(" + " ".join(["SEEN"] * (MAX_SEARCH_KEYS - 1)) + ")")[1] is not None
    for many in (
        " ".join(["1:*"] * (MAX_SEARCH_KEYS + 1)),
        "(" + " ".join(["SEEN"] * MAX_SEARCH_KEYS) + ")",
        "NOT (" + " ".join(["UID 1"] * (MAX_SEARCH_KEYS - 1)) + ")",
    ):
        with pytest.raises(ParseError, match="Too many search keys") as info:
            parse_search_text(many)
        assert info.value.status == "BAD"


def test_nesting_is_bounded() -> None:
    ok = "NOT " * (MAX_DEPTH - 1) + "SEEN"
    assert parse_search_text(ok)[1] is not None
    for deep in (
        "NOT " * 3000 + "SEEN",
        "(" * 3000 + "SEEN" + ")" * 3000,
        "OR " * 3000 + "1 " * 3001,
    ):
        with pytest.raises(ParseError, match="nested too deeply"):
            parse_search_text(deep.strip())


def test_many_keys_at_top_level_are_fine() -> None:
    _, key = parse_search_text(" ".join(["SEEN"] * 2000))
    assert isinstance(key, SearchAnd) and len(key.keys) == 2000


def test_search_return_options() -> None:
    cmd = command(b"a UID SEARCH RETURN (SAVE MIN min) UNSEEN\r\n")
    assert cmd.args == Search(None, SearchFlag("\\Seen", False), ("SAVE", "MIN"), True)
    cmd = command(b"a SEARCH RETURN (UPDATE PARTIAL 1:5) ALL\r\n")  # RFC 5267, RFC 9394
    assert cmd.args == Search(None, SearchAll(), ("UPDATE", "PARTIAL"), partial=(1, 5))
    for bad in (b"RETURN (PARTIAL 1) ALL", b"RETURN (MINIMUM) ALL", b"RETURN MIN ALL"):
        assert error(b"a SEARCH " + bad + b"\r\n").status == "BAD"


def test_search_literal_argument_split_anywhere() -> None:
    data = b"a SEARCH OR SUBJECT {5}\r\nhello BODY {3+}\r\nx y\r\n"
    cmd = command(data)
    assert cmd.args == Search(None, SearchOr(SearchHeader("SUBJECT", "hello"), SearchBody("x y")))
