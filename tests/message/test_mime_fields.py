"""Header-field helpers of the MIME parser, and the stored JSON form of the structure."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_mime_parse import NESTED

from postoffice.message.mime import (
    Address,
    BodyPart,
    Envelope,
    dump_structure,
    load_structure,
    parse_message,
)
from postoffice.message.mime_address import parse_address_list
from postoffice.message.mime_headers import (
    decode_rfc2231,
    decode_words,
    parse_content_type,
    parse_fields,
)


def _unfold(value: str) -> str:
    fields = parse_fields(b"X: " + value.encode("utf-8"))
    return fields[0][2] if fields else ""


def test_structure_round_trips_exactly() -> None:
    meta = parse_message(NESTED)
    text = dump_structure(meta.envelope, meta.body)
    assert text.startswith("[1,[") and len(json.loads(text)) == 3
    assert '"type"' not in text and '"subtype"' not in text  # positional lists
    assert load_structure(text) == (meta.envelope, meta.body)
    _, body = load_structure(text)
    assert isinstance(body.params, tuple) and isinstance(body.children[0], BodyPart)
    assert body.children[1].message is not None
    assert isinstance(body.children[1].message[0].from_, tuple)


def test_structure_round_trips_every_optional_field() -> None:
    envelope = Envelope("d", "s", (Address("n", "@r", "m", "h"),), None, (), None, None, None,
                        "<i>", "<m>")
    leaf = BodyPart("text", "plain", (("charset", "utf-8"), ("x", '"q"\\')), "<id>", "dé",
                    "quoted-printable", 10, 2, "md5", ("inline", (("filename", "a.txt"),)),
                    ("en", "fr"), "http://l", (), None, 0, 5, 15)
    outer = BodyPart("message", "rfc822", (), None, None, "7bit", 20, 3, None, None, None, None,
                     (), (envelope, leaf), 0, 0, 20)
    assert load_structure(dump_structure(envelope, outer)) == (envelope, outer)


@pytest.mark.parametrize("text", ["", "[]", "[2,[],[]]", "[1,[1],[2]]", "{}", "not json"])
def test_load_structure_rejects_foreign_text(text: str) -> None:
    with pytest.raises(ValueError):
        load_structure(text)


def test_decode_words_rfc2047() -> None:
    assert decode_words("=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=") == "ab"  # §8 examples
    assert decode_words("=?ISO-8859-1?Q?a?=  \r\n  =?ISO-8859-1?Q?b?=") == "ab"
    assert decode_words("=?ISO-8859-1?Q?a_b?=") == "a b"
    assert decode_words("(=?ISO-8859-1?Q?a?= b)") == "(a b)"
    assert decode_words("=?utf-8*en?b?w6k=?=") == "é"  # RFC 2231 §5 language suffix
    assert decode_words("=?x-bogus?q?abc?=") == "abc"
    assert decode_words("=?utf-8?b?!!!?= plain") == "=?utf-8?b?!!!?= plain"  # kept as is
    assert decode_words("=?utf-8?b?w6k?=") == "é"  # missing padding
    assert decode_words("no words here") == "no words here"


def test_rfc2231_decoding() -> None:
    assert decode_rfc2231("utf-8''%E2%82%AC%20rates.pdf") == "€ rates.pdf"
    assert decode_rfc2231("iso-8859-1'de'Fr%F6sche") == "Frösche"
    assert decode_rfc2231("broken%zz") == "broken%zz"


def test_content_type_parameters() -> None:
    assert parse_content_type('Text/HTML; Charset="UTF-8"; format=flowed') == (
        "text", "html", (("charset", "UTF-8"), ("format", "flowed")),
    )
    assert parse_content_type("text/plain (note); charset=us-ascii (Plain text)") == (
        "text", "plain", (("charset", "us-ascii"),),
    )
    assert parse_content_type("application/octet-stream; name=report(1).pdf") == (
        "application", "octet-stream", (("name", "report(1).pdf"),),
    )
    assert parse_content_type('a/b; name="unterminated; x=y') == (
        "a", "b", (("name", "unterminated; x=y"),),
    )
    assert parse_content_type("a/b; x=1; x=2; bare; =v") == ("a", "b", (("x", "1"),))
    for invalid in ("", "text", "/plain", "text/", "inline; a=b"):
        assert parse_content_type(invalid) is None


def test_address_list_edge_cases() -> None:
    assert parse_address_list("") is None
    assert parse_address_list(" , ,") is None
    assert parse_address_list("a@b (c (nested) d)") == (Address("c (nested) d", None, "a", "b"),)
    assert parse_address_list('"unterminated <x@y>') == (
        Address(None, None, '"unterminated <x@y>"', "MISSING_DOMAIN"),
    )
    assert parse_address_list("g: a@b") == (
        Address(None, None, "g", None), Address(None, None, "a", "b"),
        Address(None, None, None, None),
    )
    assert parse_address_list("<a@[127.0.0.1]>") == (Address(None, None, "a", "[127.0.0.1]"),)
    assert parse_address_list("J. R. R. Tolkien <jrrt@x.org>") == (
        Address("J. R. R. Tolkien", None, "jrrt", "x.org"),
    )


def _vectors(corpora: Path, name: str) -> list[dict[str, object]]:
    path = corpora / "mime-mail-parser-stalwart" / "headers" / f"{name}.json"
    return json.loads(path.read_text())


def test_mail_parser_address_vectors_keep_every_addr_spec(corpora: Path) -> None:
    for vector in _vectors(corpora, "address"):
        header = str(vector["header"])
        ours = parse_address_list(_unfold(header)) or ()
        expected = vector["expected"]
        listed: list[dict[str, object]] = []
        if isinstance(expected, dict) and "List" in expected:
            listed = expected["List"]
        elif isinstance(expected, dict) and "Group" in expected:
            listed = [a for g in expected["Group"] for a in g["addresses"]]
        want = {str(a["address"]) for a in listed if a["address"]
                and "@" in str(a["address"]) and not set(":< ") & set(str(a["address"]))}
        assert want <= {f"{a.mailbox}@{a.host}" for a in ours if a.host}, header


def test_mail_parser_content_type_vectors(corpora: Path) -> None:
    for vector in _vectors(corpora, "content_type"):
        expected = vector["expected"]
        ours = parse_content_type(_unfold(str(vector["header"])))
        if ours is None:
            # Ours rejects what RFC 2045 §5.2 calls invalid; mail-parser keeps the fragment.
            assert not isinstance(expected, dict) or not expected.get("c_subtype")
            continue
        assert isinstance(expected, dict)
        assert (ours[0], ours[1]) == (expected["c_type"].lower(), expected["c_subtype"].lower())


def test_mail_parser_unstructured_vectors(corpora: Path) -> None:
    for vector in _vectors(corpora, "unstructured"):
        header, expected = str(vector["header"]), str(vector["expected"])
        if header.startswith("[SUSPECTED SPAM]="):
            continue  # mail-parser adds a space before a glued encoded-word; RFC 2047 does not
        assert " ".join(decode_words(_unfold(header)).split()) == " ".join(expected.split())
