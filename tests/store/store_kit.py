"""Building blocks for store tests: accounts and messages."""
from __future__ import annotations

from postoffice.store.interface import MailStore, NewMessage


def make_raw(n: int, body: str = "hello", subject: str | None = None) -> bytes:
    subject = subject if subject is not None else f"message {n}"
    return (
        f"From: Sender <sender@example.org>\r\nTo: user@example.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <m{n}@example.org>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n{body} {n}\r\n"
    ).encode()


async def new_account(store: MailStore, address: str = "user@example.test", quota: int = 0):
    domain = address.rpartition("@")[2]
    if await store.get_domain(domain) is None:
        await store.add_domain(domain)
    return await store.add_account(address, "hash", quota)


async def new_message(store: MailStore, n: int, **kw: str) -> NewMessage:
    raw = make_raw(n, **kw)
    return NewMessage(await store.put_blob(raw), raw=raw)
