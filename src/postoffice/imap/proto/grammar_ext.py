"""The arguments of the IMAP extension commands: SORT, THREAD, CANCELUPDATE, QUOTA, ACL, NOTIFY,
COMPRESS; from a :class:`Reader` to the dataclasses of :mod:`postoffice.imap.proto.commands_ext`.

RFC 5256 §3, §5 and §6 (SORT, THREAD), RFC 5267 §3, §4 and §5 (ESORT, CONTEXT=SEARCH/SORT),
RFC 5957 (SORT=DISPLAY), RFC 9394 §3.1 (PARTIAL), RFC 9208 §4 and §7 (QUOTA), RFC 4314 §3 and §9
(ACL), RFC 5465 §3 and §8 (NOTIFY), RFC 4978 §3 (COMPRESS). :mod:`postoffice.imap.proto.grammar`
registers the handlers here under their command names (SORT and THREAD after UID too); each one
is called after the command name and reads from the space before its first argument.

Implementation notes:

- What the grammar allows but the server may not offer is parsed, and left to the server:
  any CHARSET for SORT and THREAD (``NO [BADCHARSET]``), any THREAD algorithm, any quota
  resource name, any COMPRESS mechanism, unknown NOTIFY events (``NO [BADEVENT]``).
- RFC-mandated BADs that need no session state are raised here: an unknown SORT key, an
  unknown ACL right (RFC 4314 §3.1: "an unrecognized right MUST cause the command to return
  the BAD response"), and the NOTIFY rules of RFC 5465 §5, §6.1 and §8 listed on
  :class:`~postoffice.imap.proto.commands.Notify`.
- Quota root names and ACL identifiers are strings as sent (UTF-8), not mailbox names: they
  are not decoded from modified UTF-7. Mailbox names are, as everywhere.
"""

from __future__ import annotations

import re
from typing import Literal

from postoffice.imap.proto import commands as c
from postoffice.imap.proto.fetch_items import parse_fetch_items
from postoffice.imap.proto.search_keys import parse_return_options, parse_search_keys
from postoffice.imap.proto.tokens import MAX_NUMBER64, Reader

__all__ = [
    "ACL_RIGHTS",
    "NOTIFY_EVENTS",
    "NOTIFY_FILTERS",
    "SORT_KEYS",
    "cancel_update",
    "compress",
    "deleteacl",
    "getacl",
    "getquota",
    "getquotaroot",
    "listrights",
    "myrights",
    "notify",
    "setacl",
    "setquota",
    "sort",
    "thread",
]

