"""Every recipient that hears 250 is delivered or queued: one real server, every kind of
resolution, over port 25 and LMTP, checked in the store (mailboxes and the outbound queue)."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from live_server import LiveServer
from postoffice.queue.srs import is_srs_address
from smtp_client import RawSmtp

USERS = ("alice@example.test", "bob@example.test")
_subjects = itertools.count()


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """alice and bob, aliases of every shape, two catch-all domains and a removed user."""
    live = LiveServer(tmp_path_factory.mktemp("routed") / "data", ["smtp", "submission", "lmtp"]).start()
    for user in (*USERS, "ghost@example.test"):
        live.add_user(user)
    assert live.services is not None
    directory = live.services.directory

    async def setup() -> None:
        aliases = {
            "team@example.test": ["alice@example.test", "bob@example.test"],
            "fwd@example.test": ["someone@gmail.example"],
            "mixed@example.test": ["alice@example.test", "out@remote.example", "someone@gmail.example"],
            "loop1@example.test": ["loop2@example.test"],
            "loop2@example.test": ["loop1@example.test"],
            "group-a@example.test": ["alice@example.test", "group-b@example.test"],
            "group-b@example.test": ["bob@example.test", "group-a@example.test"],
            "half-loop@example.test": ["bob@example.test", "half-loop2@example.test"],
            "half-loop2@example.test": ["half-loop@example.test"],
            "gone@example.test": ["ghost@example.test"],
            "half-gone@example.test": ["ghost@example.test", "bob@example.test"],
            "via-sub@example.test": ["alice+lists@example.test"],
        }
        for level in range(12):  # deep0 -> deep1 -> ... -> deep11 -> alice
            aliases[f"deep{level}@example.test"] = [f"deep{level + 1}@example.test" if level < 11 else "alice@example.test"]
        for source, targets in aliases.items():
            await directory.add_alias(source, targets)
        for domain, catch_all in (("catch.test", "alice@example.test"), ("away.test", "elsewhere@remote.example"),
                                  ("stale.test", "retired@stale.test")):  # a catch-all to no one
            await directory.add_domain(domain)
            await directory.add_alias(f"@{domain}", [catch_all])
        await directory.remove_user("ghost@example.test")

    live.call(setup())
    yield live
    live.stop()


@dataclass(frozen=True)
class Case:
    rcpt: str
    code: int  # the RCPT reply
    local: tuple[str, ...] = ()  # accounts that get a copy
    outside: tuple[str, ...] = ()  # addresses in the queue row
    enhanced: str = "2.1.5"


CASES = [
    Case("alice@example.test", 250, ("alice@example.test",)),
    Case("team@example.test", 250, USERS),
    Case("fwd@example.test", 250, (), ("someone@gmail.example",)),
    Case("mixed@example.test", 250, ("alice@example.test",), ("out@remote.example", "someone@gmail.example")),
    Case("anyone@catch.test", 250, ("alice@example.test",)),
    Case("anyone@away.test", 250, (), ("elsewhere@remote.example",)),
    Case("alice+tag@example.test", 250, ("alice@example.test",)),
    Case("fwd+tag@example.test", 250, (), ("someone@gmail.example",)),
    Case("via-sub@example.test", 250, ("alice@example.test",)),
    Case("group-a@example.test", 250, USERS),  # two groups that include each other: once each
    Case("half-loop@example.test", 250, ("bob@example.test",)),  # the loop adds nothing, bob remains
    Case("half-gone@example.test", 250, ("bob@example.test",)),
    Case("loop1@example.test", 550, enhanced="5.4.6"),
    Case("deep0@example.test", 550, enhanced="5.4.6"),
    Case("deep5@example.test", 250, ("alice@example.test",)),  # 7 levels: within the bound
    Case("gone@example.test", 550, enhanced="5.1.1"),
    Case("nobody@example.test", 550, enhanced="5.1.1"),
    # A catch-all whose target is not a user: an unknown user (5.1.1), not an alias loop (5.4.6).
    Case("anyone@stale.test", 550, enhanced="5.1.1"),
    Case("retired@stale.test", 550, enhanced="5.1.1"),
    Case("postmaster@stale.test", 250, ("alice@example.test",)),  # RFC 5321 §4.5.1: always exists
    # RFC 5321 §4.1.2: a quoted local part is the same mailbox as its unquoted form.
    Case('"alice"@example.test', 250, ("alice@example.test",)),
    Case('"da ve"@example.test', 550, enhanced="5.1.1"),
    Case('"da ve"@catch.test', 250, ("alice@example.test",)),
]


def _subject() -> str:
    return f"accounting-{os.getpid()}-{next(_subjects)}"


def _send(server: LiveServer, protocol: str, rcpts: list[str], subject: str) -> tuple[list[tuple[int, str]], list[int]]:
    """One transaction: (RCPT replies, replies after DATA: one, or one per accepted rcpt in LMTP)."""
    client = RawSmtp(server.ports[protocol])
    try:
        assert client.cmd("LHLO c.example" if protocol == "lmtp" else "EHLO c.example")[0] == 250
        assert client.cmd("MAIL FROM:<sender@remote.example>")[0] == 250
        rcpt_replies = [client.cmd(f"RCPT TO:<{rcpt}>") for rcpt in rcpts]
        accepted = sum(code == 250 for code, _ in rcpt_replies)
        if not accepted:
            return rcpt_replies, []
        assert client.cmd("DATA")[0] == 354
        client.send(f"From: sender@remote.example\r\nSubject: {subject}\r\n\r\nbody\r\n.\r\n".encode())
        finals = [client.reply()[0] for _ in range(accepted if protocol == "lmtp" else 1)]
        client.cmd("QUIT")
        return rcpt_replies, finals
    finally:
        client.close()


def _as_sent(server: LiveServer, sender: str) -> str:
    """A queue row's sender, with an SRS sender (forwarded mail, queue/srs.py) shown as
    "SRS(original)" once it checks out."""
    assert server.services is not None and server.services.directory.srs is not None
    if is_srs_address(sender):
        return f"SRS({server.services.directory.srs.reverse(sender)})"
    return sender


def _where(server: LiveServer, subject: str) -> tuple[set[str], list[tuple[str, list[str]]]]:
    """(accounts holding a message with `subject`, [(sender, recipients)] of queue rows with it)."""
    needle = f"Subject: {subject}\r\n".encode()
    local = {user for user in USERS if any(needle in m for m in server.messages(user))}
    assert server.services is not None
    store = server.services.store

    async def queued() -> list[tuple[str, list[str]]]:
        rows = []
        for q in await store.list_queue():
            blob = await store.read_blob(q.blob)
            if needle in blob:
                assert not blob.startswith(b"Return-Path:")  # added at final delivery only
                rows.append((_as_sent(server, q.envelope.sender), [r.address for r in q.envelope.recipients]))
        return rows

    return local, server.call(queued())


@pytest.mark.parametrize("protocol", ["smtp", "lmtp"])
@pytest.mark.parametrize("case", CASES, ids=[c.rcpt for c in CASES])
def test_every_250_recipient_is_delivered_or_queued(routed: LiveServer, protocol: str, case: Case) -> None:
    subject = _subject()
    (rcpt_reply,), finals = _send(routed, protocol, [case.rcpt], subject)
    assert rcpt_reply[0] == case.code and case.enhanced in rcpt_reply[1], rcpt_reply
    local, queued = _where(routed, subject)
    if case.code != 250:
        assert (local, queued) == (set(), [])
        return
    assert finals == [250]
    assert local == set(case.local)
    if case.outside:
        # One row for all outside targets of the message, with an SRS sender for the outside one.
        assert queued == [("SRS(sender@remote.example)", list(case.outside))]
    else:
        assert queued == []


@pytest.mark.parametrize("protocol", ["smtp", "lmtp"])
def test_one_queue_row_for_all_outside_targets_of_one_message(routed: LiveServer, protocol: str) -> None:
    subject = _subject()
    rcpts = ["fwd@example.test", "mixed@example.test", "anyone@away.test", "team@example.test", "loop1@example.test"]
    replies, finals = _send(routed, protocol, rcpts, subject)
    assert [code for code, _ in replies] == [250, 250, 250, 250, 550]
    assert finals == [250] * (4 if protocol == "lmtp" else 1)
    local, queued = _where(routed, subject)
    assert local == set(USERS)
    assert queued == [("SRS(sender@remote.example)", ["someone@gmail.example", "out@remote.example", "elsewhere@remote.example"])]


def test_forwarded_copy_keeps_dsn_parameters_and_names_the_original_recipient(routed: LiveServer) -> None:
    subject = _subject()
    client = RawSmtp(routed.ports["smtp"])
    assert client.cmd("EHLO c.example")[0] == 250
    assert client.cmd("MAIL FROM:<sender@remote.example> RET=HDRS ENVID=env-1")[0] == 250
    assert client.cmd("RCPT TO:<fwd@example.test> NOTIFY=FAILURE,DELAY")[0] == 250
    assert client.cmd("RCPT TO:<anyone@away.test>")[0] == 250
    assert client.cmd("DATA")[0] == 354
    assert client.cmd(f"Subject: {subject}\r\n\r\nbody\r\n.".encode())[0] == 250
    client.close()
    assert routed.services is not None
    store = routed.services.store

    async def row() -> object:
        for q in await store.list_queue():
            if f"Subject: {subject}".encode() in await store.read_blob(q.blob):
                return q.envelope
        return None

    envelope = routed.call(row())
    assert envelope is not None
    assert (envelope.envid, envelope.ret) == ("env-1", "HDRS")  # type: ignore[attr-defined]
    first, second = envelope.recipients  # type: ignore[attr-defined]
    assert (first.address, first.notify, first.orcpt) == ("someone@gmail.example", ("FAILURE", "DELAY"), "rfc822;fwd@example.test")
    assert (second.address, second.notify, second.orcpt) == ("elsewhere@remote.example", (), "rfc822;anyone@away.test")


def test_submission_remote_and_forwarded_recipients_share_one_queue_row(routed: LiveServer) -> None:
    import smtplib

    from live_server import PASSWORD

    subject = _subject()
    with smtplib.SMTP("127.0.0.1", routed.ports["submission"], timeout=10) as client:
        client.ehlo("laptop.example.test")
        client.login("alice@example.test", PASSWORD)
        letter = f"From: alice@example.test\r\nTo: x\r\nSubject: {subject}\r\n\r\nhi\r\n"
        rcpts = ["carol@remote.example", "mixed@example.test", "out@remote.example", "bob@example.test"]
        assert client.sendmail("alice@example.test", rcpts, letter) == {}
    local, queued = _where(routed, subject)
    assert local == set(USERS)
    # out@remote.example is both a direct recipient and an alias target: queued once.
    assert queued == [("alice@example.test", ["carol@remote.example", "out@remote.example", "someone@gmail.example"])]


def test_cli_alias_to_an_outside_address_then_port_25_lands_in_queue_list(routed: LiveServer) -> None:
    """The issue's reproduction, as a user runs it: `alias add`, mail on port 25, `queue list`."""
    def po(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "postoffice", *args, "--data", str(routed.data_dir)],
                                capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
        assert result.returncode == 0, result.stderr
        return result.stdout

    po("alias", "add", "cli-fwd@example.test", "someone@elsewhere.example")
    time.sleep(routed.services.directory.CACHE_SECONDS + 0.1)  # type: ignore[union-attr]  # the server's cache
    subject = _subject()
    (reply,), finals = _send(routed, "smtp", ["cli-fwd@example.test"], subject)
    assert reply[0] == 250 and finals == [250]
    rows = [row for row in json.loads(po("queue", "list", "--json"))
            if [r["address"] for r in row["recipients"]] == ["someone@elsewhere.example"]]
    assert len(rows) == 1 and _as_sent(routed, rows[0]["sender"]) == "SRS(sender@remote.example)"


