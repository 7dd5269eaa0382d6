"""The extension commands' arguments: SORT, THREAD, CONTEXT=SEARCH/SORT and PARTIAL, QUOTA, ACL,
NOTIFY, COMPRESS, and the extension items of the base commands (PREVIEW (LAZY), EMAILID...).

Command lines in -> typed commands out, or BAD/NO (RFC 5256, 5267, 5957, 9394, 9208, 4314,
5465, 4978, 8970, 8474, 8514).
"""

from __future__ import annotations

import pytest
from test_parser_proto import command, error, run, split_every

from postoffice.imap.proto.commands import (
    CancelUpdate,
    CommandArgs,
    Compress,
    DeleteAcl,
    Enable,
    Fetch,
    GetAcl,
    GetQuota,
    GetQuotaRoot,
    ListRights,
    MyRights,
    Noop,
    Notify,
    NotifyEvent,
    NotifyGroup,
    Search,
    SetAcl,
    SetQuota,
    Sort,
    Thread,
)
from postoffice.imap.proto.events import ImapCommand, LiteralNeeded
from postoffice.imap.proto.fetch_items import FetchAttribute, FetchBody
from postoffice.imap.proto.grammar import COMMAND_NAMES
from postoffice.imap.proto.search_keys import (
    SearchAll,
    SearchAnd,
    SearchFlag,
    SearchHeader,
    SearchObjectId,
    SearchSaveDateSupported,
    SearchSequence,
)
from postoffice.imap.proto.sections import Section
from postoffice.imap.proto.sequence_set import parse_sequence_set as seq

NEW = NotifyEvent("MessageNew")
EXPUNGE = NotifyEvent("MessageExpunge")
FLAGS = NotifyEvent("FlagChange")

