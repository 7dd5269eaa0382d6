"""Running Sieve scripts (RFC 5228 base language, fileinto, redirect, reject, copy, imap4flags):
table-driven, script + message + envelope -> actions."""
from __future__ import annotations

import pytest

from postoffice.filtering.sieve import (
    Action,
    Discard,
    FileInto,
    Keep,
    Redirect,
    Reject,
    SieveEnvironment,
    SieveLimits,
    SieveMessage,
    SieveResult,
    compile_script,
    run_script,
)

MESSAGE = (
    b"Return-Path: <list-bounces@lists.example.net>\r\n"
    b"From: \"Boss\" <Boss+work@Example.org>\r\n"
    b"To: me@example.com, \"Other\" <other@example.com>\r\n"
    b"Cc: undisclosed-recipients:;\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9?= meeting\r\n"
    b" at noon\r\n"
    b"X-Priority: 10\r\n"
    b"X-Priority: 3\r\n"
    b"List-Id: <team.lists.example.net>\r\n"
    b"Message-ID: <abc@example.org>\r\n"
    b"\r\n"
    b"Hello, the meeting is at noon.\r\n"
)


def run(script: str, raw: bytes = MESSAGE, *, sender: str = "boss@example.org",
        recipient: str = "me+sieve@example.com", env: SieveEnvironment | None = None,
        limits: SieveLimits | None = None) -> SieveResult:
    message = SieveMessage(raw, envelope_from=sender, envelope_to=recipient)
    return run_script(compile_script(script), message, env or SieveEnvironment(), limits=limits)


def actions(script: str, **kw: object) -> list[Action]:
    result = run(script, **kw)  # type: ignore[arg-type]
    assert result.errors == []
    return result.actions


FI = 'require ["fileinto", "envelope", "copy", "reject", "imap4flags", "subaddress"];\n'

CASES = [
    # the NOT filter users ask for (issue 17): only mail from one sender stays in the inbox
    (FI + 'if not address :is "from" "boss+work@example.org" { fileinto "Other"; }', [Keep()]),
    (FI + 'if not address :is "from" "someone@example.org" { fileinto "Other"; }', [FileInto("Other")]),
    ("", [Keep()]),
    ("keep;", [Keep()]),
    ("discard;", [Discard(1)]),
    ("keep;\ndiscard;", [Keep(), Discard(2)]),
    ("stop;\ndiscard;", [Keep()]),
    (FI + 'fileinto "A";\nfileinto "A";\nkeep;\nkeep;', [FileInto("A"), Keep()]),
    (FI + 'fileinto :copy "A";', [FileInto("A", copy=True), Keep()]),
    (FI + 'fileinto "INBOX";\nkeep;', [FileInto("INBOX")]),  # keep is fileinto "INBOX"
    (FI + 'keep :flags "a";\nfileinto :flags "b" "inbox";', [Keep(("a", "b"))]),
    ('redirect "a@example.net";', [Redirect("a@example.net")]),
    (FI + 'redirect :copy "a@example.net";', [Redirect("a@example.net", copy=True), Keep()]),
    ('redirect "a@example.net"; redirect "A@example.net";', [Redirect("a@example.net")]),
    (FI + 'reject "go away";', [Reject("go away")]),
    ('require "ereject"; ereject "no";', [Reject("no", extended=True)]),
    # header: RFC 2047 decoded, unfolded; :contains is case-insensitive by default
    ('if header :contains "subject" "CAFÉ meeting at" { discard; }', [Keep()]),
    ('if header :contains "subject" "Café meeting at" { discard; }', [Discard(1)]),
    ('if header :is "subject" "CAFÉ MEETING AT NOON" { discard; }', [Keep()]),  # É is not ASCII
    ('if header :is "subject" "CAFé MEETING AT NOON" { discard; }', [Discard(1)]),
    ('if header :contains :comparator "i;octet" "subject" "café" { discard; }', [Keep()]),
    ('if header :matches "subject" "Caf? *noon" { discard; }', [Discard(1)]),
    ('if header :matches "subject" "*\\\\*" { discard; }', [Keep()]),
    ('if header :is "x-missing" "" { discard; }', [Keep()]),
    ('if exists ["from", "to"] { discard; }', [Discard(1)]),
    ('if exists ["from", "x-missing"] { discard; }', [Keep()]),
    ("if size :over 100 { discard; }", [Discard(1)]),
    ("if size :under 100 { discard; }", [Keep()]),
    ("if size :over 1K { discard; }", [Keep()]),
    ("if allof (true, false) { discard; }", [Keep()]),
    ("if anyof (false, true) { discard; }", [Discard(1)]),
    ("if not false { discard; }", [Discard(1)]),
    ("if false { discard; } elsif true { stop; } else { discard; }\ndiscard;", [Keep()]),
    ("if true { } elsif true { discard; } else { discard; }", [Keep()]),
    # address parts, subaddress (RFC 5233, delimiter "+")
    ('if address :domain "from" "EXAMPLE.ORG" { discard; }', [Discard(1)]),
    ('if address :localpart "from" "boss+work" { discard; }', [Discard(1)]),
    (FI + 'if address :user "from" "boss" { discard; }', [Discard(2)]),
    (FI + 'if address :detail "from" "work" { discard; }', [Discard(2)]),
    (FI + 'if address :detail "to" "" { discard; }', [Keep()]),  # no detail: no value
    ('if address :all :is "to" "other@example.com" { discard; }', [Discard(1)]),
    ('if address :is "cc" "" { discard; }', [Keep()]),  # a group alone has no address
    (FI + 'if envelope :is "from" "boss@example.org" { discard; }', [Discard(2)]),
    (FI + 'if envelope :detail "to" "sieve" { discard; }', [Discard(2)]),
    (FI + 'if envelope :user "to" "me" { discard; }', [Discard(2)]),
    # i;ascii-numeric (RFC 4790 §9.1) and relational (RFC 5231)
    ('require ["relational", "comparator-i;ascii-numeric"];\n'
     'if header :value "gt" :comparator "i;ascii-numeric" "x-priority" "9" { discard; }', [Discard(2)]),
    ('require ["relational", "comparator-i;ascii-numeric"];\n'
     'if header :value "gt" "x-priority" "9" { discard; }', [Keep()]),  # casemap: "10" < "9"
    ('require ["relational", "comparator-i;ascii-numeric"];\n'
     'if header :count "eq" :comparator "i;ascii-numeric" "x-priority" "2" { discard; }', [Discard(2)]),
    ('require ["relational", "comparator-i;ascii-numeric"];\n'
     'if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "2" { discard; }', [Discard(2)]),
    ('require "comparator-i;ascii-numeric";\n'
     'if header :is :comparator "i;ascii-numeric" "x-priority" "03" { discard; }', [Discard(2)]),
    ('require "comparator-i;ascii-numeric";\n'
     'if header :is :comparator "i;ascii-numeric" "subject" "x" { discard; }', [Discard(2)]),  # both infinite
    # imap4flags (RFC 5232): the internal variable applies to keep and fileinto
    (FI + 'setflag "\\\\Seen";\naddflag ["\\\\Flagged", "\\\\seen"];\nfileinto "A";',
     [FileInto("A", flags=("\\Seen", "\\Flagged"))]),
    (FI + 'addflag "a b c";\nremoveflag "B";\nkeep;', [Keep(("a", "c"))]),
    (FI + 'addflag "x";\nkeep :flags "y";\nfileinto :copy "Z";', [Keep(("y",)), FileInto("Z", ("x",), copy=True)]),
    (FI + 'addflag "x";', [Keep(("x",))]),
    (FI + 'addflag "x";\nif hasflag :is "X" { discard; }', [Discard(3)]),
    (FI + 'addflag "mine" "y";\nif hasflag "mine" "y" { discard; }', [Discard(3)]),
    (FI + 'keep :flags "a";\nkeep :flags "b";', [Keep(("a", "b"))]),
]


