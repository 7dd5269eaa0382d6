"""The ACME client and the renewal task against pebble, a real ACME CA, on loopback: the CA
validates our names with TLS-ALPN-01 on the real IMAPS listener, through the loopback DNS server."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from dns_server import DnsServers, free_port
from live_server import LiveServer
from pebble import Pebble
from postoffice.acme.renewal import CertificateRenewal, account_key_path
from postoffice.config import Config

HOST = "mail.acme.test"
DOMAIN = "acme.test"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "data", ["imaps"], server={"hostname": HOST},
                        tls={"acme": True, "acme_challenge": "tls-alpn-01"}).start()
    yield server
    server.stop()


@pytest.fixture
def pebble(tmp_path: Path, live: LiveServer, dns_server: DnsServers) -> Iterator[Pebble]:
    with Pebble(tmp_path / "pebble", tls_port=live.ports["imaps"], http_port=free_port(),
                dns=dns_server.nameserver) as ca:
        yield ca


def renewal_for(live: LiveServer, pebble: Pebble, domains_: tuple[str, ...] = (DOMAIN,),
                **tls: object) -> CertificateRenewal:
    """The renewal of `serve`, pointed at pebble, for the live server's listeners."""
    assert live.services is not None
    config: Config = live.services.config
    config = dataclasses.replace(config, tls=dataclasses.replace(
        config.tls, acme_directory=pebble.directory_url, acme_ca_file=pebble.https_ca_file, **tls))

    async def domains() -> list[str]:
        return list(domains_)
    return CertificateRenewal(config, live.services.acme_challenges, domains,
                              live.services.tls.reload, first_retry=dt.timedelta(seconds=0.5))


def served_certificate(port: int, trust: ssl.SSLContext) -> x509.Certificate:
    """The certificate the implicit-TLS port serves, verified against pebble's root."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            trust.wrap_socket(raw, server_hostname=HOST) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)


def dns_names(certificate: x509.Certificate) -> list[str]:
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName)


def test_certificate_obtained_by_tls_alpn_is_served_at_once(
        live: LiveServer, pebble: Pebble, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="postoffice.acme")
    renewal = renewal_for(live, pebble)

    issued = live.call(renewal.renew(), timeout=120)

    # autoconfig.acme.test has no address: left off, with the reason and the fix.
    assert issued.names == (HOST, f"mta-sts.{DOMAIN}")
    left_out = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"leaving autoconfig.{DOMAIN} off" in m and "publish an A" in m for m in left_out), left_out
    assert live.services is not None
    written = x509.load_pem_x509_certificate(live.services.config.tls.cert_file.read_bytes())
    served = served_certificate(live.ports["imaps"], pebble.trust())
    assert served.serial_number == written.serial_number
    assert dns_names(served) == [HOST, f"mta-sts.{DOMAIN}"]
    assert account_key_path(live.data_dir).stat().st_mode & 0o077 == 0
    assert live.services.config.tls.key_file.stat().st_mode & 0o077 == 0

    # After a restart the left-out name does not order again (5 identical certificates a week
    # at Let's Encrypt); a domain added meanwhile does, at once.
    due, reason = live.call(renewal_for(live, pebble).due())
    assert reason is None and due > dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    due, reason = live.call(renewal_for(live, pebble, (DOMAIN, "added.test")).due())
    assert reason == ("the certificate in use does not name mta-sts.added.test, autoconfig.added.test, "
                      "autodiscover.added.test")


def test_validation_failure_is_one_log_line_with_the_fix_then_retried(
        live: LiveServer, pebble: Pebble, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="postoffice.acme")
    renewal = renewal_for(live, pebble, acme_names=("nowhere.acme.test",))

    async def two_failures() -> None:
        task = asyncio.create_task(renewal.run())
        try:
            while sum(r.levelno == logging.ERROR for r in caplog.records) < 2:
                await asyncio.sleep(0.1)
        finally:
            task.cancel()

    live.call(asyncio.wait_for(two_failures(), 120), timeout=130)

    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert all("\n" not in m and "could not look up nowhere.acme.test" in m
               and "publish an A (and AAAA) record" in m and "retrying in" in m for m in errors), errors
    assert "retrying in 1 second" in errors[1]  # the backoff doubled
    assert served_certificate_is_still_self_signed(live)


def served_certificate_is_still_self_signed(live: LiveServer) -> bool:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    certificate = served_certificate(live.ports["imaps"], context)
    return certificate.issuer == certificate.subject


def test_unreachable_ca_names_the_cause(live: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="postoffice.acme")
    closed = free_port()
    assert live.services is not None
    config = live.services.config
    config = dataclasses.replace(config, tls=dataclasses.replace(
        config.tls, acme_directory=f"https://127.0.0.1:{closed}/dir"))

    async def domains() -> list[str]:
        return []
    renewal = CertificateRenewal(config, live.services.acme_challenges, domains)

    async def one_failure() -> None:
        task = asyncio.create_task(renewal.run())
        try:
            while not any(r.levelno == logging.ERROR for r in caplog.records):
                await asyncio.sleep(0.05)
        finally:
            task.cancel()

    live.call(asyncio.wait_for(one_failure(), 60), timeout=70)

    error = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert f"127.0.0.1:{closed}" in error and "cannot be reached" in error
    assert "outgoing HTTPS connections" in error and "retrying in 5 minutes" in error


def test_certificate_file_that_cannot_be_written_is_one_log_line(
        live: LiveServer, pebble: Pebble, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="postoffice.acme")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    renewal = renewal_for(live, pebble, cert_file=blocker / "cert.pem", key_file=blocker / "key.pem")

    async def one_failure() -> None:
        task = asyncio.create_task(renewal.run())
        try:
            while not any(r.levelno == logging.ERROR for r in caplog.records):
                await asyncio.sleep(0.1)
        finally:
            task.cancel()

    live.call(asyncio.wait_for(one_failure(), 120), timeout=130)

    error = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert error.exc_info is None
    assert str(blocker) in error.getMessage() and "make it writable" in error.getMessage()


def test_certificate_obtained_by_http_01_through_the_web_listener(
        tmp_path: Path, dns_server: DnsServers, caplog: pytest.LogCaptureFixture) -> None:
    """The CA fetches http://NAME:PORT/.well-known/acme-challenge/TOKEN from our HTTP listener."""
    caplog.set_level(logging.INFO, logger="postoffice.acme")
    server = LiveServer(tmp_path / "data", ["http", "imaps"], server={"hostname": HOST},
                        tls={"acme": True}).start()
    try:
        assert server.services is not None
        assert server.services.config.tls.acme_challenge == "http-01"  # the default
        with Pebble(tmp_path / "pebble", tls_port=free_port(), http_port=server.ports["http"],
                    dns=dns_server.nameserver) as ca:
            issued = server.call(renewal_for(server, ca).renew(), timeout=120)
            served = served_certificate(server.ports["imaps"], ca.trust())
        written = x509.load_pem_x509_certificate(server.services.config.tls.cert_file.read_bytes())
    finally:
        server.stop()

    assert issued.names == (HOST, f"mta-sts.{DOMAIN}")
    assert served.serial_number == written.serial_number
    assert any("validate mail.acme.test by http-01" in r.getMessage() for r in caplog.records)
