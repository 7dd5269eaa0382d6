"""The fingerprint that tells whether two copies of a message are the same mail.

Two servers, or a server and a POP3 client's mbox, never hold byte-identical copies: each adds
its own trace fields (Received, Return-Path, Delivered-To, X-UIDL, Status, X-Mozilla-Status,
Authentication-Results, DKIM/ARC seals added on receipt...), and mbox writers quote `From ` lines
in the body. The fingerprint therefore hashes only what the author's program wrote and no
server rewrites: the header fields in `ORIGINATOR_FIELDS` (Message-ID among them, when present),
in order, unfolded and with runs of white space collapsed; and the body with CRLF/LF differences,
mbox `>From ` quoting and trailing white space at its end removed. Messages without Message-ID
are fingerprinted the same way (their Date, From, Subject and body still tell them apart).

Fingerprints are compared as a multiset (`DuplicateFilter`): a source holding the same message
twice, against a destination holding it once, copies it once more, so true duplicates in the
source survive a migration and nothing is copied twice by a rerun.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable

__all__ = ["ORIGINATOR_FIELDS", "DuplicateFilter", "fingerprint"]

# Fields the author's program writes and servers, clients and gateways leave alone. A list to
# keep out (Received, X-*...) would never be complete: every program invents its own fields.
ORIGINATOR_FIELDS = frozenset({
    "message-id", "date", "from", "sender", "reply-to", "to", "cc", "bcc", "subject",
    "in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding",
    "content-disposition", "resent-message-id", "resent-date", "resent-from", "resent-to",
})

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_SPACE = re.compile(rb"[ \t\r\n]+")
_QUOTED_FROM = re.compile(rb"^>+(?=From )", re.MULTILINE)


def fingerprint(raw: bytes) -> str:
    """The message's fingerprint: 32 hex digits, equal for copies that differ only in what
    servers and clients add or re-encode on the way (see the module text)."""
    end = _HEADER_END.search(raw)
    if end is None:
        header, body = raw, b""
    else:
        header, body = raw[: end.start()], raw[end.end() :]
    digest = hashlib.blake2b(digest_size=16)
    for line in _FOLD.sub(b"", header).split(b"\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        name = name.strip().lower()
        if name.decode("latin-1") in ORIGINATOR_FIELDS:
            digest.update(name + b":" + _SPACE.sub(b" ", value).strip() + b"\n")
    digest.update(b"\x00")
    body = body.replace(b"\r\n", b"\n")
    digest.update(_QUOTED_FROM.sub(b"", body).rstrip())
    return digest.hexdigest()


class DuplicateFilter:
    """What the destination already holds, as a multiset of fingerprints.

    `is_duplicate(fp)` answers True while the destination still has an unmatched copy with
    that fingerprint, and uses it up; so the n-th copy in the source is skipped only when the
    destination has at least n.
    """

    def __init__(self, present: Iterable[str] = ()) -> None:
        self._present: Counter[str] = Counter(present)

    def is_duplicate(self, fp: str) -> bool:
        if self._present[fp] > 0:
            self._present[fp] -= 1
            return True
        return False

    def add(self, fp: str) -> None:
        """Count a copy that reached the destination by another way (e.g. a later reread)."""
        self._present[fp] += 1

    def __bool__(self) -> bool:
        return any(n > 0 for n in self._present.values())
