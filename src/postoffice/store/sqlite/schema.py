"""The SQLite schema and connection settings.

WAL mode lets readers run while the single writer commits; `synchronous=FULL` makes every
commit fsync the WAL, so a commit is durable when it returns (a 250/OK depends on it).
Blob reference counts and per-account usage are kept by triggers on `messages`, so no code
path can forget them. Older databases are upgraded by the steps in upgrade.py.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from postoffice.store.interface import StoreError
from postoffice.store.sqlite.text_ops import INDEX_VERSION, QUEUE_ONLY
from postoffice.store.sqlite.upgrade import (
    STEPS,
    SchemaTooNew,
    UpgradeFailed,
    copy_before_upgrade,
    stored_version,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS domains (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    catch_all TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE COLLATE NOCASE,
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    password_hash TEXT NOT NULL,
    quota INTEGER NOT NULL DEFAULT 0,
    used INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS aliases (
    source TEXT NOT NULL COLLATE NOCASE,
    target TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (source, target)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mailboxes (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    special_use TEXT,
    subscribed INTEGER NOT NULL DEFAULT 0,
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    first_recent_uid INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, name)
);
-- Subscriptions are to names (RFC 9051 §6.3.7): an existing mailbox's is its `subscribed`
-- column; a deleted mailbox's stays here until UNSUBSCRIBE or until the name is created again.
CREATE TABLE IF NOT EXISTS dangling_subscriptions (
    account_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
) WITHOUT ROWID;
-- Access granted to other accounts (RFC 4314 rights letters); the owner has every right.
CREATE TABLE IF NOT EXISTS acl (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    identifier TEXT NOT NULL COLLATE NOCASE,   -- an account address, or "anyone"
    rights TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, identifier)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS acl_by_identifier ON acl(identifier);
-- The \\Seen flag of sharees on shared mailboxes, kept per user ([imap] per_user_seen).
CREATE TABLE IF NOT EXISTS private_seen (
    mailbox_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, account_id, uid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (
    -- AUTOINCREMENT: ids are never reused, so a stale full-text row can never match a new blob.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256 TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    refcount INTEGER NOT NULL DEFAULT 0,
    structure TEXT NOT NULL,
    subject TEXT NOT NULL,
    from_ TEXT NOT NULL,
    to_ TEXT NOT NULL,
    cc TEXT NOT NULL,
    bcc TEXT NOT NULL,
    sent_date INTEGER,
    message_id TEXT,
    in_reply_to TEXT,
    refs TEXT NOT NULL,
    preview TEXT NOT NULL,
    -- message.lines.WireForm: what a dot-terminated transfer must do to the bytes (0: unknown)
    wire_form INTEGER NOT NULL DEFAULT 0,
    -- text_ops.INDEX_VERSION that made its rows in blob_trigrams and blob_short_grams; 0: not indexed (yet);
    -- -1 (FILE_MISSING): no file when the indexer came; -2 (QUEUE_ONLY): only the outbound queue has it
    text_version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS blobs_unreferenced ON blobs(refcount) WHERE refcount <= 0;
CREATE INDEX IF NOT EXISTS blobs_unindexed ON blobs(id) WHERE text_version = 0;
-- Substring indexes (IMAP SEARCH BODY/TEXT match substrings, RFC 9051 §6.4.4, which a word index
-- cannot answer), of the text lowered by Python (see text_ops): every three-character sequence
-- with its positions, of the text and of its distinct words, so a phrase query is an exact
-- substring match; and, for needles of one or two characters, each message's distinct
-- characters and pairs. Contentless: the text is not stored a second time (it is in the blob
-- file); removing a row needs the indexed text again, which is re-derived from the blob file
-- (see text_to_forget).
CREATE VIRTUAL TABLE IF NOT EXISTS blob_trigrams USING fts5(
    headers, body, header_words, body_words, content = '', detail = full,
    tokenize = 'trigram case_sensitive 1'
);
CREATE VIRTUAL TABLE IF NOT EXISTS blob_short_grams USING fts5(
    grams, content = '', detail = none, tokenize = 'ascii'
);
-- Blobs removed while indexed, whose postings the background indexer still has to remove (it
-- derives the text again from the file in the blob trash), so that no expunge waits for it.
CREATE TABLE IF NOT EXISTS text_to_forget (
    blob_id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    blob INTEGER NOT NULL REFERENCES blobs(id),
    flags INTEGER NOT NULL DEFAULT 0,
    keywords TEXT NOT NULL DEFAULT '',
    internal_date REAL NOT NULL,
    saved_date REAL NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_by_modseq ON messages(mailbox_id, modseq);
CREATE INDEX IF NOT EXISTS messages_by_blob ON messages(blob, mailbox_id);
CREATE TABLE IF NOT EXISTS expunged (
    mailbox_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    blob INTEGER NOT NULL,          -- kept readable for sessions not yet told (see message_ops)
    expunged_at REAL NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS expunged_by_modseq ON expunged(mailbox_id, modseq);
CREATE INDEX IF NOT EXISTS expunged_by_blob ON expunged(blob);
-- Every committed mailbox change, so a server sees what another process wrote.
CREATE TABLE IF NOT EXISTS change_log (
    seq INTEGER PRIMARY KEY,
    mailbox_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    modseq INTEGER NOT NULL,
    uids TEXT NOT NULL,
    created REAL NOT NULL
);

-- Local block and allow lists (`postoffice block|allow`; access_lists.py says how they match).
-- A change also bumps meta.access_lists_version, which a running server watches.
CREATE TABLE IF NOT EXISTS access_entries (
    list TEXT NOT NULL,                  -- 'block' or 'allow'
    value TEXT NOT NULL COLLATE NOCASE,  -- canonical IP, network, domain or address
    kind TEXT NOT NULL,                  -- 'ip', 'cidr', 'domain' or 'address'
    reason TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (list, value)
) WITHOUT ROWID;
-- DMARC (RFC 7489 §7.2): what we saw of each message received on port 25, for the aggregate
-- reports we send (dmarc_ops.py prunes old rows), ...
CREATE TABLE IF NOT EXISTS dmarc_evaluations (
    id INTEGER PRIMARY KEY,
    received REAL NOT NULL,
    source_ip TEXT NOT NULL,
    header_from TEXT NOT NULL,
    envelope_from TEXT NOT NULL,
    envelope_to TEXT NOT NULL,
    dmarc TEXT NOT NULL,
    disposition TEXT NOT NULL,
    policy_domain TEXT NOT NULL,
    policy TEXT NOT NULL,
    spf TEXT NOT NULL,
    spf_domain TEXT NOT NULL,
    spf_aligned INTEGER NOT NULL,
    dkim TEXT NOT NULL,                  -- JSON [[domain, selector, result], ...]
    dkim_aligned INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dmarc_evaluations_by_time ON dmarc_evaluations(received);
-- ... and the aggregate reports other servers send about mail claiming our domains.
CREATE TABLE IF NOT EXISTS dmarc_reports (
    id INTEGER PRIMARY KEY,
    org_name TEXT NOT NULL,
    email TEXT NOT NULL,
    report_id TEXT NOT NULL,
    domain TEXT NOT NULL COLLATE NOCASE,  -- policy_published domain
    range_begin INTEGER NOT NULL,
    range_end INTEGER NOT NULL,
    policy TEXT NOT NULL,                 -- JSON: policy_published
    received REAL NOT NULL,
    UNIQUE (org_name, report_id, domain)
);
CREATE TABLE IF NOT EXISTS dmarc_report_rows (
    report INTEGER NOT NULL REFERENCES dmarc_reports(id) ON DELETE CASCADE,
    source_ip TEXT NOT NULL,
    count INTEGER NOT NULL,
    disposition TEXT NOT NULL,
    dkim TEXT NOT NULL,                   -- policy_evaluated: the aligned verdicts
    spf TEXT NOT NULL,
    header_from TEXT NOT NULL,
    envelope_from TEXT NOT NULL,
    auth_results TEXT NOT NULL            -- JSON: dkim and spf results, override reasons
);
CREATE INDEX IF NOT EXISTS dmarc_report_rows_by_report ON dmarc_report_rows(report);

-- The durable outbound queue (submission to remote recipients, forwards, bounces). The queue
-- runner (a later part) leases rows; a queued message keeps its blob alive like a message does.
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    blob INTEGER NOT NULL REFERENCES blobs(id),
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,      -- JSON: [{"address", "notify", "orcpt", "status"}]
    envid TEXT,
    ret TEXT,
    auth_account INTEGER,
    created REAL NOT NULL,
    next_attempt REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    lease_owner TEXT,
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS queue_due ON queue(next_attempt);
CREATE TRIGGER IF NOT EXISTS queue_added AFTER INSERT ON queue BEGIN
    UPDATE blobs SET refcount = refcount + 1 WHERE id = NEW.blob;
END;
CREATE TRIGGER IF NOT EXISTS queue_removed AFTER DELETE ON queue BEGIN
    UPDATE blobs SET refcount = refcount - 1 WHERE id = OLD.blob;
END;
-- Every delivery attempt, one row per recipient tried, for `postoffice queue show`. Created on
-- open in stores of any schema version; queue_ops.remove_entry deletes a row's attempts and hold.
CREATE TABLE IF NOT EXISTS queue_attempts (
    id INTEGER PRIMARY KEY,
    queue_id INTEGER NOT NULL,
    time REAL NOT NULL,
    recipient TEXT NOT NULL,
    host TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    reply TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL,          -- delivered | deferred | failed
    tls TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS queue_attempts_by_entry ON queue_attempts(queue_id);
-- Entries an administrator put on hold (`postoffice queue hold`): the runner never picks them.
CREATE TABLE IF NOT EXISTS queue_holds (
    queue_id INTEGER PRIMARY KEY,
    since REAL NOT NULL
);
-- Entries whose sender asked for REQUIRETLS (RFC 8689): delivered only over verified TLS.
CREATE TABLE IF NOT EXISTS queue_requiretls (
    queue_id INTEGER PRIMARY KEY
);
-- Filtering at delivery (issue 17): what Sieve remembers per account between deliveries, a
-- vacation reply sent (RFC 5230 §4.2) or a duplicate id seen (RFC 7352), each until it expires.
CREATE TABLE IF NOT EXISTS delivery_memory (
    account_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (account_id, kind, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delivery_memory_expiry ON delivery_memory(expires);
CREATE TRIGGER IF NOT EXISTS delivery_memory_account_gone AFTER DELETE ON accounts BEGIN
    DELETE FROM delivery_memory WHERE account_id = OLD.id;
END;
-- Sieve scripts (issue 17, ManageSieve): one row per script, at most one active per account.
CREATE TABLE IF NOT EXISTS sieve_scripts (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    script TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    UNIQUE (account_id, name)
);
CREATE UNIQUE INDEX IF NOT EXISTS sieve_scripts_one_active ON sieve_scripts(account_id) WHERE active;
-- Bumped by every change of any script, by any process: deliveries cache the active scripts and
-- look at this number once a second (sieve_data.py).
CREATE TABLE IF NOT EXISTS sieve_version (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO sieve_version(one, version) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS sieve_scripts_added AFTER INSERT ON sieve_scripts BEGIN
    UPDATE sieve_version SET version = version + 1;
END;
CREATE TRIGGER IF NOT EXISTS sieve_scripts_changed AFTER UPDATE ON sieve_scripts BEGIN
    UPDATE sieve_version SET version = version + 1;
END;
CREATE TRIGGER IF NOT EXISTS sieve_scripts_removed AFTER DELETE ON sieve_scripts BEGIN
    UPDATE sieve_version SET version = version + 1;
END;

-- Junk learning (filtering/junk_classifier.py, filter_state_ops.py): per account, in how many
-- trained spam and ham messages each token appeared (`day`: the last day, in days since the epoch,
-- a trained message held it, for pruning), the totals, which messages were trained (by blob hash)
-- in which direction, and the requests the store queued when mail moved into or out of \\Junk.
CREATE TABLE IF NOT EXISTS junk_tokens (
    account_id INTEGER NOT NULL,
    token TEXT NOT NULL,
    spam INTEGER NOT NULL DEFAULT 0,
    ham INTEGER NOT NULL DEFAULT 0,
    day INTEGER NOT NULL,
    PRIMARY KEY (account_id, token)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS junk_totals (
    account_id INTEGER PRIMARY KEY,
    spam INTEGER NOT NULL DEFAULT 0,
    ham INTEGER NOT NULL DEFAULT 0
);
-- Bumped by every change of any account's totals, by any process: deliveries keep the totals
-- in memory and look at this number once a second (filter_state_data.py).
CREATE TABLE IF NOT EXISTS junk_totals_version (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO junk_totals_version(one, version) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS junk_totals_added AFTER INSERT ON junk_totals BEGIN
    UPDATE junk_totals_version SET version = version + 1;
END;
CREATE TRIGGER IF NOT EXISTS junk_totals_changed AFTER UPDATE ON junk_totals BEGIN
    UPDATE junk_totals_version SET version = version + 1;
END;
CREATE TRIGGER IF NOT EXISTS junk_totals_removed AFTER DELETE ON junk_totals BEGIN
    UPDATE junk_totals_version SET version = version + 1;
END;
CREATE TABLE IF NOT EXISTS junk_trained (
    account_id INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    spam INTEGER NOT NULL,               -- 1: trained as spam, 0: as ham
    trained REAL NOT NULL,
    PRIMARY KEY (account_id, sha256)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS junk_training_queue (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    spam INTEGER NOT NULL,
    queued REAL NOT NULL
);
-- Account ids may be reused once the highest is deleted: a new account must not inherit a
-- removed one's classifier.
CREATE TRIGGER IF NOT EXISTS junk_account_removed AFTER DELETE ON accounts BEGIN
    DELETE FROM junk_tokens WHERE account_id = OLD.id;
    DELETE FROM junk_totals WHERE account_id = OLD.id;
    DELETE FROM junk_trained WHERE account_id = OLD.id;
    DELETE FROM junk_training_queue WHERE account_id = OLD.id;
END;
-- Greylisting (filtering/greylist.py, RFC 6647): triplets (client network, normalised sender,
-- recipient) and client networks whose triplets passed (auto-allow).
CREATE TABLE IF NOT EXISTS greylist_triplets (
    network TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    passed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (network, sender, recipient)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS greylist_triplets_by_time ON greylist_triplets(last_seen);
CREATE TABLE IF NOT EXISTS greylist_networks (
    network TEXT PRIMARY KEY,
    passes INTEGER NOT NULL,
    last_seen REAL NOT NULL
) WITHOUT ROWID;

-- Transfers (import, migrate): each blob's dedup fingerprint (transfer/dedup.py), cached
-- because a blob never changes; and the POP3 unique-ids a migrated message keeps from the server
-- it came from, served by pop3/ while the mailbox keeps that UIDVALIDITY.
CREATE TABLE IF NOT EXISTS transfer_fingerprints (
    sha256 TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transfer_pop3_uidls (
    mailbox_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uidl TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS messages_added AFTER INSERT ON messages BEGIN
    UPDATE blobs SET refcount = refcount + 1 WHERE id = NEW.blob;
    UPDATE accounts SET used = used + NEW.size
     WHERE id = (SELECT account_id FROM mailboxes WHERE id = NEW.mailbox_id);
END;
CREATE TRIGGER IF NOT EXISTS messages_removed AFTER DELETE ON messages BEGIN
    UPDATE blobs SET refcount = refcount - 1 WHERE id = OLD.blob;
    UPDATE accounts SET used = used - OLD.size
     WHERE id = (SELECT account_id FROM mailboxes WHERE id = OLD.mailbox_id);
END;
"""


