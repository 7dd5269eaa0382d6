"""Mailbox session locks (`MailStore.lock_mailbox`): exclusive across sessions and processes, freed
by release or by the holder's death, and a locked mailbox's expunged messages stay readable."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from postoffice.store.interface import MailStore
from postoffice.store.mailbox_locks import MailboxLocks
from postoffice.store.sqlite.store import SqliteStore
from store_kit import make_raw, new_account, new_message


async def inbox_id(store: MailStore, account_id: int) -> int:
    box = await store.get_mailbox(account_id, "INBOX")
    assert box is not None
    return box.id


def hold_in_another_process(directory: Path, mailbox_id: int) -> subprocess.Popen[str]:
    """A process that takes the lock, says so, and keeps it until killed or its stdin closes."""
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from postoffice.store.mailbox_locks import MailboxLocks
        lock = MailboxLocks(Path({str(directory)!r})).try_lock({mailbox_id})
        print("locked" if lock is not None else "busy", flush=True)
        sys.stdin.read()
    """)
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
    return process


async def test_lock_is_exclusive_until_released(store: MailStore) -> None:
    account = await new_account(store)
    box = await inbox_id(store, account.id)
    first = await store.lock_mailbox(box)
    assert first is not None
    assert await store.lock_mailbox(box) is None  # a second session of the same process
    other = await new_account(store, "other@example.test")
    assert await store.lock_mailbox(await inbox_id(store, other.id)) is not None  # per mailbox
    first.release()
    first.release()  # idempotent
    again = await store.lock_mailbox(box)
    assert again is not None
    again.release()


def test_lock_holds_across_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    locks = MailboxLocks(tmp_path / "locks")
    assert locks.locked([7, 8]) == set()
    holder = hold_in_another_process(tmp_path / "locks", 7)
    try:
        assert locks.try_lock(7) is None
        assert locks.locked([7, 8]) == {7}
        mine = locks.try_lock(8)
        assert mine is not None
        assert locks.locked([7, 8]) == {7, 8}  # this process's own lock counts too
        mine.release()
    finally:
        holder.kill()
        holder.wait()
    assert locks.locked([7]) == set()  # the kernel freed it with the process
    lock = locks.try_lock(7)
    assert lock is not None
    lock.release()


async def test_expunged_message_of_a_mailbox_locked_elsewhere_stays_readable(store: MailStore, tmp_path: Path) -> None:
    account = await new_account(store)
    box = await inbox_id(store, account.id)
    msg = await new_message(store, 1)
    (appended,) = await store.append_messages(box, [msg])
    # The POP3 session of another process (a `[pop3] processes` worker) locked the maildrop.
    holder = hold_in_another_process(store.locks.directory, box)  # type: ignore[attr-defined]
    try:
        await store.expunge(box, [appended.uid])
        await store.collect_garbage()
        assert await store.read_blob(msg.blob.sha256) == make_raw(1)
    finally:
        holder.kill()
        holder.wait()
    await store.collect_garbage()
    for _ in range(50):
        if not store.blobs.exists(msg.blob.sha256):  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.02)
    assert not store.blobs.exists(msg.blob.sha256)  # type: ignore[attr-defined]


async def test_a_worker_store_leaves_recent_expunges_to_the_main_process(tmp_path: Path) -> None:
    """A POP3 worker's store cannot see the IMAP sessions of the main process, so it never
    removes a blob expunged recently; the main process does, once none of its sessions holds
    the mailbox (its watcher of other processes' changes starts that sweep)."""
    main = SqliteStore(tmp_path / "s.sqlite3", tmp_path / "blobs")
    worker = SqliteStore(tmp_path / "s.sqlite3", tmp_path / "blobs", keep_recently_expunged=True)
    try:
        main.watch_external_changes(interval=0.01)
        account = await new_account(main)
        box = await inbox_id(main, account.id)
        first, second = await new_message(main, 1), await new_message(main, 2)
        appended = await main.append_messages(box, [first, second])
        main.hold_mailbox(box)  # an IMAP session in the main process has INBOX selected

        # POP3 DELE + QUIT in the worker, and an unrelated worker sweep afterwards.
        await worker.expunge(box, [appended[0].uid])
        await worker.collect_garbage()
        await asyncio.sleep(0.2)
        assert await main.read_blob(first.blob.sha256) == make_raw(1)  # IMAP may still FETCH it

        main.release_mailbox(box)
        await eventually(lambda: not main.blobs.exists(first.blob.sha256))

        # With no session holding it, the main process sweeps what a worker expunged at once.
        await worker.expunge(box, [appended[1].uid])
        assert main.blobs.exists(second.blob.sha256)
        await eventually(lambda: not main.blobs.exists(second.blob.sha256))
    finally:
        await worker.close()
        await main.close()


async def eventually(check: Callable[[], bool], seconds: float = 3.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check()
