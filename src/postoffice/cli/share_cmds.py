"""`postoffice share`: let other users read or work in a mailbox (IMAP ACL, RFC 4314)."""

from __future__ import annotations

from typing import Annotated

import typer

from postoffice.cli.common import DATA, DataDir, JsonFlag, console, fail, print_json, with_services
from postoffice.services import Services

RIGHTS_HELP = """Rights letters (RFC 4314): l see it in the folder list, r read, s keep own read/unread,
w set other flags, i add messages, p post, k create subfolders, x delete the mailbox,
t mark deleted, e expunge, a administer these rights. Common sets: lr (read only), lrs (read,
own seen), lrswi (work in it), lrswipkxte (everything but administration). An empty string
removes the share."""

_ALL = "lrswipkxtea"


def share_command(
    mailbox: Annotated[str, typer.Argument(help="OWNER/MAILBOX, e.g. team@example.org/INBOX or alice@example.org/Projects.")],
    with_: Annotated[str | None, typer.Option("--with", help='The user to share with, or "anyone" (every user here).')] = None,
    rights: Annotated[str, typer.Option(help=RIGHTS_HELP)] = "lrswi",
    data: DataDir = DATA,
    json: JsonFlag = False,
) -> None:
    """Share a mailbox with another user, change their rights, or show who has access.

    Shared mailboxes appear to the other user under Shared/OWNER/MAILBOX in their mail client
    and update live there (IDLE) like their own.

    Examples:
      postoffice share team@example.org/INBOX --with alice@example.org --rights lrswi
      postoffice share team@example.org/INBOX --with anyone --rights lr
      postoffice share team@example.org/INBOX --with alice@example.org --rights ""   (stop sharing)
      postoffice share team@example.org/INBOX                                          (show access)
    """
    owner, _, name = mailbox.partition("/")
    name = name or "INBOX"
    if any(r not in _ALL for r in rights):
        fail(f"Unknown rights letters in {rights!r}: use some of {_ALL} (see --help).")

    async def go(s: Services) -> dict[str, str]:
        account = await s.directory.get_user(owner)
        if account is None:
            raise ValueError(f"There is no user {owner}; `postoffice user list` shows who exists.")
        record = await s.store.get_mailbox(account.id, name)
        if record is None:
            raise ValueError(f"{owner} has no mailbox {name!r}.")
        if with_ is not None:
            identifier = "anyone" if with_.lower() == "anyone" else with_
            if identifier != "anyone":
                grantee = await s.directory.get_user(identifier)
                if grantee is None:
                    raise ValueError(f"There is no user {identifier} to share with.")
                if grantee.id == account.id:
                    raise ValueError(f"{identifier} owns {name} and always has every right.")
                identifier = grantee.address
            await s.store.set_rights(record.id, identifier, "".join(r for r in _ALL if r in rights))
        return await s.store.get_acl(record.id)

    acl = with_services(data, go)
    if json:
        print_json({"owner": owner, "mailbox": name, "acl": acl})
        return
    if with_ is not None:
        console.print(f"{with_} now has {rights or 'no'} rights on {owner}/{name}." if rights
                      else f"{owner}/{name} is no longer shared with {with_}.")
    if not acl:
        console.print(f"{owner}/{name} is not shared with anyone.")
    for identifier, held in acl.items():
        console.print(f"  {identifier}: {held}")
