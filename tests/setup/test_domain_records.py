"""`postoffice domain records`, run as a user would: its zone output, published as is in a real
DNS server on loopback (NSD behind Unbound, tests/dns_server.py), resolves through our resolver
to exactly what the command printed, and what resolves is what mail authentication needs (DKIM
signatures made with our keys verify, SPF passes for the MX address, DMARC and MTA-STS parse)."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections import defaultdict
from pathlib import Path

import dns.asyncresolver
import dns.rdatatype
import dns.resolver
import pytest

from cli_run import po
from dns_server import DnsServers
from postoffice.mailauth.dkim import sign_message, verify_dkim
from postoffice.mailauth.dkim_crypto import load_signing_key
from postoffice.mailauth.dkimkeys import dkim_public_record
from postoffice.mailauth.dmarc import parse_dmarc_record
from postoffice.mailauth.resolver import DnsResolver
from postoffice.mailauth.spf import check_host
from postoffice.mailauth.spf_record import parse_record
from postoffice.queue.mta_sts_policy import parse_policy, policy_id
from postoffice.setup.records import mta_sts_id

DOMAIN = "records.test"
HOST = f"mail.{DOMAIN}"
MONTH = dt.datetime.now(dt.UTC).strftime("%Y%m")
MESSAGE = (f"From: ann@{DOMAIN}\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello.\r\n").encode()


def set_key(data: Path, key: str, value: str) -> None:
    config = data / "postoffice.toml"
    text, count = re.subn(rf"^{key} = .*$", f"{key} = {value}", config.read_text(), count=1, flags=re.M)
    assert count == 1, key
    config.write_text(text)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    po("init", "--domain", DOMAIN, "--hostname", HOST, data=d)
    set_key(d, "public_addresses", '["127.0.0.1"]')
    set_key(d, "report_address", f'"dmarc@{DOMAIN}"')
    set_key(d, "pop3", "[]")  # a listener that is off: its SRV says so
    return d


async def published(dns_server: DnsServers, rtype: str, name: str) -> list[str]:
    """The records at NAME as our resolver (or, for types it does not ask, dnspython) sees them,
    in the presentation form `domain records` prints."""
    resolver = DnsResolver((dns_server.address,), timeout=3.0)
    if rtype == "TXT":
        return list((await resolver.txt(name)).records)
    if rtype == "MX":
        return [f"{r.preference} {r.host}." for r in (await resolver.mx(name)).records]
    if rtype == "A":
        return [str(a) for a in (await resolver.a(name)).records]
    if rtype == "TLSA":
        return [f"{r.usage} {r.selector} {r.matching_type} {r.data.hex()}" for r in (await resolver.tlsa(name)).records]
    other = dns.asyncresolver.Resolver(configure=False)
    other.nameservers = [dns_server.address.host]
    other.port = dns_server.address.port
    try:
        answer = await other.resolve(name, dns.rdatatype.from_text(rtype), search=False)
    except dns.resolver.NoAnswer:
        return []
    return [rdata.to_text() for rdata in answer]


def test_zone_output_published_as_is_resolves_to_what_the_command_printed(
        data: Path, dns_server: DnsServers) -> None:
    zone = po("domain", "records", DOMAIN, "--format", "zone", data=data).stdout
    printed = json.loads(po("domain", "records", DOMAIN, "--format", "json", data=data).stdout)
    dns_server.add_zone(DOMAIN, zone)  # as is: NSD must load it

    expected: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in printed["records"]:
        if record["placement"] == "zone":
            expected[(record["type"], record["name"])].add(record["value"])
    kinds = {rtype for rtype, _ in expected}
    assert kinds == {"MX", "A", "TXT", "SRV", "CNAME", "TLSA"}, kinds  # no CAA: the certificate is self-signed

    async def compare() -> None:
        for (rtype, name), values in sorted(expected.items()):
            assert set(await published(dns_server, rtype, name)) == values, (rtype, name)
    asyncio.run(compare())

    # the spare is published beside the signing keys; an RSA key's value took two strings
    dkim_names = {r["name"] for r in printed["records"] if "._domainkey." in r["name"]}
    assert dkim_names == {f"{s}._domainkey.{DOMAIN}" for s in ("mail", "mail-ed25519", MONTH, f"{MONTH}-ed25519")}
    assert [len(r["strings"]) for r in printed["records"] if r["name"] == f"mail._domainkey.{DOMAIN}"] == [2]
    assert ('"v=spf1 a -all"' in zone and f"_pop3._tcp.{DOMAIN}.\t3600\tIN\tSRV\t0 0 0 ." in zone)


def test_published_records_make_our_mail_authenticate(data: Path, dns_server: DnsServers) -> None:
    zone = po("domain", "records", DOMAIN, "--format", "zone", data=data).stdout
    printed = json.loads(po("domain", "records", DOMAIN, "--format", "json", data=data).stdout)
    dns_server.add_zone(DOMAIN, zone)
    resolver = DnsResolver((dns_server.address,), timeout=3.0)

    async def run() -> None:
        # DKIM: signatures with every published key, signing and spare, RSA and Ed25519, verify
        message = MESSAGE
        selectors = ["mail", "mail-ed25519", MONTH, f"{MONTH}-ed25519"]
        for selector in selectors:
            key = load_signing_key((data / "keys" / f"{DOMAIN}.{selector}.pem").read_bytes())
            message = sign_message(message, DOMAIN, selector, key) + message
        results = await verify_dkim(resolver, message)
        assert sorted((r.selector, r.result) for r in results) == sorted((s, "pass") for s in selectors)
        # SPF: the domain's and the HELO name's records parse and pass for the MX address
        for name in (DOMAIN, HOST):
            (text,) = (await resolver.txt(name)).records
            parse_record(text)
        assert (await check_host(resolver, "127.0.0.1", DOMAIN, f"ann@{DOMAIN}", HOST)).result == "pass"
        helo = await check_host(resolver, "127.0.0.1", HOST, f"postmaster@{HOST}", HOST, identity="helo")
        assert helo.result == "pass"
        assert (await check_host(resolver, "127.0.0.2", DOMAIN, f"ann@{DOMAIN}", HOST)).result == "softfail"
        # DMARC and MTA-STS
        (dmarc_text,) = (await resolver.txt(f"_dmarc.{DOMAIN}")).records
        dmarc = parse_dmarc_record(dmarc_text)
        assert dmarc is not None and dmarc.p == "quarantine" and dmarc.rua == (f"mailto:dmarc@{DOMAIN}",)
        sts_id = policy_id((await resolver.txt(f"_mta-sts.{DOMAIN}")).records)
        assert sts_id == mta_sts_id(printed["mta_sts_policy"])
        policy = parse_policy(printed["mta_sts_policy"])
        assert policy.mode == "testing" and policy.allows(HOST)  # self-signed: testing
    asyncio.run(run())


def test_a_domain_without_a_spare_gets_one_and_the_table_shows_whole_values(data: Path) -> None:
    keys = data / "keys"
    for path in keys.iterdir():
        if not path.name.startswith(f"{DOMAIN}.mail"):
            path.unlink()  # as a domain added before spares existed
    result = po("domain", "records", DOMAIN, data=data)
    assert f"Made the spare DKIM key {keys}/{DOMAIN}.{MONTH}.pem" in result.stderr
    assert (keys / f"{DOMAIN}.{MONTH}-ed25519.pem").exists()
    rsa = keys / f"{DOMAIN}.{MONTH}.pem"
    assert f"\n  {dkim_public_record(rsa)}\n" in result.stdout  # one line, never cut, for DNS panels
    assert f"\n{MONTH}._domainkey  TXT\n" in result.stdout
    again = po("domain", "records", DOMAIN, data=data)
    assert again.stderr == "" and sorted(p.name for p in keys.iterdir()) == sorted(
        [f"{DOMAIN}.mail.pem", f"{DOMAIN}.mail-ed25519.pem", f"{DOMAIN}.{MONTH}.pem",
         f"{DOMAIN}.{MONTH}-ed25519.pem", f"{DOMAIN}.selectors.json"])


def test_a_domain_not_served_here_is_one_sentence(data: Path) -> None:
    result = po("domain", "records", "example.net", data=data, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "example.net is not a domain served here; add it with postoffice domain add example.net." in result.stderr
    assert "Example: postoffice domain records" in po("domain", "records", "--help").stdout
