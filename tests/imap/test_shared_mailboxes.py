"""Shared mailboxes (RFC 4314 ACL, RFC 2342 namespaces) and quotas (RFC 9208) over real sockets:
three users working in one team mailbox at once, each seeing the others' changes live."""
from __future__ import annotations

import imaplib
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

TEAM, ALICE, BOB, CAROL = "team@example.test", "alice@example.test", "bob@example.test", "carol@example.test"
SHARED_INBOX = f"Shared/{TEAM}/INBOX"
MESSAGE = b"From: client@example.test\r\nSubject: order 42\r\n\r\nPlease ship it.\r\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap", "smtp"]).start()
    for user in (TEAM, ALICE, BOB, CAROL):
        live.add_user(user)
    share(live, TEAM, "INBOX", ALICE, "lrswi")
    share(live, TEAM, "INBOX", "anyone", "lr")
    yield live
    live.stop()


def share(server: LiveServer, owner: str, mailbox: str, grantee: str, rights: str) -> None:
    assert server.services is not None
    services = server.services

    async def go() -> None:
        account = await services.directory.get_user(owner)
        assert account is not None
        record = await services.store.get_mailbox(account.id, mailbox)
        assert record is not None
        await services.store.set_rights(record.id, grantee, rights)

    server.call(go())


