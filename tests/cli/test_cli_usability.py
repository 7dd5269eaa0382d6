"""Small things a user hit with the real `postoffice` command (issue 13): help texts, sizes, the
host name `init` picks, whole addresses in `queue list`, honest `queue retry`, alias warnings,
and `serve --dev` naming only a demo user that exists."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import typer.main

from cli_run import po
from live_server import LiveServer
from postoffice.cli import app
from postoffice.delivery import Envelope, deliver_message
from postoffice.store.interface import OutboundMessage, QueuedRecipient

PASSWORD = "a long enough password"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    po("init", "--domain", "example.org", "--hostname", "mail.example.org", data=d)
    return d


def leaf_commands() -> list[tuple[str, ...]]:
    """Every command a user can run, as its words after `postoffice`."""
    found: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None)
        if children is None:
            found.append(path)
            return
        for name, child in children.items():
            walk(child, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def test_every_command_help_has_an_example_and_flags_show_no_value() -> None:
    commands = leaf_commands()
    assert ("queue", "retry") in commands and ("config", "show") in commands and len(commands) >= 20
    with ThreadPoolExecutor(4) as pool:
        helps = dict(zip(commands, pool.map(lambda words: po(*words, "--help").stdout, commands), strict=True))
    missing = [" ".join(words) for words, text in helps.items() if "Example" not in text]
    assert not missing, f"--help without an example: {missing}"
    placeholders = [" ".join(words) for words, text in helps.items() if "<bool>" in text]
    assert not placeholders, f"a flag shown as taking a <bool>: {placeholders}"
    assert "--json" in helps[("user", "list")]


def test_user_add_quota_takes_the_sizes_user_quota_takes(data: Path) -> None:
    po("user", "add", "alice@example.org", "--password-stdin", "--quota", "2G", data=data, stdin=PASSWORD)
    po("user", "add", "bob@example.org", "--password-stdin", data=data, stdin=PASSWORD)
    po("user", "quota", "bob@example.org", "1.5G", data=data)
    quotas = {u["address"]: u["quota"] for u in json.loads(po("user", "list", "--json", data=data).stdout)}
    assert quotas == {"alice@example.org": 2 * 1024**3, "bob@example.org": 3 * 1024**3 // 2}
    for args in (("user", "add", "carol@example.org", "--password-stdin", "--quota", "2X"),
                 ("user", "quota", "bob@example.org", "2X")):
        bad = po(*args, data=data, stdin=PASSWORD, check=False)
        assert bad.returncode == 2 and "'2X' is not a size" in bad.stderr and "Traceback" not in bad.stderr


def test_init_without_hostname_uses_the_machine_name_and_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = po("init", data=data).stdout
    hostname = tomllib.loads((data / "postoffice.toml").read_text())["server"]["hostname"]
    names = {n.lower().removesuffix(".") for n in (socket.getfqdn(), socket.gethostname())} - {"localhost"}
    if names:  # this machine has a name: init uses it, not localhost
        assert hostname in names
    assert "No --hostname given" in out and hostname in out and "--hostname mail.example.org" in out
    assert "[server]" in out  # shown, not eaten as rich markup


@pytest.fixture
def queued(tmp_path: Path) -> Iterator[tuple[LiveServer, str, str]]:
    """A server whose queue holds one message from and to addresses longer than 80 columns."""
    # The forward goes to an address literal (no DNS) at a port where nothing listens: it stays queued.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    live = LiveServer(tmp_path / "data", ["smtp"], outbound={"mx_port": closed}).start()
    sender = "a.sender.with.a.rather.long.name-" + "s" * 30 + "@mail.sending-organisation.example"
    far = "the.recipient.of.a.forward-" + "r" * 30 + "@[IPv6:0000:0000:0000:0000:0000:0000:0000:0001]"
    services = live.services
    assert services is not None
    # Queued as SMTP queues a forward (alias targets are names, and a name would need DNS).
    outbound = OutboundMessage(sender, (QueuedRecipient(far),))
    report = live.call(deliver_message(services.store, services.directory, Envelope(sender, ()),
                                       b"Subject: to be forwarded\r\n\r\nhello\r\n", outbound=outbound))
    assert report.queue_id is not None
    yield live, sender, far
    live.stop()


def test_queue_list_never_cuts_an_address(queued: tuple[LiveServer, str, str]) -> None:
    live, sender, far = queued
    assert len(far) > 80 and len(sender) > 80
    for columns in ("80", "40"):
        out = po("queue", "list", data=live.data_dir, env={"COLUMNS": columns}).stdout
        assert sender in out and far in out, out
    (row,) = json.loads(po("queue", "list", "--json", data=live.data_dir).stdout)
    assert row["sender"] == sender and [r["address"] for r in row["recipients"]] == [far]


def test_queue_retry_says_when_the_message_is_tried(queued: tuple[LiveServer, str, str]) -> None:
    # (tests/queue/test_queue_cli.py checks that a running `serve` then really tries it)
    live, _, _ = queued
    (row,) = json.loads(po("queue", "list", "--json", data=live.data_dir).stdout)
    out = po("queue", "retry", str(row["id"]), data=live.data_dir).stdout
    assert "will be tried again now" not in out
    assert f"Message {row['id']} is due now" in out and "postoffice serve" in out, out
    (due,) = json.loads(po("queue", "list", "--json", data=live.data_dir).stdout)
    assert due["next_attempt"] <= time.time() + 1, due


def test_alias_add_warns_about_a_loop_and_a_target_that_does_not_exist(data: Path) -> None:
    po("user", "add", "alice@example.org", "--password-stdin", data=data, stdin=PASSWORD)
    fine = po("alias", "add", "sales@example.org", "alice@example.org", "someone@remote.example", data=data)
    assert "warning" not in fine.stderr.lower()
    nobody = po("alias", "add", "team@example.org", "alice@example.org", "nobody@example.org", data=data)
    assert nobody.stderr.count("warning:") == 1 and "nobody@example.org is neither a user nor an alias" in nobody.stderr
    po("alias", "add", "ping@example.org", "pong@example.org", data=data)
    loop = po("alias", "add", "pong@example.org", "ping@example.org", data=data)
    assert loop.stderr.count("warning:") == 1 and "loop" in loop.stderr and "pong@example.org" in loop.stderr
    aliases = {(a["source"], a["target"]) for a in json.loads(po("alias", "list", "--json", data=data).stdout)}
    assert {("team@example.org", "nobody@example.org"), ("pong@example.org", "ping@example.org")} <= aliases


def test_serve_dev_names_no_demo_user_on_a_data_dir_without_one(data: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "postoffice", "serve", "--dev", "--data", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"},
    )
    seen = ""
    try:
        deadline = time.monotonic() + 60
        while "mail clients:" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            seen += line
        assert "mail clients:" in seen, seen
        assert "demo user" not in seen and "demo@example.test" not in seen, seen
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
