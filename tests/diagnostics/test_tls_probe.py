"""probe_tls / probe_mx against postoffice's own listeners, serving certificates made here (a test
root and intermediate, cert_kit.py): a good chain, the wrong name, the intermediate left out, and
one expiring in 10 days; and against raw peers that break before TLS. Each gives its finding id."""
from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cert_kit import TestPki

from live_server import LiveServer
from postoffice.diagnostics.checks import Severity, errors
from postoffice.diagnostics.tls_probe import ProbeError, probe_mx, probe_tls, tls_findings

MX = "mx.example.test"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def servers(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LiveServer]]:
    """One postoffice per certificate, each with SMTP (STARTTLS), IMAPS and POP3 (STLS)."""
    variants = {
        "good": pki.server(MX),
        "wrong-name": pki.server("other.example.test"),
        "incomplete": pki.server(MX, chain=False),
        "expiring": pki.server(MX, days=10),
    }
    running: dict[str, LiveServer] = {}
    try:
        for label, (cert, key) in variants.items():
            server = LiveServer(tmp_path_factory.mktemp(label) / "data", ["smtp", "imaps", "pop3"],
                                tls={"cert_file": cert, "key_file": key})
            running[label] = server.start()
        yield running
    finally:
        for server in running.values():
            server.stop()


def ids(findings: list) -> set[str]:  # type: ignore[type-arg]
    return {f.id for f in findings if f.severity is not Severity.OK}


async def test_good_chain_over_starttls_is_valid(servers: dict[str, LiveServer], pki: TestPki) -> None:
    port = servers["good"].ports["smtp"]
    probe = await probe_tls("127.0.0.1", port, "smtp", name=MX, ca_file=pki.ca_file)
    assert probe.chain_status == "trusted"
    assert probe.banner.startswith("220 ")
    assert [c.subject for c in probe.chain] == [f"CN={MX}", "CN=postoffice test intermediate"]
    assert probe.chain[0].names == (MX,)
    assert probe.version in ("TLSv1.2", "TLSv1.3") and probe.cipher
    offered = {v.version: v.offered for v in probe.versions}
    assert offered["TLS 1.2"] is True and offered["TLS 1.3"] is True
    assert offered["TLS 1.0"] is not True and offered["TLS 1.1"] is not True  # [tls] min_version 1.2
    findings = tls_findings(probe)
    assert [(f.id, f.severity) for f in findings] == [("tls-valid", Severity.OK)]


async def test_only_the_root_known_still_verifies_a_full_chain(servers: dict[str, LiveServer],
                                                              pki: TestPki) -> None:
    probe = await probe_tls("127.0.0.1", servers["good"].ports["smtp"], "smtp", name=MX,
                            ca_file=pki.root_file, versions=False)
    assert probe.chain_status == "trusted"


async def test_wrong_name_is_a_name_mismatch(servers: dict[str, LiveServer], pki: TestPki) -> None:
    probe = await probe_tls("127.0.0.1", servers["wrong-name"].ports["smtp"], "smtp", name=MX,
                            ca_file=pki.ca_file, versions=False)
    findings = tls_findings(probe)
    assert ids(errors(findings)) == {"tls-name-mismatch"}
    assert "other.example.test" in errors(findings)[0].problem


async def test_missing_intermediate_is_an_incomplete_chain(servers: dict[str, LiveServer],
                                                           pki: TestPki) -> None:
    probe = await probe_tls("127.0.0.1", servers["incomplete"].ports["smtp"], "smtp", name=MX,
                            ca_file=pki.ca_file, versions=False)
    assert len(probe.chain) == 1 and probe.chain_status == "incomplete"
    assert ids(tls_findings(probe)) == {"tls-chain-incomplete"}


async def test_missing_intermediate_unknown_anywhere_is_untrusted(servers: dict[str, LiveServer],
                                                                  pki: TestPki) -> None:
    """Without the intermediate nothing proves the chain incomplete: untrusted, fix names both."""
    probe = await probe_tls("127.0.0.1", servers["incomplete"].ports["smtp"], "smtp", name=MX,
                            ca_file=pki.root_file, versions=False)
    findings = tls_findings(probe)
    assert ids(findings) == {"tls-untrusted"}
    assert "fullchain.pem" in errors(findings)[0].fix


async def test_certificate_expiring_in_10_days_is_a_warning(servers: dict[str, LiveServer],
                                                            pki: TestPki) -> None:
    probe = await probe_tls("127.0.0.1", servers["expiring"].ports["smtp"], "smtp", name=MX,
                            ca_file=pki.ca_file, versions=False)
    findings = tls_findings(probe)
    assert [(f.id, f.severity) for f in findings] == [("tls-expiring", Severity.WARNING)]
    assert "expires in 9 days" in findings[0].problem or "expires in 10 days" in findings[0].problem


async def test_expired_is_judged_by_date_not_by_the_chain(servers: dict[str, LiveServer],
                                                          pki: TestPki) -> None:
    """A clock a year ahead: the leaf is expired, the chain still verifies (dates apart)."""
    probe = await probe_tls("127.0.0.1", servers["good"].ports["smtp"], "smtp", name=MX,
                            ca_file=pki.ca_file, versions=False)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    assert ids(tls_findings(probe, now=later)) == {"tls-expired"}


