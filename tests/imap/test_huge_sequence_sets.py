"""Sequence sets as wide as the protocol allows (issue 12): on an 11-message mailbox,
`FETCH 1:4294967295 FLAGS` grew the server to 24 GB until the kernel killed it, and every
protocol with it. Each command that takes a set is sent here with `1:4294967295` (by number
and by UID, STORE, COPY, MOVE, UID EXPUNGE, SEARCH with NOT/OR and `$`, the QRESYNC forms):
each is answered correctly within seconds and the server's memory does not grow. And `$`, the
saved search result (RFC 5182), names messages in every command that takes a set: `UID FETCH $`
and `UID EXPUNGE $` were an internal error with a traceback, `FETCH $` a BAD. A SEARCH of as many
set keys as a command may hold checks each against every message: it runs a while, but lets
other clients in.

The server is `postoffice serve` in its own process with its address space limited, so that a
regression which expands a range fails here by timing out, not by eating the machine's memory;
psutil reads its resident size.
"""
from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from live_server import PASSWORD as LIVE_PASSWORD
from live_server import LiveServer
from postoffice.imap.proto.search_keys import MAX_SEARCH_KEYS

USER = "bob@example.test"
PASSWORD = "wide sets password"
WIDEST = "1:4294967295"
REPLY_SECONDS = 5.0  # each answer; a clamped set takes milliseconds, an expanded one minutes
RSS_GROWTH = 200 * 2**20  # an 11-message mailbox needs nothing like it
ADDRESS_SPACE = 4 * 2**30  # the server's limit: a regression fails instead of swapping the host


