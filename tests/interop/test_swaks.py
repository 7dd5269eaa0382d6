"""Interop with swaks (Debian's SMTP test tool): STARTTLS + AUTH to 587, implicit TLS to 465,
and a 10 MB attachment arriving intact. (swaks has no BDAT support; CHUNKING of 10 MB is
checked with a raw client below.)"""
from __future__ import annotations

import email
import email.policy
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

pytestmark = pytest.mark.peer("swaks")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["submission", "submissions", "smtp"],
                      limits={"max_message_size": 30_000_000}).start()
    live.add_user("alice@example.test")
    live.add_user("bob@example.test")
    yield live
    live.stop()


def swaks(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["swaks", "--server", "127.0.0.1", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_starttls_and_auth_plain_on_587(server: LiveServer) -> None:
    out = swaks("--port", str(server.ports["submission"]), "--tls", "--auth", "PLAIN",
                "--auth-user", "alice@example.test", "--auth-password", PASSWORD,
                "--from", "alice@example.test", "--to", "bob@example.test",
                "--header", "Subject: via swaks", "--body", "Sent by swaks over STARTTLS.")
    assert "235 2.7.0" in out.stdout and "<~  250 2.0.0" in out.stdout
    (stored,) = server.messages("bob@example.test")
    assert b"Subject: via swaks" in stored and b"Sent by swaks over STARTTLS." in stored
    assert b"with ESMTPSA" in stored


def test_implicit_tls_on_465(server: LiveServer) -> None:
    swaks("--port", str(server.ports["submissions"]), "--tlsc", "--auth", "LOGIN",
          "--auth-user", "alice@example.test", "--auth-password", PASSWORD,
          "--from", "alice@example.test", "--to", "bob@example.test", "--body", "implicit TLS")
    (stored,) = server.messages("bob@example.test")
    assert b"implicit TLS" in stored


def test_ten_megabyte_attachment_arrives_intact(server: LiveServer, tmp_path: Path) -> None:
    payload = os.urandom(10 * 1024 * 1024)
    attachment = tmp_path / "big.bin"
    attachment.write_bytes(payload)
    swaks("--port", str(server.ports["submission"]), "--tls", "--auth", "PLAIN",
          "--auth-user", "alice@example.test", "--auth-password", PASSWORD,
          "--from", "alice@example.test", "--to", "bob@example.test",
          "--attach-type", "application/octet-stream", "--attach", str(attachment),
          "--body", "see attachment")
    (stored,) = server.messages("bob@example.test")
    message = email.message_from_bytes(stored, policy=email.policy.default)
    parts = [p for p in message.walk() if p.get_content_type() == "application/octet-stream"]
    assert len(parts) == 1
    assert parts[0].get_payload(decode=True) == payload


def test_ten_megabytes_with_chunking(server: LiveServer) -> None:
    """BDAT (RFC 3030) in 1 MB chunks, binary content, compared byte for byte."""
    from smtp_client import RawSmtp

    body = b"Subject: chunked\r\n\r\n" + os.urandom(10 * 1024 * 1024)
    raw = RawSmtp(server.ports["smtp"], timeout=60)
    raw.cmd("EHLO c.example")
    assert raw.cmd("MAIL FROM:<a@remote.example> BODY=BINARYMIME")[0] == 250
    assert raw.cmd("RCPT TO:<bob@example.test>")[0] == 250
    chunk = 1024 * 1024
    pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)]
    for i, piece in enumerate(pieces):
        last = b" LAST" if i == len(pieces) - 1 else b""
        raw.send(b"BDAT %d%s\r\n" % (len(piece), last) + piece)
    codes = [raw.reply()[0] for _ in pieces]
    assert codes == [250] * len(pieces)
    raw.close()
    (stored,) = server.messages("bob@example.test")
    assert stored.endswith(body)
