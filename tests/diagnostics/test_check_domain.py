"""`postoffice check domain`: one loopback zone (tests/zones/checkdomain.test.zone) with a clean
domain and one broken domain per finding id; each broken domain reports its expected id as its
only problem, the clean domain none. DNS from the real NSD/Unbound on loopback (the domain's
authoritative server asked directly), MTA-STS policies over HTTPS from a test CA's server, DKIM
keys from tests/diagnostics/keys/."""
from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from domain_kit import CASES, POLICIES, ZONE, check, checked_data, domain, set_config
from tls_peers import PolicyServer, TestCa

from cli_run import po
from dns_server import DnsServers
from postoffice.diagnostics.checks import Finding, Severity

TEST_SECONDS = 120


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, dns_server: DnsServers) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("checkdomain")
    ca = TestCa(tmp / "ca")
    with PolicyServer(ca, POLICIES):
        yield checked_data(tmp / "data", dns_server, ca.ca_file)


def problems(findings: list[Finding]) -> dict[str, str]:
    return {f.id: f.severity.value for f in findings if f.severity is not Severity.OK}


@pytest.mark.timeout(TEST_SECONDS)
def test_the_clean_domain_has_no_problem_and_says_what_it_checked(data: Path, dns_server: DnsServers) -> None:
    report = asyncio.run(check(data, "clean"))

    assert problems(report.findings) == {}, [f for f in report.findings if f.severity is not Severity.OK]
    checked = {f.id for f in report.findings}
    assert {"dns-authoritative", "mx-missing", "mx-no-address", "ptr-mismatch", "spf-syntax",
            "spf-too-many-lookups", "spf-mx-not-covered", "dkim-mismatch", "dkim-probe", "dmarc-none",
            "mta-sts-mismatch", "postmaster-missing", "dnsbl-listed"} <= checked
    # The authoritative server answered, and is named; both MX addresses were checked apart.
    assert report.servers == [f"ns.{ZONE} (127.0.0.1)"]
    reverse = {f.subject for f in report.findings if f.id == "ptr-mismatch"}
    assert reverse == {"127.0.0.1", "2001:db8::10"}


@pytest.mark.timeout(TEST_SECONDS)
@pytest.mark.parametrize("case", CASES)
def test_each_broken_domain_reports_its_one_fault(data: Path, case: str) -> None:
    report = asyncio.run(check(data, case))

    expected = case.removesuffix("-v6")
    found = problems(report.findings)
    assert list(found) == [expected], [f for f in report.findings if f.severity is not Severity.OK]
    for finding in report.findings:
        if finding.id == expected and finding.severity is not Severity.OK:
            assert finding.problem.endswith(".") and finding.fix.endswith("."), finding
            assert "\n" not in finding.problem + finding.fix


@pytest.mark.timeout(TEST_SECONDS)
def test_the_ipv6_address_is_judged_apart_from_the_ipv4_one(data: Path) -> None:
    report = asyncio.run(check(data, "ptr-missing-v6"))

    by_address = {f.subject: f.id for f in report.findings if f.id.startswith("ptr-")}
    assert by_address == {"127.0.0.1": "ptr-mismatch", "2001:db8::12": "ptr-missing"}
    assert [f.severity for f in report.findings if f.subject == "127.0.0.1" and f.id == "ptr-mismatch"] == [Severity.OK]


@pytest.mark.timeout(TEST_SECONDS)
def test_cli_json_shape_and_exit_status(data: Path) -> None:
    clean = po("check", "domain", domain("clean"), "--no-connect", "--json", data=data)
    broken = po("check", "domain", domain("spf-plus-all"), "--no-connect", "--json", data=data, check=False)
    table = po("check", "domain", domain("spf-plus-all"), "--no-connect", data=data, check=False)

    assert clean.returncode == 0 and broken.returncode == 1, broken.stderr
    report = json.loads(broken.stdout)
    assert report["domain"] == domain("spf-plus-all")
    assert report["servers"] == [f"ns.{ZONE} (127.0.0.1)"]
    assert all({"id", "severity", "problem", "fix"} <= set(f) for f in report["findings"])
    assert [f["id"] for f in report["findings"] if f["severity"] == "error"] == ["spf-plus-all"]
    assert all(f["severity"] != "error" for f in json.loads(clean.stdout)["findings"])
    assert f"answers from ns.{ZONE} (127.0.0.1)" in table.stdout
    assert "spf-plus-all" in table.stdout and "Replace +all by ~all" in table.stdout


@pytest.mark.timeout(TEST_SECONDS)
def test_without_an_authoritative_answer_it_says_so_and_uses_the_resolver(data: Path, tmp_path: Path) -> None:
    # Nothing listens on port 9 (discard) on loopback: the zone's own server cannot be asked.
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    set_config(copy, authoritative_port="9")
    report = asyncio.run(check(copy, "clean"))

    assert problems(report.findings) == {"dns-authoritative": "warning"}
    assert report.servers == []
