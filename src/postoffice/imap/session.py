"""One IMAP connection: its state (RFC 9051 §3) and the helpers command handlers share.

States: not authenticated -> authenticated -> selected -> logout. Handlers (imap/commands/) get
the session, write untagged responses with `send`, and return the tagged completion. Mailbox
updates made elsewhere are announced by `announce_updates` at the moments RFC 9051 §7.5.1
allows: never EXPUNGE while answering FETCH, STORE or SEARCH by sequence number.
"""

from __future__ import annotations

import enum
from bisect import bisect_left
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from postoffice.imap.compress import Deflate
from postoffice.imap.flag_rights import right_for
from postoffice.imap.proto import responses as resp
from postoffice.imap.proto.parser import ImapServerParser
from postoffice.imap.snapshot import MailboxSnapshot, Updates
from postoffice.net.listener import Connection
from postoffice.services import Services
from postoffice.store.interface import SYSTEM_FLAGS, AccountRecord, MailboxRecord, MessageRecord


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
    # The selected mailbox as the client named it, and this user's rights on it (RFC 4314).
    selected_name: str = ""
    rights: str = "lrswipkxtecda"
    out: list[bytes] = field(default_factory=list)
    compression: Deflate | None = None  # COMPRESS=DEFLATE (RFC 4978), once the client asked
    notify: Any = None  # commands.notify.NotifyState while NOTIFY SET is in force (RFC 5465)
    search_contexts: dict[str, Any] = field(default_factory=dict)  # tag -> commands.search.SearchContext

    # --- output ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.out.append(data)

    def untagged(self, text: str | bytes) -> None:
        self.out.append(resp.untagged(text))

    def transmit(self, data: bytes) -> None:
        """Write `data` to the socket now, compressed under COMPRESS. Callers keep responses in
        order: the driver's flush, and the IDLE push (snapshot_push.py), which writes only
        while the session's own task is asleep with nothing in `out`."""
        if self.compression is not None:
            data = self.compression.compress(data)
        self.conn.bytes_out += len(data)
        self.conn.writer.write(data)

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def condstore(self) -> bool:
        """CONDSTORE is on (RFC 7162 §3.1): untagged FETCH responses carry MODSEQ."""
        return "CONDSTORE" in self.enabled

    @property
    def qresync(self) -> bool:
        """QRESYNC is enabled (RFC 7162 §3.2.3): VANISHED replaces EXPUNGE."""
        return "QRESYNC" in self.enabled

    def enable_condstore(self) -> None:
        """A CONDSTORE-enabling command was used (RFC 7162 §3.1): the first one with a mailbox
        selected also reports its HIGHESTMODSEQ."""
        if "CONDSTORE" not in self.enabled:
            self.enabled.add("CONDSTORE")
            if self.snapshot is not None:
                code = resp.highestmodseq_code(self.snapshot.highestmodseq)
                self.send(resp.untagged_status("OK", "Highest", code))

    @property
    def utf8(self) -> bool:
        return "UTF8=ACCEPT" in self.enabled or self.rev2

    # --- the selected mailbox -----------------------------------------------------------------

    @property
    def mailbox(self) -> MailboxRecord:
        assert self.snapshot is not None
        return self.snapshot.mailbox

    def may(self, rights: str) -> bool:
        """Whether the user holds every one of `rights` on the selected mailbox."""
        return all(r in self.rights for r in rights)

    def close_mailbox(self) -> None:
        if self.snapshot is not None:
            self.snapshot.close()
            self.snapshot = None
        self.saved_search = []
        self.search_contexts.clear()  # RFC 5267 §4.2: contexts end with the mailbox
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    async def announce_updates(self, *, allow_expunge: bool) -> None:
        """Tell the client what changed in its mailbox since it was last told."""
        if self.snapshot is None:
            return
        self.write_updates(await self.snapshot.refresh(allow_expunge=allow_expunge))

    def write_expunged(self, expunged: list[tuple[int, int]]) -> None:
        """Announce removed messages, given as (sequence number as of its moment, uid): one
        VANISHED with QRESYNC (RFC 7162 §3.2.10), else an EXPUNGE each."""
        if not expunged:
            return
        self._remove_from_contexts([uid for _, uid in expunged])
        self.send(self._expunge_responses([seq for seq, _ in expunged], [uid for _, uid in expunged]))

    def _expunge_responses(self, seqs: list[int], uids: list[int]) -> bytes:
        if self.qresync:
            return resp.vanished_response(uids)
        return b"".join(b"* %d EXPUNGE\r\n" % seq for seq in seqs)

    def _remove_from_contexts(self, gone: list[int]) -> None:
        """REMOVEFROM for searches kept up to date, before the EXPUNGEs, so that sequence
        numbers still name the messages as the client knows them (RFC 5267 §4.2)."""
        if not self.search_contexts or self.snapshot is None:
            return
        remaining = self.snapshot.uids  # already without `gone`
        all_gone = sorted(gone)
        for tag, context in self.search_contexts.items():
            hit = sorted(u for u in gone if u in context.uids)
            if not hit:
                continue
            context.uids.difference_update(hit)
            # a message's number before the expunge: those still here below it, plus those gone below it
            numbers = hit if context.uid else [bisect_left(remaining, u) + bisect_left(all_gone, u) + 1 for u in hit]
            if context.criteria is None:
                self.send(resp.esearch_response(tag, uid=context.uid, removefrom=[(0, numbers)]))
                continue
            position = {u: i for i, u in enumerate(context.order, start=1)}
            pairs = sorted(zip(hit, numbers, strict=True), key=lambda pair: -position[pair[0]])
            context.order = [u for u in context.order if u not in set(hit)]
            self.send(resp.esearch_response(
                tag, uid=context.uid, removefrom=[(position[u], [n]) for u, n in pairs], in_order=True))

    def flags_of(self, record: MessageRecord) -> set[str]:
        """A message's flags as this session shows them: \\Recent only to IMAP4rev1 sessions."""
        names = set(record.flags)
        if not self.rev2 and self.snapshot is not None and record.uid in self.snapshot.recent:
            names.add("\\Recent")
        return names

    def permitted_flags(self, flags: list[str]) -> list[str]:
        """The flags this user may change in the selected mailbox (RFC 4314 §4)."""
        return [f for f in flags if self.may(right_for(f))]

    def flags_responses(self, keywords: Iterable[str]) -> bytes:
        """``* FLAGS`` and ``* OK [PERMANENTFLAGS]`` for the system flags and `keywords`: at
        SELECT, and again whenever the mailbox's keywords grew (RFC 9051 §7.3.5)."""
        assert self.snapshot is not None
        listed = [*SYSTEM_FLAGS, *keywords]
        permanent = [] if self.snapshot.readonly else self.permitted_flags(listed)
        return (b"* FLAGS " + resp.flags_list(listed) + b"\r\n" + resp.untagged_status(
            "OK", "Flags permitted", resp.permanentflags_code(permanent, new_keywords=self.may("w"))))

    def announce_keywords(self) -> None:
        """Tell the client the keywords its snapshot took in since it was last told, before a
        FETCH response that may show one of them."""
        if self.snapshot is not None and (keywords := self.snapshot.take_unannounced_keywords()) is not None:
            self.send(self.flags_responses(keywords))

    def write_flags(self, seq: int, uid: int, *, with_uid: bool = True, flags: bool = True) -> None:
        """An untagged FETCH with the message's flags (and MODSEQ under CONDSTORE)."""
        self.announce_keywords()
        self.send(self._flags_response(seq, uid, with_uid=with_uid, flags=flags))

    def _flags_response(self, seq: int, uid: int, *, with_uid: bool = True, flags: bool = True) -> bytes:
        assert self.snapshot is not None
        record = self.snapshot.record(uid)
        items = [b"UID %d" % uid] if with_uid else []
        if flags:
            items.append(b"FLAGS " + resp.flags_list(self.flags_of(record)))
        if self.condstore:
            items.append(b"MODSEQ (%d)" % record.modseq)
        return b"* %d FETCH (%s)\r\n" % (seq, b" ".join(items))

    def write_updates(self, updates: Updates) -> None:
        if updates.expunged:
            self._remove_from_contexts(updates.expunged_uids)
        data = self.encode_updates(updates)
        if data:
            self.send(data)

    def encode_updates(self, updates: Updates) -> bytes:
        """The untagged responses for `updates` (EXPUNGE or VANISHED, EXISTS, RECENT, FETCH
        FLAGS), without the search context updates `write_updates` adds."""
        parts = [self.flags_responses(updates.keywords)] if updates.keywords is not None else []
        if updates.expunged:
            parts.append(self._expunge_responses(updates.expunged, updates.expunged_uids))
        if updates.exists is not None:
            parts.append(b"* %d EXISTS\r\n" % updates.exists)
            if not self.rev2 and updates.recent is not None:
                parts.append(b"* %d RECENT\r\n" % updates.recent)
        parts += [self._flags_response(seq, record.uid) for seq, record in updates.flags]
        return b"".join(parts)

    def encoding_key(self, updates: Updates) -> Hashable:
        """Everything `encode_updates` reads besides what `updates` and the snapshot's records
        hold: sessions whose snapshots took the same updates and whose keys are equal get the
        same bytes (snapshot_push.py encodes once per key). Keep the two in step."""
        # PERMANENTFLAGS depends on the rights and read-only state, so only when it is sent.
        flags = None if updates.keywords is None else (
            updates.keywords, self.rights, self.snapshot is None or self.snapshot.readonly)
        if self.rev2:
            return (True, self.condstore, self.qresync, flags)
        recent = self.snapshot.recent if self.snapshot is not None else set()
        shown_recent = tuple([record.uid in recent for _, record in updates.flags]) if updates.flags else ()
        return (False, self.condstore, self.qresync, updates.recent, shown_recent, flags)
