"""Encoding the extensions' responses: values in -> exact bytes out (RFC 5161, 5256, 5267, 9394,
7162, 9208, 4314, 8474, 5465, 4978), and the number sets they are written with."""

from __future__ import annotations

import pytest

from postoffice.imap.proto import response_codes
from postoffice.imap.proto import responses as r
from postoffice.imap.proto.sequence_set import (
    compact_set,
    compress,
    ordered_set,
    parse_sequence_set,
)

# --- number sets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numbers", "text"),
    [
        ([], ""),
        ([5], "5"),
        ([1, 2, 3, 5, 7, 8, 9], "1:3,5,7:9"),
        ([9, 8, 7, 5, 3, 2, 1], "1:3,5,7:9"),
        ([3, 1, 2, 2, 3], "1:3"),
        ({4294967295, 1}, "1,4294967295"),
    ],
)
def test_compact_set_takes_any_order(numbers: list[int], text: str) -> None:
    assert compact_set(numbers) == text
    assert r.compact_set(numbers) == text  # exported for the responses


@pytest.mark.parametrize(
    ("numbers", "text"),
    [
        ([], ""),
        ([1, 2, 3, 4, 5], "1:5"),
        ([5, 4, 3, 2, 1], "5,4,3,2,1"),  # a descending range would be a set, not an order
        ([5, 6, 7, 3, 2], "5:7,3,2"),
        ([2, 4, 5, 1, 6], "2,4:5,1,6"),
        ([3, 3], "3,3"),
    ],
)
def test_ordered_set_keeps_the_order(numbers: list[int], text: str) -> None:
    assert ordered_set(numbers) == text
    if text:  # and it is a valid sequence set naming the same numbers
        assert parse_sequence_set(text).members(range(1, 11), 10) == sorted(set(numbers))


def test_compress_is_unchanged() -> None:
    assert compress([1, 2, 3, 5]) == "1:3,5"


# --- untagged data ----------------------------------------------------------------------------


def test_sort_response() -> None:
    assert r.sort_response([2, 3, 1]) == b"* SORT 2 3 1\r\n"  # sort order kept
    assert r.sort_response([]) == b"* SORT\r\n"
    assert r.sort_response([5, 4], modseq=9223372036854775807) == (
        b"* SORT 5 4 (MODSEQ 9223372036854775807)\r\n"
    )


def test_thread_response() -> None:
    payload = b"(2)(3 6 (4 23)(44 7 96))"
    assert r.thread_response(payload) == b"* THREAD (2)(3 6 (4 23)(44 7 96))\r\n"
    assert r.thread_response(b"") == b"* THREAD\r\n"


def test_esearch_response_as_before() -> None:
    assert r.esearch_response("A282", uid=False, minimum=2, count=3) == (
        b'* ESEARCH (TAG "A282") MIN 2 COUNT 3\r\n'
    )
    assert r.esearch_response("a", uid=True, all_numbers=[1, 2, 3, 5], modseq=7) == (
        b'* ESEARCH (TAG "a") UID ALL 1:3,5 MODSEQ 7\r\n'
    )


def test_esearch_response_of_esort_keeps_the_sort_order() -> None:
    line = r.esearch_response("t1", uid=False, all_numbers=[5, 3, 4, 2, 1], in_order=True)
    assert line == b'* ESEARCH (TAG "t1") ALL 5,3:4,2,1\r\n'
    line = r.esearch_response("t1", uid=False, all_numbers=[5, 3, 4, 2, 1])
    assert line == b'* ESEARCH (TAG "t1") ALL 1:5\r\n'


@pytest.mark.parametrize(
    ("partial", "in_order", "encoded"),
    [
        (((1, 100), [5, 7, 9]), False, b"PARTIAL (1:100 5,7,9)"),
        (((2, 4), [2, 4, 5]), False, b"PARTIAL (2:4 2,4:5)"),
        (((6, 6), []), False, b"PARTIAL (6:6 NIL)"),  # RFC 9394 §3.1: NIL when empty
        (((-1, -100), [98, 99, 100]), False, b"PARTIAL (-1:-100 98:100)"),
        (((2, 4), [4, 3, 2]), True, b"PARTIAL (2:4 4,3,2)"),
    ],
)
def test_esearch_partial_results(
    partial: tuple[tuple[int, int], list[int]], in_order: bool, encoded: bytes
) -> None:
    line = r.esearch_response("x", uid=True, partial=partial, in_order=in_order)
    assert line == b'* ESEARCH (TAG "x") UID ' + encoded + b"\r\n"


