"""Encoding IMAP server responses (RFC 9051 §7 and §9; RFC 3501 §7; RFC 3516 literal8).

Values to bytes: :func:`astring`, :func:`string`, :func:`nstring`, :func:`quoted`,
:func:`literal`, :func:`mailbox`, :func:`flags_list`, :func:`paren_list`, :func:`internaldate`
(defined in :mod:`postoffice.imap.proto.values` and exported here), :func:`compact_set`; whole
responses: :func:`tagged`, :func:`untagged`, :func:`untagged_status`,
:func:`continuation`, and the common untagged data (:func:`search_response`,
:func:`esearch_response`, :func:`list_response`, :func:`status_response`...); response codes as
``str`` for the ``code`` argument (:data:`TRYCREATE`, :func:`uidvalidity_code`,
:func:`copyuid_code`..., defined in :mod:`postoffice.imap.proto.response_codes` and exported
here); and :class:`FetchResponse` for ``* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {n}...)``.

The untagged data of the extensions: ENABLED (RFC 5161), SORT and THREAD (RFC 5256), ESEARCH
with ESORT, CONTEXT=SEARCH/SORT and PARTIAL results (RFC 4731, RFC 5267, RFC 9394), VANISHED
(RFC 7162), QUOTA and QUOTAROOT (RFC 9208), ACL, LISTRIGHTS and MYRIGHTS (RFC 4314), STATUS with
HIGHESTMODSEQ and MAILBOXID (RFC 7162, RFC 8474).

Implementation notes:

- Choosing a representation (atom, quoted string, literal, literal8): see
  :mod:`postoffice.imap.proto.values`.
- Text that the server chooses (response text, codes) may not contain CR or LF: they are
  replaced by spaces, so no caller can inject a response line.
- Speed: encoders are called once per message in a big FETCH. Flag lists are cached per
  distinct flag set (a mailbox has few), integers are formatted with ``%d`` on bytes, and
  :class:`FetchResponse` joins its parts once. ``FETCH 1:* (UID FLAGS)`` on 100,000 messages
  encodes in about 0.1 s.
- Sets of numbers are written compactly (``1:3,5``), ascending, except the results of SORT in
  ESEARCH (``in_order=True``), whose order is their meaning: only ascending runs are merged
  there (``5:7,3,2``), since ``3:2`` would say nothing about order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Literal

# Response codes live in response_codes; they are re-exported here, so every response and code
# is one import away for the command handlers.
from postoffice.imap.proto import response_codes, values
from postoffice.imap.proto.response_codes import *  # noqa: F403
from postoffice.imap.proto.response_codes import check_objectid
from postoffice.imap.proto.sequence_set import compact_set, compress, ordered_set
from postoffice.imap.proto.values import *  # noqa: F403
from postoffice.imap.proto.values import (
    astring,
    flags_list,
    internaldate,
    mailbox,
    nstring,
    number_list,
    quoted,
)

__all__ = [
    *response_codes.__all__,
    *values.__all__,
    "FetchResponse",
    "acl_response",
    "bye",
    "capability_response",
    "compact_set",
    "continuation",
    "enabled_response",
    "esearch_response",
    "list_response",
    "listrights_response",
    "myrights_response",
    "quota_response",
    "quotaroot_response",
    "search_response",
    "sort_response",
    "status_response",
    "tagged",
    "thread_response",
    "untagged",
    "untagged_status",
    "vanished_response",
]

CRLF = b"\r\n"

Status = Literal["OK", "NO", "BAD", "PREAUTH", "BYE"]

# Response text never carries control characters, even when it quotes what a client sent.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


# --- whole responses --------------------------------------------------------------------------


def _text(text: str) -> bytes:
    return _CONTROL.sub(" ", text).encode("utf-8")


def _with_code(text: str, code: str | None) -> bytes:
    if code is None:
        return _text(text)
    return b"[" + _text(code) + b"] " + _text(text)


def tagged(tag: str, status: Status, text: str, code: str | None = None) -> bytes:
    """``A1 OK [READ-WRITE] SELECT completed\\r\\n``."""
    return tag.encode("ascii") + b" " + status.encode() + b" " + _with_code(text, code) + CRLF


def untagged(text: str | bytes) -> bytes:
    """``* `` + text + CRLF: text is the response data (``12 EXISTS``), already encoded."""
    data = _text(text) if isinstance(text, str) else text
    return b"* " + data + CRLF


def untagged_status(status: Status, text: str, code: str | None = None) -> bytes:
    """``* OK [UIDVALIDITY 3857529045] UIDs valid\\r\\n``."""
    return b"* " + status.encode() + b" " + _with_code(text, code) + CRLF


def bye(text: str, code: str | None = None) -> bytes:
    return untagged_status("BYE", text, code)


def continuation(text: str | bytes = "") -> bytes:
    """``+ Ready\\r\\n``; bytes are sent as they are (a base64 SASL challenge)."""
    data = _text(text) if isinstance(text, str) else text
    return b"+ " + data + CRLF


def capability_response(capabilities: Iterable[str]) -> bytes:
    return b"* CAPABILITY " + " ".join(capabilities).encode("ascii") + CRLF


def search_response(numbers: Iterable[int], modseq: int | None = None) -> bytes:
    """``* SEARCH 2 3 6`` (``(MODSEQ n)`` appended for CONDSTORE, RFC 7162 §3.1.5)."""
    data = number_list(numbers)
    line = b"* SEARCH " + data if data else b"* SEARCH"
    if modseq is not None:
        line += b" (MODSEQ %d)" % modseq
    return line + CRLF


def sort_response(numbers: Iterable[int], modseq: int | None = None) -> bytes:
    """``* SORT 2 3 1``, numbers in sort order (RFC 5256 §4); ``(MODSEQ n)`` appended for
    CONDSTORE (RFC 7162 §3.1.5)."""
    data = number_list(numbers)
    line = b"* SORT " + data if data else b"* SORT"
    if modseq is not None:
        line += b" (MODSEQ %d)" % modseq
    return line + CRLF


def thread_response(payload: bytes) -> bytes:
    """``* THREAD (2)(3 6 (4 23)(44 7 96))`` (RFC 5256 §4): ``payload`` is the thread lists,
    already encoded; empty when nothing matched (``* THREAD``)."""
    return (b"* THREAD " + payload if payload else b"* THREAD") + CRLF


def _numbers(numbers: Iterable[int], in_order: bool) -> bytes:
    text = ordered_set(numbers) if in_order else compress(sorted(numbers))
    return text.encode("ascii")


def _context_updates(
    name: bytes, updates: Sequence[tuple[int, Sequence[int]]], in_order: bool
) -> bytes:
    pairs = [b"%d %s" % (pos, _numbers(nums, in_order)) for pos, nums in updates if nums]
    return name + b" (" + b" ".join(pairs) + b")" if pairs else b""


def esearch_response(
    tag: str | None,
    *,
    uid: bool,
    minimum: int | None = None,
    maximum: int | None = None,
    count: int | None = None,
    all_numbers: Sequence[int] | None = None,
    modseq: int | None = None,
    partial: tuple[tuple[int, int], Sequence[int]] | None = None,
    addto: Sequence[tuple[int, Sequence[int]]] = (),
    removefrom: Sequence[tuple[int, Sequence[int]]] = (),
    in_order: bool = False,
) -> bytes:
    """``* ESEARCH (TAG "A1") UID MIN 2 MAX 9 COUNT 3 ALL 2,5:9`` (RFC 4731 §3.1).

    Also ESORT's results (RFC 5267 §3), ``PARTIAL (1:100 5,7,9)`` for ``RETURN (PARTIAL ...)``
    (RFC 9394 §3.1; ``partial`` is (the range as the client gave it, normalised, the numbers in
    it), ``PARTIAL (6:6 NIL)`` when none) and the updates of CONTEXT=SEARCH/SORT:
    ``ADDTO (0 5:6)`` and ``REMOVEFROM (0 3)`` (RFC 5267 §4.3; ``addto`` and ``removefrom`` are
    (position, numbers) pairs, 0 as the position for SEARCH), in one response, ADDTO first.

    Number lists are written ascending, or in the order given with ``in_order`` (SORT results).
    Empty ALL, ADDTO and REMOVEFROM results are left out, as RFC 4731 requires.
    """
    parts = [b"* ESEARCH"]
    if tag is not None:
        parts.append(b"(TAG " + quoted(tag) + b")")
    if uid:
        parts.append(b"UID")
    if minimum is not None:
        parts.append(b"MIN %d" % minimum)
    if maximum is not None:
        parts.append(b"MAX %d" % maximum)
    if count is not None:
        parts.append(b"COUNT %d" % count)
    if all_numbers:
        parts.append(b"ALL " + _numbers(all_numbers, in_order))
    if partial is not None:
        (first, last), found = partial
        result = _numbers(found, in_order) if found else b"NIL"
        parts.append(b"PARTIAL (%d:%d %s)" % (first, last, result))
    if added := _context_updates(b"ADDTO", addto, in_order):
        parts.append(added)
    if removed := _context_updates(b"REMOVEFROM", removefrom, in_order):
        parts.append(removed)
    if modseq is not None:
        parts.append(b"MODSEQ %d" % modseq)
    return b" ".join(parts) + CRLF


def vanished_response(uids: Iterable[int], earlier: bool = False) -> bytes:
    """``* VANISHED (EARLIER) 1:3,5`` (RFC 7162 §3.2.10): UIDs in any order, written compactly;
    ``(EARLIER)`` in the answer to a UID FETCH (VANISHED) or a SELECT (QRESYNC).

    ValueError when there are none: VANISHED needs at least one UID.
    """
    text = compact_set(uids)
    if not text:
        raise ValueError("VANISHED needs at least one UID")
    return (b"* VANISHED (EARLIER) " if earlier else b"* VANISHED ") + text.encode("ascii") + CRLF


def list_response(
    attributes: Iterable[str],
    delimiter: str | None,
    name: str,
    *,
    utf8: bool = False,
    kind: Literal["LIST", "LSUB"] = "LIST",
    extra: bytes = b"",
) -> bytes:
    """``* LIST (\\HasNoChildren) "/" INBOX``; ``extra`` is appended (``("CHILDINFO" ...)``)."""
    delim = b"NIL" if delimiter is None else quoted(delimiter)
    line = b"* %s (%s) %s %s" % (
        kind.encode(),
        " ".join(attributes).encode("ascii"),
        delim,
        mailbox(name, utf8=utf8),
    )
    return line + (b" " + extra if extra else b"") + CRLF


def status_response(name: str, items: Mapping[str, int | str], *, utf8: bool = False) -> bytes:
    """``* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)``.

    Numbers of any size (HIGHESTMODSEQ is 63-bit); a ``str`` value is an object id, written in
    parentheses: ``MAILBOXID (F2212ea87-6097-4256-9d51-71338625)`` (RFC 8474 §4.2).
    """
    data = b" ".join(
        b"%s (%s)" % (k.encode("ascii"), check_objectid(v).encode("ascii"))
        if isinstance(v, str)
        else b"%s %d" % (k.encode("ascii"), v)
        for k, v in items.items()
    )
    return b"* STATUS " + mailbox(name, utf8=utf8) + b" (" + data + b")" + CRLF


def enabled_response(capabilities: Iterable[str]) -> bytes:
    """``* ENABLED CONDSTORE QRESYNC`` (RFC 5161 §3.2): what ENABLE turned on; ``* ENABLED``
    when nothing."""
    names = " ".join(capabilities).encode("ascii")
    return (b"* ENABLED " + names if names else b"* ENABLED") + CRLF


def quota_response(
    root: str, resources: Sequence[tuple[str, int, int]], *, utf8: bool = False
) -> bytes:
    """``* QUOTA "" (STORAGE 10 512)`` (RFC 9208 §5.1): (resource, usage, limit) triples."""
    data = b" ".join(b"%s %d %d" % (n.encode("ascii"), used, limit) for n, used, limit in resources)
    return b"* QUOTA " + astring(root, utf8=utf8) + b" (" + data + b")" + CRLF


def quotaroot_response(name: str, roots: Sequence[str], *, utf8: bool = False) -> bytes:
    """``* QUOTAROOT INBOX ""`` (RFC 9208 §5.2): the quota roots of mailbox ``name``, maybe
    none."""
    parts = [b"* QUOTAROOT", mailbox(name, utf8=utf8), *(astring(r, utf8=utf8) for r in roots)]
    return b" ".join(parts) + CRLF


def acl_response(name: str, entries: Sequence[tuple[str, str]], *, utf8: bool = False) -> bytes:
    """``* ACL INBOX fred lrswipkxtecda`` (RFC 4314 §3.6): (identifier, rights) pairs.

    Identifiers are astrings: atoms when they can be, as Cyrus and Dovecot send them (some
    clients, imapclient among them, do not unquote them); rights are atoms (``""`` when empty).
    """
    parts = [b"* ACL", mailbox(name, utf8=utf8)]
    for identifier, rights in entries:
        parts.append(astring(identifier, utf8=utf8))
        parts.append(astring(rights))
    return b" ".join(parts) + CRLF


def listrights_response(
    name: str, identifier: str, required: str, optional: Sequence[str], *, utf8: bool = False
) -> bytes:
    """``* LISTRIGHTS INBOX smith la r swicdkxte`` (RFC 4314 §3.7): the rights always granted
    to ``identifier`` (``""`` when none), then each group of rights that may be granted."""
    parts = [b"* LISTRIGHTS", mailbox(name, utf8=utf8), astring(identifier, utf8=utf8)]
    parts.append(astring(required))
    parts.extend(astring(rights) for rights in optional)
    return b" ".join(parts) + CRLF


def myrights_response(name: str, rights: str, *, utf8: bool = False) -> bytes:
    """``* MYRIGHTS INBOX rwiptsldaex`` (RFC 4314 §3.8)."""
    return b"* MYRIGHTS " + mailbox(name, utf8=utf8) + b" " + astring(rights) + CRLF


# --- FETCH ------------------------------------------------------------------------------------


class FetchResponse:
    """One ``* n FETCH (...)`` response, item by item::

        FetchResponse(12).uid(5).flags(["\\\\Seen"]).body("BODY[]", raw).to_bytes()

    Item names come from the fetch items (``item.response_name()``); values are encoded here.
    """

    __slots__ = ("_items", "_seq")

    def __init__(self, seq: int) -> None:
        self._seq = seq
        self._items: list[bytes] = []

    def add(self, name: str | bytes, value: bytes) -> FetchResponse:
        """An item whose value is already encoded (ENVELOPE, BODYSTRUCTURE lists)."""
        self._items.append((name.encode() if isinstance(name, str) else name) + b" " + value)
        return self

    def uid(self, uid: int) -> FetchResponse:
        self._items.append(b"UID %d" % uid)
        return self

    def flags(self, flags: Iterable[str]) -> FetchResponse:
        self._items.append(b"FLAGS " + flags_list(flags))
        return self

    def modseq(self, modseq: int) -> FetchResponse:
        self._items.append(b"MODSEQ (%d)" % modseq)
        return self

    def internaldate(self, ts: datetime | float) -> FetchResponse:
        self._items.append(b"INTERNALDATE " + internaldate(ts))
        return self

    def rfc822_size(self, size: int) -> FetchResponse:
        self._items.append(b"RFC822.SIZE %d" % size)
        return self

    def number(self, name: str, value: int) -> FetchResponse:
        """``BINARY.SIZE[1] 7`` and other numeric items."""
        self._items.append(b"%s %d" % (name.encode("ascii"), value))
        return self

    def body(self, name: str, data: bytes | None, *, binary: bool = False) -> FetchResponse:
        """``BODY[...]``, ``BINARY[...]``, ``RFC822...`` content as an nstring (literal8 for
        binary data with NUL, RFC 3516 §4.3)."""
        self._items.append(name.encode("ascii") + b" " + nstring(data, binary=binary))
        return self

    def to_bytes(self) -> bytes:
        return b"* %d FETCH (%s)\r\n" % (self._seq, b" ".join(self._items))
