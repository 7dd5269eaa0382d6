"""The store reuses the spam stage's parse of a message after header fields were inserted into
it (its X-Spam fields below the first Received, then Return-Path on top): the IMAP fields stored
from the moved parse equal those of parsing the final bytes, for every message of the corpora."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from postoffice.filtering.spam_stage import below_first_received_at
from postoffice.message.lines import to_crlf
from postoffice.message.mime import parse_message
from postoffice.store.indexing import index_message

SPAM_FIELDS = b"X-Spam-Score: 3.1 (3 rules)\r\nX-Spam-Status: No, score=3.1 required=5.0\r\n\tDKIM_NONE=0.3\r\n"
RETURN_PATH = b"Return-Path: <bounce@sender.example>\r\n"

EXTRA = [
    b"Received: from a by b; Mon, 1 Jan 2024 10:00:00 +0000\r\nFrom: a@b.example\r\nSubject: x\r\n\r\nbody\r\n",
    b"From: a@b.example\r\n\r\n",
    b"Subject: no body separator\r\n",
    b"\r\nbody only\r\n",
    b"Received: x\r\n\r\n",
    b'Received: from a\r\n by b; Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b\r\nContent-Type: text/plain\r\n\r\nt\r\n--b--\r\n",
]


def _messages(corpora: Path) -> list[bytes]:
    found = [to_crlf(path.read_bytes()) for path in sorted(corpora.glob("mime-*/**/*"))
             if path.is_file() and path.suffix not in (".tsv", ".md", ".json")
             and path.name not in ("LICENSE", "SOURCE.txt", "README.txt")]
    return found + EXTRA


def test_the_moved_parse_stores_what_parsing_the_final_bytes_stores(corpora: Path) -> None:
    messages = _messages(corpora)
    assert len(messages) > 150
    for raw in messages:
        cut = below_first_received_at(raw)
        with_fields = raw[:cut] + SPAM_FIELDS + raw[cut:]
        stored = RETURN_PATH + with_fields
        moved = parse_message(raw).with_fields_inserted(cut, len(SPAM_FIELDS)).with_fields_inserted(0, len(RETURN_PATH))
        expected = index_message(stored)
        assert index_message(stored, parsed=moved) == expected, raw[:200]
        # and the parse itself, but for the header text the full-text index reads from the file
        fresh = parse_message(stored)
        assert dataclasses.replace(moved, headers=fresh.headers) == fresh, raw[:200]
