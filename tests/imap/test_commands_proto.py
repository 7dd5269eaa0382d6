"""Every IMAP command's arguments: command lines in -> typed commands out, or BAD/NO."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from test_parser_proto import command, error

from postoffice.imap.proto.commands import (
    Append,
    AppendMessage,
    Authenticate,
    Capability,
    Check,
    Close,
    CommandArgs,
    Copy,
    Create,
    Delete,
    Enable,
    Expunge,
    Fetch,
    Id,
    Idle,
    List,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    Noop,
    QresyncParams,
    Rename,
    Search,
    Select,
    StartTls,
    Status,
    Store,
    Subscribe,
    UidExpunge,
    Unselect,
    Unsubscribe,
)
from postoffice.imap.proto.fetch_items import FetchAttribute, FetchBody
from postoffice.imap.proto.search_keys import (
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchNot,
    SearchSequence,
    SearchText,
)
from postoffice.imap.proto.sections import Section
from postoffice.imap.proto.sequence_set import SequenceSet, parse_sequence_set


def seq(text: str) -> SequenceSet:
    return parse_sequence_set(text)


PST = timezone(timedelta(hours=-8))
ALL_STATUS_ITEMS = (
    "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT", "HIGHESTMODSEQ",
    "APPENDLIMIT", "MAILBOXID",
)  # fmt: skip

COMMANDS: list[tuple[bytes, str, CommandArgs]] = [
    # any state
    (b"CAPABILITY", "CAPABILITY", Capability()),
    (b"noop", "NOOP", Noop()),
    (b"LOGOUT", "LOGOUT", Logout()),
    (b"ENABLE CONDSTORE utf8=accept", "ENABLE", Enable(("CONDSTORE", "UTF8=ACCEPT"))),
    (b"ENABLE QRESYNC QRESYNC", "ENABLE", Enable(("QRESYNC",))),
    (b"ID NIL", "ID", Id(None)),
    (b"ID ()", "ID", Id(())),
    (b'ID ("name" "sodr" "version" NIL)', "ID", Id((("name", "sodr"), ("version", None)))),
    (b'ID ("os" {5+}\r\nLinux)', "ID", Id((("os", "Linux"),))),
    # not authenticated
    (b"STARTTLS", "STARTTLS", StartTls()),
    (b"AUTHENTICATE plain", "AUTHENTICATE", Authenticate("PLAIN")),
    (b"AUTHENTICATE PLAIN AGJvYgBz", "AUTHENTICATE", Authenticate("PLAIN", b"AGJvYgBz")),
    (b"AUTHENTICATE PLAIN =", "AUTHENTICATE", Authenticate("PLAIN", b"=")),
    (b"AUTHENTICATE XOAUTH2 dXNlcj1h==", "AUTHENTICATE", Authenticate("XOAUTH2", b"dXNlcj1h==")),
    (b"LOGIN fred secret", "LOGIN", Login("fred", "secret")),
    (b'LOGIN "fred smith" "p\\"w\\\\d"', "LOGIN", Login("fred smith", 'p"w\\d')),
    (b"LOGIN {4+}\r\nfred {3+}\r\n\xc3\xa4x", "LOGIN", Login("fred", "äx")),
    (b"LOGIN fred] x]", "LOGIN", Login("fred]", "x]")),
    # A password that is not UTF-8 is a wrong password (counted as a failed login), not a BAD.
    (b'LOGIN fred "\xff"', "LOGIN", Login("fred", "\udcff")),
    # authenticated
    (b"SELECT INBOX", "SELECT", Select("INBOX")),
    (b"select inBox", "SELECT", Select("INBOX")),
    (b'SELECT "inbox"', "SELECT", Select("INBOX")),
    (b"SELECT Inbox/Sub", "SELECT", Select("Inbox/Sub")),  # only INBOX itself is special
    (b"SELECT ~peter/mail/&U,BTFw-/&ZeVnLIqe-", "SELECT", Select("~peter/mail/台北/日本語")),
    (b"SELECT x (CONDSTORE)", "SELECT", Select("x", condstore=True)),
    (b"EXAMINE x", "EXAMINE", Select("x", read_only=True)),
    (
        b"SELECT x (QRESYNC (67890007 90060115194045000))",
        "SELECT",
        Select("x", qresync=QresyncParams(67890007, 90060115194045000)),
    ),
    (
        b"SELECT x (QRESYNC (67890007 90060115194045000 41,43:211,214:541) CONDSTORE)",
        "SELECT",
        Select(
            "x",
            condstore=True,
            qresync=QresyncParams(67890007, 90060115194045000, seq("41,43:211,214:541")),
        ),
    ),
    (
        b"EXAMINE x (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000 1500,3000,4500)))",
        "EXAMINE",
        Select(
            "x",
            read_only=True,
            qresync=QresyncParams(
                67890007,
                90060115194045000,
                seq("1:29997"),
                (seq("5000,7500,9000"), seq("1500,3000,4500")),
            ),
        ),
    ),
    (
        b"SELECT x (QRESYNC (1 2 (5 7)))",
        "SELECT",
        Select("x", qresync=QresyncParams(1, 2, None, (seq("5"), seq("7")))),
    ),
    (b"CREATE owatagusiam/", "CREATE", Create("owatagusiam/")),
    (b"CREATE MySent (USE (\\sent))", "CREATE", Create("MySent", ("\\Sent",))),
    (b"CREATE x (USE (\\Drafts \\X-Odd))", "CREATE", Create("x", ("\\Drafts", "\\X-Odd"))),
    (b"DELETE blurdybloop", "DELETE", Delete("blurdybloop")),
    (b"RENAME blurdybloop sarasoop", "RENAME", Rename("blurdybloop", "sarasoop")),
    (b"RENAME inbox old-mail", "RENAME", Rename("INBOX", "old-mail")),
    (b"SUBSCRIBE #news.comp.mail.mime", "SUBSCRIBE", Subscribe("#news.comp.mail.mime")),
    (b"UNSUBSCRIBE {4+}\r\na b)", "UNSUBSCRIBE", Unsubscribe("a b)")),
    (b'LIST "" ""', "LIST", List("", ("",))),
    (b"LIST #news.comp.mail.misc *", "LIST", List("#news.comp.mail.misc", ("*",))),
    (b'LIST "~/Mail/" "%"', "LIST", List("~/Mail/", ("%",))),
    (b"LIST ~/Mail/ %/a*b", "LIST", List("~/Mail/", ("%/a*b",))),
    (b"LIST a% b", "LIST", List("a%", ("b",))),
    (b'LIST "" Entw&APw-rfe*', "LIST", List("", ("Entwürfe*",))),
    (b'LIST "" a&b*', "LIST", List("", ("a&b*",))),  # not modified UTF-7: kept as sent
    (b"LIST {0+}\r\n {1+}\r\n%", "LIST", List("", ("%",))),
    (
        b'LIST (SUBSCRIBED RECURSIVEMATCH) "" ("%" "x/*")',
        "LIST",
        List("", ("%", "x/*"), ("SUBSCRIBED", "RECURSIVEMATCH"), extended=True),
    ),
    (b'LIST () "" %', "LIST", List("", ("%",), extended=True)),
    (b'LIST (special-use) "" *', "LIST", List("", ("*",), ("SPECIAL-USE",), extended=True)),
    (b'LIST (remote) "" *', "LIST", List("", ("*",), ("REMOTE",), extended=True)),
    (
        b'LIST "" % RETURN (CHILDREN SUBSCRIBED SPECIAL-USE STATUS (MESSAGES UNSEEN))',
        "LIST",
        List(
            "", ("%",), (), ("CHILDREN", "SUBSCRIBED", "SPECIAL-USE"), ("MESSAGES", "UNSEEN"), True
        ),
    ),
    (b'LIST "" % RETURN ()', "LIST", List("", ("%",), extended=True)),
    (b'LSUB "#news." "comp.mail.*"', "LSUB", Lsub("#news.", "comp.mail.*")),
    (b"NAMESPACE", "NAMESPACE", Namespace()),
    (
        b"STATUS blurdybloop (UIDNEXT MESSAGES)",
        "STATUS",
        Status("blurdybloop", ("UIDNEXT", "MESSAGES")),
    ),
    (
        b"STATUS x (messages uidnext uidvalidity unseen deleted size recent highestmodseq appendlimit mailboxid)",
        "STATUS",
        Status("x", ALL_STATUS_ITEMS),
    ),
    (
        b"APPEND saved-messages (\\Seen) {5}\r\nhello",
        "APPEND",
        Append("saved-messages", (AppendMessage(("\\Seen",), None, b"hello"),)),
    ),
    (
        b'APPEND x () " 7-Feb-1994 21:52:25 -0800" {2+}\r\nhi',
        "APPEND",
        Append("x", (AppendMessage((), datetime(1994, 2, 7, 21, 52, 25, tzinfo=PST), b"hi"),)),
    ),
    (
        b'APPEND x "07-Feb-1994 21:52:25 +0000" ~{2}\r\n\x00\x01',
        "APPEND",
        Append(
            "x",
            (AppendMessage((), datetime(1994, 2, 7, 21, 52, 25, tzinfo=UTC), b"\x00\x01", True),),
        ),
    ),
    (
        b"APPEND x (\\Seen $Label1 \\seen) {1+}\r\na (\\Draft) {1+}\r\nb {1+}\r\nc",
        "APPEND",
        Append(
            "x",
            (
                AppendMessage(("\\Seen", "$Label1"), None, b"a"),
                AppendMessage(("\\Draft",), None, b"b"),
                AppendMessage((), None, b"c"),
            ),
        ),
    ),
    (b"APPEND x {0+}\r\n", "APPEND", Append("x", (AppendMessage((), None, b""),))),
    (  # RFC 6855 §4: a message with UTF-8 headers
        "APPEND x (\\Seen) UTF8 (~{13+}\r\nSubject: ñé)".encode(),
        "APPEND",
        Append("x", (AppendMessage(("\\Seen",), None, "Subject: ñé".encode(), True),)),
    ),
    (b"IDLE", "IDLE", Idle()),
    # selected
    (b"CHECK", "CHECK", Check()),
    (b"CLOSE", "CLOSE", Close()),
    (b"UNSELECT", "UNSELECT", Unselect()),
    (b"EXPUNGE", "EXPUNGE", Expunge()),
    (b"UID EXPUNGE 3000:3002", "UID EXPUNGE", UidExpunge(seq("3000:3002"))),
    (b"uid expunge $", "UID EXPUNGE", UidExpunge(seq("$"))),
    (
        b'SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"',
        "SEARCH",
        Search(
            None,
            SearchAnd(
                (
                    SearchFlag("\\Flagged"),
                    SearchDate("internal", "since", date(1994, 2, 1)),
                    SearchNot(SearchHeader("FROM", "Smith")),
                )
            ),
        ),
    ),
    (b"UID SEARCH ALL", "UID SEARCH", Search(None, SearchAll(), uid=True)),
    (b"SEARCH RETURN () ALL", "SEARCH", Search(None, SearchAll(), ("ALL",))),
    (
        b"SEARCH RETURN (MIN MAX count save) CHARSET US-ASCII 1:5",
        "SEARCH",
        Search("US-ASCII", SearchSequence(seq("1:5")), ("MIN", "MAX", "COUNT", "SAVE")),
    ),
    (
        b"FETCH 1:* (FLAGS UID)",
        "FETCH",
        Fetch(seq("1:*"), (FetchAttribute("FLAGS"), FetchAttribute("UID"))),
    ),
    (b"FETCH 2 flags", "FETCH", Fetch(seq("2"), (FetchAttribute("FLAGS"),))),
    (
        b"FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])",
        "FETCH",
        Fetch(
            seq("2:4"),
            (FetchAttribute("FLAGS"), FetchBody(Section((), "HEADER.FIELDS", ("DATE", "FROM")))),
        ),
    ),
    (
        b"UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)",
        "UID FETCH",
        Fetch(seq("300:500"), (FetchAttribute("FLAGS"),), True, 12345, True),
    ),
    (
        b"FETCH 1 (UID) (CHANGEDSINCE 0)",
        "FETCH",
        Fetch(seq("1"), (FetchAttribute("UID"),), False, 0),
    ),
    (
        b"STORE 2:4 +FLAGS (\\Deleted)",
        "STORE",
        Store(seq("2:4"), "add", False, ("\\Deleted",)),
    ),
    (b"STORE 1 FLAGS ()", "STORE", Store(seq("1"), "replace", False, ())),
    (
        b"STORE 1 -flags.silent \\Seen $Junk",
        "STORE",
        Store(seq("1"), "remove", True, ("\\Seen", "$Junk")),
    ),
    (b"STORE 1 +FLAGS NIL", "STORE", Store(seq("1"), "add", False, ("NIL",))),
    (
        b"UID STORE 7,5,9 (UNCHANGEDSINCE 320162338) FLAGS.SILENT (\\Deleted)",
        "UID STORE",
        Store(seq("7,5,9"), "replace", True, ("\\Deleted",), 320162338, True),
    ),
    (b"COPY 2:4 MEETING", "COPY", Copy(seq("2:4"), "MEETING")),
    (b"UID COPY $ inbox", "UID COPY", Copy(seq("$"), "INBOX", True)),
    (b"MOVE 1:* Trash", "MOVE", Move(seq("1:*"), "Trash")),
    (b"UID MOVE 42 {5+}\r\nTr sh", "UID MOVE", Move(seq("42"), "Tr sh", True)),
]


@pytest.mark.parametrize(
    ("line", "name", "args"), COMMANDS, ids=[c[0][:40].decode("latin-1") for c in COMMANDS]
)
def test_command_arguments(line: bytes, name: str, args: CommandArgs) -> None:
    cmd = command(b"T1 " + line + b"\r\n")
    assert (cmd.tag, cmd.name, cmd.args) == ("T1", name, args)


BAD: list[tuple[bytes, str]] = [
    (b"CAPABILITY now", "Unexpected extra arguments"),
    (b"ENABLE", "Expected a space"),
    (b"ID", "Expected a space"),
    (b'ID ("a")', "Expected a space"),
    (b'ID ("a" "b"', "Expected a space"),
    (b"ID (a b)", "Expected a string"),
    (b"AUTHENTICATE", "Expected a space"),
    (b"AUTHENTICATE PLAIN a=b", "Unexpected extra arguments"),
    (b"AUTHENTICATE PLAIN ?", "Expected a base64 initial response or ="),
    (b"LOGIN fred", "Expected a space"),
    (b"LOGIN fred secret extra", "Unexpected extra arguments"),
    (b'LOGIN fred "sec\\ret"', "Expected a quoted string"),
    (b'LOGIN fred "secret', "Expected a quoted string"),
    (b"LOGIN fred \xff", "Expected a string"),
    (b'LOGIN "\xff" secret', "Invalid UTF-8 in a string"),
    (b"LOGIN fred (x)", "Expected a string"),
    (b"SELECT", "Expected a space"),
    (b"SELECT x (FOO)", "Unknown SELECT parameter FOO"),
    (b"SELECT x (CONDSTORE CONDSTORE)", "CONDSTORE given twice"),
    (b"SELECT x (QRESYNC (0 1))", "Expected a non-zero number"),
    (b"SELECT x (QRESYNC (1))", "Expected a space"),
    (b"SELECT x ()", "Expected a keyword"),
    (b"CREATE x (FOO (\\Sent))", "Unknown CREATE parameter FOO"),
    (b"CREATE x (USE (Sent))", "Expected a special-use attribute"),
    (b"RENAME x", "Expected a space"),
    (b"DELETE x y", "Unexpected extra arguments"),
    (b'LIST ""', "Expected a space"),
    (b'LIST (imaptest) "" ""', "Unknown LIST selection option IMAPTEST"),
    (b'LIST (recursivematch) "" ""', "RECURSIVEMATCH needs another selection option"),
    (b'LIST (recursivematch remote) "" ""', "RECURSIVEMATCH needs another selection option"),
    (b'LIST "" "" return (imaptest)', "Unknown LIST return option IMAPTEST"),
    (b'LIST "" "" FOO (x)', "Expected RETURN"),
    (b'LIST "" ()', "Expected a mailbox pattern"),
    (b"LSUB x", "Expected a space"),
    (b"STATUS x ()", "Expected a keyword"),
    (b"STATUS x (MESSAGES FOO)", "Unknown STATUS item FOO"),
    (b"STATUS x MESSAGES", "Expected '('"),
    (b"APPEND x", "Expected a space"),
    (b"APPEND x (\\Seen)", "Expected a space"),
    (b'APPEND x "hello"', 'Expected a date-time like "17-Jul-1996 02:44:25 -0700"'),
    (b"APPEND x (\\Recent) {1+}\r\na", "Invalid system flag \\Recent"),
    (b"APPEND x (\\Foo) {1+}\r\na", "Invalid system flag \\Foo"),
    (b'APPEND x "30-Feb-1994 21:52:25 -0800" {1+}\r\na', "Invalid date-time"),
    (b'APPEND x "07-Feb-1994 21:52:25 -2500" {1+}\r\na', "Invalid date-time"),
    (b'APPEND x "07-Foo-1994 21:52:25 -0800" {1+}\r\na', "Invalid date-time"),
    (b"APPEND x CATENATE (TEXT {1+}\r\na)", "APPEND extension not supported"),
    (b"APPEND x UTF8 (~{1+}\r\na", "Expected ')'"),
    (b"APPEND x UTF8 ~{1+}\r\na", "Expected '('"),
    (b"APPEND x {1+}\r\na b", "Expected the message as a literal"),
    (b"APPEND x {1+}\r\na  {1+}\r\nb", "Expected the message as a literal"),
    (b"APPEND x {1+}\r\na{1+}\r\nb", "Expected a space"),
    (b"EXPUNGE 1", "Unexpected extra arguments"),
    (b"UID EXPUNGE", "Expected a space"),
    (b"UID EXPUNGE 0", "Invalid sequence set: not a sequence set: '0'"),
    (b"UID", "Expected a space"),
    (b"SEARCH", "Expected a space"),
    (b"SEARCH ", "Expected a search key"),
    (b"SEARCH RETURN (FOO) ALL", "Unsupported SEARCH RETURN option FOO"),
    (b"SEARCH RETURN (MIN)", "Expected a space"),
    (b"FETCH 1", "Expected a space"),
    (b"FETCH 1 ()", "Expected a FETCH data item"),
    (
        b"FETCH 1 (FLAGS) (CHANGEDSINCE 1 CHANGEDSINCE 2)",
        "Unknown or repeated FETCH modifier CHANGEDSINCE",
    ),
    (b"FETCH 1 (FLAGS) (VANISHED)", "VANISHED needs UID FETCH and CHANGEDSINCE"),
    (b"FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)", "VANISHED needs UID FETCH and CHANGEDSINCE"),
    (b"UID FETCH 1 (FLAGS) (VANISHED)", "VANISHED needs UID FETCH and CHANGEDSINCE"),
    (b"FETCH 1 (FLAGS) (PARTIAL 1:5)", "Unknown or repeated FETCH modifier PARTIAL"),
    (b"FETCH 0 FLAGS", "Invalid sequence set: not a sequence set: '0'"),
    (b"FETCH 1:4294967296 FLAGS", "Invalid sequence set: number out of range in '1:4294967296'"),
    (b"STORE 1 FLAGS", "Expected a space"),
    (b"STORE 1 FLAGS \\Recent", "Invalid system flag \\Recent"),
    (b"STORE 1 XFLAGS (\\Seen)", "Expected FLAGS, +FLAGS or -FLAGS"),
    (b"STORE 1 (FOO 1) FLAGS ()", "Unknown STORE modifier"),
    (b"STORE 1 +FLAGS (\\Seen", "Expected ')'"),
    (b"STORE 1 +FLAGS (a)b", "Unexpected extra arguments"),
    (b"COPY 1", "Expected a space"),
    (b"MOVE x y", "Expected a sequence set"),
]


@pytest.mark.parametrize(("line", "text"), BAD, ids=[b[0][:40].decode("latin-1") for b in BAD])
def test_bad_arguments(line: bytes, text: str) -> None:
    err = error(b"T1 " + line + b"\r\n")
    assert (err.tag, err.status, err.text) == ("T1", "BAD", text)


@pytest.mark.parametrize(
    "line",
    [
        b"SELECT &AOQ",
        b"SELECT &AEk-NBOX",
        b"CREATE a&b",
        b"RENAME x &Jjo!",
        b"COPY 1 &AGE-",
        b"STATUS &AOQ (MESSAGES)",
    ],
)
def test_invalid_modified_utf7_mailbox_is_no(line: bytes) -> None:
    err = error(b"T1 " + line + b"\r\n")
    assert (err.status, err.text) == ("NO", "Mailbox name is not valid modified UTF-7")


def test_unknown_charset_is_no_badcharset() -> None:
    err = error(b"T1 SEARCH CHARSET KOI8-R SUBJECT x\r\n")
    assert (err.status, err.code) == ("NO", "BADCHARSET (UTF-8 US-ASCII)")


def test_search_with_literal_strings() -> None:
    cmd = command(b'T1 SEARCH CHARSET UTF-8 TEXT {6}\r\nXX\xc3\xa4YY HEADER {7}\r\nX-Thing ""\r\n')
    assert cmd.args == Search(
        "UTF-8", SearchAnd((SearchText("XXäYY"), SearchHeader("X-THING", "")))
    )
