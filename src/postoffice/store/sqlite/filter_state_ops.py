"""Junk-learning and greylisting rows in SQLite (store/filter_state_interface.py says what for).

`queue_after_copy` and `queue_after_keywords` run inside the transaction of a copy, move or
flag change (message_ops), so a training request is committed with the move that asked for it;
they cost one mailbox lookup and, only when \\Junk is involved, one row per message.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Iterable, Sequence

from postoffice.store.filter_state_interface import (
    GreylistState,
    JunkLesson,
    JunkTotals,
    JunkTrainingRequest,
    TokenCounts,
)
from postoffice.store.sqlite.writer import Transaction

JUNK = "\\Junk"
TRASH = "\\Trash"
# RFC 5788 keywords: a user (or client) saying what a message is.
JUNK_KEYWORD = "$junk"
NOT_JUNK_KEYWORD = "$notjunk"
_CHUNK = 500
_DAY = 86400.0


# --- queueing (inside copy/move/store transactions) ----------------------------------------------

def _mailbox(conn: sqlite3.Connection, mailbox_id: int) -> tuple[int, str | None] | None:
    row = conn.execute("SELECT account_id, special_use FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
    return (int(row[0]), row[1]) if row else None


def _queue(tx: Transaction, account_id: int, hashes: Iterable[str], spam: bool) -> None:
    now = time.time()
    tx.conn.executemany(
        "INSERT INTO junk_training_queue(account_id, sha256, spam, queued) VALUES (?, ?, ?, ?)",
        [(account_id, sha256, int(spam), now) for sha256 in hashes],
    )


def queue_after_copy(tx: Transaction, source_id: int, target_id: int, target_use: str | None,
                     hashes: Sequence[str]) -> None:
    """Into \\Junk from elsewhere: spam. Out of \\Junk into another mailbox except \\Trash
    (throwing junk away says nothing about it): ham. Learned by the target's owner."""
    if not hashes or source_id == target_id:
        return
    source = _mailbox(tx.conn, source_id)
    source_use = source[1] if source else None
    if target_use == JUNK and source_use != JUNK:
        spam = True
    elif source_use == JUNK and target_use not in (JUNK, TRASH):
        spam = False
    else:
        return
    target = _mailbox(tx.conn, target_id)
    if target is not None:
        _queue(tx, target[0], hashes, spam)


def junk_keyword_added(added: Collection[str]) -> bool | None:
    """True for `$Junk`, False for `$NotJunk` among newly set keywords, else None."""
    lowered = {k.lower() for k in added}
    if JUNK_KEYWORD in lowered and NOT_JUNK_KEYWORD not in lowered:
        return True
    if NOT_JUNK_KEYWORD in lowered and JUNK_KEYWORD not in lowered:
        return False
    return None


