"""What every command shares: the data directory option, loading config, plain-language errors."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from postoffice.config import Config, ConfigError, load_config
from postoffice.services import Services, open_services
from postoffice.setup.initialise import CONFIG_NAME, is_initialised
from postoffice.store.interface import StoreError

T = TypeVar("T")
# No markup by default: what commands print holds paths, addresses, mailbox and config section
# names, and rich would take "[store] path" or a mailbox "[news]" for a style and drop it.
# A call that wants a style says markup=True and escapes what it interpolates.
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)

DataDir = Annotated[
    Path,
    typer.Option(
        "--data",
        envvar="POSTOFFICE_DATA",
        help="Data directory (config, store, keys, certificates).",
        show_default=True,
        # Checked by load(), which says what to do about it in one sentence; click's own check
        # prints a usage box that blames the option instead.
        readable=False,
    ),
]
DATA = Path("data")  # the default; POSTOFFICE_DATA or --data override it
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON for scripts.")]
PASSWORD_ENV = "POSTOFFICE_PASSWORD"


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def server_pid(data: Path) -> str | None:
    """The pid of the `serve` running on this data directory, or None (its lock is free)."""
    try:
        handle = open(data / "serve.lock")  # noqa: SIM115 - closed below
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "unknown"
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def initialised(data_dir: Path) -> bool:
    """Whether DATA holds a postoffice.toml; a directory this user cannot read is one sentence."""
    try:
        return is_initialised(data_dir)
    except PermissionError:
        fail(f"The data directory {data_dir} cannot be read by this user (permission denied); run postoffice "
             f"as the user that owns it (`ls -ld {data_dir}` shows who), or give this user access with chown or chmod.")


def load(data_dir: Path) -> Config:
    if not initialised(data_dir):
        fail(f"{data_dir} is not a postoffice data directory (no {CONFIG_NAME}); run `postoffice init --data {data_dir}` first.")
    try:
        return load_config(data_dir)
    except ConfigError as exc:
        fail(str(exc))


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine, turning the errors users cause into one plain sentence."""
    try:
        return asyncio.run(coro)
    except (StoreError, ConfigError, ValueError) as exc:
        fail(str(exc))


def with_services(data_dir: Path, fn: Callable[[Services], Awaitable[T]]) -> T:
    config = load(data_dir)

    async def body() -> T:
        async with open_services(config) as services:
            return await fn(services)

    return run_async(body())


def read_password(password_stdin: bool, *, confirm: bool = True) -> str:
    """From stdin (--password-stdin), the POSTOFFICE_PASSWORD variable, or a prompt; never argv."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV]
    elif sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    else:
        fail(f"No password given: pipe it with --password-stdin or set {PASSWORD_ENV}.")
    if not password:
        fail("The password is empty.")
    return password


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """A storage size as users write it, for every option and argument that takes one:
    '2G', '500M', '750K', '1.5G', '1048576' or '0' (unlimited) -> bytes (binary units)."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1:] if value[-1:] in _UNITS and not value[-1:].isdigit() else ""
    number = value[: len(value) - len(unit)]
    try:
        size = float(number) * _UNITS[unit]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a size: use e.g. 2G, 500M, 750K or 0 for unlimited.") from None
    if size < 0 or size != size or size == float("inf"):
        raise typer.BadParameter(f"{text!r} is not a size: it must be 0 (unlimited) or more, e.g. 2G.")
    return int(size)


def print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
