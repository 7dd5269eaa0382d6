"""An aiosmtpd smarthost for the relay tests: AUTH required (PLAIN, LOGIN and XOAUTH2), over
STARTTLS (587), TLS from the first byte (465), or no TLS at all (a relay we must not log in to).
It records every login attempt (mechanism, user, secret, whether TLS protected it) and every
message, so tests assert what really crossed the wire."""
from __future__ import annotations

import base64
import json
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from postoffice.net.tls import create_self_signed_certificate

RELAY_USER = "relay-user@provider.test"
RELAY_PASSWORD = "relay pass\u00e9 w0rd"  # a space and a non-ASCII letter: sent as they are


@dataclass
class Login:
    mechanism: str
    user: str
    secret: str  # the password or the token
    tls: bool
    ok: bool


@dataclass
class Relay:
    """The handler: accepts ``password`` for ``user``, or any of ``tokens`` over XOAUTH2."""

    user: str = RELAY_USER
    password: str = RELAY_PASSWORD
    tokens: frozenset[str] = frozenset()
    logins: list[Login] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)
    connections: set[tuple[str, int]] = field(default_factory=set)
    auth_commands: int = 0

    def authenticator(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: object) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        user, secret = auth_data.login.decode(), auth_data.password.decode()
        ok = (user, secret) == (self.user, self.password)
        self.logins.append(Login(mechanism, user, secret, _tls(server), ok))
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 itself

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        fields = base64.b64decode(args[1]).decode().split("\x01") if len(args) > 1 else []
        values = dict(f.split("=", 1) for f in fields if "=" in f)
        user, token = values.get("user", ""), values.get("auth", "").removeprefix("Bearer ")
        ok = user == self.user and token in self.tokens and fields[-2:] == ["", ""]
        self.logins.append(Login("XOAUTH2", user, token, _tls(server), ok))
        if ok:
            return AuthResult(success=True, auth_data=user)
        # As Google does: a 334 with a JSON error, the client's empty answer, then 535.
        error = json.dumps({"status": "401", "schemes": "Bearer", "scope": "https://mail.google.com/"})
        await server.challenge_auth(error)
        return AuthResult(success=False, handled=False)

    async def handle_AUTH(self, server: SMTP, session: Session, envelope: Envelope, args: list[str]) -> object:
        self.auth_commands += 1  # every AUTH command, before any mechanism sees it
        return MISSING

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user here"
        if address.startswith("later@"):
            return "451 4.7.1 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert session.peer is not None
        self.connections.add(session.peer)
        self.envelopes.append(envelope)
        return "250 2.0.0 Relayed"


def _tls(server: SMTP) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


def relay_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for relay.test, localhost and 127.0.0.1 (not 127.0.0.2)."""
    cert, key = directory / "relay-cert.pem", directory / "relay-key.pem"
    if not cert.exists():
        create_self_signed_certificate(cert, key, "relay.test")
    return cert, key


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:  # aiosmtpd's Controller checks its port itself, so no port 0
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextmanager
def relay_server(relay: Relay, certificate: tuple[Path, Path], *,
                 tls: Literal["starttls", "tls", "none"] = "starttls",
                 host: str = "127.0.0.1") -> Iterator[int]:
    """Run ``relay`` on ``host``; yields its port. It requires AUTH before MAIL; with
    ``tls="none"`` it offers AUTH in plaintext (what a careless relay does)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    options: dict[str, object] = {"auth_required": True, "authenticator": relay.authenticator}
    if tls == "starttls":
        options |= {"tls_context": context, "require_starttls": True, "auth_require_tls": True}
    elif tls == "tls":  # aiosmtpd only counts STARTTLS as TLS for AUTH: the socket is TLS anyway
        options |= {"ssl_context": context, "auth_require_tls": False}
    else:
        options |= {"auth_require_tls": False}
    controller = Controller(relay, hostname=host, port=free_port(host), **options)  # type: ignore[arg-type]
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()
