"""`postoffice check tls` run as a user would, against postoffice itself serving the test PKI's
certificates (cert_kit.py) and against a Debian Postfix on loopback serving the same ones plus
an expired certificate (postoffice refuses to start with one, so only Postfix can serve it)."""
from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cert_kit import TestPki

from cli_run import po
from live_server import LiveServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "queue"))  # outbound_kit's Postfix
from outbound_kit import Postfix, eventually

MX = "mx.example.test"
pytestmark = pytest.mark.timeout(300)

# certificate variant -> the ids `check tls` must report (besides ok findings), all errors
# except tls-expiring, a warning.
EXPECTED = {
    "good": set(),
    "wrong-name": {"tls-name-mismatch"},
    "incomplete": {"tls-chain-incomplete"},
    "expiring": {"tls-expiring"},
    "expired": {"tls-expired"},
}


def variants(pki: TestPki) -> dict[str, tuple[Path, Path]]:
    return {
        "good": pki.server(MX),
        "wrong-name": pki.server("other.example.test"),
        "incomplete": pki.server(MX, chain=False),
        "expiring": pki.server(MX, days=10),
        "expired": pki.server(MX, expired=True),
    }


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"))


def check_tls(port: int, *args: str, pki: TestPki) -> tuple[int, dict[str, Any]]:
    done = po("check", "tls", f"127.0.0.1:{port}", "--starttls", "smtp", "--name", MX,
              "--ca-file", str(pki.ca_file), "--json", *args, check=False, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def problems(report: dict[str, Any]) -> set[str]:
    return {f["id"] for f in report["findings"] if f["severity"] != "ok"}


@pytest.fixture(scope="module")
def postoffice_ports(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    servers = []
    ports = {}
    try:
        for label, (cert, key) in variants(pki).items():
            if label == "expired":
                continue
            server = LiveServer(tmp_path_factory.mktemp(label) / "data", ["smtp"],
                                tls={"cert_file": cert, "key_file": key}).start()
            servers.append(server)
            ports[label] = server.ports["smtp"]
        yield ports
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize("label", [k for k in EXPECTED if k != "expired"])
def test_check_tls_against_postoffice(label: str, postoffice_ports: dict[str, int], pki: TestPki) -> None:
    code, report = check_tls(postoffice_ports[label], "--no-versions", pki=pki)
    assert problems(report) == EXPECTED[label]
    assert code == (1 if any(f["severity"] == "error" for f in report["findings"]) else 0)
    assert code == (0 if label in ("good", "expiring") else 1)
    assert report["chain"][0]["subject"].startswith("CN=")


def test_check_tls_shows_versions_chain_names_and_expiry(postoffice_ports: dict[str, int], pki: TestPki) -> None:
    done = po("check", "tls", f"127.0.0.1:{postoffice_ports['good']}", "--starttls", "smtp", "--name", MX,
              "--ca-file", str(pki.ca_file), check=False, timeout=120)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for text in ("Banner:     220 ", "TLS 1.0 refused", "TLS 1.2 offered", "TLS 1.3 offered",
                 f"0. CN={MX}  (issued by CN=postoffice test intermediate)", f"names: {MX}",
                 "1. CN=postoffice test intermediate  (issued by CN=postoffice test root)",
                 "Chain:      verifies against the trusted CAs", f"Name:       {MX} is covered",
                 "tls-valid", "errors: 0, warnings: 0, ok: 1"):
        assert text in out, f"{text!r} not in:\n{out}"


def test_check_tls_closed_port_is_one_finding() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for starttls, expected in (("smtp", "mx-unreachable"), ("none", "tls-unreachable")):
        done = po("check", "tls", f"127.0.0.1:{port}", "--starttls", starttls, "--json", check=False)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        findings = json.loads(done.stdout)["findings"]
        assert [f["id"] for f in findings] == [expected]
        assert "connection refused" in findings[0]["problem"]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def postfix_ports(pki: TestPki) -> Iterator[dict[str, int]]:
    certificates = variants(pki)
    main_port, *ports = free_ports(len(certificates) + 1)
    by_label = dict(zip(certificates, ports, strict=True))
    postfix = Postfix("127.0.0.1", main_port, "example.test",
                      tls_listeners={by_label[label]: files for label, files in certificates.items()})
    postfix.start()
    try:
        for port in by_label.values():
            eventually(lambda port=port: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 30,
                       f"Postfix listening on {port}")
        yield by_label
    finally:
        postfix.stop()


@pytest.mark.parametrize("label", list(EXPECTED))
def test_check_tls_against_postfix(label: str, postfix_ports: dict[str, int], pki: TestPki) -> None:
    code, report = check_tls(postfix_ports[label], pki=pki)
    assert problems(report) - {"tls-old-version"} == EXPECTED[label]
    assert code == (0 if label in ("good", "expiring") else 1)
    assert report["banner"].startswith("220 ")
