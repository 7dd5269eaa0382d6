"""What the transfer IMAP client returns, and how it reads those records from responses.

The records (:class:`MailboxListing`, :class:`SelectedMailbox`, :class:`FetchedMessage`,
:class:`FetchFailure`) and errors are the client's API for fetch and migrate; the functions
turn parsed response values (``imap_client_proto``) into them, forgiving what a real server
gets wrong: a folder name that is not valid modified UTF-7 is reported on its listing
(``error``), not fatal; a FETCH item that does not parse leaves that message without a body, so
the caller reports that one message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from postoffice.imap.proto.utf7 import Utf7Error, decode_utf7
from postoffice.transfer.imap_client_proto import (
    Atom,
    SpooledLiteral,
    Tagged,
    Untagged,
    Value,
    as_int,
    as_text,
    fetch_attributes,
    parse_internaldate,
)

if TYPE_CHECKING:
    from postoffice.transfer.imap_client_changes import Resync

__all__ = [
    "SPECIAL_USES",
    "FetchFailure",
    "FetchedMessage",
    "ImapCommandFailed",
    "ImapConnectionLost",
    "ImapError",
    "MailboxListing",
    "SelectedMailbox",
    "fetched_message",
    "flag_set",
    "gm_label",
    "mailbox_listing",
    "selected_mailbox",
    "uid_set",
]

SPECIAL_USES = frozenset(
    {"\\ALL", "\\ARCHIVE", "\\DRAFTS", "\\FLAGGED", "\\JUNK", "\\SENT", "\\TRASH", "\\IMPORTANT"}
)


class ImapError(Exception):
    """Anything that went wrong talking to the server; str() is one plain sentence."""


class ImapConnectionLost(ImapError):
    """The connection closed, timed out or can no longer be understood."""


class ImapCommandFailed(ImapError):
    """The server answered NO or BAD."""

    def __init__(self, command: str, response: Tagged) -> None:
        self.command = command
        self.status = response.status
        self.code = response.code
        self.text = response.text
        detail = f" [{response.code}]" if response.code else ""
        super().__init__(f"{command} failed: {response.status}{detail} {response.text}".rstrip())


@dataclass(frozen=True, slots=True)
class MailboxListing:
    """One ``* LIST`` line. ``name`` is decoded from modified UTF-7; when that fails ``error``
    says why and ``name`` is the wire form as it came (usable to SELECT it, see ``wire_name``)."""

    name: str
    wire_name: bytes
    delimiter: str | None
    attributes: frozenset[str]
    special_use: str | None = None
    error: str | None = None

    @property
    def selectable(self) -> bool:
        return not {"\\NOSELECT", "\\NONEXISTENT"} & {a.upper() for a in self.attributes}


@dataclass(frozen=True, slots=True)
class SelectedMailbox:
    """What SELECT/EXAMINE said. ``highestmodseq`` is None without CONDSTORE or with NOMODSEQ
    (RFC 7162 §3.1.2.2); ``resync`` is what a SELECT (QRESYNC ...) reported, when one was sent."""

    name: str
    uidvalidity: int | None
    uidnext: int | None
    exists: int
    highestmodseq: int | None
    flags: frozenset[str]
    permanent_flags: frozenset[str]
    read_only: bool
    resync: Resync | None = None


@dataclass(slots=True)
class FetchedMessage:
    """One message's data from ``UID FETCH``. ``body`` is ``bytes`` or, for a large message, a
    :class:`SpooledLiteral` (see :meth:`raw`, :meth:`close`); None when not asked for."""

    uid: int
    flags: frozenset[str] = frozenset()
    internal_date: datetime | None = None
    size: int | None = None
    body: bytes | SpooledLiteral | None = None
    modseq: int | None = None
    gm_msgid: int | None = None
    gm_labels: tuple[str, ...] = ()

    def raw(self) -> bytes:
        if self.body is None:
            return b""
        return self.body if isinstance(self.body, bytes) else self.body.read()

    def close(self) -> None:
        if isinstance(self.body, SpooledLiteral):
            self.body.close()


@dataclass(frozen=True, slots=True)
class FetchFailure:
    """A UID the server would not give (``reason`` is the server's word or ours)."""

    uid: int
    reason: str


def uid_set(uids: Sequence[int]) -> str:
    """``1:5,8,10:12`` for sorted or unsorted UIDs."""
    ordered = sorted(set(uids))
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


def flag_set(value: Value) -> frozenset[str]:
    if not isinstance(value, list):
        raise ValueError("not a flag list")
    return frozenset(as_text(v) for v in value if isinstance(v, Atom | bytes))


def selected_mailbox(
    name: str, untagged: list[Untagged], *, read_only: bool, resync: Resync | None = None
) -> SelectedMailbox:
    """The SELECT/EXAMINE answer's EXISTS, FLAGS and response codes; a value that does not
    read is as if it were not sent. ``read_only`` as asked or as the tagged OK said."""
    info: dict[str, int] = {}
    flags: frozenset[str] = frozenset()
    permanent: frozenset[str] = frozenset()
    exists = 0
    nomodseq = False
    for response in untagged:
        try:
            if response.kind == "EXISTS" and response.number is not None:
                exists = response.number
            elif response.kind == "FLAGS" and response.values:
                flags = flag_set(response.values[0])
            elif response.code in ("UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ"):
                info[response.code] = as_int(response.code_values[0])
            elif response.code == "PERMANENTFLAGS" and response.code_values:
                permanent = flag_set(response.code_values[0])
            elif response.code == "NOMODSEQ":
                nomodseq = True
        except (ValueError, IndexError):
            continue
    return SelectedMailbox(
        name=name,
        uidvalidity=info.get("UIDVALIDITY"),
        uidnext=info.get("UIDNEXT"),
        exists=exists,
        highestmodseq=None if nomodseq else info.get("HIGHESTMODSEQ"),
        flags=flags,
        permanent_flags=permanent,
        read_only=read_only,
        resync=resync,
    )


def mailbox_listing(values: list[Value]) -> MailboxListing | None:
    if len(values) < 3 or not isinstance(values[0], list):
        return None
    attributes = frozenset(as_text(v) for v in values[0] if isinstance(v, Atom | bytes))
    delimiter = None if values[1] is None else as_text(values[1])
    wire = values[2]
    if isinstance(wire, Atom):
        wire_bytes = wire.encode("utf-8", "surrogateescape")
    elif isinstance(wire, bytes):
        wire_bytes = wire
    else:
        return None
    special = next((a for a in attributes if a.upper() in SPECIAL_USES), None)
    try:
        if wire_bytes.upper() == b"INBOX":
            name = "INBOX"
        else:
            name = decode_utf7(wire_bytes.decode("ascii"))
        error = None
    except (Utf7Error, UnicodeDecodeError) as exc:
        name = wire_bytes.decode("utf-8", "replace")
        error = f"the folder name {wire_bytes!r} is not valid modified UTF-7 ({exc})"
    return MailboxListing(name, wire_bytes, delimiter, attributes, special, error)


def fetched_message(response: Untagged) -> FetchedMessage | None:
    try:
        attrs = fetch_attributes(response.values)
        uid = as_int(attrs["UID"])
    except (KeyError, ValueError):
        return None
    message = FetchedMessage(uid)
    try:
        body = attrs.get("BODY[]", attrs.get("RFC822", attrs.get("BINARY[]")))
        if isinstance(body, bytes | SpooledLiteral):
            message.body = body
        elif isinstance(body, Atom) and body == "":
            message.body = b""
        if "FLAGS" in attrs:
            # \Recent is session state, not a flag a copy can carry (RFC 9051 drops it).
            message.flags = frozenset(
                f for f in flag_set(attrs["FLAGS"]) if f.upper() != "\\RECENT"
            )
        if "INTERNALDATE" in attrs:
            message.internal_date = parse_internaldate(attrs["INTERNALDATE"])
        if "RFC822.SIZE" in attrs:
            message.size = as_int(attrs["RFC822.SIZE"])
        modseq = attrs.get("MODSEQ")
        if isinstance(modseq, list) and modseq:
            message.modseq = as_int(modseq[0])
        if "X-GM-MSGID" in attrs:
            message.gm_msgid = as_int(attrs["X-GM-MSGID"])
        labels = attrs.get("X-GM-LABELS")
        if isinstance(labels, list):
            message.gm_labels = tuple(gm_label(v) for v in labels if isinstance(v, Atom | bytes))
    except ValueError:
        message.close()
        return FetchedMessage(uid)  # no body: reported as malformed by the caller
    return message


def gm_label(value: Atom | bytes) -> str:
    """A Gmail label as X-GM-LABELS sends it, decoded from modified UTF-7 when it is."""
    text = as_text(value)
    if text.startswith("\\"):
        return text  # \Inbox, \Sent, \Important: Gmail's system labels
    try:
        return decode_utf7(text)
    except Utf7Error:
        return text
