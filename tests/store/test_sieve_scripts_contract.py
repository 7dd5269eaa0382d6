"""The store contract for users' Sieve scripts (every backend): one active script per account."""
from __future__ import annotations

import pytest

from postoffice.store.interface import AlreadyExists, InvalidName, MailStore
from postoffice.store.sieve_errors import ScriptIsActive, ScriptNotFound, SieveQuotaExceeded

SCRIPT = 'require "fileinto";\r\nif header :contains "subject" "x" { fileinto "X"; }\r\n'


async def _account(store: MailStore, address: str = "alice@example.org") -> int:
    if await store.get_domain(address.split("@")[1]) is None:
        await store.add_domain(address.split("@")[1])
    return (await store.add_account(address, "hash")).id


async def test_put_get_list_and_replace_keep_text_byte_for_byte(store: MailStore) -> None:
    alice = await _account(store)
    assert await store.list_sieve_scripts(alice) == []
    assert await store.put_sieve_script(alice, "vacation ☀", SCRIPT)
    assert await store.put_sieve_script(alice, "Main", "keep;")
    assert not await store.put_sieve_script(alice, "Main", "discard;")  # replaced, not new
    assert await store.get_sieve_script(alice, "vacation ☀") == SCRIPT
    assert await store.get_sieve_script(alice, "Main") == "discard;"
    listed = await store.list_sieve_scripts(alice)
    assert [(s.name, s.active, s.size) for s in listed] == [
        ("Main", False, 8), ("vacation ☀", False, len(SCRIPT.encode()))]
    assert all(s.updated > 0 for s in listed)
    with pytest.raises(ScriptNotFound):
        await store.get_sieve_script(alice, "main")  # names are case-sensitive
    assert await store.active_sieve_script(alice) is None


async def test_one_active_script_per_account(store: MailStore) -> None:
    alice, bob = await _account(store), await _account(store, "bob@example.org")
    for name in ("a", "b"):
        await store.put_sieve_script(alice, name, f"# {name}\r\nkeep;")
    await store.put_sieve_script(bob, "a", "discard;")
    await store.activate_sieve_script(alice, "a")
    await store.activate_sieve_script(alice, "b")
    await store.activate_sieve_script(alice, "b")  # again: no change, no error
    assert await store.active_sieve_script(alice) == ("b", "# b\r\nkeep;")
    assert [s.name for s in await store.list_sieve_scripts(alice) if s.active] == ["b"]
    assert await store.active_sieve_script(bob) is None  # another account's scripts are apart
    await store.put_sieve_script(alice, "b", "stop;")  # replacing the active one keeps it active
    assert await store.active_sieve_script(alice) == ("b", "stop;")
    with pytest.raises(ScriptNotFound):
        await store.activate_sieve_script(alice, "nope")
    assert await store.active_sieve_script(alice) == ("b", "stop;")
    assert await store.deactivate_sieve_script(alice)
    assert not await store.deactivate_sieve_script(alice)
    assert await store.active_sieve_script(alice) is None


async def test_delete_refuses_the_active_script_and_unknown_names(store: MailStore) -> None:
    alice = await _account(store)
    await store.put_sieve_script(alice, "a", "keep;")
    await store.activate_sieve_script(alice, "a")
    with pytest.raises(ScriptIsActive):
        await store.delete_sieve_script(alice, "a")
    with pytest.raises(ScriptNotFound):
        await store.delete_sieve_script(alice, "b")
    await store.deactivate_sieve_script(alice)
    await store.delete_sieve_script(alice, "a")
    assert await store.list_sieve_scripts(alice) == []


async def test_rename_keeps_the_active_mark_and_refuses_taken_names(store: MailStore) -> None:
    alice = await _account(store)
    await store.put_sieve_script(alice, "a", "keep;")
    await store.put_sieve_script(alice, "b", "discard;")
    await store.activate_sieve_script(alice, "a")
    with pytest.raises(AlreadyExists):
        await store.rename_sieve_script(alice, "a", "b")
    with pytest.raises(ScriptNotFound):
        await store.rename_sieve_script(alice, "zzz", "c")
    with pytest.raises(InvalidName):
        await store.rename_sieve_script(alice, "a", "bad\nname")
    await store.rename_sieve_script(alice, "a", "c")
    assert await store.active_sieve_script(alice) == ("c", "keep;")
    assert [s.name for s in await store.list_sieve_scripts(alice)] == ["b", "c"]


async def test_limits_on_count_and_size_and_names(store: MailStore) -> None:
    alice = await _account(store)
    await store.put_sieve_script(alice, "a", "keep;", max_scripts=2, max_size=10)
    await store.put_sieve_script(alice, "b", "keep;", max_scripts=2, max_size=10)
    with pytest.raises(SieveQuotaExceeded) as too_many:
        await store.put_sieve_script(alice, "c", "keep;", max_scripts=2, max_size=10)
    assert too_many.value.limit == "maxscripts"
    await store.put_sieve_script(alice, "b", "discard;", max_scripts=2, max_size=10)  # replacing is fine
    with pytest.raises(SieveQuotaExceeded) as too_big:
        await store.put_sieve_script(alice, "a", "# ☀☀☀☀\r\n", max_scripts=2, max_size=10)  # 16 octets
    assert too_big.value.limit == "maxsize"
    assert await store.get_sieve_script(alice, "a") == "keep;"
    for bad in ("", "a\x00b", "tab\there", "del\x7f", "c1\x85", "line\u2028sep"):
        with pytest.raises(InvalidName):
            await store.put_sieve_script(alice, bad, "keep;")
    assert [s.name for s in await store.list_sieve_scripts(alice)] == ["a", "b"]


async def test_removing_the_account_removes_its_scripts(store: MailStore) -> None:
    alice = await _account(store)
    await store.put_sieve_script(alice, "a", "keep;")
    await store.activate_sieve_script(alice, "a")
    await store.remove_account("alice@example.org")
    again = await _account(store)
    assert await store.list_sieve_scripts(again) == [] and await store.active_sieve_script(again) is None
