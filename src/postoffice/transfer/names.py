"""Mailbox names as file and folder names: escaped reversibly, so no name can become a path.

A mailbox name is data a user chose (IMAP CREATE, or a folder another server or an old version
let through): `../../x`, `.`, `a//b`, `.hidden`, a NUL or a newline. An export turns each level of
the name (the parts between `/`) into one file-name component that is never `.`, `..`, empty,
hidden or carrying a `/`, and an import turns it back; the mapping is one-to-one, so two mailboxes
never share a file, and `escape` then `unescape` gives back the name.

mbox trees (`export --format mbox` of several mailboxes): level `a` of `a/b` is the folder `a`,
the last level the file `b.mbox`. Percent-encoding (`%` + two upper-case hex digits, as in URLs):
`%`, `/`, control characters and DEL always; a leading `.` (so `.`, `..` and hidden names cannot
occur); the `.` of a level ending in `.mbox`, so a folder (`a`) never has the name of a file
(`a.mbox`). An empty level is a lone `%`, which the encoding never produces otherwise.

Maildir++ (`export --format maildir`): the folder `.a.b` holds mailbox `a/b`, so `.` separates
levels. Each level is written in IMAP's modified UTF-7 (RFC 3501 §5.1.3), as Dovecot (by default)
and Courier keep folder names on disk (`Entwürfe` is `.Entw&APw-rfe`, `R&D` is `.R&-D`), then
Dovecot's listescape convention (`\\` + two lower-case hex digits; Dovecot and our reader decode
it) for `\\`, `.` and `/`. An empty level is a lone `\\`. Reading undoes both; a level that is not
valid modified UTF-7 (a tool that writes UTF-8 names) is taken as it is.

mbox trees leave every other character (spaces, non-ASCII, upper and lower case) as it is: names
stay readable in a file manager. Names that differ only in case can still meet on a case-insensitive
file system; the exporter notices that (two names, one file) and refuses.
"""

from __future__ import annotations

import re

from postoffice.imap.proto.utf7 import Utf7Error, decode_utf7, encode_utf7

__all__ = [
    "MBOX_SUFFIX",
    "folder_level",
    "mailbox_of_maildir_folder",
    "mailbox_of_mbox_path",
    "maildir_folder_name",
    "maildir_level",
    "mbox_level",
    "mbox_path_parts",
    "unescape_maildir_level",
    "unescape_mbox_level",
]

MBOX_SUFFIX = ".mbox"
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_BACKSLASH = re.compile(r"\\([0-9A-Fa-f]{2})")


def _is_control(c: str) -> bool:
    return ord(c) < 0x20 or ord(c) == 0x7F


def mbox_level(level: str) -> str:
    """One level of a mailbox name as a file-name component of an mbox tree (without `.mbox`).

    >>> [mbox_level(x) for x in ("Sent", "..", "", "50%", "a.mbox")]
    ['Sent', '%2E.', '%', '50%25', 'a%2Embox']
    """
    if not level:
        return "%"
    out = "".join(f"%{ord(c):02X}" if c in "%/" or _is_control(c) else c for c in level)
    if out.startswith("."):
        out = "%2E" + out[1:]
    if out.lower().endswith(MBOX_SUFFIX):
        out = out[: -len(MBOX_SUFFIX)] + "%2E" + out[-len(MBOX_SUFFIX) + 1 :]
    return out


def unescape_mbox_level(part: str) -> str:
    """The level `mbox_level` made `part` from; text that is not an escape stays as it is."""
    if part == "%":
        return ""
    return _PERCENT.sub(lambda m: chr(int(m[1], 16)), part)


def mbox_path_parts(name: str) -> list[str]:
    """The path components, relative to an mbox tree's root, of the file holding `name`.

    >>> mbox_path_parts("../../../ESCAPED")
    ['%2E.', '%2E.', '%2E.', 'ESCAPED.mbox']
    """
    levels = [mbox_level(level) for level in name.split("/")]
    levels[-1] += MBOX_SUFFIX
    return levels


def mailbox_of_mbox_path(parts: list[str]) -> str:
    """The mailbox name of a file in an mbox tree, from its path components below the root
    (the last one ending in `.mbox`)."""
    last = parts[-1]
    if last.lower().endswith(MBOX_SUFFIX):
        last = last[: -len(MBOX_SUFFIX)]
    return "/".join(unescape_mbox_level(p) for p in [*parts[:-1], last])


def maildir_level(level: str) -> str:
    """One level of a mailbox name as a part of a Maildir++ folder name: modified UTF-7 (which
    leaves no control character), listescaped.

    >>> [maildir_level(x) for x in ("Sent", "..", "", "a.b", "Entwürfe")]
    ['Sent', '\\\\2e\\\\2e', '\\\\', 'a\\\\2eb', 'Entw&APw-rfe']
    """
    if not level:
        return "\\"
    return "".join(f"\\{ord(c):02x}" if c in "\\./" else c for c in encode_utf7(level))


def unescape_maildir_level(part: str) -> str:
    """The level `maildir_level` made `part` from (also reads Dovecot's listescape)."""
    if part == "\\":
        return ""
    return folder_level(_BACKSLASH.sub(lambda m: chr(int(m[1], 16)), part))


def folder_level(text: str) -> str:
    """A level of a folder name on disk as Dovecot and Courier write it, in modified UTF-7,
    decoded; text that is not valid modified UTF-7 (a UTF-8 name) stays as it is.

    >>> [folder_level(x) for x in ("Entw&APw-rfe", "R&-D", "R&D", "Entwürfe")]
    ['Entwürfe', 'R&D', 'R&D', 'Entwürfe']
    """
    try:
        return decode_utf7(text)
    except Utf7Error:
        return text


def maildir_folder_name(name: str) -> str:
    """The Maildir++ folder (a directory in the root) that holds mailbox `name` (not INBOX).

    >>> maildir_folder_name("Archive/2024")
    '.Archive.2024'
    """
    return "." + ".".join(maildir_level(level) for level in name.split("/"))


def mailbox_of_maildir_folder(folder: str) -> str | None:
    """The mailbox name of a Maildir++ folder directory name, or None when it is not one
    (no leading dot, or an empty level, which only other programs write)."""
    if not folder.startswith(".") or folder in (".", ".."):
        return None
    parts = folder[1:].split(".")
    if not all(parts):
        return None
    return "/".join(unescape_maildir_level(p) for p in parts)
