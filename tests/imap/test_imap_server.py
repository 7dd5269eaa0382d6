"""The IMAP server over real sockets with Python's imaplib (RFC 9051 / RFC 3501)."""
from __future__ import annotations

import imaplib
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

MESSAGE = (b"From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\nSubject: Lunch plans\r\n"
           b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <lunch@example.test>\r\n\r\n"
           b"Shall we meet at the zygomorphic cafe?\r\n")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap", "imaps", "smtp"], auth={"failed_login_delay": 0.1}).start()
    live.add_user("bob@example.test")
    yield live
    live.stop()


def connect(server: LiveServer) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    client.login("bob@example.test", PASSWORD)
    return client


def deliver(server: LiveServer, body: bytes = MESSAGE) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as smtp:
        smtp.sendmail("alice@example.test", ["bob@example.test"], body)


def test_capabilities_and_login(server: LiveServer) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    for capability in ("IMAP4REV1", "IMAP4REV2", "STARTTLS", "AUTH=PLAIN", "IDLE", "UIDPLUS", "MOVE", "LITERAL+"):
        assert capability in client.capabilities, capability
    with pytest.raises(imaplib.IMAP4.error):
        client.login("bob@example.test", "wrong password")
    typ, _ = client.login("bob@example.test", PASSWORD)
    assert typ == "OK"
    client.logout()


def test_list_select_fetch_and_flags(server: LiveServer) -> None:
    deliver(server)
    client = connect(server)
    typ, listing = client.list()
    names = [line.decode() for line in listing]
    assert any(n.endswith('"/" INBOX') for n in names)
    assert any("\\Sent" in n and n.endswith("Sent") for n in names)
    typ, data = client.select("INBOX")
    assert (typ, data) == ("OK", [b"1"])
    typ, data = client.fetch("1", "(FLAGS RFC822.SIZE ENVELOPE)")
    text = data[0].decode()
    assert "RFC822.SIZE" in text and '"Lunch plans"' in text and "\\Recent" in text
    typ, data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: Lunch plans\r\n\r\n"
    typ, data = client.fetch("1", "(BODY[TEXT])")
    assert data[0][1] == b"Shall we meet at the zygomorphic cafe?\r\n"
    typ, data = client.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0]  # the non-PEEK fetch set \Seen
    typ, data = client.store("1", "+FLAGS", "(\\Flagged $Important)")
    assert b"\\Flagged" in data[0] and b"$Important" in data[0]
    typ, data = client.uid("FETCH", "1:*", "(UID BODYSTRUCTURE)")
    assert b'("text" "plain" ("charset" "us-ascii")' in data[0].lower()
    client.logout()


def test_search(server: LiveServer) -> None:
    deliver(server)
    deliver(server, MESSAGE.replace(b"Lunch plans", b"Quarterly report").replace(b"zygomorphic", b"budget"))
    client = connect(server)
    client.select("INBOX")
    assert client.search(None, "SUBJECT", "lunch") == ("OK", [b"1"])
    assert client.search(None, "BODY", "budget") == ("OK", [b"2"])
    assert client.search(None, "TEXT", "zygomorphic") == ("OK", [b"1"])
    assert client.search(None, "FROM", "alice") == ("OK", [b"1 2"])
    assert client.search(None, "NOT", "SUBJECT", "lunch") == ("OK", [b"2"])
    assert client.search(None, "OR", "SUBJECT", "lunch", "SUBJECT", "report") == ("OK", [b"1 2"])
    assert client.uid("SEARCH", "SENTON", "1-Jan-2024") == ("OK", [b"1 2"])
    assert client.search(None, "LARGER", "100000") == ("OK", [b""])
    client.logout()


