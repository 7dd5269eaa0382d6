"""The filtering pipeline as deliver_message runs it, on a real store: message stages refuse or
add fields, account stages file, flag, discard, redirect, reject, edit and remember; nothing
disappears. The stages here are the plug-in interface (filtering/pipeline.py), not mocks."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from postoffice.delivery import Envelope, deliver_message
from postoffice.directory import Directory
from postoffice.filtering.pipeline import (
    AccountDisposition,
    AutoReply,
    FilterPipeline,
    IncomingMessage,
    Remembered,
)
from postoffice.store import open_store
from postoffice.store.interface import MailStore

RAW = b"From: a@remote.example\r\nTo: alice@example.org\r\nSubject: hi\r\nMessage-ID: <m1@remote.example>\r\n\r\nbody\r\n"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[MailStore, Directory]]:
    store = open_store("sqlite", tmp_path / "s.sqlite3", tmp_path / "blobs")
    directory = Directory(store)
    await directory.add_domain("example.org")
    await directory.add_user("alice@example.org", "long enough pass")
    await directory.add_user("bob@example.org", "long enough pass")
    yield store, directory
    await store.close()


@dataclass
class Refuser:
    name: str = "refuser"

    async def check_message(self, message: IncomingMessage) -> None:
        message.add_header("X-Seen-By", "refuser")
        message.refuse(550, "5.7.1", "Spam refused", stage=self.name)


@dataclass
class Tagger:
    name: str = "tagger"

    async def check_message(self, message: IncomingMessage) -> None:
        message.add_header("X-Spam-Score", "1.5\r\nX-Injected: no")


@dataclass
class PerAccount:
    """Runs `decide_for[address]` on that account's disposition."""

    decide_for: dict[str, Callable[[AccountDisposition], None]]
    name: str = "per-account"

    async def decide(self, message: IncomingMessage, account: AccountDisposition) -> None:
        action = self.decide_for.get(account.address)
        if action is not None:
            action(account)


class Broken:
    name = "broken"

    async def decide(self, message: IncomingMessage, account: AccountDisposition) -> None:
        account.filings.clear()
        account.keep_implicit = False
        raise RuntimeError("a bug in a filter")


async def _messages(store: MailStore, address: str, mailbox: str) -> list[bytes]:
    account = await store.get_account(address)
    box = await store.get_mailbox(account.id, mailbox)
    if box is None:
        return []
    return [await store.read_blob(r.blob) for r in await store.list_messages(box.id)]


async def _flags(store: MailStore, address: str, mailbox: str) -> list[frozenset[str]]:
    account = await store.get_account(address)
    box = await store.get_mailbox(account.id, mailbox)
    return [r.flags for r in await store.list_messages(box.id)]


async def test_message_stage_refusal_stores_nothing_and_refuses_everyone(env) -> None:
    store, directory = env
    pipeline = FilterPipeline(message_stages=[Refuser(), Tagger()])
    report = await deliver_message(store, directory, Envelope("a@remote.example", ("alice@example.org", "bob@example.org")),
                                   RAW, filters=pipeline)
    assert set(report.refused) == {"alice@example.org", "bob@example.org"}
    assert report.refused["alice@example.org"].code == 550
    assert not report.accepted("alice@example.org")
    assert report.unaccounted(["alice@example.org", "bob@example.org"]) == []
    assert await _messages(store, "alice@example.org", "INBOX") == []


async def test_added_fields_go_on_top_below_return_path_and_stay_one_line(env) -> None:
    store, directory = env
    report = await deliver_message(store, directory, Envelope("a@remote.example", ("alice@example.org",)), RAW,
                                   filters=FilterPipeline(message_stages=[Tagger()]))
    assert report.accepted("alice@example.org")
    (stored,) = await _messages(store, "alice@example.org", "INBOX")
    assert stored.startswith(b"Return-Path: <a@remote.example>\r\nX-Spam-Score: 1.5  X-Injected: no\r\nFrom:")


class Editor:
    """An account stage that edits the account's copy from what it sees, as editheader does."""

    name = "editor"

    async def decide(self, message: IncomingMessage, account: AccountDisposition) -> None:
        assert message.header("x-spam-score") == ["1.5  X-Injected: no"]
        account.set_content(b"X-Edited: yes\r\n" + message.raw)


async def test_account_stages_see_and_keep_the_fields_message_stages_added(env) -> None:
    store, directory = env
    pipeline = FilterPipeline(message_stages=[Tagger()], account_stages=[Editor()])
    report = await deliver_message(store, directory, Envelope("a@remote.example", ("alice@example.org",)), RAW,
                                   filters=pipeline)
    assert report.all_delivered
    (stored,) = await _messages(store, "alice@example.org", "INBOX")
    assert stored == b"Return-Path: <a@remote.example>\r\nX-Edited: yes\r\nX-Spam-Score: 1.5  X-Injected: no\r\n" + RAW


