"""The learned junk classifier as a per-account stage of the filtering pipeline.

    stage = JunkClassifierStage(services.store, config.junk)   # filtering/stages.py
    await stage.decide(incoming, account)                      # after the spam score, before Sieve

For a message the spam score judged (`incoming.facts["spam_score"]`), each account whose own
classifier is trained ([junk] min_trained each way) gets the rule JUNK_LEARNED added to its
score: up to +`[junk] weight` for a message like those it moved into Junk, down to -weight for
one like those it moved out, in proportion between (junk_classifier.junk_rule_weight). Then:
- the account's copy carries its own X-Spam-Score, X-Spam-Status and X-Spam-Rules (naming the
  rule, the probability and the strongest clues), and `account.facts["spam_score"]` is that
  score, so Sieve's spamtest sees what the user's training says;
- where the message goes follows the account's score: into \\Junk when the rule pushes it over
  `[spam] junk_threshold`, back to the inbox when the rule brings it under; a message DMARC
  quarantined stays in Junk whatever the classifier says (that verdict is about forgery, which
  no user's taste changes). A Sieve script that runs after may still file it anywhere.

Implementation notes:
- An account that has not trained enough costs one store read (its totals) and nothing else.
  Tokens are made once per message (in a thread: CPU proportional to the message) and shared
  by every account it reaches; a trained account costs one more read, of its token counts.
- Unscored mail (submission, LMTP, relays, [spam] off) is left alone: the classifier feeds the
  score, it does not judge on its own.
"""

from __future__ import annotations

import asyncio

from postoffice.config_schema import JunkConfig
from postoffice.filtering.junk_classifier import RULE_NAME, estimate_junk, junk_rule_weight
from postoffice.filtering.junk_tokens import raw_message_tokens
from postoffice.filtering.pipeline import AccountDisposition, Filing, IncomingMessage
from postoffice.filtering.score import RuleHit, SpamScore, clean_detail
from postoffice.filtering.spam_stage import below_first_received, without_spam_fields
from postoffice.store.filter_state_interface import FilterStateData

JUNK = "\\Junk"
_TOKENS = "junk_tokens"  # incoming.facts key: the message's tokens, made once


class JunkClassifierStage:
    """See the module docstring."""

    name = "junk-classifier"

    def __init__(self, store: FilterStateData, config: JunkConfig) -> None:
        self.store = store
        self.config = config

    async def _tokens(self, message: IncomingMessage) -> frozenset[str]:
        cached = message.facts.get(_TOKENS)
        if isinstance(cached, frozenset):
            return cached
        # Our own X-Spam fields are in raw by now; the tokenizer does not read them.
        tokens = await asyncio.to_thread(raw_message_tokens, message.raw)
        message.facts[_TOKENS] = tokens
        return tokens

    async def decide(self, message: IncomingMessage, account: AccountDisposition) -> None:
        score = message.facts.get("spam_score")
        if not isinstance(score, SpamScore) or not self.config.learning or not self.config.weight:
            return
        # The totals alone first: an account that trained too little costs no tokenizing.
        totals, _ = await self.store.junk_token_counts(account.account_id, ())
        if min(totals.spam, totals.ham) < self.config.min_trained:
            return
        tokens = await self._tokens(message)
        _, counts = await self.store.junk_token_counts(account.account_id, tokens)
        estimate = estimate_junk(tokens, totals, counts, min_trained=self.config.min_trained)
        if estimate is None:
            return
        hit = RuleHit(RULE_NAME, junk_rule_weight(estimate, self.config.weight), clean_detail(estimate.detail()))
        mine = score.with_rule(hit)
        account.facts["spam_score"] = mine
        account.set_content(below_first_received(without_spam_fields(message.stored_form()), mine.header_fields()))
        account.outcome.append(f"{RULE_NAME} {hit.weight:+.1f}")
        if account.keep_implicit and mine.is_junk != score.is_junk:
            quarantined = message.judgement is not None and message.judgement.verdict.action == "junk"
            if mine.is_junk:
                account.filings[:] = [Filing(f.mailbox, JUNK, f.flags, f.create) for f in account.filings]
            elif not quarantined:
                account.filings[:] = [Filing(f.mailbox, None, f.flags, f.create) for f in account.filings]