@pytest.mark.parametrize(("script", "expected"), CASES)
def test_script_gives_these_actions(script: str, expected: list[Action]) -> None:
    assert actions(script) == expected


RUNTIME_ERRORS = [
    (FI + 'reject "no";\nkeep;', "keep conflicts with reject"),
    (FI + 'fileinto "A";\nreject "no";', "reject conflicts with fileinto"),
    ('require "ereject";\nredirect "a@b.example";\nereject "no";', "ereject conflicts with redirect"),
    (FI + 'reject "a"; reject "b";', "only one reject"),
    ('require "vacation";\nvacation "a";\nvacation "b";', "vacation can run only once"),
]


@pytest.mark.parametrize(("script", "words"), RUNTIME_ERRORS)
def test_a_runtime_error_leaves_only_the_implicit_keep(script: str, words: str) -> None:
    result = run(script)
    assert result.actions == [Keep()] and result.implicit_keep
    assert len(result.errors) == 1 and words in result.errors[0], result.errors
    assert result.message == MESSAGE


def test_redirects_and_actions_are_bounded() -> None:
    redirects = "".join(f'redirect "u{i}@example.net";\n' for i in range(5))
    result = run(redirects)
    assert result.actions == [Keep()] and "line 5, column 1: more than 4 redirects" in result.errors[0]
    assert run(redirects, limits=SieveLimits(max_redirects=5)).errors == []
    files = FI + "".join(f'fileinto "box{i}";\n' for i in range(40))
    result = run(files)
    assert result.actions == [Keep()] and "more than 32 actions" in result.errors[0]


def test_a_redirect_to_a_bad_address_from_a_variable_is_a_runtime_error() -> None:
    result = run('require "variables";\nset "to" "not an address";\nredirect "${to}";')
    assert result.actions == [Keep()] and "line 3, column 1: redirect to an invalid address" in result.errors[0]


def test_the_compiled_script_is_reusable_and_unchanged_by_runs() -> None:
    script = compile_script('require ["variables", "imap4flags"];\nset "a" "${a}x";\naddflag "f";\nkeep;')
    first = run_script(script, SieveMessage(MESSAGE))
    second = run_script(script, SieveMessage(MESSAGE))
    assert first.actions == second.actions == [Keep(("f",))]


def test_stopped_says_whether_the_script_ran_stop() -> None:
    assert run("if true { stop; }\ndiscard;").stopped
    assert not run("keep;").stopped
    assert not run('require "include";\nreturn;\ndiscard;').stopped  # return is not stop


def test_runtime_errors_give_line_and_column() -> None:
    result = run(FI + 'reject "a"; reject "b";')
    assert result.errors == ["script: line 2, column 13: only one reject or ereject per message"]
