"""The DMARCbis tree walk against the Public Suffix List's own test cases (psl-publicsuffix
tests.txt, "<name> <registrable domain or null>"): DMARC does not use the PSL (RFC 9989 §4.10),
but where each public suffix publishes a `psd=y` record and each registrable domain a record of
its own, the Organizational Domain found by the walk must be the PSL's registrable domain: a
signature of that domain aligns in relaxed mode, one of the suffix itself never does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.mailauth.memory_resolver import MemoryResolver

from conftest import corpora_dir
from postoffice.mailauth.dmarc import check_dmarc
from postoffice.mailauth.results import DkimResult

TESTS = "psl-publicsuffix/tests.txt"


def _a_label(name: str) -> str | None:
    try:
        return name.lower().encode("idna").decode("ascii")
    except UnicodeError:
        return None


def _cases() -> list[Any]:
    base = corpora_dir()
    if base is None or not (base / TESTS).is_file():
        return [pytest.param(None, None, id="psl-tests-missing")]
    cases = []
    for line in (base / TESTS).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) != 2 or line.startswith("//") or "null" in parts or parts[0].startswith("."):
            continue  # comments, public suffixes themselves, names that are not domains
        name, registrable = _a_label(parts[0]), _a_label(parts[1])
        if name and registrable and "." in registrable:
            cases.append(pytest.param(name, registrable, id=name))
    return cases


@pytest.mark.parametrize("name, registrable", _cases())
async def test_tree_walk_agrees_with_the_psl_given_psd_records(
        name: str | None, registrable: str | None, corpora: Path) -> None:
    if name is None or registrable is None:
        pytest.fail(f"{TESTS} is missing from {corpora}")
    suffix = registrable.split(".", 1)[1]
    resolver = MemoryResolver({
        f"_dmarc.{suffix}": {"TXT": ["v=DMARC1; p=reject; psd=y"]},
        f"_dmarc.{registrable}": {"TXT": ["v=DMARC1; p=quarantine"]},
        name: {"A": ["192.0.2.1"]},
    })
    aligned = await check_dmarc(resolver, name, None, [DkimResult("pass", registrable)])
    assert (aligned.result, aligned.policy_domain) == ("pass", registrable)
    suffix_only = await check_dmarc(resolver, name, None, [DkimResult("pass", suffix)])
    assert suffix_only.result == "fail"