def test_append_copy_move_expunge_with_uidplus(server: LiveServer) -> None:
    client = connect(server)
    typ, data = client.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(time.time()), MESSAGE)
    assert typ == "OK" and re.search(rb"\[APPENDUID \d+ 1\]", data[0])
    typ, data = client.append("Nope", None, None, MESSAGE)
    assert typ == "NO" and b"[TRYCREATE]" in data[0]
    client.create("Projects/2024")
    client.select("INBOX")
    typ, data = client.copy("1", "Projects/2024")
    assert typ == "OK" and b"[COPYUID" in data[0]
    typ, data = client.uid("MOVE", "1", "Archive")
    assert typ == "OK"
    assert client.select("INBOX")[1] == [b"0"]
    assert client.select("Archive")[1] == [b"1"]
    client.store("1", "+FLAGS", "\\Deleted")
    typ, data = client.expunge()
    assert data == [b"1"]
    assert client.status("Projects/2024", "(MESSAGES UIDNEXT)")[1][0].endswith(b"(MESSAGES 1 UIDNEXT 2)")
    client.logout()


def test_create_rename_delete_subscribe(server: LiveServer) -> None:
    client = connect(server)
    assert client.create("Work")[0] == "OK"
    assert client.create("Work")[0] == "NO"
    assert client.rename("Work", "Jobs")[0] == "OK"
    assert client.subscribe("Jobs")[0] == "OK"
    assert any(b"Jobs" in line for line in client.lsub()[1])
    assert client.delete("Jobs")[0] == "OK"
    assert not any(b"Jobs" in line for line in client.list()[1])
    assert client.delete("INBOX")[0] == "NO"
    client.logout()


def test_other_sessions_see_changes_and_expunge_waits_for_a_safe_moment(server: LiveServer) -> None:
    deliver(server)
    deliver(server)
    first, second = connect(server), connect(server)
    first.select("INBOX")
    second.select("INBOX")
    second.store("2", "+FLAGS", "(\\Deleted)")
    second.expunge()
    typ, data = first.fetch("2", "(BODY.PEEK[])")  # not told yet: still fetchable whole
    assert typ == "OK" and data[0][1].endswith(MESSAGE)
    assert first.untagged_responses.get("EXPUNGE") is None  # never during FETCH by number
    typ, _ = first.noop()
    assert first.untagged_responses.get("EXPUNGE") == [b"2"]
    deliver(server)
    first.noop()
    assert first.untagged_responses.get("EXISTS")[-1] == b"2"
    first.logout()
    second.logout()


def test_idle_sees_smtp_delivery_quickly(server: LiveServer) -> None:
    sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(f'a LOGIN bob@example.test "{PASSWORD}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
    line = b""
    while not line.startswith(b"+"):
        line = f.readline()
    started = time.monotonic()
    threading.Thread(target=deliver, args=(server,)).start()
    line = f.readline()
    elapsed = time.monotonic() - started
    assert line == b"* 1 EXISTS\r\n"
    assert elapsed < 2.0  # SMTP round trip included; the push itself is immediate
    sock.sendall(b"DONE\r\n")
    while not line.startswith(b"c "):
        line = f.readline()
    assert line.startswith(b"c OK")
    sock.close()


def test_implicit_tls_and_starttls(server: LiveServer) -> None:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    client = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=context, timeout=10)
    client.login("bob@example.test", PASSWORD)
    client.logout()
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    client.starttls(ssl_context=context)
    assert "STARTTLS" not in client.capabilities
    client.login("bob@example.test", PASSWORD)
    client.logout()


def test_garbage_and_big_literals_are_refused(server: LiveServer) -> None:
    sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"a LOGIN {99999999999}\r\n")
    assert f.readline().startswith(b"a NO")
    sock.sendall(b"\x00\xff garbage\r\n" * 30)
    lines = [f.readline() for _ in range(21)]
    assert any(line.startswith(b"* BYE") for line in lines)
    sock.close()


