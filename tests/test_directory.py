"""Directory: domains, users, aliases, catch-alls, recipient resolution, password checks."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postoffice.directory import (
    Directory,
    DirectoryError,
    canonical_address,
    canonical_domain,
    new_address,
)
from postoffice.store import open_store


@pytest.fixture
async def directory(tmp_path: Path) -> AsyncIterator[Directory]:
    store = open_store("sqlite", tmp_path / "s.sqlite3", tmp_path / "blobs")
    d = Directory(store)
    await d.add_domain("example.org")
    yield d
    await store.close()


@pytest.mark.parametrize(
    ("given", "expected"),
    [("Example.ORG", "example.org"), ("bücher.example", "xn--bcher-kva.example"), ("mail.example.org.", "mail.example.org")],
)
def test_canonical_domain(given: str, expected: str) -> None:
    assert canonical_domain(given) == expected


@pytest.mark.parametrize("bad", ["localhost", "-bad.example", "a..b", "exa mple.org", ""])
def test_bad_domains_are_refused_with_a_sentence(bad: str) -> None:
    with pytest.raises(DirectoryError, match="not a valid domain name"):
        canonical_domain(bad)


@pytest.mark.parametrize("bad", ["no-at-sign", "a b@example.org", "@example.org", "x@", "<a@b@c>"])
def test_bad_addresses_are_refused(bad: str) -> None:
    with pytest.raises(DirectoryError):
        canonical_address(bad)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("../x@example.org", "dot"), (".a@example.org", "dot"), ("a.@example.org", "dot"),
        ("a..b@example.org", "dot"), ("a/b@example.org", '"/"'), ("a\x00b@example.org", "control"),
        ("a\x1bb@example.org", "control"), ("a\x7fb@example.org", "control"), ("a\u2028b@example.org", "control"),
        ('"da ve"@example.org', "control"), ('"a,b"@example.org', "only hold"), ("x" * 65 + "@example.org", "64 octets"),
    ],
)
async def test_new_names_must_be_dot_atoms_without_slashes(directory: Directory, bad: str, reason: str) -> None:
    with pytest.raises(DirectoryError, match="is not a valid email address") as refused:
        new_address(bad)
    assert reason in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(DirectoryError, match="not a valid email address"):
        await directory.add_user(bad, "long enough pass")
    with pytest.raises(DirectoryError, match="not a valid email address"):
        await directory.add_alias(bad, ["someone@remote.example"])
    with pytest.raises(DirectoryError, match="not a valid email address"):
        await directory.add_alias("ok@example.org", [bad])
    assert await directory.list_users() == [] and await directory.list_aliases() == []


@pytest.mark.parametrize("good", ["a.b@example.org", "o'brien@example.org", "x+y=z@example.org", "józef@example.org",
                                  '"alice"@example.org', "a!#$%&*^_`{|}~-@example.org"])
def test_dot_atoms_are_fine(good: str) -> None:
    assert new_address(good) == good.replace('"', "")


def test_quoted_local_parts_are_looked_up_unquoted() -> None:
    assert canonical_address('"alice"@Example.ORG') == "alice@example.org"
    assert canonical_address('"al\\ice"@example.org') == "alice@example.org"
    assert canonical_address('"da ve"@example.org') == '"da ve"@example.org'


async def test_rows_made_before_the_check_can_still_be_removed(directory: Directory) -> None:
    for bad in ("../x@example.org", "a..b@example.org"):
        await directory.store.add_account(bad, "x", 0)  # as an older version would have stored it
        await directory.store.add_alias(bad.replace("@", "-alias@"), bad)
    assert await directory.remove_alias("../x-alias@example.org") == 1
    await directory.remove_user("../x@example.org")
    await directory.remove_user("a..b@example.org")
    assert await directory.list_users() == []


async def test_user_authenticates_with_argon2id(directory: Directory) -> None:
    account = await directory.add_user("Alice@EXAMPLE.org", "correct horse battery")
    assert account.address == "Alice@example.org"
    assert account.password_hash.startswith("$argon2id$")
    assert (await directory.authenticate("alice@example.org", "correct horse battery")).id == account.id
    assert await directory.authenticate("alice@example.org", "wrong password") is None
    assert await directory.authenticate("nobody@example.org", "correct horse battery") is None
    await directory.set_password("alice@example.org", "another long one")
    assert await directory.authenticate("alice@example.org", "another long one") is not None


async def test_short_password_and_unknown_domain_are_refused(directory: Directory) -> None:
    with pytest.raises(DirectoryError, match="too short"):
        await directory.add_user("bob@example.org", "short")
    with pytest.raises(Exception, match="not served here"):
        await directory.add_user("bob@elsewhere.example", "long enough pass")


async def test_resolution_order(directory: Directory) -> None:
    alice = await directory.add_user("alice@example.org", "long enough pass")
    bob = await directory.add_user("bob@example.org", "long enough pass")
    await directory.add_alias("team@example.org", ["alice@example.org", "bob@example.org", "ext@remote.example"])
    await directory.add_alias("loop1@example.org", ["loop2@example.org"])
    await directory.add_alias("loop2@example.org", ["loop1@example.org"])

    r = await directory.resolve_recipient("ALICE@example.org")
    assert [a.id for a in r.accounts] == [alice.id]
    r = await directory.resolve_recipient("team@example.org")
    assert {a.id for a in r.accounts} == {alice.id, bob.id} and r.forwards == ("ext@remote.example",)
    r = await directory.resolve_recipient("alice+lists@example.org")
    assert [a.id for a in r.accounts] == [alice.id]
    assert not (await directory.resolve_recipient("loop1@example.org")).exists
    assert not (await directory.resolve_recipient("nobody@example.org")).exists
    r = await directory.resolve_recipient("someone@other.example")
    assert not r.local_domain
    # postmaster@ always exists (RFC 5321 §4.5.1)
    assert (await directory.resolve_recipient("postmaster@example.org")).accounts[0].id == alice.id


async def test_catch_all(directory: Directory) -> None:
    alice = await directory.add_user("alice@example.org", "long enough pass")
    await directory.add_alias("@example.org", ["alice@example.org"])
    r = await directory.resolve_recipient("anything@example.org")
    assert [a.id for a in r.accounts] == [alice.id]
    assert any(a.source == "@example.org" for a in await directory.list_aliases())
    await directory.remove_alias("@example.org")
    assert not (await directory.resolve_recipient("anything@example.org")).exists


async def test_domain_with_users_cannot_be_removed(directory: Directory) -> None:
    await directory.add_user("alice@example.org", "long enough pass")
    with pytest.raises(Exception, match="still has 1 user"):
        await directory.remove_domain("example.org")
    await directory.remove_user("alice@example.org")
    await directory.remove_domain("example.org")
    assert await directory.list_domains() == []


async def test_may_send_as_own_address_detail_and_aliases_only(directory: Directory) -> None:
    alice = await directory.add_user("alice@example.org", "long enough pass")
    await directory.add_user("bob@example.org", "long enough pass")
    await directory.add_alias("sales@example.org", ["alice@example.org"])
    await directory.add_alias("@example.org", ["alice@example.org"])
    assert await directory.may_send_as(alice, "Alice@Example.org")
    assert await directory.may_send_as(alice, "alice+news@example.org")
    assert await directory.may_send_as(alice, "sales@example.org")
    assert not await directory.may_send_as(alice, "bob@example.org")
    assert not await directory.may_send_as(alice, "random@example.org")  # catch-all grants nothing
    assert not await directory.may_send_as(alice, "not an address")


async def test_verified_logins_are_remembered_until_the_password_changes(tmp_path: Path) -> None:
    store = open_store("sqlite", tmp_path / "c.sqlite3", tmp_path / "blobs")
    try:
        directory = Directory(store, login_cache_seconds=300)
        await directory.add_domain("example.org")
        await directory.add_user("carol@example.org", "first long password")
        assert await directory.authenticate("carol@example.org", "wrong password") is None
        assert len(directory.verified) == 0  # failures are never remembered
        assert await directory.authenticate("carol@example.org", "first long password") is not None
        assert len(directory.verified) == 1
        assert await directory.authenticate("carol@example.org", "first long password") is not None
        assert await directory.authenticate("carol@example.org", "wrong password") is None
        # Another process (an admin command) changes the password: the old one stops working
        # at once, although this Directory's memory still holds it.
        other = Directory(store)
        await other.set_password("carol@example.org", "second long password")
        assert len(directory.verified) == 1
        assert await directory.authenticate("carol@example.org", "first long password") is None
        assert await directory.authenticate("carol@example.org", "second long password") is not None
    finally:
        await store.close()


async def test_alias_expansion_is_bounded_in_depth_and_width(directory: Directory) -> None:
    alice = await directory.add_user("alice@example.org", "long enough pass")
    await directory.add_alias("wide@example.org", [f"t{i}@remote.example" for i in range(1001)])
    r = await directory.resolve_recipient("wide@example.org")
    assert not r.exists and r.problem is not None and "more than 1000 addresses" in r.problem
    await directory.add_alias("d11@example.org", ["alice@example.org"])
    for level in range(11):
        await directory.add_alias(f"d{level}@example.org", [f"d{level + 1}@example.org"])
    assert "deeper than 10 levels" in ((await directory.resolve_recipient("d0@example.org")).problem or "")
    assert [a.id for a in (await directory.resolve_recipient("d2@example.org")).accounts] == [alice.id]  # 10 hops
    # A loop in one branch adds nothing; what else the alias names still gets the mail.
    await directory.add_alias("ring1@example.org", ["ring2@example.org"])
    await directory.add_alias("ring2@example.org", ["ring1@example.org"])
    assert "leads back to itself" in ((await directory.resolve_recipient("ring1@example.org")).problem or "")
    await directory.add_alias("ring2@example.org", ["out@remote.example"])
    r = await directory.resolve_recipient("ring1@example.org")
    assert r.exists and r.forwards == ("out@remote.example",)
