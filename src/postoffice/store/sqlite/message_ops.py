"""Messages in SQLite: append, deliver, flags, expunge, copy/move, changes.

Every operation that changes a mailbox takes one new modseq for that mailbox (RFC 7162 §3.1.1
allows messages changed by one operation to share it), records a `MailboxChange` published
after commit, and leaves tombstones for expunged uids.

Blob lifecycle: a blob row is inserted (or found) in the same transaction as the message rows
that reference it; triggers keep `refcount`. When the count falls to zero, a clean-up pass runs
on the writer thread after the commit, in a transaction of its own, and unlinks the file while
it holds the write lock. A writer that reuses a row whose count is zero (or a new row) checks the
file is present under that same lock and rewrites it from the bytes it carries, so no message
row can ever point to a missing file.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from postoffice.message.mime_json import ENVELOPE_ADDRESS_PATHS, addresses_in
from postoffice.message.mime_model import Address
from postoffice.store.blobs import BlobStore
from postoffice.store.changes import ChangeKind, MailboxChange
from postoffice.store.interface import (
    DELETED,
    SEEN,
    AddressField,
    AppendResult,
    BlobInfo,
    CopyResult,
    DeliveryTarget,
    FirstAddress,
    FlagMode,
    FlagsKept,
    FlagUpdate,
    HeaderFields,
    IndexedBlob,
    MailboxChanges,
    MailboxRecord,
    MessageRecord,
    NewMessage,
    OutboundMessage,
    QuotaExceeded,
    StoreError,
    StoreFlagsResult,
    TargetResult,
    join_flags,
    split_flags,
)
from postoffice.store.sqlite import filter_state_ops as junk_queue
from postoffice.store.sqlite import queue_ops
from postoffice.store.sqlite.blob_holds import BlobHolds
from postoffice.store.sqlite.mailbox_ops import (
    bump_modseq,
    get_mailbox,
    require_mailbox,
    special_use_mailbox,
)
from postoffice.store.sqlite.text_ops import FILE_MISSING, QUEUE_ONLY, UNINDEXED, forget_later
from postoffice.store.sqlite.writer import Transaction

_MSG_COLUMNS = "m.mailbox_id, m.uid, m.modseq, m.flags, m.keywords, m.internal_date, m.saved_date, m.size, b.sha256, b.wire_form"
_CHUNK = 900  # stay under SQLite's bound-variable limit
log = logging.getLogger(__name__)


def _record(row: tuple[Any, ...]) -> MessageRecord:
    return MessageRecord(
        mailbox_id=row[0], uid=row[1], modseq=row[2], flags=join_flags(row[3], row[4]),
        internal_date=row[5], saved_date=row[6], size=row[7], blob=row[8], wire_form=row[9],
    )


def _private_seen(conn: sqlite3.Connection, mailbox_id: int, viewer: int) -> set[int]:
    rows = conn.execute(
        "SELECT uid FROM private_seen WHERE mailbox_id = ? AND account_id = ?", (mailbox_id, viewer)
    ).fetchall()
    return {r[0] for r in rows}


def _as_seen_by(conn: sqlite3.Connection, mailbox_id: int, viewer: int | None,
                records: list[MessageRecord]) -> list[MessageRecord]:
    """Records with the \\Seen flag of `viewer` (a sharee with a private \\Seen), not the owner's."""
    if viewer is None or not records:
        return records
    seen = _private_seen(conn, mailbox_id, viewer)
    return [
        replace(r, flags=(r.flags | {"\\Seen"}) if r.uid in seen else (r.flags - {"\\Seen"}))
        for r in records
    ]


