"""Check a parsed script against the command table and turn it into `Call` trees.

Everything a script can get wrong without running is caught here, with the line and column of
the offending node (RFC 5228 §2.10.6: such a script must not run at all):

- `require` only before any other command (§3.2), and only known capabilities;
- unknown commands and tests, or ones whose extension was not required;
- wrong arguments: kinds (string / string list / number), count, unknown or repeated tags, two
  tags of one group (":is" with ":contains"), a tag after a positional argument, a tag's
  missing argument;
- elsif/else not following if/elsif (§3.1), tests and blocks where none belong;
- comparators that are unknown or not required, ":contains"/":matches" with i;ascii-numeric
  (RFC 4790 §9.1 defines only equality and order), relational operators (RFC 5231 §4),
  ":count" with body (RFC 5173 §5), constant redirect addresses, variable names, date parts,
  time zones and header field names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from postoffice.filtering.sieve.errors import SieveError
from postoffice.filtering.sieve.signatures import CAPABILITIES, COMMANDS, IMPLIED, TESTS, Signature
from postoffice.filtering.sieve.strings import (
    VARIABLE_NAME,
    BadEncodedCharacter,
    Text,
    Varying,
    compile_text,
    decode_encoded,
    is_constant,
)
from postoffice.filtering.sieve.syntax import (
    Argument,
    CommandNode,
    NumberArg,
    StringArg,
    TagArg,
    TestNode,
)

COMPARATORS = {"i;octet": None, "i;ascii-casemap": None, "i;ascii-numeric": "comparator-i;ascii-numeric"}
RELATIONS = ("gt", "ge", "lt", "le", "eq", "ne")
DATE_PARTS = ("year", "month", "day", "date", "julian", "hour", "minute", "second", "time",
              "iso8601", "std11", "zone", "weekday")
_FIELD_NAME = re.compile(r"[!-9;-~]+\Z")  # RFC 5322 §3.6.8: printable ASCII except ":"
_ZONE = re.compile(r"[+-][0-9]{4}\Z")
# RFC 5228 §5.1: the address test is limited to header fields that hold addresses. These are
# the ones Pigeonhole accepts too, so that a script moves between servers.
ADDRESS_HEADERS = frozenset({
    "from", "sender", "to", "cc", "bcc", "reply-to", "resent-from", "resent-sender", "resent-to",
    "resent-cc", "resent-bcc", "resent-reply-to", "x-original-to", "delivered-to", "errors-to",
    "mail-followup-to", "mail-reply-to", "return-receipt-to", "apparently-to", "x-beenthere",
})
# RFC 5321 Mailbox, loosely: local@domain, the local part possibly quoted.
REDIRECT_ADDRESS = re.compile(r"[^\s<>@\"]+@[A-Za-z0-9.\-\[\]:]+\Z|\"[^\"]*\"@[A-Za-z0-9.\-\[\]:]+\Z")


@dataclass(frozen=True, slots=True)
class Match:
    """How a test compares: RFC 5228 §2.7 match type and comparator, RFC 5231 relation."""

    kind: str = ":is"
    comparator: str = "i;ascii-casemap"
    relation: str | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One validated command or test. `tags` maps a tag (":copy") to its argument or True."""

    name: str
    line: int
    column: int
    args: tuple[Any, ...] = ()
    tags: dict[str, Any] = field(default_factory=dict)
    tests: tuple[Call, ...] = ()
    block: tuple[Call, ...] | None = None
    match: Match = Match()
    # A test whose result depends only on the message as received (its header, unedited, and
    # body) and constant arguments: the runs for the other recipients of one message reuse it.
    shareable: bool = False


# The tests that read nothing but the message: not the envelope (its "to" is the recipient's),
# variables, flags, the account's spam score, the store or the clock.
SHAREABLE_TESTS = frozenset({"header", "address", "exists", "size", "body", "date"})


def _constant(value: Any) -> bool:
    """A validated argument without variables (Varying and Template are not str or tuple)."""
    kind = type(value)
    return kind in (str, int, bool) or (kind is tuple and all(type(v) is str for v in value))


