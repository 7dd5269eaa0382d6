"""SELECT, EXAMINE, CHECK, CLOSE, UNSELECT, EXPUNGE, UID EXPUNGE (RFC 9051 §6.3.2-6.3.3, §6.4;
RFC 3691 UNSELECT; RFC 4315 UIDPLUS)."""

from __future__ import annotations

import logging

from postoffice.imap.access import find_mailbox, viewer_of
from postoffice.imap.commands.mailbox import mailbox_id
from postoffice.imap.message_sets import named_uids, uid_set
from postoffice.imap.proto import commands as c
from postoffice.imap.proto import events as ev
from postoffice.imap.proto import responses as resp
from postoffice.imap.session import Completion, ImapSession, State, bad, no, ok
from postoffice.imap.snapshot import MailboxSnapshot
from postoffice.store.interface import MailboxNotFound, StorageFull

log = logging.getLogger(__name__)


async def select(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Select)
    verb = "EXAMINE" if args.read_only else "SELECT"
    if args.qresync is not None and not session.qresync:
        return bad("QRESYNC must be enabled first (ENABLE QRESYNC)")
    if args.condstore:
        session.enable_condstore()
    had_mailbox = session.snapshot is not None
    session.close_mailbox()  # a failed SELECT leaves no mailbox selected (§6.3.2)
    if had_mailbox and (session.rev2 or session.qresync):  # RFC 7162 §3.2.11
        session.send(resp.untagged_status("OK", "Previous mailbox is now closed", "CLOSED"))
    assert session.account is not None
    store = session.services.store
    access = await find_mailbox(session, args.mailbox)
    if access is None:
        return no(f"No mailbox {args.mailbox}", "NONEXISTENT")
    if not access.may("r"):
        return no(f"You may not read {args.mailbox}", "NOPERM")
    # RFC 4314 §4: without any right to change it, the mailbox is opened read-only.
    read_only = args.read_only or not any(r in access.rights for r in "stwe")
    try:
        snapshot = await MailboxSnapshot.open(
            store, access.record.id, readonly=read_only, claim_recent=not session.rev2 and access.own,
            viewer=viewer_of(session, access.name),
        )
    except MailboxNotFound:
        return no(f"No mailbox {args.mailbox}", "NONEXISTENT")
    session.snapshot = snapshot
    session.selected_name, session.rights = access.name, access.rights
    session.state = State.SELECTED
    session.send(session.flags_responses(sorted(snapshot.keywords)))
    session.untagged(f"{snapshot.exists} EXISTS")
    if not session.rev2:
        session.untagged(f"{len(snapshot.recent)} RECENT")
        first_unseen = snapshot.unseen_first
        if first_unseen is not None:
            session.send(resp.untagged_status("OK", "First unseen", resp.unseen_code(first_unseen)))
    session.send(resp.untagged_status("OK", "UIDs valid", resp.uidvalidity_code(snapshot.mailbox.uidvalidity)))
    session.send(resp.untagged_status("OK", "Predicted next UID", resp.uidnext_code(snapshot.uidnext)))
    # Every mailbox keeps mod-sequences, so every SELECT reports one (RFC 7162 §3.1.2.1).
    session.send(resp.untagged_status("OK", "Highest", resp.highestmodseq_code(snapshot.highestmodseq)))
    session.send(resp.untagged_status("OK", "Ok", f"MAILBOXID ({mailbox_id(snapshot.mailbox)})"))
    if session.rev2:
        session.send(resp.list_response([], "/", access.name, utf8=session.utf8))
    if args.qresync is not None and args.qresync.uidvalidity == snapshot.mailbox.uidvalidity:
        await _resync(session, snapshot, args.qresync)
    return ok(f"{verb} completed", "READ-ONLY" if read_only else "READ-WRITE")


async def _resync(session: ImapSession, snapshot: MailboxSnapshot, params: c.QresyncParams) -> None:
    """SELECT (QRESYNC ...) (RFC 7162 §3.2.5): what was expunged and what changed since the
    client's mod-sequence, limited to the UIDs it knows. The optional sequence-match data only
    helps servers that forget expunges; the store keeps every tombstone, so it is not needed."""
    changes = await session.services.store.changes_since(snapshot.mailbox.id, params.modseq)
    known = None if params.known_uids is None else uid_set(params.known_uids, session.saved_search)
    largest = snapshot.uidnext

    def knows(uid: int) -> bool:
        return known is None or known.contains(uid, largest)

    vanished = sorted(u for u in changes.vanished if knows(u) and snapshot.seq_of(u) is None)
    if vanished:
        session.send(resp.vanished_response(vanished, earlier=True))
    for record in changes.changed:
        seq = snapshot.seq_of(record.uid)
        if seq is not None and knows(record.uid):
            session.write_flags(seq, record.uid)


async def check(session: ImapSession, command: ev.ImapCommand) -> Completion:
    await session.announce_updates(allow_expunge=True)
    return ok("CHECK completed")


async def close(session: ImapSession, command: ev.ImapCommand) -> Completion:
    """Expunge silently (no EXPUNGE responses), then deselect (§6.4.1).

    CLOSE has no NO (its answers are OK, now in authenticated state, or BAD): when the disk is
    too full to expunge, the mailbox is closed all the same, as Dovecot does, and an untagged
    NO [OVERQUOTA] says that the \\Deleted messages are still there."""
    snapshot = session.snapshot
    try:
        if snapshot is not None and not snapshot.readonly and session.may("e"):
            await session.services.store.expunge(snapshot.mailbox.id)
    except StorageFull as exc:
        log.warning("%s: CLOSE refused to expunge: %s", session.conn.id, exc)
        session.send(resp.untagged_status("NO", "Not enough disk space: messages marked \\Deleted were not removed",
                                          "OVERQUOTA"))
    session.close_mailbox()
    return ok("CLOSE completed")


async def unselect(session: ImapSession, command: ev.ImapCommand) -> Completion:
    session.close_mailbox()
    return ok("UNSELECT completed")


async def _expunge(session: ImapSession, uids: list[int] | None) -> Completion:
    snapshot = session.snapshot
    assert snapshot is not None
    if snapshot.readonly:
        return no("The mailbox is read-only", "READ-ONLY")
    if not session.may("e"):
        return no("You may not expunge messages here", "NOPERM")
    await session.announce_updates(allow_expunge=True)
    token = snapshot.own_write_begins()
    removed = await session.services.store.expunge(snapshot.mailbox.id, uids)
    session.write_expunged(snapshot.forget(removed))
    snapshot.own_write_done(token, 1 if removed else 0)
    await session.announce_updates(allow_expunge=True)
    return ok("EXPUNGE completed")


async def expunge(session: ImapSession, command: ev.ImapCommand) -> Completion:
    return await _expunge(session, None)


async def uid_expunge(session: ImapSession, command: ev.ImapCommand) -> Completion:
    """Only the given UIDs that carry \\Deleted (RFC 4315 §2.1)."""
    args = command.args
    assert isinstance(args, c.UidExpunge)
    snapshot = session.snapshot
    assert snapshot is not None
    wanted = named_uids(snapshot, args.sequence_set, uid=True, saved=session.saved_search)
    assert wanted is not None  # by UID, never an invalid number
    records = await session.services.store.get_messages(snapshot.mailbox.id, wanted)
    return await _expunge(session, [r.uid for r in records if "\\Deleted" in r.flags])
