"""Sieve at delivery, end to end over real sockets: scripts stored for accounts, mail sent with
smtplib (port 25) and raw LMTP, results read with imaplib and from the store's outbound queue
(the live server runs no queue runner, so what would leave stays in the queue to be looked at)."""

from __future__ import annotations

import imaplib
import itertools
import logging
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer
from postoffice.store.interface import QueuedMessage
from smtp_client import RawSmtp

BOSS_FILTER = 'require "fileinto";\r\nif not address :is "from" "boss@example.org" { fileinto "Other"; }\r\n'
_ids = itertools.count(1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["smtp", "lmtp", "imap"],
                      limits={"max_connections_per_ip": 1000}).start()
    live.add_user("alice@example.test")
    live.add_user("bob@example.test")
    yield live
    live.stop()


def set_script(server: LiveServer, address: str, text: str, name: str = "main") -> None:
    assert server.services is not None
    services = server.services

    async def put() -> None:
        account = await services.directory.get_user(address)
        assert account is not None
        await services.store.put_sieve_script(account.id, name, text)
        await services.store.activate_sieve_script(account.id, name)

    server.call(put())


def create_mailbox(server: LiveServer, address: str, name: str) -> None:
    assert server.services is not None
    services = server.services

    async def create() -> None:
        account = await services.directory.get_user(address)
        assert account is not None
        await services.store.create_mailbox(account.id, name)

    server.call(create())


def queue(server: LiveServer) -> list[tuple[QueuedMessage, bytes]]:
    assert server.services is not None
    store = server.services.store

    async def read() -> list[tuple[QueuedMessage, bytes]]:
        return [(row, await store.read_blob(row.blob)) for row in await store.list_queue()]

    return server.call(read())


def message(sender: str, to: str = "alice@example.test", subject: str = "hello", extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <m{next(_ids)}@remote.example>\r\n"
            f"{extra}\r\nHello.\r\n").encode()


def send(server: LiveServer, sender: str, recipients: list[str], raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as client:
        client.ehlo("client.remote.example")
        assert client.sendmail(sender, recipients, raw) == {}


def imap_fetch(server: LiveServer, address: str, mailbox: str, item: str = "BODY.PEEK[HEADER]") -> list[bytes]:
    with imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30) as client:
        client.login(address, PASSWORD)
        typ, _ = client.select(f'"{mailbox}"', readonly=True)
        assert typ == "OK", mailbox
        typ, data = client.fetch("1:*", f"({item})")
        if data == [None]:
            return []
        return [part[1] for part in data if isinstance(part, tuple)]


def imap_flags(server: LiveServer, address: str, mailbox: str) -> list[set[str]]:
    with imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30) as client:
        client.login(address, PASSWORD)
        assert client.select(f'"{mailbox}"', readonly=True)[0] == "OK"
        _, data = client.fetch("1:*", "(FLAGS)")
        return [{f.decode() for f in imaplib.ParseFlags(line)} for line in data if isinstance(line, bytes)]


def test_only_the_boss_stays_in_the_inbox(server: LiveServer) -> None:
    """The issue's script, as written: mail not from the boss goes to Other."""
    create_mailbox(server, "alice@example.test", "Other")
    set_script(server, "alice@example.test", BOSS_FILTER)
    send(server, "boss@example.org", ["alice@example.test"], message("The Boss <boss@example.org>", subject="from boss"))
    send(server, "news@example.net", ["alice@example.test"], message("news@example.net", subject="newsletter"))
    send(server, "boss@example.org", ["alice@example.test"], message("Impostor <fake@example.net>", subject="not boss"))
    inbox = imap_fetch(server, "alice@example.test", "INBOX")
    other = imap_fetch(server, "alice@example.test", "Other")
    assert [b"from boss" in h for h in inbox] == [True]
    assert sorted(b"newsletter" in h for h in other) == [False, True]
    assert all(b"Subject: from boss" not in h for h in other)
    # bob has no script: everything in his INBOX
    send(server, "news@example.net", ["bob@example.test"], message("news@example.net", to="bob@example.test"))
    assert len(server.messages("bob@example.test")) == 1


