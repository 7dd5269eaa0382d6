"""Many IMAP sessions at once, each checked against a model of what it has been told.

20 clients (12 on one user, 8 on another) run random SELECT, FETCH, STORE, APPEND, EXPUNGE,
SEARCH, NOOP and IDLE for a while. Every client keeps its view (sequence number -> UID) from the
untagged responses in the order they arrive and checks after every reply that:
- sequence numbers in FETCH responses are within what it was told (EXISTS), UIDs ascend with
  sequence numbers, and a sequence number never changes UID except through EXPUNGE;
- no EXPUNGE arrives during FETCH, STORE or SEARCH by sequence number (RFC 9051 §7.5.1);
- \\Recent is never given to two sessions for the same message.
At the end every session of a user agrees with the others and with the store.
"""
from __future__ import annotations

import random
import re
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

DURATION = 30.0
USERS = {"shared@example.test": 12, "other@example.test": 8}
_FETCH = re.compile(rb"^\* (\d+) FETCH \((.*)\)\r\n$", re.S)
_UID = re.compile(rb"UID (\d+)")
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


class Violation(AssertionError):
    pass


class Client:
    def __init__(self, port: int, user: str, name: str, recent_seen: dict[int, str], lock: threading.Lock) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buffer = b""
        self.user, self.name = user, name
        self.uids: list[int | None] = []  # sequence number - 1 -> UID (None: not learnt yet)
        self.flags: dict[int, set[str]] = {}
        self.recent_seen, self.lock = recent_seen, lock
        self.tag = 0
        self._line()
        self.command(f'LOGIN {user} "{PASSWORD}"')

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Violation(f"{self.name}: connection closed")
        self.buffer += chunk

    def _line(self) -> bytes:
        while (end := self.buffer.find(b"\n")) < 0:
            self._fill()
        line, self.buffer = self.buffer[:end + 1], self.buffer[end + 1:]
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_line(self) -> bytes:
        """One response line, with any literals it announces and the rest of the line."""
        line = self._line()
        while (m := _LITERAL.search(line)) is not None:
            line += self._exactly(int(m.group(1))) + self._line()
        return line

    def readable(self, seconds: float) -> bool:
        return b"\n" in self.buffer or bool(select.select([self.sock], [], [], seconds)[0])

    def command(self, text: str, *, literal: bytes | None = None, by_seq: bool = False) -> bytes:
        self.tag += 1
        tag = f"t{self.tag}".encode()
        data = f"{tag.decode()} {text}".encode()
        if literal is not None:
            data += b" {%d+}\r\n" % len(literal) + literal
        self.sock.sendall(data + b"\r\n")
        while True:
            line = self.read_line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise Violation(f"{self.name}: {text!r} failed: {line!r}")
                return line
            self.untagged(line, by_seq=by_seq)

    def untagged(self, line: bytes, *, by_seq: bool) -> None:
        words = line.split(b" ", 3)
        if len(words) >= 3 and words[2] == b"EXISTS\r\n":
            count = int(words[1])
            if count < len(self.uids):
                raise Violation(f"{self.name}: EXISTS went down from {len(self.uids)} to {count} without EXPUNGE")
            self.uids.extend([None] * (count - len(self.uids)))
        elif len(words) >= 3 and words[2] == b"EXPUNGE\r\n":
            if by_seq:
                raise Violation(f"{self.name}: EXPUNGE during a command by sequence number")
            seq = int(words[1])
            if not 1 <= seq <= len(self.uids):
                raise Violation(f"{self.name}: EXPUNGE {seq} out of range 1..{len(self.uids)}")
            uid = self.uids.pop(seq - 1)
            if uid is not None:
                self.flags.pop(uid, None)
        elif (m := _FETCH.match(line)) is not None:
            seq, body = int(m.group(1)), m.group(2)
            if not 1 <= seq <= len(self.uids):
                raise Violation(f"{self.name}: FETCH for {seq} beyond EXISTS {len(self.uids)}")
            if (u := _UID.search(body)) is not None:
                uid = int(u.group(1))
                known = self.uids[seq - 1]
                if known is not None and known != uid:
                    raise Violation(f"{self.name}: sequence {seq} was UID {known}, now UID {uid}")
                self.uids[seq - 1] = uid
                self.check_order()
                if (f := _FLAGS.search(body)) is not None:
                    flags = set(f.group(1).decode().split())
                    self.flags[uid] = flags - {"\\Recent"}
                    if "\\Recent" in flags:
                        with self.lock:
                            owner = self.recent_seen.setdefault(uid * 1000 + hash(self.user) % 1000, self.name)
                        if owner != self.name:
                            raise Violation(f"{self.name}: \\Recent on UID {uid}, already given to {owner}")

    def check_order(self) -> None:
        known = [u for u in self.uids if u is not None]
        if known != sorted(set(known)):
            raise Violation(f"{self.name}: UIDs out of order: {known}")

    def idle(self, seconds: float) -> None:
        self.tag += 1
        tag = f"t{self.tag}".encode()
        self.sock.sendall(tag + b" IDLE\r\n")
        line = self.read_line()
        while not line.startswith(b"+"):
            self.untagged(line, by_seq=False)
            line = self.read_line()
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            if self.readable(left):
                self.untagged(self.read_line(), by_seq=False)
        self.sock.sendall(b"DONE\r\n")
        while not (line := self.read_line()).startswith(tag + b" "):
            self.untagged(line, by_seq=False)

    def step(self, rng: random.Random, n: int) -> None:
        size = len(self.uids)
        op = rng.random()
        if op < 0.15:
            raw = f"Subject: {self.name} {n}\r\nMessage-ID: <{self.name}.{n}@x>\r\n\r\nhello\r\n".encode()
            self.command("APPEND INBOX", literal=raw)
        elif op < 0.30 and size:
            self.command("FETCH 1:* (UID FLAGS)", by_seq=True)
        elif op < 0.40:
            self.command("UID FETCH 1:* (FLAGS)")
        elif op < 0.55 and size:
            seq = rng.randint(1, size)
            sign = rng.choice("+-")
            self.command(f"STORE {seq} {sign}FLAGS ($K{rng.randint(1, 3)} \\Flagged)", by_seq=True)
        elif op < 0.62 and size:
            seq = rng.randint(1, size)
            self.command(f"STORE {seq} +FLAGS.SILENT (\\Deleted)", by_seq=True)
        elif op < 0.68:
            self.command("EXPUNGE")
        elif op < 0.75 and size:
            self.command("SEARCH ALL", by_seq=True)
        elif op < 0.82:
            self.idle(rng.uniform(0.05, 0.3))
        else:
            self.command("NOOP")

    def close(self) -> None:
        try:
            self.command("LOGOUT")
        except (Violation, OSError):
            pass
        self.sock.close()


