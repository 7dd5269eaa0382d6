"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3): round trips and strict decoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postoffice.imap.proto.utf7 import Utf7Error, decode_utf7, encode_utf7

PAIRS = [
    ("", ""),
    ("INBOX", "INBOX"),
    ("a b/c.d", "a b/c.d"),
    ("&", "&-"),
    ("Tom & Jerry", "Tom &- Jerry"),
    ("Entwürfe", "Entw&APw-rfe"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 §5.1.3
    ("pää", "p&AOQA5A-"),  # imaptest mutf7
    ("😀", "&2D3eAA-"),  # a surrogate pair in one shift
    ("ä&ö", "&AOQ-&-&APY-"),
    ("\x7f", "&AH8-"),  # DEL is not printable
    ("tab\there", "tab&AAk-here"),
    ("Ünïcödé?", "&ANw-n&AO8-c&APY-d&AOk-?"),
    ("//??", "//??"),
    ("ÿÿÿ", "&AP8A,wD,-"),  # "," replaces "/"
]


@pytest.mark.parametrize(("name", "wire"), PAIRS)
def test_round_trip(name: str, wire: str) -> None:
    assert encode_utf7(name) == wire
    assert decode_utf7(wire) == name
    assert decode_utf7(wire.encode("ascii")) == name


@pytest.mark.parametrize(
    "wire",
    [
        "&",  # unterminated
        "a&b",
        "&AOQ",  # no "-"
        "&AOQ-&APY-",  # two shifts in a row: an encoder writes one
        "&AGE-",  # "a" must stand for itself
        "&ACY-",  # "&" must be "&-"
        "&AOR-",  # leftover bits not zero
        "&AO-",  # half a UTF-16 unit
        "&2D0-",  # unpaired high surrogate
        "&2D3-&3gA-",  # a surrogate pair split across shifts
        "&AOQ=-",  # "=" is not in the alphabet
        "&AO/k-",  # "/" is not in modified base64
        "ä",  # 8-bit
        "a\tb",  # control character
        "a\x00b",
    ],
)
def test_invalid_names_are_refused(wire: str) -> None:
    with pytest.raises(Utf7Error):
        decode_utf7(wire)


def test_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises(Utf7Error):
        encode_utf7("a\ud800b")


def test_8bit_bytes_are_refused() -> None:
    with pytest.raises(Utf7Error):
        decode_utf7("ä".encode())


@given(st.text())
def test_any_text_round_trips(name: str) -> None:
    wire = encode_utf7(name)
    assert wire.isascii()
    assert decode_utf7(wire) == name


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30))
def test_decoding_random_ascii_either_works_or_raises_utf7error(wire: str) -> None:
    try:
        name = decode_utf7(wire)
    except Utf7Error:
        return
    assert encode_utf7(name) == wire
