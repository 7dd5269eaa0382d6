"""The POP3 server over real sockets: stdlib poplib for every command, raw sockets for the rest.

RFC 1939 (commands, UPDATE at QUIT only), RFC 2449 (CAPA, RESP-CODES, PIPELINING), RFC 2595
(STLS), RFC 5034 (AUTH), RFC 3206 ([AUTH], [SYS/TEMP]), and consistency with IMAP sessions on
the same INBOX.
"""
from __future__ import annotations

import base64
import imaplib
import poplib
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

USER = "bob@example.test"


def make_message(n: int, body: bytes = b"") -> bytes:
    return (f"From: alice@example.test\r\nTo: {USER}\r\nSubject: message {n}\r\n"
            f"Message-ID: <m{n}@example.test>\r\n\r\n").encode() + (body or f"body of message {n}\r\n".encode())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["pop3", "pop3s", "smtp", "imap"], auth={"failed_login_delay": 0.05}).start()
    live.add_user(USER)
    yield live
    live.stop()


def deliver(server: LiveServer, *messages: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as smtp:
        for message in messages:
            smtp.sendmail("alice@example.test", [USER], message)


def append(server: LiveServer, message: bytes) -> None:
    """Store bytes exactly as given (SMTP would normalise line ends)."""
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    imap.login(USER, PASSWORD)
    typ, _ = imap.append("INBOX", None, None, message)
    assert typ == "OK"
    imap.logout()


def login(server: LiveServer) -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=10)
    client.user(USER)
    client.pass_(PASSWORD)
    return client


