"""FETCH and UID FETCH (RFC 9051 §6.4.5; RFC 3516 BINARY).

Only what the items need is read: flags and sizes come from the session's snapshot, ENVELOPE
and BODYSTRUCTURE from the structure stored at delivery (one batched query), and message bytes
from the blob file only for BODY[...]/RFC822/BINARY items. A non-PEEK body fetch sets \\Seen
(unless the mailbox is read-only) and the new FLAGS are returned with it.

A message file that is missing or not of its recorded size is never sent (a literal of the
wrong length, or another message's bytes, would corrupt the client's copy): that message gets
no FETCH response, the others do, and the command ends `NO [CORRUPTION]` (RFC 5530: "some
relevant data are corrupt"; not SERVERBUG, as the server did nothing wrong, nor UNAVAILABLE,
as retrying will not help), with one ERROR line in the log naming the file, mailbox and UID;
a \\Seen the command set on that message is taken back (nobody has read it).
"""

from __future__ import annotations

import asyncio
import logging

from postoffice.imap.message_sets import named_uids, uid_set
from postoffice.imap.proto import commands as c
from postoffice.imap.proto import events as ev
from postoffice.imap.proto import responses as resp
from postoffice.imap.proto.body_sections import binary_bytes, binary_size, partial, section_bytes
from postoffice.imap.proto.bodystructure import bodystructure_bytes, envelope_bytes
from postoffice.imap.proto.fetch_items import (
    FetchAttribute,
    FetchBinary,
    FetchBinarySize,
    FetchBody,
    FetchItem,
)
from postoffice.imap.proto.responses import FetchResponse
from postoffice.imap.proto.sections import Section
from postoffice.imap.proto.sequence_set import SequenceSet
from postoffice.imap.session import Completion, ImapSession, bad, no, ok
from postoffice.imap.snapshot import MailboxSnapshot
from postoffice.message.mime import load_structure, parse_message
from postoffice.message.mime_model import BodyPart, Envelope
from postoffice.store.interface import BlobDamaged, FlagMode, MessageRecord, StorageFull

log = logging.getLogger(__name__)
_STRUCTURE = {"ENVELOPE", "BODY", "BODYSTRUCTURE", "PREVIEW"}
_CONTENT = {"RFC822", "RFC822.HEADER", "RFC822.TEXT"}


async def fetch(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Fetch)
    snapshot = session.snapshot
    assert snapshot is not None
    await session.announce_updates(allow_expunge=args.uid)
    uids = named_uids(snapshot, args.sequence_set, uid=args.uid, saved=session.saved_search)
    if uids is None:
        return bad("Invalid message sequence number")
    items = list(args.items)
    if args.uid and not any(isinstance(i, FetchAttribute) and i.name == "UID" for i in items):
        items.insert(0, FetchAttribute("UID"))
    if args.vanished and not (args.uid and session.qresync):
        return bad("VANISHED needs UID FETCH with QRESYNC enabled")
    if args.changed_since is not None or any(isinstance(i, FetchAttribute) and i.name == "MODSEQ" for i in items):
        session.enable_condstore()  # RFC 7162 §3.1
    if args.changed_since is not None:
        # CHANGEDSINCE (RFC 7162 §3.1.4.1): only messages changed since, with their MODSEQ.
        since = args.changed_since
        if args.vanished:
            await _vanished_earlier(session, snapshot, args.sequence_set, since)
        uids = [u for u in uids if snapshot.record(u).modseq > since]
        if not any(isinstance(i, FetchAttribute) and i.name == "MODSEQ" for i in items):
            items.append(FetchAttribute("MODSEQ"))
    sets_seen = not snapshot.readonly and session.may("s") and any(i.sets_seen for i in items)
    unseen: list[int] = []
    if sets_seen:
        unseen = [u for u in uids if "\\Seen" not in snapshot.record(u).flags]
        if unseen:
            token = snapshot.own_write_begins()
            try:
                result = await session.services.store.store_flags(
                    snapshot.mailbox.id, unseen, FlagMode.ADD, ["\\Seen"], viewer=snapshot.viewer)
            except StorageFull as exc:  # the content can still be read: serve it, unmarked
                log.warning("%s: FETCH could not set \\Seen: %s", session.conn.id, exc)
            else:
                snapshot.apply_flag_updates(result.updated)
                snapshot.own_write_done(token, 1 if result.updated else 0)
    needs_structure = any(
        (isinstance(i, FetchAttribute) and i.name in _STRUCTURE | _CONTENT)
        or isinstance(i, FetchBody | FetchBinary | FetchBinarySize)
        for i in items
    )
    needs_raw = any(
        (isinstance(i, FetchAttribute) and i.name in _CONTENT) or isinstance(i, FetchBody | FetchBinary | FetchBinarySize)
        for i in items
    )
    store = session.services.store
    structures: dict[str, tuple[Envelope, BodyPart]] = {}
    previews: dict[str, str] = {}
    if needs_structure and uids:
        info = await store.blob_info([snapshot.record(u).blob for u in uids])
        for sha, blob in info.items():
            previews[sha] = blob.preview
            try:
                structures[sha] = load_structure(blob.structure)
            except ValueError:
                pass
    session.announce_keywords()  # setting \Seen may have brought another session's new keyword
    damaged: list[int] = []
    for uid in uids:
        record = snapshot.record(uid)
        seq = snapshot.seq_of(uid)
        assert seq is not None
        try:
            raw = await store.read_blob(record.blob, record.size) if needs_raw else b""
            structure = structures.get(record.blob)
            if structure is None and needs_structure:
                raw = raw or await store.read_blob(record.blob, record.size)
                meta = await asyncio.to_thread(parse_message, raw)
                structure = (meta.envelope, meta.body)
            if record.blob not in previews and structure is not None and any(
                    isinstance(i, FetchAttribute) and i.name == "PREVIEW" for i in items):
                raw = raw or await store.read_blob(record.blob, record.size)
                previews[record.blob] = (await asyncio.to_thread(parse_message, raw)).preview
        except BlobDamaged as exc:
            log.error("%s: %s", session.conn.id, exc.where(f"{snapshot.mailbox.name} #{snapshot.mailbox.id}", uid))
            damaged.append(uid)
            continue
        response = FetchResponse(seq)
        failure = _render(session, response, record, items, raw, structure, sets_seen,
                          previews.get(record.blob, ""))
        if isinstance(failure, Completion):
            return failure
    if not args.uid:
        await session.announce_updates(allow_expunge=False)
    if damaged:
        await _unmark_unread(session, snapshot, sorted(set(damaged) & set(unseen)))
        more = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
        return no(f"Message UID {damaged[0]}{more} could not be read intact and was left out; "
                  "the server log has the details", "CORRUPTION")
    return ok(("UID " if args.uid else "") + "FETCH completed")