async def test_imaps_and_pop3_stls(servers: dict[str, LiveServer], pki: TestPki) -> None:
    server = servers["good"]
    imaps = await probe_tls("127.0.0.1", server.ports["imaps"], None, name=MX, ca_file=pki.ca_file,
                            versions=False)
    pop3 = await probe_tls("127.0.0.1", server.ports["pop3"], "pop3", name=MX, ca_file=pki.ca_file,
                           versions=False)
    assert imaps.chain_status == pop3.chain_status == "trusted"
    assert pop3.banner.startswith("+OK")


async def test_self_signed_certificate_is_untrusted(tmp_path: Path) -> None:
    """`postoffice init`'s self-signed certificate: untrusted unless given as the CA file."""
    server = LiveServer(tmp_path / "data", ["smtp"]).start()
    try:
        port = server.ports["smtp"]
        probe = await probe_tls("127.0.0.1", port, "smtp", name="mail.example.test", versions=False)
        findings = tls_findings(probe)
        assert ids(findings) == {"tls-untrusted"}
        assert "self-signed" in findings[0].problem
        trusted = await probe_tls("127.0.0.1", port, "smtp", name="mail.example.test",
                                  ca_file=tmp_path / "data" / "tls" / "cert.pem", versions=False)
        assert trusted.chain_status == "trusted"
    finally:
        server.stop()


# --- probe_mx: the findings check domain reports --------------------------------------------------


async def test_probe_mx_good(servers: dict[str, LiveServer], pki: TestPki) -> None:
    findings = await probe_mx(MX, servers["good"].ports["smtp"], address="127.0.0.1",
                              ca_file=pki.ca_file)
    assert errors(findings) == []
    assert {f.id for f in findings} == {"mx-reachable", "tls-valid"}


async def test_probe_mx_wrong_name(servers: dict[str, LiveServer], pki: TestPki) -> None:
    findings = await probe_mx(MX, servers["wrong-name"].ports["smtp"], address="127.0.0.1",
                              ca_file=pki.ca_file)
    assert [f.id for f in errors(findings)] == ["tls-name-mismatch"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_probe_mx_closed_port_is_unreachable() -> None:
    findings = await probe_mx(MX, closed_port(), address="127.0.0.1", timeout=10)
    assert [f.id for f in findings] == ["mx-unreachable"]
    assert "connection refused" in findings[0].problem
    assert "firewall" in findings[0].fix


@asynccontextmanager
async def raw_peer(script: dict[bytes, bytes], banner: bytes) -> AsyncIterator[int]:
    """An SMTP peer on loopback answering each command (by its first word) from ``script``."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(banner)
        while line := await reader.readline():
            reply = script.get(line.split()[0].upper() if line.split() else b"", b"500 what\r\n")
            writer.write(reply)
            if reply.startswith(b"221"):
                break
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_probe_mx_without_starttls() -> None:
    script = {b"EHLO": b"250-peer\r\n250 PIPELINING\r\n", b"QUIT": b"221 bye\r\n"}
    async with raw_peer(script, b"220 peer ESMTP\r\n") as port:
        findings = await probe_mx(MX, port, address="127.0.0.1", timeout=10)
    assert [f.id for f in findings] == ["mx-no-starttls"]
    assert "does not offer STARTTLS" in findings[0].problem


async def test_probe_mx_refusing_banner_is_unreachable() -> None:
    async with raw_peer({}, b"554 5.7.1 go away\r\n") as port:
        findings = await probe_mx(MX, port, address="127.0.0.1", timeout=10)
    assert [f.id for f in findings] == ["mx-unreachable"]
    assert "554" in findings[0].problem


async def test_probe_mx_handshake_garbage() -> None:
    """STARTTLS answered 220, then plaintext instead of a handshake: tls-handshake-failed."""
    script = {b"EHLO": b"250-peer\r\n250 STARTTLS\r\n", b"STARTTLS": b"220 go ahead\r\n"}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 peer\r\n")
        while line := await reader.readline():
            word = line.split()[0].upper()
            writer.write(script[word])
            if word == b"STARTTLS":
                await reader.read(1)
                writer.write(b"this is not TLS\r\n" * 20)
                await writer.drain()
                break
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        findings = await probe_mx(MX, server.sockets[0].getsockname()[1], address="127.0.0.1", timeout=10)
    finally:
        server.close()
    assert [f.id for f in findings] == ["tls-handshake-failed"]


async def test_probe_tls_silent_server_times_out() -> None:
    async with raw_peer({}, b"") as port:
        with pytest.raises(ProbeError) as raised:
            await probe_tls("127.0.0.1", port, "smtp", timeout=1, versions=False)
    assert raised.value.stage == "greeting" and "no answer within 1 s" in raised.value.reason


async def test_unusable_ca_file_is_the_callers_error_not_a_finding(tmp_path: Path) -> None:
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    for ca_file in (tmp_path / "missing.pem", tmp_path / "empty.pem"):
        with pytest.raises(ValueError, match="The CA file"):
            await probe_mx(MX, closed_port(), address="127.0.0.1", ca_file=ca_file, timeout=5)
