"""Nothing accepted is lost to the store's own clean-up: a new or empty store beside message
files is refused, a store failing its integrity check removes nothing, and every removal goes
to a trash kept for a grace period. The store is opened as `serve` opens it at start-up."""
from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from test_store_contract import inbox

from postoffice.app import log_garbage_collected
from postoffice.store.interface import StoreError, StoreMismatch
from postoffice.store.sqlite.store import SqliteStore
from store_kit import new_account, new_message

TWO_HOURS_AGO = time.time() - 7200


def blob_files(blob_root: Path) -> set[str]:
    """Every blob file's name, wherever it is under `blob_root` (in place or in the trash)."""
    return {p.name for p in blob_root.rglob("*") if p.is_file() and p.parent.name != "tmp"}


def age(blob_root: Path, when: float = TWO_HOURS_AGO) -> None:
    """Make every file old enough for the orphan sweep (which spares files under an hour old)."""
    for p in blob_root.rglob("*"):
        if p.is_file():
            os.utime(p, (when, when))


async def store_with_mail(db: Path, blobs: Path, count: int) -> SqliteStore:
    store = SqliteStore(db, blobs)
    account = await new_account(store)
    box = await inbox(store, account.id)
    for n in range(count):  # one commit each, as deliveries are
        await store.append_messages(box.id, [await new_message(store, n)])
    return store


async def test_a_new_store_beside_message_files_is_refused(tmp_path: Path) -> None:
    """`[store] path = "store.sqlite"` for store.sqlite3: the issue's typo."""
    await (await store_with_mail(tmp_path / "store.sqlite3", tmp_path / "blobs", 5)).close()
    before = blob_files(tmp_path / "blobs")
    age(tmp_path / "blobs")
    with pytest.raises(StoreMismatch, match=r"store\.sqlite\b.*\[store\] path"):
        SqliteStore(tmp_path / "store.sqlite", tmp_path / "blobs")
    assert not (tmp_path / "store.sqlite").exists()  # nothing created either
    assert blob_files(tmp_path / "blobs") == before and len(before) == 5
    # The right path still opens, with all its mail.
    store = SqliteStore(tmp_path / "store.sqlite3", tmp_path / "blobs")
    assert (await store.collect_garbage()).orphans == 0
    await store.close()


async def test_an_empty_store_beside_message_files_is_refused(tmp_path: Path) -> None:
    """An admin command run once with the typo made the wrong file; serve must still refuse."""
    await (await store_with_mail(tmp_path / "store.sqlite3", tmp_path / "blobs", 3)).close()
    await SqliteStore(tmp_path / "typo.sqlite", tmp_path / "other-blobs").close()  # an empty store
    with pytest.raises(StoreMismatch, match="holds no messages"):
        SqliteStore(tmp_path / "typo.sqlite", tmp_path / "blobs")
    assert len(blob_files(tmp_path / "blobs")) == 3


