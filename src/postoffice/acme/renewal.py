"""The certificate task of `serve` with `[tls] acme = true`: obtain, renew, write, retry.

    renewal = CertificateRenewal.for_services(services)   # after prepare_certificate(config)
    task = asyncio.create_task(renewal.run())            # runs until cancelled

- At start, :func:`prepare_certificate` makes sure the listeners have *some* certificate (a
  self-signed one when the files are missing, broken or expired), so they can start and answer the
  CA's TLS-ALPN-01 validation; :meth:`CertificateRenewal.run` then orders the real one at once.
- A certificate is renewed 30 days before it expires (a third of its lifetime when that is
  shorter: a 6-day certificate after 4 days), checked at least daily; the new key and chain are
  written atomically to ``[tls] key_file`` and ``cert_file`` (key first), and every listener
  (IMAP, SMTP, POP3, HTTPS: one ReloadingServerContext) uses them from the next handshake on.
- The names: ``[tls] acme_names``, or by default the host name plus ``mta-sts.``,
  ``autoconfig.`` and ``autodiscover.`` (Outlook asks it over HTTPS first) of every local domain (a domain added later orders a new certificate at once).
  A default name that fails validation (its DNS does not point here yet) is left out with a
  warning and the order is placed again without it; only the host name is required. Left-out
  names are remembered in ``acme/left-out.json`` and tried again at the next renewal or after a
  week, so restarts do not order certificates (Let's Encrypt allows 5 identical ones a week).
- A failure is one log line with the reason and the fix (explain_failure), then a retry after 5
  minutes, doubling up to a day (rate limits at Let's Encrypt: 5 failed validations an hour).
- The ACME exchange blocks (urllib, polling) and runs in a daemon thread, so the event loop keeps
  answering the CA and a SIGTERM never waits for a slow CA.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from cryptography import x509

from postoffice.acme.client import AcmeClient, AcmeError
from postoffice.acme.issuance import (
    AuthorizationFailed,
    IssuedCertificate,
    explain_failure,
    obtain_certificate,
)
from postoffice.acme.jws import AccountKey
from postoffice.config import Config
from postoffice.durable import write_file
from postoffice.net.tls import TlsConfigError, create_self_signed_certificate, server_context
from postoffice.setup.acme_challenges import AcmeChallenges

if TYPE_CHECKING:
    from postoffice.services import Services

__all__ = ["CertificateRenewal", "account_key_path", "prepare_certificate", "renew_request_path",
           "renewal_due", "state_path"]

log = logging.getLogger("postoffice.acme")
T = TypeVar("T")

RENEW_BEFORE = dt.timedelta(days=30)
CHECK_AT_LEAST_EVERY = dt.timedelta(days=1)
FIRST_RETRY = dt.timedelta(minutes=5)
LONGEST_RETRY = dt.timedelta(days=1)
REQUEST_POLL_SECONDS = 2.0


def account_key_path(data_dir: Path) -> Path:
    return data_dir / "acme" / "account-key.pem"


def renew_request_path(data_dir: Path) -> Path:
    """`postoffice tls renew` creates this file; the running server renews and removes it."""
    return data_dir / "acme" / "renew-requested"


def state_path(data_dir: Path) -> Path:
    """The outcome of the last attempt: {"time": unix time, "ok": bool, "message": str}."""
    return data_dir / "acme" / "state.json"


def prepare_certificate(config: Config) -> None:
    """Before the listeners start: if the certificate files cannot be served (missing, broken,
    expired), write a self-signed certificate for the host name in their place."""
    tls = config.tls
    try:
        server_context(tls.cert_file, tls.key_file, tls.min_version)
    except TlsConfigError as error:
        create_self_signed_certificate(tls.cert_file, tls.key_file, config.server.hostname)
        log.warning("ACME: serving a self-signed certificate for %s until the CA issues one (%s)",
                    config.server.hostname, error)


def renewal_due(cert_file: Path, required: list[str]) -> tuple[dt.datetime, str | None]:
    """When the certificate in ``cert_file`` should be replaced, and why if that is now rather than
    because of its expiry: it is missing, self-signed or lacks one of the ``required`` names."""
    now = dt.datetime.now(dt.UTC)
    try:
        leaf = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError):
        return now, f"there is no usable certificate in {cert_file}"
    if leaf.issuer == leaf.subject:
        return now, "the certificate in use is self-signed"
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    except x509.ExtensionNotFound:
        names = set()
    missing = [n for n in required if n.lower() not in names]
    if missing:
        return now, f"the certificate in use does not name {', '.join(missing)}"
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    return leaf.not_valid_after_utc - min(RENEW_BEFORE, lifetime / 3), None


class CertificateRenewal:
    def __init__(self, config: Config, challenges: AcmeChallenges,
                 domains: Callable[[], Awaitable[list[str]]],
                 reload: Callable[[], object] | None = None, *,
                 first_retry: dt.timedelta = FIRST_RETRY) -> None:
        self.config = config
        self.challenges = challenges
        self._domains = domains
        self._reload = reload
        self._first_retry = first_retry
        self._client: AcmeClient | None = None
        # Default names whose validation failed, and when: kept in a file so that a restart
        # does not order (and fail) again; tried again at the next renewal, or after a week.
        self._left_out = LeftOutNames(config.data_dir / "acme" / "left-out.json")

    @classmethod
    def for_services(cls, services: Services) -> CertificateRenewal:
        async def domains() -> list[str]:
            return [d.name for d in await services.directory.list_domains()]
        return cls(services.config, services.acme_challenges, domains, services.reload_tls)

    async def run(self) -> None:
        """Forever: sleep until the certificate is due (a day at most) or `postoffice tls renew`
        asks, then renew it; retry failures with backoff. Each attempt's outcome goes to the log
        and to acme/state.json (which `tls renew` reads)."""
        failures = 0
        while True:
            due, reason = await self.due()
            if self._take_request():
                reason = "postoffice tls renew asked for it"
            else:
                wait = (due - dt.datetime.now(dt.UTC)).total_seconds()
                if wait > 0:
                    await self._sleep(min(wait, CHECK_AT_LEAST_EVERY.total_seconds()))
                    continue
            if reason is None:  # an ordinary renewal: try the names left out last time again
                self._left_out.clear()
            log.info("ACME: getting a certificate, because %s", reason or "the one in use expires "
                     f"on {_expiry(self.config.tls.cert_file)}")
            delay: float | None = None
            try:
                message = self._describe(await self.renew())
            except AcmeError as error:
                delay = min(self._first_retry * 2 ** failures, LONGEST_RETRY).total_seconds()
                failures += 1
                message = (f"could not get a certificate from {self.config.tls.acme_directory}: "
                           f"{explain_failure(error, self.config.tls.acme_directory)}")
            except OSError as error:  # the data directory or the certificate files
                delay = 3600
                message = (f"could not write {error.filename or 'a file'} "
                           f"({error.strerror or error}); make it writable by the user running "
                           "postoffice")
            except Exception:
                log.exception("ACME: the certificate renewal failed unexpectedly")
                delay = LONGEST_RETRY.total_seconds()
                message = "the certificate renewal failed unexpectedly; the log has the details"
            else:
                failures = 0
                log.info("ACME: %s", message)
            if delay is not None:
                log.error("ACME: %s; retrying in %s", message, _span(dt.timedelta(seconds=delay)))
            self._record(ok=delay is None, message=message)
            if delay is not None:
                await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when `postoffice tls renew` leaves its request."""
        deadline = asyncio.get_running_loop().time() + seconds
        request = renew_request_path(self.config.data_dir)
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            await asyncio.sleep(min(left, REQUEST_POLL_SECONDS))
            if request.exists():
                return

    def _take_request(self) -> bool:
        try:
            renew_request_path(self.config.data_dir).unlink()
        except FileNotFoundError:
            return False
        return True

    def _record(self, *, ok: bool, message: str) -> None:
        state = {"time": time.time(), "ok": ok, "message": message}
        try:
            write_file(state_path(self.config.data_dir), json.dumps(state).encode(), mode=0o644)
        except OSError as error:
            log.warning("ACME: could not record the outcome in %s (%s)", error.filename,
                        error.strerror)

    async def due(self) -> tuple[dt.datetime, str | None]:
        """When the certificate in use should be replaced; a reason when that is now for another
        cause than its expiry (see :func:`renewal_due`)."""
        names, required = await self.names()
        return renewal_due(self.config.tls.cert_file, required + self._wanted(names))

    async def names(self) -> tuple[list[str], list[str]]:
        """(every name wanted, the names that must be on the certificate)."""
        configured = list(self.config.tls.acme_names)
        if configured:
            return configured, configured
        host = self.config.server.hostname
        names = [host]
        for domain in sorted(await self._domains()):
            names += [f"mta-sts.{domain}", f"autoconfig.{domain}", f"autodiscover.{domain}"]
        return list(dict.fromkeys(names)), [host]

    def _wanted(self, names: list[str]) -> list[str]:
        return [n for n in names if not self._left_out.recently(n)]

    async def renew(self) -> IssuedCertificate:
        """One attempt: order, validate (leaving out default names that fail), write, reload."""
        names, required = await self.names()
        while True:
            wanted = self._wanted(names)
            try:
                issued = await _in_daemon_thread(functools.partial(self._obtain, wanted))
            except AuthorizationFailed as failed:
                if failed.name in required or failed.name not in wanted:
                    raise
                self._left_out.add(failed.name)
                log.warning("ACME: leaving %s off the certificate for now: %s", failed.name,
                            explain_failure(failed, self.config.tls.acme_directory))
                continue
            break
        self._write(issued)
        return issued

    def _obtain(self, names: list[str]) -> IssuedCertificate:
        tls = self.config.tls
        if self._client is None:
            key = AccountKey.load_or_create(account_key_path(self.config.data_dir))
            self._client = AcmeClient(tls.acme_directory, key, ca_file=tls.acme_ca_file)
        return obtain_certificate(self._client, names, challenge_type=tls.acme_challenge,
                                  challenges=self.challenges, email=tls.acme_email)

    def _write(self, issued: IssuedCertificate) -> None:
        tls = self.config.tls
        # Key first: a reload in between sees a mismatched pair and keeps the old one.
        write_file(tls.key_file, issued.key_pem, mode=0o600)
        write_file(tls.cert_file, issued.chain_pem, mode=0o644)
        if self._reload is not None:
            self._reload()

    def _describe(self, issued: IssuedCertificate) -> str:
        leaf = x509.load_pem_x509_certificate(issued.chain_pem)
        due, _ = renewal_due(self.config.tls.cert_file, [])
        return (f"new certificate for {', '.join(issued.names)} (serial {leaf.serial_number:x}) "
                f"valid until {leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC, written to "
                f"{self.config.tls.cert_file}; renewal due {due:%Y-%m-%d %H:%M:%S} UTC")


