"""A data directory serving the domains of tests/zones/checkdomain.test.zone, for `check domain`.

    data = checked_data(tmp, dns_server, ca)      # initialised; every case domain local, our keys
    report = asyncio.run(check(data, "clean"))   # check_domain on "clean.checkdomain.test"

Every case domain gets the DKIM keys of tests/diagnostics/keys/ (the zone publishes their public
halves) and a user, so postmaster@ reaches someone, except postmaster-missing.checkdomain.test,
whose postmaster@ is an alias to an address that does not exist.
"""
from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

from dns_server import DnsServers
from postoffice.config import load_config
from postoffice.diagnostics.domain_check import DomainCheck, DomainReport, check_domain
from postoffice.directory import hash_password
from postoffice.mailauth.dkimkeys import dkim_key_path
from postoffice.services import open_services
from postoffice.setup.initialise import initialise

ZONE = "checkdomain.test"
KEYS = Path(__file__).resolve().parent / "keys"
CASES = ["mx-missing", "mx-cname", "mx-ip-literal", "mx-no-address", "ptr-missing", "ptr-missing-v6",
         "ptr-mismatch", "spf-missing", "spf-multiple", "spf-syntax", "spf-too-many-lookups", "spf-plus-all",
         "spf-mx-not-covered", "dkim-missing", "dkim-mismatch", "dkim-weak-key", "dkim-testing",
         "dmarc-missing", "dmarc-syntax", "dmarc-none", "mta-sts-mismatch", "mta-sts-unavailable",
         "postmaster-missing", "dnsbl-listed"]


def policy(mx: str) -> str:
    return f"version: STSv1\r\nmode: enforce\r\nmx: {mx}\r\nmax_age: 86400\r\n"


# What 127.0.0.83:443 serves: every case domain's policy names *.checkdomain.test, except one.
POLICIES = {f"mta-sts.{case}.{ZONE}": policy("*.checkdomain.test") for case in ["clean", *CASES]}
POLICIES[f"mta-sts.mta-sts-mismatch.{ZONE}"] = policy("mx.elsewhere.test")


def domain(case: str) -> str:
    return f"{case}.{ZONE}"


def checked_data(data: Path, dns_server: DnsServers, ca_file: Path) -> Path:
    """An initialised data directory whose config asks the loopback DNS (its authoritative
    server on NSD's port), checks dnsbl.test and trusts the test CA."""
    initialise(data, f"mx.{ZONE}")
    set_config(data, nameservers=f'["{dns_server.nameserver}"]', authoritative_port=str(dns_server.nsd_port),
               blocklists='["dnsbl.test"]', ca_file=f'"{ca_file}"')
    asyncio.run(_add_domains(data, ["clean", "live", *CASES]))
    return data


def set_config(data: Path, **keys: str) -> None:
    """Set each key's first line in the file: a name several sections have is set in the first
    of them ([dns] blocklists comes before [spam] blocklists)."""
    text = (data / "postoffice.toml").read_text()
    for key, value in keys.items():
        text, found = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
        assert found == 1, key
    (data / "postoffice.toml").write_text(text)


async def _add_domains(data: Path, cases: list[str]) -> None:
    config = load_config(data)
    password = hash_password("not used")
    async with open_services(config) as services:
        for case in cases:
            name = domain(case)
            await services.directory.add_domain(name)
            install_keys(data, name, config.dkim.selector)
            if case == "postmaster-missing":
                await services.directory.add_alias(f"postmaster@{name}", [f"nobody@{name}"])
            else:
                await services.store.add_account(f"alice@{name}", password)


def install_keys(data: Path, name: str, selector: str) -> None:
    for file, key_selector in (("rsa.pem", selector), ("ed25519.pem", f"{selector}-ed25519")):
        target = dkim_key_path(data, name, key_selector)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(KEYS / file, target)


async def check(data: Path, case: str, *, connect: bool = False) -> DomainReport:
    async with open_services(load_config(data)) as services:
        return await check_domain(DomainCheck.from_services(services, connect=connect), domain(case))
