"""The MailStore contract: every backend must pass these."""
from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from postoffice.message.lines import WireForm
from postoffice.store.changes import ChangeKind
from postoffice.store.interface import (
    AlreadyExists,
    DeliveryTarget,
    FlagMode,
    MailStore,
    NewMessage,
    QuotaExceeded,
    StoreError,
)
from store_kit import make_raw, new_account, new_message


async def inbox(store: MailStore, account_id: int):
    mailbox = await store.get_mailbox(account_id, "INBOX")
    assert mailbox is not None
    return mailbox


async def test_new_account_gets_default_mailboxes_with_special_use(store: MailStore) -> None:
    account = await new_account(store)
    boxes = {m.name: m.special_use for m in await store.list_mailboxes(account.id)}
    assert boxes == {
        "INBOX": None, "Drafts": "\\Drafts", "Sent": "\\Sent", "Trash": "\\Trash",
        "Junk": "\\Junk", "Archive": "\\Archive",
    }
    assert await store.get_mailbox(account.id, "inbox") is not None  # INBOX is case-insensitive


async def test_duplicate_domain_and_account_are_refused(store: MailStore) -> None:
    await new_account(store)
    with pytest.raises(AlreadyExists):
        await store.add_domain("EXAMPLE.test")
    with pytest.raises(AlreadyExists):
        await store.add_account("USER@example.test", "x")


async def test_uids_and_modseqs_strictly_increase_and_are_never_reused(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)
    seen_uids: list[int] = []
    seen_modseqs: list[int] = []
    for round_ in range(5):
        results = await store.append_messages(box.id, [await new_message(store, round_ * 10 + i) for i in range(3)])
        seen_uids += [r.uid for r in results]
        seen_modseqs.append(results[0].modseq)
        await store.expunge(box.id, [seen_uids[-1]])  # expunging the newest must not free its uid
    assert seen_uids == sorted(set(seen_uids))
    assert seen_modseqs == sorted(set(seen_modseqs))
    status = await store.mailbox_status(box.id)
    assert status.uidnext == seen_uids[-1] + 1
    assert status.highestmodseq > seen_modseqs[-1]


async def test_uidvalidity_changes_when_a_mailbox_is_recreated(store: MailStore) -> None:
    account = await new_account(store)
    first = await store.create_mailbox(account.id, "Projects")
    await store.delete_mailbox(account.id, "Projects")
    second = await store.create_mailbox(account.id, "Projects")
    assert second.uidvalidity > first.uidvalidity


async def test_flags_add_remove_replace_and_keywords(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)
    first = await new_message(store, 1)
    (r,) = await store.append_messages(box.id, [NewMessage(first.blob, frozenset({"\\Seen"}), raw=first.raw)])
    result = await store.store_flags(box.id, [r.uid], FlagMode.ADD, ["\\flagged", "$Forwarded"])
    assert result.updated[0].flags == {"\\Seen", "\\Flagged", "$Forwarded"}
    assert result.updated[0].modseq > r.modseq
    result = await store.store_flags(box.id, [r.uid], FlagMode.REMOVE, ["\\Seen"])
    assert result.updated[0].flags == {"\\Flagged", "$Forwarded"}
    result = await store.store_flags(box.id, [r.uid], FlagMode.REPLACE, ["\\Draft"])
    assert result.updated[0].flags == {"\\Draft"}
    # No change: no new modseq, nothing reported.
    before = (await store.mailbox_status(box.id)).highestmodseq
    result = await store.store_flags(box.id, [r.uid], FlagMode.ADD, ["\\Draft"])
    assert result.updated == ()
    assert (await store.mailbox_status(box.id)).highestmodseq == before
    (record,) = await store.get_messages(box.id, [r.uid])
    assert record.flags == {"\\Draft"}


