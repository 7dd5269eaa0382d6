"""The arguments of the IMAP extension commands, typed: SORT, THREAD, CANCELUPDATE, QUOTA, ACL,
NOTIFY, COMPRESS.

RFC 5256 (SORT, THREAD), RFC 5267 (ESORT, CONTEXT=SEARCH, CONTEXT=SORT), RFC 5957 (SORT=DISPLAY),
RFC 9394 (PARTIAL), RFC 9208 (QUOTA), RFC 4314 (ACL), RFC 5465 (NOTIFY), RFC 4978 (COMPRESS).
:mod:`postoffice.imap.proto.commands` exports every one of them and lists them in its
``CommandArgs``; import them from there. The grammar is in
:mod:`postoffice.imap.proto.grammar_ext`; the conventions are those of ``commands``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from postoffice.imap.proto.fetch_items import FetchItem
from postoffice.imap.proto.search_keys import SearchKey

__all__ = [
    "CancelUpdate",
    "Compress",
    "DeleteAcl",
    "GetAcl",
    "GetQuota",
    "GetQuotaRoot",
    "ListRights",
    "MyRights",
    "Notify",
    "NotifyEvent",
    "NotifyGroup",
    "SetAcl",
    "SetQuota",
    "Sort",
    "Thread",
]


# --- SORT, THREAD, CONTEXT=SEARCH -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sort:
    """[UID] SORT [RETURN (...)] (criteria) charset search-criteria (RFC 5256 §3, RFC 5267 §3).

    ``criteria``: (key, reverse) pairs, keys upper-cased: ARRIVAL CC DATE FROM SIZE SUBJECT TO,
    DISPLAYFROM DISPLAYTO (RFC 5957). ``charset`` is mandatory and upper-cased; whether it is
    supported is the server's business (``NO [BADCHARSET]``). ``return_options`` and
    ``partial`` as for :class:`~postoffice.imap.proto.commands.Search`: None without RETURN (answer ``* SORT``), else ESORT
    (answer ``* ESEARCH``).
    """

    criteria: tuple[tuple[str, bool], ...]
    charset: str
    key: SearchKey
    return_options: tuple[str, ...] | None = None
    uid: bool = False
    partial: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Thread:
    """[UID] THREAD algorithm charset search-criteria (RFC 5256 §5).

    ``algorithm`` upper-cased, any atom (ORDEREDSUBJECT, REFERENCES; others are the server's
    business); ``charset`` as for :class:`Sort`.
    """

    algorithm: str
    charset: str
    key: SearchKey
    uid: bool = False


@dataclass(frozen=True, slots=True)
class CancelUpdate:
    """CANCELUPDATE "tag"... (RFC 5267 §4.3.5): the tags of the searches to stop updating."""

    tags: tuple[str, ...]


# --- QUOTA ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetQuota:
    """GETQUOTA quota-root (RFC 9208 §4.2): the root name as sent (not a mailbox name)."""

    root: str


@dataclass(frozen=True, slots=True)
class GetQuotaRoot:
    """GETQUOTAROOT mailbox (RFC 9208 §4.3)."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class SetQuota:
    """SETQUOTA quota-root (resource limit ...) (RFC 9208 §4.1).

    ``resources`` pairs upper-cased resource names (STORAGE, MESSAGE, MAILBOX,
    ANNOTATION-STORAGE, or any atom) with their limits, in the order sent; ``()`` removes
    every limit of the root.
    """

    root: str
    resources: tuple[tuple[str, int], ...]


# --- ACL --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetAcl:
    """SETACL mailbox identifier [+-]rights (RFC 4314 §3.1).

    ``rights`` without the sign; ``mode`` is "add" for ``+``, "remove" for ``-``, else "replace".
    Identifiers are case-sensitive and kept as sent ("anyone" is special, §2).
    """

    mailbox: str
    identifier: str
    rights: str
    mode: Literal["replace", "add", "remove"] = "replace"


@dataclass(frozen=True, slots=True)
class DeleteAcl:
    """DELETEACL mailbox identifier (RFC 4314 §3.2)."""

    mailbox: str
    identifier: str


@dataclass(frozen=True, slots=True)
class GetAcl:
    """GETACL mailbox (RFC 4314 §3.3)."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class ListRights:
    """LISTRIGHTS mailbox identifier (RFC 4314 §3.4)."""

    mailbox: str
    identifier: str


@dataclass(frozen=True, slots=True)
class MyRights:
    """MYRIGHTS mailbox (RFC 4314 §3.5)."""

    mailbox: str


# --- NOTIFY -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NotifyEvent:
    """One event of a NOTIFY event group (RFC 5465 §5): ``MessageNew (UID FLAGS)``.

    ``name`` is spelled as in RFC 5465 for the events it defines (MessageNew, MessageExpunge,
    FlagChange, AnnotationChange, MailboxName, SubscriptionChange, MailboxMetadataChange,
    ServerMetadataChange), whatever the case sent; any other atom is kept as sent and the
    server answers it with ``NO [BADEVENT (...)]``.
    """

    name: str
    fetch_items: tuple[FetchItem, ...] = ()  # MessageNew only, with SELECTED(-DELAYED)


@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """``(filter events)`` of NOTIFY SET (RFC 5465 §6).

    ``filter``: SELECTED, SELECTED-DELAYED, INBOXES, PERSONAL, SUBSCRIBED, SUBTREE or MAILBOXES
    (upper-cased); ``mailboxes`` are the names given to SUBTREE and MAILBOXES (empty for the
    others). ``events`` is empty for ``NONE``: no events for these mailboxes.
    """

    filter: str
    events: tuple[NotifyEvent, ...]
    mailboxes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Notify:
    """NOTIFY SET [STATUS] group... or NOTIFY NONE (RFC 5465 §3.1).

    ``groups`` is empty for NOTIFY NONE (SET needs at least one group). The checks RFC 5465
    asks for a BAD are made by the grammar: MessageNew and MessageExpunge go together,
    FlagChange and AnnotationChange need them, at most one SELECTED or SELECTED-DELAYED group,
    only message events there, fetch attributes only there.
    """

    groups: tuple[NotifyGroup, ...]
    status: bool = False


# --- COMPRESS ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compress:
    """COMPRESS mechanism (RFC 4978 §3): the mechanism upper-cased (``"DEFLATE"``); whether it
    is supported is the server's business (``NO`` or ``BAD``)."""

    mechanism: str