def test_esearch_context_updates() -> None:
    # RFC 5267 §4.3: unsolicited updates of a search made with RETURN (UPDATE)
    assert r.esearch_response("B01", uid=True, addto=[(0, [32768, 32769])]) == (
        b'* ESEARCH (TAG "B01") UID ADDTO (0 32768:32769)\r\n'
    )
    assert r.esearch_response("B01", uid=False, removefrom=[(0, [1, 2, 4])]) == (
        b'* ESEARCH (TAG "B01") REMOVEFROM (0 1:2,4)\r\n'
    )
    line = r.esearch_response(
        "C01",
        uid=True,
        addto=[(1, [9, 7]), (5, [3])],
        removefrom=[(2, [8]), (4, [])],  # an empty pair is left out
        in_order=True,
    )
    assert line == b'* ESEARCH (TAG "C01") UID ADDTO (1 9,7 5 3) REMOVEFROM (2 8)\r\n'
    assert r.esearch_response("D", uid=False, addto=[(0, [])]) == b'* ESEARCH (TAG "D")\r\n'


def test_esearch_every_item_order() -> None:
    line = r.esearch_response(
        "A",
        uid=True,
        minimum=1,
        maximum=9,
        count=3,
        all_numbers=[1, 5, 9],
        partial=((1, 2), [1, 5]),
        addto=[(0, [9])],
        removefrom=[(0, [2])],
        modseq=42,
    )
    assert line == (
        b'* ESEARCH (TAG "A") UID MIN 1 MAX 9 COUNT 3 ALL 1,5,9 PARTIAL (1:2 1,5) '
        b"ADDTO (0 9) REMOVEFROM (0 2) MODSEQ 42\r\n"
    )


@pytest.mark.parametrize(
    ("uids", "earlier", "encoded"),
    [
        ([1, 2, 3, 5], True, b"* VANISHED (EARLIER) 1:3,5\r\n"),
        ([405, 407, 406, 410], False, b"* VANISHED 405:407,410\r\n"),
        ({4294967295}, False, b"* VANISHED 4294967295\r\n"),
    ],
)
def test_vanished_response(uids: list[int], earlier: bool, encoded: bytes) -> None:
    assert r.vanished_response(uids, earlier) == encoded


def test_vanished_response_needs_a_uid() -> None:
    with pytest.raises(ValueError, match="at least one UID"):
        r.vanished_response([], earlier=True)


def test_enabled_response() -> None:
    assert r.enabled_response(["CONDSTORE", "QRESYNC"]) == b"* ENABLED CONDSTORE QRESYNC\r\n"
    assert r.enabled_response([]) == b"* ENABLED\r\n"


def test_status_response_with_highestmodseq_and_mailboxid() -> None:
    items: dict[str, int | str] = {
        "MESSAGES": 231,
        "HIGHESTMODSEQ": 9223372036854775807,
        "MAILBOXID": "F2212ea87-6097-4256-9d51-71338625",
        "SIZE": 2**40,
    }
    assert r.status_response("blurdybloop", items) == (
        b"* STATUS blurdybloop (MESSAGES 231 HIGHESTMODSEQ 9223372036854775807 "
        b"MAILBOXID (F2212ea87-6097-4256-9d51-71338625) SIZE 1099511627776)\r\n"
    )
    assert r.status_response("Entwürfe", {"MESSAGES": 1}) == (
        b"* STATUS Entw&APw-rfe (MESSAGES 1)\r\n"
    )


@pytest.mark.parametrize("objectid", ["", "a b", "x)", "a\r\n", "é", "x" * 256])
def test_status_response_refuses_what_is_not_an_objectid(objectid: str) -> None:
    with pytest.raises(ValueError, match="not an objectid"):
        r.status_response("x", {"MAILBOXID": objectid})


