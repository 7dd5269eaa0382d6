"""IMAP response codes, for the ``code`` argument of the response encoders (RFC 9051 §7.1).

Codes without arguments are constants (:data:`TRYCREATE`, :data:`NOMODSEQ`...); the others are
built by functions that return the text between the brackets: ``uidvalidity_code(3857529045)``
is ``"UIDVALIDITY 3857529045"``. :mod:`postoffice.imap.proto.responses` exports all of them.

RFC 9051 §7.1, RFC 5530 (the codes of IMAP4rev1 servers), RFC 4315 (UIDPLUS), RFC 7162
(CONDSTORE, QRESYNC), RFC 3516 (BINARY), RFC 8474 (OBJECTID), RFC 5465 (NOTIFY), RFC 5267
(CONTEXT=SEARCH), RFC 4978 (COMPRESS), RFC 6154 (SPECIAL-USE).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from postoffice.imap.proto.sequence_set import compress

__all__ = [
    "ALERT",
    "ALREADYEXISTS",
    "AUTHENTICATIONFAILED",
    "AUTHORIZATIONFAILED",
    "CANNOT",
    "CLIENTBUG",
    "CLOSED",
    "COMPRESSIONACTIVE",
    "CONTACTADMIN",
    "CORRUPTION",
    "EXPIRED",
    "EXPUNGEISSUED",
    "HASCHILDREN",
    "INUSE",
    "LIMIT",
    "NOMODSEQ",
    "NONEXISTENT",
    "NOPERM",
    "NOTIFICATIONOVERFLOW",
    "OVERQUOTA",
    "PRIVACYREQUIRED",
    "READ_ONLY",
    "READ_WRITE",
    "SERVERBUG",
    "TOOBIG",
    "TRYCREATE",
    "UIDNOTSTICKY",
    "UNAVAILABLE",
    "UNKNOWN_CTE",
    "USEATTR",
    "appenduid_code",
    "badcharset_code",
    "badevent_code",
    "capability_code",
    "check_objectid",
    "copyuid_code",
    "highestmodseq_code",
    "mailboxid_code",
    "modified_code",
    "noupdate_code",
    "permanentflags_code",
    "uidnext_code",
    "uidvalidity_code",
    "unseen_code",
]

# Response codes without arguments (RFC 9051 §7.1, RFC 5530, RFC 4315, RFC 7162, RFC 3516,
# RFC 5465, RFC 4978, RFC 6154).
ALERT = "ALERT"
ALREADYEXISTS = "ALREADYEXISTS"
AUTHENTICATIONFAILED = "AUTHENTICATIONFAILED"
AUTHORIZATIONFAILED = "AUTHORIZATIONFAILED"
CANNOT = "CANNOT"
CLIENTBUG = "CLIENTBUG"
CLOSED = "CLOSED"  # RFC 7162 §3.2.11: the selected mailbox was closed (QRESYNC)
COMPRESSIONACTIVE = "COMPRESSIONACTIVE"  # RFC 4978 §3: COMPRESS again
CONTACTADMIN = "CONTACTADMIN"
CORRUPTION = "CORRUPTION"
EXPIRED = "EXPIRED"
EXPUNGEISSUED = "EXPUNGEISSUED"
HASCHILDREN = "HASCHILDREN"
INUSE = "INUSE"
LIMIT = "LIMIT"
NOMODSEQ = "NOMODSEQ"
NONEXISTENT = "NONEXISTENT"
NOTIFICATIONOVERFLOW = "NOTIFICATIONOVERFLOW"  # RFC 5465 §5.8: NOTIFY is now NONE
NOPERM = "NOPERM"
OVERQUOTA = "OVERQUOTA"
PRIVACYREQUIRED = "PRIVACYREQUIRED"
READ_ONLY = "READ-ONLY"
READ_WRITE = "READ-WRITE"
SERVERBUG = "SERVERBUG"
TOOBIG = "TOOBIG"
TRYCREATE = "TRYCREATE"
UIDNOTSTICKY = "UIDNOTSTICKY"
UNAVAILABLE = "UNAVAILABLE"
UNKNOWN_CTE = "UNKNOWN-CTE"
USEATTR = "USEATTR"  # RFC 6154 §3: CREATE (USE) with an attribute the server cannot give

_OBJECTID = re.compile(r"[A-Za-z0-9_-]{1,255}")


def uidvalidity_code(uidvalidity: int) -> str:
    return f"UIDVALIDITY {uidvalidity}"


def uidnext_code(uidnext: int) -> str:
    return f"UIDNEXT {uidnext}"


def unseen_code(seq: int) -> str:
    return f"UNSEEN {seq}"


def highestmodseq_code(modseq: int) -> str:
    return f"HIGHESTMODSEQ {modseq}"


def appenduid_code(uidvalidity: int, uids: Iterable[int]) -> str:
    """``APPENDUID 38505 3955`` (RFC 4315 §3; several UIDs after MULTIAPPEND)."""
    return f"APPENDUID {uidvalidity} {compress(uids)}"


def copyuid_code(uidvalidity: int, source: Sequence[int], destination: Sequence[int]) -> str:
    """``COPYUID 38505 304,319:320 3956:3958`` (RFC 4315 §3): the two lists pair up in order,
    so they are written item by item unless both are ascending."""
    if list(source) == sorted(source) and list(destination) == sorted(destination):
        return f"COPYUID {uidvalidity} {compress(source)} {compress(destination)}"
    return f"COPYUID {uidvalidity} {','.join(map(str, source))} {','.join(map(str, destination))}"


def capability_code(capabilities: Iterable[str]) -> str:
    return "CAPABILITY " + " ".join(capabilities)


def permanentflags_code(flags: Iterable[str], *, new_keywords: bool = True) -> str:
    """``PERMANENTFLAGS (\\Deleted \\Seen \\*)``: ``\\*`` when clients may create keywords."""
    listed = [*flags, "\\*"] if new_keywords else list(flags)
    return "PERMANENTFLAGS (" + " ".join(listed) + ")"


def badcharset_code(charsets: Iterable[str] = ("UTF-8", "US-ASCII")) -> str:
    return "BADCHARSET (" + " ".join(charsets) + ")"


def modified_code(numbers: Iterable[int]) -> str:
    """``MODIFIED 7,9`` (RFC 7162 §3.1.3): what a conditional STORE left alone."""
    return f"MODIFIED {compress(sorted(numbers))}"


def mailboxid_code(objectid: str) -> str:
    """``MAILBOXID (F2212ea87-6097-4256-9d51-71338625)`` (RFC 8474 §4.1, after CREATE and
    SELECT); ValueError for anything but an objectid."""
    return f"MAILBOXID ({check_objectid(objectid)})"


def badevent_code(events: Iterable[str]) -> str:
    """``BADEVENT (MessageNew MessageExpunge)`` (RFC 5465 §5.9): the events the server
    supports, for a NOTIFY that asked for others."""
    return "BADEVENT (" + " ".join(events) + ")"


def noupdate_code(tag: str) -> str:
    """``NOUPDATE "B01"`` (RFC 5267 §4.3.6): the search of that tag is no longer updated.

    A tag has no ``"`` or ``\\`` (RFC 9051 §9 ``tag``), so it is quoted as it is.
    """
    if '"' in tag or "\\" in tag or "\r" in tag or "\n" in tag:
        raise ValueError(f"not a tag: {tag!r}")
    return f'NOUPDATE "{tag}"'


def check_objectid(objectid: str) -> str:
    """``objectid`` if it is one (RFC 8474 §7: 1 to 255 of ALPHA, DIGIT, ``_``, ``-``), else
    ValueError: object ids are written bare in responses."""
    if not _OBJECTID.fullmatch(objectid):
        raise ValueError(f"not an objectid: {objectid!r}")
    return objectid
