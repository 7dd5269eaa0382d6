"""The header work of mail authentication on port 25 (pure functions of smtp/headers.py): forged
Authentication-Results of ours removed (RFC 8601 §5), relays' Received fields read."""
from __future__ import annotations

import pytest

from postoffice.smtp.headers import authserv_id, received_clients, remove_authentication_results

OURS = "mail.example.test"


@pytest.mark.parametrize(("value", "expected"), [
    (" mail.example.test; spf=pass", "mail.example.test"),
    (" MAIL.Example.TEST; none", "MAIL.Example.TEST"),
    (" (forged (nested) comment) mail.example.test 1; dkim=pass", "mail.example.test"),
    ('\r\n\t"mail.example.test"; dkim=pass', "mail.example.test"),
    (" mail.example.test;dkim=pass", "mail.example.test"),
    (" (unterminated comment mail.example.test; x", ""),
    ("", ""),
])
def test_authserv_id_is_the_first_token_after_comments(value: str, expected: str) -> None:
    assert authserv_id(value) == expected


def test_only_fields_claiming_our_authserv_id_are_removed_byte_for_byte() -> None:
    raw = (b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           b"Authentication-Results: mail.example.test; dkim=pass header.d=bank.example\r\n"
           b"authentication-results :\r\n (it is us, honest) MAIL.EXAMPLE.TEST.;\r\n\tspf=pass\r\n"
           b"Authentication-Results: mx.other.example; spf=fail smtp.mailfrom=x@mail.example.test\r\n"
           b"Authentication-Results: mail.example.test.evil.example; dkim=pass\r\n"
           b"X-Authentication-Results: mail.example.test; dkim=pass\r\n"
           b"Subject: hi\r\n"
           b"\r\n"
           b"Authentication-Results: mail.example.test; in the body, untouched\r\n")
    cleaned, removed = remove_authentication_results(raw, OURS)
    assert removed == 2
    assert cleaned == (b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                       b"Authentication-Results: mx.other.example; spf=fail smtp.mailfrom=x@mail.example.test\r\n"
                       b"Authentication-Results: mail.example.test.evil.example; dkim=pass\r\n"
                       b"X-Authentication-Results: mail.example.test; dkim=pass\r\n"
                       b"Subject: hi\r\n"
                       b"\r\n"
                       b"Authentication-Results: mail.example.test; in the body, untouched\r\n")


def test_a_message_without_our_fields_is_returned_as_is() -> None:
    raw = b"Subject: x\nAuthentication-Results: other.example; none\n\nbody\n"
    assert remove_authentication_results(raw, OURS) == (raw, 0)
    assert remove_authentication_results(b"no header at all", OURS) == (b"no header at all", 0)


def test_received_clients_reads_helo_and_address_newest_first() -> None:
    raw = (b"Received: from filter.example.net (filter.example.net [127.0.0.1])\r\n"
           b"\tby mx.example.test (Postfix) with ESMTP id 1; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           b"Received: from sender.example (unknown [IPv6:2001:db8::7]) by filter.example.net;\r\n"
           b"\tMon, 1 Jan 2024 00:00:00 +0000\r\n"
           b"Received: by localhost with local; no from clause [192.0.2.9]\r\n"
           b"Received: from x (helo=y) by z [192.0.2.8]; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           b"Subject: x\r\n\r\nReceived: from body ([192.0.2.1])\r\n")
    assert received_clients(raw) == [
        ("filter.example.net", "127.0.0.1"), ("sender.example", "2001:db8::7"), ("", ""), ("", "")]
