"""One password login, the same way for IMAP, POP3 and SMTP AUTH (DESIGN §4, issue 12).

The drivers parse the credentials; :func:`check_login` decides, and they map its answer to
their replies::

    result = await check_login(services.directory, services.login_throttle, conn.peer_ip,
                               user, password)
    if result is LoginRefused.TRY_LATER: ...  # IMAP NO [UNAVAILABLE], POP3 -ERR [SYS/TEMP], SMTP 454 4.7.0
    elif result is LoginRefused.FAILED: ...   # IMAP NO [AUTHENTICATIONFAILED], POP3 -ERR [AUTH], SMTP 535
    else: ...                                 # result is the AccountRecord

In order:

1. A pair (account, address) that logged in successfully lately is *known*: it is never
   throttled, and its check goes first in the queue for argon2.
2. Any other attempt that comes before the delay since the last failure of its address (or
   account) is over is *throttled*: neither the login cache nor argon2 sees it, so parallel
   guesses cost nothing and learn nothing. It is answered TRY_LATER when that delay is over
   (the connection waits meanwhile), and not counted: it may well be right.
3. When too many checks wait already, an attempt that is not known is turned away at once
   (TRY_LATER), not counted either, since nothing was checked.
4. A failure (a wrong password, an unknown user, a password that is not UTF-8) is counted
   against the address and the account, and answered only after the throttle's delay.
"""
from __future__ import annotations

import asyncio
import enum

from postoffice import logevents
from postoffice.auth.check_queue import PasswordChecksBusy
from postoffice.auth.limits import LoginThrottle
from postoffice.directory import Directory
from postoffice.store.interface import AccountRecord

__all__ = ["LoginRefused", "check_login"]


class LoginRefused(enum.Enum):
    FAILED = "failed"        # wrong credentials: the normal authentication failure
    TRY_LATER = "try later"  # not checked (throttled, or too many checks waiting): temporary


async def check_login(directory: Directory, throttle: LoginThrottle, ip: str, user: str,
                      password: str, *, protocol: str = "", mechanism: str = "",
                      conn: str | None = None, log_success: bool = True) -> AccountRecord | LoginRefused:
    """The account if `user` may log in with `password` from `ip`, else why not.

    Every attempt leaves one log line (logevents.login) naming `protocol`, `mechanism` and the
    connection id `conn`; never the password. A driver that may still refuse a right password
    (POP3: the maildrop is in use) passes ``log_success=False`` and logs the outcome itself."""
    known = throttle.is_known(ip, user)
    if not known and (left := throttle.throttled_for(ip, user)) > 0:
        await asyncio.sleep(left)
        logevents.login(protocol, ip, user, mechanism, "refused", conn, "throttled")
        return LoginRefused.TRY_LATER
    try:
        account = await directory.authenticate(user, password, priority=known)
    except PasswordChecksBusy:
        logevents.login(protocol, ip, user, mechanism, "refused", conn, "busy")
        return LoginRefused.TRY_LATER
    if account is None:
        throttle.record_failure(ip, user)
        logevents.login(protocol, ip, user, mechanism, "failed", conn)
        # A known pair waits for its address's failures only, like its throttling.
        await throttle.wait_before_reply(ip, None if known else user)
        return LoginRefused.FAILED
    throttle.record_success(ip, user)
    if log_success:
        logevents.login(protocol, ip, user, mechanism, "ok", conn)
    return account
