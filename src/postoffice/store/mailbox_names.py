"""What a mailbox may be called: the one check every way of making a name goes through (IMAP
CREATE and RENAME, `postoffice import`, new accounts), enforced by the store itself.

    check_name("Archive/2024")   # -> "Archive/2024"
    check_name("inbox/Later")    # -> "INBOX/Later" (INBOX is case-insensitive, RFC 9051 §5.1)
    check_name("a/../b")         # raises InvalidName

Implementation notes:

- Names become paths (`postoffice export` writes one file or directory per mailbox), so no
  hierarchy level may be empty or made only of dots (``..``, ``.``): no name can climb out of
  a directory or collapse into its parent. Exporters still escape every name; this is the
  second wall.
- Bounds, after Dovecot's (at most 20 levels of at most 200 octets each): listing, CREATE's
  superiors and paths all grow with depth and length, and one 2,000-level name once made every
  LIST of its user take 11.5 s. The whole name is at most 1,000 octets of UTF-8.
- No control characters (C0, DEL, C1): they would be echoed in replies and logs. No ``*`` or
  ``%``: they are LIST wildcards (RFC 9051 §5.1), and a name holding them could not be listed
  by itself.
- The first level ``Shared`` (any case) is where IMAP shows other users' mailboxes (RFC 2342
  other users' namespace), so no mailbox of one's own can live there.
- Names already stored that break a newer rule are still found, listed, renamed away from and
  deleted: only new names are checked (`normalize_name` is all that lookups apply).
"""

from __future__ import annotations

import re

from postoffice.store.interface import InvalidName

__all__ = [
    "HIERARCHY", "MAX_LEVELS", "MAX_LEVEL_OCTETS", "MAX_NAME_OCTETS", "SHARED_ROOT", "check_name",
    "normalize_name",
]

HIERARCHY = "/"
MAX_LEVELS = 20
MAX_LEVEL_OCTETS = 200
MAX_NAME_OCTETS = 1000
SHARED_ROOT = "Shared"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DOTS_ONLY = re.compile(r"\.+")


def normalize_name(name: str) -> str:
    """INBOX is case-insensitive (RFC 9051 §5.1); other names are kept as given."""
    if name.upper() == "INBOX":
        return "INBOX"
    if name.upper().startswith("INBOX" + HIERARCHY):
        return "INBOX" + name[5:]
    return name


def check_name(name: str) -> str:
    """`name` normalised, or :class:`InvalidName` saying in one sentence what is wrong."""
    name = normalize_name(name)
    if not name:
        raise InvalidName("A mailbox name cannot be empty.")
    if _CONTROL.search(name):
        raise InvalidName("A mailbox name cannot contain control characters.")
    if "*" in name or "%" in name:
        raise InvalidName("A mailbox name cannot contain * or %.")
    try:
        octets = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: not a character
        raise InvalidName("A mailbox name must be valid Unicode text.") from None
    if octets > MAX_NAME_OCTETS:
        raise InvalidName(f"A mailbox name can be at most {MAX_NAME_OCTETS} octets long.")
    levels = name.split(HIERARCHY)
    if len(levels) > MAX_LEVELS:
        raise InvalidName(f"A mailbox name can have at most {MAX_LEVELS} levels.")
    for level in levels:
        if not level:
            raise InvalidName(f"A mailbox name cannot start or end with {HIERARCHY} or have {HIERARCHY * 2}.")
        if _DOTS_ONLY.fullmatch(level):
            raise InvalidName("No level of a mailbox name can be . or .. (or only dots).")
        if len(level.encode("utf-8")) > MAX_LEVEL_OCTETS:
            raise InvalidName(f"Each level of a mailbox name can be at most {MAX_LEVEL_OCTETS} octets long.")
    if levels[0].lower() == SHARED_ROOT.lower():
        raise InvalidName(f"{SHARED_ROOT}/ holds other users' mailboxes; choose another name.")
    return name
