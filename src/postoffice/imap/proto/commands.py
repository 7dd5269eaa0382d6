"""The arguments of every IMAP command, typed (RFC 9051 §6; RFC 3501 §6; and the extensions below).

An :class:`~postoffice.imap.proto.events.ImapCommand` carries one of these as ``args``; the
grammar that builds them is in :mod:`postoffice.imap.proto.grammar`. Dispatch on the type.

Conventions:

- Mailbox names are ``str``: modified UTF-7 already decoded (or UTF-8 in UTF8=ACCEPT mode),
  ``"INBOX"`` in any case normalised to ``"INBOX"``. LIST/LSUB references and patterns are
  decoded the same way but kept as sent when they are not valid modified UTF-7.
- Flags are ``str``: system flags in canonical spelling (``"\\Seen"``), keywords as sent.
- Option and item names are upper-cased ``str``.
- UID variants set ``uid=True`` on the same dataclass (FETCH/UID FETCH are both :class:`Fetch`),
  except UID EXPUNGE, which has its own :class:`UidExpunge`.

Extensions: ENABLE (RFC 5161), ID (RFC 2971), IDLE (RFC 2177), UNSELECT (RFC 3691), MOVE
(RFC 6851), UIDPLUS (RFC 4315), LITERAL+/- (RFC 7888), MULTIAPPEND (RFC 3502), BINARY
(RFC 3516), ESEARCH (RFC 4731), SEARCHRES (RFC 5182), CONDSTORE/QRESYNC (RFC 7162),
LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE (RFC 6154), CREATE-SPECIAL-USE,
PARTIAL (RFC 9394, SEARCH RETURN); and, defined in :mod:`postoffice.imap.proto.commands_ext`
and exported here, SORT and THREAD (RFC 5256), ESORT and CONTEXT=SEARCH/SORT (RFC 5267),
SORT=DISPLAY (RFC 5957), QUOTA (RFC 9208), ACL (RFC 4314), NOTIFY (RFC 5465), COMPRESS
(RFC 4978).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from postoffice.imap.proto.commands_ext import (
    CancelUpdate,
    Compress,
    DeleteAcl,
    GetAcl,
    GetQuota,
    GetQuotaRoot,
    ListRights,
    MyRights,
    Notify,
    NotifyEvent,
    NotifyGroup,
    SetAcl,
    SetQuota,
    Sort,
    Thread,
)
from postoffice.imap.proto.fetch_items import FetchItem
from postoffice.imap.proto.search_keys import SearchKey
from postoffice.imap.proto.sequence_set import SequenceSet

__all__ = [
    "Append",
    "AppendMessage",
    "Authenticate",
    "CancelUpdate",
    "Capability",
    "Check",
    "Close",
    "CommandArgs",
    "Compress",
    "Copy",
    "Create",
    "Delete",
    "DeleteAcl",
    "Enable",
    "Expunge",
    "Fetch",
    "GetAcl",
    "GetQuota",
    "GetQuotaRoot",
    "Id",
    "Idle",
    "List",
    "ListRights",
    "Login",
    "Logout",
    "Lsub",
    "Move",
    "MyRights",
    "Namespace",
    "Noop",
    "Notify",
    "NotifyEvent",
    "NotifyGroup",
    "QresyncParams",
    "Rename",
    "Search",
    "Select",
    "SetAcl",
    "SetQuota",
    "Sort",
    "StartTls",
    "Status",
    "Store",
    "Subscribe",
    "Thread",
    "UidExpunge",
    "Unselect",
    "Unsubscribe",
]


# --- any state --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capability:
    pass


@dataclass(frozen=True, slots=True)
class Noop:
    pass


@dataclass(frozen=True, slots=True)
class Logout:
    pass


@dataclass(frozen=True, slots=True)
class Enable:
    """ENABLE cap... (RFC 5161): the capability names, upper-cased."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Id:
    """ID (RFC 2971): field/value pairs as sent, or None for ``ID NIL``."""

    params: tuple[tuple[str, str | None], ...] | None


# --- not authenticated ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartTls:
    pass


@dataclass(frozen=True, slots=True)
class Authenticate:
    """AUTHENTICATE mechanism [initial-response] (RFC 9051 §6.2.2, RFC 4959 SASL-IR).

    ``initial_response`` is raw base64 as sent; ``b"="`` means an empty response.
    """

    mechanism: str  # upper-cased
    initial_response: bytes | None = None


@dataclass(frozen=True, slots=True)
class Login:
    user: str
    password: str