COMMANDS: list[tuple[bytes, str, CommandArgs]] = [
    # SORT (RFC 5256 §3), SORT=DISPLAY (RFC 5957), ESORT (RFC 5267 §3)
    (b"SORT (SUBJECT) UTF-8 ALL", "SORT", Sort((("SUBJECT", False),), "UTF-8", SearchAll())),
    (
        b"sort (reverse arrival Size) us-ascii UNSEEN",
        "SORT",
        Sort((("ARRIVAL", True), ("SIZE", False)), "US-ASCII", SearchFlag("\\Seen", False)),
    ),
    (
        b'UID SORT (REVERSE DATE CC FROM TO DISPLAYFROM reverse displayto) "utf-8" 1:5 FROM x',
        "UID SORT",
        Sort(
            (
                ("DATE", True),
                ("CC", False),
                ("FROM", False),
                ("TO", False),
                ("DISPLAYFROM", False),
                ("DISPLAYTO", True),
            ),
            "UTF-8",
            SearchAnd((SearchSequence(seq("1:5")), SearchHeader("FROM", "x"))),
            uid=True,
        ),
    ),
    (b"SORT (DATE) KOI8-R ALL", "SORT", Sort((("DATE", False),), "KOI8-R", SearchAll())),
    (
        b"SORT RETURN (MIN max) (ARRIVAL) US-ASCII 1:5",
        "SORT",
        Sort((("ARRIVAL", False),), "US-ASCII", SearchSequence(seq("1:5")), ("MIN", "MAX")),
    ),
    (
        b"SORT RETURN () (ARRIVAL) US-ASCII ALL",
        "SORT",
        Sort((("ARRIVAL", False),), "US-ASCII", SearchAll(), ("ALL",)),
    ),
    (
        b"UID SORT RETURN (PARTIAL -1:-100 UPDATE) (REVERSE ARRIVAL) UTF-8 ALL",
        "UID SORT",
        Sort((("ARRIVAL", True),), "UTF-8", SearchAll(), ("PARTIAL", "UPDATE"), True, (-1, -100)),
    ),
    # THREAD (RFC 5256 §5)
    (b"THREAD ORDEREDSUBJECT UTF-8 ALL", "THREAD", Thread("ORDEREDSUBJECT", "UTF-8", SearchAll())),
    (
        b"uid thread references us-ascii SEEN",
        "UID THREAD",
        Thread("REFERENCES", "US-ASCII", SearchFlag("\\Seen"), uid=True),
    ),
    (b"THREAD X-Refs UTF-8 ALL", "THREAD", Thread("X-REFS", "UTF-8", SearchAll())),
    # SEARCH RETURN of CONTEXT=SEARCH (RFC 5267 §4) and PARTIAL (RFC 9394 §3.1)
    (
        b"SEARCH RETURN (UPDATE COUNT) UNSEEN",
        "SEARCH",
        Search(None, SearchFlag("\\Seen", False), ("UPDATE", "COUNT")),
    ),
    (
        b"UID SEARCH RETURN (CONTEXT UPDATE MIN) ALL",
        "UID SEARCH",
        Search(None, SearchAll(), ("CONTEXT", "UPDATE", "MIN"), True),
    ),
    (
        b"SEARCH RETURN (PARTIAL 1:100) ALL",
        "SEARCH",
        Search(None, SearchAll(), ("PARTIAL",), partial=(1, 100)),
    ),
    (
        b"SEARCH RETURN (partial 4:2) ALL",  # 500:400 is 400:500 (RFC 9394 §3.1)
        "SEARCH",
        Search(None, SearchAll(), ("PARTIAL",), partial=(2, 4)),
    ),
    (
        b"UID SEARCH RETURN (COUNT PARTIAL -100:-1) CHARSET UTF-8 SEEN",
        "UID SEARCH",
        Search("UTF-8", SearchFlag("\\Seen"), ("COUNT", "PARTIAL"), True, (-1, -100)),
    ),
    (b'CANCELUPDATE "B01"', "CANCELUPDATE", CancelUpdate(("B01",))),
    (b'CANCELUPDATE "a" "b" "a"', "CANCELUPDATE", CancelUpdate(("a", "b"))),
    # QUOTA (RFC 9208 §4)
    (b'GETQUOTA ""', "GETQUOTA", GetQuota("")),
    (b"GETQUOTA user.fred", "GETQUOTA", GetQuota("user.fred")),
    (b"GETQUOTAROOT inbox", "GETQUOTAROOT", GetQuotaRoot("INBOX")),
    (b"GETQUOTAROOT Entw&APw-rfe", "GETQUOTAROOT", GetQuotaRoot("Entwürfe")),
    (
        b'SETQUOTA "" (STORAGE 512 message 1000 ANNOTATION-STORAGE 10)',
        "SETQUOTA",
        SetQuota("", (("STORAGE", 512), ("MESSAGE", 1000), ("ANNOTATION-STORAGE", 10))),
    ),
    (b"SETQUOTA x (MAILBOX 0)", "SETQUOTA", SetQuota("x", (("MAILBOX", 0),))),
    (b"SETQUOTA x ()", "SETQUOTA", SetQuota("x", ())),
    (
        b"SETQUOTA x (STORAGE 9223372036854775807)",
        "SETQUOTA",
        SetQuota("x", (("STORAGE", 9223372036854775807),)),
    ),
    # ACL (RFC 4314 §3)
    (b"SETACL INBOX fred lrswipkxtecda", "SETACL", SetAcl("INBOX", "fred", "lrswipkxtecda")),
    (b"SETACL x fred +lr", "SETACL", SetAcl("x", "fred", "lr", "add")),
    (b'SETACL x "Bob Smith" "-wd"', "SETACL", SetAcl("x", "Bob Smith", "wd", "remove")),
    (b'SETACL x anyone ""', "SETACL", SetAcl("x", "anyone", "")),
    (b"SETACL x -anyone r", "SETACL", SetAcl("x", "-anyone", "r")),  # negative right (§2)
    (b"SETACL x fred rrl", "SETACL", SetAcl("x", "fred", "rl")),
    (b"DELETEACL ~/Mail/saved smith", "DELETEACL", DeleteAcl("~/Mail/saved", "smith")),
    (b"GETACL inbox", "GETACL", GetAcl("INBOX")),
    (b"LISTRIGHTS ~/Mail/saved smith", "LISTRIGHTS", ListRights("~/Mail/saved", "smith")),
    (b"MYRIGHTS &ZeVnLIqe-", "MYRIGHTS", MyRights("日本語")),
    # NOTIFY (RFC 5465 §3.1)
    (b"NOTIFY NONE", "NOTIFY", Notify(())),
    (b"notify none", "NOTIFY", Notify(())),
    (
        b"NOTIFY SET STATUS (mailboxes imaptest2 (MessageNew MessageExpunge FlagChange))",
        "NOTIFY",
        Notify((NotifyGroup("MAILBOXES", (NEW, EXPUNGE, FLAGS), ("imaptest2",)),), True),
    ),
    (
        b"NOTIFY SET (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (From To)]) "
        b"MessageExpunge)) (subtree Lists (MessageNew MessageExpunge))",
        "NOTIFY",
        Notify(
            (
                NotifyGroup(
                    "SELECTED",
                    (
                        NotifyEvent(
                            "MessageNew",
                            (
                                FetchAttribute("UID"),
                                FetchBody(Section((), "HEADER.FIELDS", ("FROM", "TO")), peek=True),
                            ),
                        ),
                        EXPUNGE,
                    ),
                ),
                NotifyGroup("SUBTREE", (NEW, EXPUNGE), ("Lists",)),
            )
        ),
    ),
    (
        b"NOTIFY SET (Selected-Delayed (messagenew messageexpunge flagchange annotationchange)) "
        b"(inboxes NONE) (mailboxes (INBOX Drafts {4+}\r\na b)) (MessageNew MessageExpunge))",
        "NOTIFY",
        Notify(
            (
                NotifyGroup(
                    "SELECTED-DELAYED", (NEW, EXPUNGE, FLAGS, NotifyEvent("AnnotationChange"))
                ),
                NotifyGroup("INBOXES", ()),
                NotifyGroup("MAILBOXES", (NEW, EXPUNGE), ("INBOX", "Drafts", "a b)")),
            )
        ),
    ),
    (
        b"NOTIFY SET (personal (MailboxName SubscriptionChange MailboxMetadataChange "
        b"ServerMetadataChange)) (subscribed (XFutureEvent))",
        "NOTIFY",
        Notify(
            (
                NotifyGroup(
                    "PERSONAL",
                    (
                        NotifyEvent("MailboxName"),
                        NotifyEvent("SubscriptionChange"),
                        NotifyEvent("MailboxMetadataChange"),
                        NotifyEvent("ServerMetadataChange"),
                    ),
                ),
                NotifyGroup("SUBSCRIBED", (NotifyEvent("XFutureEvent"),)),  # NO [BADEVENT] later
            )
        ),
    ),
    # COMPRESS (RFC 4978 §3)
    (b"COMPRESS DEFLATE", "COMPRESS", Compress("DEFLATE")),
    (b"compress x-lzma", "COMPRESS", Compress("X-LZMA")),
    # ENABLE (RFC 5161) of the extensions
    (
        b"ENABLE CONDSTORE QRESYNC UTF8=ACCEPT",
        "ENABLE",
        Enable(("CONDSTORE", "QRESYNC", "UTF8=ACCEPT")),
    ),
    # FETCH PREVIEW (RFC 8970 §3)
    (
        b"FETCH 1 (UID PREVIEW (LAZY))",
        "FETCH",
        Fetch(seq("1"), (FetchAttribute("UID"), FetchAttribute("PREVIEW", ("LAZY",)))),
    ),
    (b"FETCH 1 preview (lazy)", "FETCH", Fetch(seq("1"), (FetchAttribute("PREVIEW", ("LAZY",)),))),
    (b"FETCH 1 (PREVIEW)", "FETCH", Fetch(seq("1"), (FetchAttribute("PREVIEW"),))),
    (
        b"FETCH 1 PREVIEW (CHANGEDSINCE 5)",  # a FETCH modifier, not a PREVIEW modifier
        "FETCH",
        Fetch(seq("1"), (FetchAttribute("PREVIEW"),), changed_since=5),
    ),
    (
        b"FETCH 1:* (MODSEQ SAVEDATE EMAILID THREADID)",
        "FETCH",
        Fetch(
            seq("1:*"),
            tuple(FetchAttribute(n) for n in ("MODSEQ", "SAVEDATE", "EMAILID", "THREADID")),
        ),
    ),
    # SEARCH keys of OBJECTID (RFC 8474 §5) and SAVEDATE (RFC 8514 §4.3)
    (
        b"SEARCH EMAILID M6d99ac3275bb4e",
        "SEARCH",
        Search(None, SearchObjectId("emailid", "M6d99ac3275bb4e")),
    ),
    (
        b"UID SEARCH threadid T64b478a7-5_b SAVEDATESUPPORTED",
        "UID SEARCH",
        Search(
            None,
            SearchAnd((SearchObjectId("threadid", "T64b478a7-5_b"), SearchSaveDateSupported())),
            uid=True,
        ),
    ),
]


