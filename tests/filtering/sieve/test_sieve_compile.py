"""Sieve compile errors (RFC 5228 §2.10.6): every class of bad script is refused with the line
and column of the problem; good scripts compile."""
from __future__ import annotations

import pytest

from postoffice.filtering.sieve import CAPABILITIES, SieveError, SieveLimits, compile_script

# (script, line, column, words the message must contain)
BAD_SCRIPTS = [
    ("frobnicate;", 1, 1, "unknown command 'frobnicate'"),
    ('keep;\nfileinto "x";', 2, 1, 'needs require "fileinto"'),
    ('require "nosuch";', 1, 1, "unsupported extension 'nosuch'"),
    ('require "FILEINTO";', 1, 1, "unsupported extension 'FILEINTO'"),  # case-sensitive, as Pigeonhole
    ('if address :is ["from", "list-id"] "x" { keep; }', 1, 4, "'list-id' is not an address header field"),
    ('keep;\nrequire "fileinto";', 2, 1, "require must come before"),
    ('if true { keep; }\nrequire "fileinto";', 2, 1, "require must come before"),
    ("elsif true { keep; }", 1, 1, "elsif without a preceding if"),
    ("keep;\nelse { keep; }", 2, 1, "else without a preceding if"),
    ("if true { keep; }\nkeep;\nelse { discard; }", 3, 1, "else without a preceding if"),
    ("if true keep;", 1, 9, "true takes no test"),
    ("if { keep; }", 1, 1, "if needs a test"),
    ("if true;", 1, 1, "if needs a block"),
    ("keep { stop; }", 1, 1, "keep takes no block"),
    ('keep "x";', 1, 6, "too many arguments for keep"),
    ("redirect;", 1, 1, "redirect needs 1 positional argument"),
    ('redirect ["a@b.c", "d@e.f"];', 1, 10, "must be a string, not a string list"),
    ("redirect 5;", 1, 10, "must be a string, not a number"),
    ('redirect "not an address";', 1, 1, "redirect needs a valid address"),
    ('if header :is :contains "a" "b" { keep; }', 1, 15, "tag :contains conflicts with :is"),
    ('if header :is :is "a" "b" { keep; }', 1, 15, "tag :is given twice"),
    ('if header "a" :is "b" { keep; }', 1, 15, "must come before the positional"),
    ('if header :frob "a" "b" { keep; }', 1, 11, "header has no tag :frob"),
    ('if header :comparator "i;nope" "a" "b" { keep; }', 1, 4, "unknown comparator"),
    ('if header :comparator "i;ascii-numeric" "a" "b" { keep; }', 1, 4, "needs require"),
    ('require "comparator-i;ascii-numeric";\nif header :contains :comparator "i;ascii-numeric" "a" "1" { keep; }',
     2, 4, "cannot do :contains"),
    ('if header :count "gt" "a" "1" { keep; }', 1, 11, 'needs require "relational"'),
    ('require "relational";\nif header :value "bigger" "a" "1" { keep; }', 2, 4, ":value needs one of"),
    ('if header :comparator { keep; }', 1, 11, "tag :comparator needs a string"),
    ("if size 100 { keep; }", 1, 4, "size needs :over or :under"),
    ('if size :over "big" { keep; }', 1, 15, "must be a number"),
    ("if not (true, false) { keep; }", 1, 9, "takes one test, not a test list"),
    ("if allof true { keep; }", 1, 10, "needs a test list in parentheses"),
    ("if true, false { keep; }", 1, 8, "expected ';' or '{'"),
    ("if keep { stop; }", 1, 4, "keep is a command, not a test"),
    ("header;", 1, 1, "header is a test, not a command"),
    ('if anyof (true, frob) { keep; }', 1, 17, "unknown test 'frob'"),
    ('if true { keep; ', 1, 17, "expected a command or '}'"),
    ("}", 1, 1, "expected a command"),
    ('keep;\n  "dangling";', 2, 3, "expected a command"),
    ('if header "a" ["b", ] { keep; }', 1, 21, "expected a string in the string list"),
    ('if header "a" ["b" "c"] { keep; }', 1, 20, "expected ',' or ']'"),
    ('fileinto "unclosed;', 1, 10, "string not closed"),
    ("/* never closed\nkeep;", 1, 1, "comment (/*) not closed"),
    ('require "vacation";\nvacation text:\nno end\n', 2, 10, "not ended by a line with a single '.'"),
    ("keep;\n  @", 2, 3, "unexpected character '@'"),
    ('require "vacation";\nvacation text:x\n.\n;', 2, 15, "unexpected 'x' after text:"),
    ("if size :over 99999999999999999999G { keep; }", 1, 15, "too large"),
    ('keep;\n# ok\nfileinto "\udcff";', 3, 11, "invalid UTF-8"),
    ('require "variables";\nset "bad name" "x";', 2, 1, "invalid variable name"),
    ('require ["encoded-character", "fileinto"];\nfileinto "a${unicode:d800}";', 2, 10, "U+D800 is not a Unicode character"),
    ('require "encoded-character";\nif header :is "subject" ["x", "${hex:c3}"] { keep; }', 2, 25, "is not valid UTF-8"),
    ('require "variables";\nset "1" "x";', 2, 1, "invalid variable name"),
    ('require "variables";\nset "x.y" "x";', 2, 1, "unknown namespace 'x'"),
    ('require "variables";\nset "global.y" "x";', 2, 1, "unknown namespace 'global'"),  # needs include
    ('require "date";\nif currentdate "century" "20" { keep; }', 2, 4, "unknown date part"),
    ('require "date";\nif currentdate :zone "CET" "year" "2020" { keep; }', 2, 4, "invalid time zone"),
    ('require "envelope";\nif envelope "bcc" "a" { keep; }', 2, 4, "unknown envelope part"),
    ('require "editheader";\naddheader "Bad Name" "x";', 2, 1, "invalid header field name"),
    ('require "editheader";\ndeleteheader :last "X-A";', 2, 1, "deleteheader :last needs :index"),
    ('require "body";\nrequire "relational";\nif body :count "gt" "1" { keep; }', 3, 4, "body cannot use :count"),
    ('require "vacation";\nvacation :days 1 :seconds 5 "x";', 2, 18, "needs require \"vacation-seconds\""),
    ('require "vacation-seconds";\nvacation :days 1 :seconds 5 "x";', 2, 18, "conflicts with :days"),
    ('require "include";\nreturn;\ninclude "x/y";', 3, 1, "invalid script name"),
    ('require "include";\nglobal "x";', 2, 1, 'needs require "variables"'),
    ('require "fileinto";\nfileinto :create "x";', 2, 10, 'needs require "mailbox"'),
    ('redirect :copy "a@example.org";', 1, 10, 'needs require "copy"'),
    ("keep :flags \"\\\\Seen\";", 1, 6, 'needs require "imap4flags"'),
    ('if spamtest :percent "5" { keep; }', 1, 4, 'needs require "spamtest"'),
    ('require "spamtest";\nif spamtest :percent "5" { keep; }', 2, 13, 'needs require "spamtestplus"'),
]


