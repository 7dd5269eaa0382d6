"""Which Sieve runs the delivery makes on the event loop (sieve_delivery.SieveStage._run_inline)
and which go to a thread: only a compiled script that asks the store nothing, on a message up
to INLINE_BYTES, within INLINE_CPU_SECONDS; a longer run starts over in a thread and decides
the same. On a real store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postoffice.delivery import Envelope
from postoffice.directory import Directory
from postoffice.filtering.pipeline import AccountDisposition, Filing, IncomingMessage
from postoffice.filtering.sieve import compile_cached, compile_script
from postoffice.filtering.sieve_delivery import INLINE_BYTES, SieveStage
from postoffice.store import open_store
from postoffice.store.interface import MailStore

RAW = b"From: a@remote.example\r\nTo: alice@example.org\r\nSubject: weekly report\r\n\r\nbody\r\n"
FILE_WEEKLY = 'require "fileinto";\r\nif header :contains "subject" "weekly" { fileinto "Weekly"; }\r\n'


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MailStore]:
    store = open_store("sqlite", tmp_path / "s.sqlite3", tmp_path / "blobs")
    directory = Directory(store)
    await directory.add_domain("example.org")
    await directory.add_user("alice@example.org", "long enough pass")
    assert (await store.get_account("alice@example.org")).id == 1
    yield store
    await store.close()


def account() -> AccountDisposition:
    """Alice's disposition as delivery starts it: the implicit keep in INBOX."""
    return AccountDisposition(1, "alice@example.org", ("alice@example.org",), filings=[Filing()])


def incoming(raw: bytes = RAW) -> IncomingMessage:
    return IncomingMessage(Envelope("a@remote.example", ("alice@example.org",)), raw, "smtp")


def inline(stage: SieveStage, text: str, raw: bytes = RAW) -> bool:
    """Whether the stage runs `text` on the loop for `raw`."""
    return stage._run_inline(asyncio.get_running_loop(), incoming(raw), account(), ("main", text)) is not None


async def decided(stage: SieveStage, store: MailStore, text: str, raw: bytes = RAW) -> list[str]:
    await store.put_sieve_script(1, "main", text)
    await store.activate_sieve_script(1, "main")
    disposition = account()
    await stage.decide(incoming(raw), disposition)
    return [f.mailbox for f in disposition.filings]


async def test_a_compiled_self_contained_script_runs_on_the_loop(store: MailStore) -> None:
    stage = SieveStage(store)
    assert not inline(stage, FILE_WEEKLY)  # not compiled yet: compiling is for a thread
    assert await decided(stage, store, FILE_WEEKLY) == ["Weekly"]
    assert inline(stage, FILE_WEEKLY)
    assert await decided(stage, store, FILE_WEEKLY) == ["Weekly"]


@pytest.mark.parametrize("text", [
    'require ["fileinto", "mailbox"];\r\nif mailboxexists "Weekly" { fileinto "Weekly"; }\r\n',
    'require ["fileinto", "duplicate"];\r\nif duplicate { fileinto "Seen"; }\r\n',
    'require ["include"];\r\ninclude :personal :optional "other";\r\n',
])
async def test_scripts_that_ask_the_store_run_in_a_thread(store: MailStore, text: str) -> None:
    script = compile_cached(text, name="main")
    assert not script.self_contained
    assert not inline(SieveStage(store), text)


async def test_big_messages_and_global_scripts_run_in_a_thread(store: MailStore, tmp_path: Path) -> None:
    compile_cached(FILE_WEEKLY, name="main")
    big = RAW + b"x" * INLINE_BYTES
    assert not inline(SieveStage(store), FILE_WEEKLY, big)
    before = tmp_path / "before.sieve"
    before.write_text("keep;\r\n")
    assert not inline(SieveStage(store, before=before), FILE_WEEKLY)
    assert compile_script(FILE_WEEKLY).self_contained


async def test_a_run_over_the_loops_share_starts_over_in_a_thread(store: MailStore) -> None:
    """3,000 searches of a 60 KB body take more than 5 ms of CPU: the run on the loop stops and
    the thread's run, with the full bound, finds the last key near the end."""
    keys = ", ".join(f'"absent{n}"' for n in range(3000)) + ', "needle"'
    text = f'require ["fileinto", "body"];\r\nif body :contains [{keys}] {{ fileinto "Found"; }}\r\n'
    raw = RAW + b"word " * 12_000 + b"needle\r\n"
    assert len(raw) <= INLINE_BYTES
    compile_cached(text, name="main")
    stage = SieveStage(store)
    assert not inline(stage, text, raw)
    assert await decided(stage, store, text, raw) == ["Found"]


async def test_one_slow_match_is_bounded_on_the_loop_and_in_the_thread(store: MailStore) -> None:
    """A :matches key whose "?"-riddled stretch is checked in place at every hit costs (text x
    key) in one comparison: the CPU deadline is looked at inside it, so the run on the loop
    stops at its 5 ms and the thread's at its 1 s, which ends in the implicit keep."""
    text = 'require "fileinto";\r\nif header :matches "subject" "*' + "a?" * 4000 + 'b*" { fileinto "X"; }\r\n'
    raw = RAW.replace(b"weekly report", b"a" * 12_000)
    compile_cached(text, name="main")
    stage = SieveStage(store)
    assert not inline(stage, text, raw)
    await store.put_sieve_script(1, "main", text)
    await store.activate_sieve_script(1, "main")
    disposition = account()
    await stage.decide(incoming(raw), disposition)
    assert [f.mailbox for f in disposition.filings] == ["INBOX"]
    assert any("CPU time limit" in line for line in disposition.outcome), disposition.outcome
