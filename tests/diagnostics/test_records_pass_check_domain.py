"""The issue's promise: what `postoffice domain records` prints, published into a test zone as is
(and the PTR it asks for published as a hosting provider would), gives `postoffice check domain`
no error and no warning: our own advice never shows up as a finding. postoffice itself answers on
loopback as the MX (SMTP) and as mta-sts.<domain> (HTTPS, the MTA-STS policy), with a certificate
of the test PKI for both names."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cert_kit import TestPki

from cli_run import po
from dns_server import DnsServers
from live_server import LiveServer
from postoffice.app import LISTENER_FACTORIES
from postoffice.config import ListenAddress
from postoffice.net.running import RunningListener

DOMAIN = "published.test"
HOST = f"mail.{DOMAIN}"
ADDRESS = "127.0.0.62"  # its own reverse zone below: no other test's PTR changes
pytestmark = pytest.mark.timeout(240)


def set_keys(data: Path, **keys: str) -> None:
    config = data / "postoffice.toml"
    text = config.read_text()
    for key, value in keys.items():
        text, found = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
        assert found == 1, key
    config.write_text(text)


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    return TestPki(tmp_path / "pki")


@pytest.fixture
def certificate(pki: TestPki) -> tuple[Path, Path]:
    return pki.server(HOST, f"mta-sts.{DOMAIN}")


@pytest.fixture
def mx(tmp_path: Path, certificate: tuple[Path, Path]) -> Iterator[int]:
    """postoffice on ADDRESS as HOST: SMTP on a free port (the check's [outbound] mx_port), HTTPS
    on 443, where senders fetch the MTA-STS policy."""
    cert, key = certificate
    server = LiveServer(tmp_path / "server", [], server={"hostname": HOST},
                        tls={"cert_file": cert, "key_file": key}).start()
    assert server.services is not None
    services = server.services
    listeners: list[RunningListener] = []
    try:
        for protocol, port in (("smtp", 0), ("https", 443)):
            listeners.append(server.call(LISTENER_FACTORIES[protocol](services, ListenAddress(ADDRESS, port))))
        yield int(listeners[0].address.rsplit(":", 1)[1])
    finally:
        for listener in listeners:
            server.call(listener.close())
        server.stop()


def test_published_records_give_check_domain_no_error(tmp_path: Path, dns_server: DnsServers, pki: TestPki,
                                                        certificate: tuple[Path, Path], mx: int) -> None:
    data = tmp_path / "data"
    po("init", "--domain", DOMAIN, "--hostname", HOST, data=data)
    po("user", "add", f"postmaster@{DOMAIN}", "--password-stdin", data=data, stdin="a-long-passphrase\n")
    cert, key = certificate
    set_keys(data, public_addresses=f'["{ADDRESS}"]', nameservers=f'["{dns_server.nameserver}"]',
             authoritative_port=str(dns_server.nsd_port), mx_port=str(mx), ca_file=f'"{pki.ca_file}"',
             cert_file=f'"{cert}"', key_file=f'"{key}"')

    zone = po("domain", "records", DOMAIN, "--format", "zone", data=data).stdout
    printed = json.loads(po("domain", "records", DOMAIN, "--format", "json", data=data).stdout)
    # The zone as printed, after the SOA, NS and name server address every zone has of its own.
    dns_server.add_zone(DOMAIN, f"@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n{zone}")
    (ptr,) = [r for r in printed["records"] if r["type"] == "PTR"]
    assert (ptr["name"], ptr["value"], ptr["placement"]) == ("62.0.0.127.in-addr.arpa", f"{HOST}.", "provider")
    dns_server.add_zone(ptr["name"], f"@ PTR {ptr['value']}\n")  # what the hosting provider publishes

    result = po("check", "domain", DOMAIN, "--json", data=data, check=False, timeout=180)
    findings = json.loads(result.stdout)["findings"]
    assert [f for f in findings if f["severity"] != "ok"] == []
    assert result.returncode == 0
    checked = {f["id"] for f in findings}
    assert {"mx-missing", "ptr-mismatch", "spf-syntax", "spf-mx-not-covered", "dkim-mismatch", "dkim-probe",
            "dmarc-none", "mta-sts-mismatch", "postmaster-missing", "mx-reachable", "tls-valid"} <= checked, checked
    (sts,) = [f for f in findings if f["id"] == "mta-sts-mismatch"]
    assert "mode: enforce" in sts["problem"]  # fetched from the web listener: the certificate verifies
