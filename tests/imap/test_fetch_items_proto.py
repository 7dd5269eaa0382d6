"""FETCH data items (RFC 9051 §6.4.5, RFC 3516): text in -> items out, and response names."""

from __future__ import annotations

import pytest
from test_parser_proto import command

from postoffice.imap.proto.commands import Fetch
from postoffice.imap.proto.fetch_items import (
    FetchAttribute,
    FetchBinary,
    FetchBinarySize,
    FetchBody,
    FetchItem,
    parse_fetch_items_text,
)
from postoffice.imap.proto.sections import Section
from postoffice.imap.proto.sequence_set import parse_sequence_set
from postoffice.imap.proto.tokens import ParseError

A = FetchAttribute
SIMPLE_NAMES = (
    "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ",
    "RFC822", "RFC822.HEADER", "RFC822.TEXT", "PREVIEW", "SAVEDATE", "EMAILID", "THREADID",
)  # fmt: skip

ITEMS: list[tuple[str, tuple[FetchItem, ...]]] = [
    ("FLAGS", (A("FLAGS"),)),
    ("uid", (A("UID"),)),
    ("ALL", (A("FLAGS"), A("INTERNALDATE"), A("RFC822.SIZE"), A("ENVELOPE"))),
    ("fast", (A("FLAGS"), A("INTERNALDATE"), A("RFC822.SIZE"))),
    ("FULL", (A("FLAGS"), A("INTERNALDATE"), A("RFC822.SIZE"), A("ENVELOPE"), A("BODY"))),
    (
        "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE UID MODSEQ RFC822 "
        "RFC822.HEADER RFC822.TEXT PREVIEW SAVEDATE EMAILID THREADID)",
        tuple(A(n) for n in SIMPLE_NAMES),
    ),
    ("(UID UID FLAGS)", (A("UID"), A("FLAGS"))),
    ("BODY[]", (FetchBody(Section()),)),
    ("BODY.PEEK[]", (FetchBody(Section(), peek=True),)),
    ("body[text]<0.3>", (FetchBody(Section((), "TEXT"), (0, 3)),)),
    ("BODY.PEEK[HEADER]", (FetchBody(Section((), "HEADER"), peek=True),)),
    ("BODY[1]", (FetchBody(Section((1,))),)),
    ("BODY[1.2.3]", (FetchBody(Section((1, 2, 3))),)),
    ("BODY[1.MIME]", (FetchBody(Section((1,), "MIME")),)),
    ("BODY[1.1.header]", (FetchBody(Section((1, 1), "HEADER")),)),
    ("BODY[2.TEXT]", (FetchBody(Section((2,), "TEXT")),)),
    (
        "BODY.PEEK[HEADER.FIELDS (From To Cc)]",
        (FetchBody(Section((), "HEADER.FIELDS", ("FROM", "TO", "CC")), peek=True),),
    ),
    (
        "body.peek[header.fields (from from)]",
        (FetchBody(Section((), "HEADER.FIELDS", ("FROM", "FROM")), peek=True),),
    ),
    (
        'BODY[1.HEADER.FIELDS.NOT (DATE "X-Foo")]<10.20>',
        (FetchBody(Section((1,), "HEADER.FIELDS.NOT", ("DATE", "X-FOO")), (10, 20)),),
    ),
    ("BINARY[]", (FetchBinary(()),)),
    ("BINARY.PEEK[1.2]<5.10>", (FetchBinary((1, 2), (5, 10), peek=True),)),
    ("BINARY.SIZE[5]", (FetchBinarySize((5,)),)),
    (
        "(FLAGS BODY[HEADER.FIELDS (DATE FROM)] BINARY.SIZE[1] binary.peek[1])",
        (
            A("FLAGS"),
            FetchBody(Section((), "HEADER.FIELDS", ("DATE", "FROM"))),
            FetchBinarySize((1,)),
            FetchBinary((1,), peek=True),
        ),
    ),
]


@pytest.mark.parametrize(("text", "items"), ITEMS, ids=[i[0][:50] for i in ITEMS])
def test_fetch_items(text: str, items: tuple[FetchItem, ...]) -> None:
    assert parse_fetch_items_text(text) == items
    cmd = command(b"a FETCH 1:* " + text.encode() + b"\r\n")
    assert cmd.args == Fetch(parse_sequence_set("1:*"), items)


@pytest.mark.parametrize(
    "text",
    [
        "", "()", "FOO", "(ALL)", "(FLAGS FAST)", "BODY.PEEK", "BODY[", "BODY[]]", "BODY[0]",
        "BODY[1.0]", "BODY[MIME]", "BODY[1.FOO]", "BODY[HEADER.FIELDS]", "BODY[HEADER.FIELDS ()]",
        "BODY[HEADER.FIELDS (a:b)]", "BODY[HEADER.FIELDSX (A)]", "BODY[TEXTX]", "BODY[]<0>",
        "BODY[]<0.0>", "BODY[]<a.1>", "BODY[]<1.2", "BINARY[HEADER]", "BINARY[1.TEXT]",
        "BINARY.SIZE", "BINARY.SIZE[1]<0.5>", "BINARY.PEEK", "(FLAGS", "FLAGS)", "(FLAGS  UID)",
        "RFC822.PEEK", "BODY[1.]",
    ],
)  # fmt: skip
def test_bad_fetch_items(text: str) -> None:
    with pytest.raises(ParseError):
        parse_fetch_items_text(text)


@pytest.mark.parametrize(
    ("text", "name", "sets_seen"),
    [
        ("FLAGS", "FLAGS", False),
        ("RFC822", "RFC822", True),
        ("RFC822.HEADER", "RFC822.HEADER", False),
        ("RFC822.TEXT", "RFC822.TEXT", True),
        ("BODY[]", "BODY[]", True),
        ("BODY.PEEK[text]<5.10>", "BODY[TEXT]<5>", False),
        (
            "BODY.PEEK[1.header.fields (from Subject)]",
            "BODY[1.HEADER.FIELDS (FROM SUBJECT)]",
            False,
        ),
        ("BODY[2.MIME]", "BODY[2.MIME]", True),
        ("BINARY.PEEK[1]<0.7>", "BINARY[1]<0>", False),
        ("BINARY[]", "BINARY[]", True),
        ("BINARY.SIZE[2.1]", "BINARY.SIZE[2.1]", False),
    ],
)
def test_response_names(text: str, name: str, sets_seen: bool) -> None:
    (item,) = parse_fetch_items_text(text)
    assert item.response_name() == name
    assert item.sets_seen is sets_seen


def test_header_field_names_may_be_literals() -> None:
    cmd = command(b"a FETCH 1 BODY[HEADER.FIELDS ({7}\r\nSubject)]\r\n")
    assert cmd.args == Fetch(
        parse_sequence_set("1"), (FetchBody(Section((), "HEADER.FIELDS", ("SUBJECT",))),)
    )