def test_vacation_answers_once_per_sender_and_never_to_a_list(server: LiveServer) -> None:
    set_script(server, "alice@example.test",
               'require "vacation";\r\nvacation :days 7 :subject "Away" "I am away until Monday.";\r\n')
    send(server, "carol@remote.example", ["alice@example.test"], message("Carol <carol@remote.example>"))
    send(server, "carol@remote.example", ["alice@example.test"], message("Carol <carol@remote.example>"))
    send(server, "dave@remote.example", ["alice@example.test"], message("dave@remote.example"))
    send(server, "list-bounces@lists.example", ["alice@example.test"],
         message("someone@lists.example", extra="List-Id: <talk.lists.example>\r\n"))
    send(server, "eve@remote.example", ["alice@example.test"],
         message("eve@remote.example", extra="Precedence: bulk\r\n"))
    send(server, "bot@remote.example", ["alice@example.test"],
         message("bot@remote.example", extra="Auto-Submitted: auto-generated\r\n"))
    send(server, "frank@remote.example", ["alice@example.test"], message("frank@remote.example", to="other@remote.example"))
    rows = queue(server)
    assert sorted(r.envelope.recipients[0].address for r, _ in rows) == ["carol@remote.example", "dave@remote.example"]
    for row, raw in rows:
        assert row.envelope.sender == ""  # RFC 5230 §5.1
        assert b"\r\nAuto-Submitted: auto-replied" in raw and b"\r\nSubject: Away\r\n" in raw
        assert b"\r\nIn-Reply-To: <m" in raw and b"From: <alice@example.test>" in raw
        assert raw.endswith(b"I am away until Monday.\r\n")
    assert len(server.messages("alice@example.test")) == 7  # vacation keeps every message


def test_vacation_from_must_be_the_accounts_own(server: LiveServer) -> None:
    set_script(server, "alice@example.test",
               'require "vacation";\r\nvacation :from "ceo@bank.example" :subject "Away" "Gone.";\r\n')
    send(server, "carol@remote.example", ["alice@example.test"], message("carol@remote.example"))
    (_, raw), = queue(server)
    assert b"\r\nFrom: <alice@example.test>\r\n" in b"\r\n" + raw and b"bank.example" not in raw


def test_redirect_leaves_through_the_queue_with_srs(server: LiveServer) -> None:
    set_script(server, "alice@example.test", 'redirect "alice.elsewhere@remote.example";\r\n')
    send(server, "carol@remote.example", ["alice@example.test"], message("carol@remote.example"))
    (row, raw), = queue(server)
    assert [r.address for r in row.envelope.recipients] == ["alice.elsewhere@remote.example"]
    assert row.envelope.sender.startswith("SRS0=") and row.envelope.sender.endswith("@example.test")
    assert raw.startswith(b"X-Sieve-Redirected-From: alice@example.test\r\n")
    assert b"Return-Path" not in raw
    assert server.messages("alice@example.test") == []  # redirect cancels the implicit keep


def test_reject_is_a_550_in_the_smtp_dialogue(server: LiveServer) -> None:
    set_script(server, "alice@example.test",
               'require "reject";\r\nif header :contains "subject" "offer" { reject "No offers, thank you."; }\r\n')
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as client:
        client.ehlo("client.remote.example")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("carol@remote.example", ["alice@example.test"], message("carol@remote.example", subject="an offer"))
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error == b"5.7.1 No offers, thank you."
    assert server.messages("alice@example.test") == [] and queue(server) == []


