"""The spam score as the first stage of the filtering pipeline (filtering/pipeline.py).

    stage = SpamScoreStage(services.spam_judge)       # filtering/stages.py, when [spam] enabled
    await stage.check_message(incoming)               # run by delivery.deliver_message
    incoming.facts["spam_score"]                      # the SpamScore, for later stages (spamtest)

What the stage does with a message from outside (way "smtp" with a mail-authentication
`Judgement`): removes any X-Spam-Score, X-Spam-Status and X-Spam-Rules fields the sender wrote,
scores it, and then
- at or above `[spam] refuse_threshold`: refuses it for every recipient with 550 5.7.1 naming
  the score and its heaviest rules (a 5xx in the SMTP dialogue: nothing disappears);
- at or above `junk_threshold`: files every account's copy into its \\Junk mailbox (a Sieve
  script may still file it elsewhere);
- always: adds our three X-Spam fields just below this hop's Received field.

Implementation notes:
- Only mail from outside is scored: port 25 without a trusted relay or relay network in
  front. Submission is our users' own mail (authenticated), LMTP was judged by the MTA in
  front of us, a `[smtp] trusted_networks` relay (a filtering appliance) scored it already.
- X-Spam-Rules is folded, one rule per line: with many rules it would pass RFC 5322's 998
  characters, so the stage writes the fields into `raw` itself instead of `add_header`, which
  keeps a value on one line.
- The work is bounded and kept off the event loop for big messages: the MIME parse and the
  link extraction run in a thread above `THREAD_BYTES`, the link blocklists are asked all at
  once with `[spam] uri_timeout` as the limit (uri_blocklists.py).
- Our domains and our users' names (for FROM_NAME_LOCAL_USER and LOOKALIKE_DOMAIN) are read
  from the directory at most every `IDENTITY_SECONDS`, not for every message.
- A bug in a rule must not cost a message: it is logged with its traceback and the message is
  delivered unscored (no X-Spam fields), as if scoring were off.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from postoffice.config_schema import SpamConfig
from postoffice.directory import Directory
from postoffice.filtering.dnsbl import Listing
from postoffice.filtering.mail_domains import DEFAULT_FREEMAIL
from postoffice.filtering.pipeline import PARSED_MESSAGE, IncomingMessage
from postoffice.filtering.score import SPAM_FIELDS, SpamScore, SpamSettings, score_message
from postoffice.filtering.score_rules import ScoreContext, name_key
from postoffice.filtering.score_weights import DEFAULT_WEIGHTS
from postoffice.filtering.uri_blocklists import UriListing, link_domains, listed_link_domains
from postoffice.mailauth.dns_types import Resolver
from postoffice.mailauth.results import AuthenticationResults
from postoffice.message.mime import MessageMetadata, parse_message
from postoffice.message.mime_headers import split_header

log = logging.getLogger(__name__)

THREAD_BYTES = 65536
IDENTITY_SECONDS = 60.0
_RECEIVED = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)
_SPAM_FIELD = re.compile(rb"(?:" + b"|".join(f.encode() for f in SPAM_FIELDS) + rb")[ \t]*:", re.IGNORECASE)


@dataclass
class _Identity:
    domains: frozenset[str] = frozenset()
    names: dict[str, str] = field(default_factory=dict)
    until: float = 0.0


def settings_of(config: SpamConfig) -> SpamSettings:
    return SpamSettings(config.junk_threshold, config.refuse_threshold,
                        DEFAULT_WEIGHTS | dict(config.weights))


class SpamJudge:
    """Scores messages for one process: the settings, the cached local identity, the resolver."""

    def __init__(self, config: SpamConfig, directory: Directory, resolver: Resolver) -> None:
        self.config = config
        self.settings = settings_of(config)
        self.freemail = frozenset(config.freemail_domains or DEFAULT_FREEMAIL)
        self.directory = directory
        self.resolver = resolver
        self._identity = _Identity()

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    async def score(self, raw: bytes, results: AuthenticationResults | None,
                    dnsbl: Sequence[Listing] = (), metadata: MessageMetadata | None = None) -> SpamScore | None:
        """The score of RAW (as received, without our header fields); None when scoring is off
        or failed (logged)."""
        if not self.config.enabled:
            return None
        try:
            return await self._score(raw, results, tuple(dnsbl), metadata)
        except Exception:
            log.exception("scoring a message failed; it is delivered without a spam score")
            return None

    async def _score(self, raw: bytes, results: AuthenticationResults | None, dnsbl: tuple[Listing, ...],
                     metadata: MessageMetadata | None) -> SpamScore:
        identity = await self._local_identity()
        big = len(raw) > THREAD_BYTES
        if metadata is None:
            metadata = await parsed(raw)
        uri_listings: tuple[UriListing, ...] = ()
        if self.config.uri_blocklists:
            domains = (await asyncio.to_thread(link_domains, raw, metadata.body, identity.domains) if big
                       else link_domains(raw, metadata.body, identity.domains))
            uri_listings = tuple(await listed_link_domains(
                self.resolver, domains, self.config.uri_blocklists, self.config.uri_timeout))
        context = ScoreContext(results, dnsbl, uri_listings, identity.domains, identity.names, self.freemail)
        if big:
            return await asyncio.to_thread(score_message, raw, context, self.settings, metadata)
        return score_message(raw, context, self.settings, metadata)

    async def _local_identity(self) -> _Identity:
        now = time.monotonic()
        if now < self._identity.until:
            return self._identity
        domains = frozenset(d.name.lower() for d in await self.directory.list_domains())
        names: dict[str, str] = {}
        for account in await self.directory.list_users():
            key = name_key(account.address.partition("@")[0])
            if key:
                names.setdefault(key, account.address)
        self._identity = _Identity(domains, names, now + IDENTITY_SECONDS)
        return self._identity


class SpamScoreStage:
    """The pipeline's message stage for the spam score (see the module docstring)."""

    name = "spam-score"

    def __init__(self, judge: SpamJudge) -> None:
        self.judge = judge

    async def check_message(self, message: IncomingMessage) -> None:
        judged = message.judgement
        if message.way != "smtp" or judged is None or judged.relayed or not self.judge.enabled:
            return
        raw = message.raw = without_spam_fields(message.raw)
        metadata = await parsed(raw)
        score = await self.judge.score(raw, judged.results, judged.dnsbl, metadata)
        if score is None:
            return
        judged.spam = score  # for the transaction's log line
        message.facts["spam_score"] = score
        if score.is_refused:
            message.refuse(550, "5.7.1", score.refusal_text(), stage=self.name)
            return
        fields, cut = score.header_fields(), below_first_received_at(raw)
        message.raw = raw[:cut] + fields + raw[cut:]
        # For Sieve's body test and the store: the parse of raw, moved by the inserted fields.
        message.facts[PARSED_MESSAGE] = (message.raw, metadata.with_fields_inserted(cut, len(fields)))
        if score.is_junk:
            message.special_use = "\\Junk"


