"""The issue's acceptance for certificates: a real `postoffice serve` with `[tls] acme = true`
against pebble on loopback obtains a certificate at start, serves it on IMAP, IMAPS, SMTP and
submission (STARTTLS), submissions, POP3 (STLS) and POP3S without a restart, and renews it when
its lifetime is short (pebble issues 30-second certificates here: renewed after 20 seconds), and
when `postoffice tls renew` asks."""
from __future__ import annotations

import imaplib
import json
import poplib
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from cli_run import po
from dns_server import DnsServers, free_port
from live_server import quiet_dns
from pebble import Pebble
from serve_process import Serve

pytestmark = pytest.mark.peer("pebble")

HOST = "mail.acme.test"
VALIDITY = 30  # seconds; renewal is due after two thirds of it


def init_data(data: Path, tls_port: int, pebble: Pebble) -> None:
    po("init", "--domain", "acme.test", "--hostname", HOST, data=data)
    config = (data / "postoffice.toml").read_text()
    config = re.sub(r"^(smtp|submission|submissions|imap|pop3|pop3s|https) = .*$", r'\1 = ["127.0.0.1:0"]',
                    config, flags=re.M)
    config = re.sub(r"^(http|managesieve) = .*$", r"\1 = []", config, flags=re.M)
    # The CA validates TLS-ALPN-01 on this port (its tlsPort), as it would on 443.
    config = re.sub(r"^imaps = .*$", f'imaps = ["127.0.0.1:{tls_port}"]', config, flags=re.M)
    config = re.sub(r"^nameservers = .*$", f'nameservers = ["{quiet_dns()}"]', config, flags=re.M)
    for key, value in (("acme", "true"), ("acme_directory", f'"{pebble.directory_url}"'),
                       ("acme_ca_file", f'"{pebble.https_ca_file}"'),
                       ("acme_challenge", '"tls-alpn-01"')):
        config = re.sub(rf"^{key} = .*$", f"{key} = {value}", config, flags=re.M)
    (data / "postoffice.toml").write_text(config)


def wait_for(condition: Callable[[], bool], what: str, serve: Serve, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline or serve.proc.poll() is not None:
            raise AssertionError(f"{what} did not happen within {timeout} s:\n{serve.log_text()}")
        time.sleep(0.2)


def issued_serials(log: str) -> list[int]:
    """The serials of the certificates pebble issued, in order, from serve's log."""
    return [int(s, 16) for s in re.findall(r"ACME: new certificate for .*? \(serial ([0-9a-f]+)\)", log)]


def served_serials(ports: dict[str, int], trust: ssl.SSLContext) -> dict[str, int]:
    """The serial each listener serves now, each verified against pebble's root."""
    ders: dict[str, bytes | None] = {}
    with imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=10) as imap:
        imap.starttls(ssl_context=trust)
        ders["imap"] = imap.sock.getpeercert(binary_form=True)
    with imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=trust, timeout=10) as imaps:
        ders["imaps"] = imaps.sock.getpeercert(binary_form=True)
    for protocol in ("smtp", "submission"):
        with smtplib.SMTP("127.0.0.1", ports[protocol], timeout=10) as smtp:
            smtp.starttls(context=trust)
            ders[protocol] = smtp.sock.getpeercert(binary_form=True)
    with smtplib.SMTP_SSL("127.0.0.1", ports["submissions"], context=trust, timeout=10) as smtps:
        ders["submissions"] = smtps.sock.getpeercert(binary_form=True)
    pop = poplib.POP3("127.0.0.1", ports["pop3"], timeout=10)
    pop.stls(context=trust)
    ders["pop3"] = pop.sock.getpeercert(binary_form=True)
    pop.quit()
    pops = poplib.POP3_SSL("127.0.0.1", ports["pop3s"], context=trust, timeout=10)
    ders["pop3s"] = pops.sock.getpeercert(binary_form=True)
    pops.quit()
    with socket.create_connection(("127.0.0.1", ports["https"]), timeout=10) as raw, \
            trust.wrap_socket(raw, server_hostname=HOST) as https:
        ders["https"] = https.getpeercert(binary_form=True)
    serials = {}
    for protocol, der in ders.items():
        assert der is not None, protocol
        serials[protocol] = x509.load_der_x509_certificate(der).serial_number
    return serials