@pytest.mark.timeout(300)
def test_twenty_sessions_agree_with_their_models_and_each_other(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", ["imap"], limits={"max_connections_per_ip": 100, "max_userip_connections": 100}).start()
    try:
        for user in USERS:
            server.add_user(user)
        recent_seen: dict[int, str] = {}
        lock = threading.Lock()
        clients = [
            Client(server.ports["imap"], user, f"{user.split('@')[0]}-{i}", recent_seen, lock)
            for user, count in USERS.items() for i in range(count)
        ]
        for client in clients:
            client.command("SELECT INBOX")
        errors: list[BaseException] = []
        steps = [0] * len(clients)
        seed = int(time.time())
        deadline = time.monotonic() + DURATION

        def run(client: Client, index: int) -> None:
            rng = random.Random(seed + index)
            n = 0
            try:
                while time.monotonic() < deadline and not errors:
                    n += 1
                    client.step(rng, n)
                steps[index] = n
            except BaseException as exc:  # reported below, with the seed
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(c, i)) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, f"seed {seed}: {errors[0]}"
        assert sum(steps) > 20 * len(clients), f"only {sum(steps)} commands ran: the test proved little"
        # Convergence: every session, told everything, sees exactly what the store holds.
        for user in USERS:
            views = []
            for client in (c for c in clients if c.user == user):
                client.command("NOOP")
                client.command("UID FETCH 1:* (FLAGS)")
                assert None not in client.uids
                views.append((list(client.uids), {u: client.flags[u] for u in client.uids}))
            assert all(v == views[0] for v in views[1:]), f"seed {seed}: sessions of {user} disagree"
            services = server.services
            assert services is not None

            async def truth(user: str = user, services=services) -> tuple[list[int], dict[int, set[str]]]:
                account = await services.directory.get_user(user)
                box = await services.store.get_mailbox(account.id, "INBOX")  # type: ignore[union-attr]
                records = await services.store.list_messages(box.id)  # type: ignore[union-attr]
                return [r.uid for r in records], {r.uid: set(r.flags) for r in records}

            assert views[0] == server.call(truth()), f"seed {seed}: {user}'s sessions differ from the store"
            assert len(views[0][0]) > 0
        for client in clients:
            client.close()
    finally:
        server.stop()
