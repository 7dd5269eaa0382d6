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
    """Switch a domain's DKIM signing to its spare key pair at once, and make a new spare.

    The spare (made by `domain add`, RSA-2048 and Ed25519) has been in `postoffice domain
    records` since it was made, so it is published already: mail is signed with it from now
    on. The pair that signed before is retired (its files move to keys/retired/, and `domain
    records` lists it for 7 more days so mail in flight still verifies). The new spare, named
    after the month (e.g. 202612b), is printed: publish it before the next rotation. A domain
    without a spare (added before spares existed) first gets one: publish it, then rotate
    again.

    Example: postoffice dkim rotate example.org
    """
    name = _served_domain(data, domain)
    selector = load(data).dkim.selector
    try:
        done = rotate(data, name, default=selector)
        keys = create_domain_keys(data, name, done.spare)
    except (SelectorError, OSError) as error:
        fail(str(error))
    switched = done.retired is not None
    if json:
        print_json({"domain": name, "selector": done.spare, "signing": done.signing,
                    "retired": done.retired, "switched": switched, "records": [
                        {"name": k.record_name, "type": "TXT", "value": k.record,
                         "algorithm": k.algorithm, "key_file": str(k.path)} for k in keys]})
        return
    if switched:
        console.print(f"Mail from {name} is signed with {done.signing} from now on (the spare, "
                      f"published since it was made); {done.retired} is retired: keep its TXT "
                      "records published for 7 days, so mail already sent still verifies.",
                      soft_wrap=True)
        console.print(f"The new spare is {done.spare} (RSA-2048 and Ed25519). Publish these TXT "
                      "records now, before the next rotation:", soft_wrap=True)
    else:
        console.print(f"Made the spare DKIM selector {done.spare} for {name} (RSA-2048 and Ed25519). "
                      "Publish these TXT records:", soft_wrap=True)
    for key in keys:
        console.print(f"  {key.record_name}  {key.record}", soft_wrap=True, highlight=False)
    if not switched:
        console.print(f"Mail from {name} is still signed with {done.signing}. Once the records above "
                      f"are published (dig TXT {done.spare}._domainkey.{name} shows them), switch "
                      f"with: postoffice dkim rotate {name}", soft_wrap=True)


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
