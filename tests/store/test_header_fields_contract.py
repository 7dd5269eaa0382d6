"""The MailStore contract for reading a whole mailbox's header data at once: `header_fields`
(what SORT and THREAD order by) and `envelope_addresses` (what SEARCH FROM/TO/CC/BCC match)."""
from __future__ import annotations

import asyncio

from postoffice.message.mime import Address, Envelope, load_structure
from postoffice.message.mime_headers import decode_words
from postoffice.store.interface import MailStore, NewMessage
from store_kit import new_account

FULL = (
    b'From: "Alice A." <alice@example.org>\r\n'
    b"To: team: bob@x.org, carol@y.org;, dave@z.org\r\n"
    b"Cc: =?utf-8?q?J=C3=B6rg?= <joerg@example.de>\r\n"
    b"Bcc: hidden@example.net\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from Alice\r\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <a@x>\r\nIn-Reply-To: <p@x>\r\nReferences: <o@x>\r\n <p@x>\r\n\r\nbody\r\n"
)
BARE = b"Subject: nothing else\r\n\r\nbody\r\n"
ODD = (
    'From: "Quoted \\"Nick\\" Back\\\\slash" <odd@example.org>\r\n'
    "To: Zoë Ünal <zoe@example.org>\r\n"
    "Subject: odd\r\n\r\nbody\r\n"
).encode()


async def mailbox_with(store: MailStore, *raws: bytes) -> tuple[int, list[int]]:
    account = await new_account(store)
    box = await store.get_mailbox(account.id, "INBOX")
    assert box is not None
    messages = [NewMessage(await store.put_blob(raw), raw=raw) for raw in raws]
    results = await store.append_messages(box.id, messages)
    return box.id, [r.uid for r in results if r.uid is not None]


def first(addresses: tuple[Address, ...] | None) -> tuple[str | None, str | None, str | None] | None:
    return (addresses[0].name, addresses[0].mailbox, addresses[0].host) if addresses else None


async def envelope_of(store: MailStore, box: int, uid: int) -> Envelope:
    (record,) = await store.get_messages(box, [uid])
    return load_structure(await store.blob_structure(record.blob))[0]


def holds(addresses: tuple[Address, ...] | None, probe: str) -> bool:
    """Whether a name (decoded), mailbox, host or group name contains `probe`, ignoring case."""
    parts = [decode_words(a.name) if a.name else "" for a in addresses or ()]
    parts += [part or "" for a in addresses or () for part in (a.mailbox, a.host)]
    return any(probe.lower() in part.lower() for part in parts)


async def test_header_fields_are_the_stored_header_data(store: MailStore) -> None:
    box, (full, bare) = await mailbox_with(store, FULL, BARE)
    rows = await store.header_fields(box, [full, bare, 999])  # an unknown uid is left out
    assert sorted(rows) == [
        (full, "Grüße from Alice", 1704103200, "<a@x>", "<p@x>", "<o@x> <p@x>", None, None, None),
        (bare, "nothing else", None, None, None, "", None, None, None),
    ]


async def test_first_addresses_are_the_envelope_ones_and_only_those_asked_for(store: MailStore) -> None:
    box, (full, bare, odd) = await mailbox_with(store, FULL, BARE, ODD)
    rows = {row[0]: row for row in await store.header_fields(box, [full, bare, odd], addresses=("from", "to", "cc"))}
    # a group's start comes first as (None, group name, None); names stay as written
    assert rows[full][6:] == (("Alice A.", "alice", "example.org"), (None, "team", None),
                              ("=?utf-8?q?J=C3=B6rg?=", "joerg", "example.de"))
    assert rows[bare][6:] == (None, None, None)
    for uid, raw in ((full, FULL), (bare, BARE), (odd, ODD)):
        envelope = await envelope_of(store, box, uid)
        assert rows[uid][6:] == (first(envelope.from_), first(envelope.to), first(envelope.cc)), raw
    only_to = await store.header_fields(box, [full], addresses=("to",))
    assert only_to[0][6:] == (None, (None, "team", None), None)


async def test_many_uids_and_few_give_the_same_rows(store: MailStore) -> None:
    box, uids = await mailbox_with(store, FULL, BARE, ODD)
    few = await store.header_fields(box, uids, addresses=("from",))
    many = await store.header_fields(box, list(range(1, 20_000)), addresses=("from",))
    assert sorted(few) == sorted(many)
    assert len(few) == 3


async def test_expunged_messages_are_read_while_the_mailbox_is_held(store: MailStore) -> None:
    box, (full, bare) = await mailbox_with(store, FULL, BARE)
    store.hold_mailbox(box)  # a session has not been told of the expunge yet
    await store.expunge(box, [full])
    assert {row[0] for row in await store.header_fields(box, [full, bare])} == {full, bare}
    assert [uid for uid, _ in await store.envelope_addresses(box, "from")] == [full]
    store.release_mailbox(box)
    for _ in range(50):  # the blob goes in the background once nobody holds the mailbox
        if [row[0] for row in await store.header_fields(box, [full, bare])] == [bare]:
            break
        await asyncio.sleep(0.02)
    assert [row[0] for row in await store.header_fields(box, [full, bare])] == [bare]


async def test_envelope_addresses_are_the_envelope_fields(store: MailStore) -> None:
    box, (full, bare, odd) = await mailbox_with(store, FULL, BARE, ODD)
    for field in ("from", "to", "cc", "bcc"):
        found = dict(await store.envelope_addresses(box, field))
        assert bare not in found  # no such field
        for uid in (full, odd):
            envelope = await envelope_of(store, box, uid)
            assert found.get(uid) == getattr(envelope, field if field != "from" else "from_"), (field, uid)


async def test_envelope_addresses_containing_never_leaves_out_a_holder(store: MailStore) -> None:
    box, (full, _bare, odd) = await mailbox_with(store, FULL, BARE, ODD)
    holders = [
        ("from", "ALICE A.", full),  # a name, ignoring case
        ("to", "team", full),  # a group's name
        ("to", "y.org", full),  # a host inside a group
        ("cc", "jörg", full),  # a name decoded from RFC 2047 words
        ("cc", "JOERG", full),
        ("bcc", "hidden", full),
        ('from', '"nick"', odd),  # quotes and backslashes, which JSON escapes
        ("from", "back\\slash", odd),
        ("to", "zoë ünal", odd),  # non-ASCII as written
        ("to", "ZOË", odd),
    ]
    for field, probe, uid in holders:
        assert holds(dict(await store.envelope_addresses(box, field))[uid], probe), (field, probe)
        assert uid in dict(await store.envelope_addresses(box, field, containing=probe)), (field, probe)
    assert {uid for uid, _ in await store.envelope_addresses(box, "to", containing=None)} == {full, odd}
