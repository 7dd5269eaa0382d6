"""Which mailbox a name means for a session, and what the session may do there (RFC 4314).

A user's own mailboxes have their plain names, with every right. Mailboxes other users shared
with them appear under `Shared/OWNER/NAME` (the other users' namespace of RFC 2342), with the
rights the owner granted to them or to "anyone". A shared mailbox the user has neither the
"l" nor the "r" right on does not exist for them (RFC 4314 §4: no way to probe for names).
"""

from __future__ import annotations

from dataclasses import dataclass

from postoffice.directory import DirectoryError
from postoffice.imap.flag_rights import right_for
from postoffice.imap.session import ImapSession
from postoffice.store.interface import (
    SYSTEM_FLAGS,
    AccountRecord,
    FlagsKept,
    InvalidName,
    MailboxRecord,
)
from postoffice.store.mailbox_names import SHARED_ROOT, check_name

SHARED = SHARED_ROOT
DELIMITER = "/"
ALL_RIGHTS = "lrswipkxtecda"
# RFC 4314 §2.1.1: rights a server always grants together are listed as one group in LISTRIGHTS.
ANYONE = "anyone"


@dataclass(frozen=True, slots=True)
class MailboxAccess:
    record: MailboxRecord
    name: str  # as this user sees it
    rights: str
    owner: str  # the owner's address

    @property
    def own(self) -> bool:
        return self.rights == ALL_RIGHTS and not self.name.startswith(SHARED + DELIMITER)

    def may(self, rights: str) -> bool:
        """Whether the user holds every one of `rights`."""
        return all(r in self.rights for r in rights)

    def flags_kept(self) -> FlagsKept | None:
        """What APPEND, COPY and MOVE into this mailbox keep of a message's flags (None: all)."""
        return None if self.may("stw") else flags_kept(self.rights)


def shared_name(owner: str, name: str) -> str:
    return f"{SHARED}{DELIMITER}{owner}{DELIMITER}{name}"


def in_shared_namespace(name: str) -> bool:
    """Whether `name` is in the other users' namespace (RFC 2342), where no one creates."""
    return name.split(DELIMITER, 1)[0].lower() == SHARED.lower()


def missing_code(name: str) -> str:
    """The code for a mailbox that does not exist: TRYCREATE when CREATE could make it
    (RFC 9051 §6.3.12), NONEXISTENT when it never could (another user's, or an invalid name)."""
    if in_shared_namespace(name):
        return "NONEXISTENT"
    try:
        check_name(name)
    except InvalidName:
        return "NONEXISTENT"
    return "TRYCREATE"


def split_shared(name: str) -> tuple[str, str] | None:
    """("owner@domain", "Mailbox/Path") for a name in the shared namespace, else None."""
    parts = name.split(DELIMITER, 2)
    if len(parts) == 3 and parts[0].lower() == SHARED.lower() and parts[1] and parts[2]:
        return parts[1], parts[2]
    return None


async def find_mailbox(session: ImapSession, name: str) -> MailboxAccess | None:
    """The mailbox `name` names for this session, or None if it does not exist for them."""
    assert session.account is not None
    services = session.services
    shared = split_shared(name)
    if shared is None:
        record = await services.store.get_mailbox(session.account.id, name)
        return None if record is None else MailboxAccess(record, record.name, ALL_RIGHTS, session.account.address)
    owner_address, inner = shared
    owner = await find_user(session, owner_address)
    if owner is None:
        return None
    if owner.id == session.account.id:  # one's own mailbox under the shared prefix
        return await find_mailbox(session, inner)
    record = await services.store.get_mailbox(owner.id, inner)
    if record is None:
        return None
    rights = rights_of(await services.store.get_acl(record.id), session.account.address)
    if "l" not in rights and "r" not in rights:
        return None
    return MailboxAccess(record, shared_name(owner.address, record.name), rights, owner.address)


async def find_user(session: ImapSession, address: str) -> AccountRecord | None:
    """The account of `address`, or None when there is none, including when `address` is not
    an address at all (``Shared/not-an-address/...`` names no one)."""
    try:
        return await session.services.directory.get_user(address)
    except DirectoryError:
        return None


def viewer_of(session: ImapSession, name: str) -> int | None:
    """The account whose own \\Seen applies to the mailbox this user calls `name`: theirs on
    another user's shared mailbox when [imap] per_user_seen is on, else none (the owner's)."""
    if split_shared(name) is None or not session.services.config.imap.per_user_seen or session.account is None:
        return None
    return session.account.id


def rights_of(acl: dict[str, str], address: str) -> str:
    """The rights `address` holds: its own entry plus those of "anyone"."""
    held = set(acl.get(ANYONE, ""))
    for identifier, rights in acl.items():
        if identifier.lower() == address.lower():
            held.update(rights)
    return "".join(r for r in ALL_RIGHTS if r in held)


def flags_kept(rights: str) -> FlagsKept:
    """The flags a user with `rights` may set on a mailbox; APPEND, COPY and MOVE drop the rest
    (the message itself only needs "i")."""
    system = frozenset(flag for flag in SYSTEM_FLAGS if right_for(flag) in rights)
    return FlagsKept(system, keywords="w" in rights)


def permitted_flags(session: ImapSession, flags: list[str]) -> list[str]:
    """The flags this user may change in the selected mailbox."""
    return session.permitted_flags(flags)
