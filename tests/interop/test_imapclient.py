"""Scenarios with imapclient (the PyPI IMAP client library): what a typical mail app does."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from live_server import PASSWORD, LiveServer

MESSAGE = b"From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\nSubject: Status\r\n\r\nAll good.\r\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user("bob@example.test")
    yield live
    live.stop()


def client(server: LiveServer) -> IMAPClient:
    c = IMAPClient("127.0.0.1", port=server.ports["imap"], ssl=False, timeout=10)
    c.login("bob@example.test", PASSWORD)
    return c


def test_folders_append_search_fetch_move(server: LiveServer) -> None:
    with client(server) as c:
        folders = {name: flags for flags, _, name in c.list_folders()}
        assert b"\\Sent" in folders["Sent"] and b"\\Trash" in folders["Trash"]
        assert c.find_special_folder(b"\\Junk") == "Junk"
        c.append("INBOX", MESSAGE, flags=[b"$Important"])
        c.select_folder("INBOX")
        uids = c.search(["SUBJECT", "Status"])
        assert len(uids) == 1
        data = c.fetch(uids, ["ENVELOPE", "FLAGS", "BODY.PEEK[]"])[uids[0]]
        assert data[b"ENVELOPE"].subject == b"Status"
        assert data[b"BODY[]"] == MESSAGE
        assert b"$Important" in data[b"FLAGS"]
        c.add_flags(uids, [b"\\Seen"])
        c.move(uids, "Archive")
        assert c.search("ALL") == []
        c.select_folder("Archive")
        assert c.get_flags(c.search("ALL"))  # flags kept across the move
        assert c.folder_status("Archive", ["MESSAGES", "UNSEEN"]) == {b"MESSAGES": 1, b"UNSEEN": 0}


def test_idle_wakes_up_on_append_by_another_session(server: LiveServer) -> None:
    with client(server) as watcher, client(server) as writer:
        watcher.select_folder("INBOX")
        watcher.idle()
        threading.Timer(0.2, lambda: writer.append("INBOX", MESSAGE)).start()
        started = time.monotonic()
        responses = watcher.idle_check(timeout=5)
        watcher.idle_done()
        assert (1, b"EXISTS") in responses
        assert time.monotonic() - started < 2


def test_condstore_and_qresync_resync_after_changes_elsewhere(server: LiveServer) -> None:
    """A phone (QRESYNC) goes offline; meanwhile a laptop expunges and changes flags. On
    reconnect one SELECT (QRESYNC ...) tells the phone exactly what happened (RFC 7162 §3.2.5)."""
    with client(server) as laptop:
        for n in range(6):
            laptop.append("INBOX", MESSAGE.replace(b"Status", b"Status %d" % n))
    with client(server) as phone:
        assert b"QRESYNC" in phone.capabilities() and b"CONDSTORE" in phone.capabilities()
        phone.enable("QRESYNC")
        state = phone.select_folder("INBOX")
        uidvalidity, modseq = state[b"UIDVALIDITY"], state[b"HIGHESTMODSEQ"]
        known = phone.search("ALL")
        assert known == [1, 2, 3, 4, 5, 6]
        flags = phone.fetch(known, ["FLAGS", "MODSEQ"])
        assert all(data[b"MODSEQ"][0] <= modseq for data in flags.values())
    with client(server) as laptop:
        laptop.select_folder("INBOX")
        laptop.add_flags([2, 5], [b"\\Flagged"])
        laptop.delete_messages([3, 4])
        laptop.expunge()
        laptop.add_flags([6], [b"$Later"])
        # An untouched message keeps its mod-sequence: a conditional store against the old
        # modseq succeeds for it and fails ([MODIFIED]) for the one just changed.
        typ, _ = laptop._imap.uid("STORE", "1,6", f"(UNCHANGEDSINCE {modseq}) +FLAGS (\\Seen)")
        assert typ == "OK"
        assert laptop._imap.untagged_responses.get("MODIFIED") == [b"6"]  # the tagged [MODIFIED 6]
    with client(server) as phone:
        phone.enable("QRESYNC")
        imap = phone._imap
        typ, _ = imap._simple_command("SELECT", f"INBOX (QRESYNC ({uidvalidity} {modseq} 1:6))")
        assert typ == "OK"
        imap.state = "SELECTED"  # imaplib cannot send SELECT parameters itself
        vanished = imap.untagged_responses.pop("VANISHED", [])
        assert vanished == [b"(EARLIER) 3:4"]
        fetched = imap.untagged_responses.pop("FETCH", [])
        changed = {int(line.split(b"UID ")[1].split()[0]): line for line in fetched}
        assert set(changed) == {1, 2, 5, 6}  # 1 got \Seen from the conditional store
        assert b"\\Flagged" in changed[2] and b"\\Flagged" in changed[5] and b"$Later" in changed[6]
        assert all(b"MODSEQ (" in line for line in fetched)
        # CHANGEDSINCE with VANISHED answers the same question for any UID range later on.
        typ, data = imap.uid("FETCH", "1:*", f"(FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
        assert typ == "OK"
        assert imap.untagged_responses.pop("VANISHED", []) == [b"(EARLIER) 3:4"]
        assert len(data) == 4 and all(b"MODSEQ" in line for line in data)
        # Expunges are now reported as VANISHED, not EXPUNGE.
        phone.delete_messages([1])
        imap._simple_command("EXPUNGE")
        assert imap.untagged_responses.pop("VANISHED", []) == [b"1"]
        assert "EXPUNGE" not in imap.untagged_responses


def test_shared_mailbox_used_by_three_users_and_quota(server: LiveServer) -> None:
    """A team mailbox shared by SETACL; three imapclient sessions see each other's work; a full
    mailbox refuses APPEND with [OVERQUOTA]."""
    for user in ("team@example.test", "alice@example.test", "carol@example.test"):
        server.add_user(user)
    with IMAPClient("127.0.0.1", port=server.ports["imap"], ssl=False, timeout=10) as team:
        team.login("team@example.test", PASSWORD)
        assert b"ACL" in team.capabilities() and b"QUOTA" in team.capabilities()
        team.setacl("INBOX", "alice@example.test", "lrswi")
        team.setacl("INBOX", "carol@example.test", "lrs")
        acl = dict(team.getacl("INBOX"))
        assert acl[b"alice@example.test"] == b"lrswi" and acl[b"carol@example.test"] == b"lrs"
        team.append("INBOX", MESSAGE)
        team.select_folder("INBOX")
        shared = "Shared/team@example.test/INBOX"
        with client(server) as bob_unshared:  # bob was given nothing
            assert not any(name.startswith("Shared/") for _, _, name in bob_unshared.list_folders())
        alice = IMAPClient("127.0.0.1", port=server.ports["imap"], ssl=False, timeout=10)
        carol = IMAPClient("127.0.0.1", port=server.ports["imap"], ssl=False, timeout=10)
        alice.login("alice@example.test", PASSWORD)
        carol.login("carol@example.test", PASSWORD)
        assert alice.namespace().other[0][0] == "Shared/"
        assert shared in [name for _, _, name in alice.list_folders("Shared/")]
        alice.select_folder(shared)
        carol.select_folder(shared)
        carol.idle()
        alice.add_flags([1], [b"\\Flagged"])
        alice.append(shared, MESSAGE.replace(b"Status", b"Second"))
        seen = carol.idle_check(timeout=5)
        while len(seen) < 2:
            seen += carol.idle_check(timeout=5)
        carol.idle_done()
        fetches = [item for item in seen if item[:2] == (1, b"FETCH")]
        assert fetches and "Flagged" in str(fetches[0]), seen
        assert (2, b"EXISTS") in seen
        assert len(team.search("ALL")) == 2  # the owner sees Alice's message too
        assert carol.get_flags([1])[1] == (b"\\Flagged",)  # \Seen is per user; \Flagged is shared
        alice.logout()
        carol.logout()
    server.call(server.services.store.set_quota("alice@example.test", 2048))  # type: ignore[union-attr]
    with IMAPClient("127.0.0.1", port=server.ports["imap"], ssl=False, timeout=10) as alice:
        alice.login("alice@example.test", PASSWORD)
        quota_root = alice.get_quota_root("INBOX")
        assert quota_root[1][0].resource == "STORAGE" and quota_root[1][0].limit == 2
        from imapclient.exceptions import IMAPClientError

        with pytest.raises(IMAPClientError, match="OVERQUOTA"):
            alice.append("INBOX", MESSAGE + b"x" * 4096)