def login(server: LiveServer, user: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    client.login(user, PASSWORD)
    return client


def deliver(server: LiveServer, to: str = TEAM) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as smtp:
        smtp.sendmail("client@example.test", [to], MESSAGE)


def quoted(name: str) -> str:
    return '"' + name + '"'


def test_namespace_and_list_show_what_is_shared(server: LiveServer) -> None:
    alice = login(server, ALICE)
    typ, data = alice.namespace()
    assert data == [b'(("" "/")) (("Shared/" "/")) NIL']
    typ, listing = alice.list('""', "Shared/*")
    names = [line.decode() for line in listing]
    assert any(line.endswith(f'"/" {SHARED_INBOX}') for line in names), names
    assert not any("\\Sent" in line for line in names if "Shared/" in line)  # the owner's special-use is not mine
    typ, listing = alice.list()
    assert not any(f"Shared/{TEAM}/Sent" in line.decode() for line in listing)  # not shared
    carol = login(server, CAROL)
    typ, listing = carol.list('""', "Shared/*")
    assert any(SHARED_INBOX in line.decode() for line in listing)  # "anyone" has lr
    share(server, TEAM, "INBOX", "anyone", "")
    typ, listing = carol.list('""', "Shared/*")
    assert listing == [None]
    typ, data = carol.select(quoted(SHARED_INBOX))
    assert typ == "NO" and b"[NONEXISTENT]" in data[0]  # not even its existence is revealed
    for client in (alice, carol):
        client.logout()


def test_three_users_work_in_one_mailbox_live(server: LiveServer) -> None:
    deliver(server)
    team, alice, bob = login(server, TEAM), login(server, ALICE), login(server, BOB)
    assert team.select("INBOX")[0] == "OK"
    assert alice.select(quoted(SHARED_INBOX))[0] == "OK"
    assert not alice.is_readonly
    with pytest.raises(imaplib.IMAP4.readonly):  # "lr": SELECT answers [READ-ONLY]
        bob.select(quoted(SHARED_INBOX))
    bob.is_readonly = True  # so imaplib goes on and lets the server answer
    idlers = []
    for client in (team, bob):
        tag = client._new_tag()
        client.send(tag + b" IDLE\r\n")
        assert client.readline().startswith(b"+")
        idlers.append(client)
    # Alice works in the team's mailbox: everyone sees it at once.
    assert alice.store("1", "+FLAGS", "\\Flagged")[0] == "OK"
    for client in idlers:
        line = client.readline()
        assert b"FETCH" in line and b"\\Flagged" in line, line
    typ, data = alice.append(quoted(SHARED_INBOX), None, None, MESSAGE)
    assert typ == "OK"
    for client in idlers:
        assert client.readline() == b"* 2 EXISTS\r\n"
    start = time.monotonic()
    deliver(server)  # new mail for the team reaches every member's IDLE
    for client in idlers:
        line = client.readline()
        while line.startswith(b"* 2 RECENT") or line.startswith(b"* 3 RECENT") or b"RECENT" in line:
            line = client.readline()
        assert line == b"* 3 EXISTS\r\n", line
    assert time.monotonic() - start < 5
    for client in idlers:
        client.send(b"DONE\r\n")
        client.readline()
    # Rights are enforced: Bob may only read, Alice may not expunge.
    typ, data = bob.store("1", "+FLAGS", "\\Deleted")
    assert typ == "NO" and b"[READ-ONLY]" in data[0]
    typ, data = bob.append(quoted(SHARED_INBOX), None, None, MESSAGE)
    assert typ == "NO" and b"[NOPERM]" in data[0]
    assert alice.store("2", "+FLAGS", "\\Deleted")[0] == "OK"
    typ, data = alice.expunge()
    assert typ == "NO" and b"[NOPERM]" in data[0]
    assert team.expunge()[0] == "OK"  # the owner may
    for client in (team, alice, bob):
        client.logout()


def test_myrights_getacl_setacl(server: LiveServer) -> None:
    alice, team, carol = login(server, ALICE), login(server, TEAM), login(server, CAROL)
    typ, data = alice.myrights(quoted(SHARED_INBOX))
    assert data[0].endswith(b" lrswi")
    assert alice.getacl(quoted(SHARED_INBOX))[0] == "NO"  # no "a" right
    typ, data = team.getacl("INBOX")
    assert typ == "OK"
    acl = data[0].decode()
    assert f"{TEAM} lrswipkxtecda" in acl and f"{ALICE} lrswi" in acl and "anyone lr" in acl
    assert team.setacl("INBOX", CAROL, "lrs")[0] == "OK"
    typ, data = carol.myrights(quoted(SHARED_INBOX))
    assert data[0].endswith(b" lrs")
    assert carol.select(quoted(SHARED_INBOX))[0] == "OK"
    assert team.deleteacl("INBOX", CAROL)[0] == "OK"
    assert team.setacl("INBOX", "nobody@example.test", "lr")[0] == "NO"
    assert team.setacl("INBOX", TEAM, "lr")[0] == "NO"  # the owner keeps every right
    for client in (alice, team, carol):
        client.logout()


def test_quota_refuses_append_with_overquota(server: LiveServer) -> None:
    assert server.services is not None
    server.call(server.services.store.set_quota(ALICE, 4096))
    alice = login(server, ALICE)
    typ, data = alice.getquotaroot("INBOX")
    assert typ == "OK"
    assert data[0] == [b'INBOX ""'] and data[1][0].startswith(b'"" (STORAGE 0 4)')
    big = MESSAGE + b"x" * 5000 + b"\r\n"
    typ, data = alice.append("INBOX", None, None, big)
    assert typ == "NO" and b"OVERQUOTA" in data[0]
    assert alice.append("INBOX", None, None, MESSAGE)[0] == "OK"
    assert alice.setquota('""', "(STORAGE 100000)")[0] == "NO"
    alice.logout()


def test_each_member_has_their_own_seen_state(server: LiveServer) -> None:
    deliver(server)
    deliver(server)
    team, alice = login(server, TEAM), login(server, ALICE)
    team.select("INBOX")
    alice.select(quoted(SHARED_INBOX))
    alice.fetch("1", "(BODY[])")  # Alice reads message 1: seen for her...
    assert b"\\Seen" in alice.fetch("1", "(FLAGS)")[1][0]
    assert b"\\Seen" not in team.fetch("1", "(FLAGS)")[1][0]  # ...not for the team owner
    team.store("2", "+FLAGS", "\\Seen")
    assert b"\\Seen" not in alice.fetch("2", "(FLAGS)")[1][0]
    alice.store("1", "+FLAGS", "\\Flagged")  # other flags are shared
    assert b"\\Flagged" in team.fetch("1", "(FLAGS)")[1][0]
    assert alice.status(quoted(SHARED_INBOX), "(UNSEEN)")[1] == [f"{SHARED_INBOX} (UNSEEN 1)".encode()]
    assert team.status("INBOX", "(UNSEEN)")[1] == [b"INBOX (UNSEEN 1)"]
    assert alice.search(None, "UNSEEN")[1] == [b"2"]
    bob = login(server, BOB)
    bob.select(quoted(SHARED_INBOX), readonly=True)
    assert bob.search(None, "UNSEEN")[1] == [b"1 2"]  # Bob has read nothing
    for client in (team, alice, bob):
        client.logout()


def test_notify_tells_members_about_the_team_mailbox(server: LiveServer) -> None:
    """RFC 5465: Alice works in her own Archive and still hears about the team's new mail."""
    alice = login(server, ALICE)
    alice.select("Archive")
    tag = alice._new_tag()
    alice.send(tag + b' NOTIFY SET STATUS (SELECTED (MessageNew MessageExpunge)) (SUBTREE "Shared" (MessageNew MessageExpunge))\r\n')
    lines = []
    while not (line := alice.readline()).startswith(tag):
        lines.append(line)
    assert line.startswith(tag + b" OK"), line
    assert any(b"* STATUS" in line and SHARED_INBOX.encode() in line and b"MESSAGES 0" in line for line in lines), lines
    deliver(server)  # the team gets mail; Alice sends no command at all
    line = alice.readline()
    assert line.startswith(b"* STATUS " + SHARED_INBOX.encode() + b" (MESSAGES 1 UIDNEXT 2"), line
    alice.logout()


def test_replacing_flags_keeps_those_the_user_may_not_change(server: LiveServer) -> None:
    deliver(server)
    team = login(server, TEAM)
    team.select("INBOX")
    team.store("1", "+FLAGS", "(\\Flagged $Urgent)")
    share(server, TEAM, "INBOX", CAROL, "lrs")  # Carol may only mark read/unread
    carol = login(server, CAROL)
    carol.select(quoted(SHARED_INBOX))
    typ, _ = carol.store("1", "FLAGS", "(\\Seen)")  # RFC 4314 §4: \Flagged and $Urgent stay
    assert typ == "OK"
    flags = carol.fetch("1", "(FLAGS)")[1][0]
    assert b"\\Seen" in flags and b"\\Flagged" in flags and b"$Urgent" in flags, flags
    assert b"\\Flagged" in team.fetch("1", "(FLAGS)")[1][0]
    for client in (team, carol):
        client.logout()
