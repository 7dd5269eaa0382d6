"""Shared fixtures: where the external corpora live."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def corpora_dir() -> Path | None:
    """The external corpora, from $POSTOFFICE_CORPORA or ../shared/corpora beside the repo."""
    env = os.environ.get("POSTOFFICE_CORPORA")
    path = Path(env) if env else REPO.parent / "shared" / "corpora"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def corpora() -> Path:
    path = corpora_dir()
    if path is None:
        pytest.skip("external corpora not found: set POSTOFFICE_CORPORA (.ci/run does)")
    return path
