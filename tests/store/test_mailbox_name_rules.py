"""Mailbox names (store.mailbox_names): the one check every way of creating a name goes through,
against a naive reference, and the store contract that applies it to CREATE and RENAME."""
from __future__ import annotations

import posixpath
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postoffice.store.interface import FlagsKept, InvalidName, MailStore
from postoffice.store.mailbox_names import check_name
from store_kit import new_account, new_message

UNSAFE = ["../x", "a/../b", "a/..", "..", ".", "a/./b", "...", "a//b", "/a", "a/", "", "Shared/..", "Shared/x",
          "shared", "a\x00b", "a\x7fb", "a\x85b", "a*", "%", "a\ud800b"]


def reference_valid(name: str) -> bool:
    """The rules written out one by one."""
    if name.upper() == "INBOX" or name.upper().startswith("INBOX/"):
        name = "INBOX" + name[5:]
    levels = name.split("/")
    try:
        octets = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return (
        name != ""
        and all(level != "" and level.strip(".") != "" for level in levels)
        and len(levels) <= 20
        and all(len(level.encode("utf-8")) <= 200 for level in levels)
        and octets <= 1000
        and not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "*%" for c in name)
        and levels[0].lower() != "shared"
    )


def accepted(name: str) -> bool:
    try:
        check_name(name)
    except InvalidName:
        return False
    return True


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_names_are_refused(name: str) -> None:
    assert not accepted(name)
    assert not reference_valid(name)


def test_bounds_are_inclusive() -> None:
    assert accepted("/".join(["a" * 49] * 20))  # 20 levels, 999 octets
    assert not accepted("/".join(["a"] * 21))
    assert accepted("a" * 200) and not accepted("a" * 201)
    assert accepted("é" * 100) and not accepted("é" * 101)  # octets of UTF-8, not characters
    assert not accepted("/".join(["a" * 100] * 10))  # 1,009 octets
    assert check_name("inbox/Later") == "INBOX/Later"
    assert check_name("Shared-Projects/x") == "Shared-Projects/x"


@settings(max_examples=1000, deadline=timedelta(seconds=1))
@given(st.one_of(
    st.text(alphabet="a./ %*\x00\x7fé", max_size=12),
    st.lists(st.sampled_from(["a", ".", "..", "", "é" * 101, "b" * 60, "Shared", "INBOX"]), max_size=22).map("/".join),
))
def test_names_are_checked_like_the_reference(name: str) -> None:
    assert accepted(name) == reference_valid(name)
    if accepted(name):  # as a path below a directory, an accepted name never leaves it
        path = posixpath.normpath(posixpath.join("/dest", *check_name(name).split("/")))
        assert path.startswith("/dest/") and path.count("/") == name.count("/") + 2


async def test_store_refuses_unsafe_names_at_create_and_rename(store: MailStore) -> None:
    account = await new_account(store)
    before = {m.name for m in await store.list_mailboxes(account.id)}
    await store.create_mailbox(account.id, "Projects")
    for name in UNSAFE:
        with pytest.raises(InvalidName):
            await store.create_mailbox(account.id, name)
        with pytest.raises(InvalidName):
            await store.rename_mailbox(account.id, "Projects", name)
    assert {m.name for m in await store.list_mailboxes(account.id)} == before | {"Projects"}


async def test_rename_keeps_the_inferiors_within_the_bounds(store: MailStore) -> None:
    account = await new_account(store)
    deep = "/".join(["t", *["x"] * 18])  # 19 levels
    await store.create_mailbox(account.id, "t")
    await store.create_mailbox(account.id, deep)
    with pytest.raises(InvalidName):  # "u/v/x/.../x" would have 21 levels
        await store.rename_mailbox(account.id, "t", "u/v/w")
    assert await store.get_mailbox(account.id, deep) is not None
    await store.rename_mailbox(account.id, "t", "u")
    assert await store.get_mailbox(account.id, "u" + deep[1:]) is not None


async def test_copy_keeps_only_the_flags_asked_for(store: MailStore) -> None:
    account = await new_account(store)
    inbox = await store.get_mailbox(account.id, "INBOX")
    archive = await store.get_mailbox(account.id, "Archive")
    assert inbox is not None and archive is not None
    message = await new_message(store, 1)
    flagged = type(message)(message.blob, frozenset({"\\Seen", "\\Deleted", "\\Flagged", "$Label"}), raw=message.raw)
    [appended] = await store.append_messages(inbox.id, [flagged])
    assert appended.uid is not None
    await store.copy_messages(inbox.id, [appended.uid], archive.id, keep=FlagsKept(frozenset({"\\Seen"}), False))
    await store.copy_messages(inbox.id, [appended.uid], archive.id, keep=FlagsKept(frozenset(), True))
    await store.copy_messages(inbox.id, [appended.uid], archive.id)
    assert [m.flags for m in await store.list_messages(archive.id)] == [
        frozenset({"\\Seen"}), frozenset({"$Label"}), frozenset({"\\Seen", "\\Deleted", "\\Flagged", "$Label"})]
