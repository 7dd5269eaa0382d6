"""What the port-25 checks (smtp/inbound_checks.py) cost for the usual message, on a real
Services and the real loopback DNS (tests/dns_server.py, the zone and key of
test_mail_auth_e2e.py): the judgement is the same as end to end, and with the DNS answers cached
a message is judged without starting a single asyncio task (each task is a few event-loop turns:
at thousands of messages a second, they were a visible part of the checks' CPU; see
bench/smtp_ingest.py's "checks alone" line for the time itself). The header fields' folding,
rewritten for speed, is held to the plain word-by-word rule."""
from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Coroutine, Generator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_mail_auth_e2e import GOOD, dkim_key, message, signed  # noqa: F401 (dkim_key: a fixture)

from dns_server import DnsServers
from live_server import _initialised_copy
from postoffice.config import load_config
from postoffice.mailauth.dkim import THREAD_THRESHOLD
from postoffice.mailauth.dkim_crypto import SigningKey
from postoffice.services import Services, open_services
from postoffice.smtp.inbound_checks import _WORD, InboundChecks, _field

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


async def test_a_big_message_is_read_off_the_event_loop_and_judged_the_same(
        services: Services, dkim_key: SigningKey) -> None:  # noqa: F811
    body = b"A line of a long report, repeated.\r\n" * 9000  # ~300 KB: split and hashed in threads
    raw = signed(message("Ann <ann@good.sender.test>", "Report", body), dkim_key)
    assert len(raw) > THREAD_THRESHOLD
    checks = InboundChecks(services, GOOD)
    async with asyncio.timeout(TEST_SECONDS):
        await checks.at_connect()
        header = await judge(checks, "ann@good.sender.test", raw)
    assert "dkim=pass" in header and "dmarc=pass" in header


def fold_word_by_word(name: str, value: str, width: int = 78) -> bytes:
    """The folding rule stated plainly (the line grown one word at a time), for the test below."""
    lines: list[str] = []
    for part in value.split("\r\n\t"):
        line = "\t" if lines else f"{name}:"
        if len(line) + 1 + len(part) <= width:
            lines.append(line + part if line == "\t" else f"{line} {part}")
            continue
        for word in _WORD.findall(part):
            if len(line) + 1 + len(word) > width and line.strip() not in ("", f"{name}:"):
                lines.append(line)
                line = "\t" + word
            else:
                line += word if line == "\t" else " " + word
        lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "replace")


_PIECES = ["a", "bb", "c" * 15, "x" * 70, "y" * 90, " ", "  ", '"', '"q q"', "\\", "(c)", ";", "\r\n\t", "=", "\u00e9"]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["Authentication-Results", "Received-SPF"]), st.sampled_from([78, 20, 5]),
       st.lists(st.sampled_from(_PIECES), max_size=30))
def test_header_fields_fold_as_word_by_word(name: str, width: int, pieces: list[str]) -> None:
    value = "".join(pieces)
    assert _field(name, value, width) == fold_word_by_word(name, value, width)
