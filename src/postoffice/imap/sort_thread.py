"""SORT and THREAD as pure functions (RFC 5256; RFC 5957 SORT=DISPLAY; RFC 5051 collation).

The caller runs the search and hands over the matching messages as plain :data:`MessageRow`
tuples: :func:`sort_order` orders them for ``SORT``; :func:`orderedsubject_forest` and
:func:`references_forest` build the trees of ``THREAD ORDEREDSUBJECT`` and ``THREAD
REFERENCES`` as a :class:`ThreadForest` of numbers, and :func:`format_forest` writes them as the
payload of ``* THREAD``. The "base subject" of RFC 5256 §2.1 and the comparator's key are in
`imap/base_subject.py`, the msg-id reader REFERENCES uses in `imap/message_ids.py`.

Implementation notes:

- The algorithms work on plain tuples and on lists and dicts of numbers, not on an object per
  message or per tree node: Python's cyclic garbage collector stops tracking tuples and dicts
  of plain values, so building the threads of 100,000 messages no longer sets off full
  collections, which walk every object of the server (its snapshots) and cost more than the
  algorithm itself.
- Strings are compared with i;unicode-casemap (RFC 5051): each character is replaced by its
  titlecase and the result decomposed (NFKD), then compared code point by code point (the
  order of their UTF-8 octets). RFC 5256 §7 requires it for SORT and THREAD. On ASCII text it
  is the same as i;ascii-casemap (RFC 4790 §9.2), which maps a-z to *upper* case: so ``[`` and
  ``_`` sort after the letters, as Dovecot's imaptest ``sort-subject`` expects. ``str.casefold``
  (lower case) would put them before, so it is not used.
- ``base_subject`` returns the base subject as text (whitespace collapsed, artifacts removed,
  case kept); comparisons apply ``unicode_casemap`` to it.
- Dates: the sent date (Date:) and, when it is missing or unparsable, the internal date
  (RFC 5256 §2.2). Equal values are ordered by message sequence number, ascending, whatever the
  REVERSE of the criteria before (RFC 5256 §3: REVERSE does not touch the implicit last key).
- A missing address header sorts as the empty string, which sorts first (RFC 5256 §3). The
  first address is the first element of the ENVELOPE list, so a group's start marker counts:
  its mailbox is the group name (``Cc: team: a@b;`` sorts as "team"), as Dovecot does.
  DISPLAYFROM/DISPLAYTO use the display name when it is not blank, else ``mailbox@host`` (just
  the mailbox when there is no host, which makes a group sort by its name).
- REFERENCES follows RFC 5256 §3 step by step; the ambiguities and how they are read:

  * Messages are taken in sequence order. A message with no valid Message-ID, or whose
    Message-ID an earlier message already has, gets a container of its own that no reference
    can reach ("assign a unique Message ID").
  * Step 1.B breaks the message's old parent link *before* checking for a loop, as the text
    reads; if the new link would make a loop the message is left without a parent. Dovecot's
    imaptest ``thread`` script expects exactly that (``(3 2)(1)``).
  * A Message-ID written without angle brackets (``abc@x``) is accepted as the message's own
    id; in References and In-Reply-To only bracketed ids count, because those fields often
    carry names and other junk. Ids are compared after removing quoting, comments and folding
    (``<"a"@b>`` is ``<a@b>``), case-sensitively.
  * Step 3 prunes bottom-up, so a dummy whose children all vanish goes too, and a root dummy
    left with one child gives way to it.
  * Step 5 reads the thread subject of a dummy from its first child once the children are
    sorted (step 4), and step 6 sorts a dummy by its first (earliest) child.

- Everything is iterative: a reply chain 100,000 messages deep neither recurses nor loops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from postoffice.imap.base_subject import base_subject_info, subject_key, unicode_casemap
from postoffice.imap.message_ids import own_message_id, parse_message_ids

__all__ = [
    "CC",
    "FROM",
    "INTERNAL_DATE",
    "IN_REPLY_TO",
    "MESSAGE_ID",
    "REFERENCES",
    "SENT_DATE",
    "SEQ",
    "SIZE",
    "SORT_KEYS",
    "SUBJECT",
    "TO",
    "UID",
    "MessageRow",
    "RowAddresses",
    "ThreadForest",
    "format_forest",
    "orderedsubject_forest",
    "parents_first",
    "references_forest",
    "sort_order",
]


# What SORT and THREAD need of one message, as a plain tuple read by the positions below; each
# address a (name, mailbox, host) tuple as in an IMAP ENVELOPE: (None, "team", None) starts a
# group, (None, None, None) ends it (RFC 9051 §7.5.2).
RowAddresses = tuple[tuple[str | None, str | None, str | None], ...]
MessageRow = tuple[
    int, int, float, float | None, int, str, RowAddresses, RowAddresses, RowAddresses,
    str | None, str | None, str,
]
UID: Final = 0
SEQ: Final = 1
INTERNAL_DATE: Final = 2
SENT_DATE: Final = 3
SIZE: Final = 4
SUBJECT: Final = 5
FROM: Final = 6
TO: Final = 7
CC: Final = 8
MESSAGE_ID: Final = 9
IN_REPLY_TO: Final = 10
REFERENCES: Final = 11


@dataclass(slots=True)
class ThreadForest:
    """Thread trees as numbers: node ``n`` below ``size`` is message ``n`` of the rows they were
    built from, one from ``size`` on a dummy (a parent that is missing). ``children`` holds each
    node's children in order; a node without any is absent. Tuples, which the garbage collector
    stops tracking: 30,000 lists would each time push it a step closer to a full collection."""

    size: int
    roots: list[int]
    children: dict[int, tuple[int, ...]]



# --- SORT (RFC 5256 §3, RFC 5957) -----------------------------------------------------------


def _sent_date(row: MessageRow) -> float:
    # RFC 5256 §2.2: no usable Date: header means the internal date
    sent = row[SENT_DATE]
    return row[INTERNAL_DATE] if sent is None else sent


def _first_mailbox(addresses: RowAddresses) -> str:
    if not addresses or addresses[0][1] is None:
        return ""
    return unicode_casemap(addresses[0][1])


def _display(addresses: RowAddresses) -> str:
    # RFC 5957 §3: the display name of the first address, else its addr-spec
    if not addresses:
        return ""
    name, mailbox, host = addresses[0]
    if name and name.strip():
        return unicode_casemap(name)
    if mailbox is None:
        return ""
    if host:
        return unicode_casemap(f"{mailbox}@{host}")
    return unicode_casemap(mailbox)


_KEY_FUNCTIONS: dict[str, Callable[[MessageRow], Any]] = {
    "ARRIVAL": lambda m: m[INTERNAL_DATE],
    "CC": lambda m: _first_mailbox(m[CC]),
    "DATE": _sent_date,
    "FROM": lambda m: _first_mailbox(m[FROM]),
    "SIZE": lambda m: m[SIZE],
    "SUBJECT": lambda m: subject_key(m[SUBJECT]),
    "TO": lambda m: _first_mailbox(m[TO]),
    "DISPLAYFROM": lambda m: _display(m[FROM]),
    "DISPLAYTO": lambda m: _display(m[TO]),
}
SORT_KEYS = frozenset(_KEY_FUNCTIONS)


def sort_order(rows: Sequence[MessageRow], criteria: Sequence[tuple[str, bool]]) -> list[int]:
    """The positions in ``rows`` in SORT order; ``criteria`` are ``(key, reverse)`` pairs, most
    significant first, with keys from :data:`SORT_KEYS` (``[("DATE", True), ("SUBJECT",
    False)]`` is ``SORT (REVERSE DATE SUBJECT)``). Ties left by all criteria go by sequence
    number, ascending.

    Raises ValueError for an unknown key.
    """
    functions = []
    for key, reverse in criteria:
        function = _KEY_FUNCTIONS.get(key.upper())
        if function is None:
            raise ValueError(f"unknown sort criterion {key!r}")
        functions.append((function, reverse))
    order = sorted(range(len(rows)), key=lambda i: rows[i][SEQ])
    # Python's sort is stable, also with reverse=True: sorting by the least significant key
    # first leaves each tie in the order of the keys after it, sequence number last.
    for function, reverse in reversed(functions):
        keys = [function(row) for row in rows]
        order.sort(key=keys.__getitem__, reverse=reverse)
    return order


# --- THREAD=ORDEREDSUBJECT (RFC 5256 §3) ----------------------------------------------------


def orderedsubject_forest(rows: Sequence[MessageRow]) -> ThreadForest:
    """THREAD ORDEREDSUBJECT: one thread per base subject (the empty one included), the
    earliest message its root and all the others its children, in sent-date order; threads
    ordered by the sent date of their root."""
    # stable sorts, least significant key first: (base subject, sent date, sequence number)
    order = sorted(range(len(rows)), key=lambda i: rows[i][SEQ])
    dates = [_sent_date(row) for row in rows]
    order.sort(key=dates.__getitem__)
    subjects = [subject_key(row[SUBJECT]) for row in rows]
    order.sort(key=subjects.__getitem__)
    roots: list[int] = []
    children: dict[int, tuple[int, ...]] = {}
    start = 0  # of the current run of one subject in `order`
    for end in range(1, len(order) + 1):
        if end == len(order) or subjects[order[end]] != subjects[order[start]]:
            roots.append(order[start])
            if end - start > 1:
                children[order[start]] = tuple(order[start + 1:end])
            start = end
    roots.sort(key=lambda i: (dates[i], rows[i][SEQ]))
    return ThreadForest(len(rows), roots, children)


# --- THREAD=REFERENCES (RFC 5256 §3) --------------------------------------------------------





class _Containers:
    """The containers of step (1), messages and dummies standing for missing ones, numbered in
    the order they are made: lists indexed by number, and children in dicts of numbers, which
    the garbage collector does not track (see the module notes)."""

    __slots__ = ("children", "message", "parent")

    def __init__(self) -> None:
        self.message: list[int] = []  # the message's position in the rows; -1: a dummy
        self.parent: list[int] = []  # -1: none
        # Only containers that have (had) children are here; a dict keeps them in the order
        # they were linked and unlinks in O(1).
        self.children: dict[int, dict[int, None]] = {}

    def add(self, message: int) -> int:
        self.message.append(message)
        self.parent.append(-1)
        return len(self.parent) - 1

    def would_loop(self, parent: int, child: int) -> bool:
        """Whether making ``child`` a child of ``parent`` would close a loop."""
        if child == parent:
            return True
        if not self.children.get(child):
            return False  # a leaf cannot be an ancestor
        up = self.parent
        node = up[parent]
        while node >= 0:
            if node == child:
                return True
            node = up[node]
        return False

    def link(self, parent: int, child: int) -> None:
        self.parent[child] = parent
        kids = self.children.get(parent)
        if kids is None:
            self.children[parent] = {child: None}
        else:
            kids[child] = None

    def unlink(self, child: int) -> None:
        del self.children[self.parent[child]][child]
        self.parent[child] = -1


def _link_references(rows: Sequence[MessageRow]) -> _Containers:
    """Step (1): every container, message or dummy, linked to its parent."""
    containers = _Containers()
    table: dict[str, int] = {}  # msg-id -> container
    for i in sorted(range(len(rows)), key=lambda i: rows[i][SEQ]):
        row = rows[i]
        own = own_message_id(row[MESSAGE_ID])
        node = table.get(own, -1) if own is not None else -1
        if node < 0 or containers.message[node] >= 0:
            # new, or without a valid Message-ID, or a duplicate: a container of its own
            node = containers.add(i)
            if own is not None and own not in table:
                table[own] = node
        else:
            containers.message[node] = i
        references = parse_message_ids(row[REFERENCES]) if row[REFERENCES] else []
        if not references and row[IN_REPLY_TO]:
            references = parse_message_ids(row[IN_REPLY_TO])[:1]
        # (1.A) chain the references; an existing parent link stays, no link may close a loop
        previous = -1
        for reference in references:
            container = table.get(reference, -1)
            if container < 0:
                container = table[reference] = containers.add(-1)
            if (
                previous >= 0
                and containers.parent[container] < 0
                and not containers.would_loop(previous, container)
            ):
                containers.link(previous, container)
            previous = container
        # (1.B) the last reference is the parent: the old link goes first, a loop is refused
        if containers.parent[node] != previous:
            if containers.parent[node] >= 0:
                containers.unlink(node)
            if previous >= 0 and not containers.would_loop(previous, node):
                containers.link(previous, node)
    return containers


def _prune(containers: _Containers, size: int) -> ThreadForest:
    """Steps (2) and (3): the containers become the nodes of a forest (a message container the
    message's number, a dummy one from ``size`` on), bottom-up; below the root a dummy gives way
    to its children, at the root only when it has a single child, and a dummy without children
    goes."""
    messages, children = containers.message, containers.children
    roots = [node for node, parent in enumerate(containers.parent) if parent < 0]
    # Only containers with children have anything to prune: those, each before its children.
    order: list[int] = []
    stack = [node for node in roots if children.get(node)]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(kid for kid in children[node] if children.get(kid))
    # the pruned children of each container, as forest nodes; a dummy's are taken over whole
    pruned: dict[int, tuple[int, ...]] = {}
    for node in reversed(order):  # children before their parents
        found: list[int] = []
        for child in children[node]:
            if messages[child] >= 0:
                found.append(messages[child])
            else:
                found.extend(pruned.pop(child, ()))  # already pruned: no dummies there
        if found:
            pruned[node] = tuple(found)
    forest = ThreadForest(size, [], {})
    for node, below in pruned.items():  # the messages' (the dummies left are roots)
        if messages[node] >= 0:
            forest.children[messages[node]] = below
    for node in roots:
        if messages[node] >= 0:
            forest.roots.append(messages[node])
            continue
        kids = pruned.get(node, ())
        if len(kids) == 1:
            forest.roots.append(kids[0])
        elif kids:
            dummy = size + node
            forest.children[dummy] = kids
            forest.roots.append(dummy)
    return forest


def _date_keys(rows: Sequence[MessageRow]) -> list[tuple[float, int]]:
    return [(_sent_date(row), row[SEQ]) for row in rows]


def _thread_key(forest: ThreadForest, keys: list[tuple[float, int]]) -> Callable[[int], tuple[float, int]]:
    """The key a node sorts by: its message's date, or a dummy's first child's (RFC 5256 §3
    steps 4, 6)."""
    size, children = forest.size, forest.children

    def key(node: int) -> tuple[float, int]:
        while node >= size:
            node = children[node][0]
        return keys[node]

    return key


def _merge_by_subject(forest: ThreadForest, rows: Sequence[MessageRow]) -> None:
    """Step (5): roots with the same base subject go together."""
    size, top, children = forest.size, forest.roots, forest.children
    # a root's thread subject is its own base subject, or its first child's for a dummy;
    # "refwd" is RFC 5256's "reply or forward", which a dummy is not
    subject_of: list[str] = []
    refwd: list[bool] = []
    for node in top:
        first = node if node < size else children[node][0]
        subject, is_refwd = base_subject_info(rows[first][SUBJECT])
        subject_of.append(unicode_casemap(subject))
        refwd.append(is_refwd and node < size)
    held_by: dict[str, int] = {}  # (5.B) the subject table: subject -> index in top
    for i, subject in enumerate(subject_of):
        if not subject:
            continue
        held = held_by.get(subject)
        if held is None or (top[held] < size and (top[i] >= size or (refwd[held] and not refwd[i]))):
            held_by[subject] = i
    # (5.C) merge; a root put under another thread or a new dummy is left out at the end
    table: dict[str, int] = {subject: top[i] for subject, i in held_by.items()}
    gone: set[int] = set()
    new_dummies: list[int] = []
    grown: dict[int, list[int]] = {}  # the holders' children while they grow

    def kids_of(holder: int) -> list[int]:
        kids = grown.get(holder)
        if kids is None:
            kids = grown[holder] = list(children.get(holder, ()))
        return kids

    next_dummy = max((node for node in children if node >= size), default=size - 1) + 1
    for i, node in enumerate(top):
        subject = subject_of[i]
        if not subject or i in gone:
            continue
        holder = table[subject]
        if holder == node:
            continue
        holder_refwd = holder < size and refwd[held_by[subject]]
        gone.add(i)
        if holder >= size and node >= size:
            kids_of(holder).extend(children.pop(node))
        elif holder >= size or (refwd[i] and not holder_refwd):
            kids_of(holder).append(node)
        else:
            grown[next_dummy] = [holder, node]
            gone.add(held_by[subject])
            table[subject] = next_dummy
            new_dummies.append(next_dummy)
            next_dummy += 1
    for holder, kids in grown.items():
        children[holder] = tuple(kids)
    forest.roots = [node for i, node in enumerate(top) if i not in gone]
    forest.roots.extend(new_dummies)


def references_forest(rows: Sequence[MessageRow]) -> ThreadForest:
    """THREAD REFERENCES (RFC 5256 §3): parent/child links from References (or the first
    msg-id of In-Reply-To), dummies pruned, roots merged by base subject, siblings and threads
    in sent-date order."""
    forest = _prune(_link_references(rows), len(rows))  # (1), (2), (3)
    key = _thread_key(forest, _date_keys(rows))
    size, children = forest.size, forest.children
    for node in forest.roots:  # (4) a dummy sorts as its first child, and the roots by date
        if node >= size:
            children[node] = tuple(sorted(children[node], key=key))
    forest.roots.sort(key=key)
    _merge_by_subject(forest, rows)  # (5)
    # (6) sort every set of siblings, the deepest first, then the roots
    for node in reversed(parents_first(forest)):
        kids = children.get(node)
        if kids is not None and len(kids) > 1:
            children[node] = tuple(sorted(kids, key=key))
    forest.roots.sort(key=key)
    return forest


# --- the THREAD response (RFC 5256 §4) ------------------------------------------------------


def _message_children(forest: ThreadForest, node: int) -> Sequence[int]:
    """The children of ``node``, a dummy among them replaced by its own children."""
    size, children = forest.size, forest.children
    kids = children.get(node, ())
    if all(kid < size for kid in kids):
        return kids  # the usual case: no dummy to look through
    found: list[int] = []
    stack = list(reversed(kids))
    while stack:
        kid = stack.pop()
        if kid >= size:
            stack.extend(reversed(children.get(kid, ())))
        else:
            found.append(kid)
    return found


def format_forest(forest: ThreadForest, numbers: Sequence[int]) -> bytes:
    """The thread-lists of a ``* THREAD`` response (b"" for none), message ``n`` written as
    ``numbers[n]`` (its UID or sequence number): ``(2)(3 6 (4 23)(44 7 96))``; a dummy root is
    ``((1)(2))``.

    A node with one child continues the list, with several each child gets parentheses
    (``thread-members`` / ``thread-nested``). A dummy below the root, which the algorithms
    never leave, is written as if its children were its parent's; a dummy root with one
    message under it is written as that message.
    """
    out: list[str] = []
    # a stack of things to write: a node (int) starts a thread-list's contents, a str is literal
    stack: list[int | str] = []
    for root in reversed(forest.roots):
        if root >= forest.size:
            kids = _message_children(forest, root)
            if not kids:
                continue
            if len(kids) == 1:
                stack.extend((")", kids[0], "("))
                continue
            stack.append(")")
            for kid in reversed(kids):
                stack.extend((")", kid, "("))
            stack.append("(")
        else:
            stack.extend((")", root, "("))
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        node = item
        while True:
            out.append(str(numbers[node]))
            kids = _message_children(forest, node)
            if len(kids) == 1:
                out.append(" ")
                node = kids[0]
                continue
            if kids:
                out.append(" ")
                for kid in reversed(kids):
                    stack.extend((")", kid, "("))
            break
    return "".join(out).encode("ascii")


def parents_first(forest: ThreadForest) -> list[int]:
    """Every node of the forest, each before its children (iterative: threads can be deep)."""
    order: list[int] = []
    stack = forest.roots[:]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(forest.children.get(node, ()))
    return order
