"""A seeded grammar fuzzer for Sieve scripts, and a batch runner that judges each script.

`generate(seed, count)` makes `count` scripts (the same ones for the same seed) from families
built to hurt a parser and an interpreter: deep nesting (to 1,000 levels and past), huge strings
(1 MB), bad UTF-8, unterminated strings/comments/blocks, numbers that overflow, unknown
commands, tag soup, grammar-shaped random scripts, mutations of valid scripts, include loops
(the loader makes cycles), exponential :matches patterns and variables that double.

`python sieve_fuzzer.py SEED COUNT` runs the batch in this process and prints one JSON line per
case; test_sieve_fuzz.py runs it in a child process with a memory limit, so a runaway
allocation or a crash in one case fails the test instead of taking pytest down.
"""
from __future__ import annotations

import json
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

MB = 1 << 20


@dataclass(frozen=True)
class FuzzCase:
    name: str
    script: str
    includes: dict[str, str] = field(default_factory=dict)  # name -> text, for include_loader


# ---- building blocks --------------------------------------------------------------------

EXTENSIONS = [
    "fileinto", "reject", "ereject", "envelope", "encoded-character", "vacation", "vacation-seconds",
    "imap4flags", "copy", "relational", "subaddress", "body", "variables", "date", "index",
    "include", "duplicate", "editheader", "mailbox", "spamtest", "spamtestplus", "virustest",
    "environment", "comparator-i;ascii-numeric", "comparator-i;octet", "x-unknown-ext",
]
TAGS = [":is", ":contains", ":matches", ":regex", ":value", ":count", ":comparator", ":all",
        ":localpart", ":domain", ":user", ":detail", ":over", ":under", ":copy", ":create", ":flags",
        ":days", ":seconds", ":subject", ":from", ":addresses", ":mime", ":handle", ":raw",
        ":content", ":text", ":zone", ":originalzone", ":index", ":last", ":personal", ":global",
        ":once", ":optional", ":upper", ":lower", ":length", ":quotewildcard", ":percent", ":bogus"]
COMMANDS = ["keep", "discard", "stop", "fileinto", "redirect", "reject", "ereject", "vacation",
            "setflag", "addflag", "removeflag", "set", "addheader", "deleteheader", "include",
            "return", "global", "require", "if", "elsif", "else", "frobnicate"]
TESTS = ["header", "address", "envelope", "exists", "size", "true", "false", "not", "allof",
         "anyof", "body", "string", "date", "currentdate", "hasflag", "duplicate", "mailboxexists",
         "spamtest", "virustest", "environment", "unknowntest"]
REQUIRE_ALL = 'require ["fileinto", "reject", "envelope", "vacation", "vacation-seconds", ' \
              '"imap4flags", "copy", "relational", "subaddress", "body", "variables", "date", ' \
              '"include", "duplicate", "editheader", "mailbox", "spamtest", "virustest", ' \
              '"environment", "comparator-i;ascii-numeric"];\n'

VALID_SEEDS = [
    REQUIRE_ALL + 'if header :contains "subject" "budget" { fileinto :create "Work"; stop; }\n'
    'elsif address :domain :is "from" "example.org" { addflag "\\\\Seen"; keep; } else { discard; }\n',
    REQUIRE_ALL + 'set "x" "${1}"; if header :matches "subject" "*re*" { set :upper "s" "${1}"; '
    'vacation :days 2 :subject "${s}" "away"; }\nredirect :copy "a@example.net";\n',
    REQUIRE_ALL + 'if allof (size :over 1K, not exists "list-id", anyof (true, false)) {\n'
    '  addheader :last "X-Big" "yes"; deleteheader :index 1 "received";\n}\n'
    'if date :value "ge" "date" "year" "2020" { fileinto "New"; }\n',
    REQUIRE_ALL + 'if spamtest :value "ge" :comparator "i;ascii-numeric" "5" { fileinto "Junk"; }\n'
    'if body :text :contains ["a", "b"] { reject text:\nno\n.\n; }\n',
]


