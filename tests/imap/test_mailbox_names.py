"""Mailbox names over real sockets: hostile LIST patterns and deep names cost linear time, unsafe
names are refused wherever names are made, names stored before the rules stay usable, another
user's namespace answers NONEXISTENT for names that are not addresses, flags need their rights
in shared mailboxes (RFC 4314 §4), and control characters are never echoed."""
from __future__ import annotations

import imaplib
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

USER, OWNER = "bob@example.test", "team@example.test"
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]|\xc2[\x80-\x9f]")  # C0, DEL, C1 (as UTF-8)
MESSAGE = b"From: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user(USER)
    live.add_user(OWNER)
    yield live
    live.stop()


@pytest.fixture
def served_port(tmp_path: Path) -> Iterator[int]:
    """The IMAP port of `postoffice serve` in a process of its own. For commands that a regression
    turns into minutes of a regular expression: that C code holds the GIL, so an in-process
    server would freeze the test with it, where here the client's socket timeout fails it."""
    data = tmp_path / "data"
    setup = LiveServer(data, []).start()
    setup.add_user(USER)
    setup.stop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = (data / "postoffice.toml").read_text()
    config = re.sub(r"^(smtp|submission|submissions|imaps|pop3|pop3s|http|https|managesieve) = .*$", r"\1 = []", config, flags=re.M)
    config = re.sub(r"^imap = .*$", f'imap = ["127.0.0.1:{port}"]', config, flags=re.M)
    (data / "postoffice.toml").write_text(config)
    process = subprocess.Popen([sys.executable, "-m", "postoffice", "serve", "--data", str(data)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "postoffice serve did not start"
                time.sleep(0.1)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # a stuck server would not hear SIGTERM
        process.wait(timeout=30)


class Session:
    """A raw IMAP session, each command bounded by the socket timeout so that a server that
    hangs fails the test instead of stalling it."""

    def __init__(self, server: LiveServer | int, user: str = USER, timeout: float = 10) -> None:
        port = server if isinstance(server, int) else server.ports["imap"]
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"* OK")
        self.count = 0
        assert self.command(f'LOGIN {user} "{PASSWORD}"').startswith(b"OK")

    def command(self, text: str | bytes, literal: bytes | None = None) -> bytes:
        """Send one command; the tagged reply without its tag (untagged lines in `.lines`)."""
        self.count += 1
        tag = b"t%d" % self.count
        line = text.encode() if isinstance(text, str) else text
        if literal is None:
            self.sock.sendall(tag + b" " + line + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + line + b"{%d+}\r\n" % len(literal) + literal + b"\r\n")
        self.lines: list[bytes] = []
        while not (reply := self.file.readline()).startswith(tag + b" "):
            assert reply, "connection closed"
            self.lines.append(reply)
        return reply[len(tag) + 1:]

    def names(self, text: str) -> list[str]:
        """The mailbox names a LIST command returns."""
        assert self.command(text).startswith(b"OK")
        return [line.decode().rsplit(' "/" ', 1)[1].strip().strip('"') for line in self.lines]

    def close(self) -> None:
        self.sock.close()


def test_list_with_100_wildcards_answers_at_once(served_port: int) -> None:
    """`LIST "" "%%%%%%%%%%!"` against one 40-character name held the event loop 30 s (a
    backtracking regex); each two more wildcards cost ~30 times more."""
    bob = Session(served_port)
    for name in ["a" * 40, "b" * 200, "/".join(["c" * 40] * 20), "/".join(["d"] * 20)]:
        assert bob.command(f'CREATE "{name}"').startswith(b"OK")
    bob.command('SUBSCRIBE "' + "/".join(["d"] * 20) + '"')
    other = Session(served_port)
    hostile = ["%" * 100 + "!", "*" * 100 + "!", "%a" * 50 + "!", "*c%" * 34 + "!", ("%" * 9 + "/") * 10 + "!"]
    started = time.monotonic()
    for pattern in hostile:
        assert bob.names(f'LIST "" "{pattern}"') == []
        assert bob.command(f'LSUB "" "{pattern}"').startswith(b"OK") and bob.lines == []
        assert other.command("NOOP").startswith(b"OK")  # the loop was free all along
    many = " ".join(f'"{p}"' for p in hostile * 10)
    assert bob.names(f'LIST "" ({many})') == []
    assert bob.names(f'LIST (SUBSCRIBED RECURSIVEMATCH) "" ({many})') == []
    # Longer patterns can only match names no one can create: refused before any matching.
    huge = ("%a" * 50_000 + "!").encode()
    assert bob.command(b'LIST "" ', huge).startswith(b"NO [LIMIT]")
    assert bob.command(b'LSUB "" ', huge).startswith(b"NO [LIMIT]")
    assert time.monotonic() - started < 5  # milliseconds each; generous for a busy machine
    # The same machinery still matches what it should.
    assert bob.names('LIST "" "' + "%" * 100 + 'a"') == ["a" * 40]
    assert len(bob.names('LIST "" "' + "%/" * 19 + '%"')) == 2
    lsub = bob.command('LSUB "" "d/%"')
    assert lsub.startswith(b"OK") and bob.lines == [b'* LSUB (\\Noselect) "/" d/d\r\n']
    bob.close()
    other.close()


def test_deep_names_are_bounded_and_list_stays_fast(server: LiveServer) -> None:
    """One CREATE of 2,000 levels made every later LIST of its user take 11.5 s of the loop."""
    bob = Session(server)
    before = bob.names('LIST "" "*"')
    reply = bob.command('CREATE "' + "a/" * 1999 + 'b"')
    assert reply.startswith(b"NO [CANNOT]"), reply
    assert bob.names('LIST "" "*"') == before  # and no superior was made on the way
    assert bob.command('CREATE "' + "/".join(["x"] * 21) + '"').startswith(b"NO [CANNOT]")
    assert bob.command('CREATE "' + "y" * 201 + '"').startswith(b"NO [CANNOT]")
    assert bob.command('CREATE "' + "/".join(["z" * 100] * 10) + '"').startswith(b"NO [CANNOT]")  # 1,009 octets
    # At the bounds everything works, and many such trees still list in a moment.
    for tree in range(8):
        leaf = "/".join([f"t{tree}" + "x" * 47] * 20)  # 20 levels, 999 octets
        assert bob.command(f'CREATE "{leaf}"').startswith(b"OK")
    assert bob.command(f'RENAME "t0{"x" * 47}" "deeper/t0"').startswith(b"NO [CANNOT]")  # 21 levels inside
    started = time.monotonic()
    for _ in range(5):
        assert len(bob.names('LIST "" "*"')) == len(before) + 8 * 20
        assert len(bob.names('LIST "" "%/%/%/%/%/%/%/%/%/%/%/%/%/%/%/%/%/%/%/%"')) == 8
        assert len(bob.names('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')) <= len(before)
    assert time.monotonic() - started < 5  # ~10 ms a LIST; generous for a busy machine
    bob.close()


@pytest.mark.parametrize("name", ["../x", "a/../b", "a//b", ".", "..", "a/.", "x/.../y", "/a", "../../../ESCAPED"])
def test_create_and_rename_refuse_dot_and_empty_levels(server: LiveServer, name: str) -> None:
    """`CREATE "../../../ESCAPED"` became ESCAPED.mbox three levels above an export's destination."""
    bob = Session(server)
    before = bob.names('LIST "" "*"')
    assert bob.command(f'CREATE "{name}"').startswith(b"NO [CANNOT]")
    assert bob.command('CREATE "Projects"').startswith(b"OK")
    assert bob.command(f'RENAME "Projects" "{name}"').startswith(b"NO [CANNOT]")
    assert bob.command(f'RENAME "INBOX" "{name}"').startswith(b"NO [CANNOT]")
    # APPEND and COPY do not offer to create what CREATE would refuse.
    assert bob.command(f'APPEND "{name}" ', MESSAGE).startswith(b"NO [NONEXISTENT]")
    assert bob.names('LIST "" "*"') == sorted([*before, "Projects"], key=lambda n: (n != "INBOX", n))
    bob.close()


def test_shared_namespace_is_not_for_creating(server: LiveServer) -> None:
    bob = Session(server)
    for name in ["Shared/..", "Shared", "Shared/x", "shared/x/y", f"Shared/{OWNER}/New"]:
        assert bob.command(f'CREATE "{name}"').startswith(b"NO [NOPERM]"), name
        assert bob.command(f'RENAME "Drafts" "{name}"').startswith(b"NO [NOPERM]"), name
    assert bob.command('APPEND "Shared/x" ', MESSAGE).startswith(b"NO [NONEXISTENT]")
    assert bob.command('APPEND "Nowhere" ', MESSAGE).startswith(b"NO [TRYCREATE]")  # unchanged
    bob.close()


def test_names_stored_before_the_rules_can_still_be_listed_and_deleted(server: LiveServer) -> None:
    legacy = ["../old", "a//b", "x/./y", "/".join(["deep"] * 30)]
    assert server.services is not None
    account = server.call(server.services.directory.get_user(USER))
    assert account is not None
    with sqlite3.connect(server.data_dir / "store.sqlite3", timeout=10) as db:  # as an older version stored them
        db.executemany("INSERT INTO mailboxes(account_id, name, uidvalidity) VALUES (?, ?, ?)",
                       [(account.id, name, 1000 + i) for i, name in enumerate(legacy)])
    db.close()
    bob = Session(server)
    listed = bob.names('LIST "" "*"')
    assert set(legacy) <= set(listed)
    assert bob.command('SELECT "../old"').startswith(b"OK")
    assert bob.command('APPEND "../old" ', MESSAGE).startswith(b"OK")
    assert bob.command('RENAME "a//b" "Fixed"').startswith(b"OK")
    for name in ["../old", "x/./y", "/".join(["deep"] * 30)]:
        assert bob.command(f'DELETE "{name}"').startswith(b"OK"), name
    assert not set(legacy) & set(bob.names('LIST "" "*"'))
    bob.close()


NOT_AN_ADDRESS = "Shared/not-an-address/INBOX"


def test_shared_names_without_an_address_are_nonexistent(server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    """Ten commands logged a 20-line traceback each and answered [SERVERBUG]."""
    bob = Session(server)
    assert bob.command("SELECT INBOX").startswith(b"OK")
    assert bob.command("APPEND INBOX ", MESSAGE).startswith(b"OK")
    name = f'"{NOT_AN_ADDRESS}"'
    with caplog.at_level(logging.DEBUG):
        replies = {  # COPY and MOVE first: a failed SELECT leaves no mailbox selected
            "COPY": bob.command(f"COPY 1 {name}"),
            "MOVE": bob.command(f"MOVE 1 {name}"),
            "UID COPY": bob.command(f"UID COPY 1:* {name}"),
            "SELECT": bob.command(f"SELECT {name}"),
            "EXAMINE": bob.command(f"EXAMINE {name}"),
            "STATUS": bob.command(f"STATUS {name} (MESSAGES)"),
            "APPEND": bob.command(f"APPEND {name} ", MESSAGE),
            "DELETE": bob.command(f"DELETE {name}"),
            "RENAME": bob.command(f"RENAME {name} Elsewhere"),
            "SUBSCRIBE": bob.command(f"SUBSCRIBE {name}"),
            "GETACL": bob.command(f"GETACL {name}"),
            "MYRIGHTS": bob.command(f"MYRIGHTS {name}"),
            "LISTRIGHTS": bob.command(f"LISTRIGHTS {name} anyone"),
            "SETACL": bob.command(f"SETACL {name} anyone lr"),
            "DELETEACL": bob.command(f"DELETEACL {name} anyone"),
            "GETQUOTAROOT": bob.command(f"GETQUOTAROOT {name}"),
            "SETACL identifier": bob.command("SETACL INBOX not-an-address lr"),
        }
        assert bob.command(f"CREATE {name}").startswith(b"NO [NOPERM]")
        assert bob.names('LIST "" "Shared/not-an-address/*"') == []
        assert bob.names('LIST "" "Shared/%/%"') == []
    wrong = {command: reply for command, reply in replies.items() if not reply.startswith(b"NO [NONEXISTENT]")}
    assert wrong == {}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    assert bob.command("NOOP").startswith(b"OK")
    bob.close()


def _owner_flags(server: LiveServer) -> list[set[str]]:
    owner = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    owner.login(OWNER, PASSWORD)
    owner.select("INBOX", readonly=True)
    typ, data = owner.fetch("1:*", "(FLAGS)")
    assert typ == "OK"
    owner.logout()
    return [set(re.search(rb"FLAGS \(([^)]*)\)", line).group(1).decode().split()) - {"\\Recent"}  # type: ignore[union-attr]
            for line in data if isinstance(line, bytes)]


@pytest.mark.parametrize(("rights", "kept"), [
    ("lri", set()),
    ("lris", {"\\Seen"}),
    ("lrit", {"\\Deleted"}),
    ("lriw", {"\\Flagged", "$Label"}),
    ("lristw", {"\\Seen", "\\Deleted", "\\Flagged", "$Label"}),
])
def test_append_copy_move_into_a_shared_mailbox_keep_only_flags_the_rights_allow(
        server: LiveServer, rights: str, kept: set[str]) -> None:
    """RFC 4314 §4: \\Seen needs "s", \\Deleted "t", other flags and keywords "w"; with only
    "lri" the flags were set anyway."""
    owner = Session(server, OWNER)
    assert owner.command(f"SETACL INBOX {USER} {rights}").startswith(b"OK")
    owner.close()
    shared = f'"Shared/{OWNER}/INBOX"'
    flags = "(\\Seen \\Deleted \\Flagged $Label)"
    bob = Session(server)
    assert bob.command(f"APPEND {shared} {flags} ", MESSAGE).startswith(b"OK")
    assert bob.command(f"APPEND INBOX {flags} ", MESSAGE).startswith(b"OK")
    assert bob.command(f"APPEND INBOX {flags} ", MESSAGE).startswith(b"OK")
    assert bob.command("SELECT INBOX").startswith(b"OK")
    assert bob.command(f"COPY 1 {shared}").startswith(b"OK")
    assert bob.command(f"MOVE 2 {shared}").startswith(b"OK")
    bob.close()
    assert _owner_flags(server) == [kept, kept, kept]


def test_control_characters_in_names_are_refused_without_echo(server: LiveServer) -> None:
    """`SELECT &AAA-` (modified UTF-7 for NUL) echoed a NUL in its reply."""
    bob = Session(server)
    for command in ["SELECT &AAA-", "EXAMINE &AAA-", "CREATE &AAA-", "STATUS &AAA- (MESSAGES)",
                    'SELECT "a&AAE-b"', 'RENAME INBOX "x&AB8-"', "DELETE &AAA-"]:
        reply = bob.command(command)
        assert reply.startswith(b"NO ") and not _CONTROL.search(reply[:-2]), reply
    # UTF8=ACCEPT takes names as UTF-8: a literal can carry any octet but NUL.
    assert bob.command("ENABLE UTF8=ACCEPT").startswith(b"OK")
    for raw in [b"a\x01b", b"a\x1bb", b"a\x7fb", "a\u0085b".encode()]:
        reply = bob.command(b"SELECT ", raw)
        assert reply.startswith(b"NO ") and not _CONTROL.search(reply[:-2]), reply
        assert bob.command(b"CREATE ", raw).startswith(b"NO ")
    assert bob.command("NOOP").startswith(b"OK")
    bob.close()
