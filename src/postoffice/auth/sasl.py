"""Server-side SASL (RFC 4422), sans-IO, shared by SMTP, IMAP and POP3.

One exchange serves SMTP AUTH (RFC 4954), IMAP AUTHENTICATE (RFC 9051 §6.2.2, with SASL-IR,
RFC 4959) and POP3 AUTH (RFC 5034). The mechanisms are PLAIN (RFC 4616) and LOGIN (the de-facto
"Username:"/"Password:" exchange of draft-murchison-sasl-login). Both send the password in the
clear, so DESIGN §4 allows them only over TLS or on loopback: see :func:`mechanisms_offered`.

A protocol driver does the I/O and maps outcomes to its own replies::

    offered = mechanisms_offered(conn.tls, conn.is_loopback, config.auth.plaintext_on_loopback)
    try:
        exchange = start_sasl(name, decode_initial_response(ir) if ir else None, offered=offered)
        outcome = exchange.begin()
        while isinstance(outcome, SaslChallenge):
            send(b"334 " + encode_challenge(outcome.data))      # IMAP: b"+ ", POP3: b"+ "
            outcome = exchange.step(decode_response(read_line()))
    except SaslCancelled: ...          # SMTP 501 5.0.0, IMAP BAD, POP3 -ERR
    except UnsupportedMechanism: ...   # SMTP 504 5.5.4, IMAP NO/BAD, POP3 -ERR
    except EncryptionRequired: ...     # SMTP 538 5.7.11, IMAP NO [PRIVACYREQUIRED], POP3 -ERR
    except AuthorizationRefused: ...   # a failed login: SMTP 535 5.7.8, IMAP NO [AUTHORIZATIONFAILED]
    except SaslError: ...              # malformed: SMTP 501 5.5.2, IMAP BAD, POP3 -ERR
    # outcome is SaslCredentials: check outcome.authcid / outcome.password with the directory.

Base64 lives here too, because all three protocols use the same rules for it: ``*`` cancels
(RFC 4954 §4, RFC 9051 §6.2.2, RFC 5034 §4) and ``=`` is an empty initial response (RFC 4954 §4,
RFC 4959 §3). No secret is compared here, so nothing needs to be constant-time.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

__all__ = [
    "MAX_RESPONSE_LENGTH", "MECHANISMS", "AuthorizationRefused", "EncryptionRequired",
    "SaslCancelled", "SaslChallenge", "SaslCredentials", "SaslError", "SaslExchange",
    "UnsupportedMechanism", "decode_initial_response", "decode_response", "encode_challenge",
    "mechanisms_offered", "plaintext_auth_allowed", "start_sasl",
]

MECHANISMS: tuple[str, ...] = ("PLAIN", "LOGIN")

# RFC 4954 §4: servers must accept AUTH lines of 12288 octets; a response longer than that is
# no password anyone types, and refusing it bounds the memory one exchange can use.
MAX_RESPONSE_LENGTH = 12288


# --- outcomes and errors -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SaslChallenge:
    """Send ``data`` to the client (base64 it with :func:`encode_challenge`) and wait."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SaslCredentials:
    """The exchange is complete; the driver must now check the password.

    ``authzid`` is None unless the client named an authorization identity, which can only be
    the authcid itself (anything else raises :class:`AuthorizationRefused`).
    """

    authcid: str
    password: str = field(repr=False)  # never in logs or tracebacks
    authzid: str | None = None


_Method = Callable[[bytes | None], SaslChallenge | SaslCredentials]