async def test_fileinto_with_create_and_flags_and_per_account_content(env) -> None:
    store, directory = env

    def alice(account: AccountDisposition) -> None:
        account.file_into("Lists/New", flags={"\\Seen", "$Work"}, create=True)
        account.file_into("INBOX")
        account.set_content(b"X-Edited: yes\r\n" + RAW)

    pipeline = FilterPipeline(account_stages=[PerAccount({"alice@example.org": alice})])
    report = await deliver_message(store, directory, Envelope("a@remote.example", ("alice@example.org", "bob@example.org")),
                                   RAW, filters=pipeline)
    assert report.all_delivered and len(report.delivered["alice@example.org"]) == 2
    (filed,) = await _messages(store, "alice@example.org", "Lists/New")
    assert filed == b"Return-Path: <a@remote.example>\r\nX-Edited: yes\r\n" + RAW
    assert await _flags(store, "alice@example.org", "Lists/New") == [frozenset({"\\Seen", "$Work"})]
    assert await _messages(store, "alice@example.org", "INBOX") == [filed]
    (bobs,) = await _messages(store, "bob@example.org", "INBOX")
    assert bobs == b"Return-Path: <a@remote.example>\r\n" + RAW  # bob's copy is not edited


async def test_fileinto_a_missing_mailbox_without_create_lands_in_inbox(env) -> None:
    store, directory = env
    pipeline = FilterPipeline(account_stages=[PerAccount({"alice@example.org": lambda a: a.file_into("Nowhere")})])
    report = await deliver_message(store, directory, Envelope("", ("alice@example.org",)), RAW, filters=pipeline)
    assert report.all_delivered
    assert len(await _messages(store, "alice@example.org", "INBOX")) == 1
    account = await store.get_account("alice@example.org")
    assert await store.get_mailbox(account.id, "Nowhere") is None


async def test_discard_is_accepted_logged_and_stores_nothing(env, caplog: pytest.LogCaptureFixture) -> None:
    store, directory = env
    pipeline = FilterPipeline(account_stages=[PerAccount({"alice@example.org": lambda a: a.discard("script 'main' line 3")})])
    with caplog.at_level("INFO", logger="postoffice.events"):
        report = await deliver_message(store, directory, Envelope("a@remote.example", ("alice@example.org",)), RAW,
                                       filters=pipeline)
    assert report.accepted("alice@example.org")
    assert report.filtered["alice@example.org"] == ["alice@example.org: discarded by script 'main' line 3"]
    assert await _messages(store, "alice@example.org", "INBOX") == []
    line = next(str(r.getMessage()) for r in caplog.records if "filter outcome" in r.getMessage())
    assert "account=alice@example.org" in line and "discard (script 'main' line 3)" in line


async def test_a_failing_stage_keeps_the_message(env) -> None:
    store, directory = env
    report = await deliver_message(store, directory, Envelope("", ("alice@example.org",)), RAW,
                                   filters=FilterPipeline(account_stages=[Broken()]))
    assert report.all_delivered
    assert len(await _messages(store, "alice@example.org", "INBOX")) == 1


async def test_redirect_queues_a_marked_copy_and_a_loop_is_kept(env) -> None:
    store, directory = env
    pipeline = FilterPipeline(account_stages=[PerAccount({"alice@example.org": lambda a: a.redirect("x@elsewhere.example")})])
    report = await deliver_message(store, directory, Envelope("a@remote.example", ("alice@example.org",)), RAW,
                                   filters=pipeline)
    assert report.accepted("alice@example.org") and report.filtered["alice@example.org"]
    assert await _messages(store, "alice@example.org", "INBOX") == []  # redirect cancels the keep
    (row,) = await store.list_queue()
    assert [r.address for r in row.envelope.recipients] == ["x@elsewhere.example"]
    assert row.envelope.sender == "a@remote.example"
    queued = await store.read_blob(row.blob)
    assert queued == b"X-Sieve-Redirected-From: alice@example.org\r\n" + RAW
    # The same message coming back is not redirected again: kept instead.
    report = await deliver_message(store, directory, Envelope("a@remote.example", ("alice@example.org",)), queued,
                                   filters=pipeline)
    assert report.all_delivered and len(await store.list_queue()) == 1
    assert len(await _messages(store, "alice@example.org", "INBOX")) == 1


