"""A copy only the outbound queue reads is stored without parsing or full-text indexing
(`put_blob(queue_only=True)`); a message that later arrives with the very same bytes gets the
IMAP fields and the index all the same."""

from __future__ import annotations

from pathlib import Path

from postoffice.store.interface import NewMessage
from postoffice.store.queue_records import OutboundMessage, QueuedRecipient
from postoffice.store.sqlite import text_ops
from postoffice.store.sqlite.store import SqliteStore
from store_kit import new_account

RAW = b"From: a@example.org\r\nTo: b@elsewhere.test\r\nSubject: quarterly numbers\r\n\r\nthe zebracorn report\r\n"


async def _drain_indexer(store: SqliteStore) -> None:
    while await store.index_unindexed() > 0:
        pass


async def test_a_queue_only_copy_is_not_parsed_nor_indexed_and_a_later_message_with_its_bytes_is(
        tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.sqlite3", tmp_path / "blobs")
    try:
        account = await new_account(store)
        box = await store.get_mailbox(account.id, "INBOX")
        assert box is not None
        queued = await store.put_blob(RAW, queue_only=True)
        assert queued.queue_only and queued.structure == "" and queued.subject == ""
        outbound = OutboundMessage("a@example.org", (QueuedRecipient("b@elsewhere.test"),))
        _, queue_id = await store.deliver(NewMessage(queued, raw=RAW), [], (NewMessage(queued, raw=RAW), outbound))
        assert queue_id is not None
        await _drain_indexer(store)
        row = await store.run_read(lambda c: c.execute("SELECT text_version, subject FROM blobs").fetchone())
        assert row == (text_ops.QUEUE_ONLY, "")  # the indexer left it alone
        assert (await store.get_queued(queue_id)).blob == queued.sha256

        # The same bytes delivered to a mailbox (say, a Bcc to oneself): one blob row, now parsed.
        blob = await store.put_blob(RAW)
        [appended] = await store.append_messages(box.id, [NewMessage(blob, raw=RAW)])
        [record] = await store.get_messages(box.id, [appended.uid])
        assert '"quarterly numbers"' in await store.blob_structure(record.blob)  # its ENVELOPE
        subject = await store.run_read(lambda c: c.execute("SELECT subject FROM blobs").fetchone()[0])
        assert subject == "quarterly numbers"  # what SORT SUBJECT reads
        assert await store.run_read(lambda c: c.execute("SELECT count(*) FROM blobs").fetchone()[0]) == 1
        await _drain_indexer(store)
        assert await store.search_text(box.id, "zebracorn", headers=True, body=True) == {appended.uid}
        assert await store.search_text(box.id, "quarterly", headers=True, body=False) == {appended.uid}
    finally:
        await store.close()