@pytest.mark.parametrize(("script", "line", "column", "words"), BAD_SCRIPTS)
def test_bad_script_is_refused_with_its_line_and_column(script: str, line: int, column: int, words: str) -> None:
    with pytest.raises(SieveError) as caught:
        compile_script(script)
    error = caught.value
    assert words in error.message, error
    assert (error.line, error.column) == (line, column), error
    assert str(error) == f"line {line}, column {column}: {error.message}"


GOOD_SCRIPTS = [
    "",
    "# only a comment\n",
    "keep;",
    "KEEP;",  # identifiers are case-insensitive
    "if true { keep; } elsif false { discard; } else { stop; }",
    'require ["fileinto", "reject", "envelope"];\nif envelope :domain "from" "example.org" { fileinto "x"; }',
    "if size :over 10K { discard; }",
    'if header :matches ["subject", "x-y"] ["*a?b*", "\\\\*"] { keep; }',
    'require "vacation";\nvacation text:\nline one\n..dot-stuffed\n.\n;',
    "/* bracket\n comment */ keep; # tail",
    'require "imap4flags";\nsetflag "\\\\Seen";\naddflag "flagvar" ["a", "b"];\nkeep :flags "x";',
    'require ["vacation-seconds"];\nvacation :seconds 60 "away";',
    'require ["spamtestplus", "relational", "comparator-i;ascii-numeric"];\nif spamtest :percent :value "ge" :comparator "i;ascii-numeric" "50" { discard; }',
]