async def test_adding_system_flags_to_many_messages(store: MailStore) -> None:
    """+FLAGS of system flags (the mark-as-read and POP3 QUIT case) over many messages: only
    those that change are reported, all with one new modseq, keywords kept; a second time
    changes nothing and takes no modseq."""
    account = await new_account(store)
    box = await inbox(store, account.id)
    messages = [await new_message(store, n) for n in range(1, 1201)]  # more than one chunk of uids
    appended = await store.append_messages(box.id, messages)
    uids = [r.uid for r in appended]
    await store.store_flags(box.id, uids[:2], FlagMode.ADD, ["\\Seen", "\\Flagged"])
    await store.store_flags(box.id, uids[2:3], FlagMode.ADD, ["$Work", "\\Seen"])
    before = (await store.mailbox_status(box.id)).highestmodseq
    result = await store.store_flags(box.id, [*uids, 999_999], FlagMode.ADD, ["\\Seen", "\\Flagged"])
    assert [u.uid for u in result.updated] == uids[2:]
    assert {u.modseq for u in result.updated} == {before + 1}
    assert result.updated[0].flags == {"\\Seen", "\\Flagged", "$Work"}
    assert all(u.flags == {"\\Seen", "\\Flagged"} for u in result.updated[1:])
    assert (await store.mailbox_status(box.id)).highestmodseq == before + 1
    records = await store.get_messages(box.id, uids)
    assert all({"\\Seen", "\\Flagged"} <= r.flags for r in records)
    changes = await store.changes_since(box.id, before)
    assert sorted(r.uid for r in changes.changed) == uids[2:]
    again = await store.store_flags(box.id, uids, FlagMode.ADD, ["\\Seen"])
    assert again.updated == ()
    assert (await store.mailbox_status(box.id)).highestmodseq == before + 1


async def test_unchanged_since_refuses_messages_modified_later(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)
    a, b = await store.append_messages(box.id, [await new_message(store, 1), await new_message(store, 2)])
    changed = await store.store_flags(box.id, [b.uid], FlagMode.ADD, ["\\Seen"])
    result = await store.store_flags(
        box.id, [a.uid, b.uid], FlagMode.ADD, ["\\Flagged"], unchanged_since=a.modseq
    )
    assert [u.uid for u in result.updated] == [a.uid]
    assert result.failed_unchanged_since == (b.uid,)
    assert changed.updated[0].modseq < result.updated[0].modseq


async def test_expunge_leaves_tombstones_for_changes_since(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)
    results = await store.append_messages(box.id, [await new_message(store, i) for i in range(4)])
    checkpoint = (await store.mailbox_status(box.id)).highestmodseq
    await store.store_flags(box.id, [results[0].uid, results[1].uid], FlagMode.ADD, ["\\Deleted"])
    await store.store_flags(box.id, [results[2].uid], FlagMode.ADD, ["\\Seen"])
    removed = await store.expunge(box.id)  # every \Deleted message
    assert removed == [results[0].uid, results[1].uid]
    changes = await store.changes_since(box.id, checkpoint)
    assert changes.vanished == (results[0].uid, results[1].uid)
    assert [c.uid for c in changes.changed] == [results[2].uid]
    assert changes.highestmodseq == (await store.mailbox_status(box.id)).highestmodseq
    assert [m.uid for m in await store.list_messages(box.id)] == [results[2].uid, results[3].uid]


