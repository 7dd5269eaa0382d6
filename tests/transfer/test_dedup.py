"""The transfer fingerprint (transfer/dedup.py): bytes in, equal or different fingerprints out."""
from __future__ import annotations

import pytest

from postoffice.transfer.dedup import DuplicateFilter, fingerprint

ORIGINAL = (b"From: Alice <alice@example.net>\r\nTo: bob@example.org\r\nSubject: Lunch\r\n"
            b"Date: Mon, 1 Jan 2024 12:00:00 +0000\r\nMessage-ID: <lunch@example.net>\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nNoon?\r\nFrom the office.\r\n")


def added_on_top(*fields: bytes) -> bytes:
    return b"".join(f + b"\r\n" for f in fields) + ORIGINAL


@pytest.mark.parametrize("copy", [
    added_on_top(b"Received: from mx.example.org by mail.example.org; Mon, 1 Jan 2024 12:00:01 +0000"),
    added_on_top(b"Return-Path: <alice@example.net>", b"Delivered-To: bob@example.org"),
    added_on_top(b"Authentication-Results: mail.example.org; dkim=pass", b"ARC-Seal: i=1; a=rsa-sha256; cv=none"),
    added_on_top(b"DKIM-Signature: v=1; d=example.org; b=abc", b"X-Spam-Score: 0.1", b"X-UIDL: 123"),
    ORIGINAL.replace(b"\r\n", b"\n"),  # a Unix mail file
    ORIGINAL.replace(b"\r\n\r\n", b"\r\nStatus: RO\r\nX-Mozilla-Status: 0001\r\n\r\n"),
    ORIGINAL.replace(b"\r\nFrom the", b"\r\n>From the"),  # mbox quoting
    ORIGINAL + b"\r\n\r\n",  # a trailing blank line some writers add
    ORIGINAL.replace(b"Subject: Lunch", b"Subject:   Lunch"),
    ORIGINAL.replace(b"To: bob@example.org", b"To:\r\n bob@example.org"),  # refolded
    ORIGINAL.replace(b"Subject:", b"SUBJECT:"),
], ids=["received", "return-path", "auth-results", "dkim-x-fields", "lf", "status", "from-quoting",
        "trailing-blank", "spaces", "folded", "field-case"])
def test_what_servers_and_clients_add_does_not_change_the_fingerprint(copy: bytes) -> None:
    assert fingerprint(copy) == fingerprint(ORIGINAL)


@pytest.mark.parametrize("other", [
    ORIGINAL.replace(b"Noon?", b"Noon!"),
    ORIGINAL.replace(b"<lunch@example.net>", b"<dinner@example.net>"),
    ORIGINAL.replace(b"Subject: Lunch", b"Subject: Dinner"),
    ORIGINAL.replace(b"12:00:00", b"12:00:01"),
    ORIGINAL.replace(b"Message-ID: <lunch@example.net>\r\n", b""),
    ORIGINAL.replace(b"To: bob", b"Cc: bob"),
    ORIGINAL.replace(b"charset=utf-8", b"charset=latin-1"),
], ids=["body", "message-id", "subject", "date", "no-message-id", "to-cc", "content-type"])
def test_a_different_message_has_a_different_fingerprint(other: bytes) -> None:
    assert fingerprint(other) != fingerprint(ORIGINAL)


def test_messages_without_message_id_differ_by_their_other_fields_and_body() -> None:
    one = b"From: a@x\r\nSubject: s\r\n\r\nbody 1\r\n"
    assert fingerprint(one) == fingerprint(b"Received: by y\r\n" + one)
    assert fingerprint(one) != fingerprint(one.replace(b"body 1", b"body 2"))


def test_headers_only_and_empty_messages_have_a_fingerprint() -> None:
    assert fingerprint(b"") == fingerprint(b"Received: by y")
    assert fingerprint(b"Subject: a") != fingerprint(b"Subject: b")


def test_the_filter_counts_copies_as_a_multiset() -> None:
    present = DuplicateFilter(["a", "a", "b"])
    assert [present.is_duplicate(fp) for fp in ["a", "b", "a", "a", "b", "c"]] == [True, True, True, False, False, False]
    assert not present
    present.add("c")
    assert present.is_duplicate("c")
