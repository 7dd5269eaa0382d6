"""Interop with mbsync (isync, Debian): a two-way sync between a local Maildir and postoffice, then
a second sync that has nothing to do."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer
from postoffice.store.interface import FlagMode

pytestmark = pytest.mark.peer("mbsync", package="isync")
USER = "sync@example.test"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user(USER)
    yield live
    live.stop()


def configure(tmp_path: Path, port: int) -> tuple[Path, Path]:
    maildir = tmp_path / "Mail"
    maildir.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(f"""
IMAPAccount po
Host 127.0.0.1
Port {port}
User {USER}
Pass "{PASSWORD}"
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account po

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel mail
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
Expunge Both
SyncState *
Sync All
""")
    return config, maildir


def mbsync(config: Path) -> str:
    result = subprocess.run(["mbsync", "-c", str(config), "-a"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def local_files(maildir: Path, folder: str = "INBOX") -> list[Path]:
    return sorted(p for sub in ("cur", "new") for p in (maildir / folder / sub).glob("*") if p.is_file())


def append(server: LiveServer, n: int) -> None:
    services = server.services
    assert services is not None

    async def go() -> None:
        from postoffice.store.interface import NewMessage

        account = await services.directory.get_user(USER)
        assert account is not None
        box = await services.store.get_mailbox(account.id, "INBOX")
        assert box is not None
        for i in range(n):
            raw = f"From: a@remote.example\r\nSubject: server {i}\r\nMessage-ID: <s{i}@x>\r\n\r\nbody {i}\r\n".encode()
            await services.store.append_messages(box.id, [NewMessage(await services.store.put_blob(raw), raw=raw)])

    server.call(go())


def test_two_way_sync_then_nothing_to_do(server: LiveServer, tmp_path: Path) -> None:
    append(server, 3)
    config, maildir = configure(tmp_path, server.ports["imap"])
    mbsync(config)
    assert len(local_files(maildir)) == 3
    # A message written locally goes up; a flag set locally is stored on the server.
    (maildir / "INBOX" / "new" / "1700000000.local.host").write_bytes(
        b"From: me@example.test\nSubject: from the laptop\nMessage-ID: <laptop@x>\n\nwritten offline\n"
    )
    first = local_files(maildir)[0]
    first.rename(first.with_name(first.name.split(":2,")[0] + ":2,FS"))
    mbsync(config)
    stored = server.messages(USER)
    assert len(stored) == 4 and any(b"written offline" in m for m in stored)
    services = server.services
    assert services is not None

    async def flags() -> list[frozenset[str]]:
        account = await services.directory.get_user(USER)
        box = await services.store.get_mailbox(account.id, "INBOX")  # type: ignore[union-attr]
        return [m.flags for m in await services.store.list_messages(box.id)]  # type: ignore[union-attr]

    assert sum("\\Flagged" in f and "\\Seen" in f for f in server.call(flags())) == 1
    # A server-side change comes down.
    async def flag_all() -> None:
        account = await services.directory.get_user(USER)
        box = await services.store.get_mailbox(account.id, "INBOX")  # type: ignore[union-attr]
        uids = [m.uid for m in await services.store.list_messages(box.id)]  # type: ignore[union-attr]
        await services.store.store_flags(box.id, uids, FlagMode.ADD, ["\\Answered"])  # type: ignore[union-attr]

    server.call(flag_all())
    mbsync(config)
    assert all(":2," in p.name and "R" in p.name.split(":2,")[1] for p in local_files(maildir))
    # The second sync of an unchanged pair changes nothing on either side.
    before_local = sorted(p.name for p in local_files(maildir))
    before_server = server.call(flags())
    mbsync(config)
    assert sorted(p.name for p in local_files(maildir)) == before_local
    assert server.call(flags()) == before_server and len(server.messages(USER)) == 4