# --- authenticated ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QresyncParams:
    """SELECT (QRESYNC (uidvalidity modseq [known-uids] [(seqs uids)])) (RFC 7162 §3.2.5)."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    # seq-match-data: known sequence numbers and the UIDs they correspond to
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select:
    """SELECT, or EXAMINE when ``read_only``; ``condstore`` for the CONDSTORE parameter."""

    mailbox: str
    read_only: bool = False
    condstore: bool = False
    qresync: QresyncParams | None = None


@dataclass(frozen=True, slots=True)
class Create:
    """CREATE mailbox [(USE (\\Drafts ...))] (RFC 6154 §3)."""

    mailbox: str
    use: tuple[str, ...] = ()  # special-use attributes as sent, e.g. "\\Sent"


@dataclass(frozen=True, slots=True)
class Delete:
    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename:
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    mailbox: str


@dataclass(frozen=True, slots=True)
class List:
    """LIST [(selection)] reference (pattern...) [RETURN (options)] (RFC 9051 §6.3.9, RFC 5258).

    ``selection``: SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE. ``return_options``:
    SUBSCRIBED, CHILDREN, SPECIAL-USE, and STATUS, whose items are in ``return_status``
    (RFC 5819). ``extended`` is True when the client used LIST-EXTENDED syntax (selection
    options, a parenthesised pattern list or RETURN), for the rules that differ between basic
    and extended LIST, such as the empty pattern (RFC 9051 §6.3.9, RFC 5258 §3).
    """

    reference: str
    patterns: tuple[str, ...]
    selection: tuple[str, ...] = ()
    return_options: tuple[str, ...] = ()
    return_status: tuple[str, ...] | None = None
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Lsub:
    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Namespace:
    pass


@dataclass(frozen=True, slots=True)
class Status:
    """STATUS mailbox (items): MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT
    HIGHESTMODSEQ APPENDLIMIT MAILBOXID, upper-cased, in the order asked, each once."""

    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of APPEND: ``[flags] [date-time] literal`` (RFC 9051 §6.3.12)."""

    flags: tuple[str, ...]
    internal_date: datetime | None
    data: bytes
    binary: bool = False  # sent as literal8 ~{n} (RFC 3516 §4.4)


@dataclass(frozen=True, slots=True)
class Append:
    """APPEND mailbox message... (several with MULTIAPPEND, RFC 3502)."""

    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True, slots=True)
class Idle:
    pass


# --- selected ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    pass


@dataclass(frozen=True, slots=True)
class Close:
    pass


@dataclass(frozen=True, slots=True)
class Unselect:
    pass


@dataclass(frozen=True, slots=True)
class Expunge:
    pass


@dataclass(frozen=True, slots=True)
class UidExpunge:
    """UID EXPUNGE set (RFC 4315 §2.1, RFC 9051 §6.4.9)."""

    sequence_set: SequenceSet


@dataclass(frozen=True, slots=True)
class Search:
    """[UID] SEARCH [RETURN (...)] [CHARSET x] criteria.

    ``return_options`` is None for a plain SEARCH (answer ``* SEARCH``), else the ESEARCH
    options, ("ALL",) for ``RETURN ()`` (RFC 4731 §3.1): MIN MAX ALL COUNT SAVE, and UPDATE,
    CONTEXT (RFC 5267 §4.1) and PARTIAL (RFC 9394 §3.1), which the server may not offer.
    """

    charset: str | None
    key: SearchKey
    return_options: tuple[str, ...] | None = None
    uid: bool = False
    # RETURN (PARTIAL first:last) (RFC 9394 §3.1): "PARTIAL" is in return_options too. The
    # range is (low, high), or (-low, -high) counted from the last match: -1:-100 is (-1, -100).
    partial: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Fetch:
    """[UID] FETCH set items [(CHANGEDSINCE n [VANISHED])] (RFC 9051 §6.4.5, RFC 7162)."""

    sequence_set: SequenceSet
    items: tuple[FetchItem, ...]
    uid: bool = False
    changed_since: int | None = None
    vanished: bool = False  # only with UID FETCH and CHANGEDSINCE (RFC 7162 §3.2.6)


@dataclass(frozen=True, slots=True)
class Store:
    """[UID] STORE set [(UNCHANGEDSINCE n)] [+-]FLAGS[.SILENT] flags (RFC 9051 §6.4.6)."""

    sequence_set: SequenceSet
    mode: Literal["replace", "add", "remove"]
    silent: bool
    flags: tuple[str, ...]
    unchanged_since: int | None = None
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Copy:
    sequence_set: SequenceSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Move:
    sequence_set: SequenceSet
    mailbox: str
    uid: bool = False


CommandArgs = (
    Capability
    | Noop
    | Logout
    | Enable
    | Id
    | StartTls
    | Authenticate
    | Login
    | Select
    | Create
    | Delete
    | Rename
    | Subscribe
    | Unsubscribe
    | List
    | Lsub
    | Namespace
    | Status
    | Append
    | Idle
    | Check
    | Close
    | Unselect
    | Expunge
    | UidExpunge
    | Search
    | Fetch
    | Store
    | Copy
    | Move
    | Compress
    | GetQuota
    | GetQuotaRoot
    | SetQuota
    | SetAcl
    | DeleteAcl
    | GetAcl
    | ListRights
    | MyRights
    | Notify
    | Sort
    | Thread
    | CancelUpdate
)