async def test_quota_refuses_delivery_and_append_and_tracks_usage(store: MailStore) -> None:
    message = await new_message(store, 1, body="x" * 200)
    size = message.blob.size
    small = await new_account(store, "small@example.test", quota=size + size // 2)
    big = await new_account(store, "big@example.test")
    results, _ = await store.deliver(message, [DeliveryTarget(small.id), DeliveryTarget(big.id)])
    assert results[0].uid is not None and results[1].uid is not None
    assert (await store.get_account("small@example.test")).used == size
    results, _ = await store.deliver(message, [DeliveryTarget(small.id), DeliveryTarget(big.id)])
    assert isinstance(results[0].error, QuotaExceeded) and results[0].uid is None
    assert results[1].uid is not None
    with pytest.raises(QuotaExceeded):
        await store.append_messages((await inbox(store, small.id)).id, [message])
    await store.expunge((await inbox(store, small.id)).id, [1])
    assert (await store.get_account("small@example.test")).used == 0


async def test_one_blob_for_fifty_recipients(store: MailStore) -> None:
    accounts = [await new_account(store, f"u{i}@example.test") for i in range(50)]
    message = await new_message(store, 7)
    results, _ = await store.deliver(message, [DeliveryTarget(a.id) for a in accounts])
    assert all(r.uid == 1 for r in results)
    files = list(store.blobs.all_hashes())  # type: ignore[attr-defined]
    assert files == [message.blob.sha256]


async def test_blob_removed_when_last_reference_expunged(store: MailStore) -> None:
    a = await new_account(store, "a@example.test")
    b = await new_account(store, "b@example.test")
    message = await new_message(store, 9)
    await store.deliver(message, [DeliveryTarget(a.id), DeliveryTarget(b.id)])
    blobs = store.blobs  # type: ignore[attr-defined]
    await store.expunge((await inbox(store, a.id)).id, [1])
    assert blobs.exists(message.blob.sha256)  # still referenced by b
    await store.expunge((await inbox(store, b.id)).id, [1])
    assert not blobs.exists(message.blob.sha256)
    # The same content delivered again is stored again, and readable.
    again = await new_message(store, 9)
    await store.deliver(again, [DeliveryTarget(a.id)])
    assert await store.read_blob(again.blob.sha256) == make_raw(9)


async def test_deleting_an_account_removes_its_blobs(store: MailStore) -> None:
    account = await new_account(store)
    message = await new_message(store, 3)
    await store.deliver(message, [DeliveryTarget(account.id)])
    await store.remove_account(account.address)
    assert not store.blobs.exists(message.blob.sha256)  # type: ignore[attr-defined]
    assert await store.get_account(account.address) is None


async def test_concurrent_writers_from_many_tasks(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)

    async def writer(k: int) -> list[int]:
        uids = []
        for i in range(10):
            (r,) = await store.append_messages(box.id, [await new_message(store, k * 100 + i)])
            uids.append(r.uid)
        return uids

    all_uids = [u for uids in await asyncio.gather(*(writer(k) for k in range(20))) for u in uids]
    assert sorted(all_uids) == list(range(1, 201))
    assert (await store.mailbox_status(box.id)).messages == 200


async def test_reader_is_never_blocked_by_a_long_write(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)
    await store.append_messages(box.id, [await new_message(store, 1)])
    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    def long_write(tx) -> None:
        tx.execute("UPDATE mailboxes SET subscribed = 1 WHERE id = ?", (box.id,))
        loop.call_soon_threadsafe(started.set)
        time.sleep(1.5)  # holding the write transaction open

    write = asyncio.create_task(store.run_write(long_write))  # type: ignore[attr-defined]
    await started.wait()
    lags: list[float] = []

    async def ticker() -> None:
        for _ in range(20):
            t = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - t - 0.01)

    tick = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    status = await store.mailbox_status(box.id)
    records = await store.list_messages(box.id)
    elapsed = time.perf_counter() - t0
    await tick
    assert not write.done(), "the write finished before the reads: the test proved nothing"
    assert status.messages == 1 and len(records) == 1
    assert elapsed < 0.5
    assert max(lags) < 0.2  # the event loop kept running
    await write


async def test_failed_job_rolls_back_alone(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)

    def failing(tx) -> None:
        tx.execute("UPDATE mailboxes SET uidnext = 999 WHERE id = ?", (box.id,))
        raise StoreError("boom")

    results = await asyncio.gather(
        store.run_write(failing),  # type: ignore[attr-defined]
        store.append_messages(box.id, [await new_message(store, 1)]),
        return_exceptions=True,
    )
    assert isinstance(results[0], StoreError)
    assert results[1][0].uid == 1
    assert (await store.mailbox_status(box.id)).uidnext == 2


