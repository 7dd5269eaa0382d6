"""IDLE push fan-out (imap/snapshot_push.py) over real sockets: many sessions of every kind idle
on one mailbox while others append, change flags and expunge, and each must see exactly its own
untagged responses (RFC 2177; RFC 3501 §7.3.2 \\Recent; RFC 7162 CONDSTORE and QRESYNC VANISHED;
RFC 5465 NOTIFY; RFC 4978 COMPRESS; RFC 5267 CONTEXT=SEARCH; RFC 4314 shared mailboxes with
per-user \\Seen)."""
from __future__ import annotations

import re
import socket
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer
from postoffice.imap.proto.sequence_set import compact_set
from postoffice.imap.proto.values import flags_list

OWNER, SHAREE = "bob@example.test", "alice@example.test"
SHARED_INBOX = f'"Shared/{OWNER}/INBOX"'


def message(n: int) -> bytes:
    return f"From: a@example.test\r\nSubject: note {n}\r\nMessage-ID: <{n}@example.test>\r\n\r\nbody {n}\r\n".encode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"], limits={"max_connections_per_ip": 100, "max_userip_connections": 100}).start()
    live.add_user(OWNER)
    live.add_user(SHAREE)

    async def share() -> None:
        assert live.services is not None
        store = live.services.store
        account = await store.get_account(OWNER)
        assert account is not None
        box = await store.get_mailbox(account.id, "INBOX")
        assert box is not None
        await store.set_rights(box.id, SHAREE, "lrswi")

    live.call(share())
    yield live
    live.stop()


class Client:
    """A raw IMAP client: lines in and out, through DEFLATE once COMPRESS is on."""

    def __init__(self, server: LiveServer, user: str = OWNER) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
        self.buffer = b""
        self.tags = 0
        self.deflate: zlib._Compress | None = None
        self.inflate: zlib._Decompress | None = None
        assert self.readline().startswith("* OK")
        self.command(f'LOGIN {user} "{PASSWORD}"')

    def send(self, text: str) -> None:
        data = text.encode() + b"\r\n"
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def readline(self) -> str:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            self.buffer += self.inflate.decompress(chunk) if self.inflate is not None else chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line.decode()

    def command(self, text: str) -> list[str]:
        """Send a command; its untagged responses, once it completed OK."""
        self.tags += 1
        tag = f"t{self.tags}"
        self.send(f"{tag} {text}")
        lines = []
        while not (line := self.readline()).startswith(tag + " "):
            lines.append(line)
        assert line.startswith(tag + " OK"), (text, line)
        return lines

    def compress(self) -> None:
        self.command("COMPRESS DEFLATE")
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.inflate = zlib.decompressobj(-zlib.MAX_WBITS)

    def idle(self) -> None:
        self.tags += 1
        self.idle_tag = f"t{self.tags}"
        self.send(f"{self.idle_tag} IDLE")
        assert self.readline() == "+ idling"

    def expect(self, *lines: str) -> None:
        for line in lines:
            assert self.readline() == line

    def done(self) -> list[str]:
        """End IDLE; the untagged responses still unread before its OK."""
        self.send("DONE")
        lines = []
        while not (line := self.readline()).startswith(self.idle_tag + " "):
            lines.append(line)
        assert line == f"{self.idle_tag} OK IDLE terminated"
        return lines


@dataclass
class View:
    """What one idling client must be told: its own sequence numbers and \\Recent."""

    client: Client
    rev2: bool = False
    condstore: bool = False
    qresync: bool = False
    readonly: bool = False
    sharee: bool = False
    uids: list[int] = field(default_factory=list)
    recent: set[int] = field(default_factory=set)

    def appended(self, uid: int) -> bool:
        """Expect EXISTS (and RECENT); whether this session took \\Recent for `uid`."""
        self.uids.append(uid)
        self.client.expect(f"* {len(self.uids)} EXISTS")
        if self.rev2:
            return False
        count = int(re.fullmatch(r"\* (\d+) RECENT", self.client.readline()).group(1))  # type: ignore[union-attr]
        took = count == len(self.recent) + 1
        assert count == len(self.recent) or (took and not self.readonly)
        if took:
            self.recent.add(uid)
        return took

    def flags_changed(self, uid: int, flags: set[str], modseq: int) -> None:
        shown = flags | ({"\\Recent"} if not self.rev2 and uid in self.recent else set())
        items = f"UID {uid} FLAGS {flags_list(shown).decode()}" + (f" MODSEQ ({modseq})" if self.condstore else "")
        self.client.expect(f"* {self.uids.index(uid) + 1} FETCH ({items})")

    def expunged(self, uids: list[int]) -> None:
        if self.qresync:
            self.client.expect("* VANISHED " + compact_set(uids))
        for uid in sorted(uids):
            if not self.qresync:
                self.client.expect(f"* {self.uids.index(uid) + 1} EXPUNGE")
            self.uids.remove(uid)
            self.recent.discard(uid)


def modseq_of(server: LiveServer, uid: int) -> int:
    async def read() -> int:
        assert server.services is not None
        store = server.services.store
        account = await store.get_account(OWNER)
        box = await store.get_mailbox(account.id, "INBOX")  # type: ignore[union-attr]
        [record] = await store.get_messages(box.id, [uid])  # type: ignore[union-attr]
        return record.modseq

    return server.call(read())


