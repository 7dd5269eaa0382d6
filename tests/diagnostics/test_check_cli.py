"""`postoffice check spf | message | blocklists` run as a user would: a data directory whose
[dns] points at the loopback DNS server, `--json` shapes and exit statuses."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.diagnostics.message_kit import TRUSTED, compose, received, signed

from cli_run import po
from dns_server import DnsServers
from postoffice.mailauth.dkim_crypto import SigningKey

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, dns_server: DnsServers) -> Path:
    directory = tmp_path_factory.mktemp("check") / "data"
    po("init", "--domain", "example.org", "--hostname", TRUSTED, data=directory)
    config = directory / "postoffice.toml"
    text = config.read_text()
    for key, value in (("nameservers", f'["{dns_server.nameserver}"]'), ("timeout", "1.0"),
                       ("blocklists", '["dnsbl.test"]'), ("domain_blocklists", '["dbl.test"]')):
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
    config.write_text(text)
    return directory


def run_json(*args: str, data: Path, status: int) -> dict[str, Any]:
    result = po("check", *args, "--json", data=data, check=False)
    assert result.returncode == status, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    for finding in report["findings"]:
        assert {"id", "severity", "problem", "fix"} <= finding.keys()
        assert finding["severity"] in ("error", "warning", "ok")
    return report


def errors(report: dict[str, Any]) -> list[str]:
    return [f["id"] for f in report["findings"] if f["severity"] == "error"]


def test_check_spf_json_counts_lookups_and_exits_1_on_an_error(data: Path) -> None:
    report = run_json("spf", "many.spf.test", data=data, status=1)
    assert errors(report) == ["spf-too-many-lookups"]
    assert report["lookups"] == 11 and report["record"] == "v=spf1 include:chain1.spf.test -all"
    assert report["terms"][0] == {"term": "include:chain1.spf.test", "lookups": 11, "depth": 0,
                                  "record_of": "many.spf.test",
                                  "meaning": report["terms"][0]["meaning"]}
    clean = run_json("spf", "good.spf.test", "--ip", "127.0.0.31", data=data, status=0)
    assert clean["result"]["result"] == "pass"
    assert clean["result"]["decided_by"] == "include:_spf.provider.spf.test > ip4:127.0.0.30/31"
    failing = run_json("spf", "hardfail.spf.test", "--ip", "127.0.0.99", "--sender", "a@hardfail.spf.test",
                       data=data, status=1)
    assert errors(failing) == ["spf-result"] and failing["result"]["decided_by"] == "-all"


def test_check_spf_explains_a_record_without_a_data_directory(tmp_path: Path) -> None:
    result = po("check", "spf", "v=spf1 +a mx ~all", data=tmp_path / "none", check=False)
    assert result.returncode == 0, result.stderr
    assert "own addresses" in result.stdout and "softfail" in result.stdout
    plus = po("check", "spf", "v=spf1 mx +all", data=tmp_path / "none", check=False)
    assert plus.returncode == 1 and "spf-plus-all" in plus.stdout
    bad_ip = po("check", "spf", "v=spf1 mx -all", "--ip", "300.1.2.3", data=tmp_path / "none", check=False)
    assert bad_ip.returncode == 1 and "is not an IP address" in bad_ip.stderr
    assert "Traceback" not in bad_ip.stderr
    lonely = po("check", "spf", "example.org", "--sender", "a@example.org", data=tmp_path / "none", check=False)
    assert lonely.returncode == 1 and "--ip" in lonely.stderr


def test_check_message_verdicts_and_exit_status(data: Path, tmp_path: Path, dkim_key: SigningKey) -> None:
    genuine = tmp_path / "genuine.eml"
    genuine.write_bytes(received(signed(compose("Alice <alice@message.test>"), dkim_key),
                                 "127.0.0.50", "alice@message.test"))
    report = run_json("message", str(genuine), data=data, status=0)
    assert report["verdict"] == "genuine" and report["client_ip"] == "127.0.0.50"
    assert report["dmarc"] == {"result": "pass", "policy": "reject", "spf_aligned": True,
                               "dkim_aligned": True}
    forged = tmp_path / "paypal.eml"
    forged.write_bytes(received(compose("PayPal <service@paypal.com>"), "127.0.0.66",
                                "service@paypal.com"))
    report = run_json("message", str(forged), data=data, status=1)
    assert report["verdict"] == "forged" and errors(report) == ["message-brand-unauthenticated"]
    text = po("check", "message", str(forged), data=data, check=False)
    assert text.returncode == 1 and "FORGED" in text.stdout
    elsewhere = run_json("message", str(genuine), "--trusted-host", "mx.other.test", data=data, status=0)
    assert elsewhere["verdict"] == "suspicious" and elsewhere["client_ip"] == ""
    missing = po("check", "message", str(tmp_path / "nope.eml"), data=data, check=False)
    assert missing.returncode == 1 and "cannot be read" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_check_blocklists_json_and_exit_status(data: Path) -> None:
    listed = run_json("blocklists", "127.0.0.2", data=data, status=1)
    assert listed["ip_lists"] == ["dnsbl.test"] and listed["defaults_used"] is False
    [finding] = listed["findings"]
    assert finding["id"] == "dnsbl-listed" and finding["severity"] == "error"
    assert "https://dnsbl.test/?127.0.0.2" in finding["problem"]
    clean = run_json("blocklists", "127.0.0.7", data=data, status=0)
    assert [f["severity"] for f in clean["findings"]] == ["ok"]
    domain = run_json("blocklists", "spammy.message.test", data=data, status=1)
    assert "spammy.message.test on dbl.test" in [f["subject"] for f in domain["findings"]]
