"""NAMESPACE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS
(RFC 9051 §6.3; RFC 6154 special-use; RFC 5258 LIST-EXTENDED selection/return options).

The hierarchy delimiter is "/". INBOX is case-insensitive. Special-use attributes are always
returned (IMAP4rev2 requires them).
"""

from __future__ import annotations

import asyncio

from postoffice.imap.access import (
    SHARED,
    find_mailbox,
    in_shared_namespace,
    shared_name,
    split_shared,
    viewer_of,
)
from postoffice.imap.proto import commands as c
from postoffice.imap.proto import events as ev
from postoffice.imap.proto import responses as resp
from postoffice.imap.proto.list_pattern import ListPattern, PatternTooLong
from postoffice.imap.session import Completion, ImapSession, no, ok
from postoffice.store.interface import (
    AlreadyExists,
    InvalidName,
    MailboxNotFound,
    MailboxRecord,
    SharedMailbox,
    StoreError,
)
from postoffice.store.mailbox_names import check_name

DELIMITER = "/"
# LIST lets other sessions run after matching this many characters of names (times the
# patterns' weight), a few milliseconds: a user with very many (or very long) mailboxes makes one
# LIST long, not every other session's wait.
_LIST_SLICE = 20_000
SPECIAL_USES = {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}


def mailbox_id(mailbox: MailboxRecord) -> str:
    """The MAILBOXID (RFC 8474 §4): UIDVALIDITY values come from a counter that only goes
    forward, so no two mailboxes ever share one, and RENAME keeps it."""
    return f"F{mailbox.uidvalidity:x}"


def _account_id(session: ImapSession) -> int:
    assert session.account is not None
    return session.account.id


async def namespace(session: ImapSession, command: ev.ImapCommand) -> Completion:
    # RFC 2342: personal names, then other users' mailboxes shared with this user.
    session.untagged(f'NAMESPACE (("" "/")) (("{SHARED}/" "/")) NIL')
    return ok("NAMESPACE completed")


async def create(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Create)
    name = args.mailbox.rstrip(DELIMITER)  # RFC 9051 §6.3.4: a trailing delimiter is a hint only
    if in_shared_namespace(name):
        return no("Mailboxes cannot be created in other users' namespace", "NOPERM")
    try:  # the whole name before any superior is made (the store checks each one again)
        name = check_name(name)
    except InvalidName as exc:
        return no(str(exc), "CANNOT")
    uses = [u for u in args.use if u in SPECIAL_USES]
    if len(uses) != len(args.use) or len(uses) > 1:
        return no("Unsupported special-use attribute", "USEATTR")
    store = session.services.store
    account = _account_id(session)
    if await store.get_mailbox(account, name) is not None:
        return no(f"Mailbox {name} already exists", "ALREADYEXISTS")
    parts = name.split(DELIMITER)
    try:
        for depth in range(1, len(parts)):  # superiors are created too (§6.3.4)
            parent = DELIMITER.join(parts[:depth])
            if await store.get_mailbox(account, parent) is None:
                await store.create_mailbox(account, parent)
        created = await store.create_mailbox(account, name, uses[0] if uses else None)
    except AlreadyExists:
        return no(f"Mailbox {name} already exists", "ALREADYEXISTS")
    except InvalidName as exc:
        return no(str(exc), "CANNOT")
    return ok("CREATE completed", f"MAILBOXID ({mailbox_id(created)})")


async def delete(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Delete)
    if args.mailbox.upper() == "INBOX":
        return no("INBOX cannot be deleted", "CANNOT")
    if split_shared(args.mailbox) is not None:
        return await _refuse_shared(session, args.mailbox, "Only the owner can delete a shared mailbox")
    if session.snapshot is not None and session.selected_name == args.mailbox:
        session.close_mailbox()
    try:
        await session.services.store.delete_mailbox(_account_id(session), args.mailbox)
    except MailboxNotFound:
        return no(f"No mailbox {args.mailbox}", "NONEXISTENT")
    return ok("DELETE completed")