async def _unmark_unread(session: ImapSession, snapshot: MailboxSnapshot, uids: list[int]) -> None:
    """Take back the \\Seen this FETCH set on messages it could not send: a damaged message the
    user never read must not look read."""
    if not uids:
        return
    try:
        result = await session.services.store.store_flags(
            snapshot.mailbox.id, uids, FlagMode.REMOVE, ["\\Seen"], viewer=snapshot.viewer)
    except StorageFull as exc:
        log.warning("%s: FETCH could not take back \\Seen: %s", session.conn.id, exc)
        return
    snapshot.apply_flag_updates(result.updated)


async def _vanished_earlier(session: ImapSession, snapshot: MailboxSnapshot, uids: SequenceSet, since: int) -> None:
    """UID FETCH ... (CHANGEDSINCE n VANISHED): the UIDs in the set expunged since n
    (RFC 7162 §3.2.6), before the FETCH responses."""
    changes = await session.services.store.changes_since(snapshot.mailbox.id, since)
    largest = snapshot.uidnext
    wanted = uid_set(uids, session.saved_search)
    gone = sorted(u for u in changes.vanished if wanted.contains(u, largest) and snapshot.seq_of(u) is None)
    if gone:
        session.send(resp.vanished_response(gone, earlier=True))


def _render(
    session: ImapSession, response: FetchResponse, record: MessageRecord,
    items: list[FetchItem], raw: bytes, structure: tuple[Envelope, BodyPart] | None, sets_seen: bool,
    preview: str,
) -> Completion | None:
    flags_sent = False
    for item in items:
        if isinstance(item, FetchAttribute):
            name = item.name
            if name == "UID":
                response.uid(record.uid)
            elif name == "FLAGS":
                response.flags(session.flags_of(record))
                flags_sent = True
            elif name == "INTERNALDATE":
                response.internaldate(record.internal_date)
            elif name == "RFC822.SIZE":
                response.rfc822_size(record.size)
            elif name == "ENVELOPE" and structure is not None:
                response.add("ENVELOPE", envelope_bytes(structure[0]))
            elif name in ("BODY", "BODYSTRUCTURE") and structure is not None:
                response.add(name, bodystructure_bytes(structure[1], extended=name == "BODYSTRUCTURE"))
            elif name == "MODSEQ":
                response.modseq(record.modseq)
            elif name in _CONTENT and structure is not None:
                section = {"RFC822": Section(), "RFC822.HEADER": Section(text="HEADER"),
                           "RFC822.TEXT": Section(text="TEXT")}[name]
                response.body(name, section_bytes(raw, structure[1], section) or b"")
            elif name == "PREVIEW":  # RFC 8970: the first 256 characters of the text
                response.add(name, resp.nstring(preview[:256], utf8=True))
            elif name == "SAVEDATE":  # RFC 8514
                response.add(name, resp.internaldate(record.saved_date))
            elif name == "EMAILID":  # RFC 8474: copies of a message share it, as they share the blob
                response.add(name, b"(" + email_id(record.blob).encode() + b")")
            elif name == "THREADID":  # RFC 8474 §5.2: NIL while threads are not tracked
                response.add(name, b"NIL")
        elif isinstance(item, FetchBody) and structure is not None:
            data = section_bytes(raw, structure[1], item.section)
            if data is None:
                return bad("Invalid section")
            if item.partial is not None:
                data = partial(data, *item.partial)
            response.body(item.response_name(), data)
        elif isinstance(item, FetchBinary) and structure is not None:
            data = binary_bytes(raw, structure[1], item.part)
            if data is None:
                return no("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE")
            if item.partial is not None:
                data = partial(data, *item.partial)
            response.body(item.response_name(), data, binary=True)
        elif isinstance(item, FetchBinarySize) and structure is not None:
            size = binary_size(raw, structure[1], item.part)
            if size is None:
                return no("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE")
            response.number(item.response_name(), size)
    if sets_seen and not flags_sent and any(i.sets_seen for i in items):
        response.flags(session.flags_of(record))
        if session.condstore and not any(isinstance(i, FetchAttribute) and i.name == "MODSEQ" for i in items):
            response.modseq(record.modseq)  # the flags changed: so did the mod-sequence
    session.send(response.to_bytes())
    return None


def email_id(blob: str) -> str:
    """The EMAILID (RFC 8474) of a message: from its content hash, so stable forever."""
    return "M" + blob[:24]
