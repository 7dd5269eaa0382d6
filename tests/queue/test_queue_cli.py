"""`postoffice queue list|show|retry|remove|hold|release|flush` against a running `serve`: the
commands change the store and the server's queue runner acts on it within seconds."""
from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli_run import po
from serve_process import Serve, enqueue, init_data, subjects_in_inbox

ALICE, BOB = "alice@example.org", "bob@example.org"


def raw(subject: str) -> bytes:
    return f"From: <{ALICE}>\r\nSubject: {subject}\r\n\r\nHello.\r\n".encode()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    # Remote recipients are address literals ([127.0.0.1], no DNS) at a port where nothing listens.
    return init_data(tmp_path / "data", (ALICE, BOB), outbound=f"mx_port = {closed_port()}")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CAROL = "carol@[127.0.0.1]"


def show(data: Path, queue_id: int) -> dict[str, Any]:
    return json.loads(po("queue", "show", str(queue_id), "--json", data=data).stdout)  # type: ignore[no-any-return]


def eventually(check: Callable[[], bool], timeout: float = 20.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.2)


def test_show_lists_every_attempt_and_retry_makes_the_running_server_try_now(data: Path) -> None:
    (queue_id,) = enqueue(data, [(ALICE, raw("mixed"), [CAROL, BOB])])
    entry = show(data, queue_id)
    assert entry["attempts"] == [] and entry["held"] is False
    server = Serve(data).started()
    try:
        eventually(lambda: len(show(data, queue_id)["attempts"]) >= 2, what="the first attempt")
        entry = show(data, queue_id)
        first = {a["recipient"]: a for a in entry["attempts"]}
        assert first[BOB]["outcome"] == "delivered" and first[BOB]["reply"] == "250 2.0.0 Delivered"
        assert first[BOB]["host"] == "mail.example.org"
        assert first[CAROL]["outcome"] == "deferred"
        assert "refused" in first[CAROL]["reply"] and "127.0.0.1" in first[CAROL]["reply"], first[CAROL]
        assert {r["address"]: r["status"] for r in entry["recipients"]} == {CAROL: "pending", BOB: "delivered"}
        assert entry["next_attempt"] > time.time() + 20  # the schedule's first step: about a minute
        text = po("queue", "show", str(queue_id), data=data).stdout
        assert f"<{CAROL}>  deferred" in text and "refused" in text

        said = po("queue", "retry", str(queue_id), data=data).stdout
        assert f"running server (pid {server.proc.pid})" in said and "is due now" in said, said
        eventually(lambda: show(data, queue_id)["attempts"][-1]["time"] > first[CAROL]["time"],
                   what="an attempt after `queue retry`")
        assert subjects_in_inbox(data, BOB) == ["mixed"]  # bob's copy is not sent again
    finally:
        assert "Traceback" not in server.stop()


def test_hold_release_flush_remove(data: Path) -> None:
    ids = enqueue(data, [(ALICE, raw(f"m{n}"), [BOB]) for n in range(3)])
    for queue_id in ids:
        po("queue", "hold", str(queue_id), data=data)
    listed = po("queue", "list", data=data).stdout
    assert listed.count("held (postoffice queue release to send it)") == 3, listed
    po("queue", "remove", str(ids[2]), data=data)
    server = Serve(data).started()
    try:
        time.sleep(3)  # several polls: held entries are never picked
        assert subjects_in_inbox(data, BOB) == []
        assert [e["attempts"] for e in json.loads(po("queue", "list", "--json", data=data).stdout)] == [0, 0]
        said = po("queue", "release", str(ids[0]), data=data).stdout
        assert f"Message {ids[0]} is released" in said
        eventually(lambda: subjects_in_inbox(data, BOB) == ["m0"], what="delivery after release")
        assert json.loads(po("queue", "flush", "--json", data=data).stdout)["due"] == 0  # m1 is held
        held = po("queue", "retry", str(ids[1]), data=data).stdout
        assert "is held" in held
        po("queue", "release", str(ids[1]), data=data)
        eventually(lambda: sorted(subjects_in_inbox(data, BOB)) == ["m0", "m1"], what="the second delivery")
        assert json.loads(po("queue", "list", "--json", data=data).stdout) == []
    finally:
        assert "Traceback" not in server.stop()


def test_commands_on_an_id_that_is_not_queued_say_so_in_one_sentence(data: Path) -> None:
    for command in ("show", "retry", "remove", "hold", "release"):
        result = po("queue", command, "999", data=data, check=False)
        assert result.returncode != 0
        assert result.stderr.strip().splitlines() == ["error: There is no queued message 999."], (command, result.stderr)


def test_retry_without_a_running_server_says_when_it_will_be_tried(data: Path) -> None:
    (queue_id,) = enqueue(data, [(ALICE, raw("waiting"), [BOB])])
    said = po("queue", "retry", str(queue_id), data=data).stdout
    assert "no server is running on this data directory" in said and "postoffice serve" in said
    assert json.loads(po("queue", "flush", "--json", data=data).stdout) == {"due": 1, "server_running": False}
