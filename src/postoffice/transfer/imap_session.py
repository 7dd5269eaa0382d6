"""Open a logged-in IMAP session for transfer: connect, authenticate, compress, enable.

>>> client = await open_imap(parse_account_url("imaps://bob@mail.example.org"), credentials)

The login picks, in order: an OAuth token (XOAUTH2 when offered, else OAUTHBEARER, RFC 7628;
a refused token is fetched again once: it has probably expired), an admin login
(AUTHENTICATE PLAIN with the admin as authentication identity and the account as
authorisation identity, RFC 4616 §2), LOGIN, or AUTHENTICATE PLAIN when the server disables
LOGIN. Then COMPRESS=DEFLATE (RFC 4978), CONDSTORE and QRESYNC (RFC 7162) when offered.
"""

from __future__ import annotations

from postoffice.transfer.credentials import AccountUrl, Credentials
from postoffice.transfer.imap_client import ImapClient, ImapCommandFailed, ImapError
from postoffice.transfer.source import TransferError

__all__ = ["imap_login", "open_imap"]


async def open_imap(
    url: AccountUrl, credentials: Credentials, *, compress: bool = True, timeout: float = 60.0
) -> ImapClient:
    client = await ImapClient.connect(
        url.host, url.port, security=url.security, ssl_context=url.ssl_context(), timeout=timeout
    )
    try:
        await imap_login(client, credentials)
        if compress:
            await client.compress()
        await client.enable("CONDSTORE", "QRESYNC")
    except BaseException:
        await client.close()
        raise
    return client


async def imap_login(client: ImapClient, credentials: Credentials) -> None:
    """Log in with ``credentials``; ImapError (in plain words) when the server refuses."""
    caps = client.capabilities
    greeting = client.greeting
    if greeting is not None and greeting.kind == "PREAUTH":
        return
    try:
        if credentials.token_command is not None:
            mechanism = "XOAUTH2" if "AUTH=XOAUTH2" in caps else "OAUTHBEARER"
            for fresh in (False, True):
                token = await credentials.token(fresh=fresh)
                try:
                    await client.authenticate(mechanism, _oauth_message(mechanism, credentials.user, token, client))
                    return
                except ImapCommandFailed:
                    if fresh:
                        raise
            return
        if credentials.password is None:
            raise TransferError(
                f"No password for {credentials.authuser or credentials.user}: use --password-stdin,"
                " POSTOFFICE_FROM_PASSWORD or a netrc file."
            )
        if credentials.authuser is not None:
            await client.login_plain(credentials.authuser, credentials.password, authzid=credentials.user)
        elif "LOGINDISABLED" in caps:
            await client.login_plain(credentials.user, credentials.password)
        else:
            await client.login(credentials.user, credentials.password)
    except ImapCommandFailed as exc:
        raise ImapError(f"{client.host} refused the login of {credentials.user}: {exc.text or exc.status}") from exc


def _oauth_message(mechanism: str, user: str, token: str, client: ImapClient) -> bytes:
    if mechanism == "XOAUTH2":  # Google's and Microsoft's pre-RFC form
        return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    # RFC 7628 §3.1: gs2 header with the authzid, then key=value pairs separated by ^A.
    return f"n,a={user},\x01host={client.host}\x01auth=Bearer {token}\x01\x01".encode()
