"""The store contract: records, errors and the `MailStore` protocol every backend implements.

The store is the only state of a postoffice instance (DESIGN §3). It is a domain-level
interface, not a key-value layer: backends (SQLite today, PostgreSQL later) implement these
operations transactionally and pass the same contract suite in tests/store/.

Invariants every backend keeps:
- A coroutine that writes returns only after the change is durable (fsynced).
- UIDs in a mailbox strictly increase and are never reused while its uidvalidity stands
  (RFC 9051 §2.3.1.1); modseqs strictly increase per mailbox (RFC 7162 §3.1.1).
- Every expunge leaves a tombstone (uid, modseq) for QRESYNC VANISHED and JMAP changes.
- A message row never points to a blob file that is not on disk.
- Change events are published only after the commit that made them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol

from postoffice.mailauth.dmarc_reports import AggregateReport
from postoffice.message.mime_model import Address, MessageMetadata
from postoffice.store.auth_records import (  # re-exported: callers import them from here
    AccessEntry as AccessEntry,
)
from postoffice.store.auth_records import (
    AccessKind as AccessKind,
)
from postoffice.store.auth_records import (
    AccessListName as AccessListName,
)
from postoffice.store.auth_records import (
    DkimOutcome as DkimOutcome,
)
from postoffice.store.auth_records import (
    DmarcEvaluation as DmarcEvaluation,
)
from postoffice.store.auth_records import (
    DmarcSourceSummary as DmarcSourceSummary,
)
from postoffice.store.delivery_memory_interface import DeliveryMemoryData
from postoffice.store.filter_state_interface import FilterStateData
from postoffice.store.queue_records import (  # re-exported: callers import them from here
    OutboundMessage as OutboundMessage,
)
from postoffice.store.queue_records import (
    QueueAttemptRecord as QueueAttemptRecord,
)
from postoffice.store.queue_records import (
    QueueAttemptResult as QueueAttemptResult,
)
from postoffice.store.queue_records import (
    QueuedMessage as QueuedMessage,
)
from postoffice.store.queue_records import (
    QueuedRecipient as QueuedRecipient,
)
from postoffice.store.queue_records import (
    QueueSummary as QueueSummary,
)
from postoffice.store.sieve_interface import SieveScriptData
from postoffice.store.transfer_interface import TransferData

if TYPE_CHECKING:
    from postoffice.store.changes import ChangeNotifier

# IMAP system flags are kept as a bit set so SEARCH UNSEEN and friends stay cheap in SQL;
# keywords (RFC 9051 §2.3.2, e.g. $Forwarded, $Junk) are kept as text.
SYSTEM_FLAGS: dict[str, int] = {
    "\\Seen": 1,
    "\\Answered": 2,
    "\\Flagged": 4,
    "\\Deleted": 8,
    "\\Draft": 16,
}
SEEN = SYSTEM_FLAGS["\\Seen"]
DELETED = SYSTEM_FLAGS["\\Deleted"]
_FLAG_BY_LOWER = {name.lower(): name for name in SYSTEM_FLAGS}

# Mailboxes every new account gets, with their RFC 6154 special-use attribute.
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Drafts", "\\Drafts"),
    ("Sent", "\\Sent"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)


def split_flags(flags: Iterable[str]) -> tuple[int, str]:
    """Split IMAP flags into (system flag bits, space-separated sorted keywords).

    System flags match case-insensitively (RFC 9051 §2.3.2); keywords keep their spelling.
    `\\Recent` is a session property, never stored.
    """
    bits = 0
    keywords: set[str] = set()
    for flag in flags:
        if flag.startswith("\\"):
            name = _FLAG_BY_LOWER.get(flag.lower())
            if name is not None:
                bits |= SYSTEM_FLAGS[name]
        elif flag:
            keywords.add(flag)
    return bits, " ".join(sorted(keywords))


def join_flags(bits: int, keywords: str) -> frozenset[str]:
    """The inverse of `split_flags`."""
    flags = {name for name, bit in SYSTEM_FLAGS.items() if bits & bit}
    if keywords:
        flags.update(keywords.split(" "))
    return frozenset(flags)


# --- errors -----------------------------------------------------------------------------


class StoreError(Exception):
    """Base class; str(error) is one plain sentence fit for a user."""


class NotFound(StoreError):
    pass


@dataclass(frozen=True, slots=True)
class GarbageCollected:
    """What one `collect_garbage` pass did. Blob files are moved to the trash (`trash`), where
    they stay for the configured grace period, and are only then deleted (`purged`)."""

    unreferenced: int = 0  # files of expunged messages that no session may still read
    orphans: int = 0  # files no message refers to: an interrupted delivery, or a store that lost rows
    temporary: int = 0  # temporary files of interrupted writes, deleted
    purged: int = 0  # trashed files whose grace period is over, deleted
    skipped: str | None = None  # why nothing was removed (the store failed its check)
    trash: str = ""  # the trash directory


class StoreMismatch(StoreError):
    """The configured store does not belong with the configured blob directory (a new or empty
    database beside message files): opening it would hide, and clean-up would remove, all mail."""


class BlobDamaged(StoreError):
    """A message file missing, or whose length is not the size recorded at delivery (truncated
    by a disk or file-system fault, or changed by hand): serving it would send a wrong-length
    message, which a client would keep as if whole."""

    def __init__(self, sha256: str, expected: int, found: int | None) -> None:
        super().__init__(f"The message file {sha256} is missing." if found is None else
                         f"The message file {sha256} is damaged: {found} octets instead of {expected}.")
        self.sha256 = sha256
        self.expected = expected
        self.found = found  # None: no such file

    def where(self, mailbox: str, uid: int) -> str:
        """The log line: the file, the mailbox and the message."""
        return f"{self} (mailbox {mailbox}, uid {uid})"


class DomainNotFound(NotFound):
    pass


class AccountNotFound(NotFound):
    pass


class MailboxNotFound(NotFound):
    pass


class AlreadyExists(StoreError):
    pass


class QuotaExceeded(StoreError):
    pass


class InvalidName(StoreError):
    pass


class StorageFull(StoreError):
    """The disk (or the file-system quota) holding the store is full: a temporary condition.

    Nothing of the failed write was kept. Protocols answer it with their temporary errors
    (SMTP 452 4.3.1, IMAP NO [OVERQUOTA], POP3 -ERR [SYS/TEMP]) and reads keep working.
    """


# --- records ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DomainRecord:
    id: int
    name: str
    catch_all: str | None


@dataclass(frozen=True, slots=True)
class AccountRecord:
    id: int
    address: str
    domain_id: int
    password_hash: str
    quota: int  # bytes; 0 means unlimited
    used: int  # bytes currently stored
    disabled: bool


@dataclass(frozen=True, slots=True)
class AliasRecord:
    source: str  # an address, or "@domain" for nothing else: catch-alls live on the domain
    target: str


@dataclass(frozen=True, slots=True)
class MailboxRecord:
    id: int
    account_id: int
    name: str
    special_use: str | None
    subscribed: bool
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    first_recent_uid: int


@dataclass(frozen=True, slots=True)
class SharedMailbox:
    """Another account's mailbox that a user was given rights on (RFC 4314 letters)."""

    owner: str  # the owner's address
    rights: str
    mailbox: MailboxRecord


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    messages: int
    unseen: int
    deleted: int
    recent: int
    size: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int


