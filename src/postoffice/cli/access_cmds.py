"""`postoffice block|allow add|list|remove`: the local block and allow lists of port 25."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from postoffice.access_lists import AccessListError, check_reason, parse_target
from postoffice.cli.common import (
    DATA,
    DataDir,
    JsonFlag,
    console,
    err_console,
    fail,
    print_json,
    with_services,
)
from postoffice.services import Services
from postoffice.store.interface import AccessEntry, AccessListName

Target = Annotated[str, typer.Argument(
    metavar="IP|CIDR|DOMAIN|ADDRESS",
    help="An IP address (192.0.2.7), a network (192.0.2.0/24, 2001:db8::/32), a domain (example.com,"
         " with its subdomains) or an email address (user@example.com).")]
Reason = Annotated[str, typer.Option("--reason", help="Why; blocked senders see it in the refusal.")]

_WHERE = {
    "block": "Port 25 refuses it from the next connection on: an IP or network at connect (554 5.7.1),"
             " a domain or address as sender at MAIL (554 5.7.1) and as recipient at RCPT (550 5.7.1).",
    "allow": "Port 25 never refuses it by a block entry and skips the DNS blocklists for it"
             " (as client IP or network, or as sender domain or address).",
}


def _parse(target: str, reason: str = "") -> tuple[str, str, str]:
    try:
        kind, value = parse_target(target)
        return kind, value, check_reason(reason)
    except AccessListError as error:
        fail(str(error))


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _list_app(name: AccessListName, help_text: str, example: str) -> typer.Typer:
    app = typer.Typer(help=help_text, no_args_is_help=True)
    verb = "Blocked" if name == "block" else "Allowed"

    @app.command("add")
    def add(target: Target, reason: Reason = "", data: DataDir = DATA) -> None:
        kind, value, why = _parse(target, reason)
        entry = AccessEntry(name, kind, value, why)  # type: ignore[arg-type]

        async def go(s: Services) -> tuple[bool, bool]:
            ours = kind in ("domain", "address") and await s.directory.is_local_domain(value.rpartition("@")[2])
            return await s.store.add_access_entry(entry), ours

        added, ours = with_services(data, go)
        shown = f"{value} ({kind.upper()})"
        if added:
            console.print(f"{verb} {shown}" + (f": {why}" if why else "") + "; port 25 applies it from the next connection on.")
        else:
            console.print(f"{shown} was already on the {name} list; its reason is now: {why or '(none)'}.")
        if ours and name == "block":
            what = f"every address of {value}" if kind == "domain" else value
            err_console.print(f"[bold yellow]warning:[/] {escape(value)} is served here: mail to {escape(what)} is now "
                              "refused at RCPT (550 5.7.1), and mail from it at MAIL.", markup=True, highlight=False,
                              soft_wrap=True)

    add.__doc__ = f"""Add an entry to the {name} list (or change its reason).

    {_WHERE[name]}

    Example: postoffice {name} add {example}
    """

    @app.command("list")
    def list_(data: DataDir = DATA, json: JsonFlag = False) -> None:
        entries = with_services(data, lambda s: s.store.list_access_entries(name))
        if json:
            print_json([{"kind": e.kind, "value": e.value, "reason": e.reason, "created": e.created}
                        for e in entries])
            return
        if not entries:
            console.print(f"The {name} list is empty.")
            return
        table = Table("kind", "entry", "reason", "added")
        for e in entries:
            table.add_row(e.kind.upper(), e.value, e.reason, _when(e.created))
        console.print(table)

    list_.__doc__ = f"""Show the {name} list.

    Example: postoffice {name} list --json
    """

    @app.command("remove")
    def remove(target: Target, data: DataDir = DATA) -> None:
        kind, value, _ = _parse(target)
        if not with_services(data, lambda s: s.store.remove_access_entry(name, value)):
            fail(f"{value} is not on the {name} list; `postoffice {name} list` shows what is.")
        console.print(f"Removed {value} ({kind.upper()}) from the {name} list, from the next connection on.")

    remove.__doc__ = f"""Remove an entry from the {name} list.

    Example: postoffice {name} remove {example.split(' --')[0]}
    """
    return app


block_app = _list_app(
    "block", "Clients, senders and recipients port 25 refuses (IP, network, domain or address).",
    "203.0.113.0/24 --reason 'spam since June'")
allow_app = _list_app(
    "allow", "Clients and senders port 25 always accepts, skipping the DNS blocklists.",
    "partner.example --reason 'listed by mistake on a blocklist'")
