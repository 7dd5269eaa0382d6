"""Relaying through a smarthost (queue/smarthost.py, queue/transports.py): an aiosmtpd relay on
loopback that requires AUTH (tests/queue/relay_peer.py), reached by a real `serve` whose
submission port takes the mail, or by `remote_transport` / `SmarthostTransport` directly.

The relay's certificate is self-signed; the `serve` processes trust it the way a machine trusts
its system CAs (SSL_CERT_FILE, which OpenSSL's default paths honour), in-process tests pass it
as the context: either way the name is checked."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import shlex
import smtplib
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from relay_peer import RELAY_PASSWORD, RELAY_USER, Relay, free_port, relay_certificate, relay_server

from cli_run import po
from dns_server import DnsServers
from live_server import LiveServer, quiet_dns
from postoffice.config import ListenAddress
from postoffice.mailauth.resolver import DnsResolver
from postoffice.net.tls import create_self_signed_certificate
from postoffice.queue.outcomes import RecipientOutcome
from postoffice.queue.smarthost import CommandTokens, FileTokens, RelayLogin, SmarthostTransport
from postoffice.queue.smtp_session import Timeouts, TokenUnavailable
from postoffice.queue.transports import remote_transport
from postoffice.store.interface import OutboundMessage, QueuedMessage, QueuedRecipient
from serve_process import PASSWORD, Serve, init_data

ALICE = "alice@example.org"
SHORT = Timeouts(connect=5, banner=5, mail=5, rcpt=5, data_init=5, data_block=5, final_dot=5, command=5,
                 tls_handshake=5, quit=2)
TEST_SECONDS = 60
BODY = b"From: <alice@example.org>\r\nTo: <bob@outside.test>\r\nSubject: relayed\r\n\r\nHello.\r\n"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return relay_certificate(tmp_path)


def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def queued(*recipients: str, sender: str = ALICE) -> QueuedMessage:
    return QueuedMessage(1, "", 0, OutboundMessage(sender, tuple(QueuedRecipient(r) for r in recipients)),
                         0.0, 0.0, 0, None)


def kinds(outcomes: tuple[RecipientOutcome, ...]) -> list[tuple[str, str]]:
    return [(o.recipient, o.kind) for o in outcomes]


def eventually(check: Callable[[], bool], timeout: float = TEST_SECONDS, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.2)


def transport(port: int, certificate: tuple[Path, Path], *, host: str = "127.0.0.1",
              login: RelayLogin | None = None, **options: Any) -> SmarthostTransport:
    return SmarthostTransport(ListenAddress(host, port), DnsResolver((quiet_dns(),), timeout=3.0),
                              helo_name="mail.example.org", context=trusting(certificate), timeouts=SHORT,
                              login=login if login is not None else RelayLogin(RELAY_USER, password_file=None),
                              **options)


# --- through a real `serve`: submission in, relay out ------------------------------------------------


def serve_with_smarthost(tmp_path: Path, relay_port: int, certificate: tuple[Path, Path], *,
                         outbound: str = "", env: dict[str, str] | None = None,
                         extra: str = "") -> tuple[Path, int, Serve]:
    """An initialised data directory whose [outbound] smarthost is the relay, with a submission
    listener on loopback; `serve` started on it, trusting the relay's certificate."""
    data = init_data(tmp_path / "data", (ALICE,), outbound=(
        f'smarthost = "127.0.0.1:{relay_port}"\nsmarthost_user = "{RELAY_USER}"\n'
        'retry_schedule = [1]\n' + outbound))
    submission = free_port()
    config = (data / "postoffice.toml").read_text()
    config = config.replace("submission = []", f'submission = ["127.0.0.1:{submission}"]') + extra
    (data / "postoffice.toml").write_text(config)
    server = Serve(data, env={"SSL_CERT_FILE": str(certificate[0]), **(env or {})}).started()
    return data, submission, server


def submit(port: int, recipients: list[str], subject: str = "relayed") -> None:
    message = f"From: <{ALICE}>\r\nTo: <{recipients[0]}>\r\nSubject: {subject}\r\n\r\nHello.\r\n"
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.login(ALICE, PASSWORD)  # plaintext login is allowed on loopback
        client.sendmail(ALICE, recipients, message)


def queue_entries(data: Path) -> list[dict[str, Any]]:
    return json.loads(po("queue", "list", "--json", data=data).stdout)  # type: ignore[no-any-return]


def password_file(tmp_path: Path, password: str = RELAY_PASSWORD) -> Path:
    path = tmp_path / "relay-password"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


