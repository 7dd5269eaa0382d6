"""The junk classifier's maths and tokenizer (filtering/junk_classifier.py, junk_tokens.py):
pure functions, known inputs, probabilities in the right direction."""
from __future__ import annotations

import math
from collections import Counter

import pytest

from postoffice.filtering.junk_classifier import (
    chi2_survival,
    estimate_junk,
    fisher_combine,
    junk_rule_weight,
    token_probability,
)
from postoffice.filtering.junk_tokens import MAX_TOKENS, raw_message_tokens
from postoffice.store.filter_state_interface import JunkTotals, TokenCounts


def message(subject: str, body: str, sender: str = "someone@example.org", extra: str = "",
            content_type: str = "text/plain; charset=utf-8") -> bytes:
    return (f"From: {sender}\r\nTo: user@example.test\r\nSubject: {subject}\r\n{extra}"
            f"Content-Type: {content_type}\r\n\r\n{body}\r\n").encode()


SPAM = [message(f"WIN a FREE prize now {i}", f"Claim your prize money today! Click http://win{i}.prizes.example/x"
                " to claim the lottery winnings, guaranteed cash.", sender=f"promo{i}@lottery.example")
        for i in range(12)]
HAM = [message(f"Minutes of the meeting {i}", "Hi team, attached are the notes from our project meeting;"
               " the next review is on Thursday. Regards, Carol", sender="carol@work.example")
       for i in range(12)]


def _train(messages: list[bytes]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for raw in messages:
        counts.update(raw_message_tokens(raw))
    return counts


def _corpus() -> tuple[JunkTotals, dict[str, TokenCounts]]:
    spam, ham = _train(SPAM[:10]), _train(HAM[:10])
    return JunkTotals(10, 10), {t: TokenCounts(spam[t], ham[t]) for t in spam.keys() | ham.keys()}


# --- maths -----------------------------------------------------------------------------------

def test_chi2_survival_matches_the_closed_forms() -> None:
    assert chi2_survival(0.0, 4) == 1.0
    assert math.isclose(chi2_survival(2.0, 2), math.exp(-1.0))           # 2 dof: e^(-x/2)
    assert math.isclose(chi2_survival(4.0, 4), 3 * math.exp(-2.0))       # 4 dof: e^(-m)(1 + m)
    assert chi2_survival(10_000.0, 300) == 0.0                           # underflows to 0, no error


def test_token_probability_follows_robinson() -> None:
    totals = JunkTotals(10, 10)
    assert token_probability(TokenCounts(0, 0), totals) == 0.5
    one_spam = token_probability(TokenCounts(1, 0), totals)
    many_spam = token_probability(TokenCounts(10, 0), totals)
    assert 0.5 < one_spam < many_spam < 1.0  # a single sighting decides little
    assert math.isclose(one_spam, (0.45 * 0.5 + 1.0) / 1.45)
    assert token_probability(TokenCounts(0, 10), totals) < 0.05
    # Equal rates in unequal corpora: no evidence either way.
    assert math.isclose(token_probability(TokenCounts(2, 1), JunkTotals(20, 10)), 0.5)


def test_fisher_combining_leans_with_the_evidence_and_stays_unsure_when_it_conflicts() -> None:
    assert fisher_combine([]) == 0.5
    assert fisher_combine([0.99] * 20) > 0.99
    assert fisher_combine([0.01] * 20) < 0.01
    assert 0.4 < fisher_combine([0.99] * 10 + [0.01] * 10) < 0.6


def test_a_trained_account_scores_new_mail_in_the_right_direction() -> None:
    totals, counts = _corpus()
    for raw, spam in ((SPAM[11], True), (HAM[11], False)):
        tokens = raw_message_tokens(raw)
        estimate = estimate_junk(tokens, totals, counts, min_trained=10)
        assert estimate is not None
        if spam:
            assert estimate.probability > 0.9, estimate.detail()
            assert junk_rule_weight(estimate, 3.0) > 2.5
        else:
            assert estimate.probability < 0.1, estimate.detail()
            assert junk_rule_weight(estimate, 3.0) < -2.5
        assert estimate.clues and "p=" in estimate.detail()


def test_an_untrained_account_says_nothing() -> None:
    totals, counts = _corpus()
    tokens = raw_message_tokens(SPAM[11])
    assert estimate_junk(tokens, totals, counts, min_trained=11) is None
    assert estimate_junk(tokens, JunkTotals(50, 0), counts, min_trained=1) is None  # no ham at all


# --- tokens ----------------------------------------------------------------------------------

def test_tokens_come_from_decoded_headers_with_their_field_name() -> None:
    raw = message("=?utf-8?q?Gr=C3=BC=C3=9Fe_und_Preise?=", "body text here",
                  sender='"Bank Support" <alert@secure-bank.example.co.uk>',
                  extra="Reply-To: winner@freemail.example\r\nX-Mailer: Mass Mailer 5.1\r\n")
    tokens = raw_message_tokens(raw)
    assert {"subject:grüße", "subject:und", "subject:preise"} <= tokens
    assert {"from:alert@secure-bank.example.co.uk", "from:@example.co.uk", "from:bank", "from:support"} <= tokens
    assert {"reply-to:winner@freemail.example", "reply-to:@freemail.example"} <= tokens
    assert "x-mailer:mass mailer 5.1" in tokens
    assert {"body", "text", "here"} <= tokens and "subject:body" not in tokens


def test_our_own_verdict_headers_teach_nothing() -> None:
    raw = message("hello", "plain words", extra="X-Spam-Score: 9.5\r\nX-Spam-Rules: SOMETHING_BAD\r\n"
                  "Authentication-Results: mx.example.test; spf=fail\r\nReceived: from evil.example\r\n")
    tokens = raw_message_tokens(raw)
    assert not any("something_bad" in t or "evil" in t or "9.5" in t or "spf" in t for t in tokens), tokens


def test_html_text_urls_and_attachments_give_tokens() -> None:
    raw = (b"From: a@b.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\n"
           b"Content-Type: text/html\r\n\r\n<p>Visit <a href='x'>https://Shop.Deals.Example.com/path?id=1</a>"
           b" for <b>cheap</b> watches</p>\r\n--X\r\n"
           b"Content-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\n"
           b"Content-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\n\r\nTVqQ\r\n--X--\r\n")
    tokens = raw_message_tokens(raw)
    assert {"visit", "cheap", "watches"} <= tokens and "<b>" not in tokens
    assert {"url:example.com", "url:shop.deals.example.com"} <= tokens
    assert not any("path" in t for t in tokens)  # URL paths would make a token per message
    assert {"attach:.exe", "part:application/octet-stream", "part:text/html"} <= tokens


def test_long_words_are_summarised_and_the_count_is_bounded() -> None:
    tokens = raw_message_tokens(message("s", "a" * 50 + " " + " ".join(f"word{i}" for i in range(20_000))))
    assert "long:a:5" in tokens
    assert len(tokens) == MAX_TOKENS


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe garbage \x00", b"Subject: only a header\r\n",
                                 b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n"])
def test_any_bytes_give_tokens_without_error(raw: bytes) -> None:
    assert isinstance(raw_message_tokens(raw), frozenset)
