"""snapshot_push: one store change served to many idling sessions, in process, with a real store
and the sessions' sockets replaced by buffers. The states a socket test cannot arrange on cue:
sessions at different modseqs at the moment of a push, a session busy catching up on its own,
a client that stopped reading, a snapshot out of sync."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import ExitStack
from types import SimpleNamespace
from typing import Any

from postoffice.imap import snapshot_push
from postoffice.imap.proto.parser import ImapServerParser
from postoffice.imap.session import ImapSession, State
from postoffice.imap.snapshot import MailboxSnapshot
from postoffice.store.interface import FlagMode, MailStore, NewMessage


class Wire:
    """Stands in for a connection's StreamWriter and its transport."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.transport = self
        self.unsent = 0  # what get_write_buffer_size reports

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.unsent


async def append(store: MailStore, box: int, n: int = 1) -> list[int]:
    messages = []
    for i in range(n):
        raw = f"Subject: m{i}\r\nMessage-ID: <{i}.{id(messages)}@x>\r\n\r\nbody {i}\r\n".encode()
        messages.append(NewMessage(await store.put_blob(raw), raw=raw))
    return [r.uid for r in await store.append_messages(box, messages) if r.uid is not None]


async def session(store: MailStore, box: int, *enabled: str) -> tuple[ImapSession, Wire]:
    """A selected session whose client reads from a Wire (IMAP4rev2 unless told otherwise)."""
    wire = Wire()
    conn: Any = SimpleNamespace(id="test", writer=wire, bytes_out=0)
    services: Any = SimpleNamespace(store=store)
    result = ImapSession(conn, services, ImapServerParser(max_literal=65536), state=State.SELECTED,
                          enabled=set(enabled or ["IMAP4REV2"]))
    result.snapshot = await MailboxSnapshot.open(store, box, readonly=False, claim_recent=not result.rev2)
    return result, wire


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.005)


async def test_sessions_at_different_states_each_get_their_own_numbers(env, monkeypatch) -> None:
    store, box = env
    monkeypatch.setattr(snapshot_push, "SLICE", 1)  # a yield after every session
    await append(store, box, 2)
    behind = [await session(store, box) for _ in range(3)]  # know uids 1:2
    await append(store, box)
    current = [await session(store, box) for _ in range(3)]  # know uids 1:3
    qresync, qresync_wire = await session(store, box, "IMAP4REV2", "QRESYNC", "CONDSTORE")
    everyone = [*behind, *current, (qresync, qresync_wire)]
    with ExitStack() as stack:
        for s, _ in everyone:
            stack.enter_context(snapshot_push.idling(s))
        await store.expunge(box, [1])
        await until(lambda: all(wire.data for _, wire in everyone))
        [uid4] = await append(store, box)
        await until(lambda: all(b"* 3 EXISTS" in wire.data for _, wire in everyone))
        await store.store_flags(box, [uid4], FlagMode.ADD, ["\\Flagged"])
        await until(lambda: all(b"FETCH" in wire.data for _, wire in everyone))
    modseq = (await store.get_messages(box, [uid4]))[0].modseq
    for s, wire in behind:  # uid 3 arrives with the expunge's push: they read from before it
        assert bytes(wire.data) == (b"* 1 EXPUNGE\r\n* 2 EXISTS\r\n* 3 EXISTS\r\n"
                                    b"* 3 FETCH (UID 4 FLAGS (\\Flagged))\r\n"), wire.data
        assert s.snapshot is not None and s.snapshot.uids == [2, 3, 4]
    for s, wire in current:
        assert bytes(wire.data) == b"* 1 EXPUNGE\r\n* 3 EXISTS\r\n* 3 FETCH (UID 4 FLAGS (\\Flagged))\r\n", wire.data
        assert s.snapshot is not None and s.snapshot.uids == [2, 3, 4]
    assert bytes(qresync_wire.data) == (b"* VANISHED 1\r\n* 3 EXISTS\r\n"
                                        b"* 3 FETCH (UID 4 FLAGS (\\Flagged) MODSEQ (%d))\r\n" % modseq)


async def test_a_busy_session_is_left_alone_and_told_to_look_again(env) -> None:
    store, box = env
    await append(store, box)
    (busy, busy_wire), (other, other_wire) = await session(store, box), await session(store, box)
    with snapshot_push.idling(busy) as idler, snapshot_push.idling(other):
        idler.busy, idler.missed = True, False  # as while its own task refreshes
        await append(store, box)
        await until(lambda: bool(other_wire.data))
        assert idler.missed and not busy_wire.data
        assert busy.snapshot is not None and busy.snapshot.uids == [1]  # untouched meanwhile


async def test_a_client_that_does_not_read_is_woken_instead_of_buffered_for(env) -> None:
    store, box = env
    stalled, stalled_wire = await session(store, box)
    other, other_wire = await session(store, box)
    stalled_wire.unsent = snapshot_push.SEND_BUFFER_LIMIT + 1
    with snapshot_push.idling(stalled) as idler, snapshot_push.idling(other):
        idler.missed = False
        woken = idler.sleep()
        await append(store, box)
        await until(woken.done)
        assert idler.missed and not stalled_wire.data and other_wire.data
        assert stalled.snapshot is not None and stalled.snapshot.uids == []  # its own task catches up


async def test_a_snapshot_out_of_sync_is_woken_not_served(env) -> None:
    store, box = env
    uids = await append(store, box, 2)
    odd, odd_wire = await session(store, box)
    other, other_wire = await session(store, box)
    assert odd.snapshot is not None
    odd.snapshot.forget(await store.expunge(box, [uids[0]]))  # its own EXPUNGE, not yet refreshed
    with snapshot_push.idling(odd) as idler, snapshot_push.idling(other):
        idler.missed = False
        woken = idler.sleep()
        await append(store, box)
        await until(lambda: b"EXISTS" in other_wire.data)
        assert woken.done() and not odd_wire.data
    assert bytes(other_wire.data) == b"* 1 EXPUNGE\r\n* 2 EXISTS\r\n"


async def test_recent_goes_to_one_imap4rev1_session(env) -> None:
    store, box = env
    sessions = [await session(store, box, "IMAP4REV2"), await session(store, box, "CONDSTORE"),
                await session(store, box, "CONDSTORE")]
    with ExitStack() as stack:
        for s, _ in sessions:
            stack.enter_context(snapshot_push.idling(s))
        await append(store, box)
        await until(lambda: all(wire.data for _, wire in sessions))
    assert [bytes(wire.data) for _, wire in sessions] == [
        b"* 1 EXISTS\r\n", b"* 1 EXISTS\r\n* 1 RECENT\r\n", b"* 1 EXISTS\r\n* 0 RECENT\r\n"]


async def test_the_last_session_leaving_ends_the_subscription(env) -> None:
    store, box = env
    s, _ = await session(store, box)
    with snapshot_push.idling(s):
        assert store.changes._by_mailbox.get(box)
    assert not store.changes._by_mailbox.get(box)
