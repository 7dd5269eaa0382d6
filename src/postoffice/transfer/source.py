"""What every mail-file reader yields, its error, and the flag letters the file formats share.

The readers (`mbox.read_mbox`, `maildir.read_maildir`, `eml.read_eml`) turn a file format into a
stream of `SourceMessage` records and know nothing of the store; an importer hands each record to
the delivery pipeline. The writers take the same fields back.

Flags use IMAP's names (RFC 9051 §2.3.2): the system flags `\\Seen`, `\\Answered`, `\\Flagged`,
`\\Deleted`, `\\Draft`, and keywords such as `$Forwarded` (RFC 5788 registry). The tables below map
them to the letters of the mbox `Status:`/`X-Status:` headers (the convention of UW-IMAP, mutt and
Dovecot; RFC 4155 leaves it unspecified) and of the Maildir `:2,` info suffix
(https://cr.yp.to/proto/maildir.html). `\\Recent` is never read or written: it belongs to a session.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "ANSWERED",
    "DELETED",
    "DRAFT",
    "FLAGGED",
    "FORWARDED",
    "SEEN",
    "SYSTEM_FLAGS",
    "SourceMessage",
    "TransferError",
    "flags_from_maildir_info",
    "flags_from_mbox_status",
    "is_keyword",
    "keywords_of",
    "maildir_info_letters",
    "mbox_status_letters",
]

SEEN = "\\Seen"
ANSWERED = "\\Answered"
FLAGGED = "\\Flagged"
DELETED = "\\Deleted"
DRAFT = "\\Draft"
FORWARDED = "$Forwarded"
SYSTEM_FLAGS = frozenset({SEEN, ANSWERED, FLAGGED, DELETED, DRAFT})

# mbox: `Status: R` marks a read message; `O` ("old", no longer \Recent) carries no flag.
_STATUS_LETTERS = {"R": SEEN}
_X_STATUS_LETTERS = {"A": ANSWERED, "F": FLAGGED, "D": DELETED, "T": DRAFT}
# Maildir: the six upper-case letters of the info suffix. P ("passed": resent, forwarded or
# bounced) has no system flag; $Forwarded is the keyword clients use for the same thing.
_MAILDIR_LETTERS = {
    "D": DRAFT,
    "F": FLAGGED,
    "P": FORWARDED,
    "R": ANSWERED,
    "S": SEEN,
    "T": DELETED,
}
_MAILDIR_LETTER_OF = {flag: letter for letter, flag in _MAILDIR_LETTERS.items()}

# RFC 9051 §9: flag-keyword = atom, atom-specials excluded (and "]", which resp-specials adds).
_KEYWORD = re.compile(r'[^\x00-\x20\x7f(){%*"\\\]]+')


class TransferError(Exception):
    """A mail file or folder that cannot be read or written; the message is one plain sentence."""


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """One message read from a mail file, ready to hand to delivery.

    `raw` has CRLF line endings and no format-only headers (see each reader); `flags` uses IMAP
    names; `internal_date` is timezone-aware or None; `folder` is an IMAP mailbox name with "/"
    as the separator; `source_id` identifies the message within its source, stable across runs,
    so an interrupted import can resume.
    """

    raw: bytes
    flags: frozenset[str]
    internal_date: datetime | None
    folder: str
    source_id: str


def is_keyword(name: str) -> bool:
    """True for a name usable as an IMAP keyword (an atom that is not a `\\` system flag)."""
    return _KEYWORD.fullmatch(name) is not None


def keywords_of(flags: Iterable[str]) -> list[str]:
    """The keywords among `flags` (everything but system flags and `\\Recent`), sorted."""
    return sorted(f for f in flags if not f.startswith("\\"))


def flags_from_mbox_status(status: str, x_status: str) -> set[str]:
    """Flags from the letters of an mbox `Status:` and `X-Status:` header; unknown letters ignored."""
    flags = {_STATUS_LETTERS[c] for c in status if c in _STATUS_LETTERS}
    flags.update(_X_STATUS_LETTERS[c] for c in x_status if c in _X_STATUS_LETTERS)
    return flags


def mbox_status_letters(flags: Iterable[str]) -> tuple[str, str]:
    """The `Status:` and `X-Status:` values for `flags`; X-Status is "" when no letter applies.

    Status always carries `O`: the message has been seen by a mail program, so an mbox reader
    such as mutt does not show it as new; `R` is added for \\Seen.
    """
    flags = set(flags)
    status = "RO" if SEEN in flags else "O"
    x_status = "".join(c for c, flag in _X_STATUS_LETTERS.items() if flag in flags)
    return status, x_status


def flags_from_maildir_info(info: str, keyword_names: dict[str, str] | None = None) -> set[str]:
    """Flags from the letters after `:2,`; lower-case letters are keywords looked up in
    `keyword_names` (Dovecot's `dovecot-keywords` file) and dropped when it has no name for them.

    The letters end at the first character that is not a letter (Dovecot may append `,` fields).
    """
    flags: set[str] = set()
    for c in info:
        if not c.isascii() or not c.isalpha():
            break
        if c in _MAILDIR_LETTERS:
            flags.add(_MAILDIR_LETTERS[c])
        elif keyword_names and c in keyword_names:
            flags.add(keyword_names[c])
    return flags


def maildir_info_letters(
    flags: Iterable[str], keyword_letters: dict[str, str] | None = None
) -> str:
    """The letters after `:2,` for `flags`, in ASCII order as the Maildir specification requires.

    Keywords become the lower-case letter `keyword_letters` gives them; a keyword without a
    letter is left out (the caller decides whether to assign one).
    """
    letters = set()
    for flag in flags:
        if flag in _MAILDIR_LETTER_OF:
            letters.add(_MAILDIR_LETTER_OF[flag])
        elif keyword_letters and flag in keyword_letters:
            letters.add(keyword_letters[flag])
    return "".join(sorted(letters))
