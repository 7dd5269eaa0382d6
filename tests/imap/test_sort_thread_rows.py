"""SORT and THREAD on plain rows (`MessageRow`) and forests of numbers (`ThreadForest`): the form
the server uses gives what the SortableMessage/Thread form gives, and it leaves no object per
message behind for the garbage collector."""
from __future__ import annotations

import gc
import random

import pytest
from sort_objects import (
    SortableMessage,
    SortAddress,
    format_threads,
    sort_messages,
    thread_orderedsubject,
    thread_references,
)

from postoffice.imap.sort_thread import (
    SEQ,
    SORT_KEYS,
    UID,
    MessageRow,
    ThreadForest,
    format_forest,
    orderedsubject_forest,
    references_forest,
    sort_order,
)

SUBJECTS = ["", "hello", "Re: hello", "RE: Hello", "Fwd: hello", "[list] Re: hello", "hello (fwd)",
            "[fwd: hello]", "other", "Re: other", "Re:", "Grüße", "re: grüße"]


def corpus(seed: int, size: int) -> list[SortableMessage]:
    """Messages whose ids and references point at each other at random: loops, duplicates,
    missing parents, ids without brackets and junk, in shuffled order."""
    rnd = random.Random(seed)

    def an_id() -> str:
        n, form = rnd.randrange(size), rnd.random()
        return f"<m{n}@x>" if form < 0.8 else f'<"m{n}"@x>' if form < 0.9 else f"m{n}@x" if form < 0.95 else "junk"

    def addresses() -> tuple[SortAddress, ...]:
        if rnd.random() < 0.3:
            return ()
        return (SortAddress(rnd.choice([None, "Name", " "]), rnd.choice(["a", "B", None]), rnd.choice(["h", None])),)

    messages = [
        SortableMessage(
            uid=seq * 3, seq=seq, internal_date=float(rnd.randrange(20)),
            sent_date=float(rnd.randrange(20)) if rnd.random() < 0.8 else None, size=rnd.randrange(5),
            subject=rnd.choice(SUBJECTS), from_=addresses(), to=addresses(), cc=addresses(),
            message_id=an_id() if rnd.random() < 0.9 else None,
            in_reply_to=an_id() if rnd.random() < 0.3 else None,
            references=" ".join(an_id() for _ in range(rnd.randrange(4))),
        )
        for seq in range(1, size + 1)
    ]
    rnd.shuffle(messages)
    return messages


@pytest.mark.parametrize("seed", range(40))
def test_rows_and_objects_give_the_same_answers(seed: int) -> None:
    messages = corpus(seed, 5 + seed * 3)
    rows = [m.row() for m in messages]
    for uid in (False, True):
        numbers = [row[UID] if uid else row[SEQ] for row in rows]
        assert format_forest(references_forest(rows), numbers) == format_threads(thread_references(messages), uid=uid)
        assert format_forest(orderedsubject_forest(rows), numbers) == format_threads(
            thread_orderedsubject(messages), uid=uid)
    for key in sorted(SORT_KEYS):
        criteria = [(key, seed % 2 == 0), ("SUBJECT", False)]
        assert [messages[i] for i in sort_order(rows, criteria)] == sort_messages(messages, criteria)


def test_a_forest_names_messages_by_position_and_dummies_after_them() -> None:
    rows: list[MessageRow] = [
        (10, 1, 0.0, 1.0, 1, "a", (), (), (), "<a@x>", None, "<gone@x>"),
        (20, 2, 0.0, 2.0, 1, "b", (), (), (), "<b@x>", None, "<gone@x>"),
        (30, 3, 0.0, 3.0, 1, "c", (), (), (), "<c@x>", None, "<a@x>"),
    ]
    forest = references_forest(rows)
    (dummy,) = forest.roots
    assert dummy >= forest.size == 3
    assert forest.children == {dummy: (0, 1), 0: (2,)}
    assert format_forest(forest, [10, 20, 30]) == b"((10 30)(20))"


def test_format_forest_writes_a_dummy_below_the_root_as_its_children() -> None:
    forest = ThreadForest(size=3, roots=[0], children={0: (3,), 3: (1, 2)})
    assert format_forest(forest, [1, 2, 3]) == b"(1 (2)(3))"


def test_threading_a_mailbox_leaves_nothing_per_message_for_the_collector() -> None:
    # 3,000 messages in threads of three: a forest is tuples and dicts of numbers, which the
    # collector does not track, so it adds no tracked object per message or per parent (with
    # an object each, full collections cost more than the algorithm).
    rows: list[MessageRow] = []
    for n in range(3000):
        parent = n - n % 3
        refs = f"<m{parent}@x>" if n % 3 else ""
        rows.append((n + 1, n + 1, float(n), float(n), 100, f"subject {parent}", (), (), (), f"<m{n}@x>", None, refs))
    for algorithm in (references_forest, orderedsubject_forest):
        gc.collect()
        before = len(gc.get_objects())
        forest = algorithm(rows)
        gc.collect()
        assert len(gc.get_objects()) - before < 100, algorithm.__name__
        assert len(forest.roots) == 1000
