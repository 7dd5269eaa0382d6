"""`make test` on a fresh machine: without the Debian peers or the corpora, the tests that need
them are skipped, each naming what is missing; with POSTOFFICE_REQUIRE_PEERS=1 (.ci/run) they fail.

pytest runs in a subprocess on the peer-needing tests with PATH pointing at an empty directory
(the server under test runs on sys.executable and needs nothing from PATH) and the corpora
pointing nowhere.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# One test of each kind of need: (node id, what its skip reason must name).
NEEDS = [
    ("tests/interop/test_pop3_clients.py::test_fetchmail_verifies_the_certificate_over_stls_and_pop3s",
     "Debian package fetchmail"),
    ("tests/interop/test_pop3_clients.py::test_getmail_keep_twice_by_oldmail_then_delete_while_imap_idles",
     "Debian package getmail6"),
    ("tests/interop/test_pop3_clients.py::test_mpop_refuses_an_untrusted_certificate_or_a_wrong_name",
     "Debian package mpop"),
    ("tests/interop/test_swaks.py::test_starttls_and_auth_plain_on_587", "Debian package swaks"),
    ("tests/interop/test_mbsync.py", "Debian package isync"),
    ("tests/interop/test_mutt.py", "Debian package mutt"),
    ("tests/store/test_store_on_full_disk.py::test_full_disk_fails_writes_keeps_reads_and_recovers",
     "Debian package mount"),
    ("tests/conformance/test_imaptest.py", "external corpora not found"),
    ("tests/message/test_mime_corpora.py", "external corpora not found"),
]


def run_pytest(tmp_path: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTOFFICE_")}
    env.update(PATH=str(empty_bin), POSTOFFICE_CORPORA=str(tmp_path / "no-corpora"), COLUMNS="400", **extra_env)
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rsfE", "--timeout", "120",
            *(node for node, _ in NEEDS)]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_missing_peers_and_corpora_skip_naming_what_is_missing(tmp_path: Path) -> None:
    result = run_pytest(tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    for node, reason in NEEDS:
        assert any(reason in line for line in skips), f"{node}: no skip naming {reason!r}:\n{out[-6000:]}"
    assert not any(line.startswith(("FAILED", "ERROR")) for line in out.splitlines()), out[-6000:]


def test_require_peers_turns_every_missing_need_into_a_failure(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, POSTOFFICE_REQUIRE_PEERS="1")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-6000:]
    problems = [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]
    for node, reason in NEEDS:
        assert any(reason in line for line in problems), f"{node}: no failure naming {reason!r}:\n{out[-6000:]}"
    assert not any(line.startswith("SKIPPED") for line in out.splitlines()), out[-6000:]

