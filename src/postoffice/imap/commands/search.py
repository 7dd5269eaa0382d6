"""SEARCH and UID SEARCH (RFC 9051 §6.4.4), ESEARCH results (RFC 4731), SEARCHRES `$` (RFC 5182).

The key tree is evaluated per message over the session's snapshot (flags, sizes, dates) and the
header data stored at delivery. Every string key is a case-insensitive SUBSTRING match (§6.4.4):
SUBJECT on the decoded value kept at delivery (`MailStore.header_fields`); FROM/TO/CC/BCC on
"the envelope structure's field" (§6.4.4), the addresses of that field's first occurrence kept
at delivery (`MailStore.envelope_addresses`), written as `Name <local@domain>, group:`; other
HEADER fields on the decoded header fields, read from the message; BODY/TEXT on the decoded
text of the message through the store's substring index (`MailStore.search_text`). The store
answers all of these for messages expunged but not yet announced too.

Work that grows with the hits or the mailbox (sorting 100,000 hits, the walk over candidates,
their sequence numbers, writing the numbers) runs in a worker thread once it is big enough to
be felt (`off_loop`): on the event loop it held up every other session for ~0.3 s.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from postoffice.imap.commands.fetch import email_id
from postoffice.imap.proto import commands as c
from postoffice.imap.proto import events as ev
from postoffice.imap.proto import responses as resp
from postoffice.imap.proto import search_keys as k
from postoffice.imap.session import Completion, ImapSession, no, ok
from postoffice.imap.snapshot import MailboxSnapshot
from postoffice.message.mime_address import parse_address_list
from postoffice.message.mime_headers import decode_words, parse_fields
from postoffice.message.mime_model import Address
from postoffice.smtp.headers import header_block
from postoffice.store.interface import AddressField, MailStore, MessageRecord

# Keys answered from what the store kept at delivery rather than by reading every message.
_ENVELOPE_KEYS: dict[str, AddressField] = {"FROM": "from", "TO": "to", "CC": "cc", "BCC": "bcc"}
_STORED_KEYS = {"SUBJECT", *_ENVELOPE_KEYS}
T = TypeVar("T")


class _Context:
    def __init__(self, session: ImapSession, snapshot: MailboxSnapshot) -> None:
        self.session = session
        self.snapshot = snapshot
        self.text_hits: dict[tuple[str, bool], set[int]] = {}
        self.header_hits: dict[tuple[str, str], set[int]] = {}  # (key, needle) -> uids
        self.headers: dict[str, list[tuple[str, str, str]]] = {}
        # "$" (RFC 5182): looked up once per message, so a set, not the session's list
        self.saved = frozenset(session.saved_search)


async def _prefetch(ctx: _Context, key: k.SearchKey) -> None:
    """Load what the keys need before the synchronous walk: full-text hits, header data."""
    store = ctx.session.services.store
    if isinstance(key, k.SearchBody | k.SearchText):
        body_only = isinstance(key, k.SearchBody)
        if (key.value, body_only) not in ctx.text_hits:
            ctx.text_hits[(key.value, body_only)] = await store.search_text(
                ctx.snapshot.mailbox.id, key.value, headers=not body_only, body=True
            )
    elif isinstance(key, k.SearchHeader) and key.field.upper() in _STORED_KEYS and key.value:
        # an empty value asks whether the field is there at all: the header answers that below
        asked = (key.field.upper(), key.value.lower())
        if asked not in ctx.header_hits:
            ctx.header_hits[asked] = await _stored_hits(store, ctx.snapshot, *asked)
    elif isinstance(key, k.SearchHeader) or (isinstance(key, k.SearchDate) and key.which == "sent"):
        # Other header keys, presence checks and SENT* dates read the header itself, once:
        # many files per thread hop, parsed in the thread too, so the loop stays free.
        wanted = list(dict.fromkeys(
            sha for uid in ctx.snapshot.uids if (sha := ctx.snapshot.record(uid).blob) not in ctx.headers))
        for start in range(0, len(wanted), _HEADER_BATCH):
            raws = await store.read_blobs(wanted[start:start + _HEADER_BATCH])
            ctx.headers.update(await asyncio.to_thread(
                lambda raws=raws: {sha: parse_fields(header_block(raw)) for sha, raw in raws.items()}))
    elif isinstance(key, k.SearchNot):
        await _prefetch(ctx, key.key)
    elif isinstance(key, k.SearchOr):
        await _prefetch(ctx, key.left)
        await _prefetch(ctx, key.right)
    elif isinstance(key, k.SearchAnd):
        for sub in key.keys:
            await _prefetch(ctx, sub)


_HEADER_BATCH = 256

_ADDRESS_KEYS = {"FROM", "TO", "CC", "BCC", "SENDER", "REPLY-TO"}
# What an address text puts around names, mailboxes, hosts and group names (see _address_text).
_ADDRESS_PUNCTUATION = frozenset("<>@,:")


def _address_text(addresses: Iterable[Address] | None) -> str:
    """Addresses as `Name <local@domain>, group:` text, lower-cased: what address keys match
    against, so comments and odd spacing in the header do not hide an address."""
    parts = []
    for address in addresses or ():
        if address.host is None:
            if address.mailbox is not None:
                parts.append(decode_words(address.mailbox) + ":")
            continue
        name = decode_words(address.name) + " " if address.name else ""
        parts.append(f"{name}<{address.mailbox}@{address.host}>")
    return ", ".join(parts).lower()


async def _stored_hits(store: MailStore, snapshot: MailboxSnapshot, key: str, needle: str) -> set[int]:
    """The uids whose SUBJECT or ENVELOPE address field `key` contains `needle` (lower-cased):
    from the store, the matching done in a thread so that 100,000 messages do not hold up
    the event loop."""
    if key == "SUBJECT":
        fields = await store.header_fields(snapshot.mailbox.id, list(snapshot.uids))
        return await asyncio.to_thread(lambda: {row[0] for row in fields if needle in row[1].lower()})
    # Outside names, mailboxes, hosts and group names an address text has only punctuation and
    # single spaces, so a needle without punctuation matches inside one of them, trimmed of
    # spaces: the store can leave out the messages where none contains it.
    trimmed = needle.strip(" ")
    narrow = trimmed if trimmed and _ADDRESS_PUNCTUATION.isdisjoint(trimmed) else None
    found = await store.envelope_addresses(snapshot.mailbox.id, _ENVELOPE_KEYS[key], containing=narrow)
    return await asyncio.to_thread(lambda: {uid for uid, addresses in found if needle in _address_text(addresses)})


def _sent_day(fields: list[tuple[str, str, str]]) -> dt.date | None:
    """The calendar day of the Date: field in its own time zone (RFC 9051 §6.4.4 SENT*)."""
    for name, _, value in fields:
        if name == "date":
            parsed = email.utils.parsedate_tz(value)
            if parsed is None:
                return None
            try:
                return dt.date(parsed[0], parsed[1], parsed[2])
            except ValueError:
                return None
    return None


def _date_of(ts: float | int | None) -> dt.date | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).date()


def _compare(day: dt.date | None, op: str, target: dt.date) -> bool:
    if day is None:
        return False
    return day < target if op == "before" else day == target if op == "on" else day >= target


def _matches(ctx: _Context, key: k.SearchKey, seq: int, record: MessageRecord) -> bool:
    snapshot = ctx.snapshot
    match key:
        case k.SearchAll():
            return True
        case k.SearchFlag(flag=flag, present=present):
            if flag.lower() == "\\recent":
                has = record.uid in snapshot.recent
            elif flag.startswith("\\"):
                has = any(f.lower() == flag.lower() for f in record.flags)
            else:
                has = flag in record.flags
            return has == present
        case k.SearchHeader(field=field, value=value):
            name = field.upper()
            needle = value.lower()
            if name in _STORED_KEYS and value:  # an empty value means "has the field" (§6.4.4)
                return record.uid in ctx.header_hits[(name, needle)]
            fields = ctx.headers.get(record.blob, [])
            if name in _ADDRESS_KEYS:
                return any(lname == name.lower() and needle in _address_text(parse_address_list(v))
                           for lname, _, v in fields)
            return any(lname == name.lower() and needle in decode_words(v).lower() for lname, _, v in fields)
        case k.SearchBody(value=value):
            return record.uid in ctx.text_hits.get((value, True), set())
        case k.SearchText(value=value):
            return record.uid in ctx.text_hits.get((value, False), set())
        case k.SearchDate(which=which, op=op, date=target):
            if which == "internal":
                return _compare(_date_of(record.internal_date), op, target)
            if which == "saved":
                return _compare(_date_of(record.saved_date), op, target)
            return _compare(_sent_day(ctx.headers.get(record.blob, [])), op, target)
        case k.SearchSize(op=op, size=size):
            return record.size > size if op == "larger" else record.size < size
        case k.SearchAge(op=op, seconds=seconds):
            age = dt.datetime.now(dt.UTC).timestamp() - record.internal_date
            return age >= seconds if op == "older" else age <= seconds
        case k.SearchSequence(sequence_set=sequence_set):
            if sequence_set.saved:
                return record.uid in ctx.saved
            return sequence_set.contains(seq, snapshot.exists)
        case k.SearchUid(sequence_set=sequence_set):
            if sequence_set.saved:
                return record.uid in ctx.saved
            largest = snapshot.uids[-1] if snapshot.uids else 0
            return sequence_set.contains(record.uid, largest)
        case k.SearchModSeq(modseq=modseq):
            return record.modseq >= modseq
        case k.SearchObjectId(which=which, objectid=objectid):
            # RFC 8474 §5: EMAILID as FETCH gives it; THREADID is NIL here, so nothing matches
            return which == "emailid" and email_id(record.blob) == objectid
        case k.SearchSaveDateSupported():
            return True  # every message has a save date (RFC 8514 §4.3)
        case k.SearchNot(key=inner):
            return not _matches(ctx, inner, seq, record)
        case k.SearchOr(left=left, right=right):
            return _matches(ctx, left, seq, record) or _matches(ctx, right, seq, record)
        case k.SearchAnd(keys=keys):
            return all(_matches(ctx, sub, seq, record) for sub in keys)
    return False


MAX_CONTEXTS = 10  # searches kept up to date per session (RFC 5267 §4.1 NOUPDATE beyond)


@dataclass
class SearchContext:
    """SEARCH RETURN (UPDATE) (RFC 5267 §4): the search, and the UIDs it matched when last told."""

    key: k.SearchKey
    uid: bool
    uids: set[int]
    criteria: tuple[tuple[str, bool], ...] | None = None  # SORT RETURN (UPDATE): CONTEXT=SORT
    order: list[int] = field(default_factory=list)  # the UIDs in sort order, for SORT contexts


def partial_range(numbers: list[int], bounds: tuple[int, int]) -> list[int]:
    """RFC 9394: the results at positions first:last (1-based), counted from the end if negative."""
    first, last = bounds
    if first < 0:
        count = len(numbers)
        start, end = count + last + 1, count + first + 1  # (-1, -100): the last 100, in order
        return numbers[max(start, 1) - 1:max(end, 0)]
    return numbers[first - 1:last]


async def update_contexts(session: ImapSession) -> None:
    """Tell the client how its kept-up-to-date searches changed (RFC 5267 §4.2): ADDTO and
    REMOVEFROM, with UIDs for UID SEARCH, else sequence numbers. Position 0: SEARCH is unsorted."""
    snapshot = session.snapshot
    if snapshot is None or not session.search_contexts:
        return
    for tag, context in session.search_contexts.items():
        found = await search_uids(session, snapshot, context.key)
        now = set(found)
        removed, added = sorted(context.uids - now), sorted(now - context.uids)
        context.uids = now

        def numbers(uids: list[int], uid: bool = context.uid) -> list[int]:
            return uids if uid else [s for u in uids if (s := snapshot.seq_of(u)) is not None]

        if context.criteria is not None:
            from postoffice.imap.commands.sort import sorted_uids  # sort builds on search

            order = await sorted_uids(session, snapshot, found, context.criteria)
            # Sort keys never change, so messages only come and go. Removals by their old
            # position, last first; additions by their new position, first first: applied in
            # that order, each position is right when the client applies it.
            old = {u: i for i, u in enumerate(context.order, start=1)}
            new = {u: i for i, u in enumerate(order, start=1)}
            context.order = order
            gone = [(old[u], numbers([u])) for u in sorted(removed, key=lambda u: -old.get(u, 0)) if u in old]
            came = [(new[u], numbers([u])) for u in sorted(added, key=lambda u: new[u])]
            if any(n for _, n in gone):
                session.send(resp.esearch_response(tag, uid=context.uid, removefrom=gone, in_order=True))
            if came:
                session.send(resp.esearch_response(tag, uid=context.uid, addto=came, in_order=True))
            continue

        if removed and numbers(removed):
            session.send(resp.esearch_response(tag, uid=context.uid, removefrom=[(0, numbers(removed))]))
        if added:
            session.send(resp.esearch_response(tag, uid=context.uid, addto=[(0, numbers(added))]))


async def cancelupdate(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.CancelUpdate)
    for tag in args.tags:
        session.search_contexts.pop(tag, None)
    return ok("CANCELUPDATE completed")


async def search_uids(session: ImapSession, snapshot: MailboxSnapshot, key: k.SearchKey) -> list[int]:
    """The UIDs of the messages that match `key`, ascending (also for SORT and THREAD)."""
    if isinstance(key, k.SearchAll):  # THREAD ... ALL on 100,000 messages: nothing to check
        return list(snapshot.uids)
    ctx = _Context(session, snapshot)
    await _prefetch(ctx, key)
    # A full-text key (alone or ANDed with others) already names the few messages that can
    # match: walk only those instead of the whole mailbox.
    texts = [key] if isinstance(key, k.SearchBody | k.SearchText) else (
        [sub for sub in key.keys if isinstance(sub, k.SearchBody | k.SearchText)] if isinstance(key, k.SearchAnd) else [])
    keys = _key_count(key)
    if not texts:
        return await off_loop(len(snapshot.uids) * keys, lambda: _walk(ctx, key, enumerate(snapshot.uids, start=1)))
    first = texts[0]
    hits = ctx.text_hits[(first.value, isinstance(first, k.SearchBody))]
    # The store also names messages this session has not been told of yet: keep ours, sorted
    # (`&` walks the smaller side, so 5 hits in 100,000 messages cost 5 lookups).
    candidates = await off_loop(len(hits), lambda: sorted(snapshot.records.keys() & hits))
    if first is key:  # the text key alone: its hits are the answer
        return candidates
    seq_of = snapshot.seq_of
    return await off_loop(len(candidates) * keys,
                          lambda: _walk(ctx, key, ((seq_of(uid) or 0, uid) for uid in candidates)))


def _key_count(key: k.SearchKey) -> int:
    """How many keys `key` holds: the walk checks up to that many per message."""
    match key:
        case k.SearchNot(key=inner):
            return 1 + _key_count(inner)
        case k.SearchOr(left=left, right=right):
            return 1 + _key_count(left) + _key_count(right)
        case k.SearchAnd(keys=keys):
            return 1 + sum(_key_count(sub) for sub in keys)
    return 1


# Per-item work (hits, UIDs) on fewer items than this takes a few milliseconds at most: it runs
# on the loop rather than paying a thread hop.
_INLINE_ITEMS = 4096


async def off_loop(items: int, work: Callable[[], T]) -> T:
    """`work()`, whose cost grows with `items`, in a worker thread when it could hold up other
    sessions: there the interpreter hands the loop thread the GIL every few milliseconds
    (sys.getswitchinterval); on the loop, nobody else would run until it ended.

    `work` may read the session's snapshot: only the session's own task changes it (IDLE's
    push too, which serves only sessions in IDLE), and that task is waiting here.
    """
    return work() if items < _INLINE_ITEMS else await asyncio.to_thread(work)


def sequence_numbers(uids: Sequence[int], found: Iterable[int]) -> list[int]:
    """The sequence numbers of `found`: ascending UIDs, all in the ascending `uids` (a snapshot's)."""
    numbers = []
    at = 0
    for uid in found:
        at = bisect_left(uids, uid, at)
        numbers.append(at + 1)
    return numbers


def _walk(ctx: _Context, key: k.SearchKey, candidates: Iterable[tuple[int, int]]) -> list[int]:
    """The UIDs of the (sequence number, UID) candidates that match `key`. The cost is messages
    times keys, both large at worst (100,000 messages, MAX_SEARCH_KEYS keys), so callers run it
    through `off_loop` with that product."""
    record = ctx.snapshot.record
    return [uid for seq, uid in candidates if _matches(ctx, key, seq, record(uid))]


def uses_modseq(key: k.SearchKey) -> bool:
    match key:
        case k.SearchModSeq():
            return True
        case k.SearchNot(key=inner):
            return uses_modseq(inner)
        case k.SearchOr(left=left, right=right):
            return uses_modseq(left) or uses_modseq(right)
        case k.SearchAnd(keys=keys):
            return any(uses_modseq(sub) for sub in keys)
    return False


async def search(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Search)
    snapshot = session.snapshot
    assert snapshot is not None
    await session.announce_updates(allow_expunge=args.uid)
    found = await search_uids(session, snapshot, args.key)
    # RFC 7162 §3.1.5: a search by MODSEQ enables CONDSTORE and reports the highest mod-sequence
    # of the messages it returns (RFC 4731 §3.2: of MIN and MAX alone when only they are asked).
    with_modseq = uses_modseq(args.key)
    if with_modseq:
        session.enable_condstore()

    def highest(uids: Iterable[int]) -> int | None:
        return max((snapshot.record(u).modseq for u in uids), default=None) if with_modseq else None

    options = args.return_options
    if options is None and not session.rev2:
        session.send(await off_loop(len(found), lambda: resp.search_response(
            found if args.uid else sequence_numbers(snapshot.uids, found), highest(found))))
    else:
        opts = set(options or ("ALL",))
        if "SAVE" in opts:
            session.saved_search = list(found)
            opts.discard("SAVE")
        update = "UPDATE" in opts
        if update and len(session.search_contexts) >= MAX_CONTEXTS:
            return no("Too many searches kept up to date", resp.noupdate_code(command.tag))
        opts -= {"UPDATE", "CONTEXT"}  # CONTEXT is only a hint (RFC 5267 §4.1)

        def esearch() -> bytes:
            numbers = found if args.uid else sequence_numbers(snapshot.uids, found)
            # found and numbers are both ascending: the first and last are MIN and MAX
            everything = "ALL" in opts or "COUNT" in opts or options is None
            returned = found if everything else found[:1] * ("MIN" in opts) + found[-1:] * ("MAX" in opts)
            return resp.esearch_response(
                command.tag, uid=args.uid,
                minimum=numbers[0] if numbers and "MIN" in opts else None,
                maximum=numbers[-1] if numbers and "MAX" in opts else None,
                count=len(numbers) if "COUNT" in opts else None,
                all_numbers=numbers if "ALL" in opts or options is None else None,
                partial=(args.partial, partial_range(numbers, args.partial)) if args.partial else None,
                modseq=highest(returned),
            )

        session.send(await off_loop(len(found), esearch))
        if update:
            session.search_contexts[command.tag] = SearchContext(args.key, args.uid, set(found))
    if not args.uid:
        await session.announce_updates(allow_expunge=False)
    return ok(("UID " if args.uid else "") + "SEARCH completed")
