"""Encoding IMAP responses: values in -> bytes out (RFC 9051 §7, §9)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from postoffice.imap.proto import responses as r
from postoffice.imap.proto.fetch_items import parse_fetch_items_text


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("INBOX", b"INBOX"),
        ("a.b-c_d~e!", b"a.b-c_d~e!"),
        ("", b'""'),
        ("NIL", b'"NIL"'),
        ("nil", b'"nil"'),
        ("two words", b'"two words"'),
        ("a(b", b'"a(b"'),
        ("100%", b'"100%"'),
        ("a*", b'"a*"'),
        ("x]", b'"x]"'),
        ("{5}", b'"{5}"'),
        ('say "hi"', b'"say \\"hi\\""'),
        ("back\\slash", b'"back\\\\slash"'),
        ("line\r\nbreak", b"{11}\r\nline\r\nbreak"),
        ("bare\nlf", b"{7}\r\nbare\nlf"),
        ("Grüße", b"{7}\r\nGr\xc3\xbc\xc3\x9fe"),
        ("x" * 5000, b"x" * 5000),
        (" " * 1024, b'"' + b" " * 1024 + b'"'),
        (" " * 1025, b"{1025}\r\n" + b" " * 1025),
    ],
)
def test_astring_choice(value: str, encoded: bytes) -> None:
    assert r.astring(value) == encoded


def test_utf8_may_be_quoted_when_enabled() -> None:
    assert r.astring("Grüße", utf8=True) == '"Grüße"'.encode()
    assert r.string(b"\xff\xfe", utf8=True) == b"{2}\r\n\xff\xfe"  # not UTF-8: a literal


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (None, b"NIL"),
        (b"", b'""'),
        (b"abc", b'"abc"'),
        (b"NIL", b'"NIL"'),
        (b"a\x00b", b"{3}\r\na\x00b"),
    ],
)
def test_nstring(value: bytes | None, encoded: bytes) -> None:
    assert r.nstring(value) == encoded


def test_binary_data_with_nul_is_a_literal8() -> None:
    assert r.nstring(b"a\x00b", binary=True) == b"~{3}\r\na\x00b"
    assert r.nstring(b"abc", binary=True) == b'"abc"'
    assert r.literal(b"xyz", binary=True) == b"~{3}\r\nxyz"
    assert r.literal(b"") == b"{0}\r\n"


def test_quoted_refuses_line_breaks() -> None:
    with pytest.raises(ValueError):
        r.quoted("a\r\nb")


@pytest.mark.parametrize(
    ("name", "encoded", "utf8"),
    [
        ("INBOX", b"INBOX", False),
        ("inbox", b"INBOX", False),
        ("Entwürfe", b"Entw&APw-rfe", False),
        ("Tom & Jerry", b'"Tom &- Jerry"', False),
        ("Entwürfe", '"Entwürfe"'.encode(), True),
        ("Sent Items", b'"Sent Items"', False),
    ],
)
def test_mailbox(name: str, encoded: bytes, utf8: bool) -> None:
    assert r.mailbox(name, utf8=utf8) == encoded


def test_paren_list() -> None:
    assert r.paren_list([]) == b"()"
    assert r.paren_list([b"a", r.nstring(None), r.astring("b c")]) == b'(a NIL "b c")'
    assert r.number_list([1, 22, 333]) == b"1 22 333"


def test_flags_list() -> None:
    assert r.flags_list([]) == b"()"
    assert r.flags_list(("\\Seen", "$Forwarded")) == b"(\\Seen $Forwarded)"
    assert r.flags_list({"$b", "\\Seen", "$a", "\\Answered"}) == b"(\\Answered \\Seen $a $b)"
    assert r.flags_list(frozenset({"\\Seen"})) == b"(\\Seen)"
    assert r.flags_list(iter(["\\Draft"])) == b"(\\Draft)"
    for bad in (["a b"], ["(x"], ["\\"], [""], ["x]"]):
        with pytest.raises(ValueError):
            r.flags_list(bad)


@pytest.mark.parametrize(
    ("ts", "encoded"),
    [
        (
            datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7))),
            b'"17-Jul-1996 02:44:25 -0700"',
        ),
        (
            datetime(2007, 3, 4, 23, 0, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            b'"04-Mar-2007 23:00:00 +0530"',
        ),
        (datetime(2001, 12, 31, 1, 2, 3), b'"31-Dec-2001 01:02:03 +0000"'),
        (0, b'"01-Jan-1970 00:00:00 +0000"'),
        (1175000000.5, b'"27-Mar-2007 12:53:20 +0000"'),
    ],
)
def test_internaldate(ts: datetime | float, encoded: bytes) -> None:
    assert r.internaldate(ts) == encoded


def test_tagged_untagged_continuation() -> None:
    assert r.tagged("a1", "OK", "SELECT completed", r.READ_WRITE) == (
        b"a1 OK [READ-WRITE] SELECT completed\r\n"
    )
    assert (
        r.tagged("a2", "NO", "No such mailbox", r.TRYCREATE)
        == b"a2 NO [TRYCREATE] No such mailbox\r\n"
    )
    assert r.tagged("a3", "BAD", "Bad") == b"a3 BAD Bad\r\n"
    assert r.untagged("12 EXISTS") == b"* 12 EXISTS\r\n"
    assert r.untagged(b"3 EXPUNGE") == b"* 3 EXPUNGE\r\n"
    assert r.untagged_status("OK", "UIDs valid", r.uidvalidity_code(3857529045)) == (
        b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
    )
    assert r.bye("Logging out") == b"* BYE Logging out\r\n"
    assert r.continuation("Ready") == b"+ Ready\r\n"
    assert r.continuation() == b"+ \r\n"
    assert r.continuation(b"dGVzdA==") == b"+ dGVzdA==\r\n"


def test_response_text_cannot_inject_lines() -> None:
    line = r.tagged("a", "NO", "oops\r\na OK [ALERT] fake", "CANNOT\r\nx")
    assert line.count(b"\r\n") == 1 and line.endswith(b"\r\n")
    assert r.untagged("x\ny").count(b"\n") == 1
    assert r.continuation("x\ry").count(b"\r") == 1


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (r.uidvalidity_code(5), "UIDVALIDITY 5"),
        (r.uidnext_code(44292), "UIDNEXT 44292"),
        (r.unseen_code(12), "UNSEEN 12"),
        (r.highestmodseq_code(715194045007), "HIGHESTMODSEQ 715194045007"),
        (r.appenduid_code(38505, [3955]), "APPENDUID 38505 3955"),
        (r.appenduid_code(38505, [3955, 3956, 3957, 3960]), "APPENDUID 38505 3955:3957,3960"),
        (
            r.copyuid_code(38505, [304, 319, 320], [3956, 3957, 3958]),
            "COPYUID 38505 304,319:320 3956:3958",
        ),
        (r.copyuid_code(1, [7, 3], [10, 11]), "COPYUID 1 7,3 10,11"),
        (r.capability_code(["IMAP4rev2", "IMAP4rev1"]), "CAPABILITY IMAP4rev2 IMAP4rev1"),
        (r.permanentflags_code(["\\Seen", "\\Deleted"]), "PERMANENTFLAGS (\\Seen \\Deleted \\*)"),
        (r.permanentflags_code([], new_keywords=False), "PERMANENTFLAGS ()"),
        (r.badcharset_code(), "BADCHARSET (UTF-8 US-ASCII)"),
        (r.modified_code([9, 7, 8]), "MODIFIED 7:9"),
    ],
)
def test_response_codes(code: str, text: str) -> None:
    assert code == text


def test_plain_codes() -> None:
    assert [r.TRYCREATE, r.ALERT, r.NONEXISTENT, r.ALREADYEXISTS, r.CANNOT, r.CLIENTBUG] == [
        "TRYCREATE", "ALERT", "NONEXISTENT", "ALREADYEXISTS", "CANNOT", "CLIENTBUG",
    ]  # fmt: skip
    assert [r.OVERQUOTA, r.TOOBIG, r.PRIVACYREQUIRED, r.AUTHENTICATIONFAILED, r.READ_ONLY] == [
        "OVERQUOTA", "TOOBIG", "PRIVACYREQUIRED", "AUTHENTICATIONFAILED", "READ-ONLY",
    ]  # fmt: skip


def test_untagged_data_responses() -> None:
    assert r.search_response([2, 3, 6]) == b"* SEARCH 2 3 6\r\n"
    assert r.search_response([]) == b"* SEARCH\r\n"
    assert r.search_response([1], modseq=917162500) == b"* SEARCH 1 (MODSEQ 917162500)\r\n"
    assert r.esearch_response("A282", uid=False, minimum=2, count=3) == (
        b'* ESEARCH (TAG "A282") MIN 2 COUNT 3\r\n'
    )
    assert r.esearch_response("a", uid=True, all_numbers=[1, 2, 3, 5]) == (
        b'* ESEARCH (TAG "a") UID ALL 1:3,5\r\n'
    )
    assert r.esearch_response("a", uid=True, all_numbers=[]) == b'* ESEARCH (TAG "a") UID\r\n'
    assert r.list_response(["\\HasNoChildren"], "/", "Entwürfe") == (
        b'* LIST (\\HasNoChildren) "/" Entw&APw-rfe\r\n'
    )
    assert r.list_response([], None, "x", kind="LSUB") == b"* LSUB () NIL x\r\n"
    assert r.list_response([], "/", "a", extra=b'("CHILDINFO" ("SUBSCRIBED"))') == (
        b'* LIST () "/" a ("CHILDINFO" ("SUBSCRIBED"))\r\n'
    )
    assert r.status_response("blurdybloop", {"MESSAGES": 231, "UIDNEXT": 44292}) == (
        b"* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n"
    )
    assert r.capability_response(["IMAP4rev2", "IDLE"]) == b"* CAPABILITY IMAP4rev2 IDLE\r\n"


def test_fetch_response() -> None:
    (peek,) = parse_fetch_items_text("BODY.PEEK[HEADER]<0.10>")
    line = (
        r.FetchResponse(12)
        .uid(5)
        .flags(["\\Seen"])
        .modseq(7)
        .internaldate(0)
        .rfc822_size(44)
        .body("BODY[]", b"Subject: hi\r\n\r\nbody\r\n")
        .body(peek.response_name(), b"Subject: ")
        .body("BODY[2]", None)
        .body("BINARY[1]", b"\x00\x01", binary=True)
        .number("BINARY.SIZE[1]", 2)
        .add("ENVELOPE", b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)")
        .to_bytes()
    )
    assert line == (
        b'* 12 FETCH (UID 5 FLAGS (\\Seen) MODSEQ (7) INTERNALDATE "01-Jan-1970 00:00:00 +0000" '
        b'RFC822.SIZE 44 BODY[] {21}\r\nSubject: hi\r\n\r\nbody\r\n BODY[HEADER]<0> "Subject: " '
        b"BODY[2] NIL BINARY[1] ~{2}\r\n\x00\x01 BINARY.SIZE[1] 2 "
        b"ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"
    )
    assert r.FetchResponse(1).to_bytes() == b"* 1 FETCH ()\r\n"


def test_fetch_flags_uid_for_100000_messages() -> None:
    flag_sets = [frozenset({"\\Seen"}), frozenset(), frozenset({"\\Seen", "\\Flagged", "$Junk"})]
    messages = [(seq, seq * 2, flag_sets[seq % 3]) for seq in range(1, 100_001)]
    data = b"".join(r.FetchResponse(s).uid(u).flags(f).to_bytes() for s, u, f in messages)
    assert data.count(b"\r\n") == 100_000
    assert data.endswith(b"* 100000 FETCH (UID 200000 FLAGS ())\r\n")
