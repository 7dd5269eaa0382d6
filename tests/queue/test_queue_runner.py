"""The queue runner against a real store: local delivery read back over IMAP, retries on a
shrunk schedule, bounces (RFC 3464) into the local sender's INBOX, holds, leases.

Remote peers come with the SMTP client (another part of issue 15); here a small transport that
implements `queue.outcomes.Transport` stands for them, answering as a remote server would."""
from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import imaplib
import os
import subprocess
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from live_server import DOMAIN, PASSWORD, LiveServer
from postoffice.config import OutboundConfig
from postoffice.delivery import Envelope, deliver_message
from postoffice.queue.outcomes import RecipientOutcome, SmtpReply
from postoffice.queue.runner import LEASE_SECONDS, REMOTE_UNAVAILABLE, QueueRunner, next_attempt_at
from postoffice.store.interface import OutboundMessage, QueuedMessage, QueuedRecipient

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
FAST = OutboundConfig(retry_schedule=(0.2,), max_queue_time=3600.0, delay_warning_after=0.0, concurrency=4,
                      mx_port=25, source_ipv4="", source_ipv6="")


def message(subject: str, sender: str = ALICE) -> bytes:
    return (f"From: <{sender}>\r\nTo: <someone@remote.test>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@{DOMAIN}>\r\n\r\nHello.\r\n").encode()


class PeerTransport:
    """Answers as a remote MX would: `replies` maps a recipient to the reply of each attempt in
    turn (the last repeats); a 2xx delivers, 4xx defers, 5xx fails."""

    def __init__(self, replies: dict[str, list[SmtpReply]], delay: float = 0.0) -> None:
        self.replies = replies
        self.delay = delay
        self.calls: list[tuple[int, tuple[str, ...]]] = []

    async def deliver(self, queued: QueuedMessage, raw: bytes, recipients: tuple[str, ...]) -> tuple[RecipientOutcome, ...]:
        self.calls.append((queued.id, recipients))
        if self.delay:
            await asyncio.sleep(self.delay)
        found = []
        for rcpt in recipients:
            answers = self.replies.get(rcpt, [SmtpReply(250, "2.0.0", "OK")])
            reply = answers.pop(0) if len(answers) > 1 else answers[0]
            kind = "delivered" if reply.code < 400 else "deferred" if reply.code < 500 else "failed"
            found.append(RecipientOutcome(rcpt, kind, reply, host="mx.remote.test", address="127.0.0.9"))
        return tuple(found)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user(ALICE)
    live.add_user(BOB)
    yield live
    live.stop()


def enqueue(server: LiveServer, raw: bytes, recipients: list[QueuedRecipient], sender: str = ALICE,
            ret: str | None = None, envid: str | None = None) -> int:
    assert server.services is not None
    services = server.services

    async def put() -> int:
        report = await deliver_message(services.store, services.directory, Envelope(sender, ()), raw,
                                       outbound=OutboundMessage(sender, tuple(recipients), envid, ret))
        assert report.queue_id is not None
        return report.queue_id
    return server.call(put())


class Running:
    """A runner on the server's loop for the duration of a `with` block."""

    def __init__(self, server: LiveServer, config: OutboundConfig = FAST, remote: PeerTransport | None = None,
                 lease_seconds: float = LEASE_SECONDS) -> None:
        assert server.services is not None
        self.server = server
        self.runner = QueueRunner(server.services.store, server.services.directory, config,
                                  "mail.example.test", remote=remote, poll_interval=0.05,
                                  lease_seconds=lease_seconds)

    def __enter__(self) -> QueueRunner:
        async def start() -> None:
            self.task = asyncio.get_running_loop().create_task(self.runner.run())
        self.server.call(start())
        return self.runner

    def __exit__(self, *exc: object) -> None:
        self.server.call(self.runner.stop(grace=5))


def queue(server: LiveServer) -> list[QueuedMessage]:
    assert server.services is not None
    return server.call(server.services.store.list_queue())


def wait_until(check, timeout: float = 30.0, what: str = "the condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def inbox(server: LiveServer, user: str) -> list[EmailMessage]:
    """Every message in the user's INBOX, read over IMAP as a mail program would."""
    with imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30) as imap:
        imap.login(user, PASSWORD)
        imap.select("INBOX", readonly=True)
        _, found = imap.search(None, "ALL")
        out = []
        for number in found[0].split():
            _, data = imap.fetch(number, "(BODY.PEEK[])")
            out.append(email.message_from_bytes(data[0][1], policy=email.policy.default))  # type: ignore[index]
        return out  # type: ignore[return-value]