class SaslError(Exception):
    """The client's input is malformed; ``reason`` says what, for logs and the error reply."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SaslCancelled(SaslError):
    """The client answered a challenge with ``*``."""


class UnsupportedMechanism(SaslError):
    """The client asked for a mechanism this server does not implement."""


class EncryptionRequired(SaslError):
    """The mechanism exists but is not offered on this connection (no TLS, not loopback)."""


class AuthorizationRefused(SaslError):
    """The client asked to act as another user (PLAIN authzid); count it as a failed login."""


# --- policy: where plaintext passwords are allowed -----------------------------------------------

def plaintext_auth_allowed(tls: bool, loopback: bool, plaintext_on_loopback: bool) -> bool:
    """Whether a password may be sent in the clear on this connection (DESIGN §4).

    The same rule covers IMAP LOGIN and POP3 USER/PASS, which are not SASL.
    """
    return tls or (loopback and plaintext_on_loopback)


def mechanisms_offered(tls: bool, loopback: bool, plaintext_on_loopback: bool) -> tuple[str, ...]:
    """The mechanisms to advertise (EHLO AUTH, CAPABILITY AUTH=, CAPA SASL); may be empty."""
    return MECHANISMS if plaintext_auth_allowed(tls, loopback, plaintext_on_loopback) else ()


# --- base64 --------------------------------------------------------------------------------------

def encode_challenge(data: bytes) -> bytes:
    """A challenge as the base64 text that follows ``334 `` or ``+ `` (empty stays empty)."""
    return base64.b64encode(data)


def decode_response(line: bytes) -> bytes | None:
    """A client's answer to a challenge: the decoded bytes, or None if it sent ``*`` (cancel).

    ``line`` is the client's line with or without its CRLF. An empty line is an empty response.
    Raises :class:`SaslError` for anything but strict base64.
    """
    text = _strip_eol(line)
    if text == b"*":
        return None
    return _decode(text)


def decode_initial_response(token: bytes) -> bytes:
    """The initial response argument of AUTH / AUTHENTICATE; ``=`` means empty (RFC 4954 §4).

    A ``*`` here is not a cancellation (there is nothing to cancel yet) but malformed base64.
    """
    text = _strip_eol(token)
    if text == b"*":
        raise SaslError("an initial response cannot be *")
    return _decode(text)


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith(b"\n") else line


def _decode(text: bytes) -> bytes:
    if text == b"=":  # RFC 4954 §4 / RFC 4959 §3: an empty response
        return b""
    if len(text) > MAX_RESPONSE_LENGTH:
        raise SaslError(f"the response is longer than {MAX_RESPONSE_LENGTH} characters")
    if len(text) % 4:
        # b64decode would accept a missing "=" only sometimes; RFC 4648 §3.2 wants the padding.
        raise SaslError("the response is not base64 (its length is not a multiple of 4)")
    try:
        # validate=True refuses spaces and other characters outside the alphabet (RFC 4648 §3.3)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SaslError("the response is not base64") from None


# --- exchanges -----------------------------------------------------------------------------------

class SaslExchange:
    """One authentication attempt: call :meth:`begin` once, then :meth:`step` per response.

    Each call returns a :class:`SaslChallenge` to send or the final :class:`SaslCredentials`,
    or raises a :class:`SaslError`; after credentials or an error the exchange is over, and
    calling it again is a bug in the driver (``RuntimeError``).
    """

    mechanism: str = ""

    def __init__(self, initial_response: bytes | None) -> None:
        self._initial = initial_response
        self._state = "new"

    def begin(self) -> SaslChallenge | SaslCredentials:
        """The first outcome: uses the initial response if the client sent one."""
        if self._state != "new":
            raise RuntimeError(f"SASL {self.mechanism}: begin() called twice")
        self._state = "running"
        return self._guard(self._begin, self._initial)

    def step(self, client_data: bytes | None) -> SaslChallenge | SaslCredentials:
        """Feed the decoded answer to the last challenge; None means the client sent ``*``."""
        if self._state != "running":
            raise RuntimeError(f"SASL {self.mechanism}: step() called while {self._state}")
        if client_data is None:
            self._state = "done"
            raise SaslCancelled("the client cancelled the authentication")
        return self._guard(self._step, client_data)

    @property
    def done(self) -> bool:
        return self._state == "done"

    def _guard(self, method: _Method, data: bytes | None) -> SaslChallenge | SaslCredentials:
        try:
            outcome = method(data)
        except SaslError:
            self._state = "done"
            raise
        if isinstance(outcome, SaslCredentials):
            self._state = "done"
        return outcome

    def _begin(self, initial: bytes | None) -> SaslChallenge | SaslCredentials:
        raise NotImplementedError

    def _step(self, data: bytes | None) -> SaslChallenge | SaslCredentials:
        raise NotImplementedError


class _PlainExchange(SaslExchange):
    """RFC 4616: one message ``[authzid] NUL authcid NUL passwd``, all UTF-8."""

    mechanism = "PLAIN"

    def _begin(self, initial: bytes | None) -> SaslChallenge | SaslCredentials:
        if initial is None:
            return SaslChallenge(b"")  # RFC 4616 §2: the server sends an empty challenge
        return _parse_plain(initial)

    def _step(self, data: bytes | None) -> SaslChallenge | SaslCredentials:
        assert data is not None
        return _parse_plain(data)


def _parse_plain(message: bytes) -> SaslCredentials:
    parts = message.split(b"\0")
    if len(parts) != 3:
        raise SaslError("PLAIN needs authzid, authcid and password separated by two NULs")
    authzid, authcid = _utf8(parts[0], "authorization identity"), _utf8(parts[1], "user name")
    password = _password_text(parts[2])
    # RFC 4616 §2: authcid and passwd are 1*SAFE; only the authzid may be empty.
    if not authcid:
        raise SaslError("PLAIN carries an empty user name")
    if not password:
        raise SaslError("PLAIN carries an empty password")
    if authzid and authzid != authcid:
        # RFC 4616 §2: the server decides whether authcid may act as authzid; we have no
        # administrators or proxy users, so only "act as myself" is allowed.
        raise AuthorizationRefused(f"{authcid!r} may not act as {authzid!r}")
    return SaslCredentials(authcid, password, authzid or None)


class _LoginExchange(SaslExchange):
    """LOGIN: "Username:" then "Password:", each answered with one base64 string.

    Clients that send the user name as an initial response (Outlook, some libraries) skip the
    first challenge.
    """

    mechanism = "LOGIN"

    def __init__(self, initial_response: bytes | None) -> None:
        super().__init__(initial_response)
        self._user: str | None = None

    def _begin(self, initial: bytes | None) -> SaslChallenge | SaslCredentials:
        if initial is None:
            return SaslChallenge(b"Username:")
        return self._step(initial)

    def _step(self, data: bytes | None) -> SaslChallenge | SaslCredentials:
        assert data is not None
        if self._user is None:
            self._user = _login_field(data, "user name")
            return SaslChallenge(b"Password:")
        return SaslCredentials(self._user, _login_field(data, "password"))


def _login_field(data: bytes, what: str) -> str:
    text = _password_text(data) if what == "password" else _utf8(data, what)
    if not text:
        raise SaslError(f"LOGIN carries an empty {what}")
    if "\0" in text:  # a NUL would let one string mean different names to different code
        raise SaslError(f"LOGIN carries a NUL in the {what}")
    return text


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")  # strict: no overlong forms, no surrogates
    except UnicodeDecodeError:
        raise SaslError(f"the {what} is not UTF-8") from None


def _password_text(data: bytes) -> str:
    """A password as text. Bytes that are not UTF-8 make a wrong password (a failed login that
    is counted), not a malformed exchange: surrogateescape keeps them, and the directory
    refuses any string that does not encode back to UTF-8."""
    return data.decode("utf-8", "surrogateescape")


_EXCHANGES: dict[str, type[SaslExchange]] = {"PLAIN": _PlainExchange, "LOGIN": _LoginExchange}

def start_sasl(mechanism: str, initial_response: bytes | None, *,
               offered: Collection[str] = MECHANISMS) -> SaslExchange:
    """A new exchange for ``mechanism`` (any case); call :meth:`SaslExchange.begin` next.

    ``initial_response`` is already decoded (:func:`decode_initial_response`); None means the
    client sent none. ``offered`` is what this connection advertised (:func:`mechanisms_offered`):
    a known mechanism missing from it raises :class:`EncryptionRequired`, an unknown one
    :class:`UnsupportedMechanism`.
    """
    name = mechanism.upper()
    exchange = _EXCHANGES.get(name)
    if exchange is None:
        raise UnsupportedMechanism(f"the mechanism {mechanism[:40]!r} is not supported")
    if name not in offered:
        raise EncryptionRequired(f"{name} sends the password in the clear and needs TLS here")
    return exchange(initial_response)