async def parsed(raw: bytes) -> MessageMetadata:
    """parse_message(raw), in a thread above THREAD_BYTES."""
    return await asyncio.to_thread(parse_message, raw) if len(raw) > THREAD_BYTES else parse_message(raw)


def below_first_received(raw: bytes, fields: bytes) -> bytes:
    """RAW with FIELDS inserted after its first Received field (this hop's), or on top when
    it has none: trace fields stay together above, as RFC 5321 §4.4 wants them."""
    cut = below_first_received_at(raw)
    return raw[:cut] + fields + raw[cut:]


def below_first_received_at(raw: bytes) -> int:
    """Where `below_first_received` inserts: after the first Received field, else 0."""
    header_end, _ = split_header(raw, 0, len(raw))
    match = _RECEIVED.search(raw, 0, header_end)
    if match is None:
        return 0
    newline = raw.find(b"\n", match.end(), header_end)
    while newline >= 0 and raw[newline + 1:newline + 2] in (b" ", b"\t"):  # continuation lines
        newline = raw.find(b"\n", newline + 1, header_end)
    return header_end if newline < 0 else newline + 1


def without_spam_fields(raw: bytes) -> bytes:
    """RAW without X-Spam-Score, X-Spam-Status and X-Spam-Rules fields: only ours may reach the
    user's filters (a sender could write "X-Spam-Status: No" on its own message)."""
    header_end, _ = split_header(raw, 0, len(raw))
    block = raw[:header_end]
    if not _SPAM_FIELD.search(block):
        return raw
    kept: list[bytes] = []
    dropping = False
    for line in block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = _SPAM_FIELD.match(line) is not None
        if not dropping:
            kept.append(line)
    return b"".join(kept) + raw[header_end:]