def test_starttls_discards_commands_injected_before_the_handshake(server: LiveServer) -> None:
    """CVE-2011-0411: a LOGIN pipelined behind STARTTLS in plaintext must never be executed."""
    sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(f'a STARTTLS\r\nb LOGIN bob@example.test "{PASSWORD}"\r\n'.encode())
    assert f.readline().startswith(b"a OK")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    tls = context.wrap_socket(sock)
    tls.sendall(b"c CAPABILITY\r\n")
    reply = b""
    while b"c OK" not in reply:
        reply += tls.recv(65536)
    assert b"b OK" not in reply  # the injected LOGIN was dropped, not answered
    assert b"AUTH=PLAIN" in reply  # and the session is still not authenticated
    tls.sendall(b"d SELECT INBOX\r\n")
    reply = b""
    while b"d " not in reply:
        reply += tls.recv(65536)
    assert b"d BAD" in reply
    tls.close()


def test_logindisabled_without_tls_when_loopback_plaintext_is_off(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", ["imap"], auth={"plaintext_on_loopback": False}).start()
    try:
        live.add_user("bob@example.test")
        client = imaplib.IMAP4("127.0.0.1", live.ports["imap"], timeout=10)
        assert "LOGINDISABLED" in client.capabilities and "AUTH=PLAIN" not in client.capabilities
        typ, data = client._simple_command("LOGIN", "bob@example.test", f'"{PASSWORD}"')  # type: ignore[attr-defined]
        assert (typ == "NO" and b"PRIVACYREQUIRED" in client.untagged_responses.get("NO", [b""])[0] + (data[0] if data else b"")) or typ == "NO"
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        client.starttls(ssl_context=context)
        assert "LOGINDISABLED" not in client.capabilities
        assert client.login("bob@example.test", PASSWORD)[0] == "OK"
        client.logout()
    finally:
        live.stop()


BROKEN = (b"From: =?bogus?Q?=ZZ?= <broken@remote.example\r\nSubject: =?utf-8?B?!!!?=\r\n"
          b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
          b"--outer\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n"
          b"--x\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@not base64@@@\r\n"
          b"--outer\r\nContent-Type: text/plain; charset=nonexistent\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
          b"=ZZ broken =\r\n\xff\xfe\r\n")  # and no closing boundary


def test_broken_mime_still_answers_every_fetch_item(server: LiveServer) -> None:
    deliver(server, BROKEN)
    client = connect(server)
    client.select("INBOX")
    items = ("(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE UID BODY.PEEK[] BODY.PEEK[HEADER] "
             "BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[1.1] BODY.PEEK[2] BODY.PEEK[2.MIME] "
             "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)] BODY.PEEK[9.9] RFC822.HEADER BINARY.SIZE[2])")
    typ, data = client.fetch("1", items)
    assert typ == "OK"
    joined = b"".join(part if isinstance(part, bytes) else b"".join(part) for part in data)
    for name in (b"ENVELOPE", b"BODYSTRUCTURE", b"BODY[]", b"BODY[1.MIME]", b"BODY[9.9]", b"RFC822.HEADER"):
        assert name in joined, name
    typ, data = client.fetch("1", "(BINARY.PEEK[1.1])")  # bad base64 decodes leniently, never crashes
    assert typ in ("OK", "NO")
    assert client.noop()[0] == "OK"  # the session is still fine
    client.logout()


def test_idle_push_arrives_within_100_ms_of_the_commit(server: LiveServer) -> None:
    from postoffice.store.interface import NewMessage

    sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(f'a LOGIN bob@example.test "{PASSWORD}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
    line = b""
    while not line.startswith(b"+"):
        line = f.readline()
    services = server.services
    assert services is not None
    latencies = []
    for n in range(5):
        async def append(n: int = n) -> float:
            account = await services.directory.get_user("bob@example.test")
            box = await services.store.get_mailbox(account.id, "INBOX")  # type: ignore[union-attr]
            raw = MESSAGE.replace(b"lunch@", f"lunch{n}@".encode())
            await services.store.append_messages(box.id, [NewMessage(await services.store.put_blob(raw), raw=raw)])  # type: ignore[union-attr]
            return time.monotonic()  # the commit is durable here

        committed = server.call(append())
        line = f.readline()
        latencies.append(time.monotonic() - committed)
        assert line == f"* {n + 1} EXISTS\r\n".encode()
        assert f.readline() == f"* {n + 1} RECENT\r\n".encode()  # an IMAP4rev1 session
    assert max(latencies) < 0.1, latencies
    sock.sendall(b"DONE\r\n")
    sock.close()


def test_authenticate_plain_with_sasl_ir_and_with_continuations(server: LiveServer) -> None:
    import base64

    token = base64.b64encode(f"\0bob@example.test\0{PASSWORD}".encode()).decode()
    sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(f"a AUTHENTICATE PLAIN {token}\r\n".encode())  # SASL-IR (RFC 4959)
    assert f.readline().startswith(b"a OK")
    sock.close()
    sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"b AUTHENTICATE LOGIN\r\n")
    assert f.readline().startswith(b"+ ")
    sock.sendall(base64.b64encode(b"bob@example.test") + b"\r\n")
    assert f.readline().startswith(b"+ ")
    sock.sendall(base64.b64encode(PASSWORD.encode()) + b"\r\n")
    assert f.readline().startswith(b"b OK")
    sock.sendall(b"c AUTHENTICATE PLAIN\r\n")
    assert f.readline().startswith(b"c BAD")  # already authenticated: wrong state
    sock.close()
    sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"d AUTHENTICATE PLAIN\r\n")
    assert f.readline().startswith(b"+")
    sock.sendall(b"*\r\n")  # the client cancels
    assert f.readline().startswith(b"d BAD")
    wrong = base64.b64encode(b"\0bob@example.test\0wrong password").decode()
    sock.sendall(f"e AUTHENTICATE PLAIN {wrong}\r\n".encode())
    assert f.readline().startswith(b"e NO [AUTHENTICATIONFAILED]")
    sock.close()


