"""The store contract for junk learning and greylisting (store/filter_state_interface.py):
training requests queued by the moves themselves, learning once per direction, untraining,
pruning, and greylist triplets (every backend)."""
from __future__ import annotations

from postoffice.store.filter_state_interface import JunkLesson, JunkTotals, TokenCounts
from postoffice.store.interface import FlagMode, MailStore
from store_kit import new_account, new_message

NOW = 1_700_000_000.0


async def _boxes(store: MailStore, account_id: int) -> dict[str, int]:
    return {box.name: box.id for box in await store.list_mailboxes(account_id)}


async def _queued(store: MailStore) -> list[tuple[int, str, bool]]:
    return [(r.account_id, r.sha256, r.spam) for r in await store.pending_junk_training(100)]


async def test_moves_into_and_out_of_junk_queue_training_in_the_same_transaction(store: MailStore) -> None:
    account = await new_account(store)
    boxes = await _boxes(store, account.id)
    appended = await store.append_messages(boxes["INBOX"], [await new_message(store, i) for i in range(3)])
    hashes = [(await store.get_messages(boxes["INBOX"], [a.uid]))[0].blob for a in appended]
    assert await _queued(store) == []  # delivery and APPEND teach nothing

    moved = await store.copy_messages(boxes["INBOX"], [appended[0].uid, appended[1].uid], boxes["Junk"], move=True)
    assert await _queued(store) == [(account.id, hashes[0], True), (account.id, hashes[1], True)]
    await store.forget_junk_training([r.id for r in await store.pending_junk_training()])

    junk_uids = [pair[1] for pair in moved.pairs]
    await store.copy_messages(boxes["Junk"], junk_uids[:1], boxes["Archive"])  # out of Junk: ham
    await store.copy_messages(boxes["Junk"], junk_uids[1:], boxes["Trash"], move=True)  # thrown away: nothing
    await store.copy_messages(boxes["INBOX"], [appended[2].uid], boxes["Archive"])  # neither side is Junk
    assert await _queued(store) == [(account.id, hashes[0], False)]


async def test_junk_keywords_queue_training_when_newly_set(store: MailStore) -> None:
    account = await new_account(store)
    inbox = (await _boxes(store, account.id))["INBOX"]
    first, second = await store.append_messages(inbox, [await new_message(store, 1), await new_message(store, 2)])
    await store.store_flags(inbox, [first.uid], FlagMode.ADD, ["$Junk"])
    await store.store_flags(inbox, [first.uid], FlagMode.ADD, ["$Junk", "\\Seen"])  # already set: nothing new
    await store.store_flags(inbox, [second.uid], FlagMode.ADD, ["$NotJunk"])
    await store.store_flags(inbox, [second.uid], FlagMode.REMOVE, ["$NotJunk"])  # removing says nothing
    assert [(spam) for _, _, spam in await _queued(store)] == [True, False]


async def test_learning_counts_once_per_direction_and_untrains_the_other(store: MailStore) -> None:
    account = await new_account(store)
    tokens = frozenset({"subject:prize", "from:@lottery.example"})
    assert await store.learn_junk([JunkLesson(0, account.id, "a" * 64, True, tokens)], NOW) == 1
    assert await store.learn_junk([JunkLesson(0, account.id, "a" * 64, True, tokens)], NOW) == 0  # once
    totals, counts = await store.junk_token_counts(account.id, ["subject:prize", "unknown"])
    assert totals == JunkTotals(spam=1, ham=0)
    assert counts == {"subject:prize": TokenCounts(1, 0)}
    assert await store.junk_trained_as(account.id, "a" * 64) is True

    # Moved back out of Junk: the spam count goes, the ham count comes.
    assert await store.learn_junk([JunkLesson(0, account.id, "a" * 64, False, tokens)], NOW) == 1
    totals, counts = await store.junk_token_counts(account.id, tokens)
    assert totals == JunkTotals(spam=0, ham=1)
    assert counts["subject:prize"] == TokenCounts(0, 1)
    assert await store.junk_trained_as(account.id, "a" * 64) is False

    other = await new_account(store, "other@example.test")  # per account
    assert (await store.junk_token_counts(other.id, tokens)) == (JunkTotals(), {})


async def test_a_removed_accounts_learning_goes_with_it(store: MailStore) -> None:
    await new_account(store, "first@example.test")
    account = await new_account(store)
    await store.learn_junk([JunkLesson(0, account.id, "a" * 64, True, frozenset({"word"}))], NOW)
    await store.queue_junk_training(account.id, "b" * 64, False)
    await store.remove_account(account.address)
    again = await new_account(store)  # SQLite may give it the same id
    assert await store.junk_token_counts(again.id, ["word"]) == (JunkTotals(), {})
    assert await store.junk_trained_as(again.id, "a" * 64) is None
    assert await store.pending_junk_training() == []


async def test_learning_drops_its_requests_and_skips_unreadable_messages(store: MailStore) -> None:
    account = await new_account(store)
    await store.queue_junk_training(account.id, "b" * 64, True)
    (request,) = await store.pending_junk_training()
    assert await store.learn_junk([JunkLesson(request.id, account.id, "b" * 64, True, None)], NOW) == 0
    assert await store.pending_junk_training() == []
    assert (await store.junk_token_counts(account.id, ["x"]))[0] == JunkTotals()


async def test_pruning_forgets_old_rare_tokens_and_bounds_each_account(store: MailStore) -> None:
    account = await new_account(store)
    old = NOW - 60 * 86400
    await store.learn_junk([JunkLesson(0, account.id, "c" * 64, True, frozenset({"rare", "common"}))], old)
    await store.learn_junk([JunkLesson(0, account.id, "d" * 64, False, frozenset({"common", "fresh"}))], NOW)
    assert await store.prune_junk_tokens(max_tokens=1000, older_than=NOW - 30 * 86400) == 1
    _, counts = await store.junk_token_counts(account.id, ["rare", "common", "fresh"])
    assert set(counts) == {"common", "fresh"}  # "rare": one message, two months ago
    assert await store.prune_junk_tokens(max_tokens=1, older_than=0) == 1
    _, counts = await store.junk_token_counts(account.id, ["rare", "common", "fresh"])
    assert set(counts) == {"common"}  # the most seen stays


async def test_greylist_triplets_pass_after_a_retry_and_are_swept(store: MailStore) -> None:
    triplet = ("192.0.2.0/24", "x@remote.example", "bob@example.test")
    state = await store.greylist_state(*triplet)
    assert state.first_seen is None and not state.passed and state.network_passes == 0
    await store.greylist_seen(*triplet, NOW, first=True)
    state = await store.greylist_state(*triplet)
    assert (state.first_seen, state.passed) == (NOW, False)
    await store.greylist_seen(*triplet, NOW + 400, passed=True)
    state = await store.greylist_state(*triplet)
    assert (state.first_seen, state.passed, state.last_seen) == (NOW, True, NOW + 400)
    assert (state.network_passes, state.network_last_seen) == (1, NOW + 400)

    stale = ("198.51.100.0/24", "y@remote.example", "bob@example.test")
    await store.greylist_seen(*stale, NOW, first=True)
    # Never retried within the window: forgotten; the passed one stays until remember runs out.
    assert await store.sweep_greylist(unpassed_before=NOW + 1, passed_before=NOW - 1) == 1
    assert (await store.greylist_state(*stale)).first_seen is None
    assert (await store.greylist_state(*triplet)).passed
    assert await store.sweep_greylist(unpassed_before=NOW + 1, passed_before=NOW + 1000) == 2
    assert (await store.greylist_state(*triplet)).network_passes == 0
