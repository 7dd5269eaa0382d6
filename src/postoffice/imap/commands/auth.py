"""CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE, ENABLE, ID (RFC 9051 §6.1-6.3).

Plaintext credentials only over TLS or from loopback (DESIGN §4); otherwise LOGINDISABLED is
advertised and LOGIN/AUTHENTICATE answer [PRIVACYREQUIRED]. Failed logins are answered after the
shared throttle's delay for the IP and the account.
"""

from __future__ import annotations

import base64
import binascii
import logging

from postoffice import logevents
from postoffice.auth.login import LoginRefused, check_login
from postoffice.auth.sasl import (
    AuthorizationRefused,
    SaslCancelled,
    SaslChallenge,
    SaslError,
    UnsupportedMechanism,
    decode_response,
    mechanisms_offered,
    start_sasl,
)
from postoffice.imap.proto import commands as c
from postoffice.imap.proto import events as ev
from postoffice.imap.proto import responses as resp
from postoffice.imap.proto.parser import ImapServerParser
from postoffice.imap.session import ALREADY_ANSWERED, Completion, ImapSession, State, bad, no, ok
from postoffice.net.deadlines import Expiry

log = logging.getLogger(__name__)

AUTOLOGOUT = 30 * 60.0  # as the driver's (RFC 9051 §5.4); the login deadline comes first

BASE_CAPABILITIES = (
    "IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ENABLE", "IDLE", "NAMESPACE", "UIDPLUS",
    "MOVE", "UNSELECT", "CHILDREN", "SPECIAL-USE", "ID", "ESEARCH", "BINARY", "CONDSTORE", "QRESYNC",
    "MULTIAPPEND", "LIST-EXTENDED", "LIST-STATUS", "CREATE-SPECIAL-USE", "UTF8=ACCEPT", "STATUS=SIZE",
    "OBJECTID", "PREVIEW", "SAVEDATE", "ACL", "RIGHTS=texk", "QUOTA", "QUOTA=RES-STORAGE",
    "SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "COMPRESS=DEFLATE",
    "NOTIFY", "CONTEXT=SEARCH", "CONTEXT=SORT",
)


def _plaintext_ok(session: ImapSession) -> bool:
    conn = session.conn
    return bool(mechanisms_offered(conn.tls, conn.is_loopback, session.services.config.auth.plaintext_on_loopback))


def capabilities(session: ImapSession) -> list[str]:
    caps = [*BASE_CAPABILITIES, f"APPENDLIMIT={session.services.config.limits.max_message_size}"]
    if session.state is State.NOT_AUTHENTICATED:
        if not session.conn.tls:
            caps.append("STARTTLS")
        if _plaintext_ok(session):
            caps += [f"AUTH={m}" for m in ("PLAIN", "LOGIN")]
        else:
            caps.append("LOGINDISABLED")
    return caps


async def capability(session: ImapSession, command: ev.ImapCommand) -> Completion:
    session.send(resp.capability_response(capabilities(session)))
    return ok("CAPABILITY completed")


async def noop(session: ImapSession, command: ev.ImapCommand) -> Completion:
    await session.announce_updates(allow_expunge=True)
    return ok("NOOP completed")


async def logout(session: ImapSession, command: ev.ImapCommand) -> Completion:
    session.send(resp.bye("Logging out"))
    session.close_mailbox()
    session.state = State.LOGOUT
    return ok("LOGOUT completed")


async def id_command(session: ImapSession, command: ev.ImapCommand) -> Completion:
    session.untagged('ID ("name" "postoffice")')  # RFC 2971; no version, to give attackers less
    return ok("ID completed")


async def enable(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Enable)
    supported = {"IMAP4REV2", "CONDSTORE", "QRESYNC", "UTF8=ACCEPT"}
    newly = [cap for cap in args.capabilities if cap.upper() in supported and cap.upper() not in session.enabled]
    session.enabled.update(cap.upper() for cap in newly)
    if "QRESYNC" in session.enabled:
        session.enabled.add("CONDSTORE")  # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE
    if session.utf8:
        session.parser.utf8_mailboxes = True
    session.untagged("ENABLED" + "".join(" " + cap for cap in newly))
    return ok("ENABLE completed")


