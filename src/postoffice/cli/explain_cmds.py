"""`postoffice explain bounce FILE.eml`: who did not get a message, which server refused it, why."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from postoffice.cli.common import JsonFlag, console, fail, print_json
from postoffice.diagnostics.bounce_explain import explain
from postoffice.diagnostics.bounce_parse import BouncedRecipient, NotABounce, parse_bounce

explain_app = typer.Typer(help="Explain mail problems in plain words: why a message bounced.",
                          no_args_is_help=True)


@explain_app.command("bounce")
def explain_bounce(
    file: Annotated[Path, typer.Argument(help="The bounce, saved as a .eml file (\"Save as\" in your mail client).",
                                         readable=False)],
    json: JsonFlag = False,
) -> None:
    """Read a bounce (a "Mail Delivery Failed" or "Undeliverable" message) and say, for each
    recipient that did not get the message: the address, the status code, the server that refused
    it, its reply, the cause in plain words and the fix. Reads RFC 3464 delivery-status reports
    (Postfix, Exchange, Gmail, postoffice itself ...) and the text bounces of qmail, Exim, Yahoo,
    Lotus Domino and older Exchange; a bounce forwarded as an attachment is read too. Exits 1,
    with one sentence, when the file is not a bounce.

    --json prints a list, one object per recipient, with the keys recipient, status,
    remote_mta, reply, cause and fix (remote_mta and reply are empty when the bounce does not say).

    Example: postoffice explain bounce ~/Downloads/undeliverable.eml
    """
    try:
        raw = file.read_bytes()
    except OSError as error:
        fail(f"Cannot read {file}: {error.strerror or error}; give the path of a saved message (.eml).")
    try:
        bounced = parse_bounce(raw)
    except NotABounce as error:
        fail(f"{file}: {error}")
    if json:
        print_json([_as_json(entry) for entry in bounced])
        return
    for number, entry in enumerate(bounced):
        if number:
            console.print()
        console.print(_paragraph(entry), soft_wrap=True)


def _as_json(entry: BouncedRecipient) -> dict[str, Any]:
    explanation = explain(entry)
    return {"recipient": entry.recipient, "status": entry.status, "remote_mta": entry.remote_mta,
            "reply": entry.reply, "cause": explanation.cause, "fix": explanation.fix}


def _paragraph(entry: BouncedRecipient) -> str:
    explanation = explain(entry)
    outcome = "is delayed" if entry.action == "delayed" else "was not delivered"
    server = f", refused by {entry.remote_mta}" if entry.remote_mta else ""
    lines = [f"{entry.recipient}: the message {outcome} (status {entry.status}{server})."]
    if entry.reply:
        lines.append(f"  The server said: {entry.reply}")
    lines.append(f"  Cause: {explanation.cause}")
    lines.append(f"  Fix: {explanation.fix}")
    return "\n".join(lines)
