"""Why a message bounced and what to do about it, in plain words.

    explanation = explain(bounced)            # a BouncedRecipient from bounce_parse
    explanation.kind, explanation.cause, explanation.fix

The reply text decides first (servers say "Sender verify failed" under a 550 5.1.1, and Spamhaus
listings under a plain 554), then the enhanced status code (RFC 3463; 5.7.23 to 5.7.26 from
RFC 7372 and RFC 8616 for SPF, DKIM and DMARC), then the class of the code. The rules are
ordered: the first that matches wins, so the more particular sits above the more general
(sender verification above "user unknown", rate limits above greylisting).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from postoffice.diagnostics.bounce_parse import BouncedRecipient


@dataclass(frozen=True, slots=True)
class Explanation:
    kind: str  # stable name of the cause, e.g. "user-unknown" (tests and scripts may rely on it)
    cause: str  # one sentence
    fix: str  # one sentence


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    text: re.Pattern[str] | None
    statuses: tuple[str, ...]  # enhanced codes ("5.1.1") or prefixes ending in "." ("5.7.")
    cause: str
    fix: str


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(patterns), re.IGNORECASE)


_RULES = (
    _Rule("sender-verification-failed",
          _words(r"sender verif", r"verification failed", r"verify failed", r"callout verification",
                 r"could not verify sender", r"sender address (?:rejected|verification)", r"unverifiable sender",
                 r"sender (?:address )?(?:does not exist|unknown)"),
          (),
          "The receiving server checked your sender address by calling back your domain's MX and asking it "
          "to accept mail for that address, and your MX said the user does not exist (or did not answer).",
          "Send from an address that exists and that your own MX accepts (not an unrouted no-reply "
          "address), and make sure your MX answers on port 25; `postoffice check domain` shows both."),
    _Rule("blocklisted",
          _words(r"spamhaus", r"spamcop", r"sorbs", r"barracuda", r"\bdnsbl\b", r"\brbl\b", r"blocklist",
                 r"block list", r"blacklist", r"black list", r"(?<!not )listed (?:at|on|in|by)", r"blocked using",
                 r"network not allowed", r"ip (?:address )?(?:is )?(?:blocked|banned)", r"poor reputation",
                 r"bad reputation", r"client host .* blocked"),
          (),
          "The receiving server refused the connection because the sending server's IP address is on a "
          "blocklist (a DNSBL such as Spamhaus) or has a poor reputation there.",
          "Look the sending IP up with `postoffice check blocklists IP`, fix what got it listed (an open "
          "relay, a hacked account, a missing PTR record) and ask the list to delist it."),
    _Rule("dmarc-reject",
          _words(r"dmarc"),
          ("5.7.26",),
          "The receiving server rejected the message because it failed your domain's DMARC policy: "
          "neither SPF nor DKIM passed for the domain in the From header.",
          "Sign outgoing mail with DKIM for the From domain and list your sending servers in SPF; "
          "`postoffice check domain` and `postoffice domain records` show what to publish."),
    _Rule("spf-fail",
          _words(r"\bspf\b", r"sender policy framework", r"not (?:a )?permitted sender", r"not designated"),
          ("5.7.23",),
          "The receiving server rejected the message because SPF failed: your domain's SPF record does "
          "not list the server that sent it.",
          "Add the sending server's address (or `mx`/`a`) to your SPF record; `postoffice check spf "
          "DOMAIN --ip IP` shows which term decides."),
    _Rule("dkim-fail",
          _words(r"\bdkim\b", r"domainkeys"),
          ("5.7.20", "5.7.21", "5.7.22"),
          "The receiving server rejected the message because its DKIM signature did not verify (a "
          "missing or wrong public key in DNS, or the message was changed after signing).",
          "Publish the DKIM record `postoffice domain records` prints and check it with `postoffice "
          "check domain`; do not let a relay or list rewrite signed messages."),
    _Rule("tls-required",
          _words(r"must issue a starttls", r"starttls", r"tls (?:is )?required", r"requires? (?:tls|encryption)",
                 r"encryption required", r"secure connection required"),
          ("5.7.10", "5.7.11", "4.7.5"),
          "The receiving server requires an encrypted connection (TLS), and the message was sent without one.",
          "Make sure outgoing mail uses STARTTLS (a sending server whose TLS is off or broken causes this); "
          "`postoffice check tls HOST:25 --starttls smtp` shows what the receiver offers."),
    _Rule("relay-denied",
          _words(r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited|not allowed)",
                 r"unable to relay", r"not permitted to relay", r"we do not relay", r"no relaying",
                 r"relay not permitted"),
          ("5.7.64", "5.4.1"),
          "The server refused to pass the message on: it does not handle mail for the recipient's domain, "
          "or it only relays for logged-in users.",
          "Send through your own server with authentication (submission, port 587), and check that the "
          "recipient domain's MX records point at a server that accepts its mail."),
    _Rule("rate-limited",
          _words(r"rate limit", r"ratelimit", r"too many (?:messages|mails|emails|connections|recipients)",
                 r"unusual rate", r"sending rate",
                 r"exceeded (?:the |your )?(?:sending|rate|message rate|connection|hourly|daily) limit", r"throttl", r"slow down"),
          ("4.7.28", "5.7.28", "4.7.0"),
          "The receiving server is limiting how much mail it takes from your server right now (too many "
          "messages or connections in a short time).",
          "Nothing to do for a single message: the queue tries again; for bulk mail, send more slowly and "
          "make sure recipients asked for it."),
    _Rule("greylisted",
          _words(r"greylist", r"graylist", r"try again later", r"please try again", r"temporarily "
                 r"(?:rejected|deferred)", r"come back later"),
          ("4.7.1", "4.2.0"),
          "The receiving server greylisted the message: it refuses mail from an unknown sender once and "
          "accepts it when the sending server tries again a few minutes later.",
          "Nothing to do: the queue retries, and the message is delivered on a later attempt; if it never "
          "is, the sending server retries too rarely or from changing IP addresses."),
    _Rule("message-too-large",
          _words(r"too (?:large|big)", r"exceeds? (?:the )?(?:maximum|size)", r"size limit", r"message size",
                 r"maximum (?:inbound )?(?:message )?size", r"sizelimit"),
          ("5.3.4", "5.2.3", "4.3.4"),
          "The message is larger than the receiving server accepts.",
          "Send the attachment another way (a link to a shared file) or split it; most servers take up to "
          "10 to 25 MB, and attachments grow by a third when encoded."),
    _Rule("mailbox-full",
          _words(r"quota", r"mailbox (?:is )?full", r"mailbox full", r"mail ?folder is full", r"over quota",
                 r"insufficient (?:system )?storage", r"out of storage", r"storage space", r"mailbox has exceeded"),
          ("5.2.2", "4.2.2"),
          "The recipient's mailbox is full (over its quota), so the receiving server cannot store the message.",
          "Ask the recipient by another channel to make room, then send again; the queue keeps retrying a "
          "temporary (4xx) failure for a while by itself."),
    _Rule("mailbox-disabled",
          _words(r"disabled", r"discontinued", r"inactive", r"suspended", r"deactivated", r"no longer active",
                 r"account (?:has been )?(?:closed|expired|locked)"),
          ("5.2.1",),
          "The recipient's mailbox exists but is disabled or closed, so it takes no mail.",
          "Reach the recipient another way and ask for a current address; remove this one from your lists."),
    _Rule("user-unknown",
          _words(r"user unknown", r"unknown user", r"no such (?:user|mailbox|recipient|address)",
                 r"does not exist", r"doesn'?t exist", r"doesn'?t have an? .* account", r"unknown recipient",
                 r"recipient (?:name )?is not recognized", r"not listed in", r"invalid (?:recipient|mailbox|address)",
                 r"mailbox (?:not found|unavailable)", r"address (?:rejected|not found|couldn'?t be found)",
                 r"bad destination mailbox", r"unknown or illegal", r"user not found", r"recipient not found",
                 r"no mailbox", r"unknown address", r"not our customer", r"unrouteable address",
                 r"undeliverable address", r"address unknown"),
          ("5.1.1", "5.1.0", "5.1.6"),
          "The recipient's address does not exist on the receiving server (a typing mistake, or an account "
          "that was removed).",
          "Check the address for typing mistakes and ask the recipient for the right one; do not send to it "
          "again as it is."),
    _Rule("domain-not-found",
          _words(r"host not found", r"name service error", r"domain not found", r"no such domain",
                 r"nxdomain", r"domain (?:does not|doesn'?t) exist", r"no mx", r"unable to route",
                 r"unroutable", r"bad destination system", r"no route to host"),
          ("5.1.2", "5.4.4", "4.4.4"),
          "The recipient's domain does not exist in DNS or has no mail server (MX or address) to deliver to.",
          "Check the part after the @ for typing mistakes; if it is right, the domain's owner must publish "
          "MX records for it."),
    _Rule("connection-timed-out",
          _words(r"timed? ?out", r"time-?expired", r"not responding", r"no answer from host",
                 r"establish an smtp connection", r"connection refused", r"not reachable", r"in the queue too long",
                 r"could not connect", r"unable to connect", r"connection (?:was )?(?:lost|reset)"),
          ("4.4.1", "4.4.2", "4.4.7", "5.4.7", "5.4.1"),
          "The sending server could not reach the recipient's mail server (no answer, connection refused or "
          "timed out) for as long as it kept trying.",
          "The problem is at the receiving side if it lasts; try again later, and check that the recipient's "
          "MX hosts answer on port 25 (`postoffice check tls HOST:25 --starttls smtp`)."),
    _Rule("mail-loop",
          _words(r"too many hops", r"mail loop", r"loop(?:s)? back to (?:myself|me)", r"routing loop"),
          ("5.4.6",),
          "The message went round in a loop between servers (or forwarding rules) until it was stopped.",
          "Look for a forwarding rule or alias that sends the address back to itself, or two servers that "
          "each think the other is responsible for the domain."),
    _Rule("spam-or-policy",
          _words(r"\bspam\b", r"policy", r"content", r"rejected by .*filter", r"not accepted"),
          ("5.7.",),
          "The receiving server refused the message by its own policy (taken for spam, or the sender or "
          "its server not trusted).",
          "Check `postoffice check domain` (SPF, DKIM, DMARC, PTR, blocklists) and the message content; "
          "the reply text or the receiver's postmaster pages say which policy applied."),
)

_TEMPORARY = Explanation(
    "temporary-failure",
    "The receiving server refused the message temporarily (a 4xx status); the reason it gave is in the reply.",
    "Usually nothing: the queue tries again; if the same failure lasts for days, act on the reply text.")
_PERMANENT = Explanation(
    "permanent-failure",
    "The receiving server refused the message permanently (a 5xx status) for a reason this explanation "
    "does not recognise; the reply has its words.",
    "Read the reply text, correct what it names, and send the message again; the receiver's postmaster can "
    "say more.")


def explain(bounced: BouncedRecipient) -> Explanation:
    """The cause and fix of one bounced recipient."""
    text = bounced.reply
    for rule in _RULES:
        if rule.text is not None and text and rule.text.search(text):
            return Explanation(rule.kind, rule.cause, rule.fix)
    for rule in _RULES:
        if any(bounced.status == s or (s.endswith(".") and bounced.status.startswith(s)) for s in rule.statuses):
            return Explanation(rule.kind, rule.cause, rule.fix)
    return _TEMPORARY if bounced.status.startswith("4") else _PERMANENT