def test_quota_responses() -> None:
    assert r.quota_response("", [("STORAGE", 10, 512)]) == b'* QUOTA "" (STORAGE 10 512)\r\n'
    assert r.quota_response("user.fred", [("STORAGE", 10, 512), ("MESSAGE", 3, 100)]) == (
        b"* QUOTA user.fred (STORAGE 10 512 MESSAGE 3 100)\r\n"
    )
    assert r.quota_response("x", []) == b"* QUOTA x ()\r\n"
    assert r.quotaroot_response("INBOX", [""]) == b'* QUOTAROOT INBOX ""\r\n'
    assert r.quotaroot_response("comp.mail.mime", []) == b"* QUOTAROOT comp.mail.mime\r\n"
    assert r.quotaroot_response("Entwürfe", ["a b", "c"]) == (
        b'* QUOTAROOT Entw&APw-rfe "a b" c\r\n'
    )
    assert r.quotaroot_response("Entwürfe", [""], utf8=True) == (
        b'* QUOTAROOT "Entw\xc3\xbcrfe" ""\r\n'
    )


def test_acl_responses() -> None:
    assert r.acl_response("INBOX", [("fred", "lrswipkxtecda")]) == (
        b'* ACL INBOX fred lrswipkxtecda\r\n'
    )
    assert r.acl_response("a b", [("Fred", "rwipslxetad"), ("-anyone", "")]) == (
        b'* ACL "a b" Fred rwipslxetad -anyone ""\r\n'
    )
    assert r.acl_response("x", []) == b"* ACL x\r\n"
    assert r.listrights_response("~/Mail/saved", "smith", "la", ["r", "swicdkxte"]) == (
        b'* LISTRIGHTS ~/Mail/saved smith la r swicdkxte\r\n'
    )
    assert r.listrights_response("x", "anyone", "", ["l", "r"]) == (
        b'* LISTRIGHTS x anyone "" l r\r\n'
    )
    assert r.myrights_response("INBOX", "rwiptsldaex") == b"* MYRIGHTS INBOX rwiptsldaex\r\n"
    assert r.myrights_response("x", "") == b'* MYRIGHTS x ""\r\n'


def test_identifiers_that_cannot_be_quoted_go_as_literals() -> None:
    assert r.acl_response("x", [("a\r\nb", "r")]) == b"* ACL x {4}\r\na\r\nb r\r\n"
    assert r.acl_response("x", [("jürgen", "r")], utf8=True) == '* ACL x "jürgen" r\r\n'.encode()


# --- response codes ---------------------------------------------------------------------------


def test_response_code_constants() -> None:
    assert (r.NOMODSEQ, r.OVERQUOTA, r.CLOSED) == ("NOMODSEQ", "OVERQUOTA", "CLOSED")
    assert (r.NOTIFICATIONOVERFLOW, r.COMPRESSIONACTIVE) == (
        "NOTIFICATIONOVERFLOW",
        "COMPRESSIONACTIVE",
    )
    assert r.USEATTR == "USEATTR"
    assert r.tagged("a", "NO", "Not now", r.COMPRESSIONACTIVE) == (
        b"a NO [COMPRESSIONACTIVE] Not now\r\n"
    )
    assert r.untagged_status("OK", "Previous mailbox closed", r.CLOSED) == (
        b"* OK [CLOSED] Previous mailbox closed\r\n"
    )


def test_response_code_helpers() -> None:
    assert r.highestmodseq_code(9223372036854775807) == "HIGHESTMODSEQ 9223372036854775807"
    assert r.modified_code([9, 7, 8, 1]) == "MODIFIED 1,7:9"
    assert r.mailboxid_code("F2212ea87-6097") == "MAILBOXID (F2212ea87-6097)"
    assert r.badevent_code(["MessageNew", "MessageExpunge"]) == (
        "BADEVENT (MessageNew MessageExpunge)"
    )
    assert r.noupdate_code("B01") == 'NOUPDATE "B01"'
    assert r.untagged_status("NO", "Context gone", r.noupdate_code("B01")) == (
        b'* NO [NOUPDATE "B01"] Context gone\r\n'
    )
    with pytest.raises(ValueError):
        r.mailboxid_code("F1) x")
    with pytest.raises(ValueError):
        r.noupdate_code('a"b')


def test_responses_export_every_response_code() -> None:
    assert set(response_codes.__all__) <= set(r.__all__)
    for name in r.__all__:
        assert hasattr(r, name), name