def test_submitted_mail_reaches_the_smarthost_with_auth_plain_over_starttls(
        tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    relay = Relay()
    with relay_server(relay, certificate, tls="starttls") as port:
        data, submission, server = serve_with_smarthost(
            tmp_path, port, certificate, outbound=f'smarthost_password_file = "{password_file(tmp_path)}"')
        try:
            submit(submission, ["bob@outside.test", "carol@far-away.test"])
            eventually(lambda: len(relay.envelopes) == 2, what="both domains' copies at the relay")
            eventually(lambda: queue_entries(data) == [], what="an empty queue")
        finally:
            log = server.stop()
    assert sorted(tuple(e.rcpt_tos) for e in relay.envelopes) == [("bob@outside.test",), ("carol@far-away.test",)]
    assert {e.mail_from for e in relay.envelopes} == {ALICE}
    assert all(b"DKIM-Signature:" in (e.original_content or b"") for e in relay.envelopes)  # signed once, at submission
    assert relay.logins and all(
        (login.mechanism, login.user, login.secret, login.tls, login.ok) == ("PLAIN", RELAY_USER, RELAY_PASSWORD, True, True)
        for login in relay.logins), relay.logins
    assert len(relay.connections) == 1  # the second message reused the connection
    assert RELAY_PASSWORD not in log and "Traceback" not in log


def test_the_password_can_come_from_the_environment_over_implicit_tls(
        tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    relay = Relay()
    with relay_server(relay, certificate, tls="tls") as port:
        _data, submission, server = serve_with_smarthost(
            tmp_path, port, certificate, outbound='smarthost_tls = "tls"',
            env={"POSTOFFICE_SMARTHOST_PASSWORD": RELAY_PASSWORD})
        try:
            submit(submission, ["bob@outside.test"])
            eventually(lambda: len(relay.envelopes) == 1, what="the message at the relay")
        finally:
            assert "Traceback" not in server.stop()
    assert relay.envelopes[0].rcpt_tos == ["bob@outside.test"] and relay.envelopes[0].mail_from == ALICE
    assert [(x.mechanism, x.secret, x.tls, x.ok) for x in relay.logins] == [("PLAIN", RELAY_PASSWORD, True, True)]


def test_a_wrong_password_defers_with_a_clear_reason_and_is_never_shown(
        tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    wrong = "not-the-Secret-42"
    relay = Relay()
    with relay_server(relay, certificate, tls="starttls") as port:
        data, submission, server = serve_with_smarthost(
            tmp_path, port, certificate,
            outbound=f'smarthost_password_file = "{password_file(tmp_path, wrong)}"\nretry_schedule = [3600]')
        try:
            submit(submission, ["bob@outside.test"])
            eventually(lambda: [e["attempts"] for e in queue_entries(data)] == [1], what="one attempt")
            (entry,) = queue_entries(data)
            shown = po("queue", "show", str(entry["id"]), data=data).stdout
            shown_json = po("queue", "show", str(entry["id"]), "--json", data=data).stdout
        finally:
            log = server.stop()
    (attempt,) = json.loads(shown_json)["attempts"]
    assert attempt["outcome"] == "deferred", attempt
    assert f"refused the login of {RELAY_USER}" in attempt["reply"] and "535" in attempt["reply"], attempt
    assert "<bob@outside.test>  deferred" in shown and f"refused the login of {RELAY_USER}" in shown, shown
    assert [(x.secret, x.tls, x.ok) for x in relay.logins] == [(wrong, True, False)]
    assert relay.envelopes == []
    for text in (shown, shown_json, log):
        assert wrong not in text
    assert "Traceback" not in log


def test_routes_send_one_domain_to_its_own_relay_and_the_rest_to_the_smarthost(
        tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    main, special = Relay(), Relay()
    with relay_server(main, certificate) as main_port, relay_server(special, certificate) as special_port:
        data, submission, server = serve_with_smarthost(
            tmp_path, main_port, certificate,
            env={"POSTOFFICE_SMARTHOST_PASSWORD": RELAY_PASSWORD},
            extra=f'\n[outbound.routes]\n"partner.test" = "127.0.0.1:{special_port}"\n')
        try:
            submit(submission, ["bob@outside.test", "dave@partner.test", "erin@partner.test"])
            eventually(lambda: len(main.envelopes) == 1 and len(special.envelopes) == 1,
                       what="one copy at each relay")
            eventually(lambda: queue_entries(data) == [], what="an empty queue")
        finally:
            assert "Traceback" not in server.stop()
    assert [e.rcpt_tos for e in main.envelopes] == [["bob@outside.test"]]
    assert [e.rcpt_tos for e in special.envelopes] == [["dave@partner.test", "erin@partner.test"]]
    assert all(x.tls and x.ok for x in main.logins + special.logins)  # the same TLS and login


# --- remote_transport in process: sender routes, XOAUTH2 ---------------------------------------------


def run_on(server: LiveServer, outbound: dict[str, Any], context: ssl.SSLContext,
           deliveries: list[tuple[QueuedMessage, tuple[str, ...]]]) -> list[tuple[RecipientOutcome, ...]]:
    """`remote_transport` built from ``server``'s config with ``outbound`` changed, delivering
    each (message, recipients) in turn on the server's loop."""
    assert server.services is not None
    services = server.services
    config = services.config
    changed = dataclasses.replace(config, outbound=dataclasses.replace(config.outbound, **outbound))

    async def run() -> list[tuple[RecipientOutcome, ...]]:
        remote = remote_transport(dataclasses.replace(services, config=changed), relay_context=context)
        try:
            return [await asyncio.wait_for(remote.deliver(message, BODY, recipients), TEST_SECONDS)
                    for message, recipients in deliveries]
        finally:
            await remote.close()
    return server.call(run(), timeout=TEST_SECONDS * 2)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "data", []).start()
    yield server
    server.stop()


def test_sender_routes_come_before_routes_and_the_smarthost(
        live: LiveServer, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTOFFICE_SMARTHOST_PASSWORD", RELAY_PASSWORD)
    main, shop, partner = Relay(), Relay(), Relay()
    with relay_server(main, certificate) as main_port, relay_server(shop, certificate) as shop_port, \
            relay_server(partner, certificate) as partner_port:
        outcomes = run_on(live, {
            "smarthost": ListenAddress("127.0.0.1", main_port), "smarthost_user": RELAY_USER,
            "routes": (("partner.test", ListenAddress("127.0.0.1", partner_port)),),
            "sender_routes": (("shop.example.org", ListenAddress("127.0.0.1", shop_port)),),
        }, trusting(certificate), [
            (queued("a@partner.test", "b@outside.test", sender="orders@shop.example.org"),
             ("a@partner.test", "b@outside.test")),
            (queued("c@partner.test", "d@outside.test"), ("c@partner.test", "d@outside.test")),
            (queued("e@outside.test", sender=""), ("e@outside.test",)),  # a bounce: no sender route
        ])
    assert [kinds(o) for o in outcomes] == [
        [("a@partner.test", "delivered"), ("b@outside.test", "delivered")],
        [("c@partner.test", "delivered"), ("d@outside.test", "delivered")],
        [("e@outside.test", "delivered")]]
    assert [(e.mail_from, e.rcpt_tos) for e in shop.envelopes] == [
        ("orders@shop.example.org", ["a@partner.test", "b@outside.test"])]
    assert [(e.mail_from, e.rcpt_tos) for e in partner.envelopes] == [(ALICE, ["c@partner.test"])]
    assert [(e.mail_from, e.rcpt_tos) for e in main.envelopes] == [(ALICE, ["d@outside.test"]), ("<>", ["e@outside.test"])]
    assert outcomes[0][0].host == "127.0.0.1" and outcomes[0][0].tls is not None
    assert outcomes[0][0].tls.policy == "smarthost" and outcomes[0][0].tls.verified


def token_script(tmp_path: Path) -> str:
    """A command printing token-1, then token-2, ... (one more each run)."""
    script = tmp_path / "print-token"
    counter = tmp_path / "token-runs"
    script.write_text('#!/bin/sh\nn=$(cat "$1" 2>/dev/null || echo 0)\nn=$((n + 1))\necho "$n" > "$1"\n'
                      'echo "token-$n"\necho "a second line is not part of the token"\n')
    script.chmod(0o755)
    return f"{shlex.quote(str(script))} {shlex.quote(str(counter))}"


@pytest.mark.parametrize("accepted", ["token-1", "token-2"])
def test_xoauth2_with_a_token_command_and_a_refused_token_replaced_once(
        live: LiveServer, certificate: tuple[Path, Path], tmp_path: Path, accepted: str) -> None:
    relay = Relay(tokens=frozenset({accepted}))
    with relay_server(relay, certificate, tls="tls") as port:
        outcomes = run_on(live, {
            "smarthost": ListenAddress("127.0.0.1", port), "smarthost_tls": "tls", "smarthost_user": RELAY_USER,
            "smarthost_auth": "xoauth2", "smarthost_token_command": token_script(tmp_path),
            "messages_per_connection": 1,  # a new connection (and login) per message
        }, trusting(certificate), [(queued("bob@outside.test"), ("bob@outside.test",)),
                                   (queued("carol@outside.test"), ("carol@outside.test",))])
    assert [kinds(o) for o in outcomes] == [[("bob@outside.test", "delivered")],
                                            [("carol@outside.test", "delivered")]]
    seen = [(x.mechanism, x.user, x.secret, x.tls, x.ok) for x in relay.logins]
    if accepted == "token-1":  # the token is kept: the second connection does not run the command
        assert seen == [("XOAUTH2", RELAY_USER, "token-1", True, True)] * 2
        assert (tmp_path / "token-runs").read_text().strip() == "1"
    else:  # token-1 refused (334, empty answer, 535): token-2 at once, on the same connection
        assert seen == [("XOAUTH2", RELAY_USER, "token-1", True, False),
                        ("XOAUTH2", RELAY_USER, "token-2", True, True),
                        ("XOAUTH2", RELAY_USER, "token-2", True, True)]
        assert (tmp_path / "token-runs").read_text().strip() == "2"
    assert len(relay.connections) == 2


# --- SmarthostTransport: TLS before credentials, replies, reuse ----------------------------------------


async def test_credentials_are_never_sent_without_verified_tls(certificate: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    login = RelayLogin(RELAY_USER, password_file=password_file(tmp_path))
    # A relay that offers AUTH in plaintext and no STARTTLS; one whose certificate does not name
    # the address we asked for (127.0.0.2); one that only speaks TLS when we expect STARTTLS.
    for tls, host, reason in (("none", "127.0.0.1", "does not offer STARTTLS and the smarthost policy requires TLS"),
                              ("starttls", "127.0.0.2", "certificate not valid for 127.0.0.2"),
                              ("tls", "127.0.0.1", "")):
        relay = Relay()
        with relay_server(relay, certificate, tls=tls, host=host) as port:  # type: ignore[arg-type]
            smarthost = transport(port, certificate, host=host, login=login)
            outcomes = await asyncio.wait_for(smarthost.deliver(queued("bob@outside.test"), BODY,
                                                                ("bob@outside.test",)), TEST_SECONDS)
            await smarthost.close()
        assert kinds(outcomes) == [("bob@outside.test", "deferred")], (tls, outcomes)
        assert reason in outcomes[0].reason, (tls, outcomes[0].reason)
        assert relay.auth_commands == 0 and relay.logins == [] and relay.envelopes == [], tls
        assert outcomes[0].tls is None or not outcomes[0].tls.used


async def test_the_relays_replies_decide_each_recipient_and_connections_are_reused(
        certificate: tuple[Path, Path], tmp_path: Path) -> None:
    relay = Relay()
    login = RelayLogin(RELAY_USER, password_file=password_file(tmp_path))
    with relay_server(relay, certificate) as port:
        smarthost = transport(port, certificate, login=login, max_messages_per_connection=3)
        first = await asyncio.wait_for(smarthost.deliver(
            queued("bob@outside.test", "nobody@outside.test", "later@outside.test"), BODY,
            ("bob@outside.test", "nobody@outside.test", "later@outside.test")), TEST_SECONDS)
        for n in range(3):
            more = await asyncio.wait_for(smarthost.deliver(queued(f"u{n}@else.test"), BODY,
                                                            (f"u{n}@else.test",)), TEST_SECONDS)
            assert kinds(more) == [(f"u{n}@else.test", "delivered")]
        await smarthost.close()
    assert kinds(first) == [("bob@outside.test", "delivered"), ("nobody@outside.test", "failed"),
                            ("later@outside.test", "deferred")]
    assert first[1].reply is not None and (first[1].reply.code, first[1].reply.enhanced) == (550, "5.1.1")
    assert first[2].reply is not None and first[2].reply.code == 451
    assert smarthost.opened == 2 and len(relay.connections) == 2  # 3 messages per connection
    assert len(relay.logins) == 2 and all(x.ok and x.tls for x in relay.logins)


async def test_a_relay_named_in_dns_is_verified_against_that_name(
        dns_server: DnsServers, tmp_path: Path) -> None:
    dns_server.add_zone("relay-name.test", "smtp A 127.0.0.1\n")
    certificate = (tmp_path / "named-cert.pem", tmp_path / "named-key.pem")
    create_self_signed_certificate(*certificate, "smtp.relay-name.test")
    relay = Relay()
    with relay_server(relay, certificate) as port:
        smarthost = SmarthostTransport(
            ListenAddress("smtp.relay-name.test", port), DnsResolver((dns_server.address,), timeout=3.0),
            helo_name="mail.example.org", context=trusting(certificate), timeouts=SHORT,
            login=RelayLogin(RELAY_USER, password_file=password_file(tmp_path)))
        outcomes = await asyncio.wait_for(smarthost.deliver(queued("bob@outside.test"), BODY,
                                                            ("bob@outside.test",)), TEST_SECONDS)
        await smarthost.close()
        missing = SmarthostTransport(
            ListenAddress("nowhere.relay-name.test", port), DnsResolver((dns_server.address,), timeout=3.0),
            helo_name="mail.example.org", context=trusting(certificate), timeouts=SHORT)
        lost = await asyncio.wait_for(missing.deliver(queued("bob@outside.test"), BODY,
                                                      ("bob@outside.test",)), TEST_SECONDS)
    assert kinds(outcomes) == [("bob@outside.test", "delivered")]
    assert outcomes[0].host == "smtp.relay-name.test" and outcomes[0].address == "127.0.0.1"
    assert outcomes[0].tls is not None and outcomes[0].tls.verified
    assert kinds(lost) == [("bob@outside.test", "deferred")]  # our configuration: never a bounce
    assert "nowhere.relay-name.test has no address" in lost[0].reason and lost[0].status == "4.4.4"


async def test_a_missing_password_defers_and_names_where_it_should_come_from(
        certificate: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTOFFICE_SMARTHOST_PASSWORD", raising=False)
    relay = Relay()
    with relay_server(relay, certificate) as port:
        for login, said in ((RelayLogin(RELAY_USER), "set [outbound] smarthost_password_file or "
                                                      "POSTOFFICE_SMARTHOST_PASSWORD"),
                            (RelayLogin(RELAY_USER, password_file=tmp_path / "absent"),
                             f"the smarthost password file {tmp_path / 'absent'} cannot be read")):
            smarthost = transport(port, certificate, login=login)
            outcomes = await asyncio.wait_for(smarthost.deliver(queued("bob@outside.test"), BODY,
                                                                ("bob@outside.test",)), TEST_SECONDS)
            assert kinds(outcomes) == [("bob@outside.test", "deferred")]
            assert said in outcomes[0].reason and outcomes[0].status == "4.3.5", outcomes[0]
    assert relay.connections == set() and relay.auth_commands == 0


# --- token sources -------------------------------------------------------------------------------------


async def test_a_command_token_is_kept_45_minutes_then_run_again(tmp_path: Path) -> None:
    now = [1000.0]
    tokens = CommandTokens(token_script(tmp_path), clock=lambda: now[0])
    assert await tokens.get() == "token-1"
    now[0] += 44 * 60
    assert await tokens.get() == "token-1" and tokens.runs == 1
    now[0] += 2 * 60
    assert await tokens.get() == "token-2" and tokens.runs == 2
    assert await tokens.get(fresh=True) == "token-3"  # the relay refused token-2
    # many sessions asking at once run the command once
    now[0] += 3600
    assert set(await asyncio.gather(*(tokens.get() for _ in range(5)))) == {"token-4"}
    assert tokens.runs == 4


async def test_token_troubles_are_plain_reasons(tmp_path: Path) -> None:
    failing = tmp_path / "failing"
    failing.write_text("#!/bin/sh\necho 'invalid_grant: token revoked' >&2\nexit 3\n")
    failing.chmod(0o755)
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    cases = [
        (CommandTokens(str(failing)), f"the token command {failing} failed (exit status 3): invalid_grant"),
        (CommandTokens(str(tmp_path / "absent")), "cannot be run: No such file or directory"),
        (CommandTokens(str(slow), timeout=0.5), "printed no token within 0.5 s"),
        (CommandTokens("true"), "the token command true gave no token"),
        (CommandTokens("'unclosed"), "the token command cannot be read"),
        (FileTokens(tmp_path / "absent"), "cannot be read: No such file or directory"),
    ]
    started = time.monotonic()
    for source, reason in cases:
        with pytest.raises(TokenUnavailable) as caught:
            await asyncio.wait_for(source.get(), TEST_SECONDS)
        assert reason in str(caught.value), (reason, str(caught.value))
    assert time.monotonic() - started < 20  # the slow command was killed, not waited for
    token_file = tmp_path / "token"
    token_file.write_text("ya29.first\n")
    source = FileTokens(token_file)
    assert await source.get() == "ya29.first"
    token_file.write_text("ya29.renewed\n")  # another program renewed it: used at once
    assert await source.get() == "ya29.renewed"
