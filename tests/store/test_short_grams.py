"""The short-gram document (one- and two-character needles) is the same whichever way its
pairs are found: the ASCII fast path gives exactly the general way's tokens."""
from __future__ import annotations

import operator
import random

from postoffice.store.sqlite.text_ops import short_grams


def _general(headers: str, body: str) -> set[str]:
    tokens = set()
    for text, one, two in ((headers, "h", "g"), (body, "b", "c")):
        tokens.update(one + ch.encode().hex() for ch in text)
        tokens.update(two + pair.encode().hex() for pair in map(operator.add, text, text[1:]))
    return tokens


def test_the_tokens_are_every_distinct_character_and_pair_of_each_text() -> None:
    rng = random.Random(5)
    texts = ["", "a", "ab", "abc", "aaaa", "hello world", "\x00\x7f\x01", "x" * 1001, "naïve café", "日本語"]
    alphabet = "ab \n\t.,xyzXYZ\x00\x7f" + "é€😀"
    for _ in range(300):
        ascii_only = rng.random() < 0.7
        letters = alphabet[:-3] if ascii_only else alphabet
        texts.append("".join(rng.choice(letters) for _ in range(rng.randint(0, 60))))
    for headers in texts[:20]:
        for body in texts:
            document = short_grams(headers, body).split()
            assert len(document) == len(set(document))  # each token once
            assert set(document) == _general(headers, body), (headers, body)