@pytest.mark.parametrize("script", GOOD_SCRIPTS)
def test_good_script_compiles(script: str) -> None:
    compile_script(script)


def test_every_announced_capability_can_be_required() -> None:
    required = ", ".join(f'"{c}"' for c in CAPABILITIES)
    script = compile_script(f"require [{required}];")
    assert set(CAPABILITIES) <= script.capabilities


def test_bytes_with_bad_utf8_are_refused_at_their_position() -> None:
    with pytest.raises(SieveError) as caught:
        compile_script(b'keep;\nfileinto "caf\xe9";')
    assert (caught.value.line, caught.value.column) == (2, 14)


def test_deep_nesting_is_an_error_not_a_recursion_crash() -> None:
    blocks = "if true {\n" * 5000 + "keep;" + "}" * 5000
    with pytest.raises(SieveError) as caught:
        compile_script(blocks)
    assert caught.value.line == 33 and "nesting deeper than 32" in caught.value.message
    tests = "if " + "not " * 5000 + "true { keep; }"
    with pytest.raises(SieveError) as caught:
        compile_script(tests)
    assert caught.value.line == 1 and "nesting" in caught.value.message
    lists = "if " + "anyof(" * 5000 + "true" + ")" * 5000 + " { keep; }"
    with pytest.raises(SieveError, match="nesting"):
        compile_script(lists)


def test_a_script_over_the_size_limit_is_refused() -> None:
    with pytest.raises(SieveError, match="more than the limit"):
        compile_script("keep;" * 100, limits=SieveLimits(max_script_bytes=100))


INCLUDES = {
    (False, "a"): 'require "include";\ninclude "b";',
    (False, "b"): 'require "include";\n\ninclude "a";',
    (False, "self"): 'require "include";\ninclude "self";',
    (False, "broken"): "keep;\nfrob;",
}


def _loader(name: str, is_global: bool) -> str | None:
    return INCLUDES.get((is_global, name))


def test_include_loops_are_refused_with_the_chain() -> None:
    with pytest.raises(SieveError) as caught:
        compile_script('require "include";\nkeep;\ninclude "a";', include_loader=_loader)
    assert (caught.value.line, caught.value.column) == (2 + 1, 1)
    assert "include loop: a -> b -> a" in caught.value.message
    with pytest.raises(SieveError, match="include loop: self -> self"):
        compile_script('require "include";\ninclude "self";', include_loader=_loader)


def test_an_error_in_an_included_script_names_it_and_its_position() -> None:
    with pytest.raises(SieveError) as caught:
        compile_script('require "include";\ninclude "broken";', include_loader=_loader)
    assert (caught.value.line, caught.value.column) == (2, 1)
    assert "in included script 'broken': line 2, column 1: unknown command 'frob'" in caught.value.message


def test_every_example_in_the_user_guide_compiles() -> None:
    from pathlib import Path

    guide = (Path(__file__).parents[3] / "docs" / "sieve.md").read_text(encoding="utf-8")
    examples = guide.split("```sieve\n")[1:]
    assert len(examples) >= 8
    for example in examples:
        compile_script(example.split("```")[0])