async def rename(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Rename)
    if split_shared(args.old) is not None:
        return await _refuse_shared(session, args.old, "Only the owner can rename a shared mailbox")
    if in_shared_namespace(args.new):
        return no("Mailboxes cannot be moved into other users' namespace", "NOPERM")
    try:
        await session.services.store.rename_mailbox(_account_id(session), args.old, args.new.rstrip(DELIMITER))
    except MailboxNotFound:
        return no(f"No mailbox {args.old}", "NONEXISTENT")
    except AlreadyExists:
        return no(f"Mailbox {args.new} already exists", "ALREADYEXISTS")
    except InvalidName as exc:
        return no(str(exc), "CANNOT")
    return ok("RENAME completed")


async def _refuse_shared(session: ImapSession, name: str, reason: str) -> Completion:
    """NOPERM for another user's mailbox this user can see; NONEXISTENT for one they cannot (or
    that does not exist), so no one learns names they have no right to (RFC 4314 §4)."""
    if await find_mailbox(session, name) is None:
        return no(f"No mailbox {name}", "NONEXISTENT")
    return no(reason, "NOPERM")


async def _set_subscribed(session: ImapSession, name: str, value: bool) -> Completion:
    store = session.services.store
    if not value:  # by name: the mailbox may be gone (RFC 9051 §6.3.8)
        await store.unsubscribe_name(_account_id(session), name)
        return ok("UNSUBSCRIBE completed")
    access = await find_mailbox(session, name)
    if access is None:
        # RFC 9051 §6.3.7: subscribing to a non-existent name may be refused.
        return no(f"No mailbox {name}", "NONEXISTENT")
    if access.own:
        await store.set_subscribed(access.record.id, value)
    else:  # the subscription is this user's, to the name they see
        await store.subscribe_name(_account_id(session), access.name)
    return ok("SUBSCRIBE completed")


async def subscribe(session: ImapSession, command: ev.ImapCommand) -> Completion:
    assert isinstance(command.args, c.Subscribe)
    return await _set_subscribed(session, command.args.mailbox, True)


async def unsubscribe(session: ImapSession, command: ev.ImapCommand) -> Completion:
    assert isinstance(command.args, c.Unsubscribe)
    return await _set_subscribed(session, command.args.mailbox, False)


def _listing(mailboxes: list[MailboxRecord], shared: list[SharedMailbox]) -> dict[str, MailboxRecord | None]:
    """Every existing name (shared ones under Shared/OWNER/), plus superiors that do not exist
    (None) so % can stop at them.

    Linear in the total length of the names: the walk up from a name stops at the first
    superior already known, whose own superiors are known (or will be) by then.
    """
    names: dict[str, MailboxRecord | None] = {m.name: m for m in mailboxes}
    names.update({shared_name(s.owner, s.mailbox.name): s.mailbox for s in shared})
    for name in list(names):
        superior = name
        while DELIMITER in superior:
            superior = superior[:superior.rindex(DELIMITER)]
            if superior in names:
                break
            names[superior] = None
    return names


