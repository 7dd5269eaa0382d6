"""The store contract for filtered delivery (every backend): `deliver_plan` writes copies of
several contents, made mailboxes, queue rows and memory entries in one transaction; the
memory answers until it expires and goes with its account."""
from __future__ import annotations

from postoffice.store.delivery_memory_interface import DeliveryPlan, MemoryEntry, PlannedCopy
from postoffice.store.interface import (
    DeliveryTarget,
    MailStore,
    NewMessage,
    OutboundMessage,
    QueuedRecipient,
    QuotaExceeded,
)

RAW = b"From: a@remote.example\r\nSubject: hi\r\n\r\nbody\r\n"


async def _account(store: MailStore, address: str, quota: int = 0) -> int:
    if await store.get_domain(address.split("@")[1]) is None:
        await store.add_domain(address.split("@")[1])
    return (await store.add_account(address, "hash", quota)).id


async def _blobs(store: MailStore, account_id: int, mailbox: str) -> list[bytes]:
    box = await store.get_mailbox(account_id, mailbox)
    assert box is not None, mailbox
    return [await store.read_blob(r.blob) for r in await store.list_messages(box.id)]


async def test_one_plan_writes_every_copy_row_and_memory(store: MailStore) -> None:
    alice = await _account(store, "alice@example.org")
    bob = await _account(store, "bob@example.org")
    edited = b"X-Edited: yes\r\n" + RAW
    contents = [NewMessage(await store.put_blob(RAW), raw=RAW), NewMessage(await store.put_blob(edited), raw=edited)]
    copies = [
        PlannedCopy(DeliveryTarget(alice, "Lists/New", frozenset({"\\Seen"})), 1, create=True),
        PlannedCopy(DeliveryTarget(alice, "Missing"), 1),  # not to be made: INBOX
        PlannedCopy(DeliveryTarget(bob, "INBOX"), 0),
    ]
    reply = b"Subject: away\r\n\r\nback soon\r\n"
    queue = [(NewMessage(await store.put_blob(reply, queue_only=True), raw=reply),
              OutboundMessage("", (QueuedRecipient("a@remote.example"),)))]
    memory = [MemoryEntry(alice, "vacation", "a@remote.example\0h", 2e9), MemoryEntry(bob, "duplicate", "id1", 2e9)]
    result = await store.deliver_plan(DeliveryPlan(contents, copies, queue, memory))
    assert [r.error for r in result.results] == [None, None, None] and len(result.queue_ids) == 1
    assert result.fell_back == (1,)
    assert await _blobs(store, alice, "Lists/New") == [edited]
    assert await _blobs(store, alice, "INBOX") == [edited]
    assert await _blobs(store, bob, "INBOX") == [RAW]
    box = await store.get_mailbox(alice, "Lists/New")
    assert box is not None and box.subscribed
    assert [r.flags for r in await store.list_messages(box.id)] == [frozenset({"\\Seen"})]
    (row,) = await store.list_queue()
    assert row.id == result.queue_ids[0] and await store.read_blob(row.blob) == reply
    assert await store.remembered(alice, "vacation", "a@remote.example\0h", 1e9)
    assert not await store.remembered(bob, "vacation", "a@remote.example\0h", 1e9)  # per account
    assert await store.remembered(bob, "duplicate", "id1", 1e9)
    assert not await store.remembered(bob, "duplicate", "id1", 3e9)  # expired by then


async def test_an_over_quota_copy_fails_alone(store: MailStore) -> None:
    full = await _account(store, "full@example.org", quota=10)
    ok = await _account(store, "ok@example.org")
    content = NewMessage(await store.put_blob(RAW), raw=RAW)
    result = await store.deliver_plan(DeliveryPlan(
        [content], [PlannedCopy(DeliveryTarget(full, "INBOX")), PlannedCopy(DeliveryTarget(ok, "INBOX"))]))
    assert isinstance(result.results[0].error, QuotaExceeded) and result.results[1].uid is not None


async def test_memory_is_refreshed_forgotten_when_expired_and_goes_with_the_account(store: MailStore) -> None:
    alice = await _account(store, "alice@example.org")
    empty: list[NewMessage] = []
    await store.deliver_plan(DeliveryPlan(empty, [], (), [MemoryEntry(alice, "duplicate", "k", 100.0)]))
    await store.deliver_plan(DeliveryPlan(empty, [], (), [MemoryEntry(alice, "duplicate", "k", 300.0)]))
    assert await store.remembered(alice, "duplicate", "k", 200.0)
    assert await store.forget_expired(400.0) == 1
    assert not await store.remembered(alice, "duplicate", "k", 0.0)
    await store.deliver_plan(DeliveryPlan(empty, [], (), [MemoryEntry(alice, "duplicate", "k", 300.0)]))
    await store.remove_account("alice@example.org")
    alice_again = await _account(store, "alice@example.org")
    assert not await store.remembered(alice_again, "duplicate", "k", 0.0)
