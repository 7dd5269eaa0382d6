"""`postoffice dkim rotate|retire|list`, run as a user would: rotation switches at once to the
spare pair published since `domain add`, makes a new spare and prints its records; retired keys
are kept in keys/retired/."""
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


def key_records(data: Path, *selectors: str, retired: bool = False) -> dict[str, str]:
    where = data / "keys" / ("retired" if retired else "")
    return {f"{s}._domainkey.example.org": dkim_public_record(where / f"example.org.{s}.pem")
            for s in selectors}


def test_rotate_switches_to_the_published_spare_at_once_and_makes_a_new_spare(data: Path) -> None:
    # init --domain made the signing pair "mail" and the spare MONTH, both printed to publish
    published = key_records(data, "mail", "mail-ed25519", MONTH, f"{MONTH}-ed25519")
    assert signed_selectors(data, published) == [("mail", "pass"), ("mail-ed25519", "pass")]
    listed = json.loads(po("dkim", "list", "example.org", "--json", data=data).stdout)
    assert [(s["selector"], s["state"]) for s in listed["selectors"]] == [("mail", "signing"), (MONTH, "new")]

    out = po("dkim", "rotate", "example.org", data=data).stdout
    assert f"Mail from example.org is signed with {MONTH} from now on" in out
    assert "mail is retired" in out
    # no waiting for DNS: the very next message is signed with the spare, which verifies
    assert signed_selectors(data, published) == [(MONTH, "pass"), (f"{MONTH}-ed25519", "pass")]
    new = printed_records(out)
    assert list(new) == [f"{MONTH}b._domainkey.example.org", f"{MONTH}b-ed25519._domainkey.example.org"]
    assert new[f"{MONTH}b._domainkey.example.org"].startswith("v=DKIM1; k=rsa; p=")
    assert new[f"{MONTH}b-ed25519._domainkey.example.org"].startswith("v=DKIM1; k=ed25519; p=")
    assert new == key_records(data, f"{MONTH}b", f"{MONTH}b-ed25519")
    assert not (data / "keys" / "example.org.mail.pem").exists()
    assert (data / "keys" / "retired" / "example.org.mail.pem").exists()  # kept, never deleted
    assert (data / "keys" / "retired" / "example.org.mail-ed25519.pem").exists()

    listed = json.loads(po("dkim", "list", "example.org", "--json", data=data).stdout)
    assert [(s["selector"], s["state"]) for s in listed["selectors"]] == [
        ("mail", "retired"), (MONTH, "signing"), (f"{MONTH}b", "new")]
    assert listed["key_files"]["mail"] == [str(data / "keys" / "retired" / "example.org.mail.pem"),
                                           str(data / "keys" / "retired" / "example.org.mail-ed25519.pem")]
    log = (data / "admin.log").read_text()
    assert "dkim rotate" in log


def test_a_domain_without_a_spare_gets_one_first_and_keeps_signing_until_the_next_rotate(data: Path) -> None:
    # a domain added before spares existed: no record file, only the [dkim] selector's keys
    for path in (data / "keys").iterdir():
        if not path.name.startswith("example.org.mail"):
            path.unlink()
    old = key_records(data, "mail", "mail-ed25519")
    first = json.loads(po("dkim", "rotate", "example.org", "--json", data=data).stdout)
    assert (first["selector"], first["signing"], first["switched"]) == (MONTH, "mail", False)
    assert [r["name"] for r in first["records"]] == [f"{MONTH}._domainkey.example.org",
                                                     f"{MONTH}-ed25519._domainkey.example.org"]
    new = {r["name"]: r["value"] for r in first["records"]}
    assert signed_selectors(data, {**old, **new}) == [("mail", "pass"), ("mail-ed25519", "pass")]
    out = po("dkim", "rotate", "example.org", data=data).stdout
    assert f"signed with {MONTH} from now on" in out
    assert signed_selectors(data, {**old, **new}) == [(MONTH, "pass"), (f"{MONTH}-ed25519", "pass")]


def test_retire_still_hands_signing_to_the_spare(data: Path) -> None:
    po("dkim", "retire", "example.org", "mail", data=data)
    listed = json.loads(po("dkim", "list", "example.org", "--json", data=data).stdout)
    assert [(s["selector"], s["state"]) for s in listed["selectors"]] == [("mail", "retired"), (MONTH, "signing")]
    # the next rotation has no spare to switch to: it makes one first
    second = json.loads(po("dkim", "rotate", "example.org", "--json", data=data).stdout)
    assert (second["selector"], second["signing"], second["switched"]) == (f"{MONTH}b", MONTH, False)


def test_refusals_are_one_sentence_and_change_nothing(data: Path) -> None:
    keys_before = sorted(p.name for p in (data / "keys").rglob("*"))
    cases = [
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

    # abandoning the spare (retiring it) is allowed; then retiring the signing pair is refused
    po("dkim", "retire", "example.org", f"{MONTH}-ed25519", data=data)
    listed = json.loads(po("dkim", "list", "example.org", "--json", data=data).stdout)
    assert [(s["selector"], s["state"]) for s in listed["selectors"]] == [("mail", "signing"), (MONTH, "retired")]
    assert (data / "keys" / "retired" / f"example.org.{MONTH}.pem").exists()
    retired_twice = po("dkim", "retire", "example.org", MONTH, data=data, check=False)
    assert retired_twice.returncode == 1 and "already retired" in retired_twice.stderr
    unsigned = po("dkim", "retire", "example.org", "mail", data=data, check=False)
    assert unsigned.returncode == 1 and "would leave example.org's mail unsigned" in unsigned.stderr


def test_help_has_an_example() -> None:
    for command in ("rotate", "retire", "list"):
        assert "Example: postoffice dkim " + command in po("dkim", command, "--help").stdout
