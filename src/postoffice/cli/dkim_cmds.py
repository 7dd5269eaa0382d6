"""`postoffice dkim rotate|retire|list`: change a domain's DKIM signing keys without breaking
the signatures of mail in flight (mailauth/dkim_selectors.py keeps the record)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from postoffice.cli.common import (
    DATA,
    DataDir,
    JsonFlag,
    console,
    fail,
    load,
    print_json,
    with_services,
)
from postoffice.directory import DirectoryError, canonical_domain
from postoffice.mailauth.dkim_selectors import (
    RETIRED_DIR,
    DomainSelectors,
    SelectorError,
    read_selectors,
    retire,
    rotate,
)
from postoffice.mailauth.dkimkeys import domain_key_files
from postoffice.setup.domain_keys import create_domain_keys

dkim_app = typer.Typer(help="DKIM signing keys of your domains: rotate, retire, list.", no_args_is_help=True)


def _served_domain(data: Path, domain: str) -> str:
    """The canonical name of a domain served here, or one sentence and exit 1."""
    try:
        name = canonical_domain(domain)
    except DirectoryError as error:
        fail(str(error))
    if not with_services(data, lambda s: s.directory.is_local_domain(name)):
        fail(f"{name} is not a domain served here; add it with postoffice domain add {name}.")
    return name


@dkim_app.command("rotate")
def dkim_rotate(domain: str, data: DataDir = DATA, json: JsonFlag = False) -> None:
    """Make a new DKIM key pair for a domain and print its TXT records to publish.

    The new selector is named after the month (e.g. 202612: RSA-2048 under it, Ed25519 under
    202612-ed25519). Mail stays signed with the current selector until you retire it: publish
    the new records, wait until DNS shows them, then run postoffice dkim retire DOMAIN
    OLD-SELECTOR.

    Example: postoffice dkim rotate example.org
    """
    name = _served_domain(data, domain)
    selector = load(data).dkim.selector
    try:
        record, new = rotate(data, name, default=selector)
        keys = create_domain_keys(data, name, new)
    except (SelectorError, OSError) as error:
        fail(str(error))
    signing = record.signing
    if json:
        print_json({"domain": name, "selector": new, "signing": signing, "records": [
            {"name": k.record_name, "type": "TXT", "value": k.record, "algorithm": k.algorithm,
             "key_file": str(k.path)} for k in keys]})
        return
    console.print(f"Made the DKIM selector {new} for {name} (RSA-2048 and Ed25519). Publish these "
                  "TXT records:", soft_wrap=True)
    for key in keys:
        console.print(f"  {key.record_name}  {key.record}", soft_wrap=True, highlight=False)
    if signing == new:
        console.print(f"Mail from {name} is signed with {new} from now on.", soft_wrap=True)
    else:
        console.print(f"Mail from {name} is still signed with {signing}. Once the records above are "
                      f"published (dig TXT {new}._domainkey.{name} shows them), switch with: "
                      f"postoffice dkim retire {name} {signing}", soft_wrap=True)


@dkim_app.command("retire")
def dkim_retire(domain: str, selector: str, data: DataDir = DATA, json: JsonFlag = False) -> None:
    """Stop signing with a DKIM selector; its key files move to keys/retired/ and are kept.

    Retiring the selector that signs now hands signing to the new one made by postoffice dkim
    rotate, so publish the new records first. Leave the old TXT records in DNS for a few days:
    mail already sent still needs them to verify.

    Example: postoffice dkim retire example.org mail
    """
    name = _served_domain(data, domain)
    try:
        record = retire(data, name, selector, default=load(data).dkim.selector)
    except (SelectorError, OSError) as error:
        fail(str(error))
    retired = record.find(selector)
    assert retired is not None  # retire() raised otherwise
    if json:
        print_json(record.to_json())
        return
    console.print(f"Retired the DKIM selector {retired.selector} of {name}: its keys are in "
                  f"{Path(data) / 'keys' / RETIRED_DIR}. Mail from {name} is signed with "
                  f"{record.signing} now. Keep the old TXT records published for a few days, so mail "
                  "already sent still verifies.", soft_wrap=True)


@dkim_app.command("list")
def dkim_list(domain: str, data: DataDir = DATA, json: JsonFlag = False) -> None:
    """Show a domain's DKIM selectors: which signs, which is new, which are retired.

    A new selector waits for its DNS records to be published; the key files column shows
    where each selector's keys are (keys/ or keys/retired/).

    Example: postoffice dkim list example.org --json
    """
    name = _served_domain(data, domain)
    try:
        record = read_selectors(data, name, default=load(data).dkim.selector)
    except SelectorError as error:
        fail(str(error))
    if json:
        out = record.to_json()
        out["key_files"] = {s.selector: _key_files(data, record, s.selector) for s in record.selectors}
        print_json(out)
        return
    table = Table("selector", "state", "created", "retired", "key files")
    for use in record.selectors:
        table.add_row(use.selector, use.state, use.created[:10] or "-", use.retired[:10] or "-",
                      ", ".join(str(Path(f).relative_to(Path(data) / "keys"))
                                for f in _key_files(data, record, use.selector)) or "missing")
    console.print(table)


def _key_files(data: Path, record: DomainSelectors, selector: str) -> list[str]:
    found = []
    for _, path in domain_key_files(data, record.domain, selector):
        for candidate in (path, path.parent / RETIRED_DIR / path.name):
            if candidate.exists():
                found.append(str(candidate))
    return found
