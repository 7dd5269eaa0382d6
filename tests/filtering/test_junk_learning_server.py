"""Junk learning end to end (issue 17, "What it must show": "moving ten such messages out of
Junk and ten others into it changes the next verdict in the trained direction"): a real
postoffice, smtplib on port 25, imaplib MOVE to train, the background trainer `serve` runs, and
the next messages' X-Spam-Rules and mailbox read back over IMAP. DNS answers NXDOMAIN here
(live_server.quiet_dns), as in tests/filtering/test_spam_score_server.py."""
from __future__ import annotations

import email.utils
import imaplib
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer
from postoffice.store.filter_state_interface import JunkTotals

ALICE = "alice@example.test"
BOSS = "carol.boss@example.test"


def such(n: int) -> bytes:
    """The issue's message (Reply-To on a free-mail domain, a display name imitating a local
    user, an .exe attachment), which the spam score files as junk."""
    return (f'From: "Carol Boss" <carol.boss.office{n}@sender.example>\r\n'
            f"Reply-To: carol.boss.private{n}@gmail.com\r\nTo: {ALICE}\r\n"
            f"Subject: Quarterly figures {n}\r\nDate: {email.utils.formatdate()}\r\n"
            f"Message-ID: {email.utils.make_msgid()}\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="sep"\r\n\r\n'
            "--sep\r\nContent-Type: text/plain\r\n\r\nHere are the quarterly figures for the board,"
            " as discussed with accounting.\r\n"
            f'--sep\r\nContent-Type: application/octet-stream; name="figures{n}.exe"\r\n'
            f'Content-Disposition: attachment; filename="figures{n}.exe"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA\r\n--sep--\r\n").encode()


def other(n: int) -> bytes:
    """A clean-looking message the user nevertheless calls junk."""
    return (f"From: Garden Weekly <news@garden-weekly.example>\r\nTo: {ALICE}\r\n"
            f"Subject: This week in the garden, issue {n}\r\nDate: {email.utils.formatdate()}\r\n"
            f"Message-ID: {email.utils.make_msgid()}\r\n\r\n"
            "Tomatoes, seedlings and compost: our weekly gardening tips and nursery offers.\r\n").encode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    # A weight above the junk threshold, so one rule alone moves a clean-scoring message.
    live = LiveServer(tmp_path / "data", ["smtp", "imap"], junk={"weight": 8.0},
                      limits={"max_connections_per_ip": 1000}).start()
    live.add_user(ALICE)
    live.add_user(BOSS)
    yield live
    live.stop()


def send(server: LiveServer, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as client:
        client.ehlo("mx.sender.example")
        assert client.mail("bounce@sender.example")[0] == 250
        assert client.rcpt(ALICE)[0] == 250
        code, text = client.data(raw)
        assert code == 250, text


def connect(server: LiveServer) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    imap.login(ALICE, PASSWORD)
    return imap


def spam_fields(imap: imaplib.IMAP4, mailbox: str, subject: str) -> dict[str, str] | None:
    """The X-Spam fields of the message with SUBJECT in MAILBOX, or None if it is not there."""
    assert imap.select(mailbox, readonly=True)[0] == "OK"
    typ, found = imap.uid("SEARCH", None, "SUBJECT", f'"{subject}"')
    assert typ == "OK"
    uids = found[0].split()
    if not uids:
        return None
    typ, fetched = imap.uid("FETCH", uids[-1], "(BODY.PEEK[HEADER.FIELDS (X-Spam-Score X-Spam-Rules)])")
    assert typ == "OK"
    block = fetched[0][1].decode().replace("\r\n\t", " ").strip()
    return dict(line.split(": ", 1) for line in block.split("\r\n"))


def move_all(imap: imaplib.IMAP4, source: str, subject: str, target: str) -> int:
    assert imap.select(source)[0] == "OK"
    typ, found = imap.uid("SEARCH", None, "SUBJECT", f'"{subject}"')
    uids = found[0].decode().split()
    assert typ == "OK" and uids
    assert imap.uid("MOVE", ",".join(uids), target)[0] == "OK"
    return len(uids)


def wait_trained(server: LiveServer, spam: int, ham: int) -> None:
    assert server.services is not None
    store = server.services.store
    account = server.call(server.services.directory.get_user(ALICE))
    assert account is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (server.call(store.junk_token_counts(account.id, ["x"]))[0] == JunkTotals(spam, ham)
                and not server.call(store.pending_junk_training())):
            return
        time.sleep(0.1)
    raise AssertionError(f"not trained to {spam} spam / {ham} ham within 30 s")


def test_moving_ten_out_of_junk_and_ten_into_it_changes_the_next_verdict(server: LiveServer) -> None:
    for n in range(10):
        send(server, such(n))
        send(server, other(n))
    imap = connect(server)
    before = spam_fields(imap, "Junk", "Quarterly figures 0")
    assert before is not None, "the spam score files such a message as junk"
    clean = spam_fields(imap, "INBOX", "issue 0")
    assert clean is not None and "JUNK_LEARNED" not in clean["X-Spam-Rules"]

    assert move_all(imap, "Junk", "Quarterly figures", "INBOX") == 10   # "not junk"
    assert move_all(imap, "INBOX", "garden", "Junk") == 10              # "junk"
    wait_trained(server, spam=10, ham=10)

    send(server, such(10))
    send(server, other(10))
    now_such = spam_fields(imap, "INBOX", "Quarterly figures 10")   # no longer in Junk
    assert now_such is not None, "the trained ham verdict brings such a message back to the inbox"
    assert "JUNK_LEARNED=-" in now_such["X-Spam-Rules"], now_such
    assert float(now_such["X-Spam-Score"]) < float(before["X-Spam-Score"])
    now_other = spam_fields(imap, "Junk", "issue 10")                 # now in Junk
    assert now_other is not None, "the trained spam verdict files the newsletter as junk"
    assert "JUNK_LEARNED=" in now_other["X-Spam-Rules"] and "JUNK_LEARNED=-" not in now_other["X-Spam-Rules"]
    assert float(now_other["X-Spam-Score"]) > float(clean["X-Spam-Score"])
    imap.logout()


def test_an_untrained_account_gets_no_learned_rule(server: LiveServer) -> None:
    send(server, other(1))
    imap = connect(server)
    fields = spam_fields(imap, "INBOX", "issue 1")
    assert fields is not None and "JUNK_LEARNED" not in fields["X-Spam-Rules"]
    imap.logout()
