"""NOTIFY (RFC 5465): tell the client about changes in mailboxes it is not looking at.

NOTIFY SET records which mailboxes (filters) and which events the client wants and subscribes to
every change the store publishes. The connection driver waits on that subscription alongside
the socket whenever no command is running (and during IDLE), and calls `deliver`: changes to
the selected mailbox are announced as usual (EXISTS, EXPUNGE/VANISHED, FETCH); changes to other
mailboxes as STATUS responses (RFC 5465 §5.2-5.4), and new, renamed and deleted mailboxes as
LIST responses (§5.4: a renamed one with OLDNAME, a deleted one as \\NonExistent). A mailbox
takes the events of the first group whose filter it matches.

A deleted mailbox cannot be looked up any more, so the session remembers the names of the
mailboxes it reports MailboxName for (taken at NOTIFY SET, kept up to date by the events).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from postoffice.imap.access import rights_of, shared_name, viewer_of
from postoffice.imap.proto import commands as c
from postoffice.imap.proto import events as ev
from postoffice.imap.proto import responses as resp
from postoffice.imap.session import Completion, ImapSession, no, ok
from postoffice.store.changes import ChangeKind, MailboxChange, Subscription
from postoffice.store.interface import MailboxRecord

SUPPORTED = ("MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange")
_MESSAGE_KINDS = {ChangeKind.EXISTS: "MessageNew", ChangeKind.EXPUNGE: "MessageExpunge", ChangeKind.FLAGS: "FlagChange"}


@dataclass
class NotifyState:
    groups: tuple[c.NotifyGroup, ...]
    subscription: Subscription
    # mailbox id -> the name this session knows it by, for those with MailboxName events
    names: dict[int, str] = field(default_factory=dict)

    def close(self) -> None:
        self.subscription.close()


async def notify(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Notify)
    if session.notify is not None:
        session.notify.close()
        session.notify = None
    if not args.groups:
        return ok("NOTIFY NONE completed")
    wanted = {e.name for g in args.groups for e in g.events}
    unsupported = wanted - set(SUPPORTED)
    if unsupported:
        return no("Unsupported events: " + " ".join(sorted(unsupported)), f"BADEVENT ({' '.join(SUPPORTED)})")
    state = session.notify = NotifyState(args.groups, session.services.store.changes.subscribe(None))
    if args.status or "MailboxName" in wanted:
        for name, record in await _watched(session):
            group = _group_for(session, name, record)
            if group is None:
                continue
            if _has(group, "MailboxName"):
                state.names[record.id] = name
            if args.status and _has(group, "MessageNew"):  # §3.1: the state of what it now watches
                await _send_status(session, name, record, group)
    return ok("NOTIFY completed")


async def deliver(session: ImapSession, changes: list[MailboxChange]) -> None:
    state = session.notify
    if state is None:
        return
    selected = session.snapshot.mailbox.id if session.snapshot is not None else None
    store = session.services.store
    announced_selected = False
    sent: set[int] = set()
    for change in changes:
        if change.mailbox_id == selected:
            if not announced_selected:
                announced_selected = True
                await session.announce_updates(allow_expunge=True)
            continue
        if change.mailbox_id in sent:
            continue
        record = await store.get_mailbox_by_id(change.mailbox_id)
        name = None if record is None else await _visible_name(session, record)
        if record is None or name is None:  # deleted, or no longer shared with this user
            gone = state.names.pop(change.mailbox_id, None)
            if gone is not None and change.kind is ChangeKind.MAILBOX:
                session.send(resp.list_response(["\\NonExistent"], "/", gone, utf8=session.utf8))
            continue
        group = _group_for(session, name, record)
        if group is None:
            continue
        event = _MESSAGE_KINDS.get(change.kind)
        if event is not None and _has(group, event):
            sent.add(change.mailbox_id)
            await _send_status(session, name, record, group)
        elif change.kind is ChangeKind.MAILBOX and _has(group, "MailboxName"):
            old = state.names.get(change.mailbox_id)
            state.names[change.mailbox_id] = name
            if old == name:
                continue  # a change of the mailbox that is no change of name (e.g. its ACL)
            extra = b"" if old is None else b"(\"OLDNAME\" (" + resp.mailbox(old, utf8=session.utf8) + b"))"
            session.send(resp.list_response([], "/", name, utf8=session.utf8, extra=extra))


def _has(group: c.NotifyGroup, event: str) -> bool:
    return any(e.name == event for e in group.events)


async def _send_status(session: ImapSession, name: str, record: MailboxRecord, group: c.NotifyGroup) -> None:
    """§5.2: MESSAGES, UIDNEXT and UIDVALIDITY; HIGHESTMODSEQ too when FlagChange is asked."""
    status = await session.services.store.mailbox_status(record.id, viewer=viewer_of(session, name))
    items: dict[str, int | str] = {"MESSAGES": status.messages, "UIDNEXT": status.uidnext,
                                   "UIDVALIDITY": status.uidvalidity}
    if _has(group, "FlagChange"):
        items["HIGHESTMODSEQ"] = status.highestmodseq
    session.send(resp.status_response(name, items, utf8=session.utf8))


async def _visible_name(session: ImapSession, record: MailboxRecord) -> str | None:
    account = session.account
    assert account is not None
    if record.account_id == account.id:
        return record.name
    rights = rights_of(await session.services.store.get_acl(record.id), account.address)
    if "l" not in rights and "r" not in rights:
        return None
    owner = await session.services.store.get_account_by_id(record.account_id)
    return None if owner is None else shared_name(owner.address, record.name)


async def _watched(session: ImapSession) -> list[tuple[str, MailboxRecord]]:
    account = session.account
    assert account is not None
    store = session.services.store
    own = [(m.name, m) for m in await store.list_mailboxes(account.id)]
    shared = [(shared_name(s.owner, s.mailbox.name), s.mailbox) for s in await store.shared_with(account.address)
              if any(r in s.rights for r in "lr")]
    return own + shared


def _group_for(session: ImapSession, name: str, record: MailboxRecord) -> c.NotifyGroup | None:
    state = session.notify
    assert state is not None and session.account is not None
    selected = session.snapshot is not None and session.snapshot.mailbox.id == record.id
    own = record.account_id == session.account.id
    for group in state.groups:
        f = group.filter
        if f in ("SELECTED", "SELECTED-DELAYED"):
            hit = selected
        elif f == "INBOXES":
            hit = own and name == "INBOX"
        elif f == "PERSONAL":
            hit = own
        elif f == "SUBSCRIBED":
            hit = record.subscribed and own
        elif f == "SUBTREE":
            hit = any(name == m or name.startswith(m + "/") for m in group.mailboxes)
        else:  # MAILBOXES
            hit = name in group.mailboxes
        if hit:
            return group if group.events else None
    return None

