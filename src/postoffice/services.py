"""The long-lived objects every command and listener shares, built from a `Config`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from postoffice.config import Config
from postoffice.directory import Directory
from postoffice.store import open_store
from postoffice.store.interface import MailStore


@dataclass
class Services:
    config: Config
    store: MailStore
    directory: Directory


@asynccontextmanager
async def open_services(config: Config) -> AsyncIterator[Services]:
    store = open_store(
        config.store.backend, config.store.path, config.store.blobs, config.store.reader_threads
    )
    try:
        directory = Directory(
            store,
            recipient_delimiter=config.smtp.recipient_delimiter,
            default_quota=config.limits.default_quota,
        )
        yield Services(config, store, directory)
    finally:
        await store.close()
