"""Line-ending conversion between the store's CRLF and the LF of Unix mail files.

RFC 5322 §2.1 and RFC 5321 §2.3.8 define a message's lines as ending in CRLF, and the store keeps
every message that way, so IMAP sizes and SMTP relaying need no conversion. Unix mail files (mbox,
RFC 4155; Maildir) use bare LF instead. Both functions treat a bare CR as a line end too: a lone
CR is not allowed in a message (RFC 5322 §2.3), and turning it into a line break is what
Dovecot and Postfix do with the same input.

Both run entirely in C (`bytes.count`, `bytes.replace`): they sit on the import and export paths,
where a Python loop over lines would cost more than the rest of the work.
"""

from __future__ import annotations

__all__ = ["to_crlf", "to_lf"]


def to_crlf(data: bytes) -> bytes:
    """Every line end (CRLF, bare LF, bare CR) as CRLF. Returns `data` itself when already so."""
    if b"\r" not in data:
        # The common case for a Unix file: only LF, one pass.
        return data.replace(b"\n", b"\r\n")
    crlf = data.count(b"\r\n")
    if crlf == data.count(b"\n") and crlf == data.count(b"\r"):
        # Already CRLF throughout (mail from the store, from SMTP): no copy at all.
        return data
    # Mixed endings: collapse every kind to LF first, so an existing CRLF is not doubled.
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def to_lf(data: bytes) -> bytes:
    """Every line end (CRLF, bare CR, LF) as LF. Returns `data` itself when it has no CR."""
    if b"\r" not in data:
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
