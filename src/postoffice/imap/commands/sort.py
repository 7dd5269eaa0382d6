"""SORT and THREAD (RFC 5256), SORT=DISPLAY (RFC 5957), ESORT (RFC 5267 §3) and PARTIAL results
(RFC 9394) over the messages a search selects.

The algorithms are in `imap/sort_thread.py`; this module gathers what they need: the session's
snapshot for sizes and dates, and the header data stored at delivery for subjects, message ids
and sent dates, read for the whole selection in one store query (`MailStore.header_fields`).
The first address of From/To/Cc (for the FROM/TO/CC and DISPLAY* keys) comes from the stored
envelope and is only read when a criterion uses it.

On a mailbox of 100,000 messages the sorting and threading take the CPU for the better part of a
second: they run in a worker thread, so the event loop keeps serving the other connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

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
    SEQ,
    UID,
    MessageRow,
    RowAddresses,
    ThreadForest,
    format_forest,
    orderedsubject_forest,
    references_forest,
    sort_order,
)
from postoffice.message.mime_headers import decode_words
from postoffice.store.interface import AddressField, FirstAddress, HeaderFields

CHARSETS = ("UTF-8", "US-ASCII")
ALGORITHMS: dict[str, Callable[[Sequence[MessageRow]], ThreadForest]] = {
    "ORDEREDSUBJECT": orderedsubject_forest,
    "REFERENCES": references_forest,
}
# The address each sort key reads: the first of that ENVELOPE field (RFC 5256 §3, RFC 5957 §3).
_ADDRESS_KEYS: dict[str, AddressField] = {
    "FROM": "from", "TO": "to", "CC": "cc", "DISPLAYFROM": "from", "DISPLAYTO": "to",
}


def _addresses_for(criteria: Sequence[tuple[str, bool]]) -> set[AddressField]:
    return {_ADDRESS_KEYS[key.upper()] for key, _ in criteria if key.upper() in _ADDRESS_KEYS}


def _first(address: FirstAddress | None) -> RowAddresses:
    # The sort keys look at the first address only, so that is all a message carries here.
    if address is None:
        return ()
    name, mailbox, host = address
    return ((decode_words(name) if name else None, mailbox, host),)


async def _header_fields(session: ImapSession, snapshot: MailboxSnapshot, uids: list[int],
                         addresses: set[AddressField]) -> list[HeaderFields]:
    return await session.services.store.header_fields(snapshot.mailbox.id, uids, addresses=addresses)


def _rows(snapshot: MailboxSnapshot, uids: list[int], fields: list[HeaderFields]) -> list[MessageRow]:
    """One row per uid, from the snapshot and the stored header data.

    Runs in a worker thread: the snapshot is safe to read there, since the session's own task
    waits for it and nothing else changes the snapshot of a session that is not idling."""
    by_uid = {row[0]: row for row in fields}
    out: list[MessageRow] = []
    for uid in uids:
        record = snapshot.record(uid)
        seq = snapshot.seq_of(uid) or 0
        found = by_uid.get(uid)
        if found is None:  # its blob is gone: nothing known but what the snapshot has
            out.append((uid, seq, record.internal_date, None, record.size, "", (), (), (), None, None, ""))
            continue
        _, subject, sent_date, message_id, in_reply_to, references, from_, to, cc = found
        out.append((
            uid, seq, record.internal_date, None if sent_date is None else float(sent_date), record.size,
            subject, _first(from_), _first(to), _first(cc), message_id, in_reply_to, references,
        ))
    return out


async def _sorted(session: ImapSession, snapshot: MailboxSnapshot, uids: list[int],
                  criteria: Sequence[tuple[str, bool]]) -> list[MessageRow]:
    fields = await _header_fields(session, snapshot, uids, _addresses_for(criteria))

    def job() -> list[MessageRow]:
        rows = _rows(snapshot, uids, fields)
        return [rows[i] for i in sort_order(rows, criteria)]

    return await asyncio.to_thread(job)


def _thread_payload(algorithm: Callable[[Sequence[MessageRow]], ThreadForest], snapshot: MailboxSnapshot,
                    uids: list[int], fields: list[HeaderFields], uid: bool) -> bytes:
    rows = _rows(snapshot, uids, fields)
    return format_forest(algorithm(rows), [row[UID] if uid else row[SEQ] for row in rows])


async def sort(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Sort)
    snapshot = session.snapshot
    assert snapshot is not None
    if args.charset not in CHARSETS:
        return no(f"Unsupported charset {args.charset}", resp.badcharset_code(CHARSETS))
    await session.announce_updates(allow_expunge=args.uid)
    found = await search_uids(session, snapshot, args.key)
    ordered = await _sorted(session, snapshot, found, args.criteria)
    numbers = [row[UID] if args.uid else row[SEQ] for row in ordered]
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
                args.key, args.uid, set(found), args.criteria, [row[UID] for row in ordered])
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
    return [row[UID] for row in await _sorted(session, snapshot, uids, criteria)]


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
    fields = await _header_fields(session, snapshot, found, set())
    payload = await asyncio.to_thread(_thread_payload, algorithm, snapshot, found, fields, args.uid)
    session.send(resp.thread_response(payload))
    if not args.uid:
        await session.announce_updates(allow_expunge=False)
    return ok(("UID " if args.uid else "") + "THREAD completed")
