"""Junk learning trained over IMAP (issue 17): MOVE/COPY into and out of Junk and the $Junk and
$NotJunk keywords (RFC 5788) train the user's own classifier, in the background, once per
direction; moving back untrains. A live server, imaplib, the trainer `serve` runs."""
from __future__ import annotations

import imaplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer
from postoffice.filtering.junk_classifier import JunkEstimate
from postoffice.filtering.junk_learning import learned_estimate
from postoffice.filtering.junk_tokens import raw_message_tokens
from postoffice.store.filter_state_interface import JunkTotals

USER = "bob@example.test"


def shady(n: int) -> bytes:
    """The kind of message the spam score sends to Junk (issue 17's example)."""
    return (f'From: "PayPal Security <service@paypal.com>" <notice{n}@freemail.example>\r\n'
            f"Reply-To: claims{n}@othermail.example\r\nTo: {USER}\r\nSubject: Invoice {n} overdue\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
            "Content-Type: text/plain\r\n\r\nOpen the attached invoice to release your payment.\r\n--B\r\n"
            f'Content-Type: application/octet-stream; name="invoice{n}.exe"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--B--\r\n").encode()


def newsletter(n: int) -> bytes:
    """Plain mail the user nevertheless calls junk."""
    return (f"From: Garden Weekly <news@garden-weekly.example>\r\nTo: {USER}\r\n"
            f"Subject: This week in the garden, issue {n}\r\n\r\n"
            "Tomatoes, seedlings and compost: our weekly gardening tips and nursery offers.\r\n").encode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user(USER)
    live.add_user("carol@example.test")
    yield live
    live.stop()


def connect(server: LiveServer) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    client.login(USER, PASSWORD)
    return client


def append(client: imaplib.IMAP4, mailbox: str, messages: list[bytes]) -> None:
    for raw in messages:
        assert client.append(mailbox, None, None, raw)[0] == "OK"


def account_id(server: LiveServer, address: str = USER) -> int:
    assert server.services is not None
    account = server.call(server.services.directory.get_user(address))
    assert account is not None
    return account.id


def trained(server: LiveServer, spam: int, ham: int, address: str = USER) -> JunkTotals:
    """Wait (at most 30 s) for the background trainer to reach these totals."""
    assert server.services is not None
    store, ident = server.services.store, account_id(server, address)
    deadline = time.monotonic() + 30
    while True:
        totals, _ = server.call(store.junk_token_counts(ident, ["x"]))
        pending = server.call(store.pending_junk_training())
        if (totals == JunkTotals(spam, ham) and not pending) or time.monotonic() > deadline:
            assert totals == JunkTotals(spam, ham) and pending == []
            return totals
        time.sleep(0.1)


def estimate(server: LiveServer, raw: bytes) -> JunkEstimate | None:
    assert server.services is not None
    services = server.services
    return server.call(learned_estimate(services.store, account_id(server), raw_message_tokens(raw),
                                        services.config.junk))


def test_moving_ten_out_of_junk_and_ten_into_it_trains_both_directions(server: LiveServer) -> None:
    client = connect(server)
    append(client, "Junk", [shady(n) for n in range(10)])       # where the score put them
    append(client, "INBOX", [newsletter(n) for n in range(10)])
    assert estimate(server, shady(99)) is None  # nothing learned yet
    client.select("Junk")
    typ, data = client.uid("MOVE", "1:*", "INBOX")  # "not junk", all ten at once
    assert typ == "OK", data
    client.select("INBOX")
    typ, found = client.uid("SEARCH", None, "SUBJECT", "garden")
    garden = found[0].decode().replace(" ", ",")
    assert typ == "OK" and garden.count(",") == 9
    assert client.uid("MOVE", garden, "Junk")[0] == "OK"       # "junk", ten others
    client.logout()

    trained(server, spam=10, ham=10)
    such = estimate(server, shady(100))
    other = estimate(server, newsletter(100))
    assert such is not None and such.probability < 0.1, such
    assert other is not None and other.probability > 0.9, other
    # Another user's classifier learned nothing from bob's sorting.
    assert server.call(server.services.store.junk_token_counts(  # type: ignore[union-attr]
        account_id(server, "carol@example.test"), ["x"]))[0] == JunkTotals()


def test_keywords_copy_and_moving_back_train_once_per_direction(server: LiveServer) -> None:
    client = connect(server)
    append(client, "INBOX", [newsletter(1), newsletter(2)])
    client.select("INBOX")
    assert client.uid("STORE", "1", "+FLAGS", "($Junk)")[0] == "OK"
    assert client.uid("STORE", "1", "+FLAGS", "($Junk)")[0] == "OK"  # already set: no second lesson
    trained(server, spam=1, ham=0)
    assert client.uid("COPY", "1", "Junk")[0] == "OK"  # the same message again: trained once
    trained(server, spam=1, ham=0)
    assert client.uid("STORE", "1", "+FLAGS", "($NotJunk)")[0] == "OK"  # changed its mind: untrained
    trained(server, spam=0, ham=1)
    assert client.uid("COPY", "2", "Junk")[0] == "OK"
    client.select("Junk")
    assert client.uid("MOVE", "2", "Trash")[0] == "OK"  # junk thrown away says nothing about it
    trained(server, spam=1, ham=1)
    client.logout()


def test_learning_off_drops_the_requests(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", ["imap"], junk={"learning": False}).start()
    try:
        live.add_user(USER)
        client = connect(live)
        append(client, "INBOX", [newsletter(1)])
        client.select("INBOX")
        assert client.uid("MOVE", "1", "Junk")[0] == "OK"
        client.logout()
        trained(live, spam=0, ham=0)
    finally:
        live.stop()
