"""A running SEARCH BODY/TEXT never keeps other sessions waiting (issue 13): while four sessions
search a large mailbox for a common word, a fifth session's commands (some of which need the
store's reader threads) are answered at once, and every search gets the exact answer.

Before, the full-text index only proposed candidates and each one was read and MIME-parsed in a
store reader thread to confirm it: a common word made every message a candidate, so four such
searches held every reader thread for seconds and the fifth session's STATUS waited for them.
Bounds here are generous (a loaded 2-core machine); the old code missed them by seconds.
"""
from __future__ import annotations

import random
import socket
import threading
import time
from pathlib import Path

from live_server import PASSWORD, LiveServer
from postoffice.store.interface import NewMessage

USER = "searcher@example.test"
MESSAGES = 1500
REPLY_SECONDS = 120.0
WORDS = ["the", "mail", "deadline", "report", "budget", "meeting", "review", "project", "queue", "inbox", "naïve", "größe"]


class Session:
    """A raw IMAP connection, logged in with INBOX selected."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=REPLY_SECONDS)
        self.file = self.sock.makefile("rb")
        self.count = 0
        assert self.file.readline().startswith(b"* OK")
        self.command(f'LOGIN {USER} "{PASSWORD}"')
        self.command("SELECT INBOX")

    def send(self, text: str) -> str:
        self.count += 1
        tag = f"t{self.count}"
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        return tag

    def reply(self, tag: str) -> list[bytes]:
        lines = []
        while not (line := self.file.readline()).startswith(tag.encode() + b" "):
            assert line, f"connection closed: {lines[-3:]}"
            lines.append(line)
        assert line.startswith(f"{tag} OK".encode()), line
        return lines

    def command(self, text: str) -> list[bytes]:
        return self.reply(self.send(text))

    def close(self) -> None:
        self.sock.close()


def _message(rng: random.Random, n: int) -> bytes:
    body = " ".join(rng.choice(WORDS) for _ in range(1200))  # about 8 KB of text
    return (f"From: Sender <s{n}@example.org>\r\nTo: {USER}\r\nSubject: note {n}\r\n"
            f"Message-ID: <n{n}@example.org>\r\n\r\n{body}\r\n").encode()


def _fill(live: LiveServer) -> None:
    assert live.services is not None
    store = live.services.store
    rng = random.Random(5)

    async def fill() -> None:
        account = await store.get_account(USER)
        assert account is not None
        box = await store.get_mailbox(account.id, "INBOX")
        assert box is not None
        for start in range(0, MESSAGES, 250):
            raws = [_message(rng, n) for n in range(start, min(start + 250, MESSAGES))]
            await store.append_messages(box.id, [NewMessage(await store.put_blob(r), raw=r) for r in raws])
        while await store.index_unindexed() > 0:  # as the server's background indexer does
            pass

    live.call(fill(), timeout=600)


def test_other_sessions_are_answered_while_long_searches_run(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    sessions: list[Session] = []
    try:
        live.add_user(USER)
        _fill(live)
        port = live.ports["imap"]
        searchers = [Session(port) for _ in range(4)]
        probe = Session(port)
        sessions += [*searchers, probe]
        answers: list[int] = []

        def search(session: Session) -> None:
            tags = [session.send(command) for command in
                    ("SEARCH TEXT deadline", "SEARCH BODY e", "SEARCH TEXT deadline")]
            for tag in tags:
                hits = [line for line in session.reply(tag) if line.startswith(b"* SEARCH")]
                answers.append(len(hits[0].split()) - 2)

        threads = [threading.Thread(target=search, args=(s,)) for s in searchers]
        for thread in threads:
            thread.start()
        waits = []
        while any(t.is_alive() for t in threads) or len(waits) < 9:
            for command in ("STATUS INBOX (MESSAGES UNSEEN)", "FETCH 7 (FLAGS)", "NOOP"):
                started = time.monotonic()
                probe.command(command)
                waits.append(time.monotonic() - started)
            time.sleep(0.02)
        for thread in threads:
            thread.join(REPLY_SECONDS)
        assert answers == [MESSAGES] * 12  # every message has "deadline" and an "e"
        assert max(waits) < 1.0, f"the other session waited up to {max(waits):.1f} s"
    finally:
        for session in sessions:
            session.close()
        live.stop()