async def test_changes_are_published_after_commit(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)
    with store.changes.subscribe(box.id) as sub:
        (r,) = await store.append_messages(box.id, [await new_message(store, 1)])
        change = await asyncio.wait_for(sub.get(), 1)
        assert (change.kind, change.uids, change.modseq) == (ChangeKind.EXISTS, (r.uid,), r.modseq)
        await store.store_flags(box.id, [r.uid], FlagMode.ADD, ["\\Seen"])
        assert (await asyncio.wait_for(sub.get(), 1)).kind is ChangeKind.FLAGS
        await store.expunge(box.id, [r.uid])
        assert (await asyncio.wait_for(sub.get(), 1)).kind is ChangeKind.EXPUNGE


async def test_copy_and_move_keep_flags_and_dates(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)
    archive = await store.get_mailbox(account.id, "Archive")
    msg = await new_message(store, 1)
    (r,) = await store.append_messages(box.id, [NewMessage(msg.blob, frozenset({"\\Seen", "work"}), 1_000_000.0, msg.raw)])
    copied = await store.copy_messages(box.id, [r.uid], archive.id)
    assert copied.pairs == ((r.uid, 1),) and copied.uidvalidity == archive.uidvalidity
    (c,) = await store.get_messages(archive.id, [1])
    assert c.flags == {"\\Seen", "work"} and c.internal_date == 1_000_000.0
    moved = await store.copy_messages(box.id, [r.uid], archive.id, move=True)
    assert moved.pairs == ((r.uid, 2),)
    assert await store.list_messages(box.id) == []
    assert (await store.changes_since(box.id, 0)).vanished == (r.uid,)


async def test_rename_mailbox_with_children_and_inbox(store: MailStore) -> None:
    account = await new_account(store)
    await store.create_mailbox(account.id, "Work")
    await store.create_mailbox(account.id, "Work/2024")
    await store.rename_mailbox(account.id, "Work", "Jobs")
    names = {m.name for m in await store.list_mailboxes(account.id)}
    assert {"Jobs", "Jobs/2024"} <= names and "Work" not in names
    box = await inbox(store, account.id)
    await store.append_messages(box.id, [await new_message(store, 1)])
    renamed = await store.rename_mailbox(account.id, "INBOX", "Old")
    assert (await store.mailbox_status(renamed.id)).messages == 1
    assert (await store.mailbox_status(box.id)).messages == 0  # INBOX stays, empty


async def test_recent_is_claimed_by_one_session_only(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)
    await store.append_messages(box.id, [await new_message(store, i) for i in range(3)])
    first = await store.claim_recent(box.id)
    second = await store.claim_recent(box.id)
    assert first == 1 and second == 4
    assert (await store.mailbox_status(box.id)).recent == 0


async def test_full_text_search(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)
    await store.append_messages(box.id, [
        await new_message(store, 1, body="the quarterly zygomorphic report"),
        await new_message(store, 2, body="lunch on friday", subject="Zygomorphic flowers"),
    ])
    assert await store.search_text(box.id, "zygomorphic") == {1, 2}
    assert await store.search_text(box.id, "zygomorphic", headers=False) == {1}
    assert await store.search_text(box.id, "friday") == {2}
    assert await store.search_text(box.id, "absent") == set()
    # Substrings, any case, any length (RFC 9051 §6.4.4).
    assert await store.search_text(box.id, "YGOMORPH") == {1, 2}
    assert await store.search_text(box.id, "terly zygo") == {1}
    assert await store.search_text(box.id, "ri") == {2}
    assert await store.search_text(box.id, "") == {1, 2}
    # Every trigram present, but not together: the candidate is checked against the text.
    assert await store.search_text(box.id, "quarterly lunch") == set()