@pytest.mark.parametrize("protocol", ["smtp", "lmtp"])
def test_a_message_that_went_round_a_forwarding_loop_is_refused_by_its_received_count(routed: LiveServer, protocol: str) -> None:
    """RFC 5321 §6.3: counting Received: fields finds loops; the threshold should be at least
    100. With forwards now queued, fwd@ here -> someone elsewhere -> fwd@ here would go round
    for ever, one Received: more each time: past 100 the message is refused (5.4.6, routing
    loop), never stored or queued; 100 still pass."""
    for hops, code in ((100, 250), (101, 554)):
        subject = _subject()
        client = RawSmtp(routed.ports[protocol])
        try:
            assert client.cmd("LHLO c.example" if protocol == "lmtp" else "EHLO c.example")[0] == 250
            assert client.cmd("MAIL FROM:<sender@remote.example>")[0] == 250
            assert client.cmd("RCPT TO:<mixed@example.test>")[0] == 250
            assert client.cmd("DATA")[0] == 354
            received = "".join(f"Received: from hop{n}.example by hop{n + 1}.example; Mon, 1 Jan 2024 10:00:00 +0000\r\n"
                               for n in range(hops))
            client.send(f"{received}From: sender@remote.example\r\nSubject: {subject}\r\n\r\nbody\r\n.\r\n".encode())
            reply = client.reply()
            assert reply[0] == code, (hops, reply)
            if code != 250:
                assert "5.4.6" in reply[1]
            assert client.cmd("NOOP")[0] == 250  # the session goes on
        finally:
            client.close()
        local, queued = _where(routed, subject)
        assert bool(local) == bool(queued) == (code == 250), hops
