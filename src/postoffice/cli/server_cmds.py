"""`postoffice init`, `serve` and `config show`."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from postoffice import logevents
from postoffice.cli.common import DATA, DataDir, console, fail, initialised, load
from postoffice.config import Config, ConfigError, render_config
from postoffice.net.running import RunningListener
from postoffice.services import open_services
from postoffice.setup.initialise import DEMO_USER, InitResult, initialise, machine_hostname
from postoffice.store.interface import StoreError

config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)

CLIENT_SETTINGS = {
    "smtp": "incoming mail from other servers (MX)",
    "submission": "sending from mail clients, STARTTLS",
    "submissions": "sending from mail clients, TLS",
    "imap": "reading mail, STARTTLS",
    "imaps": "reading mail, TLS",
    "pop3": "downloading mail, STARTTLS",
    "pop3s": "downloading mail, TLS",
    "lmtp": "local delivery from another MTA",
    "managesieve": "Sieve filter upload from mail clients, STARTTLS",
    "http": "mail client autoconfiguration, ACME challenges",
    "https": "the same, and the MTA-STS policy",
}


def init_command(
    data: DataDir = DATA,
    domain: Annotated[str | None, typer.Option(help="A first domain to receive mail for (gets a DKIM key).")] = None,
    hostname: Annotated[str | None, typer.Option(
        help="This server's public host name (for TLS and HELO); default: this machine's name.")] = None,
) -> None:
    """Create a data directory: config, TLS certificate, store, and optionally a first domain.

    Running it again on an initialised directory changes nothing.

    Example: postoffice init --data /var/lib/postoffice --domain example.org --hostname mail.example.org
    """
    chosen = hostname
    if chosen is None:
        chosen, how = machine_hostname()
    result = _initialise(data, chosen, domain)
    if result.created and hostname is None:
        console.print(escape(how), highlight=False)
    for line in result.messages:
        console.print(line)
    if result.created:
        console.print(f"Initialised {data}. Next: `postoffice user add USER@DOMAIN --data {data}`, then `postoffice serve --data {data}`.")


def _initialise(data: Path, hostname: str, domain: str | None = None, *, demo: bool = False) -> InitResult:
    """initialise(), with what can go wrong said in one sentence."""
    try:
        return initialise(data, hostname, domain, demo=demo)
    except (ConfigError, ValueError, StoreError) as exc:
        fail(str(exc))
    except OSError as exc:  # e.g. a data directory under a directory this user cannot write
        where = exc.filename or data
        reason = (exc.strerror or str(exc)).lower()
        fail(f"{data} cannot be initialised: {where} cannot be written ({reason}); choose a data directory "
             "this user may write, or run postoffice as the user that owns it and the directories above it.")


def serve_command(
    data: DataDir = DATA,
    dev: Annotated[bool, typer.Option("--dev", help="Loopback high ports (10025, 10143, 10080, ...), no root; creates a demo domain and user on first run.")] = False,
) -> None:
    """Run every listener in one process until SIGTERM or Ctrl-C.

    Example: postoffice serve --dev   (try it out on this machine)
    """
    demo_password = None
    if dev and not initialised(data):
        console.print(f"First run: initialising {data} with a demo domain and user ...")
        result = _initialise(data, "localhost", demo=True)
        demo_password = result.demo_password
    config = load(data)
    if dev:
        config = config.with_dev_listeners()
    logevents.configure(config.server.log_level, config.server.log_format)

    demo_exists = dev and demo_password is None and _user_exists(config, DEMO_USER)

    def ready(listeners: list[RunningListener]) -> None:
        _print_connection_details(config, listeners, dev, demo_password, demo_exists)

    # Here, not at the top: the protocol servers cost ~0.1 s to import, which the admin
    # commands sharing this CLI need not pay.
    from postoffice.app import StartupError, run

    try:
        run(config, ready=ready, dev=dev)
    except (StartupError, StoreError) as exc:  # StoreError: e.g. a schema upgrade that failed, a store path typo
        logging.getLogger("postoffice").debug("start-up failed", exc_info=True)
        fail(str(exc))


def _user_exists(config: Config, address: str) -> bool:
    """Whether `address` is a user here, for the start-up text; False when the store cannot say
    (serve itself then reports why it cannot open it)."""

    async def look() -> bool:
        async with open_services(config) as services:
            return await services.directory.get_user(address) is not None

    try:
        return asyncio.run(look())
    except Exception:  # only decides whether a line is printed
        return False


def _print_connection_details(config: Config, listeners: list[RunningListener], dev: bool, password: str | None,
                              demo_exists: bool) -> None:
    from postoffice.app import configured_listeners

    live = {(entry.protocol, entry.address) for entry in listeners}
    table = Table("protocol", "address", "what for", "status", title="postoffice is running")
    for protocol, address in configured_listeners(config):
        status = "listening" if (protocol, str(address)) in live else "not in this version yet"
        table.add_row(protocol, str(address), CLIENT_SETTINGS.get(protocol, ""), status)
    console.print(table)
    console.print(f"data directory: {config.data_dir}")
    if dev:
        if password:
            console.print(f"demo user: [bold]{DEMO_USER}[/] password: [bold]{escape(password)}[/] (shown once; change it with "
                          f"`postoffice user passwd {DEMO_USER} --data {escape(str(config.data_dir))}`)", markup=True)
        elif demo_exists:  # not in a data directory made by `init`
            console.print(f"demo user: {DEMO_USER} (password shown on first run; reset it with `postoffice user passwd {DEMO_USER} --data {config.data_dir}`)")
        console.print("mail clients: server 127.0.0.1, user name = full address, TLS certificate is self-signed")
    sys.stdout.flush()


@config_app.command("show")
def config_show(data: DataDir = DATA) -> None:
    """Print the effective configuration (every key, defaults filled in) as TOML.

    Example: postoffice config show --data /var/lib/postoffice
    """
    sys.stdout.write(render_config(load(data)))
