"""Accounts on other servers: their URLs, where their passwords come from, and logging in.

``imap://USER@HOST[:PORT]`` (STARTTLS, 143), ``imaps://`` (TLS, 993), ``pop3://`` (STLS, 110),
``pop3s://`` (TLS, 995); ``?tls=none`` allows a plaintext session (loopback tests, a server on
the same host) and ``?tls=insecure`` skips certificate checks. A password never comes from the
command line (it would show in ``ps``); in this order:

1. ``--password-stdin`` (one line read from standard input),
2. the environment: ``POSTOFFICE_FROM_PASSWORD`` for the source (``POSTOFFICE_TO_PASSWORD`` for
   a destination, used by ``migrate``),
3. a netrc file (``$NETRC`` or ``~/.netrc``): the ``machine HOST login USER`` entry.

OAuth 2 (XOAUTH2, OAUTHBEARER, RFC 7628): ``--oauth-token-command CMD`` runs CMD (through the
shell) and uses what it prints as the access token; when the server refuses the token (it has
expired), CMD is run again and the login tried once more. Admin logins (``--authuser ADMIN``):
AUTHENTICATE PLAIN with ADMIN's password and USER as the authorisation identity (RFC 4616),
how Dovecot master users and most servers let one account read many.
"""

from __future__ import annotations

import asyncio
import netrc
import os
import shlex
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from postoffice.transfer.source import TransferError

__all__ = ["AccountUrl", "Credentials", "parse_account_url", "password_from"]

Scheme = Literal["imap", "imaps", "pop3", "pop3s"]
DEFAULT_PORTS = {"imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995}


@dataclass(frozen=True)
class AccountUrl:
    scheme: Scheme
    user: str
    host: str
    port: int
    tls: Literal["verify", "insecure", "none"] = "verify"

    @property
    def protocol(self) -> Literal["imap", "pop3"]:
        return "imap" if self.scheme.startswith("imap") else "pop3"

    @property
    def security(self) -> Literal["tls", "starttls", "plain"]:
        if self.tls == "none":
            return "plain"
        return "tls" if self.scheme.endswith("s") else "starttls"

    @property
    def key(self) -> str:
        """The source's name in state files: scheme, user, host and port."""
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.tls == "insecure":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def __str__(self) -> str:
        return self.key


def parse_account_url(text: str) -> AccountUrl:
    """``imaps://bob@mail.example.org`` as an AccountUrl; TransferError in plain words."""
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise TransferError(
            f"'{text}' is not an account URL: use imap://, imaps://, pop3:// or pop3s://USER@HOST[:PORT]."
        )
    if parts.password is not None:
        raise TransferError(
            "Put no password in the URL (others can read command lines); use --password-stdin,"
            " POSTOFFICE_FROM_PASSWORD or a netrc file."
        )
    if not parts.username or not parts.hostname:
        raise TransferError(f"'{text}' names no user or no host: write {scheme}://USER@HOST.")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise TransferError(f"'{text}' has a port that is not a number.") from None
    tls = parse_qs(parts.query).get("tls", ["verify"])[-1]
    if tls not in ("verify", "insecure", "none"):
        raise TransferError(f"tls={tls} is not one of verify, insecure, none.")
    return AccountUrl(scheme, unquote(parts.username), parts.hostname, port, tls)  # type: ignore[arg-type]


def password_from(
    url: AccountUrl, *, stdin_line: str | None, env_name: str, login: str | None = None
) -> str | None:
    """The password for ``login`` (default: the URL's user) at the URL's host, from the first
    source that has one (see the module docstring), or None."""
    if stdin_line is not None:
        return stdin_line
    value = os.environ.get(env_name)
    if value:
        return value
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    if not path.exists():
        return None
    try:
        entries = netrc.netrc(str(path))
    except (netrc.NetrcParseError, OSError) as exc:
        raise TransferError(f"{path} cannot be read: {exc}") from exc
    found = entries.authenticators(url.host)
    if found is None:
        return None
    who, _, password = found
    if who and who != (login or url.user):
        return None
    return password


@dataclass
class Credentials:
    """How to log in to one account: a password, or an OAuth token command, plus an optional
    admin user who logs in on the account's behalf."""

    user: str
    password: str | None = None
    token_command: str | None = None
    authuser: str | None = None
    _token: str | None = field(default=None, repr=False)

    async def token(self, *, fresh: bool = False) -> str:
        """The access token, from the command (run again when ``fresh``)."""
        if self.token_command is None:
            raise TransferError("No OAuth token command was given.")
        if self._token is None or fresh:
            process = await asyncio.create_subprocess_shell(
                self.token_command,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await process.communicate()
            if process.returncode != 0:
                reason = err.decode(errors="replace").strip() or f"exit status {process.returncode}"
                raise TransferError(f"The token command failed: {reason}")
            token = out.decode().strip()
            if not token:
                raise TransferError(
                    f"The token command ({shlex.split(self.token_command)[0]}) printed nothing."
                )
            self._token = token
        return self._token
