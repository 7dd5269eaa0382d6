"""queue/srs.py: addresses in, addresses out (the forms postsrsd and libsrs2 write)."""
from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from postoffice.queue.srs import (
    VALIDITY_DAYS,
    SenderRewriter,
    SrsRefused,
    is_srs_address,
    srs_secret_path,
)

DAY = 86400.0
NOW = 20_000 * DAY + 3600  # a fixed day, so timestamps are known


@pytest.fixture
def srs(tmp_path: Path) -> SenderRewriter:
    return SenderRewriter(srs_secret_path(tmp_path))


def test_an_outside_sender_round_trips_through_srs0(srs: SenderRewriter) -> None:
    rewritten = srs.forward("carol@origin.test", "example.org", now=NOW)
    assert re.fullmatch(r"SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=origin\.test=carol@example\.org", rewritten), rewritten
    assert is_srs_address(rewritten)
    assert srs.reverse(rewritten, now=NOW) == "carol@origin.test"
    assert srs.reverse(rewritten, now=NOW + VALIDITY_DAYS * DAY) == "carol@origin.test"  # still valid
    # The same input makes the same address (the hash is a function of the secret and the data).
    assert srs.forward("carol@origin.test", "example.org", now=NOW) == rewritten


def test_the_secret_is_made_on_first_use_private_and_kept(tmp_path: Path) -> None:
    path = srs_secret_path(tmp_path)
    first = SenderRewriter(path)
    with pytest.raises(SrsRefused):  # nothing made yet, so nothing can check
        first.reverse("SRS0=abcd=AA=origin.test=carol@example.org")
    assert not path.exists() and not first.loaded
    first.load()  # what delivery does off the event loop before the first forward
    assert first.loaded and path.exists()
    rewritten = first.forward("carol@origin.test", "example.org", now=NOW)
    assert path == tmp_path / "keys" / "srs.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes().strip()) >= 40
    # Another process (a restart) reads the same secret: what the first made still checks.
    assert SenderRewriter(path).reverse(rewritten, now=NOW) == "carol@origin.test"
    # A different secret does not accept it.
    other = SenderRewriter(srs_secret_path(tmp_path / "other"))
    other.forward("x@y.test", "example.org")
    with pytest.raises(SrsRefused, match="hash"):
        other.reverse(rewritten, now=NOW)


def test_srs0_of_another_forwarder_becomes_srs1_and_reverses_to_it(srs: SenderRewriter, tmp_path: Path) -> None:
    theirs = SenderRewriter(srs_secret_path(tmp_path / "forwarder"))
    first_hop = theirs.forward("carol@origin.test", "forwarder.test", now=NOW)
    ours = srs.forward(first_hop, "example.org", now=NOW)
    local = first_hop.rpartition("@")[0]
    assert re.fullmatch(r"SRS1=[A-Za-z0-9+/]{4}=forwarder\.test=" + re.escape(local[4:]) + "@example.org", ours), ours
    assert ours.count("==") == 1  # SRS1=HHHH=forwarder.test==HHHH=TT=... as libsrs2 writes it
    assert srs.reverse(ours, now=NOW) == first_hop  # back to the forwarder, who checks its own hash
    assert theirs.reverse(srs.reverse(ours, now=NOW), now=NOW) == "carol@origin.test"
    # Forwarded once more by a third hop: still SRS1, still naming the first forwarder.
    third = SenderRewriter(srs_secret_path(tmp_path / "third"))
    again = third.forward(ours, "third.test", now=NOW)
    assert again.startswith("SRS1=") and "=forwarder.test==" in again and again.endswith("@third.test")
    assert third.reverse(again, now=NOW) == first_hop


@pytest.mark.parametrize("forge", [
    lambda a: a.replace("=origin.test=", "=evil.test="),  # another original domain
    lambda a: a.replace("=carol@", "=mallory@"),  # another original local part
    lambda a: "SRS0=AAAA" + a[9:],  # a guessed hash
    lambda a: "SRS0=" + a[5:7] + a[9:],  # hash cut short
    lambda a: a[:10] + ("A" if a[10] != "A" else "B") + a[11:],  # another day under the same hash
])
def test_a_forged_address_is_refused(srs: SenderRewriter, forge) -> None:  # type: ignore[no-untyped-def]
    good = srs.forward("carol@origin.test", "example.org", now=NOW)
    with pytest.raises(SrsRefused):
        srs.reverse(forge(good), now=NOW)


def test_a_forged_srs1_is_refused(srs: SenderRewriter) -> None:
    ours = srs.forward("SRS0=abcd=AA=origin.test=carol@forwarder.test", "example.org", now=NOW)
    with pytest.raises(SrsRefused, match="hash"):
        srs.reverse(ours.replace("=forwarder.test=", "=evil.test="), now=NOW)


def test_an_expired_or_future_timestamp_is_refused(srs: SenderRewriter) -> None:
    made = srs.forward("carol@origin.test", "example.org", now=NOW)
    with pytest.raises(SrsRefused, match="expired"):
        srs.reverse(made, now=NOW + (VALIDITY_DAYS + 1) * DAY)
    with pytest.raises(SrsRefused, match="expired"):
        srs.reverse(made, now=NOW - DAY)  # made "tomorrow": not by us
    # The day counter wraps every 1024 days (as libsrs2's): 1024 days later it reads as today.
    assert srs.reverse(made, now=NOW + 1024 * DAY) == "carol@origin.test"


@pytest.mark.parametrize("fold", [str.lower, str.upper])
def test_case_folding_by_a_mail_system_on_the_way_is_tolerated(srs: SenderRewriter, fold) -> None:  # type: ignore[no-untyped-def]
    made = srs.forward("Carol@Origin.test", "example.org", now=NOW)
    assert srs.reverse(fold(made), now=NOW).lower() == "carol@origin.test"
    srs1 = srs.forward("SRS0=abcd=AA=origin.test=carol@forwarder.test", "example.org", now=NOW)
    assert srs.reverse(fold(srs1), now=NOW).lower() == "srs0=abcd=aa=origin.test=carol@forwarder.test"


def test_other_separators_after_the_tag_are_read(srs: SenderRewriter) -> None:
    made = srs.forward("carol@origin.test", "example.org", now=NOW)
    for sep in "+-":
        assert srs.reverse("SRS0" + sep + made[5:], now=NOW) == "carol@origin.test"


@pytest.mark.parametrize("sender", ["", "postmaster", '"john doe"@origin.test', "carol@[192.0.2.1]",
                                    "jöhn@origin.test"])
def test_senders_no_srs_form_can_carry_stay_as_they_are(srs: SenderRewriter, sender: str) -> None:
    assert srs.forward(sender, "example.org", now=NOW) == sender


@pytest.mark.parametrize("address", ["carol@example.org", "SRS0@example.org", "SRS0=abcd@example.org",
                                     "SRS0=abcd=AA=origin.test@example.org", "SRS1=abcd=host@example.org",
                                     "SRS0=abcd=!!=origin.test=carol@example.org"])
def test_malformed_addresses_are_refused_never_crash(srs: SenderRewriter, address: str) -> None:
    srs.forward("x@y.test", "example.org")  # a secret exists
    with pytest.raises(SrsRefused):
        srs.reverse(address, now=NOW)
