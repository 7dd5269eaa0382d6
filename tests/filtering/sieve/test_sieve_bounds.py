"""Runaway and hostile Sieve scripts: bounded runs (CPU time, :matches without backtracking)
and a small grammar fuzzer that must only ever see SieveError or a finished run."""
from __future__ import annotations

import random
import time

import pytest

from postoffice.filtering.sieve import (
    Keep,
    SieveEnvironment,
    SieveError,
    SieveLimits,
    SieveMessage,
    SieveResult,
    compile_script,
    run_script,
)
from postoffice.filtering.sieve.matching import glob_match

pytestmark = pytest.mark.timeout(120)

RAW = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: " + b"a" * 5000 + b"\r\n\r\nbody\r\n"


@pytest.mark.parametrize(("pattern", "text", "captures"), [
    ("*", "", ["", ""]),
    ("", "", [""]),
    ("a*", "abc", ["abc", "bc"]),
    ("*c", "abc", ["abc", "ab"]),
    ("a*b*c", "aXbYbZc", ["aXbYbZc", "X", "YbZ"]),  # stars take as little as possible, left to right
    ("?*?", "ab", ["ab", "a", "", "b"]),
    ("a?c", "abc", ["abc", "b"]),
    ("*?x", "yyx", ["yyx", "y", "y"]),
    ("\\*a", "*a", ["*a"]),
    ("\\?", "x", None),
    ("a*a", "a", None),
    ("*x*", "abc", None),
    ("**", "ab", ["ab", "", "ab"]),
])
def test_glob_match_captures(pattern: str, text: str, captures: list[str] | None) -> None:
    assert glob_match(pattern, text, casemap=False) == captures


def test_glob_with_many_stars_is_not_exponential() -> None:
    text = "a" * 20000
    started = time.monotonic()
    assert glob_match("*a" * 60 + "b", text, casemap=True) is None
    assert glob_match("*a?" * 60 + "*b", text, casemap=False) is None
    assert glob_match("*a" * 60 + "*", text, casemap=False) is not None
    assert time.monotonic() - started < 5  # backtracking would take longer than the universe


def test_cpu_time_is_bounded() -> None:
    tests = ", ".join(f'header :matches "subject" "*a?{i}*"' for i in range(3000))
    script = compile_script(f"if anyof({tests}) {{ discard; }}", limits=SieveLimits(max_nesting=4))
    started = time.monotonic()
    result = run_script(script, SieveMessage(RAW), SieveEnvironment(), limits=SieveLimits(cpu_seconds=0.05))
    assert time.monotonic() - started < 20
    assert result.actions == [Keep()] and "CPU time limit" in result.errors[0]


# --- a small grammar fuzzer -----------------------------------------------------------------

WORDS = ["if", "elsif", "else", "keep", "discard", "stop", "fileinto", "redirect", "header",
         "address", "envelope", "not", "anyof", "allof", "true", "false", "size", "exists",
         "require", "set", "string", "vacation", "include", "return", "global", "addheader",
         "deleteheader", "date", "currentdate", "body", "duplicate", "setflag", "hasflag",
         "reject", "ereject", "spamtest", "environment", "mailboxexists"]
TAGS = [":is", ":contains", ":matches", ":count", ":value", ":comparator", ":all", ":domain",
        ":localpart", ":user", ":detail", ":over", ":under", ":copy", ":create", ":flags", ":days",
        ":seconds", ":once", ":optional", ":global", ":index", ":last", ":raw", ":text", ":zone"]
STRINGS = ['"x"', '"*a*?b\\\\*"', '"${1}${a}"', '"i;ascii-numeric"', '"ge"', '"from"', '"subject"',
           '"a@example.org"', '"\\"quoted\\\\"', 'text:\n..line\n.\n', '"' + "s" * 3000 + '"',
           '"\udcff"', '"date"', '"year"']
REQUIRES = ('require ["fileinto", "variables", "relational", "imap4flags", "vacation", "copy",'
            ' "include", "editheader", "date", "body", "duplicate", "reject", "envelope",'
            ' "subaddress", "mailbox", "environment", "spamtest", "comparator-i;ascii-numeric"];\n')


VALID = ['keep;', 'discard;', 'fileinto "F";', 'fileinto :copy :create "${1}";', 'stop;',
         'redirect "r@example.net";', 'set "a" "${a}${a}x";', 'setflag "\\\\Seen";',
         'addheader "X-A" "${a}";', 'deleteheader :index 1 "subject";', 'vacation :days 1 "away";',
         'include :optional "x";', 'include "a";', 'reject "no";', 'return;']


