"""deliver_message: one blob for many recipients, unknown and over-quota recipients reported."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postoffice.delivery import Envelope, deliver_message
from postoffice.directory import Directory
from postoffice.store import open_store
from postoffice.store.interface import MailStore

RAW = b"From: a@remote.example\nTo: team@example.org\nSubject: hi\n\nbody line\n"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[MailStore, Directory]]:
    store = open_store("sqlite", tmp_path / "s.sqlite3", tmp_path / "blobs")
    directory = Directory(store)
    await directory.add_domain("example.org")
    yield store, directory
    await store.close()


async def test_delivers_once_per_account_with_crlf_and_one_blob(env) -> None:
    store, directory = env
    alice = await directory.add_user("alice@example.org", "long enough pass")
    await directory.add_user("bob@example.org", "long enough pass")
    await directory.add_alias("team@example.org", ["alice@example.org", "bob@example.org"])
    report = await deliver_message(
        store, directory, Envelope("a@remote.example", ("team@example.org", "alice@example.org", "nobody@example.org", "x@other.example")), RAW
    )
    assert report.unknown == ["nobody@example.org"]
    assert report.not_local == ["x@other.example"]
    assert sorted(a for a, _ in report.delivered["team@example.org"]) == ["alice@example.org", "bob@example.org"]
    # alice is reached twice (alias and direct) but gets one copy
    inbox = await store.get_mailbox(alice.id, "INBOX")
    records = await store.list_messages(inbox.id)
    assert len(records) == 1
    # RFC 5321 §4.4: the final delivery adds Return-Path with the envelope sender
    assert await store.read_blob(records[0].blob) == b"Return-Path: <a@remote.example>\r\n" + RAW.replace(b"\n", b"\r\n")
    assert len(list(store.blobs.all_hashes())) == 1  # type: ignore[attr-defined]


async def test_over_quota_recipient_is_reported_and_others_still_get_it(env) -> None:
    store, directory = env
    await directory.add_user("full@example.org", "long enough pass", quota=10)
    await directory.add_user("ok@example.org", "long enough pass")
    report = await deliver_message(store, directory, Envelope("", ("full@example.org", "ok@example.org")), RAW)
    assert report.over_quota == ["full@example.org"]
    assert "ok@example.org" in report.delivered
    assert not report.all_delivered


async def test_broken_mime_is_still_delivered(env) -> None:
    store, directory = env
    await directory.add_user("alice@example.org", "long enough pass")
    broken = b"Content-Type: multipart/mixed; boundary=\"x\"\r\nSubject: =?bogus?Q?=ZZ?=\r\n\r\n--x\r\nContent-Type: text/plain; charset=nonexistent\r\n\r\n\xff\xfe\x00 text\r\n"
    report = await deliver_message(store, directory, Envelope("", ("alice@example.org",)), broken)
    assert report.all_delivered


async def test_local_copy_and_outbound_queue_are_written_together(env) -> None:
    from postoffice.store.interface import OutboundMessage, QueuedRecipient

    store, directory = env
    alice = await directory.add_user("alice@example.org", "long enough pass")
    outbound = OutboundMessage("alice@example.org", (QueuedRecipient("bob@remote.example", ("FAILURE",), "rfc822;bob@remote.example"),), envid="E1", ret="HDRS")
    report = await deliver_message(
        store, directory, Envelope("alice@example.org", ("alice@example.org", "bob@remote.example")), RAW, outbound=outbound
    )
    assert report.not_local == ["bob@remote.example"] and report.queue_id is not None
    (queued,) = await store.list_queue()
    assert queued.envelope == outbound
    assert await store.read_blob(queued.blob) == RAW.replace(b"\n", b"\r\n")  # no Return-Path on the way out
    inbox = await store.get_mailbox(alice.id, "INBOX")
    assert len(await store.list_messages(inbox.id)) == 1
    await store.remove_from_queue(queued.id)
    assert await store.list_queue() == []
    assert not store.blobs.exists(queued.blob)  # type: ignore[attr-defined]


async def test_alias_to_outside_addresses_is_queued_with_the_local_copies(env) -> None:
    store, directory = env
    alice = await directory.add_user("alice@example.org", "long enough pass")
    await directory.add_domain("away.example")
    await directory.add_alias("team@example.org", ["alice@example.org", "ext@remote.example"])
    await directory.add_alias("fwd@example.org", ["ext@remote.example", "other@remote.example"])
    await directory.add_alias("@away.example", ["far@remote.example"])
    rcpts = ("team@example.org", "fwd@example.org", "x@away.example", "alice@example.org")
    report = await deliver_message(store, directory, Envelope("a@remote.example", rcpts, envid="E1"), RAW)
    assert report.queued == {"team@example.org": ["ext@remote.example"],
                             "fwd@example.org": ["ext@remote.example", "other@remote.example"],
                             "x@away.example": ["far@remote.example"]}
    assert all(report.accepted(rc) for rc in rcpts) and report.unaccounted(rcpts) == []
    (queued,) = await store.list_queue()  # one row for every outside address, each once
    assert queued.id == report.queue_id and queued.envelope.envid == "E1"
    assert [(r.address, r.orcpt) for r in queued.envelope.recipients] == [
        ("ext@remote.example", "rfc822;team@example.org"), ("other@remote.example", "rfc822;fwd@example.org"),
        ("far@remote.example", "rfc822;x@away.example")]
    assert await store.read_blob(queued.blob) == RAW.replace(b"\n", b"\r\n")
    inbox = await store.get_mailbox(alice.id, "INBOX")
    assert len(await store.list_messages(inbox.id)) == 1


def test_report_names_recipients_it_cannot_account_for() -> None:
    from postoffice.delivery import DeliveryReport

    report = DeliveryReport(delivered={"a@x.example": [("a@x.example", 1)], "e@x.example": []},
                            queued={"b@x.example": ["b@y.example"]}, unknown=["c@x.example"],
                            over_quota=["d@x.example"])
    rcpts = ["a@x.example", "b@x.example", "c@x.example", "d@x.example", "e@x.example", "f@x.example"]
    # e: "delivered" to nothing (what forwards-only recipients were before); f: never mentioned.
    assert report.unaccounted(rcpts) == ["e@x.example", "f@x.example"]
    assert [rc for rc in rcpts if report.accepted(rc)] == ["a@x.example", "b@x.example"]


async def test_a_special_use_target_files_into_that_mailbox_and_makes_it_when_missing(env) -> None:
    """DMARC quarantine: the recipient's \\Junk mailbox, whatever its name; made when gone."""
    store, directory = env
    alice = await directory.add_user("alice@example.org", "long enough pass")
    bob = await directory.add_user("bob@example.org", "long enough pass")
    await store.rename_mailbox(alice.id, "Junk", "Spam")  # keeps its \Junk attribute
    await store.delete_mailbox(bob.id, "Junk")
    report = await deliver_message(store, directory, Envelope("a@remote.example", ("alice@example.org", "bob@example.org")),
                                   RAW, special_use="\\Junk")
    assert report.accepted("alice@example.org") and report.accepted("bob@example.org")
    for account, name in ((alice, "Spam"), (bob, "Junk")):
        box = await store.get_mailbox(account.id, name)
        assert box is not None and box.special_use == "\\Junk"
        assert len(await store.list_messages(box.id)) == 1
        assert await store.list_messages((await store.get_mailbox(account.id, "INBOX")).id) == []
