"""`postoffice smtp-test` run as a user would (the real command) against postoffice's submission
listener (STARTTLS + AUTH: the whole transcript), a closed port, and peers that refuse: aiosmtpd
refusing every login, asking for STARTTLS first, offering AUTH only over TLS; postoffice's port
25 refusing to relay. Each failure's last line must name the cause."""
from __future__ import annotations

import base64
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope
from cert_kit import TestPki

from cli_run import po
from live_server import PASSWORD, LiveServer

pytestmark = pytest.mark.timeout(180)
ALICE = "alice@example.test"
BOB = "bob@example.test"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("smtp-test") / "data", ["smtp", "submission", "submissions"])
    live.start()
    live.add_user(ALICE)
    live.add_user(BOB)
    try:
        yield live
    finally:
        live.stop()


def cert_of(server: LiveServer) -> Path:
    """`init`'s self-signed certificate, which names 127.0.0.1: trusted as its own CA."""
    return server.data_dir / "tls" / "cert.pem"


def smtp_test(*args: str, password: str | None = PASSWORD, check: bool = False):  # type: ignore[no-untyped-def]
    env = {"POSTOFFICE_PASSWORD": password} if password is not None else {}
    return po("smtp-test", *args, env=env, check=check, timeout=90)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def last_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("***")]
    assert lines, stderr
    return lines[-1]


def test_submission_with_starttls_and_auth_shows_every_step(server: LiveServer) -> None:
    port = server.ports["submission"]
    done = smtp_test("--server", f"127.0.0.1:{port}", "--starttls", "--auth", ALICE, "--from", ALICE,
                     "--to", BOB, "--ca-file", str(cert_of(server)), "--helo", "client.example.test",
                     check=True)
    out = done.stdout
    steps = ["=== Trying 127.0.0.1:", "=== Connected to 127.0.0.1.", "<-  220 ", " -> EHLO client.example.test",
             "<-  250-", "<-  250 ", " -> STARTTLS", "<-  220 ", "=== TLS started: TLSv1.", "verified for 127.0.0.1",
             " ~> EHLO client.example.test", " ~> AUTH PLAIN <hidden>", "<~  235 ", f" ~> MAIL FROM:<{ALICE}>",
             f" ~> RCPT TO:<{BOB}>", " ~> DATA", "<~  354", " ~> .", "<~  250 ", "=== The server accepted",
             " ~> QUIT", "<~  221 ", "=== Connection closed."]
    position = 0
    for step in steps:  # each step, in this order
        found = out.find(step, position)
        assert found >= 0, f"{step!r} missing after position {position}:\n{out}"
        position = found + len(step)
    token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
    assert PASSWORD not in out + done.stderr and token not in out + done.stderr
    assert any(b"postoffice smtp-test" in m for m in server.messages(BOB))


def test_implicit_tls_and_json(server: LiveServer) -> None:
    port = server.ports["submissions"]
    done = smtp_test("--server", f"127.0.0.1:{port}", "--tls", "--auth", ALICE, "--from", ALICE, "--to", BOB,
                     "--ca-file", str(cert_of(server)), "--json", check=True)
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["failure"] == ""
    sent = [line["text"] for line in report["transcript"] if line["kind"] == "sent"]
    assert sent[0].startswith("EHLO") and "AUTH PLAIN <hidden>" in sent
    assert all(line["tls"] for line in report["transcript"] if line["kind"] in ("sent", "received"))


def test_closed_port_names_nothing_listening() -> None:
    port = free_port()
    done = smtp_test("--server", f"127.0.0.1:{port}", "--from", ALICE, "--to", BOB, password=None)
    assert done.returncode == 1
    assert f"Connection refused by 127.0.0.1:{port}: nothing listens on that port" in last_error(done.stderr)


def test_wrong_password_names_the_login(server: LiveServer) -> None:
    port = server.ports["submission"]
    done = smtp_test("--server", f"127.0.0.1:{port}", "--starttls", "--auth", ALICE, "--from", ALICE,
                     "--to", BOB, "--insecure", password="not the password")
    assert done.returncode == 1
    line = last_error(done.stderr)
    assert f"refused the login of {ALICE}" in line and "wrong user name or password" in line
    assert " ~> QUIT" in done.stdout  # a polite goodbye after the refusal
    assert "not the password" not in done.stdout + done.stderr