@dataclass(frozen=True, slots=True)
class MessageRecord:
    mailbox_id: int
    uid: int
    modseq: int
    flags: frozenset[str]
    internal_date: float  # unix seconds
    saved_date: float
    size: int
    blob: str  # sha256 hex of the stored bytes
    wire_form: int = 0  # message.lines.WireForm of the blob: what RETR must do to it


@dataclass(frozen=True, slots=True)
class IndexedBlob:
    """A message body already written durably to the blob store, with what the store indexes.

    Built once per distinct message (`postoffice.store.indexing.index_message`), in a worker
    thread or process, so the single writer only inserts rows.
    """

    sha256: str
    size: int
    structure: str  # message.mime.dump_structure(envelope, body)
    subject: str
    from_: str
    to: str
    cc: str
    bcc: str
    sent_date: int | None
    message_id: str | None
    in_reply_to: str | None
    references: str  # space-separated message-ids
    preview: str
    wire_form: int = 0  # message.lines.WireForm
    # A temporary file holding the bytes, not yet durable: the store's writer makes it durable
    # together with the other files of its commit (see BlobStore.promote).
    staged: str | None = None
    # Only the outbound queue refers to it (`put_blob(queue_only=True)`): nothing was parsed and
    # no IMAP field above is filled. A message that later arrives with the same bytes fills them.
    queue_only: bool = False


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """The indexed data of one stored message, for FETCH and SEARCH/SORT/THREAD."""

    sha256: str
    size: int
    structure: str  # message.mime.dump_structure
    subject: str
    from_: str
    to: str
    cc: str
    bcc: str
    sent_date: int | None
    message_id: str | None
    in_reply_to: str | None
    references: str
    preview: str


