"""What the port-25 checks (smtp/inbound_checks.py) cost for the usual message, on a real
Services and the real loopback DNS (tests/dns_server.py, the zone and key of
test_mail_auth_e2e.py): the judgement is the same as end to end, and with the DNS answers cached
a message is judged without starting a single asyncio task (each task is a few event-loop turns:
at thousands of messages a second, they were a visible part of the checks' CPU; see
bench/smtp_ingest.py's "checks alone" line for the time itself)."""
from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Coroutine, Generator
from pathlib import Path
from typing import Any

import pytest
from test_mail_auth_e2e import GOOD, dkim_key, message, signed  # noqa: F401 (dkim_key: a fixture)

from dns_server import DnsServers
from live_server import _initialised_copy
from postoffice.config import load_config
from postoffice.mailauth.dkim_crypto import SigningKey
from postoffice.services import Services, open_services
from postoffice.smtp.inbound_checks import InboundChecks

HELO = "host.example.test"
TEST_SECONDS = 30


@pytest.fixture
def data(tmp_path: Path) -> Path:
    _initialised_copy(tmp_path / "data")  # not in a coroutine: it may run `init`, which runs a loop
    return tmp_path / "data"


@pytest.fixture
async def services(data: Path, dns_server: DnsServers) -> AsyncIterator[Services]:
    config = load_config(data)
    config = dataclasses.replace(config, dns=dataclasses.replace(
        config.dns, nameservers=(dns_server.address,), timeout=2.0, blocklists=("dnsbl.test",)))
    async with open_services(config) as opened:
        yield opened


def count_tasks(loop: asyncio.AbstractEventLoop) -> list[str]:
    """The names of the coroutines of every task the loop starts from now on."""
    started: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop,
                coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any]) -> asyncio.Task[Any]:
        started.append(getattr(coro, "__qualname__", repr(coro)))
        return asyncio.Task(coro, loop=loop)

    loop.set_task_factory(factory)  # type: ignore[arg-type]
    return started


async def judge(checks: InboundChecks, sender: str, raw: bytes) -> str:
    mail = await checks.at_mail(HELO, sender)
    judged = await checks.after_data(HELO, sender, mail, raw)
    return judged.results.header_value()


async def test_a_usual_signed_message_is_judged_without_starting_a_task(
        services: Services, dkim_key: SigningKey) -> None:  # noqa: F811
    checks = InboundChecks(services, GOOD)
    async with asyncio.timeout(TEST_SECONDS):
        assert await checks.at_connect() is None
        first = await judge(checks, "ann@good.sender.test", signed(message("Ann <ann@good.sender.test>"), dkim_key))
        assert "dkim=pass" in first and "dmarc=pass" in first and "iprev=pass" in first
        started = count_tasks(asyncio.get_running_loop())
        try:
            header = await judge(checks, "bob@good.sender.test",
                                 signed(message("Bob <bob@good.sender.test>", "Second"), dkim_key))
        finally:
            asyncio.get_running_loop().set_task_factory(None)
    for result in ("spf=pass", "dkim=pass", "dmarc=pass", "arc=none", "iprev=pass"):
        assert result in header
    assert started == []
