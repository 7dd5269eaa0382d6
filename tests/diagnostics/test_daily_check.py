"""The daily `check domain` inside a real `postoffice serve`: postmaster@ gets the problems the
first run finds, then only what changed when the zone changes, and no mail when nothing did.
The schedule is shortened through POSTOFFICE_DOMAIN_CHECK_SECONDS; the domain's zone is the
test's own (dns_server.add_zone), changed between runs."""
from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from domain_kit import install_keys, set_config

from dns_server import DnsServers
from postoffice.config import load_config
from postoffice.diagnostics.checks import Finding, Severity
from postoffice.diagnostics.daily_check import changes, problems, report_message
from postoffice.directory import Directory, hash_password
from postoffice.services import open_services
from postoffice.setup.initialise import initialise
from postoffice.store import open_store
from serve_process import Serve

DOMAIN = "daily.test"
ZONE = """ns A 127.0.0.1
mx A 127.0.0.1
@ MX 10 mx
@ TXT "v=spf1 mx -all"
mail._domainkey CNAME mail._domainkey.keys.checkdomain.test.
mail-ed25519._domainkey CNAME mail-ed25519._domainkey.keys.checkdomain.test.
_dmarc TXT "v=DMARC1; p=reject"
"""
BROKEN_SPF = ZONE.replace('"v=spf1 mx -all"', '"v=spf1 ip4:192.0.2.1 -all"')
TEST_SECONDS = 240


def closed_port() -> int:
    with socket.socket() as probe:  # free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def zone(dns_server: DnsServers) -> Iterator[None]:
    dns_server.add_zone(DOMAIN, ZONE)
    yield
    dns_server.add_zone(DOMAIN, ZONE)


@pytest.fixture
def data(tmp_path: Path, dns_server: DnsServers) -> Path:
    """One local domain, alice@ its only user (so postmaster@ reaches her), no listeners; its MX
    port closed (a lasting mx-unreachable, reported once)."""
    data = tmp_path / "data"
    initialise(data, f"mx.{DOMAIN}")
    text = (data / "postoffice.toml").read_text()
    (data / "postoffice.toml").write_text(re.sub(r"^(smtp|submission|submissions|imap|imaps|pop3|pop3s|http|https|managesieve) = .*$",
                                                 r"\1 = []", text, flags=re.M))
    set_config(data, nameservers=f'["{dns_server.nameserver}"]', authoritative_port=str(dns_server.nsd_port),
               mx_port=str(closed_port()))

    async def populate() -> None:
        config = load_config(data)
        async with open_services(config) as services:
            await services.directory.add_domain(DOMAIN)
            await services.store.add_account(f"alice@{DOMAIN}", hash_password("not used"))
            install_keys(data, DOMAIN, config.dkim.selector)

    asyncio.run(populate())
    return data


def inbox(data: Path) -> list[bytes]:
    async def read() -> list[bytes]:
        store = open_store("sqlite", data / "store.sqlite3", data / "blobs")
        try:
            account = await Directory(store).get_user(f"alice@{DOMAIN}")
            assert account is not None
            box = await store.get_mailbox(account.id, "INBOX")
            assert box is not None
            return [await store.read_blob(m.blob) for m in await store.list_messages(box.id)]
        finally:
            await store.close()

    return asyncio.run(read())


def wait_for(condition: str, check: object, deadline: float, serve: Serve) -> None:
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{condition} did not happen; serve's log:\n{serve.log_text()}")
        time.sleep(0.2)


def runs(serve: Serve) -> int:
    return serve.log_text().count(f"daily domain check of {DOMAIN}:")


@pytest.mark.timeout(TEST_SECONDS)
def test_postmaster_hears_the_first_problems_then_only_what_changed(data: Path, zone: None,
                                                                   dns_server: DnsServers) -> None:
    deadline = time.monotonic() + TEST_SECONDS - 30
    serve = Serve(data, env={"POSTOFFICE_DOMAIN_CHECK_SECONDS": "0.2,1"}).started()
    try:
        wait_for("the first report", lambda: len(inbox(data)) == 1, deadline, serve)
        first = inbox(data)[0].decode()
        dns_server.add_zone(DOMAIN, BROKEN_SPF)  # runs until it is read again: no change, no mail
        wait_for("the report of the change", lambda: len(inbox(data)) == 2, deadline, serve)
        second = inbox(data)[1].decode()
        seen = runs(serve)
        wait_for("two more runs", lambda: runs(serve) >= seen + 2, deadline, serve)
        assert len(inbox(data)) == 2  # nothing changed since: no mail
    finally:
        log = serve.stop()

    assert "Subject: check domain daily.test: 1 new" in first
    assert "mx-unreachable" in first and "spf-mx-not-covered" not in first
    assert "Auto-Submitted: auto-generated" in first and "Return-Path: <>" in first
    assert "spf-mx-not-covered (127.0.0.1)" in second and "Fix: Add mx" in second
    assert "mx-unreachable" not in second  # still there, but not news
    assert "Traceback" not in log


def finding(id: str, problem: str, severity: Severity = Severity.ERROR, subject: str = "") -> Finding:
    return Finding(id, severity, problem, "Do it.", subject)


def test_changes_are_new_problems_changed_ones_and_fixed_ones() -> None:
    before = problems([finding("a", "A is wrong."), finding("b", "B is wrong.", subject="x"),
                       finding("c", "C is wrong.", Severity.WARNING), finding("d", "D is fine.", Severity.OK)])
    now = [finding("a", "A is wrong."), finding("c", "C is worse.", Severity.ERROR),
           finding("e", "E is new."), finding("b", "B is fine.", Severity.OK, subject="x")]

    found = changes(before, now)

    assert [f.id for f in found.new] == ["c", "e"]
    assert [old["id"] for old in found.fixed] == ["b"]
    assert not changes(problems(now), now)
    text = report_message("example.org", found, ["ns1.example.org (192.0.2.53)"], "mail.example.org").decode()
    assert "Subject: check domain example.org: 2 new, 1 fixed" in text
    assert "- error c: C is worse.\r\n  Fix: Do it." in text and "- b (x): no longer found." in text