def sieve_string(rng: random.Random, length: int | None = None) -> str:
    n = rng.randint(0, 12) if length is None else length
    alphabet = 'abcXYZ09 *?\\"${}.:;@-_' + "äß€"
    body = "".join(rng.choice(alphabet) for _ in range(n))
    return '"' + body.replace("\\", "\\\\").replace('"', '\\"') + '"'


def random_test(rng: random.Random, depth: int) -> str:
    if depth <= 0 or rng.random() < 0.4:
        kind = rng.choice(["header", "address", "exists", "size", "true", "false", "string",
                           "envelope", "body", "hasflag", "spamtest", "environment", "date"])
        if kind in ("true", "false"):
            return kind
        if kind == "size":
            return f"size {rng.choice([':over', ':under'])} {rng.randint(0, 10**6)}{rng.choice(['', 'K', 'M', 'G'])}"
        if kind == "exists":
            return f"exists {sieve_string(rng)}"
        if kind == "date":
            return f'date :is "date" "year" {sieve_string(rng)}'
        match = rng.choice([":is", ":contains", ":matches", ":value \"ge\"", ":count \"lt\""])
        if kind in ("string", "environment", "hasflag", "spamtest", "body"):
            return f"{kind} {match} {sieve_string(rng)}" + (f" {sieve_string(rng)}" if kind != "spamtest" else "")
        return f"{kind} {match} [{sieve_string(rng)}, {sieve_string(rng)}] {sieve_string(rng)}"
    op = rng.choice(["not", "allof", "anyof"])
    if op == "not":
        return "not " + random_test(rng, depth - 1)
    return f"{op} (" + ", ".join(random_test(rng, depth - 1) for _ in range(rng.randint(1, 3))) + ")"


def random_command(rng: random.Random, depth: int) -> str:
    kind = rng.choice(["fileinto", "keep", "discard", "redirect", "addflag", "set", "addheader",
                       "deleteheader", "vacation", "stop", "if", "if", "reject"])
    if kind == "if" and depth > 0:
        out = f"if {random_test(rng, 3)} {{\n{random_block(rng, depth - 1)}}}"
        if rng.random() < 0.5:
            out += f" elsif {random_test(rng, 2)} {{\n{random_block(rng, depth - 1)}}}"
        if rng.random() < 0.5:
            out += f" else {{\n{random_block(rng, depth - 1)}}}"
        return out + "\n"
    simple = {
        "fileinto": f"fileinto {rng.choice(['', ':copy ', ':create '])}{sieve_string(rng)};",
        "keep": "keep;", "discard": "discard;", "stop": "stop;",
        "redirect": f"redirect {sieve_string(rng)};",
        "addflag": f"addflag {sieve_string(rng)};",
        "set": f"set {rng.choice(['', ':upper ', ':length '])}\"v{rng.randint(0, 3)}\" {sieve_string(rng)};",
        "addheader": f"addheader \"X-F{rng.randint(0, 9)}\" {sieve_string(rng)};",
        "deleteheader": f"deleteheader {sieve_string(rng)};",
        "vacation": f"vacation :days {rng.randint(0, 100)} {sieve_string(rng)};",
        "reject": f"reject {sieve_string(rng)};",
        "if": "keep;",
    }
    return simple[kind] + "\n"


def random_block(rng: random.Random, depth: int) -> str:
    return "".join(random_command(rng, depth) for _ in range(rng.randint(0, 4)))


# ---- the families -----------------------------------------------------------------------