@pytest.mark.parametrize(
    ("line", "name", "args"), COMMANDS, ids=[c[0][:50].decode("latin-1") for c in COMMANDS]
)
def test_extension_command_arguments(line: bytes, name: str, args: CommandArgs) -> None:
    cmd = command(b"T1 " + line + b"\r\n")
    assert (cmd.tag, cmd.name, cmd.args) == ("T1", name, args)


BAD: list[tuple[bytes, str]] = [
    # SORT
    (b"SORT", "Expected a space"),
    (b"SORT (DATE)", "Expected a space"),
    (b"SORT (DATE) UTF-8", "Expected a space"),
    (b"SORT (DATE) UTF-8 ", "Expected a search key"),
    (b"SORT DATE UTF-8 ALL", "Expected '('"),
    (b"SORT () UTF-8 ALL", "Expected a keyword"),
    (b"SORT (FOO) UTF-8 ALL", "Unknown sort key FOO"),
    (b"SORT (REVERSE) UTF-8 ALL", "Expected a space"),
    (b"SORT (REVERSE REVERSE DATE) UTF-8 ALL", "Unknown sort key REVERSE"),
    (b"SORT (DATE REVERSE) UTF-8 ALL", "Expected a space"),
    (b"SORT (DATE  SIZE) UTF-8 ALL", "Expected a keyword"),
    (b"SORT (DATE) (UTF-8) ALL", "Expected a string"),
    (b"SORT RETURN (FOO) (DATE) UTF-8 ALL", "Unsupported SORT RETURN option FOO"),
    (b"SORT RETURN (MIN) UTF-8 ALL", "Expected '('"),
    (b"SORT RETURN (PARTIAL 1) (ARRIVAL) US-ASCII ALL", "Expected a partial range like 1:100 or -1:-100"),
    (b"SORT RETURN (PARTIAL 1:*) (ARRIVAL) US-ASCII ALL", "Expected a partial range like 1:100 or -1:-100"),
    (b"SORT RETURN (PARTIAL *:1) (ARRIVAL) US-ASCII ALL", "Expected a partial range like 1:100 or -1:-100"),
    (b"UID SORT (DATE) UTF-8 FOO", "Unknown search key FOO"),
    # THREAD
    (b"THREAD", "Expected a space"),
    (b"THREAD REFERENCES", "Expected a space"),
    (b"THREAD REFERENCES UTF-8", "Expected a space"),
    (b"THREAD (REFERENCES) UTF-8 ALL", "Expected a keyword"),
    (b"UID THREAD REFERENCES UTF-8 ALL extra)", "Unknown search key EXTRA"),
    # SEARCH RETURN, PARTIAL
    (b"SEARCH RETURN (PARTIAL) ALL", "Expected a space"),
    (b"SEARCH RETURN (PARTIAL 1:-5) ALL", "A partial range is first:last or -first:-last"),
    (b"SEARCH RETURN (PARTIAL -1:5) ALL", "A partial range is first:last or -first:-last"),
    (b"SEARCH RETURN (PARTIAL 0:5) ALL", "Invalid partial range"),
    (b"SEARCH RETURN (PARTIAL -0:-5) ALL", "Invalid partial range"),
    (b"SEARCH RETURN (PARTIAL 1:4294967296) ALL", "Invalid partial range"),
    (b"SEARCH RETURN (PARTIAL 1:5 PARTIAL 2:3) ALL", "PARTIAL given twice"),
    (b"SEARCH RETURN (UPDATES) ALL", "Unsupported SEARCH RETURN option UPDATES"),
    (b"CANCELUPDATE", "Expected a space"),
    (b"CANCELUPDATE B01", "Expected a quoted string"),
    (b'CANCELUPDATE "B01" B02', "Expected a quoted string"),
    (b'CANCELUPDATE ("B01")', "Expected a quoted string"),
    # QUOTA
    (b"GETQUOTA", "Expected a space"),
    (b"GETQUOTA a b", "Unexpected extra arguments"),
    (b"GETQUOTAROOT", "Expected a space"),
    (b"SETQUOTA x", "Expected a space"),
    (b"SETQUOTA x STORAGE 5", "Expected '('"),
    (b"SETQUOTA x (STORAGE)", "Expected a space"),
    (b"SETQUOTA x (STORAGE -1)", "Expected a number"),
    (b"SETQUOTA x (STORAGE 9223372036854775808)", "Number out of range"),
    (b"SETQUOTA x (STORAGE 1 storage 2)", "STORAGE given twice"),
    (b"SETQUOTA x (STORAGE 1", "Expected a space"),
    # ACL
    (b"SETACL x fred", "Expected a space"),
    (b"SETACL x fred lrQ", "Unknown right 'Q'"),
    (b"SETACL x fred +L", "Unknown right 'L'"),
    (b"SETACL x fred 1", "Unknown right '1'"),
    (b"SETACL x fred +-r", "Unknown right '-'"),
    (b"SETACL x fred r w", "Unexpected extra arguments"),
    (b"DELETEACL x", "Expected a space"),
    (b"DELETEACL x fred r", "Unexpected extra arguments"),
    (b"GETACL", "Expected a space"),
    (b"GETACL x y", "Unexpected extra arguments"),
    (b"LISTRIGHTS x", "Expected a space"),
    (b"MYRIGHTS", "Expected a space"),
    (b"MYRIGHTS (x)", "Expected a string"),
    # NOTIFY: the grammar (RFC 5465 §8)
    (b"NOTIFY", "Expected a space"),
    (b"NOTIFY SET", "Expected a space"),
    (b"NOTIFY SET STATUS", "Expected a space"),
    (b"NOTIFY SET (STATUS) (selected NONE)", "Unknown NOTIFY mailbox filter STATUS"),
    (b"NOTIFY NONE STATUS", "Unexpected extra arguments"),
    (b"NOTIFY ALL", "Expected SET or NONE"),
    (b"NOTIFY SET STATUS STATUS (selected NONE)", "Expected '('"),
    (b"NOTIFY SET FOO (selected NONE)", "Expected STATUS or an event group"),
    (b"NOTIFY SET (selected)", "Expected a space"),
    (b"NOTIFY SET (selected ())", "Expected an event"),
    (b"NOTIFY SET (selected ALL)", "Expected a list of events or NONE"),
    (b"NOTIFY SET (elsewhere (MessageNew MessageExpunge))", "Unknown NOTIFY mailbox filter ELSEWHERE"),
    (b"NOTIFY SET (mailboxes (MessageNew))", "Expected a space"),
    (b"NOTIFY SET (mailboxes () (MessageNew MessageExpunge))", "Expected a string"),
    (b"NOTIFY SET (subtree (MessageNew MessageExpunge))", "Expected a space"),
    (b"NOTIFY SET (inboxes NONE)(personal NONE)", "Unexpected extra arguments"),
    (b"NOTIFY SET (selected (MessageNew (ALL) MessageExpunge))", "ALL is a macro and cannot be combined with other items"),
    (b"NOTIFY SET (selected (MessageNew () MessageExpunge))", "Expected a FETCH data item"),
    # NOTIFY: the checks of RFC 5465 §5, §6.1
    (b"NOTIFY SET (personal (MessageNew))", "MessageNew and MessageExpunge go together"),
    (b"NOTIFY SET (personal (MessageExpunge))", "MessageNew and MessageExpunge go together"),
    (b"NOTIFY SET (selected (FlagChange))", "FlagChange and AnnotationChange need MessageNew and MessageExpunge"),
    (b"NOTIFY SET (inboxes (AnnotationChange MailboxName))", "FlagChange and AnnotationChange need MessageNew and MessageExpunge"),
    (b"NOTIFY SET (selected NONE) (selected-delayed NONE)", "Only one SELECTED or SELECTED-DELAYED event group"),
    (b"NOTIFY SET (selected NONE) (selected NONE)", "Only one SELECTED or SELECTED-DELAYED event group"),
    (b"NOTIFY SET (selected (MailboxName))", "MailboxName is not a message event: not allowed with SELECTED(-DELAYED)"),
    (b"NOTIFY SET (selected-delayed (MessageNew MessageExpunge SubscriptionChange))", "SubscriptionChange is not a message event: not allowed with SELECTED(-DELAYED)"),
    (b"NOTIFY SET (personal (MessageNew (UID) MessageExpunge))", "Fetch attributes are only allowed with SELECTED(-DELAYED)"),
    (b"NOTIFY SET (personal (MailboxName mailboxname))", "MailboxName given twice"),
    # COMPRESS
    (b"COMPRESS", "Expected a space"),
    (b"COMPRESS DEFLATE x", "Unexpected extra arguments"),
    (b'COMPRESS "DEFLATE"', "Expected a keyword"),
    # extension items of the base commands
    (b"FETCH 1 (PREVIEW (FUZZY))", "Expected a FETCH data item"),
    (b"FETCH 1 (PREVIEW (LAZY FUZZY))", "Unknown PREVIEW modifier FUZZY"),
    (b"FETCH 1 PREVIEW (LAZY", "Expected ')'"),
    (b"SEARCH EMAILID", "Expected a space"),
    (b"SEARCH EMAILID a.b", "Invalid object id"),
    (b"SEARCH THREADID " + b"x" * 256, "Invalid object id"),
    (b"SEARCH SAVEDATESUPPORTED x", "Unknown search key X"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "text"), BAD, ids=[b[0][:50].decode("latin-1") for b in BAD])
