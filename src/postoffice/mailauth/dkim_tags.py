"""DKIM tag=value lists (RFC 6376 §3.2): the syntax of DKIM-Signature, key records and ARC fields.

    >>> parse_tag_list("v=1; a=rsa-sha256; d=example.org; b=dGVz\\r\\n dA==")["b"]
    'dGVz\\r\\n dA=='

The parser is strict, because a signature whose syntax is doubtful must not verify: a tag name is
ALPHA *(ALPHA / DIGIT / "_"), a value holds VALCHARs (printable ASCII but ";", and UTF-8 for
RFC 8616) separated by folding white space, a tag may appear only once, and only the last
tag-spec may be empty (a trailing ";"). Names are case-sensitive. Values are returned with their
inner white space as written (``b=`` and ``p=`` callers remove it with `strip_fws`), and without
the white space around them. Errors are `TagListError` with one plain sentence naming the tag.
"""

from __future__ import annotations

import re

__all__ = ["TagListError", "parse_tag_list", "split_colon_list", "strip_fws"]

# Limits that keep a hostile header cheap: RFC 6376 needs a dozen tags; key records a few more.
MAX_TAGS = 64

_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# VALCHAR = %x21-3A / %x3C-7E (RFC 6376 §3.2), UTF-8 allowed (RFC 8616 §4), WSP and CRLF as FWS.
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class TagListError(ValueError):
    """The text is not a valid tag-list; the message says what is wrong in one sentence."""


def parse_tag_list(text: str) -> dict[str, str]:
    """The tags of ``text`` in the order written, values stripped of surrounding white space."""
    if _broken_fold(text.rstrip("\r\n")):
        raise TagListError("a line break that is not folding white space")
    specs = text.split(";")
    if len(specs) > MAX_TAGS + 1:
        raise TagListError(f"more than {MAX_TAGS} tags")
    # Printable ASCII and FWS only (nearly every real tag-list): no value needs the search below.
    clean = text.isascii() and text.replace("\t", " ").replace("\r", " ").replace("\n", " ").isprintable()
    tags: dict[str, str] = {}
    for position, spec in enumerate(specs):
        if not spec.strip(" \t\r\n"):
            if position == len(specs) - 1 and position > 0:
                break  # a trailing ";" is allowed
            raise TagListError("an empty tag (two semicolons in a row, or nothing at all)")
        name, equals, value = spec.partition("=")
        name = name.strip(" \t\r\n")
        if not equals:
            raise TagListError(f"{_show(name)} has no '='")
        if not _TAG_NAME.fullmatch(name):
            raise TagListError(f"{_show(name)} is not a tag name")
        if name in tags:
            raise TagListError(f"the tag {name}= appears twice")
        value = value.strip(" \t\r\n")
        if not clean and (bad := _BAD_VALUE_CHAR.search(value)):
            raise TagListError(f"the value of {name}= holds the control character {bad.group()!r}")
        tags[name] = value
    return tags


def _broken_fold(text: str) -> bool:
    """Whether ``text`` has a CR or LF that is not part of a fold (CRLF followed by SP or HTAB):
    counted by C-level scans, since a regex looking around every character cost more than the
    rest of parsing a DKIM-Signature."""
    if "\n" not in text and "\r" not in text:
        return False
    crlf = text.count("\r\n")
    return not (text.count("\r") == crlf == text.count("\n")
                and crlf == text.count("\r\n ") + text.count("\r\n\t"))


def strip_fws(value: str) -> str:
    """``value`` without any white space: for base64 values (b=, bh=, p=), where FWS is ignored.
    Four C-level passes: a regex substitution cost several times more on a 2048-bit b=."""
    return value.replace(" ", "").replace("\t", "").replace("\r", "").replace("\n", "")


def split_colon_list(value: str) -> list[str]:
    """A colon-separated list (h=, k= h=, s=), each item without surrounding white space."""
    return [item.strip(" \t\r\n") for item in value.split(":")]


def _show(text: str) -> str:
    text = " ".join(text.split())
    return repr(text[:40] + ("..." if len(text) > 40 else ""))
