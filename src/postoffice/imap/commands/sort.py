"""SORT and THREAD (RFC 5256), SORT=DISPLAY (RFC 5957), ESORT (RFC 5267 §3) and PARTIAL results
(RFC 9394) over the messages a search selects.

The algorithms are in `imap/sort_thread.py`; this module gathers what they need: the session's
snapshot for sizes and dates, and the header data stored at delivery for subjects, message ids
and sent dates. Addresses (for FROM/TO/CC and DISPLAY* keys) come from the stored envelope and
are only loaded when a criterion uses them.
"""

from __future__ import annotations

from postoffice.imap.commands.search import (
    MAX_CONTEXTS,
    SearchContext,
    partial_range,
    search_uids,
    uses_modseq,
)
from postoffice.imap.proto import commands as c
from postoffice.imap.proto import events as ev
from postoffice.imap.proto import responses as resp
from postoffice.imap.session import Completion, ImapSession, bad, no, ok
from postoffice.imap.snapshot import MailboxSnapshot
from postoffice.imap.sort_thread import (
    SortableMessage,
    SortAddress,
    format_threads,
    sort_messages,
    thread_orderedsubject,
    thread_references,
)
from postoffice.message.mime import load_structure
from postoffice.message.mime_headers import decode_words
from postoffice.message.mime_model import Address
from postoffice.store.interface import BlobInfo

CHARSETS = ("UTF-8", "US-ASCII")
ALGORITHMS = {"ORDEREDSUBJECT": thread_orderedsubject, "REFERENCES": thread_references}
_ADDRESS_KEYS = {"FROM", "TO", "CC", "DISPLAYFROM", "DISPLAYTO"}


def _addresses(addresses: tuple[Address, ...] | None) -> tuple[SortAddress, ...]:
    return tuple(
        SortAddress(decode_words(a.name) if a.name else None, a.mailbox, a.host) for a in addresses or ()
    )


async def _sortable(session: ImapSession, snapshot: MailboxSnapshot, uids: list[int],
                    with_addresses: bool) -> list[SortableMessage]:
    info: dict[str, BlobInfo] = await session.services.store.blob_info(
        list({snapshot.record(u).blob for u in uids}))
    out = []
    for uid in uids:
        record = snapshot.record(uid)
        blob = info.get(record.blob)
        from_ = to = cc = ()
        if with_addresses and blob is not None:
            try:
                envelope = load_structure(blob.structure)[0]
            except ValueError:
                pass
            else:
                from_, to, cc = _addresses(envelope.from_), _addresses(envelope.to), _addresses(envelope.cc)
        out.append(SortableMessage(
            uid=uid,
            seq=snapshot.seq_of(uid) or 0,
            internal_date=record.internal_date,
            sent_date=float(blob.sent_date) if blob is not None and blob.sent_date is not None else None,
            size=record.size,
            subject=blob.subject if blob is not None else "",
            from_=from_, to=to, cc=cc,
            message_id=blob.message_id if blob is not None else None,
            in_reply_to=blob.in_reply_to if blob is not None else None,
            references=blob.references if blob is not None else "",
        ))
    return out


async def sort(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Sort)
    snapshot = session.snapshot
    assert snapshot is not None
    if args.charset not in CHARSETS:
        return no(f"Unsupported charset {args.charset}", resp.badcharset_code(CHARSETS))
    await session.announce_updates(allow_expunge=args.uid)
    found = await search_uids(session, snapshot, args.key)
    needs_addresses = any(key in _ADDRESS_KEYS for key, _ in args.criteria)
    ordered = sort_messages(await _sortable(session, snapshot, found, needs_addresses), args.criteria)
    numbers = [m.uid if args.uid else m.seq for m in ordered]
    update = "UPDATE" in (args.return_options or ())
    if update and len(session.search_contexts) >= MAX_CONTEXTS:
        return no("Too many searches kept up to date", resp.noupdate_code(command.tag))
    modseq = None
    if uses_modseq(args.key):
        session.enable_condstore()
        modseq = max((snapshot.record(u).modseq for u in found), default=None)
    options = args.return_options
    if options is None:
        session.send(resp.sort_response(numbers, modseq))
    else:
        opts = set(options) or {"ALL"}
        if "SAVE" in opts:
            session.saved_search = sorted(found)
        if update:  # RFC 5267 §4: CONTEXT=SORT
            session.search_contexts[command.tag] = SearchContext(
                args.key, args.uid, set(found), args.criteria, [m.uid for m in ordered])
        session.send(resp.esearch_response(
            command.tag, uid=args.uid,
            minimum=numbers[0] if numbers and "MIN" in opts else None,
            maximum=numbers[-1] if numbers and "MAX" in opts else None,
            count=len(numbers) if "COUNT" in opts else None,
            all_numbers=numbers if "ALL" in opts else None,
            partial=(args.partial, partial_range(numbers, args.partial)) if args.partial else None,
            modseq=modseq if numbers else None,
            in_order=True,
        ))
    if not args.uid:
        await session.announce_updates(allow_expunge=False)
    return ok(("UID " if args.uid else "") + "SORT completed")


async def sorted_uids(session: ImapSession, snapshot: MailboxSnapshot, uids: list[int],
                      criteria: tuple[tuple[str, bool], ...]) -> list[int]:
    """`uids` in the order SORT `criteria` gives them (for CONTEXT=SORT updates)."""
    needs_addresses = any(key in _ADDRESS_KEYS for key, _ in criteria)
    return [m.uid for m in sort_messages(await _sortable(session, snapshot, uids, needs_addresses), criteria)]


async def thread(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Thread)
    snapshot = session.snapshot
    assert snapshot is not None
    algorithm = ALGORITHMS.get(args.algorithm)
    if algorithm is None:
        return bad(f"Unknown threading algorithm {args.algorithm}: use REFERENCES or ORDEREDSUBJECT")
    if args.charset not in CHARSETS:
        return no(f"Unsupported charset {args.charset}", resp.badcharset_code(CHARSETS))
    await session.announce_updates(allow_expunge=args.uid)
    found = await search_uids(session, snapshot, args.key)
    threads = algorithm(await _sortable(session, snapshot, found, with_addresses=False))
    session.send(resp.thread_response(format_threads(threads, uid=args.uid)))
    if not args.uid:
        await session.announce_updates(allow_expunge=False)
    return ok(("UID " if args.uid else "") + "THREAD completed")
