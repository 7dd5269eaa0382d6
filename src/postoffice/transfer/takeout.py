"""Google Takeout mbox files: Gmail's labels (``X-Gmail-Labels``) as mailboxes, flags and keywords.

Takeout exports a Gmail account as one mbox ("All mail Including Spam and Trash.mbox") where
every message appears once and carries its labels in ``X-Gmail-Labels: Inbox,Opened,Work``
(comma-separated; a label holding a comma is quoted). `postoffice import mbox` reads them:

- the mailbox: ``Trash`` if labelled Trash, else ``Junk`` for Spam, ``INBOX`` for Inbox,
  ``Drafts`` for Draft(s), ``Sent`` for Sent, else ``Archive`` (Gmail's archived mail);
- flags: ``\\Seen`` unless Unread, ``\\Flagged`` for Starred, ``\\Draft`` for drafts, the
  keyword ``$Important`` for Important;
- the user's own labels (``Work``, ``Family/Kids``): keywords by default (characters a keyword
  cannot hold become ``_``), or with ``folders`` one copy in a mailbox per label as well (the
  store keeps the message's content once).

Gmail's own labels Opened, Archived, Chat and the ``Category ...`` tabs say nothing more.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator

from postoffice.transfer.source import SourceMessage

__all__ = ["gmail_labels", "map_takeout_labels"]

_HEADER = re.compile(rb"^X-Gmail-Labels:[ \t]*((?:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*))", re.IGNORECASE | re.MULTILINE)
_KEYWORD_UNSAFE = re.compile(r'[\x00-\x20\x7f-\uffff(){%*"\\\]]')
_NOISE = {"opened", "archived", "chat", "unread", "starred", "important", "inbox", "sent", "spam",
          "trash", "draft", "drafts"}


def gmail_labels(raw: bytes) -> list[str] | None:
    """The labels of a Takeout message, None when it has no X-Gmail-Labels field."""
    end = raw.find(b"\r\n\r\n")
    m = _HEADER.search(raw[: end if end >= 0 else len(raw)])
    if m is None:
        return None
    text = re.sub(r"\r?\n[ \t]", " ", m[1].decode("utf-8", "replace"))
    return [label.strip() for label in next(csv.reader([text], skipinitialspace=True), []) if label.strip()]


def _mailbox(labels: set[str]) -> str:
    for label, mailbox in (("trash", "Trash"), ("spam", "Junk"), ("inbox", "INBOX"), ("draft", "Drafts"),
                           ("drafts", "Drafts"), ("sent", "Sent")):
        if label in labels:
            return mailbox
    return "Archive"


def map_takeout_labels(messages: Iterable[SourceMessage], mode: str = "keywords") -> Iterator[SourceMessage]:
    """Each message with X-Gmail-Labels in its mailbox with its flags (see the module
    docstring); messages without the field pass unchanged."""
    for message in messages:
        labels = gmail_labels(message.raw)
        if labels is None:
            yield message
            continue
        lower = {label.lower() for label in labels}
        flags = set(message.flags)
        if "unread" not in lower:
            flags.add("\\Seen")
        if "starred" in lower:
            flags.add("\\Flagged")
        if "important" in lower:
            flags.add("$Important")
        if lower & {"draft", "drafts"}:
            flags.add("\\Draft")
        own = [label for label in labels if label.lower() not in _NOISE and not label.startswith("Category ")]
        if mode == "keywords":
            flags.update(k for k in (_KEYWORD_UNSAFE.sub("_", label) for label in own) if k)
        folder = _mailbox(lower)
        yield SourceMessage(message.raw, frozenset(flags), message.internal_date, folder, message.source_id)
        if mode == "folders":
            for label in own:
                if label != folder:
                    yield SourceMessage(message.raw, frozenset(flags), message.internal_date, label,
                                        f"{message.source_id}#{label}")
