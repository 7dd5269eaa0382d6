"""`postoffice migrate` (issue 18) with real servers on loopback: postoffice's own POP3 and IMAP,
and Dovecot as a foreign IMAP server. Every run is the real CLI.

Multisets are read independently of the code under test: imaplib for IMAP, the store for a
local account, and sha256 of the CRLF bytes.
"""
from __future__ import annotations

import hashlib
import imaplib
import json
import poplib
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dovecot_kit import PASSWORD as DOVECOT_PASSWORD
from dovecot_kit import running_dovecot

from cli_run import po
from live_server import PASSWORD, LiveServer
from postoffice.store.interface import NewMessage

SOURCE = "old@example.test"
TARGET = "new@example.test"
BASE = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap", "pop3"]).start()
    live.add_user(SOURCE)
    live.add_user(TARGET)
    yield live
    live.stop()


def message(n: int, *, message_id: bool = True, size: int = 0) -> bytes:
    mid = f"Message-ID: <{n}@old.example>\r\n" if message_id else ""
    return (f"Received: from mx.old.example by pop.old.example; Mon, 1 Mar 2021 00:00:00 +0000\r\n"
            f"From: sender{n % 7}@example.org\r\nTo: {SOURCE}\r\nSubject: note {n}\r\n"
            f"Date: Mon, 1 Mar 2021 0{n % 10}:00:00 +0000\r\n{mid}\r\nHello {n}.\r\n"
            + "filler line\r\n" * (size // 13)).encode()


def put(server: LiveServer, address: str, folder: str, raws: list[bytes]) -> None:
    services = server.services
    assert services is not None

    async def go() -> None:
        account = await services.directory.get_user(address)
        assert account is not None
        box = await services.store.get_mailbox(account.id, folder)
        if box is None:
            box = await services.store.create_mailbox(account.id, folder, subscribed=True)
        for raw in raws:
            await services.store.append_messages(box.id, [NewMessage(await services.store.put_blob(raw), raw=raw)])

    server.call(go(), timeout=300)


def as_pop3_client_keeps_it(raw: bytes, n: int) -> bytes:
    """The copy a POP3 client put in the IMAP account: its own fields on top and below."""
    head, _, body = raw.partition(b"\r\n\r\n")
    return (b"Received: from pop.old.example by laptop (fetchmail) with POP3 id " + str(n).encode()
            + b";\r\n\tTue, 2 Mar 2021 00:00:00 +0000\r\nX-UIDL: x" + str(n).encode() + b"\r\n"
            + head + b"\r\nStatus: RO\r\n\r\n" + body)


def migrate(server: LiveServer, *args: str, check: bool = True, env: dict[str, str] | None = None) -> dict[str, object]:
    result = po("migrate", *args, "--json", data=server.data_dir, check=check, timeout=600,
                env={"POSTOFFICE_FROM_PASSWORD": PASSWORD, "POSTOFFICE_TO_PASSWORD": PASSWORD, **(env or {})})
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def stored(server: LiveServer, address: str, folder: str = "INBOX") -> list[bytes]:
    return server.messages(address, folder)


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def pop3_uidls(port: int, user: str) -> set[str]:
    pop = poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        pop.user(user)
        pop.pass_(PASSWORD)
        return {line.split()[1].decode() for line in pop.uidl()[1]}
    finally:
        pop.quit()


@pytest.mark.parametrize("destination", ["local", "imap"])
def test_pop3_to_imap_with_part_already_copied_by_a_pop3_client_gives_no_duplicates(
        server: LiveServer, destination: str) -> None:
    raws = [message(n) for n in range(12)]
    put(server, SOURCE, "INBOX", raws)
    source_uidls = pop3_uidls(server.ports["pop3"], SOURCE)
    # A POP3 client copied five of them into the IMAP account before, with its own fields.
    put(server, TARGET, "INBOX", [as_pop3_client_keeps_it(raws[n], n) for n in (0, 3, 4, 8, 11)])
    args = ["--from", f"pop3://{SOURCE}@127.0.0.1:{server.ports['pop3']}?tls=none", "--to",
            f"local:{TARGET}" if destination == "local" else f"imap://{TARGET}@127.0.0.1:{server.ports['imap']}?tls=none"]

    dry = migrate(server, *args, "--dry-run")
    assert (dry["copied"], dry["skipped_duplicates"], dry["failed"]) == (7, 5, 0)
    assert len(stored(server, TARGET)) == 5  # a dry run stores nothing

    real = migrate(server, *args)
    assert (real["copied"], real["skipped_duplicates"], real["failed"]) == (dry["copied"], dry["skipped_duplicates"], 0)
    assert real["bytes"] == dry["bytes"] and real["folders"] == 1
    held = stored(server, TARGET)
    assert len(held) == 12
    # Each source message is there exactly once (by its body, which no one rewrote).
    assert Counter(re.search(rb"Hello \d+\.", m)[0] for m in held) == Counter(  # type: ignore[index]
        re.search(rb"Hello \d+\.", m)[0] for m in raws)  # type: ignore[index]

    again = migrate(server, *args)
    assert (again["copied"], again["skipped_duplicates"]) == (0, 12)
    assert len(stored(server, TARGET)) == 12
    if destination == "local":
        # The source's unique-ids, the copied messages' and those a POP3 client had put there.
        assert pop3_uidls(server.ports["pop3"], TARGET) == source_uidls


def test_a_failed_source_login_fails_in_one_sentence(server: LiveServer) -> None:
    result = po("migrate", "--from", f"pop3://{SOURCE}@127.0.0.1:{server.ports['pop3']}?tls=none",
                "--to", f"local:{TARGET}", data=server.data_dir, check=False,
                env={"POSTOFFICE_FROM_PASSWORD": "wrong password"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "pop3://" in result.stderr


def test_300_without_message_id_and_200_exact_duplicates_migrate_to_the_same_multiset(server: LiveServer) -> None:
    distinct = [message(n, message_id=False) for n in range(300)]
    source = distinct + [distinct[n * 3 % 300] for n in range(200)]
    put(server, SOURCE, "INBOX", source[:250])
    put(server, SOURCE, "Archive", source[250:])
    args = ["--from", f"imap://{SOURCE}@127.0.0.1:{server.ports['imap']}?tls=none", "--to", f"local:{TARGET}"]
    # Half of the archive is there already (an interrupted earlier run).
    put(server, TARGET, "Archive", source[250:375])
    done = migrate(server, *args)
    assert (done["copied"], done["skipped_duplicates"], done["failed"]) == (375, 125, 0)
    for folder, expected in (("INBOX", source[:250]), ("Archive", source[250:])):
        assert Counter(map(digest, stored(server, TARGET, folder))) == Counter(map(digest, expected)), folder
    again = migrate(server, *args)
    assert (again["copied"], again["skipped_duplicates"]) == (0, 500)


def imap_fill(port: int, user: str, password: str, folder: str, count: int, first: int = 0) -> None:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        imap.login(user, password)
        flags = ["()", "(\\Seen)", "(\\Seen \\Answered)", "(\\Flagged $Work)", "(\\Seen \\Draft)"]
        for n in range(first, first + count):
            date = imaplib.Time2Internaldate(BASE + timedelta(hours=n))
            typ, _ = imap.append(f'"{folder}"', flags[n % len(flags)], date, message(n, size=n % 5 * 400))
            assert typ == "OK"
    finally:
        imap.logout()


_HEAD = re.compile(rb"FLAGS \(([^)]*)\).*INTERNALDATE \"([^\"]+)\"", re.S)


def imap_multiset(port: int, user: str, password: str, folder: str) -> Counter[tuple[str, frozenset[str], int]]:
    """(sha256 of the body after the header, flags, INTERNALDATE) of each message, via imaplib."""
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        imap.login(user, password)
        typ, _ = imap.select(f'"{folder}"', readonly=True)
        assert typ == "OK", folder
        typ, data = imap.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[TEXT])")
        found: Counter[tuple[str, frozenset[str], int]] = Counter()
        for item in data:
            if isinstance(item, tuple):
                m = _HEAD.search(item[0])
                assert m is not None, item[0]
                flags = frozenset(f for f in m[1].decode().split() if f != "\\Recent")
                when = int(datetime.strptime(m[2].decode(), "%d-%b-%Y %H:%M:%S %z").timestamp())
                found[(digest(item[1]), flags, when)] += 1
        return found
    finally:
        imap.logout()


@pytest.mark.peer("dovecot", package="dovecot-core")
def test_imap_to_imap_from_dovecot_maps_special_use_keeps_flags_and_dates_and_a_rerun_copies_nothing(
        server: LiveServer) -> None:
    user = "gmailish"
    with running_dovecot([user]) as dovecot:
        layout = {"INBOX": 30, "[Gmail]/Sent Mail": 12, "[Gmail]/Drafts": 3, "[Gmail]/Spam": 4, "Projects/2024": 6}
        first = 0
        for folder, count in layout.items():
            if folder == "Projects/2024":
                imap = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
                imap.login(user, DOVECOT_PASSWORD)
                imap.create('"Projects/2024"')
                imap.logout()
            imap_fill(dovecot.imap_port, user, DOVECOT_PASSWORD, folder, count, first)
            first += count
        # All Mail is a view of the others (here: a copy of INBOX): it must not be copied again.
        imap_fill(dovecot.imap_port, user, DOVECOT_PASSWORD, "[Gmail]/All Mail", 30, 0)
        args = ["--from", f"imap://{user}@127.0.0.1:{dovecot.imap_port}?tls=none", "--to", f"local:{TARGET}"]
        env = {"POSTOFFICE_FROM_PASSWORD": DOVECOT_PASSWORD}
        dry = migrate(server, *args, "--dry-run", env=env)
        done = migrate(server, *args, env=env)
        assert (done["copied"], done["skipped_duplicates"], done["failed"]) == (55, 0, 0)
        assert (dry["copied"], dry["skipped_duplicates"]) == (done["copied"], done["skipped_duplicates"])
        mapping = {m["from"]: m["to"] for m in done["mapping"]}  # type: ignore[union-attr]
        assert mapping["[Gmail]/Sent Mail"] == "Sent" and mapping["[Gmail]/Drafts"] == "Drafts"
        assert mapping["[Gmail]/Spam"] == "Junk" and mapping["[Gmail]/All Mail"] is None
        targets = {"INBOX": "INBOX", "[Gmail]/Sent Mail": "Sent", "[Gmail]/Drafts": "Drafts",
                   "[Gmail]/Spam": "Junk", "Projects/2024": "Projects/2024"}
        for folder, target in targets.items():
            assert imap_multiset(server.ports["imap"], TARGET, PASSWORD, target) == \
                imap_multiset(dovecot.imap_port, user, DOVECOT_PASSWORD, folder), folder
        again = migrate(server, *args, env=env)
        assert (again["copied"], again["skipped_duplicates"], again["failed"]) == (0, 55, 0)

        # --map, and postoffice as an IMAP destination: Projects goes elsewhere, once.
        imap_args = ["--from", f"imap://{user}@127.0.0.1:{dovecot.imap_port}?tls=none",
                     "--to", f"imap://{SOURCE}@127.0.0.1:{server.ports['imap']}?tls=none", "--map", "Projects=Old/Projects"]
        mapped = migrate(server, *imap_args, env={**env, "POSTOFFICE_TO_PASSWORD": PASSWORD})
        assert (mapped["copied"], mapped["failed"]) == (55, 0)
        assert imap_multiset(server.ports["imap"], SOURCE, PASSWORD, "Old/Projects/2024") == \
            imap_multiset(dovecot.imap_port, user, DOVECOT_PASSWORD, "Projects/2024")
        assert migrate(server, *imap_args, env={**env, "POSTOFFICE_TO_PASSWORD": PASSWORD})["copied"] == 0


def test_a_message_the_destination_refuses_is_reported_and_the_rest_is_copied(tmp_path: Path) -> None:
    """The IMAP destination answers NO to one message (too big): several messages go in one
    MULTIAPPEND, which then stores none of them; each is tried alone, the refused one is named
    in the summary with the server's reason, the exit status is 1, and a rerun copies nothing
    more (and fails the same one again)."""
    live = LiveServer(tmp_path / "data", ["imap"], limits={"max_message_size": 20_000}).start()
    try:
        live.add_user(SOURCE)
        live.add_user(TARGET)
        raws = [message(n) for n in range(8)]
        raws[5] = message(5, size=40_000)
        put(live, SOURCE, "INBOX", raws)
        args = ["--from", f"local:{SOURCE}", "--to", f"imap://{TARGET}@127.0.0.1:{live.ports['imap']}?tls=none"]
        result = po("migrate", *args, "--json", data=live.data_dir, check=False, timeout=300,
                    env={"POSTOFFICE_TO_PASSWORD": PASSWORD})
        assert result.returncode == 1, result.stderr
        done = json.loads(result.stdout.strip().splitlines()[-1])
        assert (done["copied"], done["failed"]) == (7, 1)
        (failure,) = done["failures"]
        assert failure["folder"] == "INBOX" and "APPEND" in failure["reason"], failure
        assert Counter(map(digest, stored(live, TARGET))) == Counter(map(digest, raws[:5] + raws[6:]))
        again = po("migrate", *args, "--json", data=live.data_dir, check=False, timeout=300,
                   env={"POSTOFFICE_TO_PASSWORD": PASSWORD})
        rerun = json.loads(again.stdout.strip().splitlines()[-1])
        assert (rerun["copied"], rerun["skipped_duplicates"], rerun["failed"]) == (0, 7, 1)
    finally:
        live.stop()


@pytest.mark.peer("dovecot", package="dovecot-core")
def test_pop3_from_dovecot_keeps_dovecots_unique_ids(server: LiveServer) -> None:
    """After a move from Dovecot's POP3, postoffice's POP3 answers UIDL with Dovecot's ids, so
    a client that leaves mail on the server downloads nothing again."""
    user = "popuser"
    with running_dovecot([user]) as dovecot:
        imap_fill(dovecot.imap_port, user, DOVECOT_PASSWORD, "INBOX", 9)
        pop = poplib.POP3("127.0.0.1", dovecot.pop3_port, timeout=30)
        pop.user(user)
        pop.pass_(DOVECOT_PASSWORD)
        dovecot_uidls = {line.split()[1].decode() for line in pop.uidl()[1]}
        pop.quit()
        args = ["--from", f"pop3://{user}@127.0.0.1:{dovecot.pop3_port}?tls=none", "--to", f"local:{TARGET}"]
        done = migrate(server, *args, env={"POSTOFFICE_FROM_PASSWORD": DOVECOT_PASSWORD})
        assert (done["copied"], done["failed"]) == (9, 0)
    assert len(dovecot_uidls) == 9
    assert pop3_uidls(server.ports["pop3"], TARGET) == dovecot_uidls