def connect(path: Path, *, writer: bool) -> sqlite3.Connection:
    """Open a connection with the settings every postoffice connection uses."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60.0)
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Page cache: 32 MB for the writer, 8 MB per reader (the OS page cache does the rest).
    conn.execute(f"PRAGMA cache_size = {-32000 if writer else -8000}")
    conn.execute("PRAGMA temp_store = MEMORY")
    if writer:
        conn.execute("PRAGMA journal_mode = WAL")
        # Checkpoint every ~64 MB of WAL instead of SQLite's 4 MB: each checkpoint writes and
        # fsyncs the database file inside some writer's commit, so frequent ones stall ingest.
        conn.execute("PRAGMA wal_autocheckpoint = 16000")
    return conn


def create_schema(conn: sqlite3.Connection, db_path: Path | None = None) -> None:
    """Create the schema in a new database, or bring an older one up to `SCHEMA_VERSION`.

    An older database is first copied beside itself (see upgrade.py), then upgraded step by step
    in one transaction with what the steps leave missing, so it ends either fully upgraded or
    untouched. A newer database is refused: this code would misread it.
    """
    copy: Path | None = None
    version: int | None = None
    while True:
        conn.execute("PRAGMA foreign_keys = OFF")  # a step may rebuild a table; cannot change in a transaction
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read inside the write transaction: another process may have upgraded meanwhile.
            version = stored_version(conn)
            if version is not None and version > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"The store {db_path or ''} was written by a newer postoffice (schema {version};"
                    f" this one knows up to {SCHEMA_VERSION}): upgrade postoffice to use it."
                )
            if version is not None and version < SCHEMA_VERSION and copy is None and db_path is not None:
                conn.execute("ROLLBACK")
                log.warning("the store %s has schema %s: copying it before the upgrade to %s",
                            db_path, version, SCHEMA_VERSION)
                copy = copy_before_upgrade(conn, db_path, version)  # None: upgraded meanwhile
                continue
            _create(conn, version)
            conn.execute("COMMIT")
        except BaseException as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if version is None or version >= SCHEMA_VERSION or isinstance(error, StoreError):
                raise
            kept = f"; a copy taken before the upgrade is {copy}" if copy else ""
            raise UpgradeFailed(
                f"Upgrading the store {db_path or ''} from schema {version} to {SCHEMA_VERSION} failed"
                f" ({error}); it was left unchanged at schema {version}{kept}."
            ) from error
        finally:
            conn.execute("PRAGMA foreign_keys = ON")
        if version is not None and version < SCHEMA_VERSION:
            log.warning("upgraded the store %s from schema %s to %s (the old file is kept as %s)",
                        db_path, version, SCHEMA_VERSION, copy)
        return


def _create(conn: sqlite3.Connection, version: int | None) -> None:
    """Inside the caller's transaction: the upgrade steps, then every table, index and trigger
    still missing (some came without a version change), then the version numbers."""
    for step_from in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
        STEPS[step_from](conn)
    for statement in _statements(SCHEMA):
        conn.execute(statement)
    # Rows indexed by another version of the text extraction are indexed again: looked for only
    # when the version changed, not on every open (it reads every blob row).
    indexed = conn.execute("SELECT value FROM meta WHERE key = 'text_index_version'").fetchone()
    if indexed is None or int(indexed[0]) != INDEX_VERSION:
        conn.execute("UPDATE blobs SET text_version = 0 WHERE text_version NOT IN (0, ?, ?)",
                     (INDEX_VERSION, QUEUE_ONLY))
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('text_index_version', ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(INDEX_VERSION),),
        )
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('schema_version', ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (str(SCHEMA_VERSION),),
    )


def _statements(script: str) -> list[str]:
    """Split the schema into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        if line.startswith("--") or not line.strip():
            continue
        current.append(line)
        joined = "\n".join(current)
        if sqlite3.complete_statement(joined):
            statements.append(joined)
            current = []
    return statements
