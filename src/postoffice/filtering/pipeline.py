"""The filtering pipeline: ordered stages that decide what becomes of one incoming message.

`delivery.deliver_message` runs it for every way in (SMTP port 25 with its mail-authentication
`Judgement`, the submission ports' local recipients, LMTP, the queue's local transport), after
the recipients are resolved and before anything is stored. Two kinds of stage::

    class SpamScoreStage:                      # a MessageStage: once per message
        name = "spam-score"
        async def check_message(self, message: IncomingMessage) -> None:
            score = ...                                       # read message.raw, .judgement
            message.facts["spam_score"] = score              # later stages read it
            message.add_header("X-Spam-Score", f"{score.score:.1f}")
            if score.score >= refuse_at:
                message.refuse(550, "5.7.1", "Message refused as spam", stage=self.name)

    class SieveStage:                          # an AccountStage: once per account reached
        name = "sieve"
        async def decide(self, message: IncomingMessage, account: AccountDisposition) -> None:
            account.file_into("Other", flags={"\\Seen"})     # or .discard(), .redirect(),
                                                              # .reject(), .reply(), .set_content()

- A `MessageStage` sees the message once. It may refuse it for every recipient
  (`message.refuse`: a 5xx/4xx in the SMTP dialogue, nothing stored, the later stages skipped),
  add header fields to every copy (`message.add_header`, prepended in order), file it as junk
  (`message.special_use = "\\Junk"`), and leave results for later stages in `message.facts`
  (the spam score under "spam_score", a `SpamScore`; under PARSED_MESSAGE a tuple (raw,
  MessageMetadata): the parse of `raw` a stage made, which later stages (Sieve's body test)
  and the store reuse when `raw` is still that object). The fields they add are part of
  `message.raw` by the time the account stages run (Sieve tests and editheader see them).
- An `AccountStage` runs for each account the recipients reach, in order, on that account's
  `AccountDisposition`: where its copy goes (mailboxes with flags, or none: discard), redirects
  (outbound queue rows), a rejection, auto-replies (vacation), its own content (editheader),
  and what to remember in the store with the delivery (vacation replies sent, duplicate ids).
  `account.facts` holds per-account results (the junk classifier's probability; the account's
  spam score for Sieve's spamtest under "spam_score"). A stage that only moves the default
  (junk to the Junk mailbox) calls `account.keep_in(...)`, so later Sieve keeps follow it.
- A stage that raises is logged and skipped: a broken filter never loses mail, the copy is kept
  (RFC 5228 §2.10.6's implicit keep). Stages must not block the loop: CPU work proportional to
  the message (a Sieve run, a classifier) goes to a thread.

Invariants the executor (delivery.py, filtering/dispositions.py) keeps: every account either
gets a visible copy, or its discard is logged with the rule that did it, or its recipients were
refused with a 5xx (or a rejection notice went to the sender), so nothing disappears.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from postoffice.message.mime_headers import parse_fields
from postoffice.smtp.headers import header_block

if TYPE_CHECKING:
    from postoffice.delivery import Envelope
    from postoffice.smtp.inbound_checks import Judgement

log = logging.getLogger(__name__)
PARSED_MESSAGE = "parsed_message"  # facts key: (raw, its MessageMetadata), see the module docstring


@dataclass(frozen=True, slots=True)
class Refusal:
    """A reply refusing the message (or one recipient): code, enhanced status, text."""

    code: int
    enhanced: str
    text: str
    stage: str = ""  # which stage refused, for the log


@dataclass(slots=True)
class IncomingMessage:
    """One message on its way in, as every stage sees it.

    `raw` is the message as it will be stored (CRLF line ends, no Return-Path yet); `way` is
    "smtp" (port 25, `judgement` set when mail authentication ran), "submission", "lmtp" or
    "local" (the queue's local transport, bounces, reports).
    """

    envelope: Envelope
    raw: bytes
    way: str = "local"
    judgement: Judgement | None = None
    special_use: str | None = None  # \\Junk: every account's copy goes to its junk mailbox
    refusal: Refusal | None = None
    added_headers: list[tuple[str, str]] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)
    _fields: list[tuple[str, str, str]] | None = None

    def refuse(self, code: int, enhanced: str, text: str, *, stage: str = "") -> None:
        """Refuse the whole message: nothing is stored, the client hears this reply."""
        self.refusal = Refusal(code, enhanced, text, stage)

    def add_header(self, name: str, value: str) -> None:
        """A header field for every copy, above the others (RFC 5322 §3.6: trace fields on top)."""
        self.added_headers.append((name, value))

    def stored_form(self) -> bytes:
        """`raw` with the fields the stages added, in the order they added them."""
        if not self.added_headers:
            return self.raw
        top = b"".join(f"{name}: {_one_line(value)}\r\n".encode("utf-8", "replace")
                       for name, value in self.added_headers)
        return top + self.raw

    def settle_header(self) -> bytes:
        """After the message stages: the added fields become part of `raw`, so the account
        stages (Sieve's header tests, editheader) see and keep them. Returns the new `raw`."""
        if self.added_headers:
            self.raw = self.stored_form()
            self.added_headers.clear()
        self._fields = None  # a stage may have replaced `raw` itself
        return self.raw

    @property
    def header_fields(self) -> list[tuple[str, str, str]]:
        """(lower-case name, name as written, unfolded value) of each header field, parsed once."""
        if self._fields is None:
            self._fields = parse_fields(header_block(self.raw))
        return self._fields

    def header(self, name: str) -> list[str]:
        """The values of every field called `name` (any case), in order."""
        wanted = name.lower()
        return [value for lower, _, value in self.header_fields if lower == wanted]


@dataclass(frozen=True, slots=True)
class Filing:
    """One copy in one mailbox of the account."""

    mailbox: str = "INBOX"
    special_use: str | None = None  # RFC 6154 attribute: that mailbox instead of `mailbox`
    flags: frozenset[str] = frozenset()
    create: bool = False  # Sieve `fileinto :create` (RFC 5490 §3.2): make it when missing


@dataclass(frozen=True, slots=True)
class AutoReply:
    """A message we send in the account's name (a vacation reply, a rejection notice): bytes
    ready for the queue and the envelope to send them with."""

    sender: str
    recipient: str
    raw: bytes
    kind: str = "vacation"


@dataclass(frozen=True, slots=True)
class Remembered:
    """A fact the store keeps with the delivery, in the same transaction: a vacation reply
    sent to `key` (sender + handle) or a duplicate id seen, until `expires` (epoch seconds)."""

    kind: str  # "vacation" or "duplicate"
    key: str
    expires: float


@dataclass(slots=True)
class AccountDisposition:
    """What becomes of one account's copy; stages change it in order.

    Starts as the implicit keep: one filing into the default mailbox. `keep_implicit` stays
    True until a stage files, discards or rejects explicitly (RFC 5228 §2.10.2).
    """

    account_id: int
    address: str
    recipients: tuple[str, ...]  # the envelope recipients that reach this account
    filings: list[Filing] = field(default_factory=list)
    keep_implicit: bool = True
    discarded_by: str | None = None  # "script line N" when a discard left no copy
    redirects: list[str] = field(default_factory=list)
    rejection: str | None = None  # the reason given to the sender
    replies: list[AutoReply] = field(default_factory=list)
    content: bytes | None = None  # the account's own copy (header edits), None: the shared one
    remember: list[Remembered] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)
    outcome: list[str] = field(default_factory=list)  # what happened, for the log line

    def file_into(self, mailbox: str, *, flags: frozenset[str] | set[str] = frozenset(),
                  create: bool = False, special_use: str | None = None) -> None:
        """An explicit filing: ends the implicit keep; filing twice into one mailbox is once."""
        if self.keep_implicit:
            self.keep_implicit = False
            self.filings.clear()
        filing = Filing(mailbox, special_use, frozenset(flags), create)
        if all((f.mailbox, f.special_use) != (mailbox, special_use) for f in self.filings):
            self.filings.append(filing)

    def keep_in(self, filing: Filing) -> None:
        """Change where the implicit keep files (the junk classifier: ``Filing(special_use=
        "\\Junk")``) without deciding anything explicitly: a Sieve `keep` or implicit keep
        later files there too, an explicit decision of an earlier stage is left alone."""
        if self.keep_implicit:
            self.filings = [filing]

    def discard(self, why: str) -> None:
        """Cancel the implicit keep (RFC 5228 §4.4); `why` names the rule, for the log."""
        if self.keep_implicit:
            self.keep_implicit = False
            self.filings.clear()
        self.discarded_by = why

    def redirect(self, address: str, *, copy: bool = False) -> None:
        """Send a copy on to `address` (RFC 5228 §4.2); cancels the implicit keep unless `copy`
        (RFC 3894)."""
        if self.keep_implicit and not copy:
            self.keep_implicit = False
            self.filings.clear()
        if address.lower() not in (a.lower() for a in self.redirects):
            self.redirects.append(address)

    def reject(self, reason: str) -> None:
        """Refuse this account's copy (RFC 5429): no filing; the sender hears the reason."""
        self.keep_implicit = False
        self.filings.clear()
        self.rejection = reason

    def reply(self, reply: AutoReply) -> None:
        self.replies.append(reply)

    def set_content(self, raw: bytes) -> None:
        self.content = raw

    @property
    def kept(self) -> bool:
        return bool(self.filings)

    @property
    def plain_keep(self) -> bool:
        """One copy in INBOX without flags, and nothing else: the default, which is not logged."""
        return (self.filings == [Filing()] and not (self.redirects or self.replies)
                and self.content is None and self.rejection is None)


class MessageStage(Protocol):
    name: str

    async def check_message(self, message: IncomingMessage) -> None:
        """Judge the whole message; may refuse it, add header fields, set facts."""
        ...


class AccountStage(Protocol):
    name: str

    async def decide(self, message: IncomingMessage, account: AccountDisposition) -> None:
        """Change this account's disposition (filings, discard, redirects, rejection...)."""
        ...


@dataclass(frozen=True)
class FilterPipeline:
    """The stages of this server, in order (built by filtering/stages.py from the config)."""

    message_stages: Sequence[MessageStage] = ()
    account_stages: Sequence[AccountStage] = ()

    @property
    def empty(self) -> bool:
        return not (self.message_stages or self.account_stages)

    async def check_message(self, message: IncomingMessage) -> None:
        """Run the message stages until one refuses."""
        for stage in self.message_stages:
            try:
                await stage.check_message(message)
            except Exception:
                log.exception("filter stage %s failed on a message from <%s>; skipped",
                              stage.name, message.envelope.sender)
            if message.refusal is not None:
                return

    async def decide(self, message: IncomingMessage, accounts: Mapping[int, AccountDisposition]) -> None:
        """Run the account stages for each account, each account's stages in order."""
        if not self.account_stages:
            return
        for account in accounts.values():
            for stage in self.account_stages:
                try:
                    await stage.decide(message, account)
                except Exception:
                    log.exception("filter stage %s failed for %s; the message is kept",
                                  stage.name, account.address)


NO_FILTERS = FilterPipeline()


def _one_line(value: str) -> str:
    """A field value that cannot start another field: line breaks become spaces."""
    return value.replace("\r", " ").replace("\n", " ") if ("\r" in value or "\n" in value) else value