def reports(server: LiveServer, user: str) -> list[EmailMessage]:
    return [m for m in inbox(server, user) if m.get_content_type() == "multipart/report"]


def status_groups(report: EmailMessage) -> list[dict[str, str]]:
    """The message/delivery-status part as field groups (per message, then per recipient)."""
    part = next(p for p in report.walk() if p.get_content_type() == "message/delivery-status")
    text = part.get_payload(decode=False)
    if isinstance(text, list):  # the stdlib parses delivery-status into one Message per group
        return [{k: str(v) for k, v in group.items()} for group in text]
    groups = []
    for block in str(text).replace("\r\n", "\n").strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        groups.append(fields)
    return groups


def test_local_recipients_in_the_queue_are_delivered_and_the_entry_goes(server: LiveServer) -> None:
    queue_id = enqueue(server, message("for bob"), [QueuedRecipient(BOB)])
    assert [q.id for q in queue(server)] == [queue_id]
    with Running(server):
        wait_until(lambda: queue(server) == [], what="the queue emptying")
    (got,) = inbox(server, BOB)
    assert got["Subject"] == "for bob"
    assert got["Return-Path"] == f"<{ALICE}>"
    assert reports(server, ALICE) == []  # no NOTIFY=SUCCESS: no notice


def test_remote_recipients_stay_queued_saying_remote_delivery_is_not_available(server: LiveServer) -> None:
    queue_id = enqueue(server, message("to the world"), [QueuedRecipient("carol@remote.test"), QueuedRecipient(BOB)])
    with Running(server):
        wait_until(lambda: queue(server)[0].attempts >= 1, what="a first attempt")
    (entry,) = queue(server)
    assert entry.id == queue_id
    assert {r.address: r.status for r in entry.envelope.recipients} == {"carol@remote.test": "pending", BOB: "delivered"}
    assert REMOTE_UNAVAILABLE in (entry.last_error or "")
    assert entry.next_attempt > time.time() - 1
    assert len(inbox(server, BOB)) == 1  # the local one finished on its own, once
    assert server.services is not None
    attempts = server.call(server.services.store.queue_attempts(queue_id))
    assert [(a.recipient, a.outcome) for a in attempts[:2]] == [("carol@remote.test", "deferred"), (BOB, "delivered")]


def test_a_5xx_bounces_at_once_into_the_local_senders_inbox_with_the_remote_reply(server: LiveServer) -> None:
    peer = PeerTransport({"nobody@remote.test": [SmtpReply(550, "5.1.1", "<nobody@remote.test>: user unknown")]})
    queue_id = enqueue(server, message("will bounce"), [
        QueuedRecipient("nobody@remote.test", (), "rfc822;Nobody@remote.test"),
        QueuedRecipient("ok@remote.test", ("SUCCESS",)),
    ], envid="env-42")
    with Running(server, remote=peer):
        wait_until(lambda: queue(server) == [], what="the queue emptying")
    assert peer.calls == [(queue_id, ("nobody@remote.test", "ok@remote.test"))]  # one try: 5xx is final
    # One report per attempt covers every recipient it has news of (RFC 3464 §2.3: a group each).
    (bounce,) = reports(server, ALICE)
    assert str(bounce["Subject"]) == "Undelivered Mail Returned to Sender"
    assert bounce.get_param("report-type") == "delivery-status"
    assert bounce["Auto-Submitted"] == "auto-replied"
    assert bounce["Return-Path"] == "<>"  # sent with the null sender
    text, _status, original = bounce.get_payload()  # type: ignore[misc]
    assert text.get_content_type() == "text/plain"
    words = text.get_content()
    assert "mx.remote.test said the address does not exist (550 5.1.1)" in words
    assert "Check the address" in words
    per_message, *per_rcpt = status_groups(bounce)
    assert per_message["Reporting-MTA"] == "dns; mail.example.test"
    assert per_message["Original-Envelope-Id"] == "env-42"
    assert "Arrival-Date" in per_message
    failed, delivered = per_rcpt
    assert failed["Final-Recipient"] == "rfc822; nobody@remote.test"
    assert failed["Original-Recipient"] == "rfc822;Nobody@remote.test"
    assert failed["Action"] == "failed"
    assert failed["Status"] == "5.1.1"
    assert failed["Remote-MTA"] == "dns; mx.remote.test"
    assert failed["Diagnostic-Code"] == "smtp; 550 5.1.1 <nobody@remote.test>: user unknown"
    assert original.get_content_type() == "message/rfc822"  # small, no RET: the whole message
    assert original.get_payload()[0]["Subject"] == "will bounce"  # type: ignore[index]
    assert (delivered["Final-Recipient"], delivered["Action"], delivered["Status"]) == (
        "rfc822; ok@remote.test", "delivered", "2.0.0")
    assert "<ok@remote.test>: delivered to mx.remote.test." in words