def open_view(server: LiveServer, uids: list[int], *, enable: str = "", user: str = OWNER, examine: bool = False,
              compress: bool = False, **kinds: bool) -> View:
    client = Client(server, user)
    if compress:
        client.compress()
    if enable:
        client.command(f"ENABLE {enable}")
    mailbox = SHARED_INBOX if user == SHAREE else "INBOX"
    lines = client.command(f"{'EXAMINE' if examine else 'SELECT'} {mailbox}")
    assert f"* {len(uids)} EXISTS" in lines
    return View(client, readonly=examine, sharee=user == SHAREE, uids=list(uids), **kinds)


def test_every_kind_of_idling_session_hears_exactly_its_own_updates(server: LiveServer) -> None:
    appender = Client(server)  # no mailbox selected: it never takes \Recent itself
    for n in (1, 2, 3):
        appender.command(f"APPEND INBOX {{{len(message(n))}+}}\r\n{message(n).decode()}")
    Client(server).command("SELECT INBOX")  # takes \Recent for 1:3, so every view starts without any
    # Two sessions fall behind: they selected, then the mailbox changed while they said nothing.
    laggards = [open_view(server, [1, 2, 3]), open_view(server, [1, 2, 3], enable="QRESYNC", condstore=True, qresync=True)]
    appender.command(f"APPEND INBOX {{{len(message(4))}+}}\r\n{message(4).decode()}")
    changer = Client(server)
    changer.command("ENABLE IMAP4rev2")  # takes no \Recent when it selects
    changer.command("SELECT INBOX")
    changer.command("UID STORE 1 +FLAGS.SILENT (\\Flagged)")
    changer.command("UID MOVE 2 Archive")
    # Entering IDLE, each catches up on its own: the first takes \Recent for uid 4.
    laggards[0].client.idle()
    laggards[0].client.expect("* 2 EXPUNGE", "* 3 EXISTS", "* 1 RECENT", "* 1 FETCH (UID 1 FLAGS (\\Flagged))")
    laggards[1].client.idle()
    laggards[1].client.expect("* VANISHED 2", "* 3 EXISTS", "* 0 RECENT",
                              f"* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ ({modseq_of(server, 1)}))")
    for view in laggards:
        view.uids = [1, 3, 4]
    laggards[0].recent = {4}

    now = [1, 3, 4]
    views = [
        *(open_view(server, now) for _ in range(3)),
        *(open_view(server, now, enable="IMAP4rev2", rev2=True) for _ in range(3)),
        *(open_view(server, now, enable="CONDSTORE", condstore=True) for _ in range(2)),
        *(open_view(server, now, enable="QRESYNC", condstore=True, qresync=True) for _ in range(2)),
        open_view(server, now, enable="IMAP4rev2 CONDSTORE", rev2=True, condstore=True),
        open_view(server, now, enable="IMAP4rev2 QRESYNC", rev2=True, condstore=True, qresync=True),
        *(open_view(server, now, examine=True) for _ in range(2)),
        open_view(server, now, compress=True),
        *(open_view(server, now, user=SHAREE) for _ in range(2)),
        open_view(server, now, user=SHAREE, enable="IMAP4rev2", rev2=True),
    ]
    notified = open_view(server, now)
    notified.client.command("NOTIFY SET (SELECTED (MessageNew MessageExpunge FlagChange))")
    searcher = open_view(server, now)
    context = searcher.client.command("UID SEARCH RETURN (UPDATE ALL) UNSEEN")
    assert context[-1].endswith("ALL 1,3:4"), context
    tag = f"t{searcher.client.tags}"
    for view in [*views, notified, searcher]:
        view.client.idle()
    everyone = [*laggards, *views, notified, searcher]

    appender.command(f"APPEND INBOX {{{len(message(5))}+}}\r\n{message(5).decode()}")
    takers = [view for view in everyone if view.appended(5)]
    assert len(takers) == 1, "exactly one session may see uid 5 as \\Recent"
    searcher.client.expect(f'* ESEARCH (TAG "{tag}") UID ADDTO (0 5)')

    changer.command("UID STORE 4 +FLAGS.SILENT (\\Flagged)")
    for view in everyone:
        view.flags_changed(4, {"\\Flagged"}, modseq_of(server, 4))

    changer.command("UID STORE 5 +FLAGS.SILENT (\\Seen)")
    for view in everyone:
        if not view.sharee:  # a sharee keeps its own \Seen (per_user_seen): nothing changed for it
            view.flags_changed(5, {"\\Seen"}, modseq_of(server, 5))
    searcher.client.expect(f'* ESEARCH (TAG "{tag}") UID REMOVEFROM (0 5)')

    changer.command("UID MOVE 1,4 Archive")
    searcher.client.expect(f'* ESEARCH (TAG "{tag}") UID REMOVEFROM (0 1,4)')
    for view in everyone:
        view.expunged([1, 4])

    for view in everyone:
        assert view.client.done() == []  # and nothing more, not even a duplicate


def test_done_split_across_packets_with_a_push_between(server: LiveServer) -> None:
    appender = Client(server)
    view = open_view(server, [])
    view.client.idle()
    view.client.sock.sendall(b"DO")  # the session's read returns a partial line and reads on
    appender.command(f"APPEND INBOX {{{len(message(1))}+}}\r\n{message(1).decode()}")
    assert view.appended(1)  # the only session there: \Recent is its
    view.client.sock.sendall(b"NE\r\n")
    assert view.client.readline() == f"{view.client.idle_tag} OK IDLE terminated"
    assert view.client.command("NOOP") == []
