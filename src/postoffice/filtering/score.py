"""The transparent spam score: named rules, each with a weight, summed (issue 17).

    score = score_message(raw, ScoreContext(results=judged.results), settings)
    score.score, score.rules          # 7.5, (RuleHit("REPLYTO_FREEMAIL", 3.0, "..."), ...)
    score.header_fields()             # X-Spam-Score, X-Spam-Status, X-Spam-Rules (CRLF lines)
    score.is_refused, score.is_junk   # against [spam] refuse_threshold and junk_threshold
    score.with_rule(RuleHit("BAYES_SPAM", 2.5, "classifier: 0.99"))   # a per-account rule

Every rule that fires is named in the message's X-Spam-Rules field with its weight and a short
reason, so a user (or an administrator reading docs/spam.md) can see why a message landed in
Junk and which `[spam.weights]` entry to change. The rules live in score_rules.py, their names
and default weights in score_weights.py; this module adds them up and renders the result.

Sieve's spamtest (RFC 5235) reads `percent`, the score as a share of the refuse threshold:
    percent = 100 * score / refuse_threshold, clamped to 0..100      (spamtest :percent)
    spamtest = 1 + round(9 * percent / 100)                          (1 = clean .. 10 = spam)
as filtering/sieve/extensions.spamtest_value computes it; "0" (not tested) is for unscored
mail. With the default thresholds (5 and 15) the junk threshold is 33 % (spamtest 4).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from postoffice.filtering.score_rules import ScoreContext, find_rules
from postoffice.filtering.score_weights import DEFAULT_WEIGHTS
from postoffice.message.mime import MessageMetadata

__all__ = ["SPAM_FIELDS", "RuleHit", "ScoreContext", "SpamScore", "SpamSettings", "clean_detail",
           "score_message", "total"]

# Header fields we write; any such field already in an incoming message is removed first, so a
# sender cannot pre-judge its own message ("X-Spam-Status: No") for the user's filters.
SPAM_FIELDS = ("x-spam-score", "x-spam-status", "x-spam-rules")
MAX_DETAIL = 80
TOP_RULES_IN_REPLY = 3


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule that fired: its name (a key of score_weights.RULES, or a per-account rule's),
    the weight it added and why, in a few words ("reply-to gmail.com, from example.org")."""

    name: str
    weight: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SpamSettings:
    """The thresholds and weights the score is judged by ([spam] in the configuration)."""

    junk_threshold: float = 5.0
    refuse_threshold: float = 15.0
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def weight(self, name: str) -> float:
        return self.weights.get(name, DEFAULT_WEIGHTS.get(name, 0.0))


def total(rules: Iterable[RuleHit]) -> float:
    """The sum of the weights, rounded so that 4.9999... from float addition is 5.0."""
    return round(math.fsum(hit.weight for hit in rules), 3)


@dataclass(frozen=True, slots=True)
class SpamScore:
    """A message's score: the rules that fired (in the order they were found) and their sum."""

    score: float
    rules: tuple[RuleHit, ...]
    junk_threshold: float = 5.0
    refuse_threshold: float = 15.0

    @classmethod
    def of(cls, rules: Iterable[RuleHit], settings: SpamSettings) -> SpamScore:
        hits = tuple(rules)
        return cls(total(hits), hits, settings.junk_threshold, settings.refuse_threshold)

    def with_rule(self, hit: RuleHit) -> SpamScore:
        """This score with one more rule (a per-account stage's, such as the junk classifier's);
        a rule already present is replaced, so a stage that runs twice counts once."""
        rules = (*(r for r in self.rules if r.name != hit.name), hit)
        return replace(self, score=total(rules), rules=rules)

    @property
    def is_junk(self) -> bool:
        return self.score >= self.junk_threshold

    @property
    def is_refused(self) -> bool:
        return self.score >= self.refuse_threshold

    def names(self) -> tuple[str, ...]:
        return tuple(hit.name for hit in self.rules)

    def by_weight(self) -> list[RuleHit]:
        """The rules, heaviest first (the order of X-Spam-Rules and of the refusal text)."""
        return sorted(self.rules, key=lambda hit: -hit.weight)

    @property
    def percent(self) -> float:
        """RFC 5235 §3.3 spamtest :percent: the score as a share of the refuse threshold, 0..100
        (what the Sieve stage hands to spamtest)."""
        if self.refuse_threshold <= 0:
            return 100.0 if self.score > 0 else 0.0
        return max(0.0, min(100.0, 100.0 * self.score / self.refuse_threshold))

    def spamtest_value(self) -> int:
        """RFC 5235 §3.2 spamtest, 1..10 (see the module docstring for the formula)."""
        return 1 + round(self.percent * 9 / 100)

    def spamtest_percent(self) -> int:
        return round(self.percent)

    def header_fields(self) -> bytes:
        """X-Spam-Score, X-Spam-Status and X-Spam-Rules, CRLF-terminated, one rule per line."""
        status = "Yes" if self.is_junk else "No"
        lines = [
            f"X-Spam-Score: {self.score:.1f}",
            f"X-Spam-Status: {status}, score={self.score:.1f} junk={self.junk_threshold:g}"
            f" refuse={self.refuse_threshold:g}",
        ]
        rules = [_rule_text(hit) for hit in self.by_weight()]
        if rules:
            lines.append("X-Spam-Rules: " + ",\r\n\t".join(rules))
        else:
            lines.append("X-Spam-Rules: none")
        return ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")

    def refusal_text(self) -> str:
        """The text of the 550 at DATA: the score, the threshold and the heaviest rules."""
        top = ", ".join(_rule_text(hit) for hit in self.by_weight()[:TOP_RULES_IN_REPLY])
        return (f"Message refused as spam: score {self.score:.1f}, refused from"
                f" {self.refuse_threshold:g} ({top})")


def _rule_text(hit: RuleHit) -> str:
    weight = f"{hit.weight:+.1f}" if hit.weight < 0 else f"{hit.weight:.1f}"
    return f"{hit.name}={weight}" + (f" ({hit.detail})" if hit.detail else "")


def clean_detail(text: str, limit: int = MAX_DETAIL) -> str:
    """TEXT fit for a header field and an SMTP reply: printable ASCII (others become "?"), no
    parentheses or line breaks, at most `limit` characters."""
    cleaned = "".join(c if " " <= c <= "~" and c not in "()" else "?" for c in text)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def score_message(raw: bytes, context: ScoreContext, settings: SpamSettings,
                  metadata: MessageMetadata | None = None) -> SpamScore:
    """The score of RAW (the message as received, without our own header fields): every rule
    of score_rules.py whose weight is not 0. Pure and synchronous; its cost grows with the
    message (one MIME parse unless `metadata` is given), so callers run big ones in a thread."""
    hits = []
    for name, detail in find_rules(raw, context, metadata):
        weight = settings.weight(name)
        if weight:
            hits.append(RuleHit(name, weight, clean_detail(detail)))
    return SpamScore.of(hits, settings)