SORT_KEYS = frozenset(
    {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
)
# RFC 4314 §2.1 rights, and "c" and "d" of RFC 2086, which §2.1.1 keeps meaningful.
ACL_RIGHTS = "lrswipkxteacd"
# RFC 5465 §5 spelling by upper-cased name.
NOTIFY_EVENTS = {
    e.upper(): e
    for e in (
        "MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange", "MailboxName",
        "SubscriptionChange", "MailboxMetadataChange", "ServerMetadataChange",
    )
}  # fmt: skip
NOTIFY_FILTERS = frozenset(
    {"SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"}
)
_SELECTED_FILTERS = frozenset({"SELECTED", "SELECTED-DELAYED"})
_MESSAGE_EVENTS = frozenset({"MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange"})
_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')


# --- SORT, THREAD, CANCELUPDATE ----------------------------------------------------------------


def _return(reader: Reader, command: str) -> tuple[tuple[str, ...] | None, tuple[int, int] | None]:
    """``RETURN (options) SP`` if there (ESEARCH, ESORT, CONTEXT=SEARCH/SORT, PARTIAL)."""
    if reader.text[reader.pos : reader.pos + 7].upper() != b"RETURN ":
        return None, None
    reader.pos += 7
    options, partial = parse_return_options(reader, command=command)
    reader.sp()
    return options, partial


def _charset(reader: Reader) -> str:
    """SORT's and THREAD's mandatory ``charset SP`` (RFC 5256 §6: ``atom / quoted``)."""
    charset = reader.text_of(reader.astring()).upper()
    reader.sp()
    return charset


def sort(reader: Reader, uid: bool) -> c.Sort:
    """``SORT SP [RETURN (...) SP] (criteria) SP charset SP search-key *(SP search-key)``."""
    reader.sp()
    return_options, partial = _return(reader, "SORT")
    reader.expect(b"(")
    criteria: list[tuple[str, bool]] = []
    while True:
        start = reader.pos
        key = reader.keyword()
        reverse = key == "REVERSE"
        if reverse:
            reader.sp()
            start = reader.pos
            key = reader.keyword()
        if key not in SORT_KEYS:
            reader.pos = start
            raise reader.error(f"Unknown sort key {key}")
        criteria.append((key, reverse))
        if reader.try_char(b")"):
            break
        reader.sp()
    reader.sp()
    charset = _charset(reader)
    return c.Sort(tuple(criteria), charset, parse_search_keys(reader), return_options, uid, partial)


def thread(reader: Reader, uid: bool) -> c.Thread:
    """``THREAD SP algorithm SP charset SP search-key *(SP search-key)`` (RFC 5256 §6)."""
    reader.sp()
    algorithm = reader.keyword()
    reader.sp()
    charset = _charset(reader)
    return c.Thread(algorithm, charset, parse_search_keys(reader), uid)


def cancel_update(reader: Reader, uid: bool) -> c.CancelUpdate:
    """``CANCELUPDATE 1*(SP quoted)`` (RFC 5267 §5)."""
    tags = []
    reader.sp()
    tags.append(reader.text_of(reader.quoted()))
    while reader.try_sp():
        tags.append(reader.text_of(reader.quoted()))
    return c.CancelUpdate(tuple(dict.fromkeys(tags)))


# --- QUOTA ------------------------------------------------------------------------------------


def getquota(reader: Reader, uid: bool) -> c.GetQuota:
    reader.sp()
    return c.GetQuota(reader.astring_text())


def getquotaroot(reader: Reader, uid: bool) -> c.GetQuotaRoot:
    reader.sp()
    return c.GetQuotaRoot(reader.mailbox())


def setquota(reader: Reader, uid: bool) -> c.SetQuota:
    """``SETQUOTA SP root SP "(" [resource SP limit *(SP resource SP limit)] ")"`` (RFC 9208 §7)."""
    reader.sp()
    root = reader.astring_text()
    reader.sp()
    reader.expect(b"(")
    resources: dict[str, int] = {}
    if not reader.try_char(b")"):
        while True:
            start = reader.pos
            name = reader.keyword()
            if name in resources:
                reader.pos = start
                raise reader.error(f"{name} given twice")
            reader.sp()
            resources[name] = reader.number(MAX_NUMBER64)
            if reader.try_char(b")"):
                break
            reader.sp()
    return c.SetQuota(root, tuple(resources.items()))


# --- ACL --------------------------------------------------------------------------------------


def _identifier(reader: Reader) -> str:
    reader.sp()
    return reader.astring_text()


def setacl(reader: Reader, uid: bool) -> c.SetAcl:
    """``SETACL SP mailbox SP identifier SP mod-rights`` (RFC 4314 §9)."""
    reader.sp()
    mailbox = reader.mailbox()
    identifier = _identifier(reader)
    reader.sp()
    start = reader.pos
    rights = reader.astring_text()
    mode: Literal["replace", "add", "remove"] = "replace"
    if rights[:1] in ("+", "-"):
        mode = "add" if rights[0] == "+" else "remove"
        rights = rights[1:]
    for right in rights:
        if right not in ACL_RIGHTS:
            reader.pos = start
            raise reader.error(f"Unknown right {right!r}")
    return c.SetAcl(mailbox, identifier, "".join(dict.fromkeys(rights)), mode)


def deleteacl(reader: Reader, uid: bool) -> c.DeleteAcl:
    reader.sp()
    mailbox = reader.mailbox()
    return c.DeleteAcl(mailbox, _identifier(reader))


def getacl(reader: Reader, uid: bool) -> c.GetAcl:
    reader.sp()
    return c.GetAcl(reader.mailbox())


def listrights(reader: Reader, uid: bool) -> c.ListRights:
    reader.sp()
    mailbox = reader.mailbox()
    return c.ListRights(mailbox, _identifier(reader))


def myrights(reader: Reader, uid: bool) -> c.MyRights:
    reader.sp()
    return c.MyRights(reader.mailbox())


# --- NOTIFY -----------------------------------------------------------------------------------


def notify(reader: Reader, uid: bool) -> c.Notify:
    """``NOTIFY SP ("NONE" / "SET" [SP "STATUS"] 1*(SP event-group))`` (RFC 5465 §8)."""
    reader.sp()
    start = reader.pos
    word = reader.keyword()
    if word == "NONE":
        return c.Notify(())
    if word != "SET":
        reader.pos = start
        raise reader.error("Expected SET or NONE")
    reader.sp()
    status = False
    if reader.peek() != b"(":
        start = reader.pos
        if reader.keyword() != "STATUS":
            reader.pos = start
            raise reader.error("Expected STATUS or an event group")
        status = True
        reader.sp()
    groups = [_event_group(reader)]
    while reader.try_sp():
        groups.append(_event_group(reader))
    if sum(g.filter in _SELECTED_FILTERS for g in groups) > 1:
        raise reader.error("Only one SELECTED or SELECTED-DELAYED event group")  # RFC 5465 §6.1
    return c.Notify(tuple(groups), status)


def _event_group(reader: Reader) -> c.NotifyGroup:
    """``"(" filter-mailboxes SP events ")"``."""
    reader.expect(b"(")
    start = reader.pos
    name = reader.keyword()
    if name not in NOTIFY_FILTERS:
        reader.pos = start
        raise reader.error(f"Unknown NOTIFY mailbox filter {name}")
    mailboxes: tuple[str, ...] = ()
    if name in ("SUBTREE", "MAILBOXES"):
        reader.sp()
        if reader.peek() == b"(":
            mailboxes = tuple(dict.fromkeys(reader.paren_list(reader.mailbox)))
        else:
            mailboxes = (reader.mailbox(),)
    reader.sp()
    selected = name in _SELECTED_FILTERS
    events_start = reader.pos
    events: tuple[c.NotifyEvent, ...] = ()
    if reader.peek() == b"(":
        events = tuple(reader.paren_list(lambda: _event(reader, selected)))
    elif reader.keyword() != "NONE":
        reader.pos = events_start
        raise reader.error("Expected a list of events or NONE")
    reader.expect(b")")
    problem = _check_events(events, selected)
    if problem is not None:
        reader.pos = events_start
        raise reader.error(problem)
    return c.NotifyGroup(name, events, mailboxes)


def _event(reader: Reader, selected: bool) -> c.NotifyEvent:
    """``"MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]`` or another event atom."""
    start = reader.pos
    raw = reader.match(_ATOM, "an event").group().decode("ascii")
    name = NOTIFY_EVENTS.get(raw.upper(), raw)
    if name == "MessageNew" and reader.text[reader.pos : reader.pos + 2] == b" (":
        if not selected:  # RFC 5465 §5.2, §8
            reader.pos = start
            raise reader.error("Fetch attributes are only allowed with SELECTED(-DELAYED)")
        reader.sp()
        return c.NotifyEvent(name, parse_fetch_items(reader))
    return c.NotifyEvent(name)


def _check_events(events: tuple[c.NotifyEvent, ...], selected: bool) -> str | None:
    """What RFC 5465 §5 and §6.1 say is a BAD in one group's events, if anything."""
    names = [e.name for e in events]
    for i, name in enumerate(names):
        if name in names[:i]:
            return f"{name} given twice"
        if selected and name in NOTIFY_EVENTS.values() and name not in _MESSAGE_EVENTS:
            return f"{name} is not a message event: not allowed with SELECTED(-DELAYED)"
    if ("MessageNew" in names) != ("MessageExpunge" in names):
        return "MessageNew and MessageExpunge go together"
    if ("FlagChange" in names or "AnnotationChange" in names) and "MessageNew" not in names:
        return "FlagChange and AnnotationChange need MessageNew and MessageExpunge"
    return None


# --- COMPRESS ---------------------------------------------------------------------------------


def compress(reader: Reader, uid: bool) -> c.Compress:
    """``COMPRESS SP algorithm`` (RFC 4978 §3)."""
    reader.sp()
    return c.Compress(reader.keyword())
