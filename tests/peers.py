"""What a test needs from outside the repo: Debian programs (peers), root for a mount, the corpora.

`make test` on a fresh machine runs what it can: a test whose peer is missing is skipped with a
one-line reason naming the Debian package. With POSTOFFICE_REQUIRE_PEERS=1 (.ci/run sets it) the
same test fails instead, so CI never skips one silently.

    @pytest.mark.peer("swaks")                        # a test, a class, or pytestmark of a module
    @pytest.mark.peer("getmail", package="getmail6")  # the program and the package it comes in
    path = require_peer("mpop")                       # inside a test or fixture; returns the path
    unavailable("cannot mount a tmpfs here (needs root)")  # anything else outside the repo
"""
from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

REQUIRE_ENV = "POSTOFFICE_REQUIRE_PEERS"


def peers_required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the running test for `reason`, or fail it when POSTOFFICE_REQUIRE_PEERS=1."""
    if peers_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def missing_reason(program: str, package: str | None = None) -> str:
    return f"{program} is not installed (Debian package {package or program}; .ci/run installs it)"


def require_peer(program: str, package: str | None = None) -> str:
    """The path of `program`; skips (or fails) the test when it is not on PATH."""
    path = shutil.which(program)
    if path is None:
        unavailable(missing_reason(program, package))
    return path


def check_peer_markers(item: pytest.Item) -> None:
    """Apply every `peer` marker of a test before its fixtures start (conftest's setup hook)."""
    for marker in item.iter_markers("peer"):
        require_peer(*marker.args, **marker.kwargs)
