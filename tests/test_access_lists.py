"""access_lists.py without a server: what an admin may type, and how each kind of entry matches."""
from __future__ import annotations

import pytest

from postoffice.access_lists import AccessListError, AccessSnapshot, check_reason, parse_target
from postoffice.store.interface import AccessEntry


@pytest.mark.parametrize(("typed", "kind", "value"), [
    ("192.0.2.7", "ip", "192.0.2.7"),
    (" 2001:DB8::7 ", "ip", "2001:db8::7"),
    ("::ffff:192.0.2.7", "ip", "192.0.2.7"),  # an IPv4-mapped address is its IPv4 address
    ("192.0.2.7/24", "cidr", "192.0.2.0/24"),  # host bits cleared
    ("2001:db8::/32", "cidr", "2001:db8::/32"),
    ("Example.COM.", "domain", "example.com"),
    ("bücher.example", "domain", "xn--bcher-kva.example"),
    ("Spammer@Example.COM", "address", "spammer@example.com"),
    ("<user@example.com>", "address", "user@example.com"),
])
def test_targets_are_told_apart_by_their_shape(typed: str, kind: str, value: str) -> None:
    assert parse_target(typed) == (kind, value)


@pytest.mark.parametrize("typed", ["", "nonsense thing", "192.0.2.0/33", "example", "a b@example.com", "@example.com"])
def test_what_is_no_entry_is_refused_in_one_sentence(typed: str) -> None:
    with pytest.raises(AccessListError) as error:
        parse_target(typed)
    assert str(error.value).endswith(".") and "\n" not in str(error.value)


def test_a_reason_is_one_printable_line_of_limited_length() -> None:
    assert check_reason("  spam since June ") == "spam since June"
    for bad in ("two\r\nlines", "x" * 201, "tab\there"):
        with pytest.raises(AccessListError):
            check_reason(bad)


def snapshot(*entries: tuple[str, str, str]) -> AccessSnapshot:
    return AccessSnapshot([AccessEntry(name, kind, value) for name, kind, value in entries])  # type: ignore[arg-type]


def test_networks_match_every_address_inside_them_for_both_families() -> None:
    lists = snapshot(("block", "cidr", "192.0.2.0/24"), ("block", "cidr", "2001:db8::/32"),
                     ("block", "ip", "198.51.100.7"), ("block", "cidr", "10.0.0.0/8"))
    for ip in ("192.0.2.0", "192.0.2.255", "::ffff:192.0.2.9", "2001:db8:ffff::1", "198.51.100.7", "10.200.0.1"):
        assert lists.blocked_client(ip) is not None, ip
    for ip in ("192.0.3.0", "2001:db9::1", "198.51.100.8", "11.0.0.1", "not an ip"):
        assert lists.blocked_client(ip) is None, ip


def test_a_domain_entry_covers_its_subdomains_but_not_lookalikes() -> None:
    lists = snapshot(("block", "domain", "bad.example"))
    assert lists.blocked_sender("192.0.2.1", "a@bad.example") is not None
    assert lists.blocked_sender("192.0.2.1", "a@Deep.Mail.BAD.example.") is not None
    assert lists.blocked_sender("192.0.2.1", "a@notbad.example") is None
    assert lists.blocked_sender("192.0.2.1", "a@bad.example.org") is None
    assert lists.blocked_sender("192.0.2.1", "") is None  # the null sender has no domain


def test_allowed_clients_and_senders_skip_blocks_and_blocklists() -> None:
    lists = snapshot(("block", "cidr", "192.0.2.0/24"), ("allow", "ip", "192.0.2.10"),
                     ("block", "domain", "partner.example"), ("allow", "address", "billing@partner.example"),
                     ("allow", "domain", "friends.example"))
    assert lists.blocked_client("192.0.2.10") is None and lists.is_allowed("192.0.2.10")
    assert lists.blocked_client("192.0.2.11") is not None and not lists.is_allowed("192.0.2.11")
    assert lists.blocked_sender("203.0.113.1", "billing@partner.example") is None
    assert lists.blocked_sender("203.0.113.1", "sales@partner.example") is not None
    assert lists.blocked_sender("192.0.2.10", "sales@partner.example") is None  # the client is allowed
    assert lists.is_allowed("203.0.113.1", "someone@mx.friends.example")
    assert not lists.is_allowed("203.0.113.1", None)
    # A recipient never makes a client allowed, and allowed senders may write to blocked recipients.
    lists = snapshot(("block", "address", "trap@example.org"), ("allow", "domain", "friends.example"))
    assert lists.blocked_recipient("203.0.113.1", "x@other.example", "Trap+x@example.org") is not None
    assert lists.blocked_recipient("203.0.113.1", "x@friends.example", "trap@example.org") is None
