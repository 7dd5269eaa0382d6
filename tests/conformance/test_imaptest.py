"""Dovecot's imaptest scripted tests against our IMAP server, through our runner
(tests/conformance/imaptest_runner.py, proven strict by test_imaptest_runner.py).

Scripts needing an extension we do not advertise are reported as skipped by the runner
(SORT, THREAD, CONDSTORE, MULTIAPPEND, ... come with the IMAP extensions issue); every other script must pass.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imaptest_runner import Outcome, run_script
from imaptest_script import script_paths
from live_server import PASSWORD, LiveServer

# Raise this as extensions land; it may never go down.
MINIMUM_PASSING = 61


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
