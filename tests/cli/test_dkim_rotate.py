"""`postoffice dkim rotate|retire|list`, run as a user would: a new selector pair, its records
printed, the old key signing until it is retired, retired keys kept in keys/retired/."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from tests.mailauth.memory_resolver import MemoryResolver

from cli_run import po
from postoffice.config import load_config
from postoffice.mailauth.dkim import verify_dkim
from postoffice.mailauth.dkimkeys import dkim_public_record
from postoffice.queue.signing import MessageSigner

MESSAGE = b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello.\r\n"
MONTH = dt.datetime.now(dt.UTC).strftime("%Y%m")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    po("init", "--domain", "example.org", "--hostname", "mail.example.org", data=d)
    return d


def printed_records(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^  (\S+\._domainkey\.\S+)  (v=DKIM1; .*)$", stdout, re.MULTILINE))


def signed_selectors(data: Path, records: dict[str, str]) -> list[tuple[str, str]]:
    """Sign MESSAGE as the queue would for this data directory; verify it with `records`."""
    async def run() -> list[tuple[str, str]]:
        async def local(domain: str) -> bool:
            return domain == "example.org"  # the store's answer is not what this test is about
        signer = MessageSigner(data, default_selector=load_config(data).dkim.selector,
                               is_local_domain=local)
        signed = await signer.sign(MESSAGE, "alice@example.org")
        resolver = MemoryResolver({name: {"TXT": [value]} for name, value in records.items()})
        return sorted((r.selector, r.result) for r in await verify_dkim(resolver, signed))
    return asyncio.run(run())


def test_rotate_prints_new_records_and_keeps_signing_with_the_old_key_until_retire(data: Path) -> None:
    old = {f"{s}._domainkey.example.org": dkim_public_record(data / "keys" / f"example.org.{s}.pem")
           for s in ("mail", "mail-ed25519")}
    assert signed_selectors(data, old) == [("mail", "pass"), ("mail-ed25519", "pass")]

    out = po("dkim", "rotate", "example.org", data=data).stdout
    new = printed_records(out)
    assert list(new) == [f"{MONTH}._domainkey.example.org", f"{MONTH}-ed25519._domainkey.example.org"]
    assert new[f"{MONTH}._domainkey.example.org"].startswith("v=DKIM1; k=rsa; p=")
    assert new[f"{MONTH}-ed25519._domainkey.example.org"].startswith("v=DKIM1; k=ed25519; p=")
    assert "still signed with mail" in out and "postoffice dkim retire example.org mail" in out
    assert (data / "keys" / f"example.org.{MONTH}.pem").exists()
    # the new key is not published yet: mail keeps the old selector
    assert signed_selectors(data, {**old, **new}) == [("mail", "pass"), ("mail-ed25519", "pass")]

    listed = json.loads(po("dkim", "list", "example.org", "--json", data=data).stdout)
    assert [(s["selector"], s["state"]) for s in listed["selectors"]] == [("mail", "signing"), (MONTH, "new")]

    out = po("dkim", "retire", "example.org", "mail", data=data).stdout
    assert f"Mail from example.org is signed with {MONTH} now" in out
    assert signed_selectors(data, {**old, **new}) == [(MONTH, "pass"), (f"{MONTH}-ed25519", "pass")]
    assert not (data / "keys" / "example.org.mail.pem").exists()
    assert (data / "keys" / "retired" / "example.org.mail.pem").exists()  # kept, never deleted
    assert (data / "keys" / "retired" / "example.org.mail-ed25519.pem").exists()
    listed = json.loads(po("dkim", "list", "example.org", "--json", data=data).stdout)
    assert [(s["selector"], s["state"]) for s in listed["selectors"]] == [("mail", "retired"), (MONTH, "signing")]
    assert listed["key_files"]["mail"] == [str(data / "keys" / "retired" / "example.org.mail.pem"),
                                           str(data / "keys" / "retired" / "example.org.mail-ed25519.pem")]

    log = (data / "admin.log").read_text()
    assert "dkim rotate" in log and "dkim retire" in log


def test_a_second_rotation_in_a_month_gets_its_own_name_and_json(data: Path) -> None:
    first = json.loads(po("dkim", "rotate", "example.org", "--json", data=data).stdout)
    assert first["selector"] == MONTH and first["signing"] == "mail"
    assert [r["name"] for r in first["records"]] == [f"{MONTH}._domainkey.example.org",
                                                     f"{MONTH}-ed25519._domainkey.example.org"]
    po("dkim", "retire", "example.org", "mail", data=data)
    second = json.loads(po("dkim", "rotate", "example.org", "--json", data=data).stdout)
    assert second["selector"] == f"{MONTH}b" and second["signing"] == MONTH


def test_refusals_are_one_sentence_and_change_nothing(data: Path) -> None:
    keys_before = sorted(p.name for p in (data / "keys").rglob("*"))
    cases = [
        (["dkim", "retire", "example.org", "mail"], "would leave example.org's mail unsigned"),
        (["dkim", "retire", "example.org", "nosuch"], "example.org has no DKIM selector nosuch"),
        (["dkim", "rotate", "example.net"], "example.net is not a domain served here"),
        (["dkim", "list", "bad..name"], "error:"),
    ]
    for args, expected in cases:
        result = po(*args, data=data, check=False)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 3  # one sentence (wrapped at most)
    assert sorted(p.name for p in (data / "keys").rglob("*")) == keys_before

    po("dkim", "rotate", "example.org", data=data)
    again = po("dkim", "rotate", "example.org", data=data, check=False)
    assert again.returncode == 1 and f"already has a new selector waiting ({MONTH})" in again.stderr
    # abandoning the new selector (retiring it) is allowed; the old one keeps signing
    po("dkim", "retire", "example.org", f"{MONTH}-ed25519", data=data)
    listed = json.loads(po("dkim", "list", "example.org", "--json", data=data).stdout)
    assert [(s["selector"], s["state"]) for s in listed["selectors"]] == [("mail", "signing"), (MONTH, "retired")]
    assert (data / "keys" / "retired" / f"example.org.{MONTH}.pem").exists()
    retired_twice = po("dkim", "retire", "example.org", MONTH, data=data, check=False)
    assert retired_twice.returncode == 1 and "already retired" in retired_twice.stderr


def test_help_has_an_example() -> None:
    for command in ("rotate", "retire", "list"):
        assert "Example: postoffice dkim " + command in po("dkim", command, "--help").stdout