async def test_search_finds_messages_not_indexed_yet(store: MailStore) -> None:
    if type(store).__name__ != "SqliteStore":
        pytest.skip("index upgrade is specific to the embedded backend")
    from postoffice.store.sqlite.store import SqliteStore

    account = await new_account(store)
    box = await inbox(store, account.id)
    await store.append_messages(box.id, [await new_message(store, 1, body="an unindexed gazpacho")])
    # Make the database look like schema version 1, which had a word index instead.
    conn = sqlite3.connect(store.db_path)  # type: ignore[attr-defined]
    conn.execute("INSERT INTO blob_trigrams(blob_trigrams) VALUES ('delete-all')")
    conn.execute("CREATE VIRTUAL TABLE blob_text USING fts5(headers, body, content = '')")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    upgraded = SqliteStore(store.db_path, store.blobs.root)  # type: ignore[attr-defined]
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "blob_text" not in tables
        assert await upgraded.search_text(box.id, "gazpacho") == {1}  # found without the index
        assert await upgraded.index_unindexed(limit=10) == 1
        assert await upgraded.index_unindexed(limit=10) == 0
        (indexed,) = conn.execute("SELECT count(*) FROM blob_trigrams WHERE blob_trigrams MATCH 'zpa'").fetchone()
        assert indexed == 1
        assert await upgraded.search_text(box.id, "gazpacho") == {1}
    finally:
        conn.close()
        await upgraded.close()


async def test_append_skips_duplicates_only_when_asked(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)
    msg = await new_message(store, 1)
    await store.append_messages(box.id, [msg])
    (dup,) = await store.append_messages(box.id, [msg], skip_duplicates=True)
    assert dup.duplicate and dup.uid is None
    (again,) = await store.append_messages(box.id, [msg])
    assert again.uid == 2
    assert await store.mailbox_blob_hashes(box.id, [msg.blob.sha256, "0" * 64]) == {msg.blob.sha256}


async def test_changes_from_another_store_instance_are_published(store: MailStore, tmp_path) -> None:
    if type(store).__name__ != "SqliteStore":
        pytest.skip("cross-process change polling is specific to the embedded backend")
    from postoffice.store.sqlite.store import SqliteStore

    account = await new_account(store)
    box = await inbox(store, account.id)
    store.watch_external_changes(interval=0.02)  # type: ignore[attr-defined]
    await asyncio.sleep(0.1)
    other = SqliteStore(store.db_path, store.blobs.root)  # type: ignore[attr-defined]  # as an admin command would
    try:
        with store.changes.subscribe(box.id) as sub:
            (r,) = await other.append_messages(box.id, [await new_message(other, 1)])
            change = await asyncio.wait_for(sub.get(), 1)
            assert change.kind is ChangeKind.EXISTS and change.uids == (r.uid,)
            await asyncio.sleep(0.1)
            assert sub.drain() == []  # published once
    finally:
        await other.close()


async def test_garbage_collection_removes_only_old_orphans(store: MailStore) -> None:
    import os

    account = await new_account(store)
    box = await inbox(store, account.id)
    kept = await new_message(store, 1)
    await store.append_messages(box.id, [kept])
    blobs = store.blobs  # type: ignore[attr-defined]
    old_orphan = blobs.write(b"never committed\r\n")  # as a crash before commit leaves it
    new_orphan = blobs.write(b"just written by another process\r\n")
    past = time.time() - 7200
    os.utime(blobs.path(old_orphan), (past, past))
    os.utime(blobs.path(kept.blob.sha256), (past, past))
    removed = await store.collect_garbage(orphan_min_age=3600)
    assert removed.orphans == 1
    assert not blobs.exists(old_orphan)
    assert blobs.exists(new_orphan) and blobs.exists(kept.blob.sha256)