class ServeProcess:
    """`postoffice serve` on a fresh data directory, IMAP only, on an ephemeral loopback port."""

    def __init__(self, data: Path) -> None:
        po = [sys.executable, "-m", "postoffice"]
        subprocess.run([*po, "init", "--data", str(data), "--domain", "example.test",
                        "--hostname", "mail.example.test"], check=True, capture_output=True)
        subprocess.run([*po, "user", "add", USER, "--password-stdin", "--data", str(data)],
                       input=PASSWORD.encode() + b"\n", check=True, capture_output=True)
        config = (data / "postoffice.toml").read_text()
        config = re.sub(r"^(smtp|submission|submissions|imaps|pop3|pop3s|lmtp|http|https|managesieve) = .*$", r"\1 = []",
                        config, flags=re.M)
        config = re.sub(r"^imap = .*$", 'imap = ["127.0.0.1:0"]', config, flags=re.M)
        (data / "postoffice.toml").write_text(config)
        self.proc = subprocess.Popen(
            [*po, "serve", "--data", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=_limit_address_space,
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 60
        for line in self.proc.stderr:
            if found := re.search(rb"listening: imap on 127\.0\.0\.1:(\d+)", line):
                self.port = int(found.group(1))
                break
            assert time.monotonic() < deadline, "server did not start"
        else:
            raise AssertionError("server exited before listening")
        self.process = psutil.Process(self.proc.pid)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # a runaway server must not outlive the test
        self.proc.wait(timeout=30)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


class Client:
    """A raw IMAP connection; every reply must be complete within REPLY_SECONDS."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=REPLY_SECONDS)
        self.file = self.sock.makefile("rb")
        self.count = 0
        assert self.file.readline().startswith(b"* OK")

    def command(self, text: str, status: str = "OK") -> list[bytes]:
        """Send `text`; the lines of the reply, the tagged one last, checked for `status`."""
        self.count += 1
        tag = f"t{self.count}"
        started = time.monotonic()
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        lines = []
        try:
            while not (line := self.file.readline()).startswith(tag.encode() + b" "):
                assert line, f"connection closed during {text}: {lines[-3:]}"
                lines.append(line)
        except TimeoutError:
            raise AssertionError(f"{text}: no answer within {REPLY_SECONDS} s") from None
        elapsed = time.monotonic() - started
        assert elapsed < REPLY_SECONDS, f"{text} took {elapsed:.1f} s"
        assert line.startswith(f"{tag} {status}".encode()), (text, line)
        return [*lines, line]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServeProcess]:
    served = ServeProcess(tmp_path / "data")
    try:
        yield served
    finally:
        served.stop()


def fetched_uids(lines: list[bytes]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.search(rb"FETCH \(.*UID (\d+)", line))]


def searched(lines: list[bytes]) -> list[int]:
    found = [line for line in lines if line.startswith(b"* SEARCH")]
    assert len(found) == 1, lines
    return [int(n) for n in found[0].split()[2:]]


def vanished(lines: list[bytes]) -> list[bytes]:
    return [line.strip() for line in lines if line.startswith(b"* VANISHED")]


def test_widest_sequence_sets_are_clamped_to_the_mailbox(server: ServeProcess) -> None:
    client = Client(server.port)
    client.command(f'LOGIN {USER} "{PASSWORD}"')
    for n in range(1, 12):
        message = f"Subject: message {n}\r\n\r\nbody {n}\r\n"
        client.command(f"APPEND INBOX {{{len(message)}+}}\r\n{message}")
    client.command("ENABLE QRESYNC")
    selected = b"".join(client.command("SELECT INBOX"))
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", selected).group(1))  # type: ignore[union-attr]
    before = server.rss()
    everything = list(range(1, 12))

    # By message number, a number above the mailbox size is the client's error (RFC 9051 §9):
    # BAD at once, not after counting to four billion.
    for command in (f"FETCH {WIDEST} FLAGS", f"STORE {WIDEST} +FLAGS (\\Seen)", f"COPY {WIDEST} Trash",
                    f"MOVE {WIDEST} Trash", "FETCH 4294967295:1 FLAGS", "FETCH 1:5,20000000 FLAGS"):
        client.command(command, "BAD")
    assert fetched_uids(client.command("FETCH 1:* (UID FLAGS)")) == everything
    assert fetched_uids(client.command("FETCH *:1 (UID)")) == everything

    # By UID, numbers not in use are simply absent.
    assert fetched_uids(client.command(f"UID FETCH {WIDEST} FLAGS")) == everything
    assert fetched_uids(client.command("UID FETCH 4294967295:5 FLAGS")) == everything[4:]
    stored = client.command(f"UID STORE {WIDEST} +FLAGS (\\Seen)")
    assert fetched_uids(stored) == everything and all(b"\\Seen" in line for line in stored[:-1])
    copied = b"".join(client.command(f"UID COPY {WIDEST} Trash"))  # every user has a Trash
    assert b"[COPYUID " in copied and b" 1:11 1:11]" in copied

    assert searched(client.command(f"SEARCH {WIDEST}")) == everything
    assert searched(client.command(f"UID SEARCH UID {WIDEST}")) == everything
    assert searched(client.command(f"SEARCH NOT {WIDEST}")) == []
    assert searched(client.command("SEARCH OR 4294967295 UID 4294967295:9")) == [9, 10, 11]
    assert searched(client.command("UID SEARCH 3:4294967295 NOT UID 5:4294967295")) == [3, 4]
    esearch = b"".join(client.command(f"SEARCH RETURN (MIN MAX COUNT ALL) {WIDEST}"))
    assert b"MIN 1 MAX 11 COUNT 11 ALL 1:11" in esearch
    sorted_ = [line for line in client.command(f"UID SORT (REVERSE ARRIVAL) UTF-8 UID {WIDEST}")
               if line.startswith(b"* SORT")]
    assert sorted_ == [b"* SORT " + b" ".join(b"%d" % n for n in reversed(everything)) + b"\r\n"]
    threads = b"".join(client.command(f"THREAD ORDEREDSUBJECT UTF-8 {WIDEST}"))
    assert all(b"(%d)" % n in threads for n in everything)
    # A hostile list of single numbers as long as a line may be: work linear in its text.
    odd = ",".join(str(n) for n in range(1, 18_000, 2))  # 9,000 ranges, 48 KB
    assert searched(client.command(f"UID SEARCH UID {odd}")) == everything[::2]
    assert fetched_uids(client.command(f"UID FETCH {odd},{WIDEST} (UID)")) == everything
    # "$" (RFC 5182): the saved result, in a FETCH and inside NOT.
    client.command("UID SEARCH RETURN (SAVE) UID 6:4294967295")
    assert fetched_uids(client.command("UID FETCH $ (UID)")) == everything[5:]
    assert searched(client.command("SEARCH NOT $")) == everything[:5]

    client.command("UID STORE 10:4294967295 +FLAGS.SILENT (\\Deleted)")
    assert vanished(client.command(f"UID EXPUNGE {WIDEST}")) == [b"* VANISHED 10:11"]
    assert vanished(client.command("UID MOVE 8:4294967295 Trash")) == [b"* VANISHED 8:9"]
    assert searched(client.command(f"UID SEARCH UID {WIDEST}")) == everything[:7]

    # QRESYNC (RFC 7162): the known UIDs and the sequence match data may be as wide.
    changed = client.command(f"UID FETCH {WIDEST} (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    assert vanished(changed) == [b"* VANISHED (EARLIER) 8:11"] and fetched_uids(changed) == everything[:7]
    for known, gone, still_known in (
        (WIDEST, b"8:11", everything[:7]),
        (f"{WIDEST} ({WIDEST} {WIDEST})", b"8:11", everything[:7]),  # with sequence match data
        ("4294967295:9", b"9:11", []),
    ):
        resynced = client.command(f"SELECT INBOX (QRESYNC ({uidvalidity} 1 {known}))")
        assert vanished(resynced) == [b"* VANISHED (EARLIER) " + gone]
        assert fetched_uids(resynced) == still_known

    client.command("NOOP")
    grown = server.rss() - before
    assert grown < RSS_GROWTH, f"the server grew by {grown / 2**20:.0f} MB"


def test_saved_result_names_messages_in_every_command(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    try:
        live.add_user(USER)
        client = Client(live.ports["imap"])
        client.command(f'LOGIN {USER} "{LIVE_PASSWORD}"')
        for n in range(1, 7):
            message = f"Subject: message {n}\r\n\r\nbody {n}\r\n"
            client.command(f"APPEND INBOX {{{len(message)}+}}\r\n{message}")
        client.command("SELECT INBOX")
        client.command("SEARCH RETURN (SAVE) 2:4")  # UIDs 2, 3, 4
        assert fetched_uids(client.command("FETCH $ (UID)")) == [2, 3, 4]
        assert fetched_uids(client.command("UID FETCH $ (FLAGS)")) == [2, 3, 4]
        assert fetched_uids(client.command("STORE $ +FLAGS (\\Deleted)")) == []  # no UID asked
        assert searched(client.command("SEARCH OR $ 6")) == [2, 3, 4, 6]
        assert searched(client.command("UID SEARCH NOT UID $")) == [1, 5, 6]
        copied = client.command("UID COPY $ Trash")[-1]
        assert b"[COPYUID " in copied and b" 2:4 1:3]" in copied
        expunged = client.command("UID EXPUNGE $")
        assert sorted(line.strip() for line in expunged[:-1]) == [b"* 2 EXPUNGE", b"* 3 EXPUNGE", b"* 4 EXPUNGE"]
        # Expunged messages drop out of "$" (RFC 5182 §2.1): it names nothing now.
        assert fetched_uids(client.command("UID FETCH $ (UID)")) == []
        assert searched(client.command("SEARCH $")) == []
    finally:
        live.stop()


def test_a_search_of_many_set_keys_lets_other_clients_in(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    try:
        live.add_user(USER)
        hostile, other = Client(live.ports["imap"]), Client(live.ports["imap"])
        for client in (hostile, other):
            client.command(f'LOGIN {USER} "{LIVE_PASSWORD}"')
        message = "Subject: one of many\r\n\r\nbody\r\n"
        literal = f"{{{len(message)}+}}\r\n{message}"
        hostile.command("APPEND INBOX " + " ".join([literal] * 1000))  # MULTIAPPEND, RFC 3502
        hostile.command("SELECT INBOX")
        # Two million key checks: seconds of work, which used to hold the event loop throughout.
        hostile.sock.sendall(b"s SEARCH " + b" ".join([b"1:*"] * (MAX_SEARCH_KEYS - 1)) + b"\r\n")
        waits = []
        for _ in range(3):
            time.sleep(0.1)
            started = time.monotonic()
            other.command("NOOP")
            waits.append(time.monotonic() - started)
        hostile.sock.settimeout(120)
        while not (line := hostile.file.readline()).startswith(b"s "):
            assert line, "the searching client was disconnected"
            if line.startswith(b"* SEARCH"):
                assert len(line.split()) == 2 + 1000
        assert line.startswith(b"s OK"), line
        assert max(waits) < 1.0, f"another client's NOOP waited {max(waits):.1f} s"  # about 0.1 s
    finally:
        live.stop()