async def test_a_truncated_wal_loses_no_message_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The issue's second case: the WAL holding the last deliveries is cut short, so the store
    forgets them; start-up maintenance must keep their files (in the trash) and say so."""
    live, copy = tmp_path / "live", tmp_path / "copy"
    live.mkdir()
    store = await store_with_mail(live / "store.sqlite3", live / "blobs", 40)
    try:  # copied while the WAL holds the deliveries (a crash, a careless backup)
        copy.mkdir()
        for name in ("store.sqlite3", "store.sqlite3-wal"):
            shutil.copyfile(live / name, copy / name)
        shutil.copytree(live / "blobs", copy / "blobs")
    finally:
        await store.close()
    wal = copy / "store.sqlite3-wal"
    os.truncate(wal, wal.stat().st_size // 2)
    before = blob_files(copy / "blobs")
    age(copy / "blobs")

    store = SqliteStore(copy / "store.sqlite3", copy / "blobs")
    try:
        account = await store.get_account("user@example.test")
        kept = len(await store.list_messages((await inbox(store, account.id)).id)) if account else 0
        assert kept < 40, "the WAL was not cut where it holds deliveries: the test means nothing"
        with caplog.at_level(logging.WARNING):
            done = await store.collect_garbage()
            log_garbage_collected(done, 7)
    finally:
        await store.close()
    assert blob_files(copy / "blobs") == before  # every file still there, in place or in the trash
    assert done.orphans == 40 - kept
    assert {p.name for p in (copy / "blobs" / ".trash").iterdir()} <= before
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"{40 - kept} message file(s)" in w and ".trash" in w for w in warnings), warnings


def corrupt_index(db: Path, index: str) -> None:
    """Overwrite the root page of `index` with garbage: the tables stay readable, the index
    (and so `PRAGMA integrity_check`) is damaged."""
    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)).fetchone()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\x0d\xff" * (page_size // 2))


async def test_a_store_failing_its_integrity_check_removes_nothing(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    db, blobs = tmp_path / "store.sqlite3", tmp_path / "blobs"
    store = await store_with_mail(db, blobs, 10)
    orphan = store.blobs.write(b"Subject: no row knows me\r\n\r\n")
    await store.close()
    corrupt_index(db, "messages_by_blob")
    age(blobs)
    before = blob_files(blobs)
    store = SqliteStore(db, blobs)
    try:
        with caplog.at_level(logging.ERROR):
            done = await store.collect_garbage()
            log_garbage_collected(done, 7)
    finally:
        await store.close()
    assert store.blobs.exists(orphan) and blob_files(blobs) == before
    assert not (blobs / ".trash").exists()
    assert done.skipped and "integrity_check" in done.skipped
    assert (done.orphans, done.unreferenced, done.purged) == (0, 0, 0)
    assert any("removed no file" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_removals_go_to_the_trash_and_are_purged_after_the_grace_period(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    store = SqliteStore(tmp_path / "store.sqlite3", blobs)  # the default grace period: 7 days
    try:
        account = await new_account(store)
        box = await inbox(store, account.id)
        (a, _) = await store.append_messages(box.id, [await new_message(store, 1), await new_message(store, 2)])
        shas = {r.blob for r in await store.list_messages(box.id)}
        (first,) = [r.blob for r in await store.list_messages(box.id) if r.uid == a.uid]
        # 1. The sweep after an expunge moves the file to the trash.
        await store.expunge(box.id, [a.uid])
        trash = blobs / ".trash"
        assert not store.blobs.exists(first) and (trash / first).is_file()
        # 2. Maintenance: an orphan (no row) goes to the trash too; a temporary file is deleted.
        orphan = store.blobs.write(b"Subject: interrupted delivery\r\n\r\n")
        (blobs / "tmp" / "left-by-a-crash").write_bytes(b"partial")
        age(blobs)
        os.utime(trash / first)  # trashed just now
        done = await store.collect_garbage()
        assert (done.orphans, done.temporary, done.purged) == (1, 1, 0)
        assert done.trash == str(trash)
        assert {p.name for p in trash.iterdir()} == {first, orphan}
        assert not (blobs / "tmp" / "left-by-a-crash").exists()
        # 3. After the grace period the trash is purged; what is in use is untouched.
        eight_days_ago = time.time() - 8 * 86400
        os.utime(trash / first, (eight_days_ago, eight_days_ago))
        done = await store.collect_garbage()
        assert done.purged == 1 and {p.name for p in trash.iterdir()} == {orphan}
        assert blob_files(blobs) - {orphan} == shas - {first}
        assert await store.read_blob(next(iter(shas - {first}))) == (await new_message(store, 2)).raw
    finally:
        await store.close()


async def test_no_grace_period_deletes_at_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.sqlite3", tmp_path / "blobs", trash_days=0)
    try:
        account = await new_account(store)
        box = await inbox(store, account.id)
        (a,) = await store.append_messages(box.id, [await new_message(store, 1)])
        await store.expunge(box.id, [a.uid])
        assert blob_files(tmp_path / "blobs") == set()
    finally:
        await store.close()


@pytest.mark.parametrize("which", ["blobs", "store"])
def test_missing_parents_of_configured_paths_are_not_created(tmp_path: Path, which: str) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    db = missing / "store.sqlite3" if which == "store" else tmp_path / "store.sqlite3"
    blobs = missing / "blobs" if which == "blobs" else tmp_path / "blobs"
    with pytest.raises(StoreError, match=f"because {missing} does not exist"):
        SqliteStore(db, blobs)
    assert not (tmp_path / "nonexistent").exists()


async def test_export_stops_at_a_truncated_file_and_names_it(tmp_path: Path) -> None:
    from postoffice.transfer.exporter import export_mailboxes
    from postoffice.transfer.source import TransferError

    store = await store_with_mail(tmp_path / "store.sqlite3", tmp_path / "blobs", 3)
    try:
        account = await store.get_account("user@example.test")
        assert account is not None
        record = (await store.list_messages((await inbox(store, account.id)).id))[1]
        path = store.blobs.path(record.blob)
        path.write_bytes(path.read_bytes()[:10])
        with pytest.raises(TransferError, match=rf"{record.blob} is damaged: 10 octets .*INBOX, uid {record.uid}"):
            await export_mailboxes(store, account, "mbox", tmp_path / "out")
    finally:
        await store.close()


@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
async def test_export_goes_on_past_a_message_expunged_while_it_runs(tmp_path: Path, fmt: str) -> None:
    """`export` runs beside `serve`: a user deleting a message after the export listed it (its
    file moved to the trash at once) is no damage. Old code stopped the whole export with
    "The message file ... is missing"; a file missing for a message still there still stops it."""
    from postoffice.transfer.exporter import export_mailboxes
    from postoffice.transfer.source import TransferError

    store = await store_with_mail(tmp_path / "store.sqlite3", tmp_path / "blobs", 3)
    try:
        account = await store.get_account("user@example.test")
        assert account is not None
        box = await inbox(store, account.id)
        _, doomed, last = await store.list_messages(box.id)
        read_blob = store.read_blob

        async def read_while_a_client_expunges(sha256: str, size: int | None = None) -> bytes:
            if sha256 == doomed.blob:
                await store.expunge(box.id, [doomed.uid])
            return await read_blob(sha256, size)

        store.read_blob = read_while_a_client_expunges  # type: ignore[method-assign]
        stats = await export_mailboxes(store, account, fmt, tmp_path / "out")
        assert stats.written["INBOX"] == 2
        assert not store.blobs.exists(doomed.blob)  # it really was gone when read

        store.blobs.remove(last.blob)  # still in the mailbox: that is damage
        with pytest.raises(TransferError, match=rf"{last.blob} is missing.*INBOX, uid {last.uid}"):
            await export_mailboxes(store, account, fmt, tmp_path / "again")
    finally:
        await store.close()


async def test_a_store_with_mail_beside_an_empty_blob_directory_is_refused(tmp_path: Path) -> None:
    """The reverse typo (`[store] blobs = "blob"`): every message would be unreadable."""
    await (await store_with_mail(tmp_path / "store.sqlite3", tmp_path / "blobs", 2)).close()
    with pytest.raises(StoreMismatch, match=r"holds no message files.*\[store\] blobs"):
        SqliteStore(tmp_path / "store.sqlite3", tmp_path / "blob")
    assert not (tmp_path / "blob").exists()  # the directory it would have made is gone again


@pytest.mark.parametrize("history", ["first delivery", "every message deleted"])
async def test_a_set_up_store_without_mail_opens_beside_a_file_of_an_interrupted_delivery(
        tmp_path: Path, history: str) -> None:
    """A fresh install whose first delivery was cut off between its file and its commit (a
    crash, a full disk at COMMIT), or a store whose users deleted everything (POP3) when that
    happened: no typo, so it must open (old code refused it until an admin moved the file);
    and while it holds no mail, maintenance moves no file (it cannot tell mail from leftovers)."""
    db, blobs = tmp_path / "store.sqlite3", tmp_path / "blobs"
    store = SqliteStore(db, blobs)
    account = await new_account(store)
    box = await inbox(store, account.id)
    if history == "every message deleted":
        (a,) = await store.append_messages(box.id, [await new_message(store, 1)])
        await store.expunge(box.id, [a.uid])
    leftover = store.blobs.write(b"Subject: delivery cut off before its commit\r\n\r\n")
    await store.close()
    age(blobs)

    store = SqliteStore(db, blobs)
    try:
        done = await store.collect_garbage()
        assert done.orphans == 0 and store.blobs.exists(leftover)
        (b,) = await store.append_messages(box.id, [await new_message(store, 2)])
        assert b.uid is not None
    finally:
        await store.close()


async def test_a_store_whose_last_removal_was_cut_off_opens(tmp_path: Path) -> None:
    """Every message expunged, and the removal moved the files to the trash but did not commit
    (a crash, a full disk): the rows left (refcount 0) are no mail, so this is no blob-directory
    typo; old code refused to open the store."""
    db, blobs = tmp_path / "store.sqlite3", tmp_path / "blobs"
    store = SqliteStore(db, blobs, keep_recently_expunged=True)  # the rows stay after the expunge
    account = await new_account(store)
    box = await inbox(store, account.id)
    (a,) = await store.append_messages(box.id, [await new_message(store, 1)])
    (record,) = await store.list_messages(box.id)
    await store.expunge(box.id, [a.uid])
    assert store.blobs.exists(record.blob)
    assert store.blobs.remove(record.blob)  # what the removal did before its commit failed
    await store.close()

    store = SqliteStore(db, blobs)
    try:
        assert (blobs / ".trash" / record.blob).is_file()
        (b,) = await store.append_messages(box.id, [await new_message(store, 1)])  # the same message again
        (again,) = await store.get_messages(box.id, [b.uid])
        assert await store.read_blob(again.blob, again.size) == (await new_message(store, 1)).raw
    finally:
        await store.close()