def _fragment(rng: random.Random, depth: int) -> str:
    pick = rng.random()
    if depth > 0 and pick < 0.3:
        return "if " + _test(rng, depth - 1) + " { " + _fragment(rng, depth - 1) + " }"
    if pick < 0.85:
        return rng.choice(VALID)
    parts = [rng.choice(WORDS)]
    for _ in range(rng.randrange(4)):
        r = rng.random()
        if r < 0.4:
            parts.append(rng.choice(TAGS))
        elif r < 0.8:
            parts.append(rng.choice(STRINGS))
        elif r < 0.9:
            parts.append("[" + ", ".join(rng.choice(STRINGS) for _ in range(rng.randrange(1, 4))) + "]")
        else:
            parts.append(str(rng.randrange(100)) + rng.choice(["", "K", "M", "G"]))
    return " ".join(parts) + rng.choice([";", ";", ";", " {", "}", "", "(", ")", ","])


def _test(rng: random.Random, depth: int) -> str:
    if depth > 0 and rng.random() < 0.3:
        return rng.choice(["anyof", "allof"]) + "(" + ", ".join(_test(rng, depth - 1) for _ in range(2)) + ")"
    if rng.random() < 0.1:
        return "not " * rng.randrange(1, 60) + "true"
    return rng.choice(["true", "false", 'header :contains "subject" "a"',
                       'address :domain :matches "from" "*"', "size :over 1K", 'exists "to"',
                       'string :count "gt" "${1}" "0"', 'duplicate :seconds 10'])


def _script(rng: random.Random) -> str:
    body = "\n".join(_fragment(rng, 3) for _ in range(rng.randrange(1, 8)))
    kind = rng.random()
    if kind < 0.1:
        return body
    if kind < 0.15:
        return "if true {" * rng.randrange(20, 200) + body + "}" * rng.randrange(200)
    return REQUIRES + body


def _loader(name: str, is_global: bool) -> str | None:
    return {"a": 'require "include"; include "b";', "b": 'require "include"; include "a";',
            "x": "keep;"}.get(name)


def test_two_hundred_fuzzed_scripts_give_errors_with_positions_or_bounded_runs() -> None:
    rng = random.Random(17)
    compiled = refused = 0
    env = SieveEnvironment(duplicate_seen=lambda ident, seconds: False)
    for n in range(200):
        text = _script(rng)
        if n % 10 == 0:  # an include loop
            text = REQUIRES + 'include "a";\n' + text
        try:
            script = compile_script(text, include_loader=_loader)
        except SieveError as e:
            assert e.line >= 1 and e.column >= 1 and str(e).startswith(f"line {e.line}, column {e.column}: ")
            refused += 1
            continue
        compiled += 1
        started = time.monotonic()
        result = run_script(script, SieveMessage(RAW, "a@example.org", "b@example.com"), env)
        assert isinstance(result, SieveResult) and result.actions
        assert time.monotonic() - started < 5
    assert refused >= 20 and compiled >= 20, (refused, compiled)


def test_expanding_a_long_variable_many_times_is_bounded() -> None:
    """400 KB of "${a}" with `a` at its 4 KB cap would be a 400 MB string."""
    script = compile_script('require ["variables", "fileinto"];\nset "a" "' + "x" * 5000 + '";\n'
                            'fileinto "' + "${a}" * 100_000 + '";')
    result = run_script(script, SieveMessage(RAW), SieveEnvironment())
    assert result.actions == [Keep()]
    assert result.errors == ["script: line 3, column 1: a string longer than 1048576 characters"]


def test_glob_agrees_with_a_lazy_regular_expression_on_random_patterns() -> None:
    """RFC 5229 §3.2 captures: stars as short as possible from the left; `re` with lazy groups
    (exponential in the worst case, fine for these sizes) is the reference."""
    import re

    rng = random.Random(5229)
    for _ in range(20000):
        pattern = "".join(rng.choice("ab*?") for _ in range(rng.randrange(8)))
        text = "".join(rng.choice("ab") for _ in range(rng.randrange(10)))
        regex = "".join("(.*?)" if c == "*" else "(.)" if c == "?" else c for c in pattern)
        expected = re.fullmatch(regex, text, re.DOTALL)
        got = glob_match(pattern, text, casemap=False)
        if expected is None:
            assert got is None, (pattern, text)
        else:
            assert got == [text, *expected.groups()], (pattern, text)