class LeftOutNames:
    """Names left off the certificate because their validation failed, with the time (JSON)."""

    RETRY_AFTER = dt.timedelta(days=7)

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError):
            loaded = {}
        self._since: dict[str, float] = {
            k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, int | float)
        } if isinstance(loaded, dict) else {}

    def recently(self, name: str) -> bool:
        since = self._since.get(name)
        return since is not None and time.time() - since < self.RETRY_AFTER.total_seconds()

    def add(self, name: str) -> None:
        self._since[name] = time.time()
        self._save()

    def clear(self) -> None:
        if self._since:
            self._since.clear()
            self._save()

    def _save(self) -> None:
        write_file(self.path, json.dumps(self._since, indent=1).encode(), mode=0o644)


def _expiry(cert_file: Path) -> str:
    try:
        leaf = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError):
        return "an unknown date"
    return f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"


def _span(delay: dt.timedelta) -> str:
    seconds = delay.total_seconds()
    amount, unit = ((seconds, "second") if seconds < 60 else (seconds / 60, "minute")
                    if seconds < 7200 else (seconds / 3600, "hour"))
    return f"{amount:.0f} {unit}{'' if round(amount) == 1 else 's'}"


async def _in_daemon_thread(work: Callable[[], T]) -> T:
    """``work()`` in a daemon thread: unlike asyncio.to_thread, a process stopping meanwhile
    does not wait for it (a CA may take minutes to validate)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result = work()
        except BaseException as error:  # handed to the awaiting task
            outcome: tuple[T | None, BaseException | None] = (None, error)
        else:
            outcome = (result, None)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop closed meanwhile: nobody waits any more
            pass

    threading.Thread(target=target, name="acme", daemon=True).start()
    return await future