def _tagged(client: imaplib.IMAP4, command: str) -> tuple[bytes, list[bytes]]:
    """Send one raw command; (its tagged reply, the untagged lines before it)."""
    tag = client._new_tag()
    client.send(tag + b" " + command.encode() + b"\r\n")
    untagged = []
    while not (line := client.readline()).startswith(tag + b" "):
        untagged.append(line)
    return line[len(tag) + 1:], untagged


def test_message_numbers_in_an_empty_mailbox_are_bad_star_too_uids_name_nothing(server: LiveServer) -> None:
    """RFC 9051 §9 (seq-number): a message sequence number above the mailbox size is a BAD,
    "This includes "*" if the selected mailbox is empty"; Dovecot answers every message set of
    an empty mailbox `BAD Invalid messageset`. By UID, `*` is UIDNEXT there: nothing, OK."""
    client = connect(server)
    client.create("Empty")
    client.select("Empty")
    for command in ("FETCH 1:* FLAGS", "FETCH * FLAGS", "STORE 1:* +FLAGS (\\Seen)", "COPY 1:* INBOX",
                    "MOVE * INBOX", "FETCH 1 FLAGS"):
        reply, untagged = _tagged(client, command)
        assert reply.startswith(b"BAD"), (command, reply)
        assert not any(b"FETCH" in line for line in untagged), command
    for command in ("UID FETCH 1:* FLAGS", "UID FETCH * FLAGS", "UID STORE 1:* +FLAGS (\\Seen)",
                    "UID COPY 1:* INBOX", "UID MOVE * INBOX", "UID EXPUNGE 1:*", "SEARCH 1:*", "UID SEARCH *"):
        reply, _ = _tagged(client, command)
        assert reply.startswith(b"OK"), (command, reply)
    deliver(server)
    client.select("INBOX")
    reply, untagged = _tagged(client, "FETCH 1:* FLAGS")
    assert reply.startswith(b"OK") and len([line for line in untagged if b"FETCH" in line]) == 1
    client.logout()