async def test_expunged_messages_leave_the_full_text_index(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)
    (a,) = await store.append_messages(box.id, [await new_message(store, 1, body="xylophone quartet")])
    assert await store.index_unindexed() == 1
    assert await store.search_text(box.id, "xylophone") == {a.uid}
    await store.expunge(box.id, [a.uid])
    # The same words in a new message match only the new message.
    (b,) = await store.append_messages(box.id, [await new_message(store, 2, body="xylophone solo")])
    assert await store.search_text(box.id, "xylophone") == {b.uid}
    if type(store).__name__ == "SqliteStore":
        while await store.index_unindexed() > 0:  # the background indexer removes postings too
            pass
        conn = sqlite3.connect(store.db_path)  # type: ignore[attr-defined]
        # the removed message's postings are gone, not merely unreachable
        (hits,) = conn.execute("SELECT count(*) FROM blob_trigrams WHERE blob_trigrams MATCH 'qua'").fetchone()
        conn.close()
        assert hits == 0


async def test_expunged_message_stays_readable_while_its_mailbox_is_held(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)
    msg = await new_message(store, 1)
    (r,) = await store.append_messages(box.id, [msg])
    store.hold_mailbox(box.id)  # an IMAP session has it selected and has not been told yet
    await store.expunge(box.id, [r.uid])
    assert await store.read_blob(msg.blob.sha256) == make_raw(1)
    info = await store.blob_info([msg.blob.sha256])
    assert info[msg.blob.sha256].subject == "message 1"
    store.release_mailbox(box.id)
    for _ in range(50):  # the sweep runs in the background after the release
        if not store.blobs.exists(msg.blob.sha256):  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.02)
    assert not store.blobs.exists(msg.blob.sha256)  # type: ignore[attr-defined]


async def test_new_blob_becomes_durable_only_with_its_commit(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)
    raw = make_raw(42)
    blob = await store.put_blob(raw)
    blobs = store.blobs  # type: ignore[attr-defined]
    assert not blobs.exists(blob.sha256)  # nothing is named before a commit needs it

    def failing(tx) -> None:
        from postoffice.store.sqlite.message_ops import insert_blob

        insert_blob(tx, blobs, blob, raw)
        raise StoreError("rolled back")

    with pytest.raises(StoreError):
        await store.run_write(failing)  # type: ignore[attr-defined]
    assert not blobs.exists(blob.sha256)  # a rolled-back job writes nothing
    await store.append_messages(box.id, [NewMessage(blob, raw=raw)])
    assert blobs.exists(blob.sha256) and blobs.read(blob.sha256) == raw
    assert list(blobs.root.joinpath("tmp").iterdir()) == []  # no temporary file left behind
    with pytest.raises(StoreError):  # without its bytes a new blob cannot be stored
        other = await store.put_blob(make_raw(43))
        await store.append_messages(box.id, [NewMessage(other)])


async def test_subscriptions_are_to_names(store: MailStore) -> None:
    """RFC 9051 §6.3.7: deleting a mailbox keeps its name subscribed; UNSUBSCRIBE works by name."""
    account = await new_account(store)
    box = await store.create_mailbox(account.id, "Projects/2026")
    await store.set_subscribed(box.id, True)
    await store.delete_mailbox(account.id, "Projects/2026")
    assert "Projects/2026" in await store.list_subscriptions(account.id)
    again = await store.create_mailbox(account.id, "Projects/2026")
    assert again.subscribed  # the name was still subscribed
    await store.delete_mailbox(account.id, "Projects/2026")
    assert await store.unsubscribe_name(account.id, "Projects/2026")
    assert "Projects/2026" not in await store.list_subscriptions(account.id)
    assert not (await store.create_mailbox(account.id, "Projects/2026")).subscribed
    assert not await store.unsubscribe_name(account.id, "Nothing")


