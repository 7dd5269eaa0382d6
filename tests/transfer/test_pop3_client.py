"""The transfer POP3 client against postoffice's own POP3 server: STLS, CAPA, login, UIDL, LIST,
TOP, pipelined RETR with dot-unstuffing, DELE at QUIT, -ERR for one message."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from fetch_kit import fill_store

from live_server import PASSWORD, LiveServer
from postoffice.transfer.pop3_client import Pop3Client, Pop3Error

USER = "bob@example.test"


def insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test server's self-signed certificate
    return context


def deliver(live: LiveServer, raw: bytes) -> None:
    from postoffice.transfer.importer import Importer
    from postoffice.transfer.source import SourceMessage

    assert live.services is not None
    services = live.services

    async def put() -> None:
        account = await services.directory.get_user(USER)
        assert account is not None
        await Importer(services.store, account, workers=1).run([SourceMessage(raw, frozenset(), None, "INBOX", "x")])

    live.call(put())


def test_stls_uidl_top_pipelined_retr_and_dele(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", ["pop3"]).start()
    try:
        live.add_user(USER)
        fill_store(live, USER, "INBOX", 11)
        dotted = b"Subject: dots\r\n\r\n.one dot\r\n..two dots\r\n.\r\nend\r\n"
        deliver(live, dotted)
        stored = live.messages(USER)
        assert dotted in stored

        async def go() -> None:
            client = await Pop3Client.connect("127.0.0.1", live.ports["pop3"], security="starttls",
                                              ssl_context=insecure(), timeout=30)
            await client.login(USER, PASSWORD)
            assert "PIPELINING" in client.capabilities and "UIDL" in client.capabilities
            ids = await client.uidl()
            sizes = await client.list()
            assert sorted(ids) == sorted(sizes) == list(range(1, 13))
            assert (await client.top(1, 0)).endswith(b"\r\n\r\n") or b"Subject: INBOX #0" in await client.top(1, 0)
            got = [item async for item in client.retrieve([*range(1, 13), 99])]
            assert [n for n, _ in got] == [*range(1, 13), 99]
            assert [raw for _, raw in got[:-1]] == stored
            assert isinstance(got[-1][1], Pop3Error)  # no message 99: -ERR for it alone
            await client.delete([1, 2])
            await client.quit()

        asyncio.run(asyncio.wait_for(go(), 60))
        assert live.messages(USER) == stored[2:]
    finally:
        live.stop()
