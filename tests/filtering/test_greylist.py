"""filtering/greylist.py's pure half: triplet parts and the decision table (RFC 6647)."""
from __future__ import annotations

import pytest

from postoffice.config_schema import GreylistConfig
from postoffice.filtering.greylist import (
    client_network,
    decide,
    deferral,
    is_provider,
    normalise_sender,
)
from postoffice.store.filter_state_interface import GreylistState

CONFIG = GreylistConfig(enabled=True, delay=300.0, retry_window=86400.0, remember_days=35.0,
                        auto_allow_after=5, skip_providers=("gmail.com",))
NOW = 1_000_000_000.0
DAY = 86400.0


def state(first: float | None = None, passed: bool = False, last: float | None = None,
          passes: int = 0, network_last: float | None = None) -> GreylistState:
    return GreylistState(first, passed, last if last is not None else first, passes, network_last)


@pytest.mark.parametrize(("ip", "network"), [
    ("192.0.2.77", "192.0.2.0/24"),
    ("::ffff:192.0.2.77", "192.0.2.0/24"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("not an address", "not an address"),
])
def test_client_network_is_the_24_or_64(ip: str, network: str) -> None:
    assert client_network(ip) == network


@pytest.mark.parametrize(("sender", "normalised"), [
    ("", "<>"),
    ("Alice@Example.ORG", "alice@example.org"),
    ("bounce-1234-5678@list.example", "bounce-#-#@list.example"),
    ("prvs=1a2b3c4d=alice@example.org", "alice@example.org"),
])
def test_sender_normalisation_joins_verp_and_batv(sender: str, normalised: str) -> None:
    assert normalise_sender(sender) == normalised


def test_providers_match_their_subdomains_only() -> None:
    assert is_provider("a@gmail.com", ("gmail.com",))
    assert is_provider("a@mail.gmail.com", ("gmail.com",))
    assert not is_provider("a@notgmail.com", ("gmail.com",))
    assert not is_provider("", ("gmail.com",))


@pytest.mark.parametrize(("known", "passed", "reason", "write"), [
    (state(), False, "new", "first"),
    (state(first=NOW - 10), False, "early", None),
    (state(first=NOW - 301), True, "retried", "passed"),
    (state(first=NOW - 2 * DAY), False, "expired", "first"),          # retried too late: start over
    (state(first=NOW - 3 * DAY, passed=True, last=NOW - 60), True, "known", None),
    (state(first=NOW - 3 * DAY, passed=True, last=NOW - 2 * 3600), True, "known", "touch"),
    (state(first=NOW - 90 * DAY, passed=True, last=NOW - 40 * DAY), False, "expired", "first"),
    (state(passes=5, network_last=NOW - 60), True, "network", None),  # auto-allowed network
    (state(passes=4, network_last=NOW - 60), False, "new", "first"),
    (state(passes=9, network_last=NOW - 40 * DAY), False, "new", "first"),
])
def test_decision_table(known: GreylistState, passed: bool, reason: str, write: str | None) -> None:
    decision, record = decide(known, NOW, CONFIG)
    assert (decision.passed, decision.reason) == (passed, reason)
    shown = None if record is None else "first" if record.first else "passed" if record.passed else "touch"
    assert shown == write


def test_early_retry_is_told_the_seconds_left() -> None:
    decision, _ = decide(state(first=NOW - 100), NOW, CONFIG)
    reply = deferral(decision)
    assert (reply.code, reply.enhanced) == (451, "4.7.1")
    assert "try again in 200 seconds" in reply.text


def test_auto_allow_can_be_turned_off() -> None:
    off = GreylistConfig(enabled=True, auto_allow_after=0)
    decision, _ = decide(state(passes=100, network_last=NOW), NOW, off)
    assert not decision.passed
