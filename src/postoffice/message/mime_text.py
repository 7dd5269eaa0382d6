"""Body text for full-text search and previews.

- RFC 2045 §6.7/§6.8: quoted-printable and base64 transfer encodings (decoded leniently).
- RFC 2046 §4.1.2: the charset parameter of text/* parts.
- RFC 8970: PREVIEW, a short plain-text excerpt of the message.

Only text/plain and text/html are decoded, never attachments, so that parsing stays cheap.
HTML is reduced to its text with regular expressions: enough for search and previews, not a
renderer.
"""
from __future__ import annotations

import binascii
import html
import re

from postoffice.message.mime_headers import decode_bytes, decode_rfc2231, decodes_cleanly

_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_HTML_HIDDEN = re.compile(
    r"<(script|style|head|title)\b.*?</\1\s*>|<!--.*?(?:-->|$)", re.IGNORECASE | re.DOTALL
)
_HTML_TAG = re.compile(r"<[^>]*>?")

PREVIEW_CHARS = 200  # RFC 8970 §3: at most 256 characters; 200 is what clients show


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding; unknown encodings pass through unchanged."""
    if encoding == "base64":
        try:
            return binascii.a2b_base64(data)
        except (binascii.Error, ValueError):
            # Broken padding or stray characters: keep the well-formed prefix of the data.
            data = _B64_JUNK.sub(b"", data)
            data = data[: len(data) - len(data) % 4]
            try:
                return binascii.a2b_base64(data)
            except (binascii.Error, ValueError):
                return b""
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    return data


def charset_of(params: tuple[tuple[str, str], ...]) -> str | None:
    """The charset parameter, also in its RFC 2231 form (`charset*=''utf-8`)."""
    for name, value in params:
        if name == "charset":
            return value
        if name == "charset*":
            return decode_rfc2231(value)
    return None


def html_to_text(markup: str) -> str:
    """Visible text of an HTML document: hidden elements and tags removed, entities decoded."""
    text = _HTML_TAG.sub(" ", _HTML_HIDDEN.sub(" ", markup))
    if "&" in text:
        text = html.unescape(text)
    return text


def part_text(data: bytes, encoding: str, params: tuple[tuple[str, str], ...], is_html: bool) -> str:
    """Decoded text of one text/plain or text/html body."""
    charset = charset_of(params)
    decoded = decode_transfer(data, encoding)
    if encoding == "base64" and data.isascii() and not decodes_cleanly(decoded, charset):
        decoded = data  # labelled base64 but plainly not: index the text as written
    text = decode_bytes(decoded, charset)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if "\x00" in text:
        text = text.replace("\x00", "")
    if is_html:
        text = html_to_text(text)
    return text


def make_preview(text: str) -> str:
    """Up to PREVIEW_CHARS characters of `text`, white space collapsed (RFC 8970 §3)."""
    window = PREVIEW_CHARS * 4
    while True:
        words = text[:window].split()
        preview = " ".join(words)
        if len(preview) >= PREVIEW_CHARS or window >= len(text):
            return preview[:PREVIEW_CHARS].rstrip()
        window *= 4
