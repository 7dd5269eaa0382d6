"""`postoffice domain|user|alias ...`: who receives mail here."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from postoffice.cli.common import (
    DATA,
    DataDir,
    JsonFlag,
    console,
    err_console,
    fail,
    load,
    parse_size,
    print_json,
    read_password,
    with_services,
)
from postoffice.mailauth.dkim_selectors import SelectorError
from postoffice.services import Services
from postoffice.setup.domain_keys import create_signing_and_spare_keys

domain_app = typer.Typer(help="Domains this server receives mail for.", no_args_is_help=True)
user_app = typer.Typer(help="Mail users (accounts with a mailbox and a password).", no_args_is_help=True)
alias_app = typer.Typer(help="Aliases (extra addresses) and catch-alls.", no_args_is_help=True)



@domain_app.command("add")
def domain_add(name: str, data: DataDir = DATA) -> None:
    """Receive mail for a domain, and make its DKIM signing keys: RSA-2048 under the DKIM
    selector of postoffice.toml (default "mail"), Ed25519 under that selector + "-ed25519"
    ("mail-ed25519"), in keys/<domain>.<selector>.pem, and a spare pair (selector named after
    the month, e.g. 202612) that `postoffice dkim rotate` switches to at once. Publish the TXT
    records it prints; `postoffice domain records DOMAIN` prints every record to publish.

    Example: postoffice domain add example.org
    """

    async def go(s: Services) -> str:
        return (await s.directory.add_domain(name)).name

    added = with_services(data, go)
    console.print(f"Added the domain {added}.")
    try:
        signing, spare = create_signing_and_spare_keys(data, added, load(data).dkim.selector)
    except (OSError, SelectorError) as e:
        fail(f"The domain was added, but its DKIM keys could not be written: {e}")
    for key in signing:
        done = "Created" if key.created else "Kept the existing"
        console.print(f"{done} DKIM key {escape(str(key.path))} (selector {key.selector}, "
                      f"{key.algorithm}); publish this TXT record:", soft_wrap=True)
        console.print(f"  {key.record_name}  {key.record}", soft_wrap=True, highlight=False)
    for key in spare:
        done = "Created" if key.created else "Kept"
        console.print(f"{done} the spare DKIM key {escape(str(key.path))} (selector {key.selector}, "
                      f"{key.algorithm}, signs after `postoffice dkim rotate {added}`); publish it now "
                      "too:", soft_wrap=True)
        console.print(f"  {key.record_name}  {key.record}", soft_wrap=True, highlight=False)
    console.print(f"Every record to publish (MX, SPF, DKIM, DMARC, ...): postoffice domain records {added}",
                  soft_wrap=True)


@domain_app.command("list")
def domain_list(data: DataDir = DATA, json: JsonFlag = False) -> None:
    """List the domains served here (and their catch-all, if any).

    Example: postoffice domain list --json
    """
    domains = with_services(data, lambda s: s.directory.list_domains())
    if json:
        print_json([{"name": d.name, "catch_all": d.catch_all} for d in domains])
        return
    for d in domains:
        console.print(d.name + (f"  (catch-all -> {d.catch_all})" if d.catch_all else ""))


@domain_app.command("remove")
def domain_remove(name: str, data: DataDir = DATA) -> None:
    """Stop receiving mail for a domain (it must have no users left).

    Example: postoffice domain remove example.net
    """
    with_services(data, lambda s: s.directory.remove_domain(name))
    console.print(f"Removed the domain {name}.")


@user_app.command("add")
def user_add(
    address: str,
    data: DataDir = DATA,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input.")] = False,
    quota: Annotated[int | None, typer.Option(
        parser=parse_size, metavar="SIZE",
        help="Storage limit: 2G, 500M, 750K, bytes, or 0 for unlimited (default: default_quota in the limits section of postoffice.toml).")] = None,
) -> None:
    """Create a user with a mailbox.

    The password comes from --password-stdin, the POSTOFFICE_PASSWORD variable, or a prompt.

    Example: echo 's3cret-pass' | postoffice user add alice@example.org --password-stdin --quota 2G
    """
    password = read_password(password_stdin)
    account = with_services(data, lambda s: s.directory.add_user(address, password, quota))
    console.print(f"Added the user {account.address}.")


@user_app.command("list")
def user_list(
    domain: Annotated[str | None, typer.Argument(help="Only users of this domain.")] = None,
    data: DataDir = DATA,
    json: JsonFlag = False,
) -> None:
    """List users with their storage use.

    Example: postoffice user list example.org
    """
    users = with_services(data, lambda s: s.directory.list_users(domain))
    if json:
        print_json([{"address": u.address, "used": u.used, "quota": u.quota, "disabled": u.disabled} for u in users])
        return
    table = Table("address", "used", "quota")
    for u in users:
        table.add_row(u.address, f"{u.used:,} B", f"{u.quota:,} B" if u.quota else "unlimited")
    console.print(table)


@user_app.command("passwd")
def user_passwd(
    address: str,
    data: DataDir = DATA,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input.")] = False,
) -> None:
    """Set a user's password.

    Example: echo 'n3w-pass-phrase' | postoffice user passwd alice@example.org --password-stdin
    """
    password = read_password(password_stdin)
    with_services(data, lambda s: s.directory.set_password(address, password))
    console.print(f"Changed the password of {address}.")


@user_app.command("quota")
def user_quota(
    address: str,
    limit: Annotated[int, typer.Argument(parser=parse_size, metavar="SIZE",
                                         help="The storage limit: 2G, 500M, 750K, bytes, or 0 for unlimited.")],
    data: DataDir = DATA,
) -> None:
    """Set how much mail a user may store. Deliveries and IMAP APPENDs beyond it are refused
    (SMTP 552 5.2.2, IMAP [OVERQUOTA]); nothing already stored is removed.

    Example: postoffice user quota alice@example.org 2G
    """
    with_services(data, lambda s: s.store.set_quota(address, limit))
    console.print(f"{address} may now store " + (f"{limit:,} bytes." if limit else "any amount of mail."))


@user_app.command("remove")
def user_remove(address: str, data: DataDir = DATA) -> None:
    """Delete a user and all of their mail.

    Example: postoffice user remove alice@example.org
    """
    with_services(data, lambda s: s.directory.remove_user(address))
    console.print(f"Removed the user {address} and their mail.")


@alias_app.command("add")
def alias_add(
    address: Annotated[str, typer.Argument(help="The alias address, or @domain for a catch-all.")],
    targets: Annotated[list[str], typer.Argument(help="Where its mail goes (local users or outside addresses).")],
    data: DataDir = DATA,
) -> None:
    """Deliver mail for ADDRESS to one or more TARGETS.

    Targets are users, other aliases or outside addresses; mail for outside addresses waits in
    the outbound queue (`postoffice queue list`) with the original sender. An alias that only
    leads back to itself or nests more than 10 levels is refused to senders (550 5.4.6).
    Local parts must be dot-atoms: no leading, trailing or double dots, no "/" or spaces.
    Such a loop, or a target here that is neither a user nor an alias, is added with a warning.

    Examples: postoffice alias add sales@example.org alice@example.org bob@example.org
              postoffice alias add @example.org alice@example.org   (catch-all)
    """

    async def go(s: Services) -> list[str]:
        await s.directory.add_alias(address, targets)
        return await s.directory.alias_warnings(address, targets)

    warnings = with_services(data, go)
    console.print(f"{address} -> {', '.join(targets)}")
    for warning in warnings:
        err_console.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


@alias_app.command("list")
def alias_list(data: DataDir = DATA, json: JsonFlag = False) -> None:
    """List aliases and catch-alls.

    Example: postoffice alias list --json
    """
    aliases = with_services(data, lambda s: s.directory.list_aliases())
    if json:
        print_json([{"source": a.source, "target": a.target} for a in aliases])
        return
    for a in aliases:
        console.print(f"{a.source} -> {a.target}")


@alias_app.command("remove")
def alias_remove(
    address: str,
    target: Annotated[str | None, typer.Argument(help="Only this target (default: all).")] = None,
    data: DataDir = DATA,
) -> None:
    """Remove an alias (or one of its targets), or a catch-all given as @domain.

    Examples: postoffice alias remove sales@example.org bob@example.org   (one target)
              postoffice alias remove sales@example.org                   (the whole alias)
    """
    count = with_services(data, lambda s: s.directory.remove_alias(address, target))
    if not count:
        fail(f"There is no alias {address}" + (f" -> {target}" if target else "") + ".")
    console.print(f"Removed {address}" + (f" -> {target}" if target else "") + ".")
