"""Tests of the imaptest script parser and runner (no real IMAP server needed).

The runner is validated against Dovecot by hand (see README.md); here: every corpus script
parses, the matcher's rules, and strictness against a tiny fake IMAP server that answers a
fixed transcript -- a correct script passes, each deliberately wrong expectation fails.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from imaptest_runner import (
    MatchContext,
    Outcome,
    match_reply,
    run_script_async,
)
from imaptest_script import (
    NIL,
    Atom,
    Existence,
    ImapList,
    Literal,
    QuotedString,
    ScriptError,
    StartState,
    format_args,
    load_script,
    parse_args,
    parse_expectation,
    parse_script,
    read_mbox,
    required_capabilities,
    script_paths,
)
from peers import unavailable


@pytest.fixture
def tests_dir(corpora: Path) -> Path:
    path = corpora / "imaptest-dovecot" / "tests"
    if not path.is_dir():
        unavailable(f"the imaptest-dovecot corpus is not in {corpora}")
    return path


# --------------------------------------------------------------------------------------------
# The corpus


def test_every_corpus_script_parses(tests_dir: Path) -> None:
    paths = script_paths(tests_dir, include_broken=True)
    assert len(paths) >= 70
    base = ext = 0
    for path in paths:
        script = load_script(path)
        assert script.groups, path
        assert all(c.expected is not None for g in script.groups for c in g.commands), path
        if path.parent == tests_dir:
            if script.has_capabilities_header:
                ext += len(script.groups)
            else:
                base += len(script.groups)
    # imaptest counts command groups; these are the corpus' totals (auto LOGOUT included).
    # Dovecot 2.3's reference run reported 437 base / 329 extension groups: the same figures
    # less `list` (23 groups) and the scripts Dovecot skips (sort-partial needs CONTEXT=SORT,
    # 10 groups; the three urlauth scripts need URLAUTH, 35 groups).
    assert (base, ext) == (460, 374)


def test_headers_agree_with_index(tests_dir: Path) -> None:
    index = tests_dir.parent / "INDEX.tsv"
    rows = [line.split("\t") for line in index.read_text().splitlines()[1:] if line.strip()]
    assert rows
    for name, caps, state, connections in rows:
        script = load_script(tests_dir / name)
        assert " ".join(script.capabilities) == ("" if caps == "-" else caps), name
        assert script.state is StartState[state.upper()], name
        assert script.connections == int(connections), name


def test_required_capabilities(tests_dir: Path) -> None:
    assert required_capabilities(tests_dir / "esearch-condstore") == {"ESEARCH", "CONDSTORE"}
    assert required_capabilities(tests_dir / "notify") == {"NOTIFY", "QRESYNC"}
    assert required_capabilities(tests_dir / "fetch") == set()


def test_corpus_details(tests_dir: Path) -> None:
    append = load_script(tests_dir / "append")
    assert append.connections == 3 and append.state is StartState.CREATED
    assert append.groups[0].connection == 1 and append.groups[1].connection == 2
    assert append.groups[-1].auto_logout
    assert append.groups[-2].commands[0].expected == (Atom("no"), Atom("[trycreate]"))

    binary = load_script(tests_dir / "append-binary")
    lit = binary.groups[0].commands[0].parts[1]
    assert isinstance(lit, Literal) and lit.binary
    assert lit.data.endswith("\r\n\r\n\x00-\xe4\n\r\n\n")  # ~{{{: LF joins, file CRs kept

    pipeline = load_script(tests_dir / "pipeline-connections")
    group = pipeline.groups[1]
    assert group.connection == 2 and [c.script_tag for c in group.commands] == [1, 2]
    assert len(group.untagged) == 2

    listext = load_script(tests_dir / "listext")
    existences = {u.existence for g in listext.groups for u in g.untagged}
    assert existences == {Existence.MUST, Existence.MUST_NOT, Existence.MAY}

    logout = load_script(tests_dir / "logout")
    assert not logout.groups[-1].auto_logout  # the script logs out itself
    assert any(g.expects_bye for g in logout.groups)

    messages = read_mbox(tests_dir / "default.mbox")
    assert len(messages) == 6
    assert messages[0].data.startswith(b"From: user1@domain.org\r\n")
    assert messages[0].data.endswith(b"\r\nbody1\r\n\r\n")  # the separator line is kept
    assert re.fullmatch(r"22-Feb-2008 17:06:23 [+-]\d{4}", messages[0].internaldate)


# --------------------------------------------------------------------------------------------
# Parser


def test_three_command_forms_and_connections() -> None:
    script = parse_script(
        b"connections: 2\n"
        b"state: auth\n"
        b"\n"
        b"1 ok select $mailbox\n"
        b"* 0 exists\n"
        b"2 examine $mailbox\n"
        b"* ok [uidvalidity $uidv]\n"
        b"2 ok [read-only]\n"
        b"1 tag1 status a (messages)\n"
        b"1 tag2 status b (messages)\n"
        b"* status a (messages 0)\n"
        b"1 tag2 ok\n"
        b'1 tag1 ""\n'
    )
    g1, g2, g3, logout = script.groups
    assert (g1.connection, g1.commands[0].text, g1.commands[0].expected) == (
        1, "select $mailbox", (Atom("ok"),))
    assert g2.connection == 2 and g2.commands[0].expected == (Atom("ok"), Atom("[read-only]"))
    assert [c.script_tag for c in g3.commands] == [1, 2]
    assert g3.commands[0].expected == (Atom(""),) and g3.commands[1].expected == (Atom("ok"),)
    assert logout.auto_logout and logout.commands[0].text == "logout"


def test_multiline_literals() -> None:
    script = parse_script(
        b"\n"
        b"ok append $mailbox {{{\n"
        b"Subject: a\n"
        b"\n"
        b"body\n"
        b"}}} ~{{{\n"
        b"x\r\n"
        b"y\n"
        b"}}}\n"
    )
    parts = script.groups[0].commands[0].parts
    assert parts[0] == "append $mailbox "
    assert parts[1] == Literal("Subject: a\r\n\r\nbody")
    assert parts[2] == " "
    assert parts[3] == Literal("x\r\ny", binary=True)


def test_ifenv_blocks() -> None:
    text = (
        b"\n"
        b"!ifenv HAVE_FOO\n"
        b"ok foo\n"
        b"!else\n"
        b"ok bar\n"
        b"!endif\n"
        b"!ifnenv HAVE_FOO\n"
        b"ok baz\n"
        b"!endif\n"
    )
    with_foo = parse_script(text, env={"HAVE_FOO": "1"})
    without = parse_script(text, env={})
    assert [g.commands[0].text for g in with_foo.groups] == ["foo", "logout"]
    assert [g.commands[0].text for g in without.groups] == ["bar", "baz", "logout"]


def test_default_directives() -> None:
    def dirs(text: str) -> str:
        return format_args(parse_expectation(text))

    assert dirs("1 fetch (uid 1 flags (\\seen))") == (
        "1 fetch ($!unordered=2 uid 1 flags ($!unordered $!noextra $!ignore=\\recent "
        "$!ignore=$HasAttachment $!ignore=$HasNoAttachment \\seen))"
    )
    assert dirs("list (\\noselect) / x") == "list ($!unordered \\noselect) / x"
    assert dirs("lsub () / x") == "lsub ($!unordered) / x"
    assert dirs("status x (messages 1)") == "status x ($!unordered=2 messages 1)"
    # explicit directives replace the defaults of that list only
    assert dirs("1 fetch (flags ($!extra))") == "1 fetch ($!unordered=2 flags ($!extra))"
    assert dirs("search 1 2") == "search 1 2"
    assert dirs("thread (1 2)(3)") == "thread (1 2) (3)"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (b"bogus: 1\n\nok noop\n", "Unknown setting"),
        (b"connections: 0\n\nok noop\n", "Too many connections"),
        (b"connections: 2\n\nok noop\n", "Missing client index"),
        (b"\nnoop\n", "Missing reply"),
        (b"\ntag1 noop\ntag1 noop\n", "Tag reused"),
        (b"\nok noop\n? bye\n", "? BYE"),
        (b"\nok fetch 1 uid\n* 1 fetch ($!sorted uid 1)\n", "Unknown directive"),
        (b"\nok fetch 1 uid\n* 1 fetch (uid)\n", "chain size=2"),
        (b"\nok append {{{\nx\n", "not ended"),
        (b"\nok noop\n!ifenv X\nok noop\n", "not closed"),
        (b"\nok noop", "LF"),
        (b"# only a comment\n", "No commands"),
    ],
)
def test_parse_errors(text: bytes, error: str) -> None:
    with pytest.raises(ScriptError, match=re.escape(error)):
        parse_script(text, env={})


def test_tokenizer() -> None:
    assert parse_args('a "b c" NIL nil (d (e)) {3}\r\nx y ~{1}\r\nz') == (
        Atom("a"), QuotedString("b c"), NIL, NIL,
        ImapList((Atom("d"), ImapList((Atom("e"),)))),
        Literal("x y"), Literal("z", binary=True),
    )
    # atoms end at a space (and at ")" inside a list), as in Dovecot's parser
    assert parse_args("BODY[HEADER.FIELDS (FROM)] ~foo") == (
        Atom("BODY[HEADER.FIELDS"), ImapList((Atom("FROM"),)), Atom("]"), Atom("~foo"))
    assert parse_args('"a\\"b\\\\"') == (QuotedString('a"b\\'),)


# --------------------------------------------------------------------------------------------
# Matcher


def match(expected: str, got: str, variables: dict[str, str] | None = None,
          ctx: MatchContext | None = None) -> dict[str, str] | None:
    return match_reply(parse_expectation(expected), parse_args(got), variables or {}, ctx)


def test_variables_capture_and_reuse() -> None:
    found = match("1 fetch (uid $uid1)", "1 FETCH (UID 42)")
    assert found == {"uid1": "42"}
    assert match("2 fetch (uid $uid1)", "2 FETCH (UID 42)", found) is not None
    assert match("2 fetch (uid $uid1)", "2 FETCH (UID 43)", found) is None
    # captures extend to the next literal text; values compare case-sensitively
    assert match("search $a:$b", "SEARCH 3:9") == {"a": "3", "b": "9"}
    assert match("list () $sep $mailbox${sep}x", "LIST () / INBOX/x", {"mailbox": "INBOX"}) == {
        "mailbox": "INBOX", "sep": "/"}
    assert match("list () / $box", "LIST () / inbox", {"box": "INBOX"}) is None
    assert match("list () / ${case:Inbox}", "LIST () / inbox") is None
    assert match("list () / ${case:Inbox}", "LIST () / Inbox") is not None
    assert match("search $$x", "SEARCH $x") is not None


def test_wildcards_nil_and_strings() -> None:
    assert match("1 fetch (flags $ uid $)", "1 FETCH (UID 5 FLAGS (\\Seen))") is not None
    assert match("1 fetch (envelope $)", "1 FETCH (ENVELOPE NIL)") is None  # $ is not NIL
    assert match('x ""', 'X ""') is not None
    assert match('x ""', "X NIL") is None  # "" and NIL differ
    assert match("x NIL", 'X "NIL"') is None
    assert match('x "abc"', "X {3}\r\nABC") is not None  # strings compare case-insensitively
    # NUL ends a string comparison, as in imaptest's C code
    assert match_reply((Atom("x"), Literal("\x00-a")), (Atom("X"), Literal("\x00-b")), {}) is not None


def test_ordering_rules() -> None:
    assert match("search 1 2", "SEARCH 2 1") is None  # plain lists/replies are ordered
    assert match("search 1", "SEARCH 1 2") is None  # and allow nothing extra
    assert match("1 fetch (uid 5 flags ())", "1 FETCH (FLAGS () UID 5)") is not None
    assert match("1 fetch (uid 5)", "1 FETCH (FLAGS () UID 5)") is not None  # extra pairs ok
    assert match("1 fetch (flags (\\seen))", "1 FETCH (FLAGS (\\Recent \\Seen))") is not None
    assert match("1 fetch (flags (\\seen))", "1 FETCH (FLAGS (\\Seen \\Draft))") is None
    assert match("1 fetch (flags ($!extra \\seen))", "1 FETCH (FLAGS (\\Seen \\Draft))") is None
    assert match("1 fetch (flags ($!unordered \\seen))", "1 FETCH (FLAGS (\\Draft \\Seen))") is not None
    assert match("list ($!unordered $!ban=\\noselect \\a) / x", "LIST (\\A \\Noselect) / x") is None
    assert match("list ($!unordered $!noextra $!ignore=\\b \\a) / x", "LIST (\\B \\A) / x") is not None
    assert match("x ($!unordered a a)", "X (a)") is None  # one element matches one expectation
    assert match("status b (messages 1 recent 0)", "STATUS b (RECENT 0 MESSAGES 1)") is not None


def test_prefix_matching_of_status_replies() -> None:
    assert match("ok [uidvalidity $v]", "OK [UIDVALIDITY 7] UIDs valid") == {"v": "7"}
    assert match("no [trycreate]", "NO [TRYCREATE] Mailbox doesn't exist") is not None
    assert match("no [trycreate]", "NO Mailbox doesn't exist") is None
    assert match("search 1", "SEARCH 1 2") is None  # data replies are not prefixes


def test_relative_sequences_and_modseqs() -> None:
    ctx = MatchContext()
    ctx.seqmap = [1, 2, 3, 4]
    assert match("$1 expunge", "1 EXPUNGE", ctx=ctx) is not None
    ctx.expunge(1)
    assert match("$3 expunge", "2 EXPUNGE", ctx=ctx) is not None
    assert match("$1 fetch (uid 1)", "1 FETCH (UID 1)", ctx=ctx) is None  # <expunged>

    b = match("x $modseq2", "X 10")
    assert b is not None
    assert match("x $modseq5", "X 13", b) is not None
    assert match("x $modseq5", "X 12", b) is None  # must be at least 10 + (5 - 2)
    assert match("x $modseq1", "X 20", b) is None  # out of order


# --------------------------------------------------------------------------------------------
# Strictness against a fake server


@dataclass
class FakeImap:
    """Answers each command verb with fixed lines; sync literals get a "+" first."""

    replies: dict[str, list[str]]
    greeting: str = "* OK [CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS] fake ready"
    received: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(self.greeting.encode() + b"\r\n")
        while line := await reader.readline():
            while m := re.search(rb"\{(\d+)\}\r\n$", line):  # synchronising literal
                writer.write(b"+ go ahead\r\n")
                line += await reader.readexactly(int(m.group(1))) + await reader.readline()
            text = line.decode("latin-1").rstrip("\r\n")
            self.received.append(text)
            tag, _, rest = text.partition(" ")
            verb = rest.split(" ", 1)[0].upper()
            for reply in self.replies.get(verb, ["{tag} OK done"]):
                writer.write(reply.format(tag=tag).encode() + b"\r\n")
            await writer.drain()
            if verb == "LOGOUT":
                break
        writer.close()


TRANSCRIPT = {
    "LOGIN": ["{tag} OK [CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS] logged in"],
    "SELECT": ["* 2 EXISTS", "* OK [UIDVALIDITY 42] UIDs valid", "{tag} OK [READ-WRITE] done"],
    "FETCH": ["* 1 FETCH (UID 7 FLAGS (\\Seen))", "* 2 FETCH (FLAGS () UID 9)", "{tag} OK done"],
    "SEARCH": ["* SEARCH 2", "{tag} OK done"],
    "APPEND": ["{tag} OK [APPENDUID 42 12] appended"],
    "NOOP": ["* 3 EXISTS", "{tag} OK done"],
    "LOGOUT": ["* BYE logging out", "{tag} OK done"],
}

GOOD = """state: auth

