"""A message read once for DKIM, ARC and DMARC (dkim_canon.SplitMessage, what
smtp/inbound_checks.py hands all three): each gives the same results from it as from the bytes,
and DMARC finds the same From domains in its fields as the MIME parser (mime_headers.parse_fields)
does, which is the From that mail clients show."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.mailauth.memory_resolver import MemoryResolver
from tests.mailauth.test_arc import MESSAGE, resolver, seal

from postoffice.mailauth.arc import check_arc, has_arc_fields
from postoffice.mailauth.dkim import sign_message, verify_dkim
from postoffice.mailauth.dkim_canon import SplitMessage
from postoffice.mailauth.dmarc import author_domains

KEY = ed25519.Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def zone() -> MemoryResolver:
    arc_zone = resolver()
    arc_zone.records["sel._domainkey.example.com"] = {"TXT": [f"v=DKIM1; k=ed25519; p={PUBLIC}"]}
    return arc_zone


async def test_dkim_arc_and_dmarc_give_the_same_results_from_one_split_message() -> None:
    signed = sign_message(MESSAGE, "example.com", "sel", KEY) + MESSAGE
    sealed = seal(seal(signed, "lists.example"), "fwd.example")
    split = SplitMessage.parse(sealed)
    assert has_arc_fields(split.fields)
    dkim = await verify_dkim(zone(), split)
    assert [r.result for r in dkim] == ["pass"]
    assert dkim == await verify_dkim(zone(), sealed)
    arc = await check_arc(zone(), split)
    assert arc.result == "pass" and arc.sealers == ("lists.example", "fwd.example")
    assert arc == await check_arc(zone(), sealed)
    assert author_domains(split) == author_domains(sealed)
    assert author_domains(split).domains == ("example.com",)


def test_a_split_message_with_bare_lf_is_read_as_crlf() -> None:
    split = SplitMessage.parse(b"From: a@one.example\nSubject: x\n\nline\n")
    assert [f.raw for f in split.fields] == [b"From: a@one.example\r\n", b"Subject: x\r\n"]
    assert split.body == b"line\r\n" and split.size == 37
    assert not has_arc_fields(split.fields)


HEADERS = [
    b"From: a@one.example\r\n\r\nbody\r\n",
    b"From: Alice\r\n <a@one.example>\r\n\r\n",
    b"From:\r\n\ta@one.example\r\n\r\n",
    b"From : a@one.example\r\n\r\n",  # obs-optional white space before the colon
    b"FROM: a@one.example\r\n\r\n",
    b"Fr\x00om: a@evil.example\r\n\r\n",  # the MIME parser drops NULs, so clients see a From
    b"From \x00: a@evil.example\r\n\r\n",
    b"From\r\n : a@evil.example\r\n\r\n",  # the name folded before its colon
    b"From: a@ev\x00il.example\r\n\r\n",
    b"From: Andr\xe9 <a@one.example>\r\n\r\n",  # not UTF-8: cp1252
    "From: a@b\u00fccher.example\r\n\r\n".encode(),
    b"From: a@one.example\r\nFrom: b@two.example\r\n\r\n",
    b"From: a@one.example\nTo: b@x.example\n\nbody",
    b"From bob@x.example Mon Dec  7 10:00:00 2026\r\nFrom: a@one.example\r\n\r\n",
    b"To: b@x.example\r\n\r\n",
    b"From\r\n\r\n",
    b"From: team: a@one.example, b@two.example;\r\n\r\n",
    b"From: a@one.example",  # no empty line: all header
    b" stray continuation\r\nFrom: a@one.example\r\n\r\n",
    b"\r\nFrom: a@one.example\r\n",  # no header at all: that is the body
    b"From: undisclosed\r\n\r\n",
    b"From: a@[192.0.2.1]\r\n\r\n",
]


@pytest.mark.parametrize("raw", HEADERS)
def test_split_fields_give_the_from_domains_the_mime_parser_finds(raw: bytes) -> None:
    assert author_domains(SplitMessage.parse(raw)) == author_domains(raw)


@pytest.mark.parametrize("raw", [b"Fr\x00om: a@evil.example\r\n\r\n", b"From\r\n : a@evil.example\r\n\r\n"])
def test_a_from_field_hidden_by_a_nul_or_a_fold_is_still_judged(raw: bytes) -> None:
    assert author_domains(SplitMessage.parse(raw)).domains == ("evil.example",)


_PIECES = [b"From", b"from", b"To", b":", b" ", b"\t", b"\r\n", b"\n", b"\r", b"\x00", b"\xe9", b"\r\n ",
           b"a@one.example", b"<b@two.example>", b",", b";", b"(c)", b"\"q\"", b"x", b"@"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=24))
def test_fuzz_split_fields_and_the_mime_parser_agree_on_from(pieces: list[bytes]) -> None:
    raw = b"".join(pieces)
    assert author_domains(SplitMessage.parse(raw)) == author_domains(raw)
