"""MailboxSnapshot: a session's view and what it may announce when (RFC 9051 §7.5.1)."""
from __future__ import annotations

from postoffice.imap.snapshot import MailboxSnapshot
from postoffice.store.interface import FlagMode, MailStore, NewMessage


async def append(store: MailStore, box: int, n: int) -> list[int]:
    messages = []
    for i in range(n):
        raw = f"Subject: m{i}\r\nMessage-ID: <{i}.{id(messages)}@x>\r\n\r\nbody {i}\r\n".encode()
        messages.append(NewMessage(await store.put_blob(raw), raw=raw))
    return [r.uid for r in await store.append_messages(box, messages) if r.uid is not None]


async def test_recent_goes_to_one_session_and_new_mail_is_announced(env) -> None:
    store, box = env
    await append(store, box, 3)
    first = await MailboxSnapshot.open(store, box, readonly=False, claim_recent=True)
    second = await MailboxSnapshot.open(store, box, readonly=False, claim_recent=True)
    assert (first.exists, len(first.recent), second.exists, len(second.recent)) == (3, 3, 3, 0)
    await append(store, box, 2)
    u1 = await first.refresh(allow_expunge=True)
    u2 = await second.refresh(allow_expunge=True)
    assert (u1.exists, u1.recent) == (5, 5)
    assert (u2.exists, u2.recent) == (5, 0)  # \Recent was claimed by the first session
    first.close()
    second.close()


async def test_a_session_without_recent_never_takes_it(env) -> None:
    """An IMAP4rev2 session (claim_recent=False) neither takes \\Recent at SELECT nor when it
    learns of new mail: it stays for the next IMAP4rev1 session (RFC 9051 has no \\Recent)."""
    store, box = env
    await append(store, box, 1)
    rev2 = await MailboxSnapshot.open(store, box, readonly=False, claim_recent=False)
    await append(store, box, 2)
    updates = await rev2.refresh(allow_expunge=True)
    assert (updates.exists, len(rev2.recent)) == (3, 0)
    rev1 = await MailboxSnapshot.open(store, box, readonly=False, claim_recent=True)
    assert len(rev1.recent) == 3
    rev2.close()
    rev1.close()


async def test_expunge_is_held_back_until_allowed_and_message_stays_readable(env) -> None:
    store, box = env
    uids = await append(store, box, 4)
    view = await MailboxSnapshot.open(store, box, readonly=False, claim_recent=False)
    sha = view.record(uids[1]).blob
    await store.expunge(box, [uids[1], uids[3]])
    held = await view.refresh(allow_expunge=False)  # e.g. during FETCH by sequence number
    assert held.expunged == [] and view.exists == 4
    assert await store.read_blob(sha)  # still fetchable whole
    later = view.announce_expunges()
    assert later.expunged == [2, 3]  # uid 2 at seq 2; then uid 4 is at seq 3 after renumbering
    assert view.uids == [uids[0], uids[2]]
    view.close()


async def test_flag_changes_by_others_are_announced_with_sequence_numbers(env) -> None:
    store, box = env
    uids = await append(store, box, 3)
    view = await MailboxSnapshot.open(store, box, readonly=False, claim_recent=False)
    await store.store_flags(box, [uids[2]], FlagMode.ADD, ["\\Flagged"])
    updates = await view.refresh(allow_expunge=True)
    assert [(seq, set(r.flags)) for seq, r in updates.flags] == [(3, {"\\Flagged"})]
    assert not await view.refresh(allow_expunge=True)  # nothing new the second time
    view.close()


async def test_own_expunge_renumbers_immediately(env) -> None:
    store, box = env
    uids = await append(store, box, 5)
    view = await MailboxSnapshot.open(store, box, readonly=False, claim_recent=False)
    removed = await store.expunge(box, [uids[1], uids[2]])
    assert [seq for seq, _ in view.forget(removed)] == [3, 2]
    assert view.uids == [uids[0], uids[3], uids[4]]
    assert not (await view.refresh(allow_expunge=True)).expunged  # not announced twice
    view.close()
