"""A POP3 maildrop: the INBOX as it was at login, numbered 1..n, with deletion marks (RFC 1939).

Pure bookkeeping, no store access. The driver builds a :class:`Maildrop` from the INBOX when the
client logs in, answers STAT, LIST, UIDL, RETR, TOP, DELE and RSET from it, and at QUIT (the
UPDATE state) expunges :meth:`Maildrop.deleted_uids` from the store.

Implementation notes:

- Message numbers never change during a session, and a message marked deleted keeps its number
  but is no longer reachable (RFC 1939 §5: "may not be referred to"); RSET unmarks them all.
- A unique-id is ``"<uidvalidity>.<uid>"`` in decimal: 1 to 70 characters in 0x21..0x7E
  (RFC 1939 §7), unique within the maildrop and the same in every session as long as the IMAP
  UIDVALIDITY holds, so IMAP and POP3 agree on which message is which.
- A message migrated from another POP3 server keeps that server's unique-id (``kept``, from
  the store's `kept_pop3_uidls`), so a client that leaves mail on the server does not download
  it again after the move. A kept id that would be another message's id too (kept twice, or
  equal to a ``"<uidvalidity>.<uid>"`` id in this maildrop) is not used: ids stay unique.
- Sizes are the octets POP3 reports (``proto.octets_after_crlf``); STAT and the totals are
  kept up to date on every DELE and RSET rather than summed on each STAT.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["DropMessage", "Maildrop", "NoSuchMessage"]


class NoSuchMessage(Exception):
    """The message number is out of range or marked deleted; ``reason`` is the -ERR text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DropMessage:
    """One message in the maildrop: its store UID and its size in octets with CRLF line ends."""

    uid: int
    size: int


class Maildrop:
    """The messages of one POP3 session, numbered from 1 in the order given."""

    __slots__ = ("_deleted", "_kept", "_live_count", "_live_size", "_messages", "_total_size",
                 "_uidvalidity")  # fmt: skip

    def __init__(
        self, uidvalidity: int, messages: Sequence[DropMessage], kept: Mapping[int, str] | None = None
    ) -> None:
        if uidvalidity < 1:
            raise ValueError(f"uidvalidity must be positive, not {uidvalidity}")
        seen: set[int] = set()
        for message in messages:
            if message.uid < 1:
                raise ValueError(f"a UID must be positive, not {message.uid}")
            if message.size < 0:
                raise ValueError(f"UID {message.uid} has a negative size {message.size}")
            if message.uid in seen:
                raise ValueError(f"UID {message.uid} is in the maildrop twice")
            seen.add(message.uid)
        self._uidvalidity = uidvalidity
        self._messages = tuple(messages)
        self._kept: dict[int, str] = {}
        if kept:
            native = {f"{uidvalidity}.{uid}" for uid in seen}
            counts = Counter(kept[uid] for uid in seen if uid in kept)
            self._kept = {
                uid: kept[uid] for uid in seen
                if uid in kept and counts[kept[uid]] == 1 and kept[uid] not in native
            }
        self._deleted: set[int] = set()  # message numbers marked deleted
        self._total_size = sum(message.size for message in self._messages)
        self._live_count = len(self._messages)
        self._live_size = self._total_size

    @property
    def uidvalidity(self) -> int:
        return self._uidvalidity

    @property
    def count(self) -> int:
        """The number of messages at login, deleted ones included: the highest message number."""
        return len(self._messages)

    @property
    def messages(self) -> tuple[DropMessage, ...]:
        """Every message at login, by message number - 1, deleted ones included."""
        return self._messages

    @property
    def total_size(self) -> int:
        """The octets of all messages at login, deleted ones included."""
        return self._total_size

    def uidl(self, uid: int) -> str:
        """The unique-id listing of the message with store UID ``uid`` (RFC 1939 §7 UIDL)."""
        kept = self._kept.get(uid)
        return kept if kept is not None else f"{self._uidvalidity}.{uid}"

    def stat(self) -> tuple[int, int]:
        """STAT: the count and total octets of the messages not marked deleted."""
        return self._live_count, self._live_size

    def listing(self) -> list[tuple[int, int]]:
        """LIST: (message number, size) of every message not marked deleted."""
        deleted = self._deleted
        return [
            (number, message.size)
            for number, message in enumerate(self._messages, 1)
            if number not in deleted
        ]

    def uid_listing(self) -> list[tuple[int, str]]:
        """UIDL: (message number, unique-id) of every message not marked deleted."""
        deleted = self._deleted
        return [
            (number, self.uidl(message.uid))
            for number, message in enumerate(self._messages, 1)
            if number not in deleted
        ]

    def get(self, msg: int) -> DropMessage:
        """The message numbered ``msg``; :class:`NoSuchMessage` if none, or if it is deleted."""
        if not 1 <= msg <= len(self._messages):
            raise NoSuchMessage("No such message")
        if msg in self._deleted:
            raise NoSuchMessage(f"Message {msg} already deleted")
        return self._messages[msg - 1]

    def delete(self, msg: int) -> None:
        """DELE: mark the message deleted; :class:`NoSuchMessage` as for :meth:`get`."""
        message = self.get(msg)
        self._deleted.add(msg)
        self._live_count -= 1
        self._live_size -= message.size

    def reset(self) -> None:
        """RSET: unmark every message (RFC 1939 §5)."""
        self._deleted.clear()
        self._live_count = len(self._messages)
        self._live_size = self._total_size

    def deleted_uids(self) -> list[int]:
        """The store UIDs to expunge in the UPDATE state, in message-number order."""
        return [self._messages[number - 1].uid for number in sorted(self._deleted)]
