"""Shared fixtures and hooks: the external corpora and the Debian peers (see peers.py)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from dns_server import dns_server  # noqa: F401 (the loopback DNS servers, a session fixture)
from peers import check_peer_markers, unavailable

REPO = Path(__file__).resolve().parent.parent


def corpora_dir() -> Path | None:
    """The external corpora, from $POSTOFFICE_CORPORA or ../shared/corpora beside the repo."""
    env = os.environ.get("POSTOFFICE_CORPORA")
    path = Path(env) if env else REPO.parent / "shared" / "corpora"
    return path if path.is_dir() else None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "peer(program, package=None): needs a Debian program on PATH; skipped without it "
        "(naming the package), failed without it when POSTOFFICE_REQUIRE_PEERS=1")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    check_peer_markers(item)


@pytest.fixture(scope="session")
def corpora() -> Path:
    path = corpora_dir()
    if path is None:
        unavailable("external corpora not found: set POSTOFFICE_CORPORA to the shared corpora directory (.ci/run does)")
    return path


@pytest.fixture
def events(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The log records of `postoffice.events` (one line per SMTP transaction, login, ...)."""
    caplog.set_level(logging.INFO, logger="postoffice.events")
    return caplog
