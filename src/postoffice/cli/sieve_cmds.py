"""`postoffice sieve list|get|put|activate|deactivate|delete|rename|check`: users' Sieve filters.

The same scripts ManageSieve (port 4190) manages, in the store; delivery runs each user's active
script, so a change here takes effect with the next message, also while `serve` runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer

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
from postoffice.filtering.sieve import SieveError
from postoffice.managesieve.scripts import check_script
from postoffice.services import Services
from postoffice.store.interface import AccountRecord
from postoffice.store.sieve_interface import SieveScriptRecord

sieve_app = typer.Typer(help="Users' Sieve filters (the scripts ManageSieve manages).", no_args_is_help=True)

Address = Annotated[str, typer.Argument(help="The user, e.g. alice@example.org.")]
Name = Annotated[str, typer.Argument(help="The script's name, as mail programs show it.")]
ScriptFile = Annotated[str, typer.Argument(help='A Sieve script file; "-" reads standard input.')]


async def _account(s: Services, address: str) -> AccountRecord:
    account = await s.store.get_account(address)
    if account is None:
        raise ValueError(f"There is no user {address}; `postoffice user list` shows who exists.")
    return account


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as error:
        fail(f"{path} cannot be read: {(error.strerror or str(error)).lower()}.")


@sieve_app.command("list")
def sieve_list(address: Address, data: DataDir = DATA, json: JsonFlag = False) -> None:
    """List a user's scripts; the active one (run at delivery) is marked.

    Example: postoffice sieve list alice@example.org
    """
    async def go(s: Services) -> list[SieveScriptRecord]:
        return await s.store.list_sieve_scripts((await _account(s, address)).id)

    scripts = with_services(data, go)
    if json:
        print_json([{"name": r.name, "active": r.active, "size": r.size, "updated": r.updated} for r in scripts])
        return
    if not scripts:
        console.print(f"{address} has no Sieve scripts.")
        return
    for r in scripts:
        when = dt.datetime.fromtimestamp(r.updated, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        console.print(f"{'*' if r.active else ' '} {r.name}  ({r.size} bytes, {when}){'  active' if r.active else ''}",
                      highlight=False, markup=False)


@sieve_app.command("get")
def sieve_get(address: Address, name: Name, data: DataDir = DATA) -> None:
    """Print a script as it was uploaded.

    Example: postoffice sieve get alice@example.org main > main.sieve
    """
    async def go(s: Services) -> str:
        return await s.store.get_sieve_script((await _account(s, address)).id, name)

    sys.stdout.write(with_services(data, go))


@sieve_app.command("put")
def sieve_put(address: Address, name: Name, file: ScriptFile, data: DataDir = DATA,
              activate: Annotated[bool, typer.Option("--activate", help="Make it the active script too.")] = False) -> None:
    """Check a script and store it under NAME (replacing a script of that name).

    A script with an error is not stored: the error names its line and column.

    Examples:
      postoffice sieve put alice@example.org main filters.sieve --activate
      echo 'require "fileinto"; fileinto "Archive";' | postoffice sieve put alice@example.org archive -
    """
    async def go(s: Services) -> bool:
        account = await _account(s, address)
        checked = await check_script(_read(file), name, max_size=s.config.sieve.max_script_size)
        if isinstance(checked, SieveError):
            raise ValueError(f"{file}: {checked}; the script was not stored.")
        limits = s.config.sieve
        created = await s.store.put_sieve_script(account.id, name, checked, max_scripts=limits.max_scripts,
                                                 max_size=limits.max_script_size)
        if activate:
            await s.store.activate_sieve_script(account.id, name)
        return created

    created = with_services(data, go)
    console.print(f"{'Stored' if created else 'Replaced'} the Sieve script {name!r} of {address}"
                  f"{', now active' if activate else ''}.", highlight=False, markup=False)


@sieve_app.command("activate")
def sieve_activate(address: Address, name: Name, data: DataDir = DATA) -> None:
    """Make NAME the script run at delivery (a user has at most one active script).

    Example: postoffice sieve activate alice@example.org main
    """
    async def go(s: Services) -> None:
        await s.store.activate_sieve_script((await _account(s, address)).id, name)

    with_services(data, go)
    console.print(f"{name!r} is now the active Sieve script of {address}.", highlight=False, markup=False)


@sieve_app.command("deactivate")
def sieve_deactivate(address: Address, data: DataDir = DATA) -> None:
    """Run no script of this user at delivery (the scripts stay stored).

    Example: postoffice sieve deactivate alice@example.org
    """
    async def go(s: Services) -> bool:
        return await s.store.deactivate_sieve_script((await _account(s, address)).id)

    was = with_services(data, go)
    console.print(f"{address} has no active Sieve script{'' if was else ' (there was none)'}.", highlight=False)


@sieve_app.command("delete")
def sieve_delete(address: Address, name: Name, data: DataDir = DATA) -> None:
    """Delete a script; the active one must be deactivated first.

    Example: postoffice sieve delete alice@example.org old
    """
    async def go(s: Services) -> None:
        await s.store.delete_sieve_script((await _account(s, address)).id, name)

    with_services(data, go)
    console.print(f"Deleted the Sieve script {name!r} of {address}.", highlight=False, markup=False)


@sieve_app.command("rename")
def sieve_rename(address: Address, name: Name,
                 new: Annotated[str, typer.Argument(help="The new name.")], data: DataDir = DATA) -> None:
    """Rename a script (an active script stays active).

    Example: postoffice sieve rename alice@example.org main filters
    """
    async def go(s: Services) -> None:
        await s.store.rename_sieve_script((await _account(s, address)).id, name, new)

    with_services(data, go)
    console.print(f"Renamed {name!r} to {new!r}.", highlight=False, markup=False)


@sieve_app.command("check")
def sieve_check(target: Annotated[str, typer.Argument(help='A script file ("-": standard input), or a user.')],
                script: Annotated[str | None, typer.Argument(
                    help="With a user: a script file, or the name of one of the user's scripts.")] = None,
                data: DataDir = DATA) -> None:
    """Check a script without storing it: a file, or a user's stored script.

    Exits non-zero with the line and column of the first error.

    Examples:
      postoffice sieve check filters.sieve
      postoffice sieve check alice@example.org filters.sieve
      postoffice sieve check alice@example.org main        (the stored script "main")
    """
    if script is None or script == "-" or Path(script).is_file():
        path = target if script is None else script
        result = asyncio.run(check_script(_read(path), max_size=load(data).sieve.max_script_size))
        where = path
    else:
        address, name = target, script

        async def go(s: Services) -> SieveError | str:
            text = await s.store.get_sieve_script((await _account(s, address)).id, name)
            return await check_script(text.encode("utf-8"), name, max_size=max(s.config.sieve.max_script_size, len(text) * 4))

        result = with_services(data, go)
        where = f"{address} {name}"
    if isinstance(result, SieveError):
        fail(f"{where}: {result}")
    console.print("The script is valid.")