def test_serve_obtains_serves_everywhere_and_renews_without_restart(
        tmp_path: Path, dns_server: DnsServers) -> None:
    tls_port = free_port()
    with Pebble(tmp_path / "pebble", tls_port=tls_port, http_port=free_port(),
                dns=dns_server.nameserver, validity=VALIDITY) as pebble:
        init_data(tmp_path / "data", tls_port, pebble)
        serve = Serve(tmp_path / "data").started()
        try:
            wait_for(lambda: len(issued_serials(serve.log_text())) >= 1, "the first certificate", serve)
            log = serve.log_text()
            ports = {p: int(port) for p, port in re.findall(r"listening: (\w+) on 127\.0\.0\.1:(\d+)", log)}
            trust = pebble.trust()

            first = issued_serials(log)[0]
            assert served_serials(ports, trust) == dict.fromkeys(ports, first)

            wait_for(lambda: len(issued_serials(serve.log_text())) >= 2, "the renewal", serve)
            second = issued_serials(serve.log_text())[1]
            assert second != first
            assert served_serials(ports, trust) == dict.fromkeys(ports, second)

            outcome = json.loads(po("tls", "renew", "--json", data=tmp_path / "data").stdout)
            assert outcome["ok"], outcome
            found = re.search(r"serial ([0-9a-f]+)", outcome["message"])
            assert found, outcome
            third = int(found.group(1), 16)
            assert third not in (first, second)
            assert served_serials(ports, trust) == dict.fromkeys(ports, third)
        finally:
            log = serve.stop()

    assert set(ports) == {"smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "https"}
    assert "ACME: getting a certificate, because the certificate in use is self-signed" in log
    # The CA would check port 443, where no listener of this test is: said once, at start.
    assert log.count("ACME: the CA checks tls-alpn-01 on port 443, where no TLS listener") == 1
    assert "Traceback" not in log


def test_http01_is_answered_by_the_http_listener_and_https_serves_the_result(
        tmp_path: Path, dns_server: DnsServers) -> None:
    http_port = free_port()
    with Pebble(tmp_path / "pebble", tls_port=free_port(), http_port=http_port,
                dns=dns_server.nameserver) as pebble:
        data = tmp_path / "data"
        po("init", "--domain", "acme.test", "--hostname", HOST, data=data)
        config = (data / "postoffice.toml").read_text()
        config = re.sub(r"^(smtp|submission|submissions|imap|imaps|pop3|pop3s|managesieve) = .*$", r"\1 = []",
                        config, flags=re.M)
        # pebble fetches http://NAME:http_port/.well-known/acme-challenge/TOKEN, as a CA does on 80.
        for key, value in (("http", f'["127.0.0.1:{http_port}"]'), ("https", '["127.0.0.1:0"]'),
                           ("nameservers", f'["{quiet_dns()}"]'), ("acme", "true"),
                           ("acme_directory", f'"{pebble.directory_url}"'),
                           ("acme_ca_file", f'"{pebble.https_ca_file}"'), ("acme_challenge", '"http-01"')):
            config = re.sub(rf"^{key} = .*$", f"{key} = {value}", config, flags=re.M)
        (data / "postoffice.toml").write_text(config)
        serve = Serve(data).started()
        try:
            wait_for(lambda: len(issued_serials(serve.log_text())) >= 1, "the certificate", serve)
            serial = issued_serials(serve.log_text())[0]
            https = int(re.findall(r"listening: https on 127\.0\.0\.1:(\d+)", serve.log_text())[0])
            with socket.create_connection(("127.0.0.1", https), timeout=10) as raw, \
                    pebble.trust().wrap_socket(raw, server_hostname=HOST) as tls:
                der = tls.getpeercert(binary_form=True)
            assert der is not None and x509.load_der_x509_certificate(der).serial_number == serial
        finally:
            log = serve.stop()
    assert "Traceback" not in log


def test_tls_renew_without_acme_or_without_a_server_says_what_to_do(tmp_path: Path) -> None:
    data = tmp_path / "data"
    po("init", "--domain", "acme.test", "--hostname", HOST, data=data)

    off = po("tls", "renew", data=data, check=False)
    config = (data / "postoffice.toml").read_text()
    (data / "postoffice.toml").write_text(re.sub(r"^acme = .*$", "acme = true", config, flags=re.M))
    stopped = po("tls", "renew", data=data, check=False)

    assert off.returncode == 1 and "acme is off" in off.stderr and "certbot renew" in off.stderr
    assert stopped.returncode == 1 and "No postoffice serve is running" in stopped.stderr
    assert "Traceback" not in off.stderr + stopped.stderr