def test_reject_by_one_of_two_smtp_recipients_sends_a_notice(server: LiveServer) -> None:
    set_script(server, "alice@example.test", 'require "reject";\r\nreject "Not from you.";\r\n')
    send(server, "carol@remote.example", ["alice@example.test", "bob@example.test"], message("carol@remote.example"))
    assert len(server.messages("bob@example.test")) == 1 and server.messages("alice@example.test") == []
    (row, raw), = queue(server)
    assert row.envelope.sender == "" and row.envelope.recipients[0].address == "carol@remote.example"
    assert b"report-type=disposition-notification" in raw and b"Not from you." in raw


def test_lmtp_gives_each_recipient_its_own_reply(server: LiveServer) -> None:
    set_script(server, "alice@example.test", 'require "ereject";\r\nereject "Alice takes no mail.";\r\n')
    client = RawSmtp(server.ports["lmtp"])
    try:
        assert client.cmd("LHLO c.example")[0] == 250
        assert client.cmd("MAIL FROM:<carol@remote.example>")[0] == 250
        assert client.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert client.cmd("RCPT TO:<bob@example.test>")[0] == 250
        assert client.cmd("DATA")[0] == 354
        client.send(message("carol@remote.example") + b".\r\n")
        alice, bob = client.reply(), client.reply()
        client.cmd("QUIT")
    finally:
        client.close()
    assert alice == (550, "550 5.7.1 Alice takes no mail.\r\n")
    assert bob[0] == 250
    assert len(server.messages("bob@example.test")) == 1 and server.messages("alice@example.test") == []
    assert queue(server) == []  # refused in the dialogue: no notice


def test_discard_is_logged_with_the_script_and_line(server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    set_script(server, "alice@example.test", 'if header :contains "subject" "spam" {\r\n  discard;\r\n}\r\n',
               name="cleanup")
    with caplog.at_level(logging.INFO, logger="postoffice.events"):
        send(server, "carol@remote.example", ["alice@example.test"], message("carol@remote.example", subject="spam!"))
        send(server, "carol@remote.example", ["alice@example.test"], message("carol@remote.example", subject="ham"))
    assert len(server.messages("alice@example.test")) == 1
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("filter outcome")]
    assert any("account=alice@example.test" in line and "discard (script 'cleanup' line 2)" in line for line in lines), lines
    assert len(lines) == 1, lines  # the script's plain keep in INBOX (the "ham") is not logged


def test_editheader_and_flags_are_visible_over_imap(server: LiveServer) -> None:
    set_script(server, "alice@example.test",
               'require ["editheader", "imap4flags", "fileinto", "mailbox"];\r\n'
               'addheader "X-Sieved" "yes";\r\ndeleteheader "X-Remove-Me";\r\n'
               'fileinto :create :flags ["\\\\Flagged", "$Sorted"] "Sorted/Today";\r\n')
    send(server, "carol@remote.example", ["alice@example.test", "bob@example.test"],
         message("carol@remote.example", extra="X-Remove-Me: please\r\n"))
    (header,) = imap_fetch(server, "alice@example.test", "Sorted/Today")
    assert header.startswith(b"X-Sieved: yes\r\n") or b"\r\nX-Sieved: yes\r\n" in header
    assert b"X-Remove-Me" not in header
    assert imap_flags(server, "alice@example.test", "Sorted/Today") == [{"\\Flagged", "$Sorted", "\\Recent"}]
    (bobs,) = server.messages("bob@example.test")  # bob's copy is as it came
    assert b"X-Remove-Me: please" in bobs and b"X-Sieved" not in bobs