def test_bad_extension_arguments(line: bytes, text: str) -> None:
    err = error(b"T1 " + line + b"\r\n")
    assert (err.tag, err.status, err.text) == ("T1", "BAD", text)


@pytest.mark.parametrize(
    "line",
    [
        b"SETACL &AOQ fred r",
        b"DELETEACL a&b fred",
        b"GETACL &AOQ",
        b"LISTRIGHTS &AOQ fred",
        b"MYRIGHTS &AOQ",
        b"GETQUOTAROOT &AOQ",
        b"NOTIFY SET (mailboxes &AOQ (MessageNew MessageExpunge))",
    ],
)
def test_invalid_modified_utf7_mailbox_is_no(line: bytes) -> None:
    err = error(b"T1 " + line + b"\r\n")
    assert (err.status, err.text) == ("NO", "Mailbox name is not valid modified UTF-7")


def test_acl_identifier_and_quota_root_are_not_mailbox_names() -> None:
    # Not modified UTF-7: taken as sent.
    assert command(b"T1 LISTRIGHTS x a&b\r\n").args == ListRights("x", "a&b")
    assert command(b"T1 GETQUOTA a&b\r\n").args == GetQuota("a&b")


def test_utf8_mailbox_names_after_utf8_accept() -> None:
    cmd = command(b'T1 MYRIGHTS "Entw\xc3\xbcrfe"\r\n', utf8_mailboxes=True)
    assert cmd.args == MyRights("Entwürfe")


