"""Dovecot's imaptest scripted tests against our IMAP server, through our runner
(tests/conformance/imaptest_runner.py, proven strict by test_imaptest_runner.py).

Every script must pass, except those in imaptest-skips.txt (extensions we decided not to offer,
each with its reason) and, until they land, those in NOT_YET (extensions still to build). A
script skipped for any other reason fails this test, so nothing is skipped by accident.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imaptest_runner import Outcome, run_script
from imaptest_script import script_paths
from live_server import PASSWORD, LiveServer

# Raise this as extensions land; it may never go down.
MINIMUM_PASSING = 67
SKIPS = Path(__file__).with_name("imaptest-skips.txt")
# Extensions still to build (none today: every script we run passes).
NOT_YET: set[str] = set()


def decided_skips() -> dict[str, str]:
    skips = {}
    for line in SKIPS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition(":")
            assert reason.strip(), f"{SKIPS.name}: {name} needs a reason"
            skips[name.strip()] = reason.strip()
    return skips


@pytest.fixture(scope="module")
def imap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("imaptest") / "data", ["imap"]).start()
    live.add_user("imaptest@example.test")
    live.add_user("imaptest2@example.test")
    yield live
    live.stop()


def test_every_covered_imaptest_script_passes(imap: LiveServer, corpora: Path) -> None:
    results = {}
    for path in script_paths(corpora / "imaptest-dovecot" / "tests"):
        results[path.name] = run_script(
            path, "127.0.0.1", imap.ports["imap"], "imaptest@example.test", PASSWORD,
            user2="imaptest2@example.test", password2=PASSWORD, timeout=20,
        )
    failed = {name: r.summary() for name, r in results.items() if r.outcome in (Outcome.FAILED, Outcome.ERROR)}
    passed = [name for name, r in results.items() if r.outcome is Outcome.PASSED]
    skipped = {name: r.skip_reason for name, r in results.items() if r.outcome is Outcome.SKIPPED}
    print(f"imaptest: {len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped (extensions not offered)")
    for name, reason in sorted(skipped.items()):
        print(f"  skipped {name}: {reason}")
    assert not failed, failed
    assert len(passed) >= MINIMUM_PASSING, passed
    unexplained = set(skipped) - set(decided_skips()) - NOT_YET
    assert not unexplained, {name: skipped[name] for name in unexplained}