def _arg_kind(arg: Argument) -> str:
    if isinstance(arg, NumberArg):
        return "a number"
    if isinstance(arg, TagArg):
        return f"tag {arg.name}"
    return "a string list" if arg.is_list else "a string"


class Validator:
    def __init__(self, capabilities: set[str]) -> None:
        self.capabilities = capabilities
        self.variables = "variables" in capabilities
        self.encoded = "encoded-character" in capabilities

    def text(self, value: str, arg: Argument) -> Text:
        if self.encoded:
            try:
                value = decode_encoded(value)
            except BadEncodedCharacter as e:
                raise SieveError(arg.line, arg.column, f"encoded character {e}") from None
        return compile_text(value, self.variables)

    def block(self, nodes: tuple[CommandNode, ...], top: bool) -> tuple[Call, ...]:
        out: list[Call] = []
        previous: str | None = None
        preamble = top
        for node in nodes:
            if node.name == "require":
                if not preamble:
                    raise SieveError(node.line, node.column, "require must come before any other command")
                previous = "require"
                continue
            preamble = False
            if node.name in ("elsif", "else") and previous not in ("if", "elsif"):
                raise SieveError(node.line, node.column, f"{node.name} without a preceding if")
            out.append(self.command(node))
            previous = node.name
        return tuple(out)

    def signature(self, name: str, line: int, column: int, test: bool) -> Signature:
        table = TESTS if test else COMMANDS
        sig = table.get(name)
        if sig is None:
            other = COMMANDS if test else TESTS
            what = "test" if test else "command"
            if name in other:
                raise SieveError(line, column, f"{name} is a {'command' if test else 'test'}, not a {what}")
            raise SieveError(line, column, f"unknown {what} '{name}'")
        if sig.capability is not None and sig.capability not in self.capabilities:
            raise SieveError(line, column, f"{name} needs require \"{sig.capability}\"")
        if name == "global" and not self.variables:
            raise SieveError(line, column, 'global needs require "variables"')
        return sig

    def command(self, node: CommandNode) -> Call:
        sig = self.signature(node.name, node.line, node.column, test=False)
        call = self.arguments(sig, node.arguments, node.tests, node.test_list, node.line, node.column)
        if sig.block and node.block is None:
            raise SieveError(node.line, node.column, f"{node.name} needs a block {{ ... }}")
        if not sig.block and node.block is not None:
            raise SieveError(node.line, node.column, f"{node.name} takes no block; end it with ';'")
        if node.block is not None:
            call = Call(call.name, call.line, call.column, call.args, call.tags, call.tests,
                        self.block(node.block, top=False), call.match)
        self.check(call)
        return call

    def test(self, node: TestNode) -> Call:
        sig = self.signature(node.name, node.line, node.column, test=True)
        call = self.arguments(sig, node.arguments, node.tests, node.test_list, node.line, node.column)
        self.check(call)
        if call.name in SHAREABLE_TESTS and all(map(_constant, call.args)) \
                and all(map(_constant, call.tags.values())):
            call = replace(call, shareable=True)
        return call

    def arguments(self, sig: Signature, arguments: tuple[Argument, ...], tests: tuple[TestNode, ...],
                  test_list: bool, line: int, column: int) -> Call:
        tags: dict[str, Any] = {}
        groups: dict[str, str] = {}
        positional: list[Argument] = []
        specs = {t.name: t for t in sig.tags}
        i = 0
        while i < len(arguments):
            arg = arguments[i]
            i += 1
            if not isinstance(arg, TagArg):
                positional.append(arg)
                continue
            spec = specs.get(arg.name)
            if spec is None:
                raise SieveError(arg.line, arg.column, f"{sig.name} has no tag {arg.name}")
            if positional:
                raise SieveError(arg.line, arg.column, f"tag {arg.name} must come before the positional arguments")
            if spec.capability is not None and spec.capability not in self.capabilities:
                raise SieveError(arg.line, arg.column, f"{arg.name} needs require \"{spec.capability}\"")
            if spec.group in groups:
                other = groups[spec.group]
                problem = "given twice" if other == arg.name else f"conflicts with {other}"
                raise SieveError(arg.line, arg.column, f"tag {arg.name} {problem}")
            groups[spec.group] = arg.name
            value: Any = True
            if spec.arg is not None:
                if i >= len(arguments) or isinstance(arguments[i], TagArg):
                    raise SieveError(arg.line, arg.column, f"tag {arg.name} needs {_article(spec.arg)}")
                value = self.value(arguments[i], spec.arg, f"the argument of {arg.name}")
                i += 1
            tags[arg.name] = value
        args = self.positional(sig, positional, line, column)
        test_calls = self.tests(sig, tests, test_list, line, column)
        match = self.match(sig, tags, line, column)
        return Call(sig.name, line, column, tuple(args), tags, test_calls, None, match)

    def value(self, arg: Argument, kind: str, what: str) -> Any:
        if kind == "number":
            if not isinstance(arg, NumberArg):
                raise SieveError(arg.line, arg.column, f"{what} must be a number, not {_arg_kind(arg)}")
            return arg.value
        if not isinstance(arg, StringArg):
            raise SieveError(arg.line, arg.column, f"{what} must be {_article(kind)}, not {_arg_kind(arg)}")
        if kind == "string":
            if arg.is_list:
                raise SieveError(arg.line, arg.column, f"{what} must be a string, not a string list")
            return self.text(arg.values[0], arg)
        texts = tuple(self.text(v, arg) for v in arg.values)
        return Varying(texts) if any(type(t) is not str for t in texts) else texts

    def positional(self, sig: Signature, given: list[Argument], line: int, column: int) -> list[Any]:
        kinds = sig.positional
        required = sum(1 for k in kinds if not k.startswith("?"))
        if len(given) < required:
            raise SieveError(line, column, f"{sig.name} needs {required} positional argument(s), got {len(given)}")
        if len(given) > len(kinds):
            extra = given[len(kinds)]
            raise SieveError(extra.line, extra.column, f"too many arguments for {sig.name}")
        optional_filled = len(given) - required
        out: list[Any] = []
        it = iter(given)
        for kind in kinds:
            if kind.startswith("?"):
                if optional_filled == 0:
                    out.append(None)
                    continue
                optional_filled -= 1
                kind = kind[1:]
            arg = next(it)
            out.append(self.value(arg, kind, f"argument {len(out) + 1} of {sig.name}"))
        return out

    def tests(self, sig: Signature, tests: tuple[TestNode, ...], test_list: bool,
              line: int, column: int) -> tuple[Call, ...]:
        if sig.tests == "none":
            if tests:
                raise SieveError(tests[0].line, tests[0].column, f"{sig.name} takes no test")
            return ()
        if not tests:
            raise SieveError(line, column, f"{sig.name} needs {'a test' if sig.tests == 'one' else 'a test list'}")
        if sig.tests == "one" and (test_list or len(tests) != 1):
            raise SieveError(tests[0].line, tests[0].column, f"{sig.name} takes one test, not a test list")
        if sig.tests == "list" and not test_list:
            raise SieveError(tests[0].line, tests[0].column, f"{sig.name} needs a test list in parentheses")
        return tuple(self.test(t) for t in tests)

    def match(self, sig: Signature, tags: dict[str, Any], line: int, column: int) -> Match:
        if not any(t.group == "match" for t in sig.tags):
            return Match()
        comparator = tags.get(":comparator", "i;ascii-casemap")
        if not is_constant(comparator):
            raise SieveError(line, column, "the comparator name must be a constant string")
        comparator = comparator.lower()
        if comparator not in COMPARATORS:
            raise SieveError(line, column, f"unknown comparator {comparator!r}")
        needed = COMPARATORS[comparator]
        if needed is not None and needed not in self.capabilities:
            raise SieveError(line, column, f"comparator {comparator} needs require \"{needed}\"")
        kind, relation = ":is", None
        for name in (":is", ":contains", ":matches", ":count", ":value"):
            if name in tags:
                kind = name
        if kind in (":count", ":value"):
            rel = tags[kind]
            if not is_constant(rel) or rel.lower() not in RELATIONS:
                raise SieveError(line, column, f"{kind} needs one of {', '.join(RELATIONS)}")
            relation = rel.lower()
        if comparator == "i;ascii-numeric" and kind in (":contains", ":matches"):
            raise SieveError(line, column, f"comparator i;ascii-numeric cannot do {kind} (RFC 4790 §9.1)")
        if kind == ":count" and sig.name == "body":
            raise SieveError(line, column, "body cannot use :count (RFC 5173 §5)")
        return Match(kind, comparator, relation)

    def check(self, call: Call) -> None:
        """Checks of argument values that a signature cannot express."""
        name, line, column = call.name, call.line, call.column
        if name == "require":
            return
        if name == "redirect":
            address = call.args[0]
            if is_constant(address) and not REDIRECT_ADDRESS.match(address.strip().strip("<>")):
                raise SieveError(line, column, f"redirect needs a valid address, not {address!r}")
        elif name == "set" or (name in ("setflag", "addflag", "removeflag") and call.args[0] is not None):
            var = call.args[0]
            if not is_constant(var) or not VARIABLE_NAME.match(var):
                raise SieveError(line, column, f"invalid variable name {_source(var)!r}")
            namespace, dot, _ = var.partition(".")
            if dot and not (namespace.lower() == "global" and "include" in self.capabilities):
                raise SieveError(line, column, f"variable {var!r} is in an unknown namespace {namespace!r}")
        elif name == "global":
            for var in call.args[0]:
                if not is_constant(var) or not VARIABLE_NAME.match(var) or "." in var:
                    raise SieveError(line, column, f"invalid global variable name {_source(var)!r}")
        elif name == "include":
            script = call.args[0]
            if not is_constant(script):
                raise SieveError(line, column, "the included script's name must be a constant string")
            if not script or "/" in script or script.startswith("."):
                raise SieveError(line, column, f"invalid script name {script!r}")
        elif name in ("addheader", "deleteheader"):
            field_name = call.args[0]
            if is_constant(field_name) and not _FIELD_NAME.match(field_name):
                raise SieveError(line, column, f"invalid header field name {field_name!r}")
            if name == "deleteheader" and ":last" in call.tags and ":index" not in call.tags:
                raise SieveError(line, column, "deleteheader :last needs :index")
        elif name in ("date", "currentdate"):
            part = call.args[-2]
            if is_constant(part) and part.lower() not in DATE_PARTS:
                raise SieveError(line, column, f"unknown date part {part!r}")
            zone = call.tags.get(":zone")
            if isinstance(zone, str) and not _ZONE.match(zone):
                raise SieveError(line, column, f"invalid time zone {zone!r} (expected +hhmm or -hhmm)")
        elif name == "envelope":
            for part in call.args[0]:
                if is_constant(part) and part.lower() not in ("from", "to", "auth"):
                    raise SieveError(line, column, f"unknown envelope part {part!r}")
        elif name == "address":
            for header in call.args[0]:
                if is_constant(header) and header.lower() not in ADDRESS_HEADERS:
                    raise SieveError(line, column, f"{header!r} is not an address header field (RFC 5228 §5.1)")
        elif name == "size" and not call.tags:
            raise SieveError(line, column, "size needs :over or :under")


def _article(kind: str) -> str:
    return {"string": "a string", "strings": "a string list", "number": "a number"}[kind]


def _source(value: Text) -> str:
    return value if isinstance(value, str) else value.source


def capabilities_of(nodes: tuple[CommandNode, ...]) -> set[str]:
    """The capabilities the script's leading require commands ask for; unknown ones refused."""
    wanted: set[str] = set()
    for node in nodes:
        if node.name != "require":
            break
        if node.tests or node.block is not None:
            raise SieveError(node.line, node.column, "require takes a string list and ';'")
        if len(node.arguments) != 1 or not isinstance(node.arguments[0], StringArg):
            raise SieveError(node.line, node.column, "require needs one string list")
        for capability in node.arguments[0].values:
            # Capability names are case-sensitive (RFC 5228 §6: registered "exactly as written";
            # Pigeonhole refuses "FILEINTO" too).
            if capability not in CAPABILITIES:
                raise SieveError(node.line, node.column, f"unsupported extension {capability!r}")
            wanted.add(capability)
            if capability in IMPLIED:
                wanted.add(IMPLIED[capability])
    return wanted