def test_sort_and_thread_take_any_charset_search_does_not() -> None:
    assert command(b"T1 THREAD REFERENCES KOI8-R ALL\r\n").args == Thread(
        "REFERENCES", "KOI8-R", SearchAll()
    )
    err = error(b"T1 SEARCH CHARSET KOI8-R ALL\r\n")
    assert (err.status, err.code) == ("NO", "BADCHARSET (UTF-8 US-ASCII)")


def test_extension_commands_are_known_before_their_literals() -> None:
    names = {"SORT", "UID SORT", "THREAD", "UID THREAD", "CANCELUPDATE", "GETQUOTA"}
    names |= {"GETQUOTAROOT", "SETQUOTA", "SETACL", "DELETEACL", "GETACL", "LISTRIGHTS"}
    names |= {"MYRIGHTS", "NOTIFY", "COMPRESS"}
    assert names <= COMMAND_NAMES
    assert {"GETMETADATA", "SETMETADATA", "GENURLAUTH", "UID CANCELUPDATE"}.isdisjoint(
        COMMAND_NAMES
    )


SETACL_WITH_LITERALS = b"a SETACL {9}\r\nMy Folder {4}\r\nfred +lr\r\nb NOOP\r\n"


def test_setacl_with_a_literal_mailbox_split_across_reads() -> None:
    expected = [
        LiteralNeeded("a", 9, False, "SETACL"),
        LiteralNeeded("a", 4, False, "SETACL"),
        ImapCommand("a", "SETACL", SetAcl("My Folder", "fred", "lr", "add")),
        ImapCommand("b", "NOOP", Noop()),
    ]
    assert run(SETACL_WITH_LITERALS) == expected
    for size in (1, 2, 3, 7):
        assert run(split_every(SETACL_WITH_LITERALS, size)) == expected, size
    for cut in range(1, len(SETACL_WITH_LITERALS)):
        chunks = [SETACL_WITH_LITERALS[:cut], SETACL_WITH_LITERALS[cut:]]
        assert run(chunks) == expected, cut


