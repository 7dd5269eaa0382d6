"""APPEND (RFC 9051 §6.3.12, RFC 3502 MULTIAPPEND), STORE (§6.4.6), COPY (§6.4.7), MOVE
(RFC 6851), with UIDPLUS response codes (RFC 4315)."""

from __future__ import annotations

import time

from postoffice.imap.access import find_mailbox, missing_code, permitted_flags
from postoffice.imap.message_sets import named_uids
from postoffice.imap.proto import commands as c
from postoffice.imap.proto import events as ev
from postoffice.imap.proto import responses as resp
from postoffice.imap.session import Completion, ImapSession, bad, no, ok
from postoffice.imap.snapshot import MailboxSnapshot
from postoffice.message.lines import to_crlf
from postoffice.store.interface import FlagMode, FlagUpdate, NewMessage, QuotaExceeded

_MODES = {"replace": FlagMode.REPLACE, "add": FlagMode.ADD, "remove": FlagMode.REMOVE}


async def append(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Append) and session.account is not None
    store = session.services.store
    access = await find_mailbox(session, args.mailbox)
    if access is None:
        return no(f"No mailbox {args.mailbox}", missing_code(args.mailbox))
    if not access.may("i"):
        return no(f"You may not add messages to {args.mailbox}", "NOPERM")
    target = access.record
    if any(not message.data for message in args.messages):
        return bad("Empty message")
    keep = access.flags_kept()
    new: list[NewMessage] = []
    try:
        for message in args.messages:
            raw = message.data if message.binary else to_crlf(message.data)
            date = message.internal_date.timestamp() if message.internal_date else time.time()
            flags = frozenset(f for f in message.flags if f.lower() != "\\recent")
            if keep is not None:  # flags the user has no right to set are dropped (RFC 4314 §4)
                flags = keep.apply(flags)
            new.append(NewMessage(await store.put_blob(raw), flags, date, raw))
    except BaseException:  # e.g. the disk filled up at the third message of a MULTIAPPEND
        await store.discard_staged(item.blob for item in new)
        raise
    try:
        results = await store.append_messages(target.id, new)
    except QuotaExceeded:
        return no("Mailbox is over its quota", "OVERQUOTA")
    uids = [r.uid for r in results if r.uid is not None]
    if session.snapshot is not None:
        await session.announce_updates(allow_expunge=False)
    return ok("APPEND completed", resp.appenduid_code(target.uidvalidity, uids))


async def store(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Store)
    snapshot = session.snapshot
    assert snapshot is not None
    await session.announce_updates(allow_expunge=args.uid)
    uids = named_uids(snapshot, args.sequence_set, uid=args.uid, saved=session.saved_search)
    if uids is None:
        return bad("Invalid message sequence number")
    if snapshot.readonly:
        return no("The mailbox is read-only", "READ-ONLY")
    if args.unchanged_since is not None:
        session.enable_condstore()
    # \Recent is the server's to set; flags the user has no right to change are ignored (RFC 4314 §4).
    flags = permitted_flags(session, [f for f in args.flags if f.lower() != "\\recent"])
    updated: list[FlagUpdate] = []
    failed_uids: list[int] = []
    token = snapshot.own_write_begins()
    published = 0
    for group, group_flags in _replacement_groups(session, snapshot, uids, args.mode, flags):
        result = await session.services.store.store_flags(
            snapshot.mailbox.id, group, _MODES[args.mode], group_flags,
            unchanged_since=args.unchanged_since, viewer=snapshot.viewer,
        )
        updated += result.updated
        failed_uids += result.failed_unchanged_since
        published += bool(result.updated)  # one change per call that changed anything
    snapshot.apply_flag_updates(updated)
    snapshot.own_write_done(token, published)
    failed = set(failed_uids)
    changed = {u.uid for u in updated}
    for uid in uids:
        seq = snapshot.seq_of(uid)
        if seq is None or uid in failed:
            continue
        if not args.silent:
            session.write_flags(seq, uid, with_uid=args.uid)
        elif session.condstore and uid in changed:
            # RFC 7162 §3.1.4: under CONDSTORE even .SILENT reports the new MODSEQ.
            session.write_flags(seq, uid, with_uid=args.uid, flags=False)
    if not args.uid:
        await session.announce_updates(allow_expunge=False)
    code = None
    if failed:  # RFC 7162 §3.1.3: [MODIFIED] names them as the command did, by UID or number
        code = resp.modified_code(sorted(failed) if args.uid else sorted(
            s for u in failed if (s := snapshot.seq_of(u)) is not None))
    return ok(("UID " if args.uid else "") + "STORE completed", code)


def _replacement_groups(session: ImapSession, snapshot: MailboxSnapshot, uids: list[int], mode: str,
                        flags: list[str]) -> list[tuple[list[int], list[str]]]:
    """STORE FLAGS replaces every flag, but a user may only change some (RFC 4314 §4): the
    others keep what each message has, so messages are grouped by their resulting flag set."""
    if mode != "replace" or session.may("swt"):
        return [(uids, flags)]
    groups: dict[frozenset[str], list[int]] = {}
    for uid in uids:
        kept = [f for f in snapshot.record(uid).flags if not permitted_flags(session, [f])]
        groups.setdefault(frozenset(flags) | frozenset(kept), []).append(uid)
    return [(group, sorted(result)) for result, group in groups.items()]


async def _copy(session: ImapSession, command: ev.ImapCommand, *, move: bool) -> Completion:
    args = command.args
    assert isinstance(args, c.Copy | c.Move) and session.account is not None
    snapshot = session.snapshot
    assert snapshot is not None
    verb = ("UID " if args.uid else "") + ("MOVE" if move else "COPY")
    await session.announce_updates(allow_expunge=args.uid)
    uids = named_uids(snapshot, args.sequence_set, uid=args.uid, saved=session.saved_search)
    if uids is None:
        return bad("Invalid message sequence number")
    if move and snapshot.readonly:
        return no("The mailbox is read-only", "READ-ONLY")
    if move and not session.may("te"):
        return no("You may not remove messages from this mailbox", "NOPERM")
    store = session.services.store
    access = await find_mailbox(session, args.mailbox)
    if access is None:
        return no(f"No mailbox {args.mailbox}", missing_code(args.mailbox))
    if not access.may("i"):
        return no(f"You may not add messages to {args.mailbox}", "NOPERM")
    target = access.record
    live = [u for u in uids if u not in snapshot.vanished]
    try:
        result = await store.copy_messages(snapshot.mailbox.id, live, target.id, move=move, keep=access.flags_kept())
    except QuotaExceeded:
        return no("Mailbox is over its quota", "OVERQUOTA")
    code = None
    if result.pairs:
        code = resp.copyuid_code(result.uidvalidity, [p[0] for p in result.pairs], [p[1] for p in result.pairs])
    if move:
        if code:  # RFC 6851 §4.3: COPYUID comes untagged, before the EXPUNGEs
            session.send(resp.untagged_status("OK", "Moved", code))
        session.write_expunged(snapshot.forget([p[0] for p in result.pairs]))
        if target.id == snapshot.mailbox.id:  # moved within the mailbox: the copies are new
            await session.announce_updates(allow_expunge=False)
        return ok(f"{verb} completed")
    if target.id == snapshot.mailbox.id:
        await session.announce_updates(allow_expunge=False)
    return ok(f"{verb} completed", code)


async def copy(session: ImapSession, command: ev.ImapCommand) -> Completion:
    return await _copy(session, command, move=False)


async def move(session: ImapSession, command: ev.ImapCommand) -> Completion:
    return await _copy(session, command, move=True)
