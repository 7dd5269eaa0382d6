"""The hot paths of the port-25 checks are written with C-level str/bytes methods instead of the
regexes and per-character loops that state the rules plainly; here each is held to that plain
statement on generated text full of the characters that matter (white space, line breaks,
controls, specials, non-ASCII, lone surrogates). The PTR name is held to dnspython's."""
from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address

import dns.reversename
from hypothesis import given, settings
from hypothesis import strategies as st

from postoffice.mailauth import results, spf
from postoffice.mailauth.dkim_canon import canonicalize_header
from postoffice.mailauth.dkim_tags import TagListError, parse_tag_list, strip_fws
from postoffice.mailauth.resolver import reverse_name

_ALPHABET = list("aZ09@.-_=;:,()<>[]?/\\\"' \t\r\n\x00\x0b\x7f~!#\u00e9\u00a0\udc80")
TEXT = st.lists(st.sampled_from(_ALPHABET), max_size=16).map("".join)
EXAMPLES = settings(max_examples=400, deadline=None)


@EXAMPLES
@given(TEXT)
def test_relaxed_header_canonicalisation_is_rfc_6376_3_4_2(text: str) -> None:
    raw = text.encode("utf-8", "surrogateescape")
    name, _, value = raw.partition(b":")
    value = re.sub(rb"[ \t]+", b" ", value.replace(b"\r\n", b"")).strip(b" ")
    assert canonicalize_header("relaxed", raw) == name.rstrip(b" \t").lower() + b":" + value + b"\r\n"


@EXAMPLES
@given(TEXT)
def test_strip_fws_removes_exactly_fws(text: str) -> None:
    assert strip_fws(text) == re.sub(r"[ \t\r\n]+", "", text)


@EXAMPLES
@given(TEXT)
def test_a_tag_list_line_break_must_be_a_fold(text: str) -> None:
    broken = re.search(r"\r(?!\n)|(?<!\r)\n|\r\n(?![ \t])", ("a=" + text).rstrip("\r\n")) is not None
    try:
        parse_tag_list("a=" + text)
    except TagListError as error:
        assert broken == ("line break" in str(error))
    else:
        assert not broken


@EXAMPLES
@given(TEXT)
def test_a_tag_value_with_a_control_character_is_refused(text: str) -> None:
    value = text.replace(";", "").replace("\r", "").replace("\n", "").strip(" \t")
    bad = re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", value)
    try:
        parse_tag_list("a=" + value)
    except TagListError as error:
        assert bad is not None and "control character" in str(error)
    else:
        assert bad is None


_SPECIALS = set('()<>@,;:\\"/[]?= \t')


@EXAMPLES
@given(TEXT)
def test_an_authentication_results_value_is_bare_only_when_rfc_8601_allows(text: str) -> None:
    bare = bool(text) and not any(c in _SPECIALS or not 33 <= ord(c) <= 126 for c in text.replace("@", ""))
    assert (results._value(text) == text) == bare  # else quoted


@EXAMPLES
@given(TEXT)
def test_unprintable_characters_become_question_marks(text: str) -> None:
    plain = "".join("?" if c < " " or c == "\x7f" or "\ud800" <= c <= "\udfff" else c for c in text)
    assert results._printable(text) == plain


_ATEXT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")


@EXAMPLES
@given(TEXT)
def test_a_received_spf_value_is_bare_only_as_a_dot_atom(text: str) -> None:
    dot_atom = bool(text) and all(part and set(part) <= _ATEXT for part in text.split("."))
    assert (spf._header_value(text) == text) == dot_atom


@EXAMPLES
@given(st.one_of(st.ip_addresses(), st.ip_addresses(v=4).map(lambda v4: IPv6Address(f"::ffff:{v4}"))))
def test_the_ptr_name_is_dnspythons(address: IPv4Address | IPv6Address) -> None:
    expected = dns.reversename.from_address(str(address)).to_text(omit_final_dot=True)
    assert reverse_name(address) == reverse_name(str(address)) == expected