async def list_command(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.List)
    utf8 = session.utf8
    if args.patterns == ("",):  # RFC 9051 §6.3.9: the delimiter and root of the reference
        session.send(resp.list_response(["\\Noselect"], DELIMITER, "", utf8=utf8))
        return ok("LIST completed")
    store = session.services.store
    mailboxes = await store.list_mailboxes(_account_id(session))
    assert session.account is not None
    shared = [s for s in await store.shared_with(session.account.address) if "l" in s.rights]
    names = _listing(mailboxes, shared)
    parents = {name.rpartition(DELIMITER)[0] for name in names if DELIMITER in name}
    try:
        pattern = ListPattern.compile(args.reference, args.patterns)
    except PatternTooLong as exc:
        return no(str(exc), "LIMIT")
    subscribed_only = "SUBSCRIBED" in args.selection
    want_subscribed = subscribed_only or "SUBSCRIBED" in args.return_options
    special_only = "SPECIAL-USE" in args.selection
    recursive = "RECURSIVEMATCH" in args.selection
    subscriptions = set(await store.list_subscriptions(_account_id(session))) if want_subscribed else set()
    if subscribed_only:  # subscribed names whose mailbox is gone are listed \NonExistent (RFC 5258 §3.1)
        for name in subscriptions:
            names.setdefault(name, None)
    status_items = args.return_status
    # RFC 5258 §3.5: RECURSIVEMATCH lists a parent whose descendants meet the selection but not
    # the pattern, with CHILDINFO saying which selection they meet.
    childinfo: set[str] = set()
    if recursive and subscribed_only:
        for name in subscriptions:
            if not pattern.matches(name):
                childinfo.update(pattern.matching_superiors(name))

    def selected(name: str) -> bool:
        record = names[name]
        return (not subscribed_only or name in subscriptions) and (
            not special_only or (record is not None and bool(record.special_use)))

    work = 0
    for name in sorted(names, key=lambda n: (n != "INBOX", n)):
        work += len(name) * pattern.weight
        if work > _LIST_SLICE:
            work = 0
            await asyncio.sleep(0)
        if not pattern.matches(name):
            continue
        extra = b""
        if not selected(name):
            if name not in childinfo:
                continue
            extra = b'(CHILDINFO ("SUBSCRIBED"))'
        record = names[name]
        attributes = ["\\HasChildren" if name in parents else "\\HasNoChildren"]
        if record is None:
            attributes.insert(0, "\\NonExistent" if args.extended else "\\Noselect")
        elif record.special_use and split_shared(name) is None:  # another user's \\Sent is not mine
            attributes.append(record.special_use)
        if name in subscriptions:
            attributes.append("\\Subscribed")
        session.send(resp.list_response(attributes, DELIMITER, name, utf8=utf8, extra=extra))
        if status_items and record is not None:
            session.send(resp.status_response(
                name, await _status_items(session, record, status_items, viewer_of(session, name)), utf8=utf8))
    return ok("LIST completed")


async def lsub(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Lsub)
    try:
        pattern = ListPattern.compile(args.reference, [args.pattern])
    except PatternTooLong as exc:
        return no(str(exc), "LIMIT")
    mailboxes = await session.services.store.list_mailboxes(_account_id(session))
    subscribed = {m.name for m in mailboxes if m.subscribed}
    shown: dict[str, list[str]] = {}
    for name in subscribed:
        if pattern.matches(name):
            shown[name] = []
            continue
        # RFC 3501 §6.3.9: a parent that matches where a subscribed child does not is listed
        # with \Noselect (unless subscribed itself), so clients can walk down to the child.
        for parent in reversed(pattern.matching_superiors(name)):
            if parent not in subscribed:
                shown.setdefault(parent, ["\\Noselect"])
                break
    for name in sorted(shown, key=lambda n: (n != "INBOX", n)):
        session.send(resp.list_response(shown[name], DELIMITER, name, utf8=session.utf8, kind="LSUB"))
    return ok("LSUB completed")


async def _status_items(session: ImapSession, record: MailboxRecord, items: tuple[str, ...],
                        viewer: int | None = None) -> dict[str, int | str]:
    status = await session.services.store.mailbox_status(record.id, viewer=viewer)
    values = {
        "MESSAGES": status.messages, "UIDNEXT": status.uidnext, "UIDVALIDITY": status.uidvalidity,
        "UNSEEN": status.unseen, "DELETED": status.deleted, "SIZE": status.size,
        "RECENT": status.recent, "HIGHESTMODSEQ": status.highestmodseq,
        "APPENDLIMIT": session.services.config.limits.max_message_size,  # RFC 7889
        "MAILBOXID": mailbox_id(record),  # RFC 8474
    }
    return {item.upper(): values[item.upper()] for item in items if item.upper() in values}


async def status(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Status)
    access = await find_mailbox(session, args.mailbox)
    if access is None:
        return no(f"No mailbox {args.mailbox}", "NONEXISTENT")
    if not access.may("r"):
        return no(f"You may not read {args.mailbox}", "NOPERM")
    record = access.record
    try:
        items = await _status_items(session, record, args.items, viewer_of(session, access.name))
    except StoreError:
        return no(f"No mailbox {args.mailbox}", "NONEXISTENT")
    session.send(resp.status_response(access.name, items, utf8=session.utf8))
    return ok("STATUS completed")
