"""The simple address lists `parse_address_list` reads with one pattern per address must give
exactly what the full tokenizer gives (IMAP ENVELOPE, SEARCH and Sieve read the result): every
header field of the corpora, and random lists of the characters that matter."""
from __future__ import annotations

import gzip
import mailbox
import random
from pathlib import Path

from postoffice.message.mime_address import _comment_name, _parsed_list, _simple_list
from postoffice.message.mime_headers import parse_fields
from postoffice.smtp.headers import header_block


def _headers(corpora: Path) -> list[bytes]:
    blocks = []
    for path in sorted(corpora.glob("mime-*/**/*")):
        if path.is_file() and path.suffix not in (".json", ".tsv", ".md", ".txt"):
            blocks.append(header_block(path.read_bytes()))
    with gzip.open(corpora / "threading-jwz-fedora-devel" / "2010-January.txt.gz", "rb") as archive:
        raw = archive.read()
    tmp = Path(__file__).parent / "__fedora.mbox"  # mailbox wants a path
    try:
        tmp.write_bytes(raw)
        blocks += [header_block(m.as_bytes()) for m in mailbox.mbox(str(tmp))]
    finally:
        tmp.unlink(missing_ok=True)
    return blocks


def test_simple_lists_read_as_the_full_parser_reads_them(corpora: Path) -> None:
    simple = 0
    values = 0
    for block in _headers(corpora):
        for _, _, value in parse_fields(block):
            values += 1
            fast = _simple_list(value)
            if fast is not None:
                simple += 1
                assert fast == _parsed_list(value), value
    assert values > 5000 and simple > 1000, (values, simple)


def _random_list(rng: random.Random) -> str:
    """A list of one to three addresses, bare or with a display name, with the white space,
    dots and 8-bit characters of real headers, sometimes broken by one stray character."""
    space = ["", " ", "  ", "\t", "\r\n ", "\xa0"]
    word = ["Bob", "J.", "Smith", "é", "=?utf-8?q?x?=", "o'Neil", ".", "a-b"]
    local = ["a", "a.b", "x-y", "é", "a.", ".a"]
    pieces = []
    for _ in range(rng.randint(1, 3)):
        address = f"{rng.choice(local)}@{rng.choice(['b', 'b.c', 'b.c.', 'xn--e1a.d'])}"
        if rng.random() < 0.6:
            name = "".join(rng.choice(word) + rng.choice(space) for _ in range(rng.randint(0, 3)))
            address = f"{name}<{address}>"
        pieces.append(rng.choice(space) + address + rng.choice(space))
    value = ",".join(pieces)
    if rng.random() < 0.3:
        at = rng.randint(0, len(value))
        value = value[:at] + rng.choice(["<", ">", "@", ",", " ", ".", "\r\n"]) + value[at:]
    return value


def test_random_lists_read_as_the_full_parser_reads_them() -> None:
    rng = random.Random(5)
    accepted = named = 0
    for _ in range(50_000):
        value = _random_list(rng)
        fast = _simple_list(value)
        if fast is not None:
            accepted += 1
            named += sum(1 for a in fast if a.name)
            assert fast == _parsed_list(value), repr(value)
    assert accepted > 20_000 and named > 20_000, (accepted, named)


def test_comment_names_are_the_last_non_empty_comment_of_the_address() -> None:
    """_comment_name bisects the field's comments (a scan per address was quadratic): the same
    answer as the scan, on random comment lists."""
    rng = random.Random(7)
    for _ in range(5_000):
        comments = [(rng.randint(0, 20), rng.choice(["", "", "x", "y", "z"])) for _ in range(rng.randint(0, 8))]
        comments.sort(key=lambda c: c[0])  # word order, as _tokens makes them
        lo = rng.randint(0, 20)
        hi = rng.randint(lo, 21)
        expected = next((text for index, text in reversed(comments) if lo <= index <= hi and text), None)
        assert _comment_name(comments, lo, hi) == expected, (comments, lo, hi)
