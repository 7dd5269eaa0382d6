"""`postoffice tls renew`: ask the running server for a new ACME certificate now (acme/renewal.py
does the work; the CA validates through the server's listeners, so only `serve` can)."""

from __future__ import annotations

import json as jsonlib
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from postoffice.cli.common import (
    DATA,
    DataDir,
    JsonFlag,
    console,
    fail,
    load,
    print_json,
    server_pid,
)
from postoffice.durable import write_file

tls_app = typer.Typer(help="The server's TLS certificate: renew it now (with [tls] acme).",
                      no_args_is_help=True)

WaitSeconds = Annotated[float, typer.Option(
    "--wait", min=1, help="How long to wait for the server's answer, in seconds.")]


@tls_app.command("renew")
def tls_renew(data: DataDir = DATA, wait: WaitSeconds = 300, json: JsonFlag = False) -> None:
    """Have the running server get a new certificate from the ACME CA now, and say how it went.

    Renewals happen by themselves 30 days before expiry; this is for after a fix (DNS now points
    here, a port is open) or to try new names in acme_names. Exit status 1 when it failed.

    Example: postoffice tls renew
    """
    from postoffice.acme.renewal import renew_request_path, state_path  # urllib only when used

    config = load(data)
    if not config.tls.acme:
        fail(f"[tls] acme is off in {data / 'postoffice.toml'}, so postoffice does not manage the "
             "certificate; renew it with the tool that made it (certbot renew), or set acme = true.")
    pid = server_pid(data)
    if pid is None:
        fail(f"No postoffice serve is running on {data}, and only it can answer the CA; start it: "
             "it gets a certificate at start when the one in use is missing, self-signed or due.")
    asked = time.time()
    try:
        write_file(renew_request_path(config.data_dir), b"", mode=0o644)
    except OSError as error:
        fail(f"Could not leave the request in {error.filename} ({error.strerror}); run this as "
             "the user running postoffice.")
    state = _wait_for_outcome(state_path(config.data_dir), asked, wait)
    if state is None:
        fail(f"The running server (pid {pid}) did not finish within {wait:.0f} seconds; its log "
             "says how it goes (lines starting with ACME:).")
    if json:
        print_json({"ok": state["ok"], "message": state["message"]})
    elif state["ok"]:
        console.print(f"Done: {state['message']}.", soft_wrap=True, highlight=False)
    if not state["ok"]:
        fail(f"The server {state['message']}.")


def _wait_for_outcome(path: Path, asked: float, wait: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            state = jsonlib.loads(path.read_text())
        except (OSError, ValueError):
            state = None
        if isinstance(state, dict) and isinstance(state.get("time"), int | float) \
                and state["time"] >= asked:
            return state
        time.sleep(0.5)
    return None