async def test_reject_per_recipient_when_the_caller_can_and_a_notice_otherwise(env) -> None:
    store, directory = env
    pipeline = FilterPipeline(account_stages=[PerAccount({"alice@example.org": lambda a: a.reject("Not wanted\r\nhere")})])
    envelope = Envelope("a@remote.example", ("alice@example.org", "bob@example.org"))
    report = await deliver_message(store, directory, envelope, RAW, filters=pipeline, per_recipient=True)
    assert report.refused["alice@example.org"].text == "Not wanted here"
    assert report.accepted("bob@example.org") and await store.list_queue() == []
    # One reply for both (SMTP): bob accepts, so alice's rejection is a notice to the sender.
    report = await deliver_message(store, directory, envelope, RAW, filters=pipeline)
    assert not report.refused and report.accepted("alice@example.org") and report.accepted("bob@example.org")
    (notice,) = await store.list_queue()
    assert notice.envelope.sender == "" and [r.address for r in notice.envelope.recipients] == ["a@remote.example"]
    text = await store.read_blob(notice.blob)
    assert b"Disposition: automatic-action/MDN-sent-automatically; deleted" in text and b"Not wanted" in text
    # Every recipient rejecting: refused in the dialogue even over SMTP, nothing queued or stored.
    both = FilterPipeline(account_stages=[PerAccount({a: (lambda d: d.reject("No")) for a in envelope.recipients})])
    report = await deliver_message(store, directory, envelope, RAW, filters=both)
    assert set(report.refused) == set(envelope.recipients) and len(await store.list_queue()) == 1


async def test_replies_and_memory_are_written_with_the_delivery(env) -> None:
    store, directory = env

    def alice(account: AccountDisposition) -> None:
        account.reply(AutoReply("alice@example.org", "a@remote.example", b"Subject: away\r\n\r\nback soon\r\n"))
        account.remember.append(Remembered("vacation", "a@remote.example\0h", 4e9))

    pipeline = FilterPipeline(account_stages=[PerAccount({"alice@example.org": alice})])
    report = await deliver_message(store, directory, Envelope("a@remote.example", ("alice@example.org",)), RAW,
                                   filters=pipeline)
    assert report.all_delivered and len(await _messages(store, "alice@example.org", "INBOX")) == 1
    (reply,) = await store.list_queue()
    assert reply.envelope.sender == "alice@example.org"
    account = await store.get_account("alice@example.org")
    assert await store.remembered(account.id, "vacation", "a@remote.example\0h", 1e9)
    assert not await store.remembered(account.id, "vacation", "a@remote.example\0h", 5e9)  # expired then
    assert not await store.remembered(account.id, "vacation", "other", 1e9)
    assert await store.forget_expired(5e9) == 1


async def test_keep_in_moves_the_implicit_keep_for_later_stages(env) -> None:
    from postoffice.filtering.pipeline import Filing

    store, directory = env

    def junk(account: AccountDisposition) -> None:
        account.keep_in(Filing(special_use="\\Junk"))

    def flag(account: AccountDisposition) -> None:
        account.filings = [dataclasses.replace(f, flags=f.flags | {"$Checked"}) for f in account.filings]

    pipeline = FilterPipeline(account_stages=[PerAccount({"alice@example.org": junk}),
                                              PerAccount({"alice@example.org": flag})])
    report = await deliver_message(store, directory, Envelope("", ("alice@example.org",)), RAW, filters=pipeline)
    assert report.all_delivered
    assert await _flags(store, "alice@example.org", "Junk") == [frozenset({"$Checked"})]
    assert await _messages(store, "alice@example.org", "INBOX") == []


async def test_sieve_sees_and_edits_the_copy_an_earlier_account_stage_made(env) -> None:
    from postoffice.filtering.sieve_delivery import SieveStage

    store, directory = env
    alice = await store.get_account("alice@example.org")
    await store.put_sieve_script(alice.id, "main", 'require ["editheader", "imap4flags"];\r\n'
                                 'if header :is "X-Account-Score" "9" { addflag "$Scored"; }\r\n'
                                 'addheader "X-Sieved" "yes";\r\n')
    await store.activate_sieve_script(alice.id, "main")

    def own_copy(account: AccountDisposition) -> None:
        account.set_content(b"X-Account-Score: 9\r\n" + RAW)

    pipeline = FilterPipeline(account_stages=[PerAccount({"alice@example.org": own_copy}), SieveStage(store)])
    report = await deliver_message(store, directory, Envelope("a@remote.example", ("alice@example.org",)), RAW,
                                   filters=pipeline)
    assert report.all_delivered
    (stored,) = await _messages(store, "alice@example.org", "INBOX")
    assert stored == b"Return-Path: <a@remote.example>\r\nX-Sieved: yes\r\nX-Account-Score: 9\r\n" + RAW
    assert await _flags(store, "alice@example.org", "INBOX") == [frozenset({"$Scored"})]
