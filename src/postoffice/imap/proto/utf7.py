"""Modified UTF-7 for IMAP mailbox names (RFC 3501 §5.1.3; RFC 9051 §5.1 keeps it for IMAP4rev1).

:func:`encode_utf7` turns a mailbox name into its wire form, :func:`decode_utf7` back, raising
:class:`Utf7Error` for anything that is not exactly what :func:`encode_utf7` would have produced.

Implementation notes:

- Printable US-ASCII (0x20-0x7E) stands for itself, except ``&``, which is written ``&-``. Every
  run of other characters is ``&`` + base64 of its UTF-16BE form + ``-``, with ``,`` instead of
  ``/`` and no ``=`` padding.
- Decoding is strict, as Dovecot's is: octets outside 0x20-0x7E, an ``&`` without its ``-``,
  characters outside the modified base64 alphabet, leftover bits that are not zero, a shift that
  encodes printable ASCII (which must stand for itself), two shifts in a row (an encoder writes
  one) and unpaired UTF-16 surrogates are all errors. The rule behind all of them: a name is
  valid when re-encoding what it decodes to gives back the same text, so that one mailbox has
  exactly one wire name. The check costs one encode.
- Both directions work a run at a time with regular expressions, never a character at a time.
"""

from __future__ import annotations

import binascii
import re

__all__ = ["Utf7Error", "decode_utf7", "encode_utf7"]


class Utf7Error(ValueError):
    """The text is not valid modified UTF-7."""


# Runs that need a base64 shift: anything but printable ASCII. "&" is handled on its own.
_NEEDS_SHIFT = re.compile(r"[^\x20-\x7e]+")
# A shift: "&", modified base64, "-". "&-" (empty) is the escaped "&".
_SHIFT = re.compile(r"&([A-Za-z0-9+,]*)-")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def _encode_run(match: re.Match[str]) -> str:
    try:
        utf16 = match.group().encode("utf-16-be")
    except UnicodeEncodeError as exc:  # a lone surrogate: not a character
        raise Utf7Error("a mailbox name cannot contain lone surrogates") from exc
    b64 = binascii.b2a_base64(utf16, newline=False).rstrip(b"=").replace(b"/", b",")
    return "&" + b64.decode("ascii") + "-"


def encode_utf7(name: str) -> str:
    """The modified UTF-7 form of a mailbox name: ``"Entwürfe"`` -> ``"Entw&APw-rfe"``.

    Raises :class:`Utf7Error` for a lone surrogate, which UTF-16 cannot carry.
    """
    if name.isascii() and "&" not in name and _PRINTABLE.fullmatch(name):
        return name  # the common case: nothing to do
    return _NEEDS_SHIFT.sub(_encode_run, name.replace("&", "&-"))


def _decode_run(match: re.Match[str]) -> str:
    b64 = match.group(1)
    if not b64:
        return "&"
    padded = b64.replace(",", "/") + "=" * (-len(b64) % 4)
    try:
        raw = binascii.a2b_base64(padded.encode("ascii"), strict_mode=True)
        return raw.decode("utf-16-be")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Utf7Error(f"invalid modified base64 {match.group()!r}") from exc


def decode_utf7(text: str | bytes) -> str:
    """The mailbox name a modified UTF-7 wire name stands for; :class:`Utf7Error` if invalid."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise Utf7Error("8-bit octet in a modified UTF-7 name") from exc
    if not _PRINTABLE.fullmatch(text):
        raise Utf7Error("control character or 8-bit octet in a modified UTF-7 name")
    if "&" not in text:
        return text
    decoded = _SHIFT.sub(_decode_run, text)
    # Canonical form only: this catches an unterminated "&", non-zero leftover bits, shifted
    # printable ASCII, adjacent shifts and shifts that split a surrogate pair.
    if encode_utf7(decoded) != text:
        raise Utf7Error(f"not canonical modified UTF-7: {text!r}")
    return decoded
