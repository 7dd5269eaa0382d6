"""The log an administrator reads (issue 13): real sessions over IMAP, POP3 and SMTP leave one
line per login (success and failure, with IP, user and mechanism, never the password), per SMTP
transaction and per session end, in text and JSON; the fail2ban filter in docs/ matches the
failures' addresses and nothing else; CLI changes leave a line in DATA/admin.log."""
from __future__ import annotations

import imaplib
import json
import logging
import os
import poplib
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_run import po
from live_server import PASSWORD, LiveServer

ROOT = Path(__file__).resolve().parents[2]
FILTER = ROOT / "docs" / "fail2ban" / "postoffice.conf"
ALICE, BOB = "alice@example.test", "bob@example.test"
WRONG = "Wrong-Secret-1234"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["smtp", "submission", "imap", "pop3"],
                      auth={"failed_login_delay": 0.05, "login_cache_seconds": 0.0}).start()
    live.add_user(ALICE)
    live.add_user(BOB)
    yield live
    live.stop()


def logged(caplog: pytest.LogCaptureFixture, name: str, count: int = 1, timeout: float = 20) -> list[logging.LogRecord]:
    """The records of event `name`, once there are `count` of them (the server thread logs some,
    such as session ends, just after the client has gone)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [rec for rec in caplog.records if rec.name == "postoffice.events"
                 and isinstance(rec.args, tuple) and rec.args[0].name == name]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# Imported where used, so that on code without it each test fails on what it asserts.
def fields(record: logging.LogRecord) -> dict[str, object]:
    from postoffice import logevents

    assert isinstance(record.args, tuple)
    event = record.args[0]
    assert isinstance(event, logevents.Event)
    return event.fields


def text(record: logging.LogRecord) -> str:
    from postoffice import logevents

    return logevents.formatter("text").format(record)


def as_json(record: logging.LogRecord) -> dict[str, object]:
    from postoffice import logevents

    entry = json.loads(logevents.formatter("json").format(record))
    assert isinstance(entry, dict)
    return entry


def source(ip: str) -> tuple[str, int]:
    return (ip, 0)


# --- real failed and successful logins -------------------------------------------------------

class SourcedImap(imaplib.IMAP4):
    """imaplib from a chosen loopback address (all of 127.0.0.0/8 reaches the server)."""

    def __init__(self, port: int, ip: str) -> None:
        self.source_ip = ip
        super().__init__("127.0.0.1", port, timeout=10)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, source_address=source(self.source_ip))


class SourcedPop3(poplib.POP3):
    def __init__(self, port: int, ip: str) -> None:
        self.source_ip = ip
        super().__init__("127.0.0.1", port, timeout=10)

    def _create_socket(self, timeout: float) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, source_address=source(self.source_ip))


def imap_login(server: LiveServer, user: str, password: str, ip: str = "127.0.0.1") -> bool:
    client = SourcedImap(server.ports["imap"], ip)
    try:
        client.login(user, password)
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        client.logout()


def pop3_login(server: LiveServer, user: str, password: str, ip: str = "127.0.0.1") -> bool:
    client = SourcedPop3(server.ports["pop3"], ip)
    try:
        client.user(user)
        client.pass_(password)
        return True
    except poplib.error_proto:
        return False
    finally:
        client.quit()


def smtp_login(server: LiveServer, user: str, password: str, ip: str = "127.0.0.1") -> bool:
    with smtplib.SMTP(timeout=10, source_address=source(ip)) as client:
        client.connect("127.0.0.1", server.ports["submission"])
        client.ehlo("laptop.example.test")
        client.user, client.password = user, password
        try:  # one mechanism: smtplib's login() would try the next one after a failure
            client.auth("PLAIN", client.auth_plain)
            return True
        except smtplib.SMTPAuthenticationError:
            return False


def test_every_protocol_logs_login_failures_and_successes_with_ip_user_mechanism(
        server: LiveServer, events: pytest.LogCaptureFixture) -> None:
    assert not imap_login(server, ALICE, WRONG, "127.0.0.2")
    assert imap_login(server, ALICE, PASSWORD, "127.0.0.5")
    assert not pop3_login(server, BOB, WRONG, "127.0.0.3")
    assert pop3_login(server, BOB, PASSWORD, "127.0.0.5")
    assert not smtp_login(server, ALICE, WRONG, "127.0.0.4")
    assert smtp_login(server, ALICE, PASSWORD, "127.0.0.5")

    failed = [fields(rec) for rec in logged(events, "login failed", 3)]
    ok = [fields(rec) for rec in logged(events, "login ok", 3)]
    assert [(f["protocol"], f["ip"], f["user"], f["mechanism"]) for f in failed] == [
        ("imap", "127.0.0.2", ALICE, "LOGIN"), ("pop3", "127.0.0.3", BOB, "USER"),
        ("submission", "127.0.0.4", ALICE, "PLAIN")]
    assert [(f["protocol"], f["ip"], f["user"]) for f in ok] == [
        ("imap", "127.0.0.5", ALICE), ("pop3", "127.0.0.5", BOB), ("submission", "127.0.0.5", ALICE)]
    assert all(f["conn"] for f in failed + ok)
    first = logged(events, "login failed")[0]
    assert text(first).endswith(
        f"INFO postoffice.events: login failed: protocol=imap ip=127.0.0.2 user={ALICE} mechanism=LOGIN "
        f"conn={fields(first)['conn']}")
    assert {k: v for k, v in as_json(first).items() if k != "time"} == {
        "level": "info", "logger": "postoffice.events", "event": "login failed", "protocol": "imap",
        "ip": "127.0.0.2", "user": ALICE, "mechanism": "LOGIN", "conn": fields(first)["conn"]}
    # Never a password, in any line of any logger, in either format.
    logged(events, "session end", 6)
    for rec in events.records:
        for line in (text(rec), json.dumps(as_json(rec))):
            assert WRONG not in line and PASSWORD not in line


def test_a_user_name_cannot_forge_fields_or_lines(server: LiveServer, events: pytest.LogCaptureFixture) -> None:
    forged = 'x ip=10.9.9.9 "\n2026-12-06 09:40:01,123 INFO postoffice.events: login failed: ip=10.9.9.8'
    assert not smtp_login(server, forged, WRONG, "127.0.0.2")
    (record,) = logged(events, "login failed")
    line = text(record)
    assert "\n" not in line
    assert (' ip=127.0.0.2 user="x ip=10.9.9.9 \\"\\n2026-12-06 09:40:01,123 INFO postoffice.events: '
            'login failed: ip=10.9.9.8" mechanism=PLAIN') in line


def test_smtp_transaction_line_names_client_sender_and_each_recipient_outcome(
        server: LiveServer, events: pytest.LogCaptureFixture) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=10) as client:
        client.ehlo("laptop.example.test")
        client.login(ALICE, PASSWORD)
        client.mail(ALICE)
        assert client.rcpt(BOB)[0] == 250
        assert client.rcpt("nobody@example.test")[0] == 550
        assert client.rcpt("carol@remote.example")[0] == 250
        code, reply = client.data(b"From: " + ALICE.encode() + b"\r\nSubject: hi\r\n\r\nHello.\r\n")
        assert code == 250
    queue_id = reply.decode().rsplit(" ", 1)[1]
    (record,) = logged(events, "smtp transaction")
    line = fields(record)
    assert line["protocol"] == "submission" and line["ip"] == "127.0.0.1"
    assert line["helo"] == "laptop.example.test" and line["user"] == ALICE and line["from"] == ALICE
    assert line["result"] == "250" and line["queue_id"] == queue_id
    assert isinstance(line["size"], int) and line["size"] > 30
    rcpts = line["rcpts"]
    assert isinstance(rcpts, list)
    assert [(rc["address"], rc["status"]) for rc in rcpts] == [
        (BOB, "delivered"), ("nobody@example.test", "refused"), ("carol@remote.example", "queued")]
    assert rcpts[0]["uid"] == [1] and rcpts[1]["reply"] == 550
    assert (f'from={ALICE} size={line["size"]} result=250 queue_id={queue_id} '
            f'rcpts="{BOB} delivered [1], nobody@example.test refused 550, carol@remote.example queued ') in text(record)
    assert as_json(record)["rcpts"] == rcpts


def test_an_smtp_transaction_without_a_message_is_logged_as_abandoned(
        server: LiveServer, events: pytest.LogCaptureFixture) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10, source_address=source("127.0.0.6")) as client:
        client.ehlo("spammer.example")
        client.mail("spam@spammer.example")
        assert client.rcpt("victim@elsewhere.example")[0] == 554
    (record,) = logged(events, "smtp transaction")
    line = fields(record)
    assert (line["protocol"], line["ip"], line["helo"], line["from"], line["result"]) == (
        "smtp", "127.0.0.6", "spammer.example", "spam@spammer.example", "abandoned")
    assert line["rcpts"] == [{"address": "victim@elsewhere.example", "status": "refused", "reply": 554}]


def test_session_end_line_has_duration_bytes_and_commands(server: LiveServer, events: pytest.LogCaptureFixture) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    client.login(ALICE, PASSWORD)
    client.select("INBOX")
    client.noop()
    client.logout()
    (record,) = logged(events, "session end")
    line = fields(record)
    assert (line["protocol"], line["ip"], line["user"]) == ("imap", "127.0.0.1", ALICE)
    assert line["commands"] == 5  # imaplib: CAPABILITY LOGIN SELECT NOOP LOGOUT
    assert isinstance(line["bytes_in"], int) and 60 < line["bytes_in"] < 200
    assert isinstance(line["bytes_out"], int) and line["bytes_out"] > 200
    assert isinstance(line["duration"], float) and 0 <= line["duration"] < 30
    assert re.search(r"session end: protocol=imap ip=127\.0\.0\.1 conn=\w+ user=alice@example\.test "
                     r"duration=[\d.]+ bytes_in=\d+ bytes_out=\d+ commands=5$", text(record))


# --- fail2ban ------------------------------------------------------------------------------------

def fail2ban_regex() -> str:
    path = shutil.which("fail2ban-regex")
    if path is None:
        reason = "no fail2ban-regex (Debian package fail2ban)"
        if os.environ.get("POSTOFFICE_REQUIRE_PEERS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_fail2ban_filter_matches_failed_logins_with_their_ip_and_no_success(
        server: LiveServer, events: pytest.LogCaptureFixture, tmp_path: Path, log_format: str) -> None:
    program = fail2ban_regex()
    assert not imap_login(server, ALICE, WRONG, "127.0.0.2")
    assert not pop3_login(server, BOB, WRONG, "127.0.0.3")
    assert not smtp_login(server, 'ALICE ip=127.0.0.9 x', WRONG, "127.0.0.4")
    for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):  # successes from the failing addresses too
        assert imap_login(server, ALICE, PASSWORD, ip)
    assert pop3_login(server, BOB, PASSWORD, "127.0.0.5")
    assert smtp_login(server, ALICE, PASSWORD, "127.0.0.5")
    logged(events, "session end", 8)
    from postoffice import logevents

    formatter = logevents.formatter(log_format)
    log_file = tmp_path / "postoffice.log"
    log_file.write_text("".join(formatter.format(rec) + "\n" for rec in events.records))
    assert len(logged(events, "login ok")) == 5

    result = subprocess.run([program, "-o", "ip", str(log_file), str(FILTER)],
                            capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["127.0.0.2", "127.0.0.3", "127.0.0.4"], result.stdout + result.stderr
    summary = subprocess.run([program, str(log_file), str(FILTER)], capture_output=True, text=True,
                             timeout=120, check=True).stdout
    assert re.search(r"Failregex: 3 total", summary), summary
    assert "Date template hits:" in summary and re.search(r"\[\d+\] \^", summary), summary


# --- admin changes -------------------------------------------------------------------------------

def test_cli_changes_leave_an_admin_log_line_and_reads_none(tmp_path: Path) -> None:
    data = tmp_path / "data"
    po("init", "--domain", "example.test", "--hostname", "mail.example.test", data=data)
    po("user", "add", "dave@example.test", "--password-stdin", "--quota", "10000000", data=data, stdin=WRONG + "\n")
    po("user", "list", data=data)
    po("user", "add", "--help", data=data)
    po("block", "add", "--help", data=data)
    po("alias", "add", "info@example.test", "dave@example.test", data=data)
    lines = (data / "admin.log").read_text().splitlines()
    assert len(lines) == 3, lines
    assert WRONG not in "".join(lines)
    user_add = lines[1]
    assert "INFO postoffice.events: admin change: os_user=" in user_add
    assert "command=\"user add\" target=dave@example.test" in user_add
    assert "--quota 10000000" in user_add
    assert "command=\"alias add\" target=info@example.test" in lines[2]

    config = (data / "postoffice.toml").read_text()
    (data / "postoffice.toml").write_text(config.replace('log_format = "text"', 'log_format = "json"'))
    po("domain", "add", "example.org", data=data)
    entry = json.loads((data / "admin.log").read_text().splitlines()[-1])
    assert (entry["event"], entry["command"], entry["target"]) == ("admin change", "domain add", "example.org")
    assert entry["os_user"] and entry["args"].startswith("domain add example.org --data ")


# --- [server] log_format, end to end ------------------------------------------------------------

def test_serve_with_log_format_json_writes_one_json_object_per_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    po("init", "--domain", "example.test", "--hostname", "mail.example.test", data=data)
    config = (data / "postoffice.toml").read_text()
    config = re.sub(r'^(smtp|submission|submissions|imaps|pop3|pop3s|http|https|managesieve) = \[.*\]$', r"\1 = []", config, flags=re.M)
    config = re.sub(r"^imap = \[.*\]$", 'imap = ["127.0.0.1:0"]', config, flags=re.M)
    config = config.replace('log_format = "text"', 'log_format = "json"')
    (data / "postoffice.toml").write_text(config)
    proc = subprocess.Popen([sys.executable, "-m", "postoffice", "serve", "--data", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[dict[str, object]] = []
    try:
        def next_entry() -> dict[str, object]:
            line = proc.stderr.readline()  # type: ignore[union-attr]
            assert line, f"serve ended: {lines}"
            entry = json.loads(line)  # every line is one JSON object, or this fails
            lines.append(entry)
            return entry

        deadline = time.monotonic() + 60
        while not str((entry := next_entry()).get("message", "")).startswith("listening: imap on "):
            assert time.monotonic() < deadline, lines
        port = int(str(entry["message"]).rsplit(":", 1)[1])
        client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
        with pytest.raises(imaplib.IMAP4.error):
            client.login("nobody@example.test", WRONG)
        client.logout()
        while (entry := next_entry()).get("event") != "session end":
            assert time.monotonic() < deadline, lines
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    (failed,) = [e for e in lines if e.get("event") == "login failed"]
    assert {k: v for k, v in failed.items() if k not in ("time", "conn")} == {
        "level": "info", "logger": "postoffice.events", "event": "login failed", "protocol": "imap",
        "ip": "127.0.0.1", "user": "nobody@example.test", "mechanism": "LOGIN"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(failed["time"]))
    assert all(WRONG not in json.dumps(e) for e in lines)


def test_a_login_over_the_user_and_address_limit_is_logged_as_refused_with_the_reason(
        tmp_path: Path, events: pytest.LogCaptureFixture) -> None:
    live = LiveServer(tmp_path / "data", ["imap"], limits={"max_userip_connections": 1}).start()
    try:
        live.add_user(ALICE)
        first = SourcedImap(live.ports["imap"], "127.0.0.7")
        first.login(ALICE, PASSWORD)
        with pytest.raises(imaplib.IMAP4.abort):
            SourcedImap(live.ports["imap"], "127.0.0.7").login(ALICE, PASSWORD)
        first.logout()
        (record,) = logged(events, "login refused")
        line = fields(record)
        assert (line["protocol"], line["ip"], line["user"], line["mechanism"]) == ("imap", "127.0.0.7", ALICE, "LOGIN")
        assert "max_userip_connections=1" in str(line["reason"])
    finally:
        live.stop()
