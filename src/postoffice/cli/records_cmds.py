"""`postoffice domain records D [--format zone|table|json]`: every DNS record to publish for a
domain, each with its reason (setup/records.py builds them, setup/zone_text.py writes zones)."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from postoffice.cli.common import (
    DATA,
    DataDir,
    console,
    err_console,
    fail,
    load,
    print_json,
    with_services,
)
from postoffice.directory import DirectoryError, canonical_domain
from postoffice.mailauth.dkim_selectors import SelectorError
from postoffice.setup.domain_keys import create_spare_keys
from postoffice.setup.record_inputs import record_inputs
from postoffice.setup.records import DomainRecords, build_records
from postoffice.setup.zone_text import TTL, txt_strings, zone_text


class RecordFormat(enum.StrEnum):
    zone = "zone"
    table = "table"
    json = "json"


def domain_records(
    domain: Annotated[str, typer.Argument(help="A domain served here, e.g. example.org.")],
    format: Annotated[RecordFormat, typer.Option(
        "--format", help="zone: a zone file to paste (long TXT values split into 255-byte strings); "
                         "table: host, type and the whole value as web DNS panels ask for them; json: for scripts.")
    ] = RecordFormat.table,
    data: DataDir = DATA,
) -> None:
    """Print every DNS record to publish for a domain, each with the reason: MX, the host's
    address, SPF (domain and HELO name), DKIM (the signing key and the spare that `postoffice dkim
    rotate` switches to), DMARC, MTA-STS and its policy, TLS-RPT, SRV for mail programs,
    autoconfig/autodiscover names, CAA, TLSA (DANE) and the PTR to ask your hosting provider for.

    The host name and public addresses come from [server] hostname and public_addresses in
    postoffice.toml. A domain without a spare DKIM key gets one now (its files in keys/).

    Example: postoffice domain records example.org --format zone
    """
    try:
        name = canonical_domain(domain)
    except DirectoryError as error:
        fail(str(error))
    if not with_services(data, lambda s: s.directory.is_local_domain(name)):
        fail(f"{name} is not a domain served here; add it with postoffice domain add {name}.")
    config = load(data)
    try:
        made = [k for k in create_spare_keys(data, name, config.dkim.selector) if k.created]
        inputs, notes = record_inputs(config, name)
    except (SelectorError, OSError) as error:
        fail(f"The DKIM keys of {name} cannot be read or made: {error}")
    for key in made:  # on stderr: stdout stays a zone file or JSON
        err_console.print(f"Made the spare DKIM key {key.path} (selector {key.selector}); it is among the "
                          "records below.", soft_wrap=True, highlight=False)
    records = build_records(inputs)
    records = DomainRecords(records.domain, records.records, records.mta_sts_policy, (*notes, *records.notes))
    if format is RecordFormat.zone:
        console.file.write(zone_text(records))
    elif format is RecordFormat.json:
        print_json(records_json(records))
    else:
        _print_table(records)


def records_json(records: DomainRecords) -> dict[str, object]:
    return {
        "domain": records.domain,
        "records": [{
            "name": r.name, "host": _host(r.name, records.domain), "type": r.type, "value": r.value,
            **({"strings": txt_strings(r.value)} if r.type == "TXT" else {}),
            "ttl": TTL, "placement": r.placement, "reason": r.reason,
        } for r in records.records],
        "mta_sts_policy": records.mta_sts_policy,
        "notes": list(records.notes),
    }


def _print_table(records: DomainRecords) -> None:
    # One block per record, each value on one line that is never cut or wrapped: a value is
    # copied whole into a DNS panel's single field, however long (a table cut them at 80 columns).
    console.print(f"DNS records for {records.domain} (host: the name relative to {records.domain}, @ for "
                  f"{records.domain} itself, as DNS panels ask for it; --format zone prints a zone file):",
                  soft_wrap=True)
    for r in records.records:
        where = {"zone": "", "elsewhere": "   (in the zone of that name, not this one)",
                 "provider": "   (ask your hosting provider for it)"}[r.placement]
        console.print("", soft_wrap=True)
        console.print(f"{_host(r.name, records.domain)}  {r.type}{where}", soft_wrap=True, highlight=False)
        console.print(f"  {r.value}", soft_wrap=True, highlight=False)
        console.print(f"  why: {r.reason}", soft_wrap=True, highlight=False)
    console.print("", soft_wrap=True)
    console.print(f"The MTA-STS policy, served at https://mta-sts.{records.domain}/.well-known/mta-sts.txt:",
                  soft_wrap=True)
    for line in records.mta_sts_policy.splitlines():
        console.print(f"  {line}", highlight=False)
    for note in records.notes:
        console.print(f"note: {note}", soft_wrap=True, highlight=False)


def _host(name: str, domain: str) -> str:
    if name == domain:
        return "@"
    return name.removesuffix("." + domain) if name.endswith("." + domain) else name + "."
