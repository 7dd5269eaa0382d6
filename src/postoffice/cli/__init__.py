"""The `postoffice` command line (DESIGN §5): one command, one group per job."""

from __future__ import annotations

import sys

import typer

from postoffice.cli import admin_log, help_format
from postoffice.cli.access_cmds import allow_app, block_app
from postoffice.cli.backup_cmds import backup_command, restore_command
from postoffice.cli.check_cmds import check_app
from postoffice.cli.directory_cmds import alias_app, domain_app, user_app
from postoffice.cli.dkim_cmds import dkim_app
from postoffice.cli.dmarc_cmds import dmarc_app
from postoffice.cli.explain_cmds import explain_app
from postoffice.cli.fetch_cmds import fetch_app
from postoffice.cli.migrate_cmds import migrate_command
from postoffice.cli.probe_cmds import smtp_test_command
from postoffice.cli.queue_cmds import queue_app
from postoffice.cli.records_cmds import domain_records
from postoffice.cli.server_cmds import config_app, init_command, serve_command
from postoffice.cli.share_cmds import share_command
from postoffice.cli.sieve_cmds import sieve_app
from postoffice.cli.status_cmds import status_command
from postoffice.cli.tls_cmds import tls_app
from postoffice.cli.transfer_cmds import export_command, import_command

help_format.install()
app = typer.Typer(
    name="postoffice",
    help="A complete, self-hosted mail server. Start with `postoffice serve --dev` to try it out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("init")(init_command)
app.command("serve")(serve_command)
app.command("status")(status_command)
domain_app.command("records")(domain_records)
app.add_typer(domain_app, name="domain")
app.add_typer(dkim_app, name="dkim")
app.add_typer(user_app, name="user")
app.add_typer(alias_app, name="alias")
app.add_typer(config_app, name="config")
app.add_typer(queue_app, name="queue")
app.add_typer(block_app, name="block")
app.add_typer(allow_app, name="allow")
app.add_typer(dmarc_app, name="dmarc")
app.add_typer(check_app, name="check")
app.add_typer(explain_app, name="explain")
app.add_typer(tls_app, name="tls")
app.add_typer(sieve_app, name="sieve")
app.command("import")(import_command)
app.command("export")(export_command)
app.add_typer(fetch_app, name="fetch")
app.command("migrate")(migrate_command)
app.command("share")(share_command)
app.command("backup")(backup_command)
app.command("restore")(restore_command)
app.command("smtp-test")(smtp_test_command)


def main() -> None:
    try:
        app()
    except SystemExit as done:
        if done.code in (0, None):
            admin_log.record(sys.argv[1:])
        raise