def test_4xx_is_retried_on_the_schedule_then_bounced_when_the_queue_time_runs_out(server: LiveServer) -> None:
    peer = PeerTransport({"slow@remote.test": [SmtpReply(451, "4.7.1", "Greylisted, try again later")]})
    config = dataclasses.replace(FAST, retry_schedule=(0.3, 0.6), max_queue_time=2.5)
    enqueue(server, message("never gets through"), [QueuedRecipient("slow@remote.test")], ret="HDRS")
    with Running(server, config, remote=peer):
        wait_until(lambda: queue(server) == [], timeout=30, what="giving up")
    # About 0, 0.3, 0.9, 1.5, 2.1 and 2.5 s (the last at the give-up time); generous bounds.
    assert 3 <= len(peer.calls) <= 8, peer.calls
    (bounce,) = reports(server, ALICE)
    (failed,) = status_groups(bounce)[1:]
    assert (failed["Action"], failed["Status"]) == ("failed", "4.4.7")
    assert "451 4.7.1 Greylisted" in failed["Diagnostic-Code"]
    assert "gave up" in bounce.get_payload()[0].get_content()  # type: ignore[index]
    assert bounce.get_payload()[2].get_content_type() == "text/rfc822-headers"  # type: ignore[index]


def test_greylisting_peer_gets_the_message_on_the_retry(server: LiveServer) -> None:
    peer = PeerTransport({"grey@remote.test": [SmtpReply(451, "4.7.1", "Greylisted"), SmtpReply(250, "2.0.0", "OK")]})
    queue_id = enqueue(server, message("grey"), [QueuedRecipient("grey@remote.test")])
    with Running(server, remote=peer):
        wait_until(lambda: queue(server) == [], what="delivery on the retry")
    assert peer.calls == [(queue_id, ("grey@remote.test",))] * 2
    assert reports(server, ALICE) == []


def test_the_retry_schedule_backs_off_with_jitter_and_repeats_its_last_step() -> None:
    schedule = (60.0, 300.0, 900.0, 1800.0, 3600.0)
    assert next_attempt_at(1, 1000.0, schedule, rng=lambda: 0.5) == 1060.0
    assert next_attempt_at(5, 0.0, schedule, rng=lambda: 0.5) == 3600.0
    assert next_attempt_at(40, 0.0, schedule, rng=lambda: 0.5) == 3600.0
    assert next_attempt_at(2, 0.0, schedule, rng=lambda: 0.0) == pytest.approx(270.0)
    assert next_attempt_at(2, 0.0, schedule, rng=lambda: 1.0) == pytest.approx(330.0)


def test_a_null_sender_message_never_bounces_and_notify_never_asks_for_nothing(server: LiveServer) -> None:
    peer = PeerTransport({"gone@remote.test": [SmtpReply(550, "5.1.1", "no such user")]})
    enqueue(server, message("a bounce itself", sender=""), [QueuedRecipient("gone@remote.test")], sender="")
    enqueue(server, message("quiet please"), [QueuedRecipient("gone@remote.test", ("NEVER",))])
    with Running(server, remote=peer):
        wait_until(lambda: queue(server) == [], what="both failing")
    assert len(peer.calls) == 2
    assert reports(server, ALICE) == []


