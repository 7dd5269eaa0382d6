"""`postoffice migrate` against a source that fails: a raw-socket IMAP server on loopback that
drops the connection in the middle of a message's literal. The summary reports it, what was read
before is stored, the exit status is 1, and a rerun against the healthy server finishes the job
without duplicates."""
from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_run import po
from live_server import LiveServer

TARGET = "new@example.test"


def message(n: int) -> bytes:
    return (f"From: a@example.org\r\nSubject: note {n}\r\nMessage-ID: <{n}@example.org>\r\n\r\n"
            f"Hello {n}.\r\n" + "filler line\r\n" * 200).encode()


MESSAGES = {"INBOX": [message(n) for n in range(1, 6)], "Other": [message(n) for n in range(6, 9)]}


class FlakyImapServer:
    """Just enough IMAP for migrate; with `drop_at` = (folder, uid) it closes the connection
    halfway through that message's literal."""

    def __init__(self) -> None:
        self.drop_at: tuple[str, int] | None = None
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        selected = "INBOX"
        with conn, conn.makefile("rb") as reader:
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] flaky ready\r\n")
            for line in reader:
                tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
                verb = rest.split(" ", 1)[0].upper()
                args = rest.split(" ", 1)[1] if " " in rest else ""
                if verb == "CAPABILITY":
                    conn.sendall(b"* CAPABILITY IMAP4rev1 LITERAL+\r\n")
                elif verb == "LIST":
                    conn.sendall(b'* LIST () "/" INBOX\r\n* LIST () "/" Other\r\n')
                elif verb in ("EXAMINE", "SELECT"):
                    selected = args.strip('"')
                    conn.sendall(b"* %d EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" % len(MESSAGES[selected]))
                elif verb == "UID" and args.upper().startswith("SEARCH"):
                    uids = " ".join(str(u) for u in range(1, len(MESSAGES[selected]) + 1))
                    conn.sendall(f"* SEARCH {uids}\r\n".encode())
                elif verb == "UID" and args.upper().startswith("FETCH"):
                    wanted = _uids(args.split()[1], len(MESSAGES[selected]))
                    for uid in wanted:
                        raw = MESSAGES[selected][uid - 1]
                        head = (f'* {uid} FETCH (UID {uid} FLAGS (\\Seen) INTERNALDATE "04-Mar-2021 05:06:07 +0000"'
                                f" RFC822.SIZE {len(raw)} BODY[] {{{len(raw)}}}\r\n").encode()
                        if self.drop_at == (selected, uid):
                            conn.sendall(head + raw[: len(raw) // 2])
                            conn.shutdown(socket.SHUT_RDWR)
                            return
                        conn.sendall(head + raw + b")\r\n")
                elif verb == "LOGOUT":
                    conn.sendall(b"* BYE bye\r\n" + tag.encode() + b" OK done\r\n")
                    return
                conn.sendall(tag.encode() + b" OK done\r\n")

    def close(self) -> None:
        self.sock.close()


def _uids(text: str, count: int) -> list[int]:
    found: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        last = count if high == "*" else int(high or low)
        found += range(int(low), min(last, count) + 1)
    return found


@pytest.fixture
def flaky() -> Iterator[FlakyImapServer]:
    server = FlakyImapServer()
    yield server
    server.close()


def test_a_source_that_drops_the_connection_mid_literal_is_reported_and_a_rerun_finishes(
        tmp_path: Path, flaky: FlakyImapServer) -> None:
    live = LiveServer(tmp_path / "data", []).start()
    try:
        live.add_user(TARGET)
        flaky.drop_at = ("INBOX", 4)
        args = ["migrate", "--from", f"imap://someone@127.0.0.1:{flaky.port}?tls=none", "--to", f"local:{TARGET}", "--json"]
        env = {"POSTOFFICE_FROM_PASSWORD": "secret"}
        first = po(*args, data=live.data_dir, check=False, env=env, timeout=120)
        assert first.returncode == 1 and "Traceback" not in first.stderr, first.stderr
        summary = json.loads(first.stdout.strip().splitlines()[-1])
        assert summary["copied"] == 3 and summary["failed"] >= 1, summary
        assert any(f["folder"] == "INBOX" for f in summary["failures"]), summary
        assert len(live.messages(TARGET)) == 3  # what came whole before the drop is stored

        flaky.drop_at = None
        second = po(*args, data=live.data_dir, env=env, timeout=120)
        done = json.loads(second.stdout.strip().splitlines()[-1])
        assert (done["copied"], done["skipped_duplicates"], done["failed"]) == (5, 3, 0)
        for folder, raws in MESSAGES.items():
            held = live.messages(TARGET, folder)
            assert sorted(re.findall(rb"Hello \d+", b"".join(held))) == sorted(re.findall(rb"Hello \d+", b"".join(raws)))
    finally:
        live.stop()
