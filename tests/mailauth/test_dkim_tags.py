"""RFC 6376 §3.2 tag=value lists: what parses, and the plain errors for what does not."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postoffice.mailauth.dkim_tags import TagListError, parse_tag_list, split_colon_list, strip_fws


def test_tags_keep_their_order_and_lose_surrounding_white_space() -> None:
    tags = parse_tag_list(" v=1; a = rsa-sha256 ;\r\n\td=example.org;\r\n h=from : to; b=ab\r\n cd;")
    assert tags == {"v": "1", "a": "rsa-sha256", "d": "example.org", "h": "from : to",
                    "b": "ab\r\n cd"}
    assert strip_fws(tags["b"]) == "abcd"
    assert split_colon_list(tags["h"]) == ["from", "to"]


def test_values_may_be_empty_and_hold_equals_signs() -> None:
    assert parse_tag_list("p=; n=a=b") == {"p": "", "n": "a=b"}


@pytest.mark.parametrize(("text", "complaint"), [
    ("v=1;; a=x", "empty tag"),
    ("", "empty tag"),
    (";", "empty tag"),
    ("v=1; a", "has no '='"),
    ("v=1; 9a=x", "not a tag name"),
    ("v=1; a-b=x", "not a tag name"),
    ("v=1; v=2", "appears twice"),
    ("v=1; a=x\x00y", "control character"),
    ("v=1; a=x\r\nb=y", "folding"),
    ("v=1; a=x\ny", "folding"),
    ("v=1;" * 70, "more than 64 tags"),
])
def test_malformed_lists_give_one_plain_sentence(text: str, complaint: str) -> None:
    with pytest.raises(TagListError, match=complaint):
        parse_tag_list(text)


def test_tag_names_are_case_sensitive() -> None:
    assert parse_tag_list("a=1; A=2") == {"a": "1", "A": "2"}


@given(st.text(max_size=300))
def test_any_text_parses_or_raises_tag_list_error(text: str) -> None:
    try:
        tags = parse_tag_list(text)
    except TagListError:
        return
    assert all(";" not in v for v in tags.values())