def test_one_delay_warning_when_notify_allows_it(server: LiveServer) -> None:
    peer = PeerTransport({"later@remote.test": [SmtpReply(421, "4.3.2", "System not accepting network messages")],
                          "failonly@remote.test": [SmtpReply(421, "4.3.2", "System not accepting network messages")]})
    config = dataclasses.replace(FAST, retry_schedule=(0.2,), delay_warning_after=0.5)
    enqueue(server, message("slow going"), [QueuedRecipient("later@remote.test"),
                                            QueuedRecipient("failonly@remote.test", ("FAILURE",))])
    with Running(server, config, remote=peer):
        wait_until(lambda: len(peer.calls) >= 8, what="several attempts")
    (warning,) = reports(server, ALICE)
    assert str(warning["Subject"]) == "Delayed Mail (still being retried)"
    (delayed,) = status_groups(warning)[1:]
    assert (delayed["Final-Recipient"], delayed["Action"], delayed["Status"]) == ("rfc822; later@remote.test", "delayed", "4.3.2")
    assert "Will-Retry-Until" in delayed
    (entry,) = queue(server)
    assert [r.status for r in entry.envelope.recipients] == ["pending", "pending"]
    assert server.services is not None  # `postoffice status` counts it as deferred
    summary = server.call(server.services.store.queue_summary())
    assert (summary.messages, summary.held, summary.deferred, summary.oldest) == (1, 0, 1, entry.created)


def test_a_bounce_for_a_remote_sender_goes_into_the_queue_with_the_null_sender(server: LiveServer) -> None:
    peer = PeerTransport({"gone@remote.test": [SmtpReply(550, "5.1.1", "no such user")],
                          "dave@elsewhere.test": [SmtpReply(451, "4.3.0", "later")]})
    enqueue(server, message("forwarded", sender="dave@elsewhere.test"), [QueuedRecipient("gone@remote.test")],
            sender="dave@elsewhere.test")
    with Running(server, remote=peer):
        wait_until(lambda: [q.envelope.sender for q in queue(server)] == [""], what="the bounce being queued")
    (bounce,) = queue(server)
    assert [r.address for r in bounce.envelope.recipients] == ["dave@elsewhere.test"]


def test_a_held_entry_is_never_picked_until_released(server: LiveServer) -> None:
    assert server.services is not None
    store = server.services.store
    queue_id = enqueue(server, message("held"), [QueuedRecipient(BOB)])
    server.call(store.hold_queued(queue_id, True))
    with Running(server):
        time.sleep(1.0)
        (entry,) = queue(server)
        assert entry.held and entry.attempts == 0
        server.call(store.hold_queued(queue_id, False))
        wait_until(lambda: queue(server) == [], what="delivery after release")
    assert len(inbox(server, BOB)) == 1


def test_two_runners_on_one_store_never_attempt_one_entry_together(server: LiveServer) -> None:
    peer = PeerTransport({}, delay=0.05)
    ids = [enqueue(server, message(f"lease {n}"), [QueuedRecipient(f"r{n}@remote.test")]) for n in range(30)]
    with Running(server, remote=peer), Running(server, remote=peer):
        wait_until(lambda: queue(server) == [], what="all 30 delivered")
    assert sorted(queue_id for queue_id, _ in peer.calls) == ids  # each exactly once


def test_an_attempt_outlasting_its_lease_renews_it_so_no_other_runner_takes_the_entry(server: LiveServer) -> None:
    assert server.services is not None
    store = server.services.store
    slow = PeerTransport({}, delay=4.0)  # four leases long
    queue_id = enqueue(server, message("slow peer"), [QueuedRecipient("r@remote.test")])
    with Running(server, remote=slow, lease_seconds=1.0) as first:
        wait_until(lambda: slow.calls, timeout=10, what="the first runner's attempt")
        assert not server.call(store.renew_queue_lease(queue_id, "someone-else", time.time() + 60))
        with Running(server, remote=slow, lease_seconds=1.0) as second:
            wait_until(lambda: queue(server) == [], timeout=30, what="the slow delivery")
            assert second.owner != first.owner
    assert slow.calls == [(queue_id, ("r@remote.test",))]  # the second runner never took it


def test_leases_of_a_process_that_died_are_taken_over_at_start(server: LiveServer) -> None:
    assert server.services is not None
    store = server.services.store
    queue_id = enqueue(server, message("orphan"), [QueuedRecipient(BOB)])
    dead = subprocess.Popen(["true"])
    dead.wait()
    owner = f"{os.uname().nodename}:{dead.pid}:00000000"
    (claimed,) = server.call(store.claim_due_queue(owner, time.time(), 3600.0, 10))
    assert claimed.id == queue_id
    with Running(server):  # the lease has an hour to go, but its process is gone
        wait_until(lambda: queue(server) == [], timeout=10, what="the orphaned entry being delivered")
    assert len(inbox(server, BOB)) == 1
