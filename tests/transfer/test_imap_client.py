"""The transfer IMAP client against postoffice's own IMAP server, on real sockets."""

from __future__ import annotations

import asyncio
import imaplib
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer
from postoffice.transfer.imap_client import FetchedMessage, ImapClient, ImapCommandFailed

USER = "bob@example.test"


def insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test server's self-signed certificate
    return context


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap", "imaps"]).start()
    live.add_user(USER)
    try:
        yield live
    finally:
        live.stop()


def message(n: int) -> bytes:
    return (
        f"From: a{n}@example.org\r\nTo: {USER}\r\nSubject: test {n}\r\nMessage-ID: <m{n}@example.org>\r\n\r\n"
        f"body {n}\r\n" + "line\r\n" * n
    ).encode()


def populate(live: LiveServer, folders: dict[str, int]) -> None:
    imap = imaplib.IMAP4("127.0.0.1", live.ports["imap"])
    imap.login(USER, PASSWORD)
    base = datetime(2020, 1, 1, tzinfo=UTC)
    for folder, count in folders.items():
        if folder != "INBOX":
            imap._simple_command("CREATE", imap._quote(folder))  # type: ignore[attr-defined]
        for n in range(count):
            flags = "(\\Seen $Work)" if n % 2 else "()"
            date = imaplib.Time2Internaldate(base + timedelta(days=n))
            imap.append(imap._quote(folder), flags, date, message(n))  # type: ignore[attr-defined]
    imap.logout()


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def test_list_select_fetch_over_starttls(server: LiveServer) -> None:
    populate(server, {"INBOX": 3, "Entw&APw-rfe": 2})

    async def go() -> None:
        client = await ImapClient.connect(
            "127.0.0.1", server.ports["imap"], security="starttls", ssl_context=insecure()
        )
        await client.login(USER, PASSWORD)
        boxes = {b.name: b for b in await client.list_mailboxes()}
        assert "Entwürfe" in boxes and boxes["Entwürfe"].error is None
        assert boxes["Sent"].special_use == "\\Sent"
        selected = await client.select("INBOX")
        assert selected.uidvalidity and selected.exists == 3
        uids = await client.uid_search()
        got = [m async for m in client.uid_fetch(uids, batch=1, in_flight=3)]
        assert all(isinstance(m, FetchedMessage) for m in got)
        fetched = {m.uid: m for m in got if isinstance(m, FetchedMessage)}
        assert sorted(fetched) == uids
        first, second = fetched[uids[0]], fetched[uids[1]]
        assert first.raw() == message(0) and first.flags == frozenset()
        assert second.flags == {"\\Seen", "$Work"}
        assert second.internal_date == datetime(2020, 1, 2, tzinfo=UTC)
        assert second.size == len(message(1))
        await client.logout()

    run(go())


def test_append_with_date_and_flags_then_compressed_fetch(server: LiveServer) -> None:
    async def go() -> None:
        client = await ImapClient.connect(
            "127.0.0.1", server.ports["imaps"], security="tls", ssl_context=insecure()
        )
        await client.login_plain(USER, PASSWORD)
        assert await client.compress()
        when = datetime(2019, 5, 6, 7, 8, 9, tzinfo=UTC)
        await client.create("Archive/2019")
        uid = await client.append("Archive/2019", message(7), flags={"\\Flagged"}, internal_date=when)
        big = message(1) + b"x" * 300_000 + b"\r\n"
        await client.append("Archive/2019", big)
        with pytest.raises(ImapCommandFailed):
            await client.append("Nowhere", message(1))
        await client.select("Archive/2019")
        got = [m async for m in client.uid_fetch(await client.uid_search())]
        assert [m.raw() for m in got if isinstance(m, FetchedMessage)] == [message(7), big]
        first = got[0]
        assert isinstance(first, FetchedMessage)
        assert uid in (None, first.uid)
        assert first.internal_date == when and first.flags == {"\\Flagged"}
        await client.logout()

    run(go())
