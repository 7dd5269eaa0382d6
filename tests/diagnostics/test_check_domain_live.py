"""`check domain` with the live connections (diagnostics/tls_probe.py's probe_mx) to each MX
address: postoffice itself on loopback as the MX of live.checkdomain.test, its certificate made
by the test PKI (cert_kit.py); the findings of DNS and of the connection in one report."""
from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cert_kit import TestPki
from domain_kit import check, checked_data, set_config
from tls_peers import TestCa

from dns_server import DnsServers
from live_server import LiveServer
from postoffice.diagnostics.checks import Finding, Severity

MX = "mx4.checkdomain.test"
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, dns_server: DnsServers) -> Path:
    tmp = tmp_path_factory.mktemp("checklive")
    return checked_data(tmp / "data", dns_server, TestCa(tmp / "ca").ca_file)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"))


def serving(tmp: Path, cert: tuple[Path, Path]) -> LiveServer:
    return LiveServer(tmp / "server", ["smtp"], tls={"cert_file": cert[0], "key_file": cert[1]}).start()


def checked_against(data: Path, tmp: Path, port: int, ca_file: Path) -> list[Finding]:
    copy = tmp / "checker"
    shutil.copytree(data, copy)
    set_config(copy, mx_port=str(port), ca_file=f'"{ca_file}"')
    return asyncio.run(check(copy, "live", connect=True)).findings


def problems(findings: list[Finding]) -> dict[str, str]:
    return {f.id: f.severity.value for f in findings if f.severity is not Severity.OK}


@pytest.fixture
def good_server(tmp_path: Path, pki: TestPki) -> Iterator[LiveServer]:
    server = serving(tmp_path, pki.server(MX))
    yield server
    server.stop()


def test_a_good_mx_adds_its_live_checks_and_no_problem(data: Path, tmp_path: Path, pki: TestPki,
                                                       good_server: LiveServer) -> None:
    findings = checked_against(data, tmp_path, good_server.ports["smtp"], pki.ca_file)

    assert problems(findings) == {}, [f for f in findings if f.severity is not Severity.OK]
    assert {f.id for f in findings} >= {"mx-reachable", "tls-valid", "spf-mx-not-covered", "dkim-probe"}
    assert any(f.id == "mx-reachable" and "127.0.0.1" in f.problem for f in findings)


def test_a_wrong_certificate_name_is_the_one_problem(data: Path, tmp_path: Path, pki: TestPki) -> None:
    server = serving(tmp_path, pki.server("other.checkdomain.test"))
    try:
        findings = checked_against(data, tmp_path, server.ports["smtp"], pki.ca_file)
    finally:
        server.stop()

    assert problems(findings) == {"tls-name-mismatch": "error"}


def test_a_closed_port_is_the_one_problem(data: Path, tmp_path: Path, pki: TestPki) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    findings = checked_against(data, tmp_path, port, pki.ca_file)

    assert problems(findings) == {"mx-unreachable": "error"}