# An address field of the ENVELOPE (RFC 9051 §7.5.2) that the store can read for many messages.
AddressField = Literal["from", "to", "cc", "bcc"]
# The first address of an ENVELOPE field: (name as written, RFC 2047 words not decoded; mailbox;
# host). A group's start comes first as (None, group name, None).
FirstAddress = tuple[str | None, str | None, str | None]


# The header data of one message that SORT and THREAD order by (RFC 5256), kept at delivery:
# (uid, subject (decoded), sent date (Date:, unix seconds; None if missing or unparsable),
# message_id, in_reply_to, references (space-separated message-ids), and the first address of
# From, To and Cc, only when asked for, else None as for none). A plain tuple, not a NamedTuple:
# the garbage collector stops tracking tuples of plain values, and a mailbox's worth (100,000)
# of tracked ones set off a full collection of the server's objects each time.
HeaderFields = tuple[
    int, str, int | None, str | None, str | None, str, FirstAddress | None, FirstAddress | None,
    FirstAddress | None,
]


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One message to add to one mailbox. `raw` is required for a blob from `put_blob` (the
    writer stores the bytes with its commit); it also lets the writer restore a file that a
    concurrent garbage collection removed."""

    blob: IndexedBlob
    flags: frozenset[str] = frozenset()
    internal_date: float | None = None
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class AppendResult:
    uid: int | None  # None: skipped as a duplicate
    modseq: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    account_id: int
    mailbox: str = "INBOX"
    flags: frozenset[str] = frozenset()
    # An RFC 6154 attribute (``\Junk``): the account's mailbox that has it instead of `mailbox`,
    # created when the account has none (a quarantined message must land somewhere visible).
    special_use: str | None = None
    # False when the quota was already checked when the recipient was accepted (SMTP RCPT):
    # refusing then would lose mail the client was told is accepted, so it may overrun a little.
    enforce_quota: bool = True


@dataclass(frozen=True, slots=True)
class TargetResult:
    target: DeliveryTarget
    uid: int | None
    error: StoreError | None = None


class FlagMode(Enum):
    REPLACE = "replace"
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class FlagUpdate:
    uid: int
    modseq: int
    flags: frozenset[str]


@dataclass(frozen=True, slots=True)
class StoreFlagsResult:
    updated: tuple[FlagUpdate, ...]
    failed_unchanged_since: tuple[int, ...] = ()  # RFC 7162 UNCHANGEDSINCE failures (uids)


@dataclass(frozen=True, slots=True)
class MailboxChanges:
    """What changed in a mailbox after a modseq (RFC 7162 CHANGEDSINCE / VANISHED)."""

    highestmodseq: int
    changed: tuple[MessageRecord, ...]
    vanished: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class FlagsKept:
    """Which flags a copy keeps, the others being dropped: these system flags (as spelled in
    RFC 9051), and every keyword or none. A user may add messages to a shared mailbox without
    the rights to set their flags (RFC 4314 §4)."""

    system: frozenset[str]
    keywords: bool

    def apply(self, flags: Iterable[str]) -> frozenset[str]:
        return frozenset(
            f for f in flags if (_FLAG_BY_LOWER.get(f.lower()) in self.system if f.startswith("\\") else self.keywords))


@dataclass(frozen=True, slots=True)
class CopyResult:
    uidvalidity: int
    pairs: tuple[tuple[int, int], ...] = field(default_factory=tuple)  # (source uid, new uid)


# --- the protocol -----------------------------------------------------------------------


class MailboxSessionLock(Protocol):
    """What `MailStore.lock_mailbox` returns."""

    def release(self) -> None:
        """Free the lock (idempotent; safe on the event loop)."""
        ...


class MailStore(DeliveryMemoryData, SieveScriptData, FilterStateData, TransferData, Protocol):
    """Everything postoffice keeps. Every method is a coroutine that never blocks the loop."""

    changes: ChangeNotifier

    async def close(self) -> None: ...

    # domains, accounts, aliases
    async def add_domain(self, name: str) -> DomainRecord: ...
    async def get_domain(self, name: str) -> DomainRecord | None: ...
    async def list_domains(self) -> list[DomainRecord]: ...
    async def remove_domain(self, name: str) -> None: ...
    async def set_catch_all(self, domain: str, target: str | None) -> None: ...
    async def add_account(self, address: str, password_hash: str, quota: int = 0) -> AccountRecord: ...
    async def get_account(self, address: str) -> AccountRecord | None: ...
    async def get_account_by_id(self, account_id: int) -> AccountRecord | None: ...
    async def list_accounts(self, domain: str | None = None) -> list[AccountRecord]: ...
    async def set_password_hash(self, address: str, password_hash: str) -> None: ...
    async def set_quota(self, address: str, quota: int) -> None: ...
    async def remove_account(self, address: str) -> None: ...
    async def lookup_address(
        self, address: str
    ) -> tuple[DomainRecord | None, AccountRecord | None, list[AliasRecord]]: ...
    async def add_alias(self, source: str, target: str) -> None: ...
    async def remove_alias(self, source: str, target: str | None = None) -> int: ...
    async def list_aliases(self, source: str | None = None) -> list[AliasRecord]: ...

    # mailboxes
    async def create_mailbox(
        self, account_id: int, name: str, special_use: str | None = None, *, subscribed: bool = False
    ) -> MailboxRecord: ...
    async def get_mailbox(self, account_id: int, name: str) -> MailboxRecord | None: ...
    async def get_mailbox_by_id(self, mailbox_id: int) -> MailboxRecord | None: ...
    async def list_mailboxes(self, account_id: int) -> list[MailboxRecord]: ...
    async def rename_mailbox(self, account_id: int, old: str, new: str) -> MailboxRecord: ...
    async def delete_mailbox(self, account_id: int, name: str) -> None: ...
    async def set_subscribed(self, mailbox_id: int, subscribed: bool) -> None: ...
    async def set_rights(self, mailbox_id: int, identifier: str, rights: str) -> None:
        """Give `identifier` (an address, or "anyone") exactly `rights` on the mailbox ("" removes)."""
        ...
    async def get_acl(self, mailbox_id: int) -> dict[str, str]: ...
    async def shared_with(self, address: str) -> list[SharedMailbox]:
        """Other accounts' mailboxes `address` (or anyone) has rights on."""
        ...
    async def list_subscriptions(self, account_id: int) -> list[str]:
        """Every subscribed name, including names whose mailbox was deleted (RFC 9051 §6.3.7)."""
        ...
    async def subscribe_name(self, account_id: int, name: str) -> None: ...
    async def unsubscribe_name(self, account_id: int, name: str) -> bool: ...
    async def mailbox_status(self, mailbox_id: int, *, viewer: int | None = None) -> MailboxStatus:
        """Counts; with `viewer`, UNSEEN by that sharee's own \\Seen flags (see store_flags)."""
        ...
    async def claim_recent(self, mailbox_id: int, *, uidnext: int | None = None, uidvalidity: int | None = None) -> int:
        """Take \\Recent for uids from the returned value on (RFC 3501 §2.3.2). A caller that
        knows the mailbox's uidvalidity and the uidnext it has seen lets the store answer
        without a write when another session already took all of those."""
        ...

    # messages
    async def put_blob(self, raw: bytes, *, queue_only: bool = False,
                       parsed: MessageMetadata | None = None) -> IndexedBlob:
        """The bytes hashed and parsed (large ones staged in a file); `queue_only`: for a copy only
        the outbound queue will read, which needs neither parsing nor a full-text index;
        `parsed`: the parse of exactly these bytes, when a filtering stage made it already."""
        ...
    async def discard_staged(self, blobs: Iterable[IndexedBlob]) -> None: ...
    async def append_messages(self, mailbox_id: int, messages: Sequence[NewMessage], *, skip_duplicates: bool = False) -> list[AppendResult]: ...
    async def deliver(
        self, message: NewMessage, targets: Sequence[DeliveryTarget],
        queue: tuple[NewMessage, OutboundMessage] | None = None,
    ) -> tuple[list[TargetResult], int | None]: ...
    async def list_queue(self) -> list[QueuedMessage]: ...
    async def queue_summary(self) -> QueueSummary:
        """How many entries, held and deferred, and the oldest one's age, counted in the store."""
        ...
    async def remove_from_queue(self, queue_id: int) -> None: ...
    async def retry_queued(self, queue_id: int) -> None: ...
    async def get_queued(self, queue_id: int) -> QueuedMessage:
        """The entry, or NotFound."""
        ...
    async def queue_attempts(self, queue_id: int) -> list[QueueAttemptRecord]: ...
    async def hold_queued(self, queue_id: int, held: bool) -> None:
        """Hold (True) or release (False) an entry; NotFound when there is none."""
        ...
    async def flush_queue(self) -> int:
        """Make every entry that is not held due now; returns how many."""
        ...
    async def claim_due_queue(self, owner: str, now: float, lease_seconds: float, limit: int) -> list[QueuedMessage]:
        """Lease up to `limit` due entries (next_attempt <= now, not held, no live lease) to
        `owner` until now + lease_seconds, oldest due first."""
        ...
    async def renew_queue_lease(self, queue_id: int, owner: str, until: float) -> bool:
        """Extend `owner`'s lease on the entry to `until` (an attempt still under way); False
        (nothing written) when `owner` no longer holds it."""
        ...
    async def finish_queue_attempt(self, queue_id: int, owner: str, result: QueueAttemptResult) -> bool:
        """Record an attempt and drop the lease; False (nothing written) when `owner` no longer
        holds the lease (it expired and another runner took the entry)."""
        ...
    async def release_queue_leases(self, owners: Sequence[str]) -> int:
        """Drop the leases of runners that are gone (a crashed process), so their entries are
        picked again at once instead of when the leases expire."""
        ...
    async def queue_lease_owners(self) -> list[str]: ...
    # Block and allow lists: a change bumps the version, which a server compares to see it.
    async def add_access_entry(self, entry: AccessEntry) -> bool:
        """Add (True) or update the reason of (False) the entry for `entry.value` on its list."""
        ...
    async def remove_access_entry(self, list_name: AccessListName, value: str) -> bool: ...
    async def list_access_entries(self, list_name: AccessListName | None = None) -> list[AccessEntry]: ...
    async def access_lists_version(self) -> int: ...
    # DMARC: what we saw of each message, and what others report of mail claiming our domains.
    async def record_dmarc_evaluation(self, evaluation: DmarcEvaluation) -> None: ...
    async def dmarc_evaluations(self, since: float = 0.0) -> list[DmarcEvaluation]: ...
    async def add_dmarc_report(self, report: AggregateReport, received: float) -> bool:
        """Store an incoming aggregate report; False if this report (same reporting organisation,
        report id and domain) is already stored."""
        ...
    async def dmarc_report_summary(self, domain: str | None = None) -> list[DmarcSourceSummary]: ...
    async def list_messages(self, mailbox_id: int) -> list[MessageRecord]: ...
    async def get_messages(self, mailbox_id: int, uids: Sequence[int], *, viewer: int | None = None) -> list[MessageRecord]: ...
    async def store_flags(self, mailbox_id: int, uids: Sequence[int], mode: FlagMode, flags: Iterable[str], *, unchanged_since: int | None = None, viewer: int | None = None) -> StoreFlagsResult:
        """Change flags. `viewer`: the account whose own \\Seen this is, on a shared mailbox with
        per-user \\Seen; reads with the same `viewer` see it, everyone else the owner's."""
        ...
    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]: ...
    async def copy_messages(
        self, source_id: int, uids: Sequence[int], target_id: int, *, move: bool = False, keep: FlagsKept | None = None,
    ) -> CopyResult:
        """COPY or MOVE; `keep` says which flags the copies keep (None: all of them)."""
        ...
    async def open_snapshot(self, mailbox_id: int, *, viewer: int | None = None) -> tuple[MailboxRecord, list[MessageRecord]]: ...
    async def changes_since(self, mailbox_id: int, modseq: int, *, viewer: int | None = None) -> MailboxChanges: ...
    def change_version(self, mailbox_id: int) -> int | None:
        """A number that moves whenever a change to the mailbox, made by any process, is
        published; None when this store cannot vouch for that (changes made elsewhere would go
        unnoticed). A caller that read `changes_since` after taking the number may skip the
        next read while it has not moved."""
        ...
    async def read_blob(self, sha256: str, size: int | None = None) -> bytes:
        """A message file. `size`: the size recorded for it (MessageRecord.size); a file of
        another length raises BlobDamaged. Pass it whenever the bytes go to a client."""
        ...
    async def read_blobs(self, hashes: Sequence[str], sizes: Mapping[str, int] | None = None) -> dict[str, bytes]:
        """Several message files in one step (missing ones, and those whose length is not their
        size in `sizes`, left out: `read_blob` says why)."""
        ...
    async def open_blob(self, sha256: str, size: int | None = None) -> BinaryIO:
        """The message file for streaming, opened for reading; read and close it in a thread.
        With `size`, a file of another length raises BlobDamaged before anything is read."""
        ...
    async def blob_structure(self, sha256: str) -> str: ...
    async def search_text(self, mailbox_id: int, query: str, *, headers: bool = True, body: bool = True) -> set[int]: ...
    async def mailbox_blob_hashes(self, mailbox_id: int, hashes: Sequence[str]) -> set[str]: ...

    async def blob_info(self, hashes: Sequence[str]) -> dict[str, BlobInfo]: ...
    async def header_fields(
        self, mailbox_id: int, uids: Sequence[int], *, addresses: Collection[AddressField] = ()
    ) -> list[HeaderFields]:
        """The header data of these messages of the mailbox, expunged ones it still holds
        included (see hold_mailbox), in no particular order; unknown uids are left out. With
        `addresses`, the first address of those of From, To and Cc too (Bcc has no slot)."""
        ...
    async def envelope_addresses(
        self, mailbox_id: int, field: AddressField, *, containing: str | None = None
    ) -> list[tuple[int, tuple[Address, ...]]]:
        """(uid, addresses) of the ENVELOPE field `field` of each message of the mailbox that
        has one, held expunged ones included, in no particular order.

        With `containing`, messages may be left out unless one of their addresses has it in its
        name (RFC 2047 decoded), mailbox or host, or a group has it in its name, ignoring case:
        a superset of those that do, for a caller that checks what it needs.
        """
        ...
    async def collect_garbage(self, orphan_min_age: float = 3600.0) -> GarbageCollected: ...
    async def index_unindexed(self, limit: int = 64) -> int: ...
    async def text_backlog(self, cap: int) -> tuple[int, int]:
        """(the highest blob id, how many messages wait to be added to or removed from the
        full-text index, counted up to `cap`): what the background indexer paces itself by
        (store/index_pacing.py)."""
        ...
    def hold_mailbox(self, mailbox_id: int) -> None: ...
    def release_mailbox(self, mailbox_id: int) -> None: ...
    async def lock_mailbox(self, mailbox_id: int) -> MailboxSessionLock | None:
        """An exclusive session lock on the mailbox across every process sharing the store (one
        POP3 session per maildrop), or None while another session holds it. Expunged messages
        of a locked mailbox stay readable, as for `hold_mailbox`, until `release()`."""
        ...

    def iter_messages(self, mailbox_id: int, batch: int = 500) -> AsyncIterator[MessageRecord]: ...