ok select $mailbox
* 2 exists
* ok [uidvalidity $uidv]

ok fetch 1:2 (uid flags)
* 1 fetch (uid $uid1 flags (\\seen))
* 2 fetch (uid $uid2 flags ())

ok search uid $uid2
* search 2
! search 1

append $mailbox {{{
hello
}}}
ok [appenduid $uidv 12]

ok noop
"""


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeImap, int]]:
    server_state = FakeImap(TRANSCRIPT)
    server = await asyncio.start_server(server_state.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield server_state, port


async def run_text(tmp_path: Path, port: int, text: str, **kw: object):
    path = tmp_path / "script"
    path.write_text(text)
    return await run_script_async(path, "127.0.0.1", port, "user", "pass", timeout=5, **kw)  # type: ignore[arg-type]


async def test_correct_script_passes(tmp_path: Path, fake: tuple[FakeImap, int]) -> None:
    server, port = fake
    result = await run_text(tmp_path, port, GOOD)
    assert result.outcome is Outcome.PASSED, result.summary()
    assert result.groups_run == 6 and result.groups_failed == 0
    append = next(r for r in server.received if " append " in r)
    assert append.endswith("append imaptest {5}\r\nhello")  # waited for "+", sent the literal
    assert any(r.endswith('LIST "" "imaptest*"') for r in server.received)  # setup ran


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("* 2 fetch (uid $uid2 flags ())", "* 2 fetch (uid $uid2 flags (\\seen))", "missing"),
        ("* 2 fetch (uid $uid2 flags ())", "* 2 fetch (uid $uid1 flags ())", "missing"),
        ("* 2 exists", "* 3 exists", "missing"),
        ("* search 2\n", "* search 2 3\n", "missing"),
        ("! search 1", "! search 2", "'!' line matched"),
        ("ok [appenduid $uidv 12]", "ok [appenduid $uidv 13]", "tagged reply mismatch"),
        ("ok search uid", "no search uid", "tagged reply mismatch"),
        ("state: auth\n", "state: auth\nignore_extra_untagged: no\n", "unexpected untagged"),
    ],
)
async def test_wrong_expectation_fails(
    tmp_path: Path, fake: tuple[FakeImap, int], old: str, new: str, reason: str
) -> None:
    _, port = fake
    assert old in GOOD
    result = await run_text(tmp_path, port, GOOD.replace(old, new, 1))
    assert result.outcome is Outcome.FAILED
    assert result.groups_failed >= 1  # a capture that failed can make later groups fail too
    failure = result.first_failure
    assert failure is not None and reason in failure.reason, result.summary()
    assert failure.got  # what the server sent is reported


async def test_missing_capability_skips(tmp_path: Path, fake: tuple[FakeImap, int]) -> None:
    _, port = fake
    result = await run_text(tmp_path, port, "capabilities: UIDPLUS CONDSTORE\n" + GOOD)
    assert result.outcome is Outcome.SKIPPED
    assert result.missing_capabilities == ("CONDSTORE",)
    assert result.groups_run == 0
