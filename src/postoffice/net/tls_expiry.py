"""Warnings before a certificate in use expires: `serve` logs one at start-up and once a day while
any certificate expires within ``WARN_DAYS`` days, naming the file, its `[tls]` key, the date
and the fix; `postoffice status` shows the same days left.

    certificate_status("[tls] cert_file", path)   -> CertificateStatus(expires=..., days_left=9, ...)
    await watch_certificate_expiry(lambda: [("[tls] cert_file", path)])   # in serve, forever

The files are read again at every check, so a renewal (certbot, ACME) ends the warnings without a
restart. A file that cannot be read is a warning too: the listeners keep the certificate they
loaded (net/tls.py ReloadingServerContext), but it will not be renewed in place.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from postoffice.net.tls import TlsConfigError, leaf_certificate

__all__ = ["CHECK_SECONDS", "WARN_DAYS", "CertificateStatus", "certificate_status", "expiry_warning",
           "watch_certificate_expiry"]

log = logging.getLogger("postoffice.tls")

WARN_DAYS = 21
CHECK_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class CertificateStatus:
    key: str  # the config key naming it: "[tls] cert_file"
    path: Path
    expires: dt.datetime | None = None  # None: it could not be read (problem says why)
    days_left: int | None = None  # whole days until it expires; negative once expired
    names: tuple[str, ...] = ()  # the DNS names it is valid for (subjectAltName)
    self_signed: bool = False
    problem: str = ""


def certificate_status(key: str, path: Path, now: dt.datetime | None = None) -> CertificateStatus:
    now = now or dt.datetime.now(dt.UTC)
    try:
        leaf = leaf_certificate(path)
    except TlsConfigError as error:
        return CertificateStatus(key, path, problem=str(error))
    expires = leaf.not_valid_after_utc
    return CertificateStatus(key, path, expires, (expires - now).days, _names(leaf),
                             leaf.issuer == leaf.subject)


def expiry_warning(status: CertificateStatus, *, acme: bool = False) -> str | None:
    """The warning for ``status``, or None when nothing is wrong (more than WARN_DAYS left).
    ``acme``: `[tls] acme` renews it, so the fix is to see why that has not happened."""
    if status.expires is None:
        return f"The certificate {status.path} ({status.key}) cannot be read: {status.problem}"
    if status.days_left is None or status.days_left >= WARN_DAYS:
        return None
    when = f"{status.expires:%Y-%m-%d %H:%M} UTC"
    fix = ("[tls] acme has not renewed it: the ACME lines of this log say why; after fixing that, "
           "postoffice tls renew tries again at once" if acme else
           "renew it (certbot renew, or your CA's renewal), or run postoffice init to replace it with a "
           "self-signed one; the listeners load the new file without a restart")
    if status.days_left < 0:
        return f"The TLS certificate {status.path} ({status.key}) expired on {when}: clients refuse it; {fix}."
    return (f"The TLS certificate {status.path} ({status.key}) expires in {status.days_left} day(s), on "
            f"{when}; {fix}.")


async def watch_certificate_expiry(certificates: Callable[[], Sequence[tuple[str, Path]]], *,
                                   every: float = CHECK_SECONDS, acme: bool = False) -> None:
    """Check now, then every ``every`` seconds: one WARNING per certificate that needs one."""
    while True:
        try:
            for key, path in certificates():
                # A small file, but on a network mount or a slow disk it may block: not on the loop.
                status = await asyncio.to_thread(certificate_status, key, path)
                warning = expiry_warning(status, acme=acme)
                if warning:
                    log.warning("%s", warning)
        except Exception:  # a bug here must not stop serving mail
            log.exception("checking the certificates' expiry failed")
        await asyncio.sleep(every)


def _names(leaf: x509.Certificate) -> tuple[str, ...]:
    try:
        alternative = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(alternative.get_values_for_type(x509.DNSName))
