"""Sieve extensions, table-driven: variables (RFC 5229), vacation (RFC 5230, 6131), date
(RFC 5260), body (RFC 5173), include (RFC 6609), duplicate (RFC 7352), editheader (RFC 5293),
mailbox (RFC 5490), environment (RFC 5183), spamtest/virustest (RFC 5235)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from postoffice.filtering.sieve import (
    AddHeader,
    DeleteHeader,
    Discard,
    FileInto,
    Keep,
    SieveEnvironment,
    SieveMessage,
    SieveResult,
    Vacation,
    compile_script,
    run_script,
)

MESSAGE = (
    b"Received: from mx.example.net by mail.example.com; Tue, 1 Dec 2026 10:00:00 +0000\r\n"
    b"Date: Mon, 30 Nov 2026 23:30:00 -0500\r\n"
    b"From: Alice Example <alice@example.net>\r\n"
    b"To: bob@example.com\r\n"
    b"Subject: Quarterly report\r\n"
    b"Message-ID: <q4@example.net>\r\n"
    b"X-Spam: yes\r\n"
    b"X-Spam: maybe\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/alternative; boundary=b1\r\n"
    b"\r\n"
    b"Text before the parts.\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"The numbers are in: r=C3=A9sum=C3=A9 attached.\r\n"
    b"--b1\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>The <b>numbers</b> are in.</p>\r\n"
    b"--b1\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"U0VDUkVUIFBBWUxPQUQ=\r\n"
    b"--b1--\r\n"
    b"Text after the parts.\r\n"
)
NOW = datetime(2026, 12, 24, 18, 45, 30, tzinfo=timezone(timedelta(hours=1)))
ENV = SieveEnvironment(
    items={"domain": "example.com", "host": "mail.example.com", "remote-ip": "192.0.2.7"},
    now=NOW, spam_percent=72.0, virus_level=None,
    mailbox_exists=lambda name: name in ("INBOX", "Lists"),
)


def run(script: str, raw: bytes = MESSAGE, env: SieveEnvironment = ENV,
        include: dict[tuple[bool, str], str] | None = None) -> SieveResult:
    loader = (lambda name, is_global: include.get((is_global, name))) if include is not None else None
    compiled = compile_script(script, include_loader=loader)
    return run_script(compiled, SieveMessage(raw, "alice@example.net", "bob@example.com"), env)


def ok(script: str, **kw: object) -> list[object]:
    result = run(script, **kw)  # type: ignore[arg-type]
    assert result.errors == [], result.errors
    return list(result.actions)


V = 'require ["variables", "fileinto", "relational", "comparator-i;ascii-numeric"];\n'

VARIABLES = [
    (V + 'set "box" "Work";\nfileinto "${box}";', [FileInto("Work")]),
    (V + 'set "a" "x";\nset "A" "${a}y";\nfileinto "${a}";', [FileInto("xy")]),  # case-insensitive
    (V + 'fileinto "${unset}none";', [FileInto("none")]),
    (V + 'fileinto "${bad";', [FileInto("${bad")]),
    (V + 'if header :matches "from" "* <*@*>" { fileinto "${1}/${3}/${2}"; }',
     [FileInto("Alice Example/example.net/alice")]),
    (V + 'if header :matches "subject" "*r*" { fileinto "[${1}][${2}][${0}]"; }',
     [FileInto("[Qua][terly report][Quarterly report]")]),
    (V + 'if header :matches "subject" "Q??rt*" { fileinto "${1}${2}-${3}"; }', [FileInto("ua-erly report")]),
    (V + 'if header :matches "subject" "nomatch*" { fileinto "x"; }\nfileinto "x${1}";', [FileInto("x")]),
    (V + 'set :lower :upperfirst "n" "hELLO";\nfileinto "${n}";', [FileInto("Hello")]),
    (V + 'set :upper "n" "MiXed";\nfileinto "${n}";', [FileInto("MIXED")]),
    (V + 'set :upper "n" "été";\nfileinto "${n}";', [FileInto("éTé")]),  # ASCII only, as Pigeonhole
    (V + 'set "n" text:\none\n..two\n.\n;\nif string :is "${n}" "one\n.two\n" { discard; }', [Discard(9)]),
    (V + 'set :lowerfirst "n" "ABC";\nfileinto "${n}";', [FileInto("aBC")]),
    (V + 'set :length "n" "héllo";\nfileinto "${n}";', [FileInto("5")]),
    (V + 'set :quotewildcard "n" "a*b?c\\\\";\nfileinto "${n}";', [FileInto("a\\*b\\?c\\\\")]),
    (V + 'set "n" "3";\nif string :value "gt" :comparator "i;ascii-numeric" "${n}" "2" { discard; }', [Discard(3)]),
    (V + 'if string :count "eq" :comparator "i;ascii-numeric" ["a", "", "b"] "2" { discard; }', [Discard(2)]),
    (V + 'set "p" "Quart*";\nif header :matches "subject" "${p}" { discard; }', [Discard(3)]),
    ('require ["variables", "encoded-character", "fileinto"];\nfileinto "${hex:41 42}${unicode:e9}";',
     [FileInto("ABé")]),
    ('require ["fileinto"];\nfileinto "${hex:41}";', [FileInto("${hex:41}")]),  # not required
    ('require ["encoded-character", "fileinto"];\nfileinto "${hex:}${hex:4142}${unicode: 41  42 }";',
     [FileInto("${hex:}${hex:4142}AB")]),  # empty and 4-digit groups are not encoded characters
]


@pytest.mark.parametrize(("script", "expected"), VARIABLES)
def test_variables(script: str, expected: list[object]) -> None:
    assert ok(script) == expected


def test_a_long_variable_is_truncated_not_an_error() -> None:
    result = run(V + 'set "a" "' + "x" * 5000 + '";\nset :length "n" "${a}";\nfileinto "${n}";')
    assert result.actions == [FileInto("4096")]


VAC = 'require ["vacation", "vacation-seconds", "variables"];\n'


def test_vacation_defaults_come_from_the_message() -> None:
    [vacation, keep] = ok(VAC + 'vacation "I am away.";')
    assert keep == Keep()
    assert isinstance(vacation, Vacation)
    assert vacation.recipient == "alice@example.net"
    assert vacation.subject == "Auto: Quarterly report"
    assert vacation.reason == "I am away." and not vacation.mime
    assert vacation.from_ == "bob@example.com"  # the recipient, as To names it
    assert vacation.seconds == 7 * 86400
    assert vacation.in_reply_to == "<q4@example.net>" and vacation.references == "<q4@example.net>"
    # the default handle depends on the arguments only (RFC 5230 §4.2)
    again = ok(VAC + 'vacation "I am away.";', raw=MESSAGE.replace(b"Quarterly", b"Other"))[0]
    other = ok(VAC + 'vacation "Back soon.";')[0]
    assert isinstance(again, Vacation) and isinstance(other, Vacation)
    assert again.handle == vacation.handle != other.handle


def test_vacation_arguments() -> None:
    [vacation, _] = ok(VAC + 'vacation :days 3 :subject "Away: ${x}" :from "bob@example.com"\n'
                       ' :addresses ["b@example.com", "bobby@example.com"] :handle "h1" :mime text:\n'
                       'Content-Type: text/plain\n\nAway\n.\n;')
    assert vacation == Vacation("alice@example.net", "bob@example.com", "Away: ",
                                "Content-Type: text/plain\r\n\r\nAway\r\n", "h1", 3 * 86400,
                                ("b@example.com", "bobby@example.com"), True, "<q4@example.net>",
                                "<q4@example.net>")


def test_vacation_replies_from_the_address_the_message_was_written_to() -> None:
    """RFC 5230 §5.4 with errata 2035: To names one of :addresses, not the recipient."""
    team = MESSAGE.replace(b"To: bob@example.com", b"To: Team <TEAM@example.org>")
    script = VAC + 'vacation :addresses ["team@example.org", "b@example.com"] "x";'
    [vacation, _] = ok(script, raw=team)
    assert isinstance(vacation, Vacation) and vacation.from_ == "team@example.org"
    [vacation, _] = ok(script)  # written to the recipient itself
    assert isinstance(vacation, Vacation) and vacation.from_ == "bob@example.com"
    bcc = MESSAGE.replace(b"To: bob@example.com", b"To: someone@example.net")
    [vacation, _] = ok(script, raw=bcc)  # neither: the executor uses the account's address
    assert isinstance(vacation, Vacation) and vacation.from_ is None
    [vacation, _] = ok(VAC + 'vacation :addresses ["not an address", "team@example.org"] "x";', raw=team)
    assert isinstance(vacation, Vacation) and vacation.addresses == ("team@example.org",)  # as Pigeonhole
    [vacation, _] = ok(VAC + 'vacation :from "me@example.com" :addresses "team@example.org" "x";', raw=team)
    assert isinstance(vacation, Vacation) and vacation.from_ == "me@example.com"


def test_vacation_replies_from_the_subaddress_the_message_was_written_to() -> None:
    """As sieve-test does (tests/filtering/test_sieve_pigeonhole.py, subaddress.eml): mail to
    bob+work@ is answered from bob+work@, the address the sender knows, not from bob@."""
    raw = MESSAGE.replace(b"To: bob@example.com", b"To: Bob <bob+work@example.com>")
    compiled = compile_script(VAC + 'vacation "x";')
    result = run_script(compiled, SieveMessage(raw, "alice@example.net", "bob+work@example.com"), ENV)
    [vacation, _] = result.actions
    assert isinstance(vacation, Vacation) and vacation.from_ == "bob+work@example.com"


@pytest.mark.parametrize(("period", "seconds"), [
    (":seconds 10", 3600), (":seconds 7200", 7200), (":days 365", 90 * 86400), (":days 0", 3600),
])
def test_vacation_period_is_bounded(period: str, seconds: int) -> None:
    vacation = ok(VAC + f'vacation {period} "x";')[0]
    assert isinstance(vacation, Vacation) and vacation.seconds == seconds


D = 'require ["date", "relational", "variables", "fileinto"];\n'

DATES = [
    (D + 'if date :originalzone "date" "date" "2026-11-30" { discard; }', [Discard(2)]),
    (D + 'if date :zone "+0000" "date" "date" "2026-12-01" { discard; }', [Discard(2)]),
    (D + 'if date :zone "+0000" "date" "time" "04:30:00" { discard; }', [Discard(2)]),
    (D + 'if date "date" "zone" "+0100" { discard; }', [Discard(2)]),  # local zone = env.now's
    (D + 'if date :originalzone "date" "zone" "-0500" { discard; }', [Discard(2)]),
    (D + 'if date :originalzone "date" "weekday" "1" { discard; }', [Discard(2)]),  # Monday
    (D + 'if date :originalzone "date" "julian" "61374" { discard; }', [Discard(2)]),
    (D + 'if date :originalzone "date" "iso8601" "2026-11-30T23:30:00-05:00" { discard; }', [Discard(2)]),
    (D + 'if date :zone "+0000" "date" "iso8601" "2026-12-01T04:30:00Z" { discard; }', [Discard(2)]),
    (D + 'if date :originalzone "date" "std11" "Mon, 30 Nov 2026 23:30:00 -0500" { discard; }', [Discard(2)]),
    (D + 'if date :zone "+0000" "received" "hour" "10" { discard; }', [Discard(2)]),
    (D + 'if date "x-missing" "year" "2026" { discard; }', [Keep()]),
    (D + 'if date "subject" "year" "2026" { discard; }', [Keep()]),
    (D + 'if currentdate "date" "2026-12-24" { discard; }', [Discard(2)]),
    (D + 'if currentdate :zone "-0800" "time" "09:45:30" { discard; }', [Discard(2)]),
    # an out-of-office window (RFC 5260 §6)
    (D + 'if allof(currentdate :value "ge" "date" "2026-12-20", currentdate :value "le" "date" "2027-01-03")'
     ' { discard; }', [Discard(2)]),
    (D + 'if currentdate :matches "year" "*" { fileinto "Archive/${1}"; }', [FileInto("Archive/2026")]),
    (D + 'if currentdate :value "lt" "year" "2026" { discard; }', [Keep()]),
]


@pytest.mark.parametrize(("script", "expected"), DATES)
def test_date_and_currentdate(script: str, expected: list[object]) -> None:
    assert ok(script) == expected


B = 'require ["body", "fileinto"];\n'

BODIES = [
    (B + 'if body :contains "résumé" { discard; }', [Discard(2)]),  # quoted-printable decoded
    (B + 'if body :text :contains "are in." { discard; }', [Discard(2)]),  # html as text
    (B + 'if body :raw :contains "r=C3=A9sum=C3=A9" { discard; }', [Discard(2)]),
    (B + 'if body :raw :contains "résumé" { discard; }', [Keep()]),
    (B + 'if body :content "text/html" :contains "<b>numbers</b>" { discard; }', [Discard(2)]),
    (B + 'if body :content "text/plain" :contains "<b>" { discard; }', [Keep()]),
    (B + 'if body :content "application" :contains "SECRET PAYLOAD" { discard; }', [Discard(2)]),
    (B + 'if body :contains "SECRET PAYLOAD" { discard; }', [Keep()]),  # :text: text parts only
    (B + 'if body :content "" :contains "SECRET" { discard; }', [Discard(2)]),
    (B + 'if body :content "multipart" :contains "before the parts" { discard; }', [Discard(2)]),
    (B + 'if body :content "multipart" :contains "after the parts" { discard; }', [Discard(2)]),
    (B + 'if body :content "multipart" :contains "numbers" { discard; }', [Keep()]),
]


@pytest.mark.parametrize(("script", "expected"), BODIES)
def test_body(script: str, expected: list[object]) -> None:
    assert ok(script) == expected


def test_body_of_a_plain_message() -> None:
    raw = b"From: a@example.org\r\nSubject: x\r\n\r\nBuy cheap pills now\r\n"
    assert ok(B + 'if body :contains "cheap pills" { discard; }', raw=raw) == [Discard(2)]


INC = {
    (False, "lists"): 'require ["include", "fileinto", "variables"];\nglobal "box";\n'
                      'if header :contains "subject" "report" { set "box" "Reports"; return; }\n'
                      'set "box" "Other";',
    (True, "spam"): 'require ["fileinto"];\nif header :is "x-spam" "yes" { fileinto "Junk"; stop; }',
    (False, "counter"): 'require ["include", "variables"];\nglobal "n";\nset "n" "${n}x";',
    (False, "fail"): 'require "reject";\nreject "a";\nreject "b";',
}
INC_REQUIRE = 'require ["include", "variables", "fileinto"];\n'

INCLUDES = [
    (INC_REQUIRE + 'global "box";\ninclude "lists";\nfileinto "${box}";', [FileInto("Reports")]),
    (INC_REQUIRE + 'include :global "spam";\nfileinto "After";', [FileInto("Junk")]),  # stop ends all
    (INC_REQUIRE + 'include :personal "spam";', None),  # personal one does not exist: runtime error
    (INC_REQUIRE + 'include :optional "nosuch";\nfileinto "Went on";', [FileInto("Went on")]),
    (INC_REQUIRE + 'global "n";\ninclude "counter";\ninclude "counter";\ninclude :once "counter";\n'
     'fileinto "${n}";', [FileInto("xx")]),
    (INC_REQUIRE + 'set "box" "local";\ninclude "lists";\nfileinto "${box}";', [FileInto("local")]),
    (INC_REQUIRE + 'include "fail";', None),
]


@pytest.mark.parametrize(("script", "expected"), INCLUDES)
def test_include(script: str, expected: list[object] | None) -> None:
    result = run(script, include=INC)
    if expected is None:
        assert result.actions == [Keep()] and len(result.errors) == 1
    else:
        assert result.errors == [] and result.actions == expected


def test_duplicate_uses_the_injected_state_and_lists_ids_to_record() -> None:
    seen: dict[str, int] = {}

    def duplicate_seen(ident: str, seconds: int) -> bool:
        return ident in seen

    env = SieveEnvironment(duplicate_seen=duplicate_seen)
    script = 'require ["duplicate", "fileinto"];\nif duplicate { fileinto "Dups"; }'
    first = run(script, env=env)
    assert first.actions == [Keep()] and len(first.duplicates) == 1
    mark = first.duplicates[0]
    assert mark.seconds == 7 * 86400 and not mark.last
    seen[mark.id] = 1
    second = run(script, env=env)
    assert second.actions == [FileInto("Dups")] and second.duplicates == []
    # :last refreshes the record even when seen; another handle is another id
    last = run('require "duplicate";\nif duplicate :last :seconds 60 { discard; }', env=env)
    assert last.actions == [Discard(2)] and last.duplicates[0].last and last.duplicates[0].seconds == 60
    other = run('require "duplicate";\nif duplicate :handle "h" { discard; }', env=env)
    assert other.actions == [Keep()] and other.duplicates[0].id != mark.id
    by_header = run('require "duplicate";\nif duplicate :header "x-missing" { discard; }', env=env)
    assert by_header.actions == [Keep()] and by_header.duplicates == []
    unique = run('require "duplicate";\nif duplicate :uniqueid "abc" { discard; }', env=env)
    assert unique.duplicates and unique.duplicates[0].id not in seen


E = 'require ["editheader", "variables", "fileinto"];\n'


def test_editheader_changes_are_seen_by_later_tests_and_in_the_message() -> None:
    result = run(E + 'addheader "X-Sieve" "seen";\naddheader :last "X-Tail" "t";\n'
                 'deleteheader "x-spam";\ndeleteheader "received";\n'
                 'if header :is "x-sieve" "seen" { fileinto "Edited"; }\n'
                 'if exists "x-spam" { discard; }')
    assert result.errors == []
    assert result.actions == [
        AddHeader("X-Sieve", "seen"), AddHeader("X-Tail", "t", last=True), DeleteHeader("x-spam"),
        FileInto("Edited"),
    ]
    assert result.message.startswith(b"X-Sieve: seen\r\nReceived: from mx.example.net")
    assert b"X-Spam" not in result.message and b"X-Tail: t\r\n\r\nText before" in result.message
    assert result.message.endswith(MESSAGE[MESSAGE.index(b"\r\n\r\n") + 4:])


@pytest.mark.parametrize(("command", "left"), [
    ('deleteheader :index 1 "x-spam";', [b"X-Spam: maybe"]),
    ('deleteheader :index 1 :last "x-spam";', [b"X-Spam: yes"]),
    ('deleteheader :index 3 "x-spam";', [b"X-Spam: yes", b"X-Spam: maybe"]),
    ('deleteheader :contains "x-spam" "MAY";', [b"X-Spam: yes"]),
    ('deleteheader :matches "x-spam" ["y*", "m*"];', []),
    ('deleteheader "x-spam" "nothing";', [b"X-Spam: yes", b"X-Spam: maybe"]),
    ('deleteheader :index 0 "x-spam";', [b"X-Spam: yes", b"X-Spam: maybe"]),  # as Pigeonhole
])
def test_deleteheader_index_and_patterns(command: str, left: list[bytes]) -> None:
    result = run(E + command)
    assert [line for line in result.message.split(b"\r\n") if line.startswith(b"X-Spam")] == left


def test_unchanged_message_is_the_same_object_and_non_ascii_values_are_encoded() -> None:
    assert run("keep;").message is MESSAGE
    result = run(E + 'addheader "X-Note" "café";')
    assert result.message.startswith(b"X-Note: =?utf-8?b?Y2Fmw6k=?=\r\n")


MISC = [
    ('require ["mailbox", "fileinto"];\nif mailboxexists "Lists" { fileinto :create "Lists/New"; }',
     [FileInto("Lists/New", create=True)]),
    ('require ["mailbox", "fileinto"];\nif mailboxexists ["Lists", "Nope"] { discard; }', [Keep()]),
    ('require "environment";\nif environment :is "domain" "example.com" { discard; }', [Discard(2)]),
    ('require "environment";\nif environment :is "name" "postoffice" { discard; }', [Discard(2)]),
    ('require "environment";\nif environment :is "phase" "during" { discard; }', [Discard(2)]),
    ('require "environment";\nif environment :is "remote-ip" "192.0.2.7" { discard; }', [Discard(2)]),
    ('require "environment";\nif environment :contains "nosuch" "" { discard; }', [Keep()]),
    ('require ["spamtest", "relational", "comparator-i;ascii-numeric"];\n'
     'if spamtest :value "ge" :comparator "i;ascii-numeric" "7" { discard; }', [Discard(2)]),
    ('require ["spamtest", "relational", "comparator-i;ascii-numeric"];\n'
     'if spamtest :value "eq" :comparator "i;ascii-numeric" "8" { discard; }', [Keep()]),  # 1 + 72*9/100 -> 7
    ('require ["spamtestplus", "relational", "comparator-i;ascii-numeric"];\n'
     'if spamtest :percent :value "eq" :comparator "i;ascii-numeric" "72" { discard; }', [Discard(2)]),
    ('require ["virustest", "relational", "comparator-i;ascii-numeric"];\n'
     'if virustest :value "eq" :comparator "i;ascii-numeric" "0" { discard; }', [Discard(2)]),
]


@pytest.mark.parametrize(("script", "expected"), MISC)
def test_mailbox_environment_spamtest(script: str, expected: list[object]) -> None:
    assert ok(script) == expected


def test_spamtest_untested_is_zero() -> None:
    script = 'require "spamtest";\nif spamtest "0" { discard; }'
    assert run(script, env=SieveEnvironment()).actions == [Discard(2)]


def test_a_failing_state_callable_is_a_runtime_error_not_an_exception() -> None:
    def broken(*args: object) -> bool:
        raise TimeoutError("store too slow")

    env = SieveEnvironment(duplicate_seen=broken, mailbox_exists=broken)
    for script in ('require "duplicate";\nif duplicate { discard; }',
                   'require "mailbox";\nif mailboxexists "x" { discard; }'):
        result = run(script, env=env)
        assert result.actions == [Keep()] and "store too slow" in result.errors[0]
