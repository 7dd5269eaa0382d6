"""Per-account junk classifier: Robinson's token probabilities, Fisher's chi-square combining.

    totals, counts = await store.junk_token_counts(account_id, tokens)
    estimate = estimate_junk(tokens, totals, counts, min_trained=10)   # None: not trained enough
    estimate.probability   # 0.0 (surely ham) .. 1.0 (surely spam)

The maths (Gary Robinson, "A Statistical Approach to the Spam Problem", 2003; as in SpamBayes):
- Each token w seen in b of the account's N_spam trained spam and g of its N_ham trained ham:
  p(w) = (b/N_spam) / (b/N_spam + g/N_ham), the chance a message holding w is spam with equal
  priors; Robinson's f(w) = (s·x + n·p(w)) / (s + n), n = b + g, pulls a rarely seen token's
  probability towards x = 0.5 with strength s, so one sighting decides nothing.
- Only tokens with |f(w) - 0.5| >= MIN_STRENGTH count, the MAX_CLUES strongest of them.
- Fisher's method: H = C⁻¹(-2 Σ ln f(w), 2n) and S = C⁻¹(-2 Σ ln(1 - f(w)), 2n), C⁻¹ the
  chi-square survival function with 2n degrees of freedom; I = (1 + H - S) / 2. Both
  hypotheses are tested, so a message with strong evidence both ways lands near 0.5 ("unsure")
  instead of being pushed to an extreme.

Pure: no I/O. Training (which messages, when) is junk_training.py; the counts live in the store
(store/filter_state_interface.py).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from postoffice.store.filter_state_interface import JunkTotals, TokenCounts

ROBINSON_S = 0.45  # strength of the prior (SpamBayes' unknown_word_strength)
ROBINSON_X = 0.5   # probability of a token never seen (unknown_word_prob)
MIN_STRENGTH = 0.1
MAX_CLUES = 150
RULE_NAME = "JUNK_LEARNED"


@dataclass(frozen=True, slots=True)
class JunkEstimate:
    """How spammy the account's own training finds a message, and the tokens that said so."""

    probability: float
    clues: tuple[tuple[str, float], ...]  # strongest first: (token, f(w))
    trained: JunkTotals

    def detail(self, shown: int = 3) -> str:
        """`p=0.97, 41 clues: subject:winner from:@lottery.example ...`: for X-Spam-Rules."""
        names = " ".join(token for token, _ in self.clues[:shown])
        return f"p={self.probability:.2f}, {len(self.clues)} clues" + (f": {names}" if names else "")


def token_probability(counts: TokenCounts, totals: JunkTotals) -> float:
    """Robinson's f(w) for one token (see the module docstring)."""
    spam_ratio = counts.spam / totals.spam if totals.spam else 0.0
    ham_ratio = counts.ham / totals.ham if totals.ham else 0.0
    if spam_ratio + ham_ratio == 0.0:
        return ROBINSON_X
    p = spam_ratio / (spam_ratio + ham_ratio)
    n = counts.spam + counts.ham
    return (ROBINSON_S * ROBINSON_X + n * p) / (ROBINSON_S + n)


def chi2_survival(chi2: float, degrees: int) -> float:
    """P(X >= chi2) for X chi-square distributed with an even number of degrees of freedom
    (the series for even degrees; exact, no library needed)."""
    m = chi2 / 2.0
    term = total = math.exp(-m)
    for i in range(1, degrees // 2):
        term *= m / i
        total += term
    return min(total, 1.0)


def fisher_combine(probabilities: Collection[float]) -> float:
    """Robinson's I from the f(w) of the clues; 0.5 with none."""
    if not probabilities:
        return 0.5
    # Sums of logs, not logs of products: a product of 150 small numbers underflows.
    ham_evidence = -2.0 * sum(math.log(max(p, 1e-200)) for p in probabilities)
    spam_evidence = -2.0 * sum(math.log(max(1.0 - p, 1e-200)) for p in probabilities)
    degrees = 2 * len(probabilities)
    h = 1.0 - chi2_survival(ham_evidence, degrees)   # near 1 when the tokens say ham
    s = 1.0 - chi2_survival(spam_evidence, degrees)  # near 1 when they say spam
    return (1.0 + s - h) / 2.0


def estimate_junk(tokens: Collection[str], totals: JunkTotals, counts: Mapping[str, TokenCounts],
                  *, min_trained: int) -> JunkEstimate | None:
    """The account's estimate for a message's tokens; None until it trained at least
    `min_trained` spam and `min_trained` ham messages (before that it knows too little)."""
    if totals.spam < min_trained or totals.ham < min_trained or not totals.spam or not totals.ham:
        return None
    clues: list[tuple[float, str, float]] = []
    for token in tokens:
        seen = counts.get(token)
        if seen is None:
            continue
        f = token_probability(seen, totals)
        strength = abs(f - 0.5)
        if strength >= MIN_STRENGTH:
            clues.append((strength, token, f))
    clues.sort(key=lambda c: (-c[0], c[1]))
    chosen = clues[:MAX_CLUES]
    probability = fisher_combine([f for _, _, f in chosen])
    return JunkEstimate(probability, tuple((token, f) for _, token, f in chosen), totals)


def junk_rule_weight(estimate: JunkEstimate, weight: float) -> float:
    """The score the estimate adds: `weight` for a sure spam, -`weight` for a sure ham, in
    proportion between (0.5, unsure, adds nothing)."""
    return round(weight * (2.0 * estimate.probability - 1.0), 2)