def deep_nesting(rng: random.Random, i: int) -> FuzzCase:
    depth = rng.choice([100, 1000, 1000, 3000, 20000])
    shape = i % 5
    if shape == 0:
        script = "if true {\n" * depth + "keep;\n" + "}\n" * depth
    elif shape == 1:
        script = "if " + "anyof(" * depth + "true" + ")" * depth + " { keep; }\n"
    elif shape == 2:
        script = "if " + "not " * depth + "false { keep; }\n"
    elif shape == 3:
        script = "if " + "allof(" * depth + "true" + "\n"  # never closed
    else:
        script = 'require "fileinto";\nfileinto ' + "[" * depth + '"x"' + "]" * depth + ";\n"
    return FuzzCase(f"deep_nesting_{shape}_{depth}", script)


def huge_strings(rng: random.Random, i: int) -> FuzzCase:
    # Just under the 1 MB script limit (they compile and run) or over it (refused).
    size = rng.choice([MB - 4096, MB - 4096, 4 * MB // 3])
    shape = i % 4
    filler = "ab*?" * (size // 4)
    if shape == 0:
        script = f'require "fileinto";\nfileinto "{filler}";\n'
    elif shape == 1:
        script = f'if header :matches "subject" "{filler}" {{ discard; }}\n'
    elif shape == 2:
        script = 'require "reject";\nreject text:\n' + ("x" * 70 + "\n") * (size // 71) + ".\n;\n"
    else:
        script = "if header :is \"x\" [" + ", ".join(['"k"'] * (size // 5)) + "] { keep; }\n"
    return FuzzCase(f"huge_string_{shape}_{size}", script)


def bad_utf8(rng: random.Random, i: int) -> FuzzCase:
    bad = rng.choice([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xf0\x90\x80", b"\xed\xa0\x80", b"\xc0\xaf",
                      b"\xf8\x88\x80\x80\x80", b"\x00", bytes(rng.randrange(128, 256) for _ in range(8))])
    place = i % 4
    templates = [b'require "fileinto";\nfileinto "in' + bad + b'box";\n',
                 b"# comment " + bad + b"\nkeep;\n",
                 b"ke" + bad + b"ep;\n",
                 b'if header :contains "subject" "' + bad + b'" {\n  discard;\n}\n']
    # How a loader that does not check UTF-8 would pass the bytes on.
    return FuzzCase(f"bad_utf8_{place}_{bad.hex()}", templates[place].decode("utf-8", "surrogateescape"))


def unterminated(rng: random.Random, i: int) -> FuzzCase:
    choices = [
        'require "fileinto";\nfileinto "never ends;\nkeep;\n',
        "/* a comment that never ends\nkeep;\n",
        "if true {\n  keep;\n",
        'require ["fileinto", "reject";\n',
        "if anyof (true, false {\n keep;\n}\n",
        'require "reject";\nreject text:\nno terminating dot\n',
        "keep",
        'if header :is "a" "b" { keep; } else',
        "elsif true { keep; }\n",
        '"just a string"',
        'if header :is "a\\',
        "}}}}\n",
    ]
    script = choices[i % len(choices)]
    if rng.random() < 0.5:
        script = random_block(rng, 1) + script
    return FuzzCase(f"unterminated_{i % len(choices)}", script)


def bad_numbers(rng: random.Random, i: int) -> FuzzCase:
    number = rng.choice(["99999999999999999999999999999", "18446744073709551616", "4294967296K",
                         "9999999999999G", "0", "1e5", "-1", "007", "1KK", "1T", "1" * 400])
    templates = [
        f"if size :over {number} {{ discard; }}\n",
        f'require "vacation";\nvacation :days {number} "away";\n',
        f'require ["vacation", "vacation-seconds"];\nvacation :seconds {number} "away";\n',
        f'require "editheader";\ndeleteheader :index {number} "received";\n',
        f'require ["relational", "comparator-i;ascii-numeric"];\nif header :value "gt" '
        f':comparator "i;ascii-numeric" "x-priority" "{number}" {{ keep; }}\n',
        f'require "duplicate";\nif duplicate :seconds {number} {{ discard; }}\n',
    ]
    return FuzzCase(f"bad_number_{i % len(templates)}_{number[:20]}", templates[i % len(templates)])


def unknown_things(rng: random.Random, i: int) -> FuzzCase:
    templates = [
        "frobnicate;\n",
        'require "x-unknown-extension";\nkeep;\n',
        "if frobtest { keep; }\n",
        'require "fileinto";\nfileinto :bogus "x";\n',
        "keep :copy :copy;\n",
        "if header :is :contains \"a\" \"b\" { keep; }\n",
        "if header :comparator \"i;nonexistent\" \"a\" \"b\" { keep; }\n",
        "stop stop;\n",
        "if true keep;\n",
        "else { keep; }\n",
        "require 12;\n",
        "if size 100 { keep; }\n",
        'require "date";\nif date :zone "+9999" "date" "year" "2000" { keep; }\n',
        'require "variables";\nset "bad name" "x";\n',
        'require "imap4flags";\nif hasflag :count "zz" "x" { keep; }\n',
    ]
    return FuzzCase(f"unknown_{i % len(templates)}", random_block(rng, 1) + templates[i % len(templates)])


TOKEN_SOUP = [*COMMANDS, *TESTS, *TAGS, "{", "}", "(", ")", "[", "]", ",", ";", "text:\nx\n.\n",
              '"', "#c\n", "/*", "*/", "\\", "${", "}", "\n", " ", "1K", "0", "4294967295"]


def tag_soup(rng: random.Random, i: int) -> FuzzCase:
    count = rng.randint(1, 400)
    parts = []
    for _ in range(count):
        r = rng.random()
        if r < 0.15:
            parts.append(sieve_string(rng))
        elif r < 0.2:
            parts.append(f'require "{rng.choice(EXTENSIONS)}";\n')
        else:
            parts.append(rng.choice(TOKEN_SOUP))
    return FuzzCase(f"tag_soup_{i}", " ".join(parts))


def grammar_random(rng: random.Random, i: int) -> FuzzCase:
    header = REQUIRE_ALL if rng.random() < 0.8 else ""
    return FuzzCase(f"grammar_{i}", header + random_block(rng, rng.randint(1, 6)) * rng.randint(1, 3))


def mutations(rng: random.Random, i: int) -> FuzzCase:
    text = list(rng.choice(VALID_SEEDS))
    for _ in range(rng.randint(1, 12)):
        pos = rng.randrange(len(text))
        op = rng.random()
        if op < 0.35:
            del text[pos]
        elif op < 0.7:
            text.insert(pos, rng.choice('{}[]();,":\\*?$ \n#/abc'))
        else:
            start = rng.randrange(len(text))
            text[pos:pos] = text[start:start + rng.randint(1, 40)]
    return FuzzCase(f"mutation_{i}", "".join(text))


def include_loops(rng: random.Random, i: int) -> FuzzCase:
    head = 'require ["include", "fileinto", "variables"];\n'
    shape = i % 6
    if shape == 0:  # a includes b includes a
        return FuzzCase("include_cycle_2", head + 'include :personal "a";\n', {
            "a": head + 'include :personal "b";\nfileinto "A";\n',
            "b": head + 'include :personal "a";\nfileinto "B";\n'})
    if shape == 1:  # a script including itself
        return FuzzCase("include_self", head + 'include :personal "self";\n', {
            "self": head + 'include :personal "self";\nkeep;\n'})
    if shape == 2:  # a long chain
        n = rng.choice([50, 200])
        includes = {f"s{k}": head + f'include :personal "s{k + 1}";\n' for k in range(n)}
        includes[f"s{n}"] = head + "keep;\n"
        return FuzzCase(f"include_chain_{n}", head + 'include :personal "s0";\n', includes)
    if shape == 3:  # every script includes every other one: a dense cycle
        names = [f"n{k}" for k in range(8)]
        includes = {name: head + "".join(f'include :personal "{o}";\n' for o in names) for name in names}
        return FuzzCase("include_dense_cycle", head + 'include :personal "n0";\n', includes)
    if shape == 4:  # :once does not save a cycle through :global and :personal
        return FuzzCase("include_once_cycle", head + 'include :once :global "g";\n', {
            "g": head + 'include :once :personal "p";\n',
            "p": head + 'include :once :global "g";\nfileinto "P";\n'})
    return FuzzCase("include_missing_and_bad", head + 'include :personal "missing";\n'
                    'include :optional :personal "missing2";\ninclude :personal "broken";\n', {
                        "broken": head + "if true {\n"})


def exponential_matches(rng: random.Random, i: int) -> FuzzCase:
    stars = rng.choice([20, 40, 100])
    pattern = "*a" * stars + "b"
    shape = i % 3
    if shape == 0:  # against a long value the script builds
        script = ('require "variables";\nset "v" "' + "a" * 5000 + '";\n'
                  f'if string :matches "${{v}}" "{pattern}" {{ discard; }}\n')
    elif shape == 1:  # against a header of the test message
        script = f'if header :matches "x-long" "{pattern}" {{ discard; }}\n'
    else:
        qpattern = "?*" * stars + "b"
        script = ('require "variables";\nset "v" "' + "ab" * 3000 + '";\n'
                  f'if string :matches "${{v}}" ["{qpattern}", "{pattern}"] {{ discard; }}\n')
    return FuzzCase(f"exponential_matches_{shape}_{stars}", script)


def growing_variables(rng: random.Random, i: int) -> FuzzCase:
    doublings = rng.choice([30, 64, 200])
    head = 'require ["variables", "fileinto", "editheader"];\nset "a" "xy";\n'
    body = 'set "a" "${a}${a}";\n' * doublings
    tail = ['fileinto "${a}";\n', 'addheader "X-Big" "${a}";\n',
            'set :length "n" "${a}";\nif string :value "gt" "${n}" "0" { keep; }\n'][i % 3]
    script = head.replace('"editheader"', '"editheader", "relational"') + body + tail
    return FuzzCase(f"growing_variables_{doublings}_{i % 3}", script)


def many_actions(rng: random.Random, i: int) -> FuzzCase:
    n = rng.choice([1000, 10000])
    shape = i % 3
    if shape == 0:
        script = 'require "fileinto";\n' + "".join(f'fileinto "box{k}";\n' for k in range(n))
    elif shape == 1:
        script = "".join(f'redirect "u{k}@example.net";\n' for k in range(n))
    else:
        script = 'require "editheader";\n' + 'addheader "X-Spam" "y";\n' * n
    return FuzzCase(f"many_actions_{shape}_{n}", script)


def include_amplifier(rng: random.Random, i: int) -> FuzzCase:
    """No loop, but each level includes the next many times: work that multiplies per level."""
    levels, fanout = rng.choice([(6, 10), (8, 30)])
    head = 'require ["include", "variables", "fileinto"];\n'
    includes = {f"l{k}": head + f'include :personal "l{k + 1}";\n' * fanout for k in range(levels)}
    includes[f"l{levels}"] = head + 'set "v" "${v}x";\nif string :matches "${v}" "*x*x*x*y" { discard; }\n'
    return FuzzCase(f"include_amplifier_{levels}x{fanout}", head + 'include :personal "l0";\n', includes)


def cpu_burn(rng: random.Random, i: int) -> FuzzCase:
    """Many costly matches in a row: only a CPU bound checked during the run stops it."""
    stars = rng.choice([200, 500])
    pattern = "*a?" * stars + "b"
    head = 'require ["variables"];\nset "v" "' + "a" * 4000 + '";\n'
    body = f'if string :matches "${{v}}" "{pattern}" {{ discard; }}\n' * rng.choice([100, 400])
    return FuzzCase(f"cpu_burn_{stars}", head + body)


def many_variables(rng: random.Random, i: int) -> FuzzCase:
    n = rng.choice([300, 5000])
    head = 'require ["variables", "fileinto"];\n'
    body = "".join(f'set "v{k}" "{"x" * 100}${{v{k - 1}}}";\n' for k in range(1, n))
    return FuzzCase(f"many_variables_{n}", head + body + f'fileinto "${{v{n - 1}}}";\n')


FAMILIES: list[tuple[Callable[[random.Random, int], FuzzCase], int]] = [
    (deep_nesting, 14), (huge_strings, 8), (bad_utf8, 18), (unterminated, 18), (bad_numbers, 16),
    (unknown_things, 14), (tag_soup, 28), (grammar_random, 24), (mutations, 24), (include_loops, 6),
    (exponential_matches, 6), (growing_variables, 6), (many_actions, 6), (include_amplifier, 4),
    (cpu_burn, 4), (many_variables, 4),
]


def generate(seed: int, count: int = 200) -> list[FuzzCase]:
    """`count` cases, every family in proportion, the same ones for the same seed."""
    rng = random.Random(seed)
    total = sum(weight for _, weight in FAMILIES)
    cases: list[FuzzCase] = []
    for family, weight in FAMILIES:
        for i in range(max(1, round(count * weight / total))):
            cases.append(family(rng, i))
    cases += [grammar_random(rng, 1000 + k) for k in range(count - len(cases))]
    rng.shuffle(cases)
    return [FuzzCase(f"{k:03d}_{c.name}", c.script, c.includes) for k, c in enumerate(cases[:count])]


# ---- running a batch (in the child process) -------------------------------------------

FUZZ_MESSAGE = (
    b"From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: Re: the budget report\r\n"
    b"Date: Fri, 04 Dec 2026 09:30:00 +0100\r\nMessage-ID: <fuzz@example.org>\r\n"
    b"Received: from a by b; Fri, 04 Dec 2026 09:30:00 +0100\r\n"
    b"X-Long: " + b"a" * 5000 + b"\r\n\r\nHello budget.\r\n")


def judge(case: FuzzCase) -> dict[str, object]:
    """Compile and run one case: what happened, where, and how long it took."""
    from postoffice.filtering.sieve import SieveError, compile_script, run_script
    from postoffice.filtering.sieve.environment import SieveEnvironment
    from postoffice.filtering.sieve.message import SieveMessage

    def loader(name: str, is_global: bool) -> str | None:
        return case.includes.get(name)

    started = time.monotonic()
    report: dict[str, object] = {"name": case.name, "lines": case.script.count("\n") + 1}
    try:
        compiled = compile_script(case.script, name="fuzz", include_loader=loader)
    except SieveError as error:
        report.update(outcome="error", line=error.line, column=error.column, message=str(error)[:200])
        lines = case.script.split("\n")
        report["line_length"] = len(lines[error.line - 1]) if 1 <= error.line <= len(lines) else -1
    except BaseException as error:
        report.update(outcome="crash", where="compile", error=repr(error)[:300],
                      trace=traceback.format_exc()[-1500:])
    else:
        try:
            env = SieveEnvironment(mailbox_exists=lambda name: name == "INBOX",
                                   duplicate_seen=lambda id_, seconds: False, spam_percent=50.0)
            result = run_script(compiled, SieveMessage(FUZZ_MESSAGE, "alice@example.org", "bob@example.com"), env)
            report.update(outcome="ran", actions=len(result.actions), errors=len(result.errors))
        except BaseException as error:
            report.update(outcome="crash", where="run", error=repr(error)[:300],
                          trace=traceback.format_exc()[-1500:])
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


def run_batch(seed: int, count: int) -> Iterator[dict[str, object]]:
    for case in generate(seed, count):
        yield judge(case)


if __name__ == "__main__":
    for line in run_batch(int(sys.argv[1]), int(sys.argv[2])):
        print(json.dumps(line), flush=True)
