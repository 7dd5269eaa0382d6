"""A real postoffice server for tests: an initialised data directory, real listeners on
127.0.0.1:0, running in a background thread with its own event loop, so blocking stdlib clients
(smtplib, imaplib, poplib) and external programs can talk to it from the test."""
from __future__ import annotations

import asyncio
import dataclasses
import shutil
import struct
import tempfile
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from dns_server import BrokenDnsServer
from postoffice.app import LISTENER_FACTORIES, _note_bound_port
from postoffice.config import ListenAddress, load_config
from postoffice.filtering.junk_learning import JunkTrainer
from postoffice.net.running import RunningListener
from postoffice.services import Services, open_services
from postoffice.setup.initialise import initialise
from postoffice.store.index_pacing import IndexPacing, index_in_background

T = TypeVar("T")
DOMAIN = "example.test"
PASSWORD = "correct horse battery staple"
_template: Path | None = None  # one initialised data directory per test process, copied per server
_password_hash: str | None = None
_quiet_dns: BrokenDnsServer | None = None  # one per test process, for every LiveServer


def nxdomain(query: bytes, transport: str) -> bytes | None:
    """The answer to any DNS question: NXDOMAIN, what a name under .test gets on the Internet."""
    if len(query) < 12:
        return None
    end = 12
    while end < len(query) and query[end]:
        end += query[end] + 1
    flags = 0x8000 | 0x0080 | (struct.unpack("!H", query[2:4])[0] & 0x0100) | 3  # QR RA (RD) NXDOMAIN
    reply = query[:2] + struct.pack("!HHHHH", flags, 1, 0, 0, 0) + query[12:end + 5]
    return struct.pack("!H", len(reply)) + reply if transport == "tcp" else reply


def quiet_dns() -> ListenAddress:
    """`[dns] nameservers` for servers of tests that are not about mail authentication: port 25
    checks every message (SPF, DKIM, DMARC, iprev), and the machine's resolver may be far away
    or absent; every name is NXDOMAIN here, at once (tests/dns_server.py serves real zones)."""
    global _quiet_dns
    if _quiet_dns is None:
        _quiet_dns = BrokenDnsServer(nxdomain).__enter__()
    return _quiet_dns.address


def _initialised_copy(data_dir: Path) -> None:
    global _template
    if _template is None:
        _template = Path(tempfile.mkdtemp(prefix="postoffice-template-")) / "data"
        initialise(_template, "mail.example.test", DOMAIN)
    shutil.copytree(_template, data_dir)


def _hash_of_password() -> str:
    global _password_hash
    if _password_hash is None:
        from postoffice.directory import hash_password

        _password_hash = hash_password(PASSWORD)
    return _password_hash


class LiveServer:
    def __init__(self, data_dir: Path, protocols: list[str], **overrides: dict[str, Any]) -> None:
        """`overrides` replace config values per section, e.g. limits={"max_message_size": 4096}.
        Without a `dns` override, DNS answers NXDOMAIN to everything (`quiet_dns`)."""
        self.data_dir = data_dir
        self.protocols = protocols
        self.overrides = {"dns": {"nameservers": (quiet_dns(),)}} | overrides
        self.ports: dict[str, int] = {}
        self.services: Services | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._listeners: list[RunningListener] = []
        self._stop: asyncio.Event | None = None

    def start(self) -> LiveServer:
        if not (self.data_dir / "postoffice.toml").exists():
            _initialised_copy(self.data_dir)
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        config = load_config(self.data_dir)
        for section, values in self.overrides.items():
            config = dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **values)})
        self._context = open_services(config)
        self.services = await self._context.__aenter__()
        self.services.store.watch_external_changes()  # type: ignore[attr-defined]  # as `serve` does
        # The full-text indexer runs as in `serve`, so searches meet indexed and unindexed mail.
        self._indexer = asyncio.get_running_loop().create_task(
            index_in_background(self.services.store, IndexPacing(idle=0.05)))
        # Junk learning too, so moves into and out of Junk train the classifier as in `serve`.
        self._junk_trainer = asyncio.get_running_loop().create_task(
            JunkTrainer(self.services.store, config.junk).run(idle=0.2))
        for protocol in self.protocols:
            listener = await LISTENER_FACTORIES[protocol](self.services, ListenAddress("127.0.0.1", 0))
            self._listeners.append(listener)
            _note_bound_port(self.services, listener)  # as `serve` does, for the autoconfig answers
            self.ports[protocol] = int(listener.address.rsplit(":", 1)[1])

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run a coroutine on the server's loop (to use the store or directory) and wait for it."""
        return self.submit(coro).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Start a coroutine on the server's loop without waiting for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def add_user(self, address: str, password: str = PASSWORD, quota: int | None = None) -> None:
        """Add a user; the default password reuses one argon2 hash to keep tests fast."""
        assert self.services is not None
        if password == PASSWORD:
            self.call(self.services.store.add_account(address, _hash_of_password(), quota or 0))
        else:
            self.call(self.services.directory.add_user(address, password, quota))

    def messages(self, address: str, mailbox: str = "INBOX") -> list[bytes]:
        """Every message in a user's mailbox, oldest first, as stored."""
        assert self.services is not None
        services = self.services

        async def read() -> list[bytes]:
            account = await services.directory.get_user(address)
            assert account is not None, address
            box = await services.store.get_mailbox(account.id, mailbox)
            assert box is not None
            return [await services.store.read_blob(m.blob) for m in await services.store.list_messages(box.id)]

        return self.call(read())

    def stop(self) -> None:
        async def stop() -> None:
            self._indexer.cancel()
            self._junk_trainer.cancel()
            for listener in reversed(self._listeners):
                await listener.close()
            await self._context.__aexit__(None, None, None)

        try:
            self.call(stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
