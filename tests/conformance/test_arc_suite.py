"""ARC validation (RFC 8617 §5.2) against external suites, DNS served from memory:

- ValiMail's arc_test_suite, validation part (`arc-draft-validation-tests.yml`, 171 cases, each a
  message and the expected chain validation status `cv`), all run: the 2 rsa-sha1 cases that
  other runners skip (Perl Mail::DKIM does) expect "fail", which RFC 8301 gives too. Three cases
  give an empty `cv` for a chain whose newest seal says cv=fail; RFC 8617 §5.2 step 2 makes that
  "fail".
- Stalwart mail-auth's `arc/NNN.txt`: real sealed mail (Google; an ietf.org list), expected to
  pass. arc/002's i=1 set is signed ed25519-sha256; mailauth.arc accepts the DKIM algorithms
  (RFC 8463), as Stalwart does (dkimpy does not).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.mailauth.memory_resolver import MemoryResolver

from conftest import corpora_dir
from postoffice.mailauth.arc import check_arc

VALIMAIL = "arc-valimail-testsuite/arc-draft-validation-tests.yml"


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def _valimail_cases() -> list[Any]:
    base = corpora_dir()
    if base is None or not (base / VALIMAIL).is_file():
        return [pytest.param(None, None, "", id="valimail-suite-missing")]
    cases = []
    for scenario in yaml.safe_load_all((base / VALIMAIL).read_text(encoding="utf-8")):
        records = {name: {"TXT": [value]} for name, value in scenario["txt-records"].items()}
        for name, case in scenario["tests"].items():
            expected = (case.get("cv") or "fail").strip().lower()
            cases.append(pytest.param(records, case["message"], expected, id=name))
    return cases


def _stalwart_cases() -> list[Any]:
    base = corpora_dir()
    files = sorted((base / "mail-auth-stalwart" / "arc").glob("*.txt")) if base else []
    if not files:
        return [pytest.param(None, id="stalwart-arc-missing")]
    return [pytest.param(f, id=f"stalwart-{f.stem}") for f in files]


@pytest.mark.parametrize("records, message, expected", _valimail_cases())
async def test_valimail_validation(records: dict[str, Any] | None, message: str | None,
                                   expected: str, corpora: Path) -> None:
    if records is None or message is None:
        pytest.fail(f"{VALIMAIL} is missing from {corpora}")
    result = await check_arc(MemoryResolver(records), _crlf(message))
    assert result.result == expected, result.problem


@pytest.mark.parametrize("path", _stalwart_cases())
async def test_stalwart_real_chains_pass(path: Path | None, corpora: Path) -> None:
    if path is None:
        pytest.fail(f"mail-auth-stalwart/arc is missing from {corpora}")
    text = path.read_text(encoding="utf-8")
    dns_part, _, message = text.partition("\n\n")
    records: dict[str, dict[str, list[str]]] = {}
    for line in dns_part.splitlines():
        name, _, value = line.partition(" ")
        records.setdefault(name, {"TXT": []})["TXT"].append(value)
    result = await check_arc(MemoryResolver(records), _crlf(message))
    assert result.result == "pass", result.problem
    assert result.instances >= 1 and len(result.sealers) == result.instances
