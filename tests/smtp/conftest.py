"""A live postoffice with its SMTP listeners, for the server tests of this folder."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import LiveServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path / "data", ["smtp", "submission", "submissions", "lmtp"],
        limits={"max_message_size": 1_000_000, "max_recipients": 60, "max_connections_per_ip": 1000},
        auth={"failed_login_delay": 0.2},
    ).start()
    live.add_user("alice@example.test")
    live.add_user("bob@example.test")
    yield live
    live.stop()
