"""Postfix (Debian) as our smarthost: submission-style STARTTLS with AUTH required before relaying,
the logins checked by Dovecot's SASL service over a loopback socket, relayed mail discarded
after queueing. The smarthost transport (queue/smarthost.py) must log in over TLS and have its
message relayed; Postfix's log is the witness."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from outbound_kit import POSTFIX_SERVICES
from relay_peer import RELAY_PASSWORD, RELAY_USER
from test_smtp_session import wait_for_log

from live_server import quiet_dns
from peers import require_peer, unavailable
from postoffice.config import ListenAddress
from postoffice.mailauth.resolver import DnsResolver
from postoffice.net.tls import create_self_signed_certificate
from postoffice.queue.smarthost import RelayLogin, SmarthostTransport
from postoffice.queue.smtp_session import Timeouts
from postoffice.store.interface import OutboundMessage, QueuedMessage, QueuedRecipient

SHORT = Timeouts(connect=10, banner=10, mail=10, rcpt=10, data_init=10, data_block=10, final_dot=20,
                 command=10, tls_handshake=10, quit=2)
BODY = b"From: <alice@example.org>\r\nTo: <bob@outside.test>\r\nSubject: via postfix\r\n\r\nHello.\r\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert time.monotonic() < deadline, f"{what} did not listen within {timeout:g} s"
        time.sleep(0.1)


@pytest.fixture
def postfix_relay() -> Iterator[tuple[int, Path, Path]]:
    """Postfix relaying only for logged-in clients (Dovecot SASL), TLS required; yields its port,
    its log file and its certificate."""
    require_peer("postfix")
    require_peer("dovecot", package="dovecot-core")
    if os.geteuid() != 0:
        unavailable("Postfix needs root to start an instance of its own")
    base = Path(tempfile.mkdtemp(prefix="postoffice-relay-"))  # not under pytest's 0700 tmp
    base.chmod(0o755)
    etc, spool, data, logs, dovecot = (base / n for n in ("etc", "spool", "data", "log", "dovecot"))
    for folder in (etc, spool, data, logs, dovecot):
        folder.mkdir()
    shutil.chown(data, "postfix")
    create_self_signed_certificate(etc / "cert.pem", etc / "key.pem", "relay.postfix.test")
    port, auth_port = free_port(), free_port()
    (dovecot / "passwd").write_text(f"{RELAY_USER}:{{PLAIN}}{RELAY_PASSWORD}\n")
    (dovecot / "dovecot.conf").write_text(f"""\
protocols =
base_dir = {dovecot / "run"}
state_dir = {dovecot / "state"}
log_path = {logs / "dovecot.log"}
ssl = no
auth_mechanisms = plain login
disable_plaintext_auth = no
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {dovecot / "passwd"}
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}}
service auth {{
  inet_listener {{
    address = 127.0.0.1
    port = {auth_port}
  }}
}}
""")
    (etc / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.postfix.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
relay_domains =
mynetworks = 127.0.0.254/32
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{auth_port}
smtpd_tls_auth_only = yes
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
default_transport = discard:relayed
relay_transport = discard:relayed
local_transport = error:local delivery disabled
alias_maps =
alias_database =
smtpd_tls_cert_file = {etc / "cert.pem"}
smtpd_tls_key_file = {etc / "key.pem"}
smtpd_tls_security_level = encrypt
smtpd_tls_loglevel = 1
maillog_file_prefixes = {logs}
maillog_file = {logs / "postfix.log"}
""")
    (etc / "master.cf").write_text(f"127.0.0.1:{port} inet n - n - - smtpd\n{POSTFIX_SERVICES}")
    auth = subprocess.Popen(["dovecot", "-c", str(dovecot / "dovecot.conf"), "-F"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    subprocess.run(["postfix", "-c", str(etc), "set-permissions"], capture_output=True)
    started = subprocess.run(["postfix", "-c", str(etc), "start"], capture_output=True, text=True,
                             start_new_session=True)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        listening(auth_port, 30, "Dovecot's auth service")
        listening(port, 30, "Postfix")
        yield port, logs / "postfix.log", etc / "cert.pem"
    finally:
        subprocess.run(["postfix", "-c", str(etc), "stop"], capture_output=True)
        auth.terminate()
        try:
            auth.wait(10)
        except subprocess.TimeoutExpired:
            auth.kill()
            auth.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def queued(recipient: str) -> QueuedMessage:
    return QueuedMessage(1, "", 0, OutboundMessage("alice@example.org", (QueuedRecipient(recipient),)),
                         0.0, 0.0, 0, None)


async def test_postfix_with_sasl_relays_for_us_after_a_login_over_tls(
        postfix_relay: tuple[int, Path, Path], tmp_path: Path) -> None:
    port, log_file, cert = postfix_relay
    outcomes = {}
    for password in ("wrong password", RELAY_PASSWORD):
        secret = tmp_path / "password"
        secret.write_text(password + "\n")
        smarthost = SmarthostTransport(
            ListenAddress("127.0.0.1", port), DnsResolver((quiet_dns(),), timeout=3.0),
            helo_name="mail.example.org", context=ssl.create_default_context(cafile=str(cert)),
            timeouts=SHORT, login=RelayLogin(RELAY_USER, password_file=secret))
        recipient = "bob@outside.test" if password == RELAY_PASSWORD else "carol@outside.test"
        (outcomes[password],) = await asyncio.wait_for(
            smarthost.deliver(queued(recipient), BODY, (recipient,)), 60)
        await smarthost.close()
    refused, relayed = outcomes["wrong password"], outcomes[RELAY_PASSWORD]
    assert refused.kind == "deferred" and refused.reply is not None and refused.reply.code == 535, refused
    assert f"refused the login of {RELAY_USER}" in refused.reason
    assert relayed.kind == "delivered", relayed
    assert relayed.tls is not None and relayed.tls.used and relayed.tls.verified
    log = await asyncio.to_thread(wait_for_log, log_file, ("to=<bob@outside.test>", "status=sent"))
    assert f"sasl_method=PLAIN, sasl_username={RELAY_USER}" in log, log
    assert "TLS connection established from" in log, log
    assert "to=<bob@outside.test>" in log and "status=sent (relayed)" in log, log
    assert "to=<carol@outside.test>" not in log  # the refused login relayed nothing
    assert RELAY_PASSWORD not in log