class Raw:
    """A POP3 client on a plain socket, for what poplib will not send: pipelining, bad input."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket) -> None:
        self.sock = sock
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.send(data)

    def reply(self, lines: int = 1) -> bytes:
        """The next `lines` CRLF-terminated lines."""
        return b"".join(self.until(b"\r\n") for _ in range(lines))

    def until(self, end: bytes) -> bytes:
        """Everything up to and including the next `end` (all that is left if the server closes)."""
        while (at := self.buffer.find(end)) < 0:
            chunk = self.sock.recv(65536)
            if not chunk:
                out, self.buffer = self.buffer, b""
                return out
            self.buffer += chunk
        out, self.buffer = self.buffer[:at + len(end)], self.buffer[at + len(end):]
        return out

    def close(self) -> None:
        self.sock.close()


def raw(server: LiveServer, port: str = "pop3") -> Raw:
    client = Raw(socket.create_connection(("127.0.0.1", server.ports[port]), timeout=10))
    assert client.reply().startswith(b"+OK")
    return client


def unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


# --- the commands ------------------------------------------------------------------------------

def test_capa_before_and_after_login(server: LiveServer) -> None:
    client = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=10)
    assert client.getwelcome().startswith(b"+OK")
    capa = client.capa()
    for name in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "STLS", "IMPLEMENTATION"):
        assert name in capa, name
    assert capa["SASL"] == ["PLAIN", "LOGIN"]
    assert capa["EXPIRE"] == ["NEVER"]
    client.user(USER)
    client.pass_(PASSWORD)
    after = client.capa()
    assert "STLS" not in after and "SASL" not in after and "UIDL" in after
    client.quit()


def test_stat_list_uidl_retr_top(server: LiveServer) -> None:
    messages = [make_message(n) for n in range(1, 4)]
    deliver(server, *messages)
    stored = server.messages(USER)
    client = login(server)
    count, size = client.stat()
    assert (count, size) == (3, sum(len(m) for m in stored))
    resp, listing, _ = client.list()
    assert [line.split() for line in listing] == [[str(n).encode(), str(len(m)).encode()] for n, m in enumerate(stored, 1)]
    assert client.list(2) == f"+OK 2 {len(stored[1])}".encode()
    resp, uidls, _ = client.uidl()
    ids = [line.split()[1] for line in uidls]
    assert len(set(ids)) == 3 and all(0 < len(i) <= 70 for i in ids)  # RFC 1939 §7
    assert client.uidl(3).split()[2] == ids[2]
    resp, lines, _ = client.retr(2)
    assert b"\r\n".join(lines) + b"\r\n" == stored[1]
    assert resp == f"+OK {len(stored[1])} octets".encode()
    header, _, body = stored[0].partition(b"\r\n\r\n")
    resp, lines, _ = client.top(1, 0)
    assert b"\r\n".join(lines) == header + b"\r\n"
    resp, lines, _ = client.top(1, 1)
    assert lines[-1] == body.split(b"\r\n")[0]
    client.quit()


def test_dele_rset_and_errors(server: LiveServer) -> None:
    deliver(server, make_message(1), make_message(2))
    client = login(server)
    assert client.dele(1).startswith(b"+OK")
    with pytest.raises(poplib.error_proto, match="already deleted"):
        client.retr(1)
    with pytest.raises(poplib.error_proto, match="already deleted"):
        client.dele(1)
    with pytest.raises(poplib.error_proto, match="already deleted"):
        client.list(1)
    assert client.stat() == (1, len(server.messages(USER)[1]))
    for bad in (3, 0):
        with pytest.raises(poplib.error_proto, match="-ERR"):
            client.retr(bad)
    _, listing, _ = client.list()
    assert [line.split()[0] for line in listing] == [b"2"]  # deleted messages are not listed
    assert client.rset().startswith(b"+OK")
    assert client.stat()[0] == 2
    assert client.noop().startswith(b"+OK")
    client.quit()
    assert len(server.messages(USER)) == 2  # RSET undid the mark


def test_quit_applies_deletions_and_marks_retrieved_seen(server: LiveServer) -> None:
    deliver(server, *(make_message(n) for n in range(1, 5)))
    client = login(server)
    client.retr(1)
    client.retr(2)
    client.top(3, 0)
    client.dele(2)
    client.dele(4)
    assert client.quit() == b"+OK Goodbye: 2 messages deleted"
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    imap.login(USER, PASSWORD)
    imap.select("INBOX")
    _, data = imap.fetch("1:*", "(UID FLAGS)")
    flags = [item.decode() for item in data]
    assert len(flags) == 2
    assert "\\Seen" in flags[0]  # RETR'd
    assert "\\Seen" not in flags[1]  # only TOP'd
    imap.logout()


def test_dropped_connection_deletes_nothing(server: LiveServer) -> None:
    deliver(server, make_message(1), make_message(2))
    sock = raw(server)
    sock.send(f"USER {USER}\r\nPASS {PASSWORD}\r\nDELE 1\r\nDELE 2\r\nRETR 1\r\n".encode())
    replies = sock.reply(5)
    assert replies.count(b"+OK") == 4
    sock.close()  # no QUIT
    time.sleep(0.2)
    assert len(server.messages(USER)) == 2
    client = login(server)  # and the maildrop was released
    assert client.stat()[0] == 2
    client.quit()


def test_uidl_stable_across_sessions_and_restarts(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", ["pop3", "smtp"]).start()
    live.add_user(USER)
    deliver(live, *(make_message(n) for n in range(1, 4)))
    client = login(live)
    first = client.uidl()[1]
    client.dele(1)
    client.quit()
    client = login(live)
    second = client.uidl()[1]
    client.quit()
    live.stop()
    assert [line.split()[1] for line in second] == [line.split()[1] for line in first[1:]]
    again = LiveServer(tmp_path / "data", ["pop3"]).start()
    try:
        client = login(again)
        assert [line.split()[1] for line in client.uidl()[1]] == [line.split()[1] for line in second]
        client.quit()
    finally:
        again.stop()


# --- authorization -----------------------------------------------------------------------------

def test_wrong_password_answers_auth_code(server: LiveServer) -> None:
    client = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=10)
    client.user(USER)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        client.pass_("wrong")
    client.user("nobody@example.test")
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        client.pass_(PASSWORD)
    with pytest.raises(poplib.error_proto, match="USER first"):
        client.pass_(PASSWORD)
    client.user(USER)
    assert client.pass_(PASSWORD).startswith(b"+OK")
    client.quit()


def test_in_use_until_quit_disconnect_or_timeout(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    first = login(server)
    second = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=10)
    second.user(USER)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[IN-USE\]"):
        second.pass_(PASSWORD)
    first.quit()
    second.user(USER)
    assert second.pass_(PASSWORD).startswith(b"+OK")  # released by QUIT
    second.close()  # released by a dropped connection (no QUIT)
    time.sleep(0.2)
    import postoffice.pop3.server as pop3_server

    monkeypatch.setattr(pop3_server, "AUTOLOGOUT", 0.5)
    idle = login(server)
    time.sleep(1.0)
    with pytest.raises((poplib.error_proto, OSError, EOFError)):
        idle.stat()  # logged out for idling, and released
    login(server).quit()


def test_auth_plain_login_and_listing(server: LiveServer) -> None:
    sock = raw(server)
    sock.send(b"AUTH\r\n")
    assert sock.until(b"\r\n.\r\n") == b"+OK Mechanisms follow\r\nPLAIN\r\nLOGIN\r\n.\r\n"
    sock.send(b"AUTH CRAM-MD5\r\n")
    assert sock.reply().startswith(b"-ERR")
    sock.send(b"AUTH PLAIN\r\n")
    assert sock.reply() == b"+ \r\n"
    sock.send(b"*\r\n")
    assert sock.reply() == b"-ERR Authentication cancelled\r\n"
    bad = base64.b64encode(f"\0{USER}\0wrong".encode())
    sock.send(b"AUTH PLAIN " + bad + b"\r\n")
    assert sock.reply().startswith(b"-ERR [AUTH]")
    good = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
    sock.send(b"AUTH PLAIN " + good + b"\r\n")
    assert sock.reply().startswith(b"+OK Logged in")
    sock.send(b"QUIT\r\n")
    assert sock.reply().startswith(b"+OK")
    sock.close()
    sock = raw(server)
    sock.send(b"AUTH LOGIN\r\n")
    assert sock.reply() == b"+ " + base64.b64encode(b"Username:") + b"\r\n"
    sock.send(base64.b64encode(USER.encode()) + b"\r\n")
    assert sock.reply() == b"+ " + base64.b64encode(b"Password:") + b"\r\n"
    sock.send(base64.b64encode(PASSWORD.encode()) + b"\r\n")
    assert sock.reply().startswith(b"+OK Logged in")
    sock.close()


def test_no_plaintext_login_without_tls_unless_loopback_allows_it(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", ["pop3", "pop3s"], auth={"plaintext_on_loopback": False}).start()
    live.add_user(USER)
    try:
        client = poplib.POP3("127.0.0.1", live.ports["pop3"], timeout=10)
        capa = client.capa()
        assert "STLS" in capa and "USER" not in capa and "SASL" not in capa
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\].*STLS"):
            client.user(USER)
        sock = raw(live)
        sock.send(b"AUTH PLAIN " + base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()) + b"\r\n")
        assert sock.reply().startswith(b"-ERR [AUTH]")
        sock.close()
        client.stls(unverified())
        capa = client.capa()
        assert "STLS" not in capa and "USER" in capa and capa["SASL"] == ["PLAIN", "LOGIN"]
        client.user(USER)
        assert client.pass_(PASSWORD).startswith(b"+OK")
        client.quit()
        secure = poplib.POP3_SSL("127.0.0.1", live.ports["pop3s"], context=unverified(), timeout=10)
        assert "STLS" not in secure.capa()
        secure.user(USER)
        assert secure.pass_(PASSWORD).startswith(b"+OK")
        secure.quit()
    finally:
        live.stop()


def test_stls_discards_injected_commands(server: LiveServer) -> None:
    sock = raw(server)
    sock.send(f"STLS\r\nUSER {USER}\r\nPASS {PASSWORD}\r\n".encode())  # injected before the handshake
    assert sock.reply() == b"+OK Begin TLS negotiation\r\n"
    tls = Raw(unverified().wrap_socket(sock.sock, server_hostname="mail.example.test"))
    tls.send(b"STAT\r\n")
    assert tls.reply().startswith(b"-ERR")  # not logged in: the injected PASS was dropped
    tls.send(b"STLS\r\n")
    assert tls.reply().startswith(b"-ERR")
    tls.close()


# --- hostile and pipelined input ---------------------------------------------------------------

def test_pipelined_commands_answered_in_order(server: LiveServer) -> None:
    deliver(server, *(make_message(n) for n in range(1, 4)))
    sock = raw(server)
    sock.send(f"CAPA\r\nUSER {USER}\r\nPASS {PASSWORD}\r\nSTAT\r\nRETR 1\r\nTOP 2 0\r\nDELE 3\r\nLIST\r\nQUIT\r\n".encode())
    data = sock.until(b"+OK Goodbye: 1 messages deleted\r\n")
    order = [b"+OK Capability list follows", b"+OK Send your password", b"+OK Logged in", b"+OK 3 ",
             b" octets\r\n", b"Subject: message 1", b"+OK Top of message follows", b"Subject: message 2",
             b"+OK Message 3 deleted", b"+OK 2 messages", b"+OK Goodbye"]
    position = 0
    for marker in order:  # each reply after the one before
        position = data.find(marker, position)
        assert position >= 0, marker
    assert b"body of message 2" not in data  # TOP 2 0: header only
    sock.close()
    assert len(server.messages(USER)) == 2


def test_long_lines_huge_arguments_and_wrong_states(server: LiveServer) -> None:
    sock = raw(server)
    sock.send(b"STAT\r\nRETR 1\r\nDELE 1\r\nLIST\r\nUIDL\r\nTOP 1 1\r\nRSET\r\nNOOP\r\n")
    replies = sock.reply(8).split(b"\r\n")[:8]
    assert all(r.startswith(b"-ERR") for r in replies), replies
    sock.send(b"USER " + b"x" * 100_000 + b"\r\nCAPA\r\n")
    assert sock.reply().startswith(b"-ERR Line too long")
    assert sock.until(b"\r\n.\r\n").startswith(b"+OK Capability")  # the session goes on
    sock.send(f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode())
    assert sock.reply(2).count(b"+OK") == 2
    for bad in (b"RETR 99999999999999999999", b"RETR -1", b"RETR +1", b"RETR 1 2", b"TOP 1", b"DELE x", b"LIST 0"):
        sock.send(bad + b"\r\n")
        assert sock.reply().startswith(b"-ERR"), bad
    sock.send(b"USER again\r\n")
    assert sock.reply().startswith(b"-ERR")
    sock.close()


def test_garbage_flood_closes_the_connection_and_spares_others(server: LiveServer) -> None:
    deliver(server, make_message(1))
    other = login(server)
    sock = raw(server)
    sock.send(b"\x00\xff garbage\r\n" * 50 + b"more garbage without end " * 10_000)
    data = sock.until(b"closing the connection\r\n")
    assert data.endswith(b"-ERR Too many errors; closing the connection\r\n")
    assert sock.until(b"\r\n") == b""  # closed
    assert other.stat()[0] == 1
    other.quit()


def test_large_message_and_line_ends_streamed_exactly(server: LiveServer) -> None:
    big = make_message(1, b"".join(f"line {i} ".encode() + b"y" * 70 + b"\r\n" for i in range(80_000)))
    append(server, big)  # about 6.5 MB
    odd = b"Subject: odd\n\n.starts with a dot\n..two dots\nbare LF above\r\n.\r\nlast"
    append(server, odd)
    client = login(server)
    _, lines, _ = client.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == big
    sock = raw(server)
    sock.send(f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode())
    sock.reply(2)
    client.quit()  # only now may the raw session log in: [IN-USE] until then
    sock.send(f"USER {USER}\r\nPASS {PASSWORD}\r\nRETR 2\r\n".encode())
    data = sock.until(b"\r\n.\r\n")
    content = data.split(b"octets\r\n", 1)[1]
    assert content == (b"Subject: odd\r\n\r\n..starts with a dot\r\n...two dots\r\nbare LF above\r\n..\r\n"
                       b"last\r\n.\r\n")
    sock.close()


# --- consistency with IMAP ---------------------------------------------------------------------

def test_maildrop_is_inbox_as_it_was_at_login(server: LiveServer) -> None:
    deliver(server, make_message(1), make_message(2))
    client = login(server)
    deliver(server, make_message(3))  # arrives during the session: next time
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    imap.login(USER, PASSWORD)
    imap.select("INBOX")
    imap.store("1", "+FLAGS", "\\Deleted")
    imap.expunge()  # removed by IMAP during the POP3 session
    assert client.stat()[0] == 2
    _, lines, _ = client.retr(1)  # still readable, whole
    assert b"Subject: message 1" in lines
    client.dele(2)
    client.quit()
    client = login(server)
    _, listing, _ = client.list()
    assert len(listing) == 1  # message 3
    assert b"Subject: message 3" in client.retr(1)[1]
    client.quit()
    imap.logout()


def test_imap_idle_sees_pop3_deletions(server: LiveServer) -> None:
    deliver(server, *(make_message(n) for n in range(1, 6)))
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    imap.login(USER, PASSWORD)
    imap.select("INBOX")
    tag = imap._new_tag()
    imap.send(tag + b" IDLE\r\n")
    assert imap.readline().startswith(b"+")
    client = login(server)
    for n in (1, 3, 5):
        client.dele(n)
    client.quit()
    quit_at = time.monotonic()
    expunges = []
    while len(expunges) < 3:
        line = imap.readline()
        if line.endswith(b"EXPUNGE\r\n"):
            expunges.append(line)
    pushed_after = time.monotonic() - quit_at
    imap.send(b"DONE\r\n")
    assert expunges == [b"* 1 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n", b"* 3 EXPUNGE\r\n"]
    assert pushed_after < 5  # not a timing target (see bench/), only proof it is pushed, not polled
    imap.logout()


def test_every_stored_form_is_sent_right(server: LiveServer) -> None:
    # What the store recorded at delivery (message.lines.WireForm) decides the work RETR does:
    # none, dot-stuffing only, or normalising too. Each must give the same wire bytes.
    ready = b"Subject: ready\r\n\r\nplain a.b line\r\n"
    stuff = b"Subject: stuff\r\n\r\n.one\r\nmid\r\n..two\r\n."
    encode = b"Subject: encode\r\n\r\n.dot\r\nno final line end"
    for message in (ready, stuff + b"\r\n", encode):
        append(server, message)
    sock = raw(server)
    sock.send(f"USER {USER}\r\nPASS {PASSWORD}\r\nRETR 1\r\nRETR 2\r\nRETR 3\r\nTOP 2 1\r\nQUIT\r\n".encode())
    data = sock.until(b"+OK Goodbye")
    replies = data.split(b"\r\n.\r\n")
    assert replies[0].endswith(b"\r\n" + ready.rstrip(b"\r\n"))
    assert replies[1].endswith(b"octets\r\nSubject: stuff\r\n\r\n..one\r\nmid\r\n...two\r\n..")
    assert replies[2].endswith(b"octets\r\nSubject: encode\r\n\r\n..dot\r\nno final line end")
    assert replies[3].endswith(b"follows\r\nSubject: stuff\r\n\r\n..one")
    sock.close()


def test_read_ahead_only_for_a_client_going_in_order(server: LiveServer) -> None:
    """RETR 1, 2, 3 ... fetches the next messages in the same store read; a client that reads a
    message again or skips about gets just the message it asked for, each time."""
    from postoffice.pop3.session import Pop3Maildrop

    deliver(server, *(make_message(n) for n in range(1, 8)))
    assert server.services is not None
    services = server.services

    async def reads() -> list[tuple[bytes | None, list[int]]]:
        account = await services.directory.get_user(USER)
        assert account is not None
        drop = await Pop3Maildrop.open(services, account)
        try:
            seen = []
            for msg in (1, 2, 5, 5, 3, 4):
                content = await drop.read_small(msg, 1 << 20)
                seen.append((content, sorted(drop._read_ahead)))
            seen.append((await drop.read_small(2, 1 << 20), sorted(drop._read_ahead)))
            drop.note_streamed(3)  # RETR 3 of a message too large to read whole
            seen.append((await drop.read_small(4, 1 << 20), sorted(drop._read_ahead)))
            return seen
        finally:
            drop.close()

    seen = server.call(reads())
    assert [ahead for _, ahead in seen] == [
        [2, 3, 4, 5, 6, 7], [3, 4, 5, 6, 7], [3, 4, 6, 7], [], [], [5, 6, 7], [], [5, 6, 7]]
    for (content, _), msg in zip(seen, (1, 2, 5, 5, 3, 4, 2, 4), strict=True):
        assert content is not None and f"Subject: message {msg}\r\n".encode() in content