def queue_after_keywords(tx: Transaction, mailbox_id: int, by_direction: dict[bool, list[int]]) -> None:
    """Messages (uids of `mailbox_id`) that just got `$Junk` (True) or `$NotJunk` (False)."""
    if not by_direction:
        return
    mailbox = _mailbox(tx.conn, mailbox_id)
    if mailbox is None:
        return
    for spam, uids in by_direction.items():
        for start in range(0, len(uids), _CHUNK):
            chunk = uids[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = tx.execute(
                "SELECT b.sha256 FROM messages m JOIN blobs b ON b.id = m.blob"
                f" WHERE m.mailbox_id = ? AND m.uid IN ({marks})", (mailbox_id, *chunk)).fetchall()
            _queue(tx, mailbox[0], (r[0] for r in rows), spam)


def add_training(tx: Transaction, account_id: int, sha256: str, spam: bool) -> None:
    _queue(tx, account_id, (sha256,), spam)


# --- learning --------------------------------------------------------------------------------

def pending_training(conn: sqlite3.Connection, limit: int) -> list[JunkTrainingRequest]:
    rows = conn.execute(
        "SELECT id, account_id, sha256, spam FROM junk_training_queue ORDER BY id LIMIT ?", (limit,)
    ).fetchall()
    return [JunkTrainingRequest(int(i), int(a), s, bool(spam)) for i, a, s, spam in rows]


def forget_training(tx: Transaction, request_ids: Collection[int]) -> None:
    tx.conn.executemany("DELETE FROM junk_training_queue WHERE id = ?", [(i,) for i in request_ids])


def learn(tx: Transaction, lessons: Sequence[JunkLesson], now: float) -> int:
    """See FilterStateData.learn_junk. Token rows change by executemany, one statement per
    direction and sign, so a batch of messages costs a few statements, not one per token."""
    changed = 0
    day = int(now // _DAY)
    for lesson in lessons:
        tx.execute("DELETE FROM junk_training_queue WHERE id = ?", (lesson.request_id,))
        if lesson.tokens is None:
            continue
        row = tx.execute("SELECT spam FROM junk_trained WHERE account_id = ? AND sha256 = ?",
                         (lesson.account_id, lesson.sha256)).fetchone()
        if row is not None and bool(row[0]) == lesson.spam:
            continue  # trained once per direction
        tokens = sorted(lesson.tokens)
        if row is not None:  # trained the other way: take that back first
            _count(tx, lesson.account_id, tokens, spam=not lesson.spam, delta=-1, day=day)
        _count(tx, lesson.account_id, tokens, spam=lesson.spam, delta=1, day=day)
        tx.execute(
            "INSERT INTO junk_trained(account_id, sha256, spam, trained) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(account_id, sha256) DO UPDATE SET spam = excluded.spam, trained = excluded.trained",
            (lesson.account_id, lesson.sha256, int(lesson.spam), now))
        changed += 1
    return changed


def _count(tx: Transaction, account_id: int, tokens: list[str], *, spam: bool, delta: int, day: int) -> None:
    column = "spam" if spam else "ham"
    tx.execute(f"INSERT INTO junk_totals(account_id, {column}) VALUES (?, max(?, 0))"
               f" ON CONFLICT(account_id) DO UPDATE SET {column} = max({column} + ?, 0)",
               (account_id, delta, delta))
    if delta > 0:
        tx.conn.executemany(
            f"INSERT INTO junk_tokens(account_id, token, {column}, day) VALUES (?, ?, 1, ?)"
            f" ON CONFLICT(account_id, token) DO UPDATE SET {column} = {column} + 1, day = excluded.day",
            [(account_id, token, day) for token in tokens])
    else:
        tx.conn.executemany(
            f"UPDATE junk_tokens SET {column} = max({column} - 1, 0) WHERE account_id = ? AND token = ?",
            [(account_id, token) for token in tokens])
        tx.conn.executemany(
            "DELETE FROM junk_tokens WHERE account_id = ? AND token = ? AND spam = 0 AND ham = 0",
            [(account_id, token) for token in tokens])


def totals_version(conn: sqlite3.Connection) -> int:
    """A number that changes with every change of any account's totals (schema.py's triggers)."""
    row = conn.execute("SELECT version FROM junk_totals_version").fetchone()
    return int(row[0]) if row is not None else 0


def token_counts(conn: sqlite3.Connection, account_id: int,
                 tokens: Collection[str]) -> tuple[JunkTotals, dict[str, TokenCounts]]:
    row = conn.execute("SELECT spam, ham FROM junk_totals WHERE account_id = ?", (account_id,)).fetchone()
    totals = JunkTotals(int(row[0]), int(row[1])) if row else JunkTotals()
    counts: dict[str, TokenCounts] = {}
    if not totals.spam and not totals.ham:
        return totals, counts
    wanted = list(tokens)
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for token, spam, ham in conn.execute(
                f"SELECT token, spam, ham FROM junk_tokens WHERE account_id = ? AND token IN ({marks})",
                (account_id, *chunk)):
            counts[token] = TokenCounts(int(spam), int(ham))
    return totals, counts


def trained_as(conn: sqlite3.Connection, account_id: int, sha256: str) -> bool | None:
    row = conn.execute("SELECT spam FROM junk_trained WHERE account_id = ? AND sha256 = ?",
                       (account_id, sha256)).fetchone()
    return None if row is None else bool(row[0])


def prune_tokens(tx: Transaction, max_tokens: int, older_than: float) -> int:
    """Hapaxes (one trained message) not seen since `older_than` go first; then, per account
    still above `max_tokens`, the rarest and oldest. Keeps the table bounded (a long-lived
    account sees new tokens forever) while the tokens that decide stay."""
    removed = tx.execute("DELETE FROM junk_tokens WHERE spam + ham <= 1 AND day < ?",
                         (int(older_than // _DAY),)).rowcount
    over = tx.execute("SELECT account_id, count(*) - ? FROM junk_tokens GROUP BY account_id"
                      " HAVING count(*) > ?", (max_tokens, max_tokens)).fetchall()
    for account_id, extra in over:
        removed += tx.execute(
            "DELETE FROM junk_tokens WHERE account_id = ? AND token IN (SELECT token FROM junk_tokens"
            " WHERE account_id = ? ORDER BY spam + ham, day LIMIT ?)", (account_id, account_id, extra)).rowcount
    return int(removed)


# --- greylisting -------------------------------------------------------------------------------

def greylist_state(conn: sqlite3.Connection, network: str, sender: str, recipient: str) -> GreylistState:
    row = conn.execute(
        "SELECT first_seen, last_seen, passed FROM greylist_triplets"
        " WHERE network = ? AND sender = ? AND recipient = ?", (network, sender, recipient)).fetchone()
    net = conn.execute("SELECT passes, last_seen FROM greylist_networks WHERE network = ?", (network,)).fetchone()
    return GreylistState(
        first_seen=row[0] if row else None, passed=bool(row[2]) if row else False,
        last_seen=row[1] if row else None,
        network_passes=int(net[0]) if net else 0, network_last_seen=net[1] if net else None)


def greylist_seen(tx: Transaction, network: str, sender: str, recipient: str, now: float,
                  first: bool, passed: bool) -> None:
    if first:
        tx.execute(
            "INSERT INTO greylist_triplets(network, sender, recipient, first_seen, last_seen, passed)"
            " VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT(network, sender, recipient)"
            " DO UPDATE SET first_seen = excluded.first_seen, last_seen = excluded.last_seen, passed = 0",
            (network, sender, recipient, now, now))
        return
    tx.execute(
        "UPDATE greylist_triplets SET last_seen = ?, passed = max(passed, ?)"
        " WHERE network = ? AND sender = ? AND recipient = ?", (now, int(passed), network, sender, recipient))
    if passed:
        tx.execute(
            "INSERT INTO greylist_networks(network, passes, last_seen) VALUES (?, 1, ?)"
            " ON CONFLICT(network) DO UPDATE SET passes = passes + 1, last_seen = excluded.last_seen",
            (network, now))
    else:
        tx.execute("UPDATE greylist_networks SET last_seen = ? WHERE network = ?", (now, network))


def sweep_greylist(tx: Transaction, unpassed_before: float, passed_before: float) -> int:
    removed = tx.execute("DELETE FROM greylist_triplets WHERE passed = 0 AND first_seen < ?",
                         (unpassed_before,)).rowcount
    removed += tx.execute("DELETE FROM greylist_triplets WHERE last_seen < ?", (passed_before,)).rowcount
    removed += tx.execute("DELETE FROM greylist_networks WHERE last_seen < ?", (passed_before,)).rowcount
    return int(removed)
