"""The generic Sieve syntax tree (RFC 5228 §8.2), before any command is given a meaning.

`parse(tokens)` builds it; every node keeps the line and column of its first token. Nesting
(blocks inside blocks, tests inside tests) is bounded by `max_depth` so that a hostile script
is refused with a position instead of exhausting Python's recursion limit.
"""
from __future__ import annotations

from dataclasses import dataclass

from postoffice.filtering.sieve.errors import SieveError
from postoffice.filtering.sieve.lexer import EOF, IDENT, NUMBER, PUNCT, STRING, TAG, Token


@dataclass(frozen=True, slots=True)
class StringArg:
    values: tuple[str, ...]
    is_list: bool  # written with brackets: ["a"] is a list even with one element
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class NumberArg:
    value: int
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class TagArg:
    name: str  # with its colon, lowercase
    line: int
    column: int


Argument = StringArg | NumberArg | TagArg


@dataclass(frozen=True, slots=True)
class TestNode:
    name: str
    arguments: tuple[Argument, ...]
    tests: tuple[TestNode, ...]
    test_list: bool  # tests were written in parentheses
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class CommandNode:
    name: str
    arguments: tuple[Argument, ...]
    tests: tuple[TestNode, ...]
    test_list: bool
    block: tuple[CommandNode, ...] | None  # None: ended by ";"
    line: int
    column: int


def _describe(token: Token) -> str:
    if token.kind == EOF:
        return "the end of the script"
    if token.kind == STRING:
        return "a string"
    return f"{token.kind} {token.value!r}" if token.kind != PUNCT else repr(token.value)


class _Parser:
    def __init__(self, tokens: list[Token], max_depth: int) -> None:
        self.tokens = tokens
        self.pos = 0
        self.max_depth = max_depth

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def fail(self, token: Token, expected: str) -> SieveError:
        return SieveError(token.line, token.column, f"expected {expected}, found {_describe(token)}")

    def deeper(self, token: Token, depth: int) -> int:
        if depth >= self.max_depth:
            raise SieveError(token.line, token.column, f"nesting deeper than {self.max_depth} levels")
        return depth + 1

    def commands(self, depth: int, closing: str | None) -> tuple[CommandNode, ...]:
        out: list[CommandNode] = []
        while True:
            token = self.peek()
            if closing is None and token.kind == EOF:
                return tuple(out)
            if closing is not None and token.kind == PUNCT and token.value == closing:
                self.take()
                return tuple(out)
            if token.kind != IDENT:
                raise self.fail(token, "a command" if closing is None else "a command or '}'")
            out.append(self.command(depth))

    def command(self, depth: int) -> CommandNode:
        name = self.take()
        arguments, tests, test_list = self.arguments(depth)
        end = self.take()
        if end.kind == PUNCT and end.value == ";":
            block = None
        elif end.kind == PUNCT and end.value == "{":
            block = self.commands(self.deeper(end, depth), "}")
        else:
            raise self.fail(end, "';' or '{'")
        return CommandNode(str(name.value), arguments, tests, test_list, block, name.line, name.column)

    def arguments(self, depth: int) -> tuple[tuple[Argument, ...], tuple[TestNode, ...], bool]:
        args: list[Argument] = []
        while True:
            token = self.peek()
            if token.kind == STRING:
                self.take()
                args.append(StringArg((str(token.value),), False, token.line, token.column))
            elif token.kind == NUMBER:
                self.take()
                args.append(NumberArg(int(token.value), token.line, token.column))
            elif token.kind == TAG:
                self.take()
                args.append(TagArg(str(token.value), token.line, token.column))
            elif token.kind == PUNCT and token.value == "[":
                args.append(self.string_list())
            else:
                break
        token = self.peek()
        if token.kind == IDENT:
            return tuple(args), (self.test(self.deeper(token, depth)),), False
        if token.kind == PUNCT and token.value == "(":
            self.take()
            inner = self.deeper(token, depth)
            tests = [self.test(inner)]
            while True:
                sep = self.take()
                if sep.kind == PUNCT and sep.value == ")":
                    return tuple(args), tuple(tests), True
                if not (sep.kind == PUNCT and sep.value == ","):
                    raise self.fail(sep, "',' or ')' in the test list")
                tests.append(self.test(inner))
        return tuple(args), (), False

    def string_list(self) -> StringArg:
        open_ = self.take()
        values: list[str] = []
        while True:
            token = self.take()
            if token.kind != STRING:
                raise self.fail(token, "a string in the string list")
            values.append(str(token.value))
            sep = self.take()
            if sep.kind == PUNCT and sep.value == "]":
                return StringArg(tuple(values), True, open_.line, open_.column)
            if not (sep.kind == PUNCT and sep.value == ","):
                raise self.fail(sep, "',' or ']' in the string list")

    def test(self, depth: int) -> TestNode:
        name = self.take()
        if name.kind != IDENT:
            raise self.fail(name, "a test")
        arguments, tests, test_list = self.arguments(depth)
        return TestNode(str(name.value), arguments, tests, test_list, name.line, name.column)


def parse(tokens: list[Token], max_depth: int = 32) -> tuple[CommandNode, ...]:
    """The script's top-level commands; raises SieveError with the position of the problem."""
    return _Parser(tokens, max_depth).commands(0, None)
