"""One IMAP connection: its state (RFC 9051 §3) and the helpers command handlers share.

States: not authenticated -> authenticated -> selected -> logout. Handlers (imap/commands/) get
the session, write untagged responses with `send`, and return the tagged completion. Mailbox
updates made elsewhere are announced by `announce_updates` at the moments RFC 9051 §7.5.1
allows: never EXPUNGE while answering FETCH, STORE or SEARCH by sequence number.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from postoffice.imap.proto import responses as resp
from postoffice.imap.proto.parser import ImapServerParser
from postoffice.imap.snapshot import MailboxSnapshot, Updates
from postoffice.net.listener import Connection
from postoffice.services import Services
from postoffice.store.interface import AccountRecord, MailboxRecord


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


@dataclass(frozen=True, slots=True)
class Completion:
    """The tagged response that ends a command."""

    status: str  # "OK" | "NO" | "BAD"
    text: str
    code: str | None = None


# Returned by a handler that wrote its own tagged response (STARTTLS must, before the handshake).
ALREADY_ANSWERED = Completion("", "")


def ok(text: str = "done", code: str | None = None) -> Completion:
    return Completion("OK", text, code)


def no(text: str, code: str | None = None) -> Completion:
    return Completion("NO", text, code)


def bad(text: str, code: str | None = None) -> Completion:
    return Completion("BAD", text, code)


@dataclass
class ImapSession:
    conn: Connection
    services: Services
    parser: ImapServerParser  # AUTHENTICATE, STARTTLS and login change its mode and limits
    state: State = State.NOT_AUTHENTICATED
    account: AccountRecord | None = None
    snapshot: MailboxSnapshot | None = None
    enabled: set[str] = field(default_factory=set)
    saved_search: list[int] = field(default_factory=list)  # uids, for "$" (RFC 5182)
    out: list[bytes] = field(default_factory=list)

    # --- output ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.out.append(data)

    def untagged(self, text: str | bytes) -> None:
        self.out.append(resp.untagged(text))

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def utf8(self) -> bool:
        return "UTF8=ACCEPT" in self.enabled or self.rev2

    # --- the selected mailbox -----------------------------------------------------------------

    @property
    def mailbox(self) -> MailboxRecord:
        assert self.snapshot is not None
        return self.snapshot.mailbox

    def close_mailbox(self) -> None:
        if self.snapshot is not None:
            self.snapshot.close()
            self.snapshot = None
        self.saved_search = []
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    async def announce_updates(self, *, allow_expunge: bool) -> None:
        """Tell the client what changed in its mailbox since it was last told."""
        if self.snapshot is None:
            return
        self.write_updates(await self.snapshot.refresh(allow_expunge=allow_expunge))

    def write_updates(self, updates: Updates) -> None:
        for seq in updates.expunged:
            self.untagged(f"{seq} EXPUNGE")
        if updates.exists is not None:
            self.untagged(f"{updates.exists} EXISTS")
            if not self.rev2 and updates.recent is not None:
                self.untagged(f"{updates.recent} RECENT")
        for seq, record in updates.flags:
            flags = set(record.flags)
            if not self.rev2 and self.snapshot is not None and record.uid in self.snapshot.recent:
                flags.add("\\Recent")
            self.send(b"* %d FETCH (UID %d FLAGS %s)\r\n" % (seq, record.uid, resp.flags_list(flags)))