@pytest.mark.parametrize(
    ("data", "args"),
    [
        (
            b'a SETACL {5+}\r\nDr"ft {8+}\r\nBob Smit -d\r\n',
            SetAcl('Dr"ft', "Bob Smit", "d", "remove"),
        ),
        (b"a DELETEACL INBOX {3+}\r\nb)b\r\n", DeleteAcl("INBOX", "b)b")),
        (b"a SETQUOTA {0+}\r\n (STORAGE 5)\r\n", SetQuota("", (("STORAGE", 5),))),
        (
            b"a SORT (DATE) UTF-8 SUBJECT {6}\r\n\xc3\xa4rger\r\n",
            Sort((("DATE", False),), "UTF-8", SearchHeader("SUBJECT", "ärger")),
        ),
        (
            b"a NOTIFY SET (subtree {3+}\r\nx y (MessageNew MessageExpunge))\r\n",
            Notify((NotifyGroup("SUBTREE", (NEW, EXPUNGE), ("x y",)),)),
        ),
    ],
)
def test_literal_arguments_split_anywhere(data: bytes, args: CommandArgs) -> None:
    whole = run(data)
    assert [e.args for e in whole if isinstance(e, ImapCommand)] == [args]
    for cut in range(1, len(data)):
        assert run([data[:cut], data[cut:]]) == whole, cut


def test_notify_fetch_attributes_may_come_in_a_literal() -> None:
    cmd = command(
        b"a NOTIFY SET (selected (MessageNew (BODY.PEEK[HEADER.FIELDS ({4+}\r\nFrom)]) "
        b"MessageExpunge))\r\n"
    )
    assert cmd.args == Notify(
        (
            NotifyGroup(
                "SELECTED",
                (
                    NotifyEvent(
                        "MessageNew",
                        (FetchBody(Section((), "HEADER.FIELDS", ("FROM",)), peek=True),),
                    ),
                    EXPUNGE,
                ),
            ),
        )
    )