async def test_private_seen_for_a_viewer(store: MailStore) -> None:
    owner = await new_account(store)
    sharee = await new_account(store, "sharee@example.test")
    box = await inbox(store, owner.id)
    await store.append_messages(box.id, [await new_message(store, 1), await new_message(store, 2)])
    result = await store.store_flags(box.id, [1], FlagMode.ADD, ["\\Seen", "\\Flagged"], viewer=sharee.id)
    assert result.updated[0].flags == frozenset({"\\Seen", "\\Flagged"})
    mine = await store.get_messages(box.id, [1, 2], viewer=sharee.id)
    theirs = await store.get_messages(box.id, [1, 2])
    assert [set(r.flags) for r in mine] == [{"\\Seen", "\\Flagged"}, set()]
    assert [set(r.flags) for r in theirs] == [{"\\Flagged"}, set()]  # \Flagged is shared, \Seen is not
    await store.store_flags(box.id, [2], FlagMode.ADD, ["\\Seen"])  # the owner reads 2
    assert (await store.mailbox_status(box.id)).unseen == 1
    assert (await store.mailbox_status(box.id, viewer=sharee.id)).unseen == 1
    _, snapshot = await store.open_snapshot(box.id, viewer=sharee.id)
    assert [("\\Seen" in r.flags) for r in snapshot] == [True, False]
    before = (await store.get_messages(box.id, [1]))[0].modseq
    await store.store_flags(box.id, [1], FlagMode.REMOVE, ["\\Seen"], viewer=sharee.id)
    changes = await store.changes_since(box.id, before, viewer=sharee.id)
    changed = {r.uid: r for r in changes.changed}
    assert "\\Seen" not in changed[1].flags  # a new modseq tells the sharee's sessions


async def test_recent_goes_to_one_claimer_even_without_writes(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox(store, account.id)
    await store.append_messages(box.id, [await new_message(store, 1), await new_message(store, 2)])
    v = box.uidvalidity
    assert await store.claim_recent(box.id, uidnext=3, uidvalidity=v) == 1  # uids 1-2 are recent here
    assert await store.claim_recent(box.id, uidnext=3, uidvalidity=v) == 3  # and nowhere else
    await store.append_messages(box.id, [await new_message(store, 3)])
    assert await store.claim_recent(box.id, uidnext=4, uidvalidity=v) == 3  # uid 3 to the next one
    assert await store.claim_recent(box.id, uidnext=4, uidvalidity=v) == 4
    assert await store.claim_recent(box.id) == 4  # a plain claim agrees with the shortcut
    assert (await store.mailbox_status(box.id)).recent == 0


async def test_wire_form_recorded_and_upgraded(store: MailStore) -> None:
    if type(store).__name__ != "SqliteStore":
        pytest.skip("schema upgrade is specific to the embedded backend")
    from postoffice.store.sqlite.store import SqliteStore

    account = await new_account(store)
    box = await inbox(store, account.id)
    dotted = b"Subject: dots\r\n\r\n.starts with a dot\r\n"
    await store.append_messages(box.id, [await new_message(store, 1), NewMessage(await store.put_blob(dotted), raw=dotted)])
    _, records = await store.open_snapshot(box.id)
    assert [r.wire_form for r in records] == [WireForm.READY, WireForm.STUFF]
    # A schema 2 database has no such column: the upgrade adds it, and says "not known".
    conn = sqlite3.connect(store.db_path)  # type: ignore[attr-defined]
    conn.execute("ALTER TABLE blobs DROP COLUMN wire_form")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    upgraded = SqliteStore(store.db_path, store.blobs.root)  # type: ignore[attr-defined]
    try:
        _, records = await upgraded.open_snapshot(box.id)
        assert [r.wire_form for r in records] == [WireForm.UNKNOWN] * 2
        await upgraded.append_messages(box.id, [await new_message(upgraded, 3)])
        _, records = await upgraded.open_snapshot(box.id)
        assert [r.wire_form for r in records] == [WireForm.UNKNOWN] * 2 + [WireForm.READY]
    finally:
        await upgraded.close()
