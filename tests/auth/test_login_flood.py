"""A flood of wrong passwords must not keep real users out (issue 12).

A real server, 200 parallel IMAP LOGINs with wrong passwords from ten source addresses
(127.0.0.2 to 127.0.0.11; all of 127.0.0.0/8 reaches the loopback interface), and meanwhile
real users logging in from 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

VICTIM = "bob@example.test"
NEWCOMER = "carol@example.test"
ATTACKERS = [f"127.0.0.{n}" for n in range(2, 12)]
PER_ADDRESS = 20


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    # No login cache: every login below costs a real password check, as one does once the
    # cache has expired; the known user must get a slot first, not wait behind the guesses.
    live = LiveServer(tmp_path / "data", ["imap"], auth={"login_cache_seconds": 0.0}).start()
    live.add_user(VICTIM)
    live.add_user(NEWCOMER)
    yield live
    live.stop()


async def login(port: int, user: str, password: str, source: str = "127.0.0.1") -> bytes:
    """One connection, one LOGIN; the tagged reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        await reader.readline()
        writer.write(f'a LOGIN {user} "{password}"\r\n'.encode())
        while not (line := await reader.readline()).startswith(b"a ") and line:
            pass
        return line
    finally:
        writer.close()


async def flood_and_log_in(port: int) -> tuple[float, float, list[bytes]]:
    guesses = [asyncio.ensure_future(login(port, VICTIM, f"guess {source} {n}", source))
               for source in ATTACKERS for n in range(PER_ADDRESS)]
    await asyncio.sleep(0.5)  # every guess is in by now
    start = time.monotonic()
    reply = await login(port, VICTIM, PASSWORD)
    known = time.monotonic() - start
    assert reply.startswith(b"a OK"), reply
    # Someone who has not logged in lately may be asked to come back, but gets in.
    start = time.monotonic()
    while not (reply := await login(port, NEWCOMER, PASSWORD)).startswith(b"a OK"):
        assert b"[UNAVAILABLE]" in reply, reply
        assert time.monotonic() - start < 60, "the newcomer never got in"
        await asyncio.sleep(0.5)
    fresh = time.monotonic() - start
    answers = await asyncio.wait_for(asyncio.gather(*guesses), 120)
    return known, fresh, answers


def test_known_user_logs_in_quickly_during_a_wrong_password_flood(server: LiveServer) -> None:
    port = server.ports["imap"]
    start = time.monotonic()
    assert asyncio.run(login(port, VICTIM, PASSWORD)).startswith(b"a OK")
    one_check = time.monotonic() - start  # argon2 is slow, and slower on a busy machine
    known, fresh, answers = asyncio.run(asyncio.wait_for(flood_and_log_in(port), 180))
    print(f"one check {one_check:.2f} s; during the flood: known user {known:.2f} s, newcomer {fresh:.2f} s")
    # First in line, the known user waits for the checks already running (two slots, slower
    # side by side) and then its own: a few checks' time, where behind the 200 guesses it
    # waited for a hundred.
    assert known < max(3.0, 6 * one_check), (known, one_check)
    assert all(a.startswith(b"a NO") for a in answers), {a for a in answers if not a.startswith(b"a NO")}


def test_an_attempt_during_the_delay_is_not_checked_nor_counted(tmp_path: Path) -> None:
    """While a wrong password's answer is held back, another attempt from the same address is
    not checked (not even a right one): it is told to try again when the delay is over, and it
    does not count as a failure, so people sharing an address do not lock each other out."""
    live = LiveServer(tmp_path / "data", ["imap"], auth={"failed_login_delay": 1.0}).start()
    try:
        live.add_user(VICTIM)
        live.add_user(NEWCOMER)
        port, shared = live.ports["imap"], "127.0.0.5"
        assert live.services is not None
        throttle = live.services.login_throttle

        async def scenario() -> tuple[bytes, bytes, float, bytes]:
            wrong = asyncio.ensure_future(login(port, VICTIM, "wrong password", shared))
            while throttle.failures(shared) == (0, 0):  # until it is checked, its answer held back
                await asyncio.sleep(0.05)
            start = time.monotonic()
            held = await login(port, NEWCOMER, PASSWORD, shared)
            waited = time.monotonic() - start
            assert throttle.failures(shared, NEWCOMER) == (1, 0)  # the wrong password's only
            return await wrong, held, waited, await login(port, NEWCOMER, PASSWORD, shared)

        wrong, held, waited, again = asyncio.run(asyncio.wait_for(scenario(), 60))
        assert wrong.startswith(b"a NO [AUTHENTICATIONFAILED]"), wrong
        assert held.startswith(b"a NO [UNAVAILABLE]"), held
        assert waited < 5, waited  # until the delay was over, not longer
        assert again.startswith(b"a OK"), again
    finally:
        live.stop()
