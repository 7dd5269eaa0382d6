"""SORT and THREAD as pure functions (RFC 5256; RFC 5957 SORT=DISPLAY; RFC 5051 collation).

The caller runs the search and hands over one :class:`SortableMessage` per matching message:
:func:`sort_messages` orders them for ``SORT``; :func:`thread_orderedsubject` and
:func:`thread_references` build the trees of ``THREAD ORDEREDSUBJECT`` and ``THREAD
REFERENCES``, and :func:`format_threads` writes those trees as the payload of ``* THREAD``.
:func:`base_subject` is the "base subject" of RFC 5256 §2.1, :func:`unicode_casemap` the sort
key of the comparator, :func:`parse_message_ids` the msg-id reader REFERENCES uses.

Implementation notes:

- Strings are compared with i;unicode-casemap (RFC 5051): each character is replaced by its
  titlecase and the result decomposed (NFKD), then compared code point by code point (the
  order of their UTF-8 octets). RFC 5256 §7 requires it for SORT and THREAD. On ASCII text it
  is the same as i;ascii-casemap (RFC 4790 §9.2), which maps a-z to *upper* case: so ``[`` and
  ``_`` sort after the letters, as Dovecot's imaptest ``sort-subject`` expects. ``str.casefold``
  (lower case) would put them before, so it is not used.
- :func:`base_subject` returns the base subject as text (whitespace collapsed, artifacts
  removed, case kept); comparisons apply :func:`unicode_casemap` to it.
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

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

__all__ = [
    "SORT_KEYS",
    "SortAddress",
    "SortableMessage",
    "Thread",
    "base_subject",
    "base_subject_info",
    "format_threads",
    "parse_message_ids",
    "sort_messages",
    "thread_orderedsubject",
    "thread_references",
    "unicode_casemap",
]


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


@dataclass(slots=True)
class Thread:
    """A node of a thread tree; ``message`` is None for a dummy (a parent that is missing)."""

    message: SortableMessage | None
    children: list[Thread] = field(default_factory=list)


# --- collation (RFC 5051 i;unicode-casemap) -------------------------------------------------


class _TitlecaseTable(dict[int, str]):
    """A ``str.translate`` table that fills itself: code point -> its simple titlecase."""

    def __missing__(self, code: int) -> str:
        # RFC 5051 §2 uses the simple titlecase mapping (UnicodeData.txt); Python's title() is
        # the full one, which differs only where it yields several characters (ß -> Ss, ligatures):
        # those have no simple titlecase, so they stay as they are.
        ch = chr(code)
        title = ch.title()
        self[code] = mapped = title if len(title) == 1 else ch
        return mapped


_TITLECASE = _TitlecaseTable()


def unicode_casemap(text: str) -> str:
    """The i;unicode-casemap key of ``text`` (RFC 5051): titlecase, then NFKD.

    ASCII text is simply upper-cased, which is also i;ascii-casemap (RFC 4790 §9.2).
    """
    if text.isascii():
        return text.upper()
    return unicodedata.normalize("NFKD", text.translate(_TITLECASE))


# --- base subject (RFC 5256 §2.1) -----------------------------------------------------------

_WHITESPACE = re.compile(r"[ \t\r\n]+")
_BLOB = r"\[[^\[\]]*\] *"  # subj-blob = "[" *BLOBCHAR "]" *WSP
# *subj-leader, subj-leader = (*subj-blob subj-refwd) / WSP,
# subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_LEADERS = re.compile(rf"(?: |(?:{_BLOB})*(?:re|fwd?) *(?:{_BLOB})?:)*", re.IGNORECASE | re.ASCII)
_BLOB_PREFIX = re.compile(_BLOB)
_LEADS = ("re", "fw")


def base_subject_info(subject: str) -> tuple[str, bool]:
    """The base subject and whether the subject marks a reply or forward.

    Steps (1)-(6) of RFC 5256 §2.1, on a subject whose encoded words are already decoded. The
    flag is RFC 5256 §3's "reply or forward": extraction removed a subj-refwd (``Re:``,
    ``Fwd:``, ``[list] Re[2]:``), a ``(fwd)`` trailer, or a ``[fwd: ...]`` wrapper.
    """
    # (1) tabs and continuations to space, runs of spaces to one
    text = subject
    if "  " in text or "\t" in text or "\n" in text or "\r" in text:
        text = _WHITESPACE.sub(" ", text)
    if text and text[0] not in " [" and text[-1] not in " )" and text[:2].lower() not in _LEADS:
        return text, False  # nothing for steps (2) to (6) to remove: most subjects
    refwd = False
    while True:
        # (2) trailing subj-trailer ("(fwd)" / WSP), as long as there is one
        while text:
            if text[-1] == " ":
                text = text[:-1]
            elif text[-5:].lower() == "(fwd)":
                text = text[:-5]
                refwd = True
            else:
                break
        while True:
            # (3) every leading subj-leader ((*subj-blob subj-refwd) / WSP); a subj-refwd
            # ends with ":", a WSP leader has none
            leaders = _LEADERS.match(text)
            if leaders is not None and leaders.end():
                refwd = refwd or ":" in leaders.group()
                text = text[leaders.end() :]
            # (4) a leading subj-blob, if what follows is not empty
            blob = _BLOB_PREFIX.match(text)
            if blob is None or blob.end() == len(text):
                break
            text = text[blob.end() :]
            # (5) and again (3) and (4)
        # (6) "[fwd:" subject "]": unwrap and start over from (2)
        if text[:5].lower() == "[fwd:" and text.endswith("]"):
            text = text[5:-1]
            refwd = True
            continue
        return text, refwd


def base_subject(subject: str) -> str:
    """The base subject of RFC 5256 §2.1: ``"Re: [list] Fwd: Hello (fwd)"`` -> ``"Hello"``.

    Case is kept; compare with :func:`unicode_casemap` applied.
    """
    return base_subject_info(subject)[0]


def _subject_key(subject: str) -> str:
    return unicode_casemap(base_subject_info(subject)[0])


# --- SORT (RFC 5256 §3, RFC 5957) -----------------------------------------------------------


_SEQ = attrgetter("seq")


def _sent_date(message: SortableMessage) -> float:
    # RFC 5256 §2.2: no usable Date: header means the internal date
    return message.internal_date if message.sent_date is None else message.sent_date


def _first_mailbox(addresses: tuple[SortAddress, ...]) -> str:
    if not addresses or addresses[0].mailbox is None:
        return ""
    return unicode_casemap(addresses[0].mailbox)


def _display(addresses: tuple[SortAddress, ...]) -> str:
    # RFC 5957 §3: the display name of the first address, else its addr-spec
    if not addresses:
        return ""
    first = addresses[0]
    if first.name and first.name.strip():
        return unicode_casemap(first.name)
    if first.mailbox is None:
        return ""
    if first.host:
        return unicode_casemap(f"{first.mailbox}@{first.host}")
    return unicode_casemap(first.mailbox)


_KEY_FUNCTIONS: dict[str, Callable[[SortableMessage], Any]] = {
    "ARRIVAL": lambda m: m.internal_date,
    "CC": lambda m: _first_mailbox(m.cc),
    "DATE": _sent_date,
    "FROM": lambda m: _first_mailbox(m.from_),
    "SIZE": lambda m: m.size,
    "SUBJECT": lambda m: _subject_key(m.subject),
    "TO": lambda m: _first_mailbox(m.to),
    "DISPLAYFROM": lambda m: _display(m.from_),
    "DISPLAYTO": lambda m: _display(m.to),
}
SORT_KEYS = frozenset(_KEY_FUNCTIONS)


def sort_messages(
    messages: Sequence[SortableMessage], criteria: Sequence[tuple[str, bool]]
) -> list[SortableMessage]:
    """``messages`` in SORT order; ``criteria`` are ``(key, reverse)`` pairs, most significant
    first, with keys from :data:`SORT_KEYS` (``[("DATE", True), ("SUBJECT", False)]`` is
    ``SORT (REVERSE DATE SUBJECT)``). Ties left by all criteria go by sequence number, ascending.

    Raises ValueError for an unknown key.
    """
    functions = []
    for key, reverse in criteria:
        function = _KEY_FUNCTIONS.get(key.upper())
        if function is None:
            raise ValueError(f"unknown sort criterion {key!r}")
        functions.append((function, reverse))
    result = sorted(messages, key=_SEQ)
    # Python's sort is stable, also with reverse=True: sorting by the least significant key
    # first leaves each tie in the order of the keys after it, sequence number last.
    for function, reverse in reversed(functions):
        result.sort(key=function, reverse=reverse)
    return result


# --- THREAD=ORDEREDSUBJECT (RFC 5256 §3) ----------------------------------------------------


def thread_orderedsubject(messages: Sequence[SortableMessage]) -> list[Thread]:
    """THREAD ORDEREDSUBJECT: one thread per base subject (the empty one included), the
    earliest message its root and all the others its children, in sent-date order; threads
    ordered by the sent date of their root."""
    # stable sorts, least significant key first: (base subject, sent date, sequence number)
    ordered = sorted(messages, key=_SEQ)
    ordered.sort(key=_sent_date)
    subject_keys = {m.seq: _subject_key(m.subject) for m in ordered}
    ordered.sort(key=lambda m: subject_keys[m.seq])
    threads: list[Thread] = []
    previous: str | None = None
    for message in ordered:
        subject = subject_keys[message.seq]
        if threads and subject == previous:
            threads[-1].children.append(Thread(message, []))
        else:
            threads.append(Thread(message, []))
            previous = subject
    threads.sort(key=lambda t: _date_key(t.message))
    return threads


def _date_key(message: SortableMessage | None) -> tuple[float, int]:
    assert message is not None
    return (_sent_date(message), message.seq)


# --- THREAD=REFERENCES (RFC 5256 §3) --------------------------------------------------------

_BRACKETED = re.compile(r'<((?:"(?:[^"\\]|\\.)*"|[^<>"])*)>')
_PLAIN_ID = r'[^<>\s"()@\[\]\\,;:]+@[^<>\s"()@\\,;:]+'
_PLAIN_IDS = re.compile(rf"<({_PLAIN_ID})>")
_PLAIN_ID_ONLY = re.compile(_PLAIN_ID)


def _normalize_id(inner: str) -> str | None:
    """The msg-id between the brackets without quoting, comments or folding; None if invalid."""
    parts: list[str] = []  # an atom's characters, a quoted string's contents, or " "
    kinds: list[str] = []  # "c" (character), "q" (quoted string), "s" (folding or comment)

    def space() -> None:
        if not kinds or kinds[-1] != "s":
            parts.append(" ")
            kinds.append("s")

    i, n = 0, len(inner)
    while i < n:
        ch = inner[i]
        if ch == '"':
            j, buf = i + 1, []
            while j < n and inner[j] != '"':
                if inner[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(inner[j])
                j += 1
            if j >= n:
                return None
            parts.append("".join(buf))
            kinds.append("q")
            i = j + 1
        elif ch == "(":
            depth, j = 1, i + 1
            while j < n and depth:
                if inner[j] == "\\":
                    j += 1
                elif inner[j] == "(":
                    depth += 1
                elif inner[j] == ")":
                    depth -= 1
                j += 1
            if depth:
                return None
            space()
            i = j
        elif ch in " \t\r\n":
            space()
            i += 1
        elif ch in "<>)\\\0":
            return None
        else:
            parts.append(ch)
            kinds.append("c")
            i += 1
    # folding is allowed at the ends and around "." and "@" only (RFC 5322 obs-id-left); after
    # space() no two spaces are neighbours
    text: list[str] = []
    ats = 0
    last = len(parts) - 1

    def separator(k: int) -> bool:
        return kinds[k] == "c" and parts[k] in (".", "@")

    for k, kind in enumerate(kinds):
        part = parts[k]
        if kind == "s":
            if k in (0, last) or separator(k - 1) or separator(k + 1):
                continue
            return None
        if kind == "c" and part == "@":
            ats += 1
            part = "\0"  # the separator; an "@" inside quotes stays
        text.append(part)
    if ats != 1:
        return None
    local, _, domain = "".join(text).partition("\0")
    if not local or not domain:
        return None
    return f"{local}@{domain}"


def parse_message_ids(text: str) -> list[str]:
    """The valid msg-ids in a References or In-Reply-To value, in order, normalized without
    brackets: ``'<a@b> John <"c"@d>'`` -> ``["a@b", "c@d"]``."""
    ids: list[str] = _PLAIN_IDS.findall(text)
    if len(ids) == text.count("<") == text.count(">"):
        return ids  # the usual case: nothing quoted, nothing malformed
    ids = []
    for inner in _BRACKETED.findall(text):
        if _PLAIN_ID_ONLY.fullmatch(inner):
            ids.append(inner)
        else:
            normalized = _normalize_id(inner)
            if normalized is not None:
                ids.append(normalized)
    return ids


def _own_message_id(value: str | None) -> str | None:
    if value is None:
        return None
    ids = parse_message_ids(value)
    if ids:
        return ids[0]
    bare = value.strip()
    return bare if _PLAIN_ID_ONLY.fullmatch(bare) else None


class _Node:
    """A container of step (1): a message, or a dummy standing for a missing one."""

    __slots__ = ("children", "message", "parent", "thread")

    def __init__(self) -> None:
        self.message: SortableMessage | None = None
        self.parent: _Node | None = None
        self.children: dict[_Node, None] | None = None  # ordered, O(1) unlink
        self.thread: Thread  # made by step (3)


def _would_loop(parent: _Node, child: _Node) -> bool:
    """Whether making ``child`` a child of ``parent`` would close a loop."""
    if child is parent:
        return True
    if not child.children:
        return False  # a leaf cannot be an ancestor
    node = parent.parent
    while node is not None:
        if node is child:
            return True
        node = node.parent
    return False


def _link(parent: _Node, child: _Node) -> None:
    child.parent = parent
    if parent.children is None:
        parent.children = {child: None}
    else:
        parent.children[child] = None


def _link_references(messages: Sequence[SortableMessage]) -> list[_Node]:
    """Step (1): every container, message or dummy, linked to its parent."""
    table: dict[str, _Node] = {}
    nodes: list[_Node] = []
    for message in sorted(messages, key=_SEQ):
        own = _own_message_id(message.message_id)
        node = table.get(own) if own is not None else None
        if node is None or node.message is not None:
            # new, or without a valid Message-ID, or a duplicate: a container of its own
            node = _Node()
            nodes.append(node)
            if own is not None and own not in table:
                table[own] = node
        node.message = message
        references = parse_message_ids(message.references) if message.references else []
        if not references and message.in_reply_to:
            references = parse_message_ids(message.in_reply_to)[:1]
        # (1.A) chain the references; an existing parent link stays, no link may close a loop
        previous: _Node | None = None
        for reference in references:
            container = table.get(reference)
            if container is None:
                container = table[reference] = _Node()
                nodes.append(container)
            if (
                previous is not None
                and container.parent is None
                and not _would_loop(previous, container)
            ):
                _link(previous, container)
            previous = container
        # (1.B) the last reference is the parent: the old link goes first, a loop is refused
        parent = node.parent
        if parent is not previous:
            if parent is not None:
                assert parent.children is not None
                del parent.children[node]
                node.parent = None
            if previous is not None and not _would_loop(previous, node):
                _link(previous, node)
    return nodes


def _prune(nodes: list[_Node]) -> list[Thread]:
    """Steps (2) and (3): the containers become Threads, bottom-up; below the root a dummy gives
    way to its children, at the root only when it has a single child, and a dummy without
    children goes. Returns the roots."""
    roots = [node for node in nodes if node.parent is None]
    order: list[_Node] = []
    stack = roots[:]
    while stack:
        node = stack.pop()
        order.append(node)
        if node.children:
            stack.extend(node.children)
    for node in reversed(order):  # children before their parents
        kids: list[Thread] = []
        if node.children:
            for child in node.children:
                if child.message is not None:
                    kids.append(child.thread)
                else:
                    kids.extend(child.thread.children)  # already pruned: no dummies there
        node.thread = Thread(node.message, kids)
    top: list[Thread] = []
    for node in roots:
        thread = node.thread
        if thread.message is None:
            if not thread.children:
                continue
            if len(thread.children) == 1:
                thread = thread.children[0]
        top.append(thread)
    return top


def _thread_key(thread: Thread) -> tuple[float, int]:
    while thread.message is None:  # a dummy sorts as its first child (RFC 5256 §3 steps 4, 6)
        thread = thread.children[0]
    return (_sent_date(thread.message), thread.message.seq)


def _merge_by_subject(top: list[Thread]) -> list[Thread]:
    """Step (5): roots with the same base subject go together. Returns the new roots."""
    # a root's thread subject is its own base subject, or its first child's for a dummy;
    # "refwd" is RFC 5256's "reply or forward", which a dummy is not
    subject_of: list[str] = []
    refwd: list[bool] = []
    for thread in top:
        first = thread.message if thread.message is not None else thread.children[0].message
        assert first is not None
        subject, is_refwd = base_subject_info(first.subject)
        subject_of.append(unicode_casemap(subject))
        refwd.append(is_refwd and thread.message is not None)
    held_by: dict[str, int] = {}  # (5.B) the subject table: subject -> index in top
    for i, subject in enumerate(subject_of):
        if not subject:
            continue
        held = held_by.get(subject)
        if held is None or (
            top[held].message is not None
            and (top[i].message is None or (refwd[held] and not refwd[i]))
        ):
            held_by[subject] = i
    # (5.C) merge; a root put under another thread or a new dummy is left out at the end
    table: dict[str, Thread] = {subject: top[i] for subject, i in held_by.items()}
    gone: set[int] = set()
    new_dummies: list[Thread] = []
    for i, thread in enumerate(top):
        subject = subject_of[i]
        if not subject or i in gone:
            continue
        holder = table[subject]
        if holder is thread:
            continue
        holder_refwd = holder.message is not None and refwd[held_by[subject]]
        gone.add(i)
        if holder.message is None and thread.message is None:
            holder.children.extend(thread.children)
        elif holder.message is None or (refwd[i] and not holder_refwd):
            holder.children.append(thread)
        else:
            dummy = Thread(None, [holder, thread])
            gone.add(held_by[subject])
            table[subject] = dummy
            new_dummies.append(dummy)
    merged = [thread for i, thread in enumerate(top) if i not in gone]
    merged.extend(new_dummies)
    return merged


def thread_references(messages: Sequence[SortableMessage]) -> list[Thread]:
    """THREAD REFERENCES (RFC 5256 §3): parent/child links from References (or the first
    msg-id of In-Reply-To), dummies pruned, roots merged by base subject, siblings and threads
    in sent-date order."""
    top = _prune(_link_references(messages))  # (1), (2), (3)
    for thread in top:  # (4) a dummy sorts as its first child, and the roots by date
        if thread.message is None:
            thread.children.sort(key=_thread_key)
    top.sort(key=_thread_key)
    top = _merge_by_subject(top)  # (5)
    # (6) sort every set of siblings, the deepest first, then the roots
    order: list[Thread] = []
    stack = top[:]
    while stack:
        thread = stack.pop()
        order.append(thread)
        stack.extend(thread.children)
    for thread in reversed(order):
        if len(thread.children) > 1:
            thread.children.sort(key=_thread_key)
    top.sort(key=_thread_key)
    return top


# --- the THREAD response (RFC 5256 §4) ------------------------------------------------------


def _message_children(node: Thread) -> list[Thread]:
    """The children of ``node``, a dummy among them replaced by its own children."""
    found: list[Thread] = []
    stack = list(reversed(node.children))
    while stack:
        child = stack.pop()
        if child.message is None:
            stack.extend(reversed(child.children))
        else:
            found.append(child)
    return found


def format_threads(threads: Sequence[Thread], *, uid: bool) -> bytes:
    """The thread-lists of a ``* THREAD`` response (b"" for none), with UIDs or sequence numbers:
    ``(2)(3 6 (4 23)(44 7 96))``; a dummy root is ``((1)(2))``.

    A node with one child continues the list, with several each child gets parentheses
    (``thread-members`` / ``thread-nested``). A dummy below the root, which the algorithms
    never leave, is written as if its children were its parent's; a dummy root with one
    message under it is written as that message.
    """
    out: list[str] = []
    # a stack of things to write: a Thread starts a thread-list's contents, a str is literal
    stack: list[Thread | str] = []
    for thread in reversed(threads):
        if thread.message is None:
            kids = _message_children(thread)
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
            stack.extend((")", thread, "("))
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        node = item
        while True:
            assert node.message is not None
            out.append(str(node.message.uid if uid else node.message.seq))
            kids = _message_children(node)
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