def test_fileinto_a_missing_mailbox_files_into_inbox_and_says_why(server: LiveServer,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    set_script(server, "alice@example.test", 'require "fileinto";\r\nfileinto "Nowhere";\r\n')
    with caplog.at_level(logging.INFO, logger="postoffice.events"):
        send(server, "carol@remote.example", ["alice@example.test"], message("carol@remote.example"))
    assert len(server.messages("alice@example.test")) == 1
    assert any("fileinto 'Nowhere'" in r.getMessage() and "no such mailbox, filed into INBOX" in r.getMessage()
               for r in caplog.records)


def test_duplicate_is_discarded_the_second_time(server: LiveServer) -> None:
    set_script(server, "alice@example.test", 'require "duplicate";\r\nif duplicate { discard; }\r\n')
    raw = message("carol@remote.example")
    send(server, "carol@remote.example", ["alice@example.test"], raw)
    send(server, "carol@remote.example", ["alice@example.test"], raw)
    send(server, "carol@remote.example", ["alice@example.test"], message("carol@remote.example"))
    assert len(server.messages("alice@example.test")) == 2


def test_runtime_error_keeps_the_message_and_logs_the_script(server: LiveServer,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    redirects = "".join(f'redirect "r{i}@remote.example";\r\n' for i in range(10))  # over [sieve] max_redirects
    set_script(server, "alice@example.test", 'require "fileinto";\r\nfileinto "INBOX";\r\n' + redirects, name="busy")
    with caplog.at_level(logging.WARNING):
        send(server, "carol@remote.example", ["alice@example.test"], message("carol@remote.example"))
    assert len(server.messages("alice@example.test")) == 1 and queue(server) == []
    assert any("script 'busy'" in r.getMessage() and "redirects" in r.getMessage() for r in caplog.records)


def _with_globals(tmp_path: Path, before: str | None, after: str | None) -> LiveServer:
    overrides: dict[str, Path] = {}
    for label, text in (("before", before), ("after", after)):
        if text is not None:
            path = tmp_path / f"{label}.sieve"
            path.write_text(text)
            overrides[label] = path
    live = LiveServer(tmp_path / "data", ["smtp"], sieve=overrides).start()
    live.add_user("alice@example.test")
    return live


def test_global_scripts_run_before_and_after_the_users(tmp_path: Path) -> None:
    live = _with_globals(
        tmp_path,
        before='require ["fileinto", "imap4flags", "mailbox"];\r\nif header :contains "subject" "[SPAM]" '
               '{ fileinto :create "Junk"; stop; }\r\naddflag "$Before";\r\n',
        after='require ["fileinto", "mailbox"];\r\nfileinto :create "After";\r\n')
    try:
        set_script(live, "alice@example.test", 'require ["fileinto", "copy"];\r\n'
                   'if header :contains "subject" "work" { fileinto :copy "INBOX"; }\r\n')
        send(live, "carol@remote.example", ["alice@example.test"], message("carol@remote.example", subject="[SPAM] win"))
        send(live, "carol@remote.example", ["alice@example.test"], message("carol@remote.example", subject="work"))
        send(live, "carol@remote.example", ["alice@example.test"], message("carol@remote.example", subject="other"))
        assert [b"[SPAM]" in m for m in live.messages("alice@example.test", "Junk")] == [True]
        # "work": the user's fileinto :copy INBOX, then after's fileinto (the keep ended with it)
        assert [b"Subject: work" in m for m in live.messages("alice@example.test", "INBOX")] == [True]
        assert sorted(b"Subject: work" in m for m in live.messages("alice@example.test", "After")) == [False, True]
    finally:
        live.stop()


def test_a_broken_global_script_is_logged_once_and_mail_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    live = _with_globals(tmp_path, before='if header :is "subject" { discard; }\r\n', after=None)
    try:
        with caplog.at_level(logging.ERROR, logger="postoffice.filtering.sieve_delivery"):
            for _ in range(3):
                send(live, "carol@remote.example", ["alice@example.test"], message("carol@remote.example"))
        assert len(live.messages("alice@example.test")) == 3
        errors = [r.getMessage() for r in caplog.records if "does not compile" in r.getMessage()]
        assert len(errors) == 1 and "before" in errors[0] and "line 1" in errors[0], errors
    finally:
        live.stop()
