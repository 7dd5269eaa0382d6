"""SEARCH FROM/TO/CC/BCC/SUBJECT, SORT and THREAD answered from the header data the store kept at
delivery (not by reading every message), over a real server with imaplib: what they match, and
that a message expunged elsewhere but not yet announced still takes part."""
from __future__ import annotations

import imaplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

USER = "bob@example.test"

MESSAGES = [
    # 1: encoded display name, a group, a quoted name with quotes inside
    b"From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>\r\n"
    b"To: team: bob@x.org, carol@y.org;\r\n"
    b'Cc: "Quoted \\"Nick\\"" <nick@example.org>\r\n'
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and budget\r\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <one@x>\r\n\r\nbody\r\n",
    # 2: an address without a name, a second one with a name
    b"From: Alice <alice@example.org>\r\nTo: dave@z.org, Alice Two <a2@z.org>\r\n"
    b"Subject: Re: budget\r\nDate: Mon, 1 Jan 2024 11:00:00 +0000\r\n"
    b"Message-ID: <two@x>\r\nReferences: <one@x>\r\n\r\nbody\r\n",
    # 3: no address fields at all
    b"Subject: nothing\r\nDate: Mon, 1 Jan 2024 12:00:00 +0000\r\n"
    b"Message-ID: <three@x>\r\nReferences: <one@x> <two@x>\r\n\r\nbody\r\n",
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user(USER)
    yield live
    live.stop()


def login(server: LiveServer) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    client.login(USER, PASSWORD)
    return client


@pytest.fixture
def client(server: LiveServer) -> Iterator[imaplib.IMAP4]:
    client = login(server)
    for raw in MESSAGES:
        client.append("INBOX", None, None, raw)
    client.select("INBOX")
    yield client
    client.logout()


def search(client: imaplib.IMAP4, *criteria: str, literal: str | None = None) -> list[int]:
    if literal is not None:
        client.literal = literal.encode()  # type: ignore[attr-defined]
        typ, data = client.search("UTF-8", *criteria)
    else:
        typ, data = client.search(None, *criteria)
    assert typ == "OK", data
    return [int(n) for n in data[0].split()]


@pytest.mark.parametrize(
    ("criteria", "found"),
    [
        (("FROM", "alice"), [2]),
        (("FROM", '"ALICE <alice@"'), [2]),  # the address text: Name <local@domain>
        (("TO", "team"), [1]),  # a group's name
        (("TO", '"team:"'), [1]),
        (("TO", '"<dave@z.org>"'), [2]),  # an address without a name is written in brackets
        (("TO", '" alice"'), [2]),  # after the ", " between two addresses
        (("TO", "carol@y.org"), [1]),
        (("CC", '"\\"nick\\""'), [1]),  # quotes inside a quoted name
        (("BCC", "a"), []),
        (("SUBJECT", "BUDGET"), [1, 2]),
        (("SUBJECT", '"re: budget"'), [2]),
        (("HEADER", "FROM", '""'), [1, 2]),  # "has the field" still reads the header
        (("OR", "FROM", "joerg", "TO", "dave"), [1, 2]),
    ],
)
def test_address_and_subject_keys(client: imaplib.IMAP4, criteria: tuple[str, ...], found: list[int]) -> None:
    assert search(client, *criteria) == found


def test_encoded_words_match_decoded(client: imaplib.IMAP4) -> None:
    assert search(client, "FROM", literal="jörg müller") == [1]
    assert search(client, "CC", literal="JÖRG") == []
    assert search(client, "SUBJECT", literal="grÜße") == [1]


def test_from_is_the_envelope_field_so_a_second_from_line_does_not_count(server: LiveServer) -> None:
    # RFC 9051 §6.4.4: FROM matches "the envelope structure's FROM field", which is made from the
    # first From: line (RFC 5322 allows only one).
    client = login(server)
    client.append("INBOX", None, None, b"From: first@example.org\r\nFrom: second@example.org\r\n\r\nbody\r\n")
    client.select("INBOX")
    assert search(client, "FROM", "first") == [1]
    assert search(client, "FROM", "second") == []
    client.logout()


def test_sort_and_thread(client: imaplib.IMAP4) -> None:
    typ, data = client.thread("REFERENCES", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"(1 2 3)"], data
    typ, data = client.sort("(FROM)", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"3 2 1"], data  # "", ALICE, JOERG
    typ, data = client.sort("(DISPLAYTO REVERSE DATE)", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"3 2 1"], data  # "", dave@z.org, team


def test_a_message_expunged_elsewhere_still_counts_until_announced(server: LiveServer, client: imaplib.IMAP4) -> None:
    other = login(server)
    other.select("INBOX")
    other.store("2", "+FLAGS", "\\Deleted")
    other.expunge()
    other.logout()
    # Message 2 keeps its number until the session is told (RFC 9051 §7.5.1): its header data
    # still counts, so 3 stays below it rather than below a dummy.
    typ, data = client.thread("REFERENCES", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"(1 2 3)"], data
    assert search(client, "FROM", "alice") == [2]
    typ, data = client.sort("(REVERSE SUBJECT)", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"3 1 2"], data  # nothing, Grüße and budget, budget
    client.noop()  # now the EXPUNGE is told
    typ, data = client.thread("REFERENCES", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"(1 2)"], data
