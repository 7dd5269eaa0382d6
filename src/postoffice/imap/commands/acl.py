"""SETACL, DELETEACL, GETACL, LISTRIGHTS, MYRIGHTS (RFC 4314, with RIGHTS=texk) and
GETQUOTA, GETQUOTAROOT, SETQUOTA (RFC 9208, the STORAGE resource).

Only the owner (who always holds every right) or a user with the "a" right administers a
mailbox's ACL. Identifiers are account addresses or "anyone". The obsolete RFC 2086 rights are
mapped as RFC 4314 §2.1.1 says: "c" to "k", "d" to "x", "t" and "e". Quotas are per account
(one root, "", for a user's own mailboxes) and are set by the administrator with
`postoffice user quota`, so SETQUOTA is refused.
"""

from __future__ import annotations

from postoffice.imap.access import ALL_RIGHTS, ANYONE, MailboxAccess, find_mailbox, find_user
from postoffice.imap.proto import commands as c
from postoffice.imap.proto import events as ev
from postoffice.imap.proto import responses as resp
from postoffice.imap.session import Completion, ImapSession, no, ok

_OBSOLETE = {"c": "k", "d": "xte"}


def normalise_rights(rights: str) -> str:
    expanded = "".join(_OBSOLETE.get(r, r) for r in rights)
    return "".join(r for r in ALL_RIGHTS if r in expanded)


async def _administered(session: ImapSession, name: str) -> MailboxAccess | Completion:
    access = await find_mailbox(session, name)
    if access is None:
        return no(f"No mailbox {name}", "NONEXISTENT")
    if not access.may("a"):
        return no(f"You may not administer {name}", "NOPERM")
    return access


async def _change(session: ImapSession, name: str, identifier: str, change: str, mode: str) -> Completion:
    access = await _administered(session, name)
    if isinstance(access, Completion):
        return access
    if identifier.lower() == access.owner.lower():
        return no("The owner always has every right", "CANNOT")
    if identifier.lower() != ANYONE and await find_user(session, identifier) is None:
        return no(f"There is no user {identifier} here", "NONEXISTENT")
    store = session.services.store
    current = (await store.get_acl(access.record.id)).get(identifier, "")
    wanted = normalise_rights(change)
    if mode == "add":
        wanted = normalise_rights(current + wanted)
    elif mode == "remove":
        wanted = "".join(r for r in current if r not in wanted)
    await store.set_rights(access.record.id, identifier.lower() if identifier.lower() == ANYONE else identifier, wanted)
    return ok("ACL changed")


async def setacl(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.SetAcl)
    return await _change(session, args.mailbox, args.identifier, args.rights, args.mode)


async def deleteacl(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.DeleteAcl)
    return await _change(session, args.mailbox, args.identifier, "", "replace")


async def getacl(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.GetAcl)
    access = await _administered(session, args.mailbox)
    if isinstance(access, Completion):
        return access
    entries = [(access.owner, ALL_RIGHTS), *(await session.services.store.get_acl(access.record.id)).items()]
    session.send(resp.acl_response(access.name, entries, utf8=session.utf8))
    return ok("GETACL completed")


async def listrights(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.ListRights)
    access = await _administered(session, args.mailbox)
    if isinstance(access, Completion):
        return access
    if args.identifier.lower() == access.owner.lower():
        session.send(resp.listrights_response(access.name, args.identifier, ALL_RIGHTS, []))
    else:  # RIGHTS=texk: every right can be granted on its own
        session.send(resp.listrights_response(access.name, args.identifier, "", list(ALL_RIGHTS)))
    return ok("LISTRIGHTS completed")


async def myrights(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.MyRights)
    access = await find_mailbox(session, args.mailbox)
    if access is None:
        return no(f"No mailbox {args.mailbox}", "NONEXISTENT")
    session.send(resp.myrights_response(access.name, access.rights, utf8=session.utf8))
    return ok("MYRIGHTS completed")


# --- QUOTA (RFC 9208) ------------------------------------------------------------------------


async def _storage(session: ImapSession) -> list[tuple[str, int, int]]:
    """STORAGE usage and limit in units of 1024 octets, or nothing when there is no limit."""
    assert session.account is not None
    account = await session.services.directory.get_user(session.account.address)
    if account is None or not account.quota:
        return []
    return [("STORAGE", (account.used + 1023) // 1024, account.quota // 1024)]


async def getquotaroot(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.GetQuotaRoot)
    access = await find_mailbox(session, args.mailbox)
    if access is None:
        return no(f"No mailbox {args.mailbox}", "NONEXISTENT")
    resources = await _storage(session) if access.own else []
    session.send(resp.quotaroot_response(access.name, [""] if resources else [], utf8=session.utf8))
    if resources:
        session.send(resp.quota_response("", resources))
    return ok("GETQUOTAROOT completed")


async def getquota(session: ImapSession, command: ev.ImapCommand) -> Completion:
    args = command.args
    assert isinstance(args, c.GetQuota)
    resources = await _storage(session)
    if args.root != "" or not resources:
        return no(f"No quota root {args.root!r}", "NONEXISTENT")
    session.send(resp.quota_response("", resources))
    return ok("GETQUOTA completed")


async def setquota(session: ImapSession, command: ev.ImapCommand) -> Completion:
    return no("Quotas are set by the administrator (postoffice user quota ADDRESS SIZE)", "NOPERM")
