"""The spam score's rules by name, each with its default weight and why it exists.

One table, read by the configuration (``[spam.weights]`` may change any of these weights, and
only these names), by the rules themselves (filtering/score_rules.py) and by docs/spam.md,
which explains each rule at length. A rule added by another stage (the junk classifier's) adds
its name here, so that its weight is configurable like the others.

Weights follow the scale SpamAssassin made familiar: a message at 5 or more is probably spam.
A weight may be negative (evidence that the message is genuine) or 0 (the rule is off).
"""

from __future__ import annotations

# name -> (default weight, one line: what fires it)
RULES: dict[str, tuple[float, str]] = {
    "SPF_FAIL": (2.0, "SPF says the client may not send for the envelope sender's domain"),
    "SPF_SOFTFAIL": (1.0, "SPF says the client is probably not allowed to send for that domain"),
    "SPF_NONE": (0.3, "the envelope sender's domain publishes no SPF record"),
    "SPF_PERMERROR": (0.5, "the envelope sender's domain publishes a broken SPF record"),
    "DKIM_NONE": (0.3, "the message carries no DKIM signature"),
    "DKIM_FAIL": (1.0, "every DKIM signature of the message fails to verify"),
    "DKIM_PASS": (-0.5, "a valid DKIM signature of the From domain (or its parent) vouches for it"),
    "DMARC_FAIL": (3.0, "the From domain publishes DMARC and the message fails it"),
    "DMARC_NONE": (0.2, "the From domain publishes no DMARC policy"),
    "ARC_FAIL": (1.0, "the message's ARC chain is broken"),
    "DNSBL_LISTED": (3.0, "the client's address is on a [spam] blocklists list"),
    "IPREV_FAIL": (1.0, "the client's address has no reverse name that resolves back to it"),
    "REPLYTO_OTHER_DOMAIN": (1.5, "replies go to another domain than the From address's"),
    "REPLYTO_FREEMAIL": (3.0, "replies go to a free-mail address in another domain than From's"),
    "FROM_NAME_OTHER_ADDRESS": (2.5, "the From display name shows an address other than the sender's"),
    "FROM_NAME_LOCAL_USER": (2.5, "mail from outside whose display name is the name of one of our users"),
    "FROM_NAME_BRAND": (2.0, "the display name claims a well-known brand its domain does not belong to"),
    "LOOKALIKE_DOMAIN": (3.5, "the From domain imitates one of ours or a popular one"),
    "FROM_UNUSABLE": (1.5, "no From field, several From fields, or one without an address with a domain"),
    "MISSING_DATE": (1.0, "the message has no Date field (RFC 5322 requires one)"),
    "MISSING_MESSAGE_ID": (0.5, "the message has no Message-ID field"),
    "HTML_ONLY": (1.0, "the message has HTML text and no plain-text version"),
    "EXECUTABLE_ATTACHMENT": (4.0, "an attachment is a program or script (.exe, .js, .iso ...)"),
    "MACRO_ATTACHMENT": (2.5, "an attachment is an Office document with macros (.docm, .xlsm ...)"),
    "ARCHIVED_EXECUTABLE": (4.0, "a .zip attachment lists a program or script among its files"),
    "URIBL_LISTED": (4.0, "a link in the text points to a domain on a [spam] uri_blocklists list"),
}

DEFAULT_WEIGHTS: dict[str, float] = {name: weight for name, (weight, _) in RULES.items()}
