"""What a Sieve run decided: frozen records the delivery executor carries out.

`run_script` returns them in `SieveResult.actions`, in the order the script asked for them
(RFC 5228 §2.10.1), duplicates folded (§2.10.3: one keep, one copy per mailbox, one redirect per
address). Everything is resolved: variables expanded, defaults applied, limits checked. The
executor does the I/O (mailboxes, the outbound queue, vacation records) and the safety checks
that need state (RFC 5230 §4.5: no reply to lists, bulk or auto-submitted mail, once per
sender per period).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keep:
    """File into the default mailbox (INBOX), with these IMAP flags (RFC 5232 §5)."""

    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FileInto:
    """File into `mailbox` (UTF-8 name, hierarchy delimiter "/" or "." as the user wrote it).

    `create`: make the mailbox when it is missing (RFC 5490 §3.2); without it a missing mailbox
    is a delivery error that falls back to INBOX. `copy`: RFC 3894, the implicit keep stays.
    """

    mailbox: str
    flags: tuple[str, ...] = ()
    create: bool = False
    copy: bool = False


@dataclass(frozen=True, slots=True)
class Redirect:
    """Send the message on to `address` (an RFC 5321 mailbox) through the outbound queue."""

    address: str
    copy: bool = False


@dataclass(frozen=True, slots=True)
class Discard:
    """Silently drop the message; `line` is the script line, for the log (issue 17)."""

    line: int


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the message with `reason` (RFC 5429): `extended` (ereject) means refuse in the
    SMTP dialogue when possible; otherwise (reject) a DSN/MDN after acceptance is allowed."""

    reason: str
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Vacation:
    """An auto-reply (RFC 5230, RFC 6131), to be sent at most once per `seconds` per sender.

    - `recipient`: where the reply goes, the envelope sender of the message (RFC 5230 §4.1).
    - `from_`: the :from address; without it the owner's address the message's To/Cc name:
      the envelope recipient, else an :addresses entry (RFC 5230 §5.4, errata 2035); None:
      neither appears, use the user's own address. The executor checks the user may send as it.
    - `subject`: resolved (default "Auto: " + the original subject, RFC 5230 §4.6).
    - `reason`: the body text, or a MIME entity (headers + body) when `mime` is set.
    - `handle`: identifies this vacation for the once-per-period record (RFC 5230 §4.2; when
      the script gives none it is derived from the arguments).
    - `seconds`: the period (from :days or :seconds, bounded by SieveLimits).
    - `addresses`: the user's other addresses (:addresses), for the "am I a recipient" check.
    - `in_reply_to`, `references`: the original's Message-ID and References, for threading.
    """

    recipient: str
    from_: str | None
    subject: str
    reason: str
    handle: str
    seconds: int
    addresses: tuple[str, ...] = ()
    mime: bool = False
    in_reply_to: str | None = None
    references: str | None = None


@dataclass(frozen=True, slots=True)
class AddHeader:
    """RFC 5293 addheader: already applied to `SieveResult.message`; recorded for the log."""

    name: str
    value: str
    last: bool = False


@dataclass(frozen=True, slots=True)
class DeleteHeader:
    """RFC 5293 deleteheader: already applied to `SieveResult.message`; recorded for the log.

    `index` counts occurrences of the field from the top (from the bottom with `last`);
    `patterns` with `match_type` and `comparator` select values (none: every occurrence).
    """

    name: str
    index: int | None = None
    last: bool = False
    match_type: str = ":is"
    comparator: str = "i;ascii-casemap"
    patterns: tuple[str, ...] = ()


Action = Keep | FileInto | Redirect | Discard | Reject | Vacation | AddHeader | DeleteHeader