async def starttls(session: ImapSession, command: ev.ImapCommand) -> Completion:
    if session.conn.tls:
        return bad("TLS is already active")
    # The tagged OK must go out in plaintext before the handshake; the driver flushes it, and
    # anything the client pipelined after STARTTLS is thrown away (CVE-2011-0411).
    parser = session.parser
    session.send(resp.tagged(command.tag, "OK", "Begin TLS negotiation now"))
    data = b"".join(session.out)
    session.out.clear()
    session.conn.writer.write(data)
    await session.conn.writer.drain()
    parser.take_buffered()
    try:
        await session.conn.start_tls(session.services.tls.current())
    except Exception as exc:
        # A client that simply went away is routine; a failed negotiation may interest the admin.
        log.log(logging.DEBUG if isinstance(exc, ConnectionError) else logging.INFO,
                "%s: TLS handshake failed: %s", session.conn.id, exc)
        session.state = State.LOGOUT
    return ALREADY_ANSWERED


async def _finish_login(session: ImapSession, user: str, password: str, mechanism: str) -> Completion:
    services, conn = session.services, session.conn
    account = await check_login(services.directory, services.login_throttle, conn.peer_ip, user, password,
                                protocol=conn.protocol, mechanism=mechanism, conn=conn.id)
    if account is LoginRefused.TRY_LATER:
        return no("Cannot check passwords right now; try again in a moment", "UNAVAILABLE")
    if account is LoginRefused.FAILED:
        return no("Invalid credentials", "AUTHENTICATIONFAILED")
    if (too_many := session.conn.log_in("imap", account.address)) is not None:
        # As Dovecot does (mail_max_userip_connections): BYE, and the connection closes.
        logevents.login(conn.protocol, conn.peer_ip, user, mechanism, "refused", conn.id, too_many)
        session.send(resp.bye(too_many, "LIMIT"))
        session.state = State.LOGOUT
        return no(too_many, "LIMIT")
    session.conn.deadlines.end(Expiry.LOGIN)
    parser = session.parser  # the pre-login literal limit is lifted (see server.py)
    parser.max_literal = parser.max_nonsync_literal = services.config.limits.max_message_size
    parser.max_command_literals = 4 * services.config.limits.max_message_size
    session.account = account
    conn.user = account.address
    session.state = State.AUTHENTICATED
    return ok("Logged in", resp.capability_code(capabilities(session)))


async def login(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.Login)
    if not _plaintext_ok(session):
        return no("Use STARTTLS first: passwords are not accepted over an unencrypted connection", "PRIVACYREQUIRED")
    return await _finish_login(session, args.user, args.password, "LOGIN")


async def authenticate(session: ImapSession, command: ev.ImapCommand) -> Completion:
    """AUTHENTICATE with SASL-IR (RFC 4959): challenges are "+ base64" lines."""
    args = command.args
    assert isinstance(args, c.Authenticate)
    offered = mechanisms_offered(session.conn.tls, session.conn.is_loopback, session.services.config.auth.plaintext_on_loopback)
    if not offered:
        return no("Use STARTTLS first", "PRIVACYREQUIRED")
    try:
        initial = None
        if args.initial_response is not None:
            initial = b"" if args.initial_response == b"=" else base64.b64decode(args.initial_response, validate=True)
        exchange = start_sasl(args.mechanism, initial, offered=offered)
        outcome = exchange.begin()
        parser = session.parser
        while isinstance(outcome, SaslChallenge):
            session.send(resp.continuation(base64.b64encode(outcome.data)))
            data = b"".join(session.out)
            session.out.clear()
            session.conn.writer.write(data)
            await session.conn.writer.drain()
            parser.expect_continuation()
            line = await _next_continuation(session, parser)
            if line is None:
                session.state = State.LOGOUT
                return no("Connection closed")
            outcome = exchange.step(decode_response(line))
    except UnsupportedMechanism:
        return no(f"Unsupported mechanism {args.mechanism}", "CANNOT")
    except SaslCancelled:
        return bad("Authentication cancelled")
    except AuthorizationRefused:
        conn = session.conn
        logevents.login(conn.protocol, conn.peer_ip, "", args.mechanism.upper(),
                        "failed", conn.id, "authorization identity refused")
        return no("Invalid credentials", "AUTHORIZATIONFAILED")
    except (SaslError, binascii.Error, ValueError):
        return bad("Cannot decode the response")
    return await _finish_login(session, outcome.authcid, outcome.password, args.mechanism.upper())


async def _next_continuation(session: ImapSession, parser: ImapServerParser) -> bytes | None:
    while True:
        event = parser.next_event()
        if isinstance(event, ev.ContinuationLine):
            return event.data
        if event is not ev.NEED_DATA:
            return b"*"
        # Within the login and line deadlines: InputTimeout ends the connection (the driver).
        data = await session.conn.read_input(65536, idle=AUTOLOGOUT, open_line=parser.open_line)
        if not data:
            return None
        parser.receive_data(data)
