"""The tokens the junk classifier learns from: pure, bounded, from a message parsed once.

    meta = parse_message(raw)                   # message/mime.py, done once at delivery anyway
    tokens = message_tokens(meta, raw)          # frozenset[str], at most MAX_TOKENS

What goes in (the choice follows Graham's "A Plan for Spam" and SpamBayes' tokenizer):
- Decoded header fields that say who sent the mail and with what (Subject, From, Reply-To, To,
  Cc, Sender, List-Id, X-Mailer, User-Agent, Content-Type), each word prefixed with the field's
  name (`subject:free` is not `free`): the same word means different things in different places.
  Addresses give their whole form and their domain. Fields a server adds (Received,
  Authentication-Results, X-Spam-*) stay out: our own verdict must not teach the classifier.
- The text of text/plain and text/html parts (HTML as the text a reader sees), lowercased,
  words of 3 to 20 characters; a longer word becomes `long:<first letter>:<length / 10>`,
  a URL gives `url:<host>` and its registered-looking tail, so that every random path does not
  make a token of its own.
- The MIME shape: each part's type and each attachment's file name extension (`.exe` in a
  message to a person says something).

A message gives a set (each token counts once per message, as in Graham's counts) bounded by
MAX_TOKENS, and the text read is bounded by MAX_TEXT: work proportional to input is capped, so a
hostile message costs no more than an ordinary big one.
"""

from __future__ import annotations

import re

from postoffice.message.mime import parse_message
from postoffice.message.mime_model import BodyPart, MessageMetadata

MAX_TOKENS = 1500       # distinct tokens per message
MAX_TEXT = 100_000      # characters of body text read per message
_MIN_WORD, _MAX_WORD = 3, 20
_HEADERS = {"subject", "from", "reply-to", "to", "cc", "sender", "list-id", "x-mailer",
            "user-agent", "content-type"}
_ADDRESS_HEADERS = {"from", "reply-to", "to", "cc", "sender"}
_WORD = re.compile(r"[$€£]?\w[\w'.$€£-]*")  # one character class: no backtracking
_URL = re.compile(r"(?:https?://|www\.)([a-z0-9.-]+)[^\s<>\"']*")  # on lowered text; path dropped
_ADDRESS = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)", re.UNICODE)


class _Bag:
    """Tokens in first-seen order, up to a limit."""

    __slots__ = ("full", "tokens")

    def __init__(self) -> None:
        self.tokens: dict[str, None] = {}
        self.full = False

    def add(self, token: str) -> None:
        if not self.full:
            self.tokens[token] = None
            self.full = len(self.tokens) >= MAX_TOKENS


def _words(text: str, prefix: str, bag: _Bag) -> None:
    # findall and dict.fromkeys run in C: each distinct word is looked at once, in order.
    for found in dict.fromkeys(_WORD.findall(text.lower())):
        if bag.full:
            return
        word = found.rstrip(".'-")
        if len(word) < _MIN_WORD:
            continue
        if len(word) > _MAX_WORD:
            bag.add(f"{prefix}long:{word[0]}:{len(word) // 10}")
        else:
            bag.add(prefix + word)


def _domain_tail(host: str) -> str:
    """The last two labels (three under a two-letter second-level such as co.uk): a cheap
    stand-in for the registered domain that needs no public suffix list."""
    labels = [label for label in host.lower().strip(".").split(".") if label]
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and len(labels[-2]) <= 3 else 2
    return ".".join(labels[-keep:])


def _header_tokens(header_text: str, bag: _Bag) -> None:
    for line in header_text.splitlines():
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or name not in _HEADERS:
            continue
        prefix = name + ":"
        if name in _ADDRESS_HEADERS:
            for match in _ADDRESS.finditer(value):
                bag.add(prefix + match.group().lower())
                bag.add(prefix + "@" + _domain_tail(match.group(1)))
            value = _ADDRESS.sub(" ", value)
        if name == "content-type":
            bag.add(prefix + value.split(";", 1)[0].strip().lower())
            continue
        if name in ("x-mailer", "user-agent"):
            bag.add(prefix + " ".join(value.lower().split())[:40])
            continue
        _words(value, prefix, bag)


def _shape_tokens(part: BodyPart, bag: _Bag, depth: int = 0) -> None:
    if depth > 20 or bag.full:
        return
    bag.add(f"part:{part.type}/{part.subtype}".lower())
    names = [v for k, v in part.params if k.partition("*")[0] == "name"]
    if part.disposition is not None:
        names += [v for k, v in part.disposition[1] if k.partition("*")[0] == "filename"]
    for name in names[:2]:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and 0 < len(extension) <= 8:
            bag.add("attach:." + extension.lower())
    for child in part.children[:50]:
        _shape_tokens(child, bag, depth + 1)
    if part.message is not None:
        _shape_tokens(part.message[1], bag, depth + 1)


def _body_tokens(text: str, bag: _Bag) -> None:
    text = text[:MAX_TEXT].lower()
    if "http" in text or "www." in text:  # most text has no link: skip the scan
        for match in _URL.finditer(text):
            if bag.full:
                return
            host = match.group(1).strip(".")
            bag.add("url:" + _domain_tail(host))
            bag.add("url:" + host[:60])
        text = _URL.sub(" ", text)
    _words(text, "", bag)


def message_tokens(meta: MessageMetadata) -> frozenset[str]:
    """The distinct tokens of a parsed message (see the module docstring), at most MAX_TOKENS:
    header fields first (they are few and telling), then the MIME shape, then the text."""
    bag = _Bag()
    _header_tokens(meta.headers.header_text, bag)
    _shape_tokens(meta.body, bag)
    _body_tokens(meta.text, bag)
    return frozenset(bag.tokens)


def raw_message_tokens(raw: bytes) -> frozenset[str]:
    """`message_tokens` of unparsed bytes (a stored blob, for training). CPU-bound: callers on
    the event loop run it in a thread."""
    return message_tokens(parse_message(raw))