def _chunks(items: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


# --- blobs --------------------------------------------------------------------------------


def insert_blob(tx: Transaction, blobs: BlobStore, blob: IndexedBlob, raw: bytes | None) -> int:
    """The row id of `blob`, inserting it (and its full-text row) when new."""
    row = tx.execute("SELECT id, refcount, text_version FROM blobs WHERE sha256 = ?", (blob.sha256,)).fetchone()
    if row is not None and row[2] == QUEUE_ONLY and not blob.queue_only:
        _fill_queue_only(tx, int(row[0]), blob)
    if row is not None and row[1] > 0:
        _discard_staged(tx, blob)
        return int(row[0])
    if blobs.exists(blob.sha256):
        _discard_staged(tx, blob)
    elif blob.staged is not None and os.path.exists(blob.staged):
        tx.staged.append((Path(blob.staged), blob.sha256))  # made durable just before COMMIT
    elif raw is not None:
        tx.unwritten.append((blob.sha256, raw))  # written and made durable just before COMMIT
    else:
        raise StoreError(f"The message file {blob.sha256} is missing; deliver it again.")
    if row is not None:  # unreferenced, its file written again: index it again if it had none
        tx.execute(f"UPDATE blobs SET text_version = {UNINDEXED} WHERE id = ? AND text_version = {FILE_MISSING}",
                   (row[0],))
        return int(row[0])
    blob_id = tx.execute(
        "INSERT INTO blobs(sha256, size, structure, subject, from_, to_, cc, bcc, sent_date,"
        " message_id, in_reply_to, refs, preview, wire_form, text_version)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
        (blob.sha256, blob.size, blob.structure, blob.subject, blob.from_, blob.to, blob.cc, blob.bcc,
         blob.sent_date, blob.message_id, blob.in_reply_to, blob.references, blob.preview,
         # not in the full-text index yet: text_ops indexes it in the background
         int(blob.wire_form), QUEUE_ONLY if blob.queue_only else UNINDEXED),
    ).fetchone()[0]
    return int(blob_id)


def _fill_queue_only(tx: Transaction, blob_id: int, blob: IndexedBlob) -> None:
    """A message has the bytes of a blob only the queue had: it gets the parsed fields IMAP
    reads, and goes into the full-text index."""
    tx.execute(
        "UPDATE blobs SET structure = ?, subject = ?, from_ = ?, to_ = ?, cc = ?, bcc = ?, sent_date = ?,"
        f" message_id = ?, in_reply_to = ?, refs = ?, preview = ?, text_version = {UNINDEXED} WHERE id = ?",
        (blob.structure, blob.subject, blob.from_, blob.to, blob.cc, blob.bcc, blob.sent_date,
         blob.message_id, blob.in_reply_to, blob.references, blob.preview, blob_id),
    )


def _discard_staged(tx: Transaction, blob: IndexedBlob) -> None:
    """The bytes are stored already: the staged copy is not needed."""
    if blob.staged is not None:
        staged = Path(blob.staged)
        tx.after_commit.append(lambda: staged.unlink(missing_ok=True))


def schedule_blob_cleanup(tx: Transaction, blob_ids: Iterable[int]) -> None:
    """Remove the blobs after the commit if nothing references them any more."""
    ids = list(blob_ids)
    if ids:
        tx.after_commit.append(lambda: _log_expunged_files(remove_unreferenced_blobs(tx.conn, tx.blobs, ids, tx.holds), tx.blobs))


def _log_expunged_files(count: int, blobs: BlobStore) -> None:
    # DEBUG: routine (every expunge), unlike maintenance's removals, which app.py logs at WARNING.
    if count:
        log.debug("moved %d message file(s) of expunged messages to %s", count, blobs.trash.root)


# RFC 9051 §5.4: an idle IMAP session is logged out after 30 minutes, so a session that was not
# told of an expunge has done so, or gone, well within this.
EXPUNGED_READABLE_FOR = 35 * 60.0


def remove_unreferenced_blobs(
    conn: sqlite3.Connection, blobs: BlobStore, ids: Sequence[int] | None, holds: BlobHolds | None = None,
) -> int:
    """Delete blob rows with no references and their files, holding the write lock.

    A blob expunged recently that `holds` keeps (see blob_holds.py) stays; it goes with a later
    sweep (release of the mailbox, another process's expunge, or periodic maintenance).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        query = "SELECT id, sha256, text_version FROM blobs WHERE refcount <= 0"
        params: list[object] = []
        if holds is not None:
            cutoff = time.time() - EXPUNGED_READABLE_FOR
            kept, params = holds.kept(cutoff, lambda: _recently_expunged_from(conn, ids, cutoff))
            query += kept
        if ids is None:
            rows = conn.execute(query, params).fetchall()
        else:
            rows = []
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                rows += conn.execute(f"{query} AND id IN ({marks})", [*params, *chunk]).fetchall()
        for blob_id, sha256, text_version in rows:
            forget_later(conn, blob_id, sha256, text_version)
            conn.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
            blobs.remove(sha256)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(rows)


def _recently_expunged_from(conn: sqlite3.Connection, ids: Sequence[int] | None, cutoff: float) -> set[int]:
    """Mailboxes that unreferenced blobs (of `ids`, or all) were expunged from after `cutoff`."""
    query = ("SELECT DISTINCT e.mailbox_id FROM blobs b JOIN expunged e ON e.blob = b.id"
             " WHERE b.refcount <= 0 AND e.expunged_at > ?")
    if ids is None:
        return {row[0] for row in conn.execute(query, (cutoff,))}
    found: set[int] = set()
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        found.update(row[0] for row in conn.execute(f"{query} AND b.id IN ({marks})", (cutoff, *chunk)))
    return found


def remove_orphan_files(conn: sqlite3.Connection, blobs: BlobStore, min_age: float) -> tuple[int, int]:
    """Move blob files no row knows, older than `min_age` seconds, to the trash, and delete
    temporary files as old, holding the write lock; returns (blob files, temporary files).

    They are left by a crash between a blob write and its commit (the write comes first, so a
    row never points to a missing file), but a blob file may also be acknowledged mail whose
    row a damaged store lost: hence the trash, not deletion. The age guard spares a file
    another process has just written and is about to commit. A store that knows no blob at
    all (emptied, or not the store these files belong to) cannot tell mail from leftovers:
    it moves none.
    """
    cutoff = time.time() - min_age
    conn.execute("BEGIN IMMEDIATE")
    orphans = temporary = 0
    try:
        known = {r[0] for r in conn.execute("SELECT sha256 FROM blobs")}
        for path in blobs.files_older_than(cutoff):
            if path.parent == blobs.root / "tmp":
                path.unlink(missing_ok=True)
                temporary += 1
            elif known and path.name not in known and blobs.trash.put(path):
                orphans += 1
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return orphans, temporary


# --- adding messages ----------------------------------------------------------------------


def _insert_messages(
    tx: Transaction, blobs: BlobStore, mailbox_id: int, messages: Sequence[NewMessage],
    skip_duplicates: bool,
) -> list[AppendResult]:
    mailbox = require_mailbox(tx.conn, mailbox_id)
    modseq = bump_modseq(tx, mailbox_id)
    uid = mailbox.uidnext
    now = time.time()
    results: list[AppendResult] = []
    rows = []
    for message in messages:
        blob_id = insert_blob(tx, blobs, message.blob, message.raw)
        if skip_duplicates and tx.execute(
            "SELECT 1 FROM messages WHERE blob = ? AND mailbox_id = ?", (blob_id, mailbox_id)
        ).fetchone():
            results.append(AppendResult(uid=None, modseq=modseq, duplicate=True))
            continue
        bits, keywords = split_flags(message.flags)
        date = message.internal_date if message.internal_date is not None else now
        rows.append((mailbox_id, uid, modseq, blob_id, bits, keywords, date, now, message.blob.size))
        results.append(AppendResult(uid=uid, modseq=modseq))
        uid += 1
    if rows:
        tx.conn.executemany(
            "INSERT INTO messages(mailbox_id, uid, modseq, blob, flags, keywords, internal_date,"
            " saved_date, size) VALUES (?,?,?,?,?,?,?,?,?)",
            rows,
        )
        tx.execute("UPDATE mailboxes SET uidnext = ? WHERE id = ?", (uid, mailbox_id))
        tx.changes.append(
            MailboxChange(mailbox_id, ChangeKind.EXISTS, modseq, tuple(r[1] for r in rows))
        )
    return results


def _quota_room(tx: Transaction, mailbox_id: int) -> int | None:
    """Bytes the mailbox owner may still store, or None when unlimited."""
    row = tx.execute(
        "SELECT a.quota, a.used FROM accounts a JOIN mailboxes m ON m.account_id = a.id WHERE m.id = ?",
        (mailbox_id,),
    ).fetchone()
    if row is None or row[0] <= 0:
        return None
    return int(row[0] - row[1])


def append_messages(
    tx: Transaction, blobs: BlobStore, mailbox_id: int, messages: Sequence[NewMessage],
    skip_duplicates: bool,
) -> list[AppendResult]:
    room = _quota_room(tx, mailbox_id)
    if room is not None and sum(m.blob.size for m in messages) > room:
        raise QuotaExceeded("The mailbox owner's storage quota would be exceeded.")
    return _insert_messages(tx, blobs, mailbox_id, messages, skip_duplicates)


def deliver(
    tx: Transaction, blobs: BlobStore, message: NewMessage, targets: Sequence[DeliveryTarget],
    queue: tuple[NewMessage, OutboundMessage] | None,
) -> tuple[list[TargetResult], int | None]:
    """One message to many mailboxes, one blob; an over-quota target fails alone.

    `queue` adds a copy for remote recipients to the outbound queue in the same transaction, so
    a client's 250 covers both or neither.
    """
    queue_id = queue_ops.enqueue(tx, blobs, *queue) if queue is not None else None
    results: list[TargetResult] = []
    for target in targets:
        if target.special_use is not None:
            mailbox: MailboxRecord | None = special_use_mailbox(tx, target.account_id, target.special_use)
        else:
            mailbox = get_mailbox(tx.conn, target.account_id, target.mailbox) or get_mailbox(
                tx.conn, target.account_id, "INBOX"
            )
        if mailbox is None:
            results.append(TargetResult(target, None, StoreError("The recipient has no INBOX.")))
            continue
        room = _quota_room(tx, mailbox.id) if target.enforce_quota else None
        if room is not None and message.blob.size > room:
            results.append(TargetResult(target, None, QuotaExceeded("The recipient's mailbox is full.")))
            continue
        flagged = NewMessage(message.blob, message.flags | target.flags, message.internal_date, message.raw)
        (appended,) = _insert_messages(tx, blobs, mailbox.id, [flagged], False)
        results.append(TargetResult(target, appended.uid))
    return results, queue_id


# --- reading ------------------------------------------------------------------------------


def list_messages(conn: sqlite3.Connection, mailbox_id: int, after_uid: int = 0, limit: int = -1) -> list[MessageRecord]:
    rows = conn.execute(
        f"SELECT {_MSG_COLUMNS} FROM messages m JOIN blobs b ON b.id = m.blob"
        " WHERE m.mailbox_id = ? AND m.uid > ? ORDER BY m.uid LIMIT ?",
        (mailbox_id, after_uid, limit),
    ).fetchall()
    return [_record(r) for r in rows]


def get_messages(conn: sqlite3.Connection, mailbox_id: int, uids: Sequence[int],
                 viewer: int | None = None) -> list[MessageRecord]:
    records: list[MessageRecord] = []
    for chunk in _chunks(sorted(set(uids))):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {_MSG_COLUMNS} FROM messages m JOIN blobs b ON b.id = m.blob"
            f" WHERE m.mailbox_id = ? AND m.uid IN ({marks}) ORDER BY m.uid",
            (mailbox_id, *chunk),
        ).fetchall()
        records += [_record(r) for r in rows]
    return _as_seen_by(conn, mailbox_id, viewer, records)


def open_snapshot(conn: sqlite3.Connection, mailbox_id: int,
                  viewer: int | None = None) -> tuple[MailboxRecord, list[MessageRecord]]:
    """The mailbox row and all its messages, read in one transaction (a consistent view)."""
    conn.execute("BEGIN")
    try:
        mailbox = require_mailbox(conn, mailbox_id)
        rows = conn.execute(
            f"SELECT {_MSG_COLUMNS} FROM messages m JOIN blobs b ON b.id = m.blob"
            " WHERE m.mailbox_id = ? ORDER BY m.uid",
            (mailbox_id,),
        ).fetchall()
        records = _as_seen_by(conn, mailbox_id, viewer, [_record(r) for r in rows])
    finally:
        conn.execute("COMMIT")
    return mailbox, records


def changes_since(conn: sqlite3.Connection, mailbox_id: int, modseq: int,
                  viewer: int | None = None) -> MailboxChanges:
    conn.execute("BEGIN")
    try:
        mailbox = require_mailbox(conn, mailbox_id)
        changed = conn.execute(
            f"SELECT {_MSG_COLUMNS} FROM messages m JOIN blobs b ON b.id = m.blob"
            " WHERE m.mailbox_id = ? AND m.modseq > ? ORDER BY m.uid",
            (mailbox_id, modseq),
        ).fetchall()
        vanished = conn.execute(
            "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
            (mailbox_id, modseq),
        ).fetchall()
        records = _as_seen_by(conn, mailbox_id, viewer, [_record(r) for r in changed])
    finally:
        conn.execute("COMMIT")
    return MailboxChanges(
        highestmodseq=mailbox.highestmodseq,
        changed=tuple(records),
        vanished=tuple(r[0] for r in vanished),
    )


def blob_info(conn: sqlite3.Connection, hashes: Sequence[str]) -> dict[str, BlobInfo]:
    """What FETCH ENVELOPE/BODYSTRUCTURE and SEARCH/SORT need, for many messages at once."""
    found: dict[str, BlobInfo] = {}
    for start in range(0, len(hashes), _CHUNK):
        chunk = hashes[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            "SELECT sha256, size, structure, subject, from_, to_, cc, bcc, sent_date, message_id,"
            f" in_reply_to, refs, preview FROM blobs WHERE sha256 IN ({marks})",
            chunk,
        ):
            found[row[0]] = BlobInfo(*row)
    return found


# SORT, THREAD and SEARCH read a column or two of every message of a mailbox: one query over
# the mailbox, not 100,000 BlobInfo records. Addresses come from the ENVELOPE kept in
# `blobs.structure` (message.mime_json, whose ENVELOPE_ADDRESS_PATHS say where), read by
# SQLite's JSON functions, which parse each structure once per row however many paths a query
# reads.
_HEADER_COLUMNS = "m.uid, b.subject, b.sent_date, b.message_id, b.in_reply_to, b.refs"
_SORT_ADDRESSES = ("from", "to", "cc")  # the HeaderFields address slots, in order
# Up to this many uids are looked up by key; more, and one pass over the mailbox is cheaper.
_BY_KEY_LIMIT = 8 * _CHUNK


def _envelope_rows(
    conn: sqlite3.Connection, mailbox_id: int, columns: Callable[[Callable[[str], str]], str],
    uids: Sequence[int] | None = None,
) -> list[tuple[Any, ...]]:
    """`_mailbox_rows` with envelope values: `columns` writes the column list, given a function
    that writes the SQL for the JSON value at a path of the structure.

    Every structure is JSON from dump_structure, but should one not be, SQLite refuses the whole
    query: then it runs again with each structure checked first (which costs a third more), and
    that one reads as having no addresses, as load_structure's ValueError does for FETCH."""
    try:
        return _mailbox_rows(conn, mailbox_id, columns(lambda path: f"json_extract(b.structure, '{path}')"), uids)
    except sqlite3.OperationalError:  # "malformed JSON"
        return _mailbox_rows(conn, mailbox_id, columns(
            lambda path: f"CASE WHEN json_valid(b.structure) THEN json_extract(b.structure, '{path}') END"), uids)


def _mailbox_rows(
    conn: sqlite3.Connection, mailbox_id: int, columns: str, uids: Sequence[int] | None = None
) -> list[tuple[Any, ...]]:
    """`columns` (of messages `m` and blobs `b`, starting with m.uid) for the mailbox's messages
    and the expunged ones still held, whose rows keep their blob until no session holds the
    mailbox: all of them, or those of `uids`."""

    def select(where: str) -> str:
        return (
            f"SELECT {columns} FROM messages m JOIN blobs b ON b.id = m.blob WHERE m.mailbox_id = ?{where}"
            f" UNION ALL SELECT {columns} FROM expunged m JOIN blobs b ON b.id = m.blob WHERE m.mailbox_id = ?{where}"
        )

    if uids is None or len(uids) > _BY_KEY_LIMIT:
        rows = conn.execute(select(""), (mailbox_id, mailbox_id)).fetchall()
        if uids is None:
            return rows
        wanted = set(uids)
        return [row for row in rows if row[0] in wanted]
    rows = []
    step = _CHUNK // 2  # each chunk is bound twice
    for start in range(0, len(uids), step):
        chunk = uids[start:start + step]
        where = f" AND m.uid IN ({','.join('?' * len(chunk))})"
        rows += conn.execute(select(where), (mailbox_id, *chunk, mailbox_id, *chunk)).fetchall()
    return rows


def header_fields(
    conn: sqlite3.Connection, mailbox_id: int, uids: Sequence[int], addresses: Collection[AddressField]
) -> list[HeaderFields]:
    """What SORT and THREAD need of the given messages (see MailStore.header_fields)."""
    slots = [n for n, field in enumerate(_SORT_ADDRESSES) if field in addresses]
    if not slots:  # the rows are the records as they come
        return _mailbox_rows(conn, mailbox_id, _HEADER_COLUMNS + ", NULL, NULL, NULL", uids)

    def columns(value: Callable[[str], str]) -> str:
        paths = [f"{ENVELOPE_ADDRESS_PATHS[_SORT_ADDRESSES[slot]]}[0][{i}]" for slot in slots for i in (0, 2, 3)]
        return ", ".join([_HEADER_COLUMNS, *map(value, paths)])  # name, mailbox, host of each

    out: list[HeaderFields] = []
    for row in _envelope_rows(conn, mailbox_id, columns, uids):
        firsts: list[FirstAddress | None] = [None, None, None]
        for n, slot in enumerate(slots):
            first = row[6 + 3 * n:9 + 3 * n]
            firsts[slot] = first if first != (None, None, None) else None  # all NULL: no such field
        out.append((*row[:6], *firsts))
    return out


def envelope_addresses(
    conn: sqlite3.Connection, mailbox_id: int, field: AddressField, containing: str | None
) -> list[tuple[int, tuple[Address, ...]]]:
    """The ENVELOPE addresses of `field`, narrowed by `containing` (see MailStore.envelope_addresses)."""
    rows = _envelope_rows(conn, mailbox_id, lambda value: f"m.uid, {value(ENVELOPE_ADDRESS_PATHS[field])}")
    probe = containing.lower() if containing else None
    found = []
    for uid, text in rows:
        if text is None or (probe is not None and not _may_contain(text, probe)):
            continue
        found.append((uid, addresses_in(json.loads(text)) or ()))
    return found


def _may_contain(addresses_json: str, probe: str) -> bool:
    """Whether an address list, as JSON text, may hold `probe` (lower-cased) in a name, mailbox,
    host or group name. Plain ASCII JSON holds those strings as they are, so a substring check
    never misses one; RFC 2047 words (decoded names differ), JSON escapes and non-ASCII text
    (whose lower case can depend on the letters around it) are left to the caller."""
    if "=?" in addresses_json or "\\" in addresses_json or not addresses_json.isascii():
        return True
    return probe in addresses_json.lower()


def mailbox_blob_hashes(conn: sqlite3.Connection, mailbox_id: int, hashes: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(hashes), _CHUNK):
        chunk = hashes[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT b.sha256 FROM blobs b JOIN messages m ON m.blob = b.id"
            f" WHERE m.mailbox_id = ? AND b.sha256 IN ({marks})",
            (mailbox_id, *chunk),
        ).fetchall()
        found.update(r[0] for r in rows)
    return found


# --- changing messages --------------------------------------------------------------------


def store_flags(
    tx: Transaction, mailbox_id: int, uids: Sequence[int], mode: FlagMode, flags: Iterable[str],
    unchanged_since: int | None, viewer: int | None = None,
) -> StoreFlagsResult:
    """Change flags. With `viewer`, \\Seen is that sharee's own (private_seen), the rest shared;
    a change of either takes a new modseq, so every session of the viewer notices it."""
    bits, keywords = split_flags(flags)
    given_keywords = set(keywords.split()) if keywords else set()
    modseq: int | None = None
    updates: list[FlagUpdate] = []
    failed: list[int] = []
    trains: dict[bool, list[int]] = {}  # $Junk / $NotJunk newly set (RFC 5788): junk learning
    for chunk in _chunks(sorted(set(uids))):
        marks = ",".join("?" * len(chunk))
        rows = tx.execute(
            f"SELECT uid, modseq, flags, keywords FROM messages WHERE mailbox_id = ? AND uid IN ({marks})",
            (mailbox_id, *chunk),
        ).fetchall()
        seen = _private_seen(tx.conn, mailbox_id, viewer) if viewer is not None else set()
        for uid, old_modseq, stored_bits, old_keywords in rows:
            if unchanged_since is not None and old_modseq > unchanged_since:
                failed.append(uid)
                continue
            old_bits = stored_bits if viewer is None else (stored_bits & ~SEEN) | (SEEN if uid in seen else 0)
            old_set = set(old_keywords.split()) if old_keywords else set()
            if mode is FlagMode.REPLACE:
                new_bits, new_set = bits, given_keywords
            elif mode is FlagMode.ADD:
                new_bits, new_set = old_bits | bits, old_set | given_keywords
            else:
                new_bits, new_set = old_bits & ~bits, old_set - given_keywords
            if new_bits == old_bits and new_set == old_set:
                continue
            if modseq is None:
                modseq = bump_modseq(tx, mailbox_id)
            new_keywords = " ".join(sorted(new_set))
            stored = new_bits
            if viewer is not None:
                stored = (new_bits & ~SEEN) | (stored_bits & SEEN)  # the owner's \\Seen stays
                if (new_bits ^ old_bits) & SEEN:
                    tx.execute(
                        "INSERT OR IGNORE INTO private_seen(mailbox_id, account_id, uid) VALUES (?, ?, ?)"
                        if new_bits & SEEN else
                        "DELETE FROM private_seen WHERE mailbox_id = ? AND account_id = ? AND uid = ?",
                        (mailbox_id, viewer, uid),
                    )
            tx.execute(
                "UPDATE messages SET flags = ?, keywords = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
                (stored, new_keywords, modseq, mailbox_id, uid),
            )
            updates.append(FlagUpdate(uid, modseq, join_flags(new_bits, new_keywords)))
            if (spam := junk_queue.junk_keyword_added(new_set - old_set)) is not None:
                trains.setdefault(spam, []).append(uid)
    junk_queue.queue_after_keywords(tx, mailbox_id, trains)
    if modseq is not None:
        tx.changes.append(MailboxChange(mailbox_id, ChangeKind.FLAGS, modseq, tuple(u.uid for u in updates)))
    return StoreFlagsResult(tuple(updates), tuple(failed))


def expunge(tx: Transaction, mailbox_id: int, uids: Sequence[int] | None) -> list[int]:
    """Remove messages: the given uids, or every message flagged \\Deleted when uids is None."""
    if uids is None:
        rows = tx.execute(
            "SELECT uid, blob FROM messages WHERE mailbox_id = ? AND flags & ? <> 0 ORDER BY uid",
            (mailbox_id, DELETED),
        ).fetchall()
    else:
        rows = []
        for chunk in _chunks(sorted(set(uids))):
            marks = ",".join("?" * len(chunk))
            rows += tx.execute(
                f"SELECT uid, blob FROM messages WHERE mailbox_id = ? AND uid IN ({marks}) ORDER BY uid",
                (mailbox_id, *chunk),
            ).fetchall()
    if not rows:
        return []
    modseq = bump_modseq(tx, mailbox_id)
    removed = [r[0] for r in rows]
    tx.conn.executemany("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", [(mailbox_id, u) for u in removed])
    tx.conn.executemany("DELETE FROM private_seen WHERE mailbox_id = ? AND uid = ?", [(mailbox_id, u) for u in removed])
    now = time.time()
    tx.conn.executemany(
        "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq, blob, expunged_at) VALUES (?, ?, ?, ?, ?)",
        [(mailbox_id, uid, modseq, blob, now) for uid, blob in rows],
    )
    tx.changes.append(MailboxChange(mailbox_id, ChangeKind.EXPUNGE, modseq, tuple(removed)))
    schedule_blob_cleanup(tx, {r[1] for r in rows})
    return removed


def copy_messages(
    tx: Transaction, source_id: int, uids: Sequence[int], target_id: int, move: bool, keep: FlagsKept | None = None
) -> CopyResult:
    """COPY (RFC 9051 §6.4.7) or MOVE (RFC 6851): same blob, same flags (those `keep` keeps)
    and internal date."""
    target = require_mailbox(tx.conn, target_id)
    records = get_messages(tx.conn, source_id, uids)
    if not records:
        return CopyResult(target.uidvalidity, ())
    room = _quota_room(tx, target_id)
    if room is not None and source_id != target_id and sum(r.size for r in records) > room:
        raise QuotaExceeded("The target mailbox owner's storage quota would be exceeded.")
    modseq = bump_modseq(tx, target_id)
    uid = target.uidnext
    now = time.time()
    pairs: list[tuple[int, int]] = []
    for record in records:
        bits, keywords = split_flags(record.flags if keep is None else keep.apply(record.flags))
        tx.execute(
            "INSERT INTO messages(mailbox_id, uid, modseq, blob, flags, keywords, internal_date, saved_date, size)"
            " SELECT ?, ?, ?, blob, ?, ?, internal_date, ?, size FROM messages WHERE mailbox_id = ? AND uid = ?",
            (target_id, uid, modseq, bits, keywords, now, source_id, record.uid),
        )
        pairs.append((record.uid, uid))
        uid += 1
    tx.execute("UPDATE mailboxes SET uidnext = ? WHERE id = ?", (uid, target_id))
    tx.changes.append(MailboxChange(target_id, ChangeKind.EXISTS, modseq, tuple(p[1] for p in pairs)))
    junk_queue.queue_after_copy(tx, source_id, target_id, target.special_use, [r.blob for r in records])
    if move:
        expunge(tx, source_id, [p[0] for p in pairs])
    return CopyResult(target.uidvalidity, tuple(pairs))