def test_untrusted_certificate_says_ca_file_or_insecure(server: LiveServer) -> None:
    port = server.ports["submission"]
    done = smtp_test("--server", f"127.0.0.1:{port}", "--starttls", "--from", ALICE, "--to", BOB, password=None)
    assert done.returncode == 1
    line = last_error(done.stderr)
    assert "certificate was not accepted" in line and "--ca-file" in line and "--insecure" in line
    assert "check tls" in line


def test_tls_on_a_starttls_port_says_use_starttls(server: LiveServer) -> None:
    port = server.ports["submission"]
    done = smtp_test("--server", f"127.0.0.1:{port}", "--tls", "--insecure", "--from", ALICE, "--to", BOB,
                     "--timeout", "10", password=None)
    assert done.returncode == 1
    assert "use --starttls instead of --tls" in last_error(done.stderr)


def test_port_25_refuses_to_relay_without_login(server: LiveServer) -> None:
    port = server.ports["smtp"]
    done = smtp_test("--server", f"127.0.0.1:{port}", "--from", ALICE, "--to", "someone@elsewhere.test",
                     password=None)
    assert done.returncode == 1
    line = last_error(done.stderr)
    assert "554" in line and "refused to relay" in line and "--auth USER" in line


# --- peers that refuse, run by aiosmtpd ----------------------------------------------------------------


class Accept:
    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        return "250 2.0.0 OK"


def refuse_every_login(server: object, session: object, envelope: object, mechanism: str,
                       auth_data: object) -> AuthResult:
    return AuthResult(success=False, handled=False)


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[object]:
    """Start an aiosmtpd peer with the given settings; ``peer(**kw)`` returns its port."""
    pki = TestPki(tmp_path / "pki")
    cert, key = pki.server("localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controllers: list[Controller] = []

    def start(**settings: object) -> int:
        port = free_port()
        controller = Controller(Accept(), hostname="127.0.0.1", port=port, tls_context=context,
                                server_hostname="peer.example.test", **settings)
        controller.start()
        controllers.append(controller)
        return port

    try:
        yield start
    finally:
        for controller in controllers:
            controller.stop()
        time.sleep(0)


def test_server_refusing_auth_names_the_login(peer) -> None:  # type: ignore[no-untyped-def]
    port = peer(authenticator=refuse_every_login, auth_require_tls=False)
    done = smtp_test("--server", f"127.0.0.1:{port}", "--auth", ALICE, "--from", ALICE, "--to", BOB)
    assert done.returncode == 1
    assert " -> AUTH PLAIN <hidden>" in done.stdout and "<-  535 " in done.stdout
    line = last_error(done.stderr)
    assert f"refused the login of {ALICE}" in line and "wrong user name or password" in line


def test_auth_offered_only_after_starttls(peer) -> None:  # type: ignore[no-untyped-def]
    port = peer(authenticator=refuse_every_login, auth_require_tls=True)
    done = smtp_test("--server", f"127.0.0.1:{port}", "--auth", ALICE, "--from", ALICE, "--to", BOB)
    assert done.returncode == 1
    assert "offers no AUTH before TLS" in last_error(done.stderr) and "--starttls" in last_error(done.stderr)


def test_server_requiring_starttls_says_so(peer) -> None:  # type: ignore[no-untyped-def]
    port = peer(require_starttls=True)
    done = smtp_test("--server", f"127.0.0.1:{port}", "--from", ALICE, "--to", BOB, password=None)
    assert done.returncode == 1
    assert "<-  530 " in done.stdout
    assert "requires STARTTLS first" in last_error(done.stderr) and "add --starttls" in last_error(done.stderr)


def test_auth_needs_a_password_from_env_or_stdin(server: LiveServer) -> None:
    done = po("smtp-test", "--server", "127.0.0.1:1", "--auth", ALICE, "--from", ALICE, "--to", BOB,
              check=False, env={"POSTOFFICE_PASSWORD": ""})
    assert done.returncode == 1 and "--password-stdin" in done.stderr and "Traceback" not in done.stderr
