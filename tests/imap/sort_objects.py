"""SORT and THREAD in object form for tests: one object per message and per thread node, each
converted to the plain rows and number forests of `postoffice.imap.sort_thread` and back, so
tests can write RFC 5256 cases readably (the server works on the rows directly)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from postoffice.imap.sort_thread import (
    MessageRow,
    RowAddresses,
    ThreadForest,
    format_forest,
    orderedsubject_forest,
    parents_first,
    references_forest,
    sort_order,
)


@dataclass(frozen=True, slots=True)
class SortAddress:
    """One address as in an IMAP ENVELOPE: ``(None, "team", None)`` starts a group,
    ``(None, None, None)`` ends it (RFC 9051 §7.5.2)."""

    name: str | None  # display name, RFC 2047 already decoded
    mailbox: str | None
    host: str | None


@dataclass(frozen=True, slots=True)
class SortableMessage:
    """What SORT and THREAD need to know of one message."""

    uid: int
    seq: int  # message sequence number in the session
    internal_date: float  # epoch seconds (ARRIVAL)
    sent_date: float | None  # Date: header, epoch seconds; None if missing or unparsable
    size: int  # RFC822.SIZE
    subject: str  # decoded Subject ("" if none)
    from_: tuple[SortAddress, ...]
    to: tuple[SortAddress, ...]
    cc: tuple[SortAddress, ...]
    message_id: str | None  # the Message-ID header as written
    in_reply_to: str | None  # the In-Reply-To header as written
    references: str  # the References header as written ("" if none)

    def row(self) -> MessageRow:
        def plain(addresses: tuple[SortAddress, ...]) -> RowAddresses:
            return tuple((a.name, a.mailbox, a.host) for a in addresses)

        return (self.uid, self.seq, self.internal_date, self.sent_date, self.size, self.subject,
                plain(self.from_), plain(self.to), plain(self.cc), self.message_id, self.in_reply_to,
                self.references)


@dataclass(slots=True)
class Thread:
    """A node of a thread tree; ``message`` is None for a dummy (a parent that is missing)."""

    message: SortableMessage | None
    children: list[Thread] = field(default_factory=list)


def sort_messages(
    messages: Sequence[SortableMessage], criteria: Sequence[tuple[str, bool]]
) -> list[SortableMessage]:
    """``messages`` in SORT order (see :func:`sort_order`). Raises ValueError for an unknown key."""
    return [messages[i] for i in sort_order([m.row() for m in messages], criteria)]


def thread_orderedsubject(messages: Sequence[SortableMessage]) -> list[Thread]:
    """THREAD ORDEREDSUBJECT as :class:`Thread` trees (see :func:`orderedsubject_forest`)."""
    return _threads(orderedsubject_forest([m.row() for m in messages]), messages)


def thread_references(messages: Sequence[SortableMessage]) -> list[Thread]:
    """THREAD REFERENCES as :class:`Thread` trees (see :func:`references_forest`)."""
    return _threads(references_forest([m.row() for m in messages]), messages)


def _threads(forest: ThreadForest, messages: Sequence[SortableMessage]) -> list[Thread]:
    """The forest as Thread trees, message ``n`` being ``messages[n]``."""
    size, children = forest.size, forest.children
    made: dict[int, Thread] = {}
    for node in reversed(parents_first(forest)):  # children before their parents
        kids = [made.pop(kid) for kid in children.get(node, ())]
        made[node] = Thread(messages[node] if node < size else None, kids)
    return [made[root] for root in forest.roots]


def _forest(threads: Sequence[Thread]) -> tuple[ThreadForest, list[SortableMessage]]:
    """Thread trees as a forest, and the messages its numbers stand for."""
    nodes: list[Thread] = []
    stack = list(threads)
    while stack:
        thread = stack.pop()
        nodes.append(thread)
        stack.extend(thread.children)
    messages: list[SortableMessage] = []
    number: dict[int, int] = {}  # id(thread) -> node: the messages first, then the dummies
    for thread in nodes:
        if thread.message is not None:
            number[id(thread)] = len(messages)
            messages.append(thread.message)
    dummies = [thread for thread in nodes if thread.message is None]
    for n, thread in enumerate(dummies, start=len(messages)):
        number[id(thread)] = n
    forest = ThreadForest(len(messages), [number[id(t)] for t in threads], {})
    for thread in nodes:
        if thread.children:
            forest.children[number[id(thread)]] = tuple(number[id(kid)] for kid in thread.children)
    return forest, messages


def format_threads(threads: Sequence[Thread], *, uid: bool) -> bytes:
    """:func:`format_forest` for :class:`Thread` trees, with UIDs or sequence numbers."""
    forest, messages = _forest(threads)
    return format_forest(forest, [m.uid if uid else m.seq for m in messages])
