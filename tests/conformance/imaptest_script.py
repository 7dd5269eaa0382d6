"""Parser for Dovecot imaptest scripted tests (the format of ``scripted_test.md``).

A script is a header (``key: value`` lines up to the first empty line) followed by command
groups.  This module turns a script file into typed objects (:class:`Script`,
:class:`CommandGroup`, :class:`Command`, :class:`UntaggedExpectation`) and provides the IMAP
argument model and tokenizer that both the expectations and the server's responses are parsed
with (:func:`parse_args`), plus the mbox reader for the messages a script appends.

Byte handling: files and wire data are decoded as latin-1, so every ``str`` here maps 1:1 onto
the original bytes (8-bit and NUL bytes survive; ``.encode("latin-1")`` gives them back).

Format rules implemented (see ``scripted_test.md``; where the document is silent the behaviour
follows what imaptest does, noted inline):

* header keys ``capabilities``, ``connections``, ``state``, ``messages``,
  ``ignore_extra_untagged`` and ``user N`` (``user 2: $user2``: connection 2 logs in as a second
  user); an unknown key is an error, ``#`` lines are comments everywhere;
* commands in three forms: ``[conn] ok|no|bad|"" <command>`` (method 1),
  ``[conn] <command>`` ... ``[conn] ok|no|bad|"" [prefix]`` (method 2), and
  ``[conn] tagN <command>`` ... ``[conn] tagN ok ...`` (method 3, pipelining: every command
  until all the group's replies are given is sent at once, on one connection);
* expected untagged replies: ``* reply`` must appear, ``! reply`` must not appear,
  ``? reply`` may appear (it is neither required nor an error);
* ``{{{`` at the end of a line starts a multi-line literal that ends at a line starting with
  ``}}}`` (the rest of that line continues the logical line, and may open another ``{{{``).
  Lines inside are joined with CRLF; for ``~{{{`` (literal8) with LF and each line keeps the
  bytes it had in the file (so CRs in the file are kept).  The line break before ``}}}`` is not
  part of the literal;
* ``$!`` list directives (``ordered``, ``unordered[=n]``, ``noextra``, ``extra``,
  ``ignore=e``, ``ban=e``) and the documented per-reply defaults (FETCH, FETCH FLAGS, LIST,
  LSUB, STATUS), added only to lists that carry no directive of their own;
* group directives ``!ordered``, ``!sleep <duration>``, ``!output <text>``;
  preprocessing ``!ifenv``/``!ifnenv``/``!else``/``!endif``;
* a LOGOUT on connection 1 is appended when the script has neither a LOGOUT command nor an
  expected ``* BYE`` (as imaptest does; it counts as a command group).
"""
from __future__ import annotations

import datetime as _dt
import enum
import functools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "NIL",
    "Atom",
    "Command",
    "CommandGroup",
    "Existence",
    "ImapList",
    "ImapSyntaxError",
    "Literal",
    "MboxMessage",
    "Nil",
    "QuotedString",
    "Script",
    "ScriptError",
    "StartState",
    "UntaggedExpectation",
    "Value",
    "astring_text",
    "format_args",
    "index_capabilities",
    "is_astring",
    "load_script",
    "parse_args",
    "parse_script",
    "read_mbox",
    "required_capabilities",
    "script_paths",
]

MAX_CONNECTIONS = 100


# --------------------------------------------------------------------------------------------
# IMAP argument model and tokenizer


@dataclass(frozen=True, slots=True)
class Atom:
    text: str


@dataclass(frozen=True, slots=True)
class QuotedString:
    text: str


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal (``{n}``) or, with ``binary``, a literal8 (``~{n}``); ``data`` is latin-1."""

    data: str
    binary: bool = False


@dataclass(frozen=True, slots=True)
class Nil:
    pass


NIL = Nil()


@dataclass(frozen=True, slots=True)
class ImapList:
    """A parenthesised list.  ``directives`` holds the ``$!`` directives of an expected list
    (e.g. ``("unordered=2",)``, without the ``$!``); it is always empty for server data."""

    items: tuple[Value, ...]
    directives: tuple[str, ...] = ()


Value = Atom | QuotedString | Literal | Nil | ImapList


class ImapSyntaxError(ValueError):
    """Text that does not tokenize as IMAP arguments."""


_LITERAL_RE = re.compile(r"(~?)\{(\d+)(\+?)\}\r?\n")


def parse_args(text: str) -> tuple[Value, ...]:
    """Tokenize IMAP arguments the way Dovecot's parser does with ATOM_ALLCHARS.

    Atoms end at a space or line break (and at ``)`` inside a list), so ``BODY[HEADER.FIELDS
    (FROM)]`` becomes three arguments: an atom, a list and the atom ``]``.  ``NIL`` (any case)
    is :data:`NIL`.  ``{n}``/``~{n}`` followed by a line break introduces a literal whose ``n``
    characters follow inline.  A quoted string may span lines; backslash escapes one character.
    """
    stack: list[list[Value]] = [[]]
    pos = 0
    end = len(text)
    while pos < end:
        c = text[pos]
        if c == " ":
            pos += 1
        elif c in "\r\n":
            if text[pos:].strip("\r\n"):
                raise ImapSyntaxError(f"data after line break at offset {pos}")
            break
        elif c == "(":
            stack.append([])
            pos += 1
        elif c == ")":
            if len(stack) == 1:
                raise ImapSyntaxError(f"unexpected ')' at offset {pos}")
            items = stack.pop()
            stack[-1].append(ImapList(tuple(items)))
            pos += 1
        elif c == '"':
            pos += 1
            buf: list[str] = []
            while True:
                if pos >= end:
                    raise ImapSyntaxError("unterminated quoted string")
                ch = text[pos]
                if ch == "\\":
                    if pos + 1 >= end:
                        raise ImapSyntaxError("unterminated quoted string")
                    buf.append(text[pos + 1])
                    pos += 2
                elif ch == '"':
                    pos += 1
                    break
                else:
                    buf.append(ch)
                    pos += 1
            stack[-1].append(QuotedString("".join(buf)))
        elif c == "{" or (c == "~" and text.startswith("{", pos + 1)):
            m = _LITERAL_RE.match(text, pos)
            if m is None:
                if c == "~":
                    pos = _read_atom(text, pos, stack)
                    continue
                raise ImapSyntaxError(f"broken literal at offset {pos}")
            size = int(m.group(2))
            start = m.end()
            if start + size > end:
                raise ImapSyntaxError("literal longer than the data")
            stack[-1].append(Literal(text[start : start + size], binary=bool(m.group(1))))
            pos = start + size
        else:
            pos = _read_atom(text, pos, stack)
    if len(stack) != 1:
        raise ImapSyntaxError("unclosed list")
    return tuple(stack[0])


def _read_atom(text: str, pos: int, stack: list[list[Value]]) -> int:
    start = pos
    inside_list = len(stack) > 1
    end = len(text)
    while pos < end:
        ch = text[pos]
        if ch in " \r\n" or (ch == ")" and inside_list):
            break
        pos += 1
    word = text[start:pos]
    stack[-1].append(NIL if word.upper() == "NIL" else Atom(word))
    return pos


def is_astring(value: Value) -> bool:
    return isinstance(value, Atom | QuotedString | Literal)


def astring_text(value: Value) -> str | None:
    """The string content of an atom, quoted string or literal; None for NIL and lists."""
    if isinstance(value, Atom | QuotedString):
        return value.text
    if isinstance(value, Literal):
        return value.data
    return None


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_args(args: Sequence[Value], *, max_literal: int = 200) -> str:
    """Render arguments for reports (literal contents shown inline, long ones shortened)."""
    out: list[str] = []
    for arg in args:
        if isinstance(arg, Atom):
            out.append(arg.text)
        elif isinstance(arg, QuotedString):
            out.append(_quote(arg.text))
        elif isinstance(arg, Literal):
            data = arg.data
            if len(data) > max_literal:
                data = data[:max_literal] + f"...<{len(arg.data) - max_literal} more>"
            prefix = "~" if arg.binary else ""
            out.append(f"{prefix}{{{len(arg.data)}}}{data!r}")
        elif isinstance(arg, Nil):
            out.append("NIL")
        else:
            inner = [f"$!{d}" for d in arg.directives]
            body = format_args(arg.items, max_literal=max_literal)
            if body:
                inner.append(body)
            out.append("(" + " ".join(inner) + ")")
    return " ".join(out)


# --------------------------------------------------------------------------------------------
# Script model


class StartState(enum.IntEnum):
    """``state:`` header; each state also does the setup of the ones before it."""

    NONAUTH = 0  # connect only
    AUTH = 1  # log in, delete the test mailboxes
    CREATED = 2  # ... create $mailbox
    APPENDED = 3  # ... append the mbox messages
    SELECTED = 4  # ... every connection SELECTs $mailbox (the default)


class Existence(enum.Enum):
    MUST = "*"
    MUST_NOT = "!"
    MAY = "?"


@dataclass(frozen=True, slots=True)
class UntaggedExpectation:
    existence: Existence
    args: tuple[Value, ...]
    line: int
    source: str  # the line as written (after "* "), for reports


@dataclass(slots=True)
class Command:
    """One command.  ``parts`` is the command text (variables not yet expanded) with the
    payload of each multi-line literal as a :class:`Literal` in place; ``expected`` is the
    expected tagged reply (``(Atom("ok"),)``, ``(Atom("no"), Atom("[trycreate]"))``, and
    ``(Atom(""),)`` for ``""``, which accepts OK or NO)."""

    line: int
    parts: tuple[str | Literal, ...]
    script_tag: int = 0  # N of "tagN" (method 3), else 0
    expected: tuple[Value, ...] | None = None

    @property
    def text(self) -> str:
        """The command as written, literals shown as ``{n}``."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, Literal):
                out.append(("~" if part.binary else "") + f"{{{len(part.data)}}}")
            else:
                out.append(part)
        return "".join(out)

    @property
    def expected_text(self) -> str:
        if self.expected is None:
            return "<none>"
        text = format_args(self.expected)
        return text if text else '""'


@dataclass(slots=True)
class CommandGroup:
    """Commands sent together on one connection (one, or several pipelined), the untagged
    replies expected while they run, and group directives.  A group with no commands is a
    banner check (its expectations are matched against the greeting)."""

    connection: int  # 1-based
    line: int
    commands: list[Command] = field(default_factory=list)
    untagged: list[UntaggedExpectation] = field(default_factory=list)
    ordered: bool = False
    sleep_ms: int = 0
    output: list[str] = field(default_factory=list)
    expects_bye: bool = False
    auto_logout: bool = False

    @property
    def replies_pending(self) -> int:
        return sum(1 for c in self.commands if c.expected is None)


@dataclass(slots=True)
class Script:
    path: Path
    name: str
    capabilities: tuple[str, ...]
    has_capabilities_header: bool  # imaptest counts such scripts as "extension" tests
    connections: int
    state: StartState
    ignore_extra_untagged: bool
    messages: int | None  # None = every message of the mbox ("all"); N wraps around
    mbox_path: Path | None
    users: dict[int, str]  # connection -> user template from "user N:" headers
    groups: list[CommandGroup]

    @property
    def requires_second_user(self) -> bool:
        return any(v in ("$user2", "${user2}") for v in self.users.values())

    @property
    def command_count(self) -> int:
        return sum(len(g.commands) for g in self.groups)


class ScriptError(ValueError):
    """A script that does not follow the format."""

    def __init__(self, path: Path | str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


# --------------------------------------------------------------------------------------------
# Directives


_KNOWN_DIRECTIVES = ("ordered", "noextra", "extra")


def _validate_directive(text: str) -> None:
    body = text[2:]
    if body.startswith("unordered"):
        rest = body[len("unordered") :]
        if rest == "" or (rest.startswith("=") and rest[1:].isdigit() and int(rest[1:]) > 0):
            return
        raise ValueError("Broken $!unordered directive")
    if body in _KNOWN_DIRECTIVES or body.startswith(("ignore=", "ban=")):
        return
    raise ValueError(f"Unknown directive: {body}")


@dataclass(slots=True)
class _ListCtx:
    parent: _ListCtx | None
    reply_name: str
    prev_atom: str | None = None
    parent_chain_idx: int = 0
    chain_count: int = 1


def _default_directives(ctx: _ListCtx) -> tuple[str, ...]:
    """The documented defaults, placed exactly where imaptest places them."""
    parent = ctx.parent
    if parent is None:
        return ()
    name = ctx.reply_name
    top_child = parent.parent is None and parent.parent_chain_idx == 0
    if name in ("list", "lsub"):
        if top_child and ctx.parent_chain_idx == 1:  # list (flags) sep name
            return ("unordered",)
    elif name == "status":
        if top_child and ctx.parent_chain_idx == 2:  # status box (items)
            return ("unordered=2",)
    elif name == "fetch":
        if top_child and ctx.parent_chain_idx == 2:  # n fetch (items)
            return ("unordered=2",)
        grand = parent.parent
        if (
            grand is not None
            and grand.parent is None
            and grand.parent_chain_idx == 0
            and parent.parent_chain_idx == 2
            and ctx.prev_atom == "flags"
        ):  # n fetch (... flags (...))
            return (
                "unordered",
                "noextra",
                "ignore=\\recent",
                "ignore=$HasAttachment",
                "ignore=$HasNoAttachment",
            )
    return ()


def _apply_directives(items: Sequence[Value], ctx: _ListCtx) -> tuple[tuple[Value, ...], tuple[str, ...]]:
    """Split leading ``$!`` atoms off ``items``, add defaults, recurse into sublists."""
    directives: list[str] = []
    idx = 0
    while idx < len(items):
        item = items[idx]
        if not (isinstance(item, Atom) and item.text.startswith("$!")):
            break
        _validate_directive(item.text)
        body = item.text[2:]
        if body.startswith("unordered="):
            ctx.chain_count = int(body[len("unordered=") :])
        directives.append(body)
        idx += 1
    explicit = bool(directives)
    if not explicit:
        directives = list(_default_directives(ctx))
    rest = list(items[idx:])
    chain = _chain_size(directives)
    if len(rest) % chain != 0:
        raise ValueError(f"Invalid list argument count, chain size={chain}")

    # imaptest counts list positions including the directive atoms it placed in front
    offset = len(directives)
    out: list[Value] = []
    prev_atom: str | None = None
    for i, item in enumerate(rest):
        pos = i + offset
        if isinstance(item, Atom):
            prev_atom = item.text.lower()
        if isinstance(item, ImapList):
            sub = _ListCtx(
                parent=ctx,
                reply_name=ctx.reply_name.lower(),
                prev_atom=prev_atom,
                parent_chain_idx=pos if ctx.chain_count == 1 else pos % ctx.chain_count,
            )
            sub_items, sub_dirs = _apply_directives(item.items, sub)
            out.append(ImapList(sub_items, sub_dirs))
        else:
            out.append(item)
    return tuple(out), tuple(directives)


def _chain_size(directives: Sequence[str]) -> int:
    chain = 1
    for d in directives:
        if d.startswith("unordered="):
            chain = int(d[len("unordered=") :])
    return chain


def reply_name(args: Sequence[Value]) -> str:
    """``FETCH`` for ``1 FETCH (...)``, ``LIST`` for ``LIST (...) ...`` (as imaptest finds it)."""
    if not args or not isinstance(args[0], Atom):
        return ""
    first = args[0].text
    if first.startswith("$") or first[:1].isdigit():
        if len(args) > 1 and isinstance(args[1], Atom):
            return args[1].text
        return ""
    return first


def parse_expectation(text: str) -> tuple[Value, ...]:
    """Parse an expected reply (the text after ``* ``/``! ``/``? ``) with directives applied."""
    args = parse_args(text)
    ctx = _ListCtx(parent=None, reply_name=reply_name(args))
    items, directives = _apply_directives(args, ctx)
    if directives:
        raise ValueError("$! directives are only allowed at the start of a list")
    return items


# --------------------------------------------------------------------------------------------
# Script parser


_REPLY_WORDS = {"ok": "ok", "no": "no", "bad": "bad", '""': ""}
_TAG_RE = re.compile(r"tag(\d+)$", re.IGNORECASE)
_UNTAGGED_PREFIX = {"* ": Existence.MUST, "! ": Existence.MUST_NOT, "? ": Existence.MAY}


def _first_word(text: str) -> str:
    return text.split(" ", 1)[0]


def _get_cmd_reply(text: str) -> tuple[int, str | None, str]:
    """``[tagN] [ok|no|bad|""] rest`` -> (tag, reply word or None, rest)."""
    tag = 0
    word = _first_word(text)
    m = _TAG_RE.match(word)
    if m and int(m.group(1)) > 0 and " " in text:
        tag = int(m.group(1))
        text = text.split(" ", 1)[1]
        word = _first_word(text)
    reply = _REPLY_WORDS.get(word.lower())
    if reply is not None:
        text = text[len(word) :]
        if text.startswith(" "):
            text = text[1:]
    return tag, reply, text


def _uint_prefix(text: str) -> int | None:
    word = _first_word(text)
    return int(word) if word.isdigit() else None


def _parse_interval_ms(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*(ms|msec|msecs|s|sec|secs|m|min|mins)?\s*", text)
    if m is None:
        raise ValueError(f"Invalid !sleep value {text}")
    value = int(m.group(1))
    unit = m.group(2) or "s"
    return value * {"ms": 1, "msec": 1, "msecs": 1, "s": 1000, "sec": 1000, "secs": 1000,
                    "m": 60000, "min": 60000, "mins": 60000}[unit]


@dataclass(slots=True)
class _LogicalLine:
    number: int
    parts: list[str | Literal]

    @property
    def head(self) -> str:
        first = self.parts[0]
        return first if isinstance(first, str) else ""

    def wire(self) -> str:
        """Text with literals in ``{n}\\r\\n<data>`` form, for :func:`parse_args`."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, Literal):
                out.append(("~" if part.binary else "") + f"{{{len(part.data)}}}\r\n" + part.data)
            else:
                out.append(part)
        return "".join(out)

    def drop_head(self, count: int) -> _LogicalLine:
        head = self.head[count:]
        return _LogicalLine(self.number, [head, *self.parts[1:]])


def _logical_lines(path: Path | str, data: str) -> Iterator[tuple[_LogicalLine, bool]]:
    """Yield (logical line, is_header).  Comments and empty lines are consumed here."""
    if data and not data.endswith("\n"):
        raise ScriptError(path, data.count("\n") + 1, "Last line doesn't end with LF")
    raw_lines = data.split("\n")[:-1] if data else []
    header = True
    parts: list[str | Literal] | None = None  # inside a multi-line literal
    buf: list[str] = []
    binary = False
    start_line = 0
    for number, line in enumerate(raw_lines, start=1):
        if parts is not None:
            if not line.startswith("}}}"):
                buf.append(line)
                continue
            joiner = "\n" if binary else "\r\n"
            parts.append(Literal(joiner.join(buf), binary=binary))
            rest = line[3:]
            if rest.endswith("{{{"):
                binary = rest.endswith("~{{{")
                parts.append(rest[: -4 if binary else -3])
                buf = []
                continue
            parts.append(rest)
            merged = _merge_text(parts)
            parts = None
            yield _LogicalLine(start_line, merged), header
            continue
        start_line = number
        if line == "":
            header = False
            continue
        if line.startswith("#"):
            continue
        if line.endswith("{{{"):
            binary = line.endswith("~{{{")
            parts = [line[: -4 if binary else -3]]
            buf = []
            continue
        yield _LogicalLine(number, [line]), header
    if parts is not None:
        raise ScriptError(path, start_line, "Multiline literal not ended")


def _merge_text(parts: list[str | Literal]) -> list[str | Literal]:
    merged: list[str | Literal] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + part
        elif isinstance(part, str) and part == "" and merged:
            continue
        else:
            merged.append(part)
    if not merged or not isinstance(merged[0], str):
        merged.insert(0, "")
    return merged


@dataclass(slots=True)
class _IfEnv:
    line: int
    saved_skip: bool
    else_seen: bool = False


class _Parser:
    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.capabilities: tuple[str, ...] = ()
        self.has_capabilities_header = False
        self.connections = 1
        self.state = StartState.SELECTED
        self.ignore_extra_untagged = True
        self.messages: int | None = None
        self.users: dict[int, str] = {}
        self.groups: list[CommandGroup] = []
        self.group: CommandGroup | None = None
        self.ifenv: list[_IfEnv] = []
        self.skip = False

    def error(self, line: int, message: str) -> ScriptError:
        return ScriptError(self.path, line, message)

    # header ---------------------------------------------------------------------------------

    def header_line(self, ll: _LogicalLine) -> None:
        line = ll.wire()
        if ":" not in line:
            raise self.error(ll.number, "Missing ':'")
        key, value = line.split(":", 1)
        key = key.rstrip(" ").lower()
        value = value.lstrip(" ")
        if key == "capabilities":
            self.capabilities = tuple(value.split())
            self.has_capabilities_header = True
        elif key == "connections":
            m = re.match(r"\d+", value)
            count = int(m.group(0)) if m else 0
            if count == 0 or count > MAX_CONNECTIONS:
                raise self.error(ll.number, "Too many connections")
            self.connections = count
        elif key == "ignore_extra_untagged":
            self.ignore_extra_untagged = value.startswith("y")
        elif key.startswith("user ") and key[5:].isdigit() and int(key[5:]) > 0:
            idx = int(key[5:])
            if idx > MAX_CONNECTIONS:
                raise self.error(ll.number, "Too many connections")
            self.users[idx] = value
        elif key == "messages":
            if value == "all":
                self.messages = None
            else:
                m = re.match(r"\d+", value)
                self.messages = int(m.group(0)) if m else 0
        elif key == "state":
            try:
                self.state = StartState[value.strip().upper()]
            except KeyError:
                raise self.error(ll.number, "Unknown state value") from None
        else:
            raise self.error(ll.number, "Unknown setting")

    # commands -------------------------------------------------------------------------------

    def preprocess(self, ll: _LogicalLine) -> bool:
        """Handle !ifenv/!ifnenv/!else/!endif; return True when the line is consumed."""
        line = ll.head if len(ll.parts) == 1 else ""
        for prefix, negate in (("!ifenv ", False), ("!ifnenv ", True)):
            if line.startswith(prefix):
                name = line[len(prefix) :]
                missing = name not in self.env
                if negate:
                    missing = not missing
                self.ifenv.append(_IfEnv(ll.number, self.skip))
                if missing:
                    self.skip = True
                return True
        if line == "!else":
            if not self.ifenv:
                raise self.error(ll.number, "!else without !ifenv")
            top = self.ifenv[-1]
            if top.else_seen:
                raise self.error(ll.number, "!else already seen")
            top.else_seen = True
            if not top.saved_skip:
                self.skip = not self.skip
            return True
        if line == "!endif":
            if not self.ifenv:
                raise self.error(ll.number, "!endif without !ifenv")
            self.skip = self.ifenv.pop().saved_skip
            return True
        return self.skip

    def untagged(self, group: CommandGroup, ll: _LogicalLine, existence: Existence) -> None:
        body = ll.drop_head(2)
        try:
            args = parse_expectation(body.wire())
        except (ImapSyntaxError, ValueError) as exc:
            raise self.error(ll.number, str(exc)) from None
        name = reply_name(args)
        if name[:3].lower() == "bye":
            if existence is Existence.MUST:
                group.expects_bye = True
            elif existence is Existence.MAY:
                raise self.error(ll.number, "? BYE not currently supported")
        group.untagged.append(
            UntaggedExpectation(existence, args, ll.number, _display(body))
        )

    def finish_reply(self, group: CommandGroup, ll: _LogicalLine, tag: int, text: _LogicalLine) -> None:
        cmd = next((c for c in group.commands if c.script_tag == tag), None)
        if cmd is None:
            raise self.error(ll.number, "Reply for unknown tag")
        if cmd.expected is not None:
            raise self.error(ll.number, "Command already has a reply")
        try:
            args = parse_args(text.wire())
        except ImapSyntaxError as exc:
            raise self.error(ll.number, str(exc)) from None
        if tag:
            args = args[1:]  # drop "tagN"
        if args and isinstance(args[0], QuotedString) and args[0].text == "":
            args = (Atom(""), *args[1:])
        cmd.expected = tuple(args)

    def command_line(self, ll: _LogicalLine) -> None:
        if self.preprocess(ll):
            return
        line = ll.head
        group = self.group
        if group is not None:
            if len(ll.parts) == 1:
                if line.startswith("!sleep "):
                    try:
                        group.sleep_ms = _parse_interval_ms(line[7:])
                    except ValueError as exc:
                        raise self.error(ll.number, str(exc)) from None
                    return
                if line.startswith("!output "):
                    group.output.append(line[8:])
                    return
                if line == "!ordered":
                    group.ordered = True
                    return
            existence = _UNTAGGED_PREFIX.get(line[:2])
            if existence is not None:
                self.untagged(group, ll, existence)
                return
            if group.replies_pending > 0:
                rest = ll
                conn = 0
                if self.connections > 1:
                    n = _uint_prefix(line)
                    if n is not None and n > 0:
                        conn = n
                        rest = ll.drop_head(line.index(" ") + 1) if " " in line else ll.drop_head(len(line))
                tag, reply, _ = _get_cmd_reply(rest.head)
                if reply is not None:
                    if self.connections > 1:
                        if conn == 0:
                            raise self.error(ll.number, "Missing client index")
                        if conn != group.connection:
                            raise self.error(ll.number, "Reply for wrong connection")
                    self.finish_reply(group, ll, tag, rest)
                    return

        if group is None or group.replies_pending == 0:
            group = CommandGroup(connection=1, line=ll.number)
            self.groups.append(group)
            self.group = group

        rest = ll
        if self.connections > 1:
            n = _uint_prefix(line)
            if n is None or n == 0:
                raise self.error(ll.number, "Missing client index")
            if n > MAX_CONNECTIONS:
                raise self.error(ll.number, "Too many connections")
            if group.commands and group.connection != n:
                raise self.error(ll.number, "All pipelined commands must use the same connection")
            group.connection = n
            self.connections = max(self.connections, n)
            rest = ll.drop_head(line.index(" ") + 1) if " " in line else ll.drop_head(len(line))

        tag, reply, remaining = _get_cmd_reply(rest.head)
        rest = _LogicalLine(ll.number, [remaining, *rest.parts[1:]])
        if tag == 0:
            if group.replies_pending > 0:
                raise self.error(ll.number, "Missing reply from previous command group")
        elif any(c.script_tag == tag for c in group.commands):
            raise self.error(ll.number, "Tag reused within command group")

        if not group.commands:
            existence = _UNTAGGED_PREFIX.get(rest.head[:2])
            if existence is not None:  # banner check
                self.untagged(group, rest, existence)
                return

        expected = None if reply is None else (Atom(reply),)
        parts = tuple(p for p in rest.parts if not (isinstance(p, str) and p == ""))
        group.commands.append(Command(ll.number, parts, tag, expected))

    def finish(self, last_line: int) -> None:
        if self.group is None:
            raise self.error(last_line, "No commands in file")
        if self.group.replies_pending > 0:
            missing = next(c for c in self.group.commands if c.expected is None)
            raise self.error(
                last_line, f"Missing reply from previous command at line {missing.line}"
            )
        if self.ifenv:
            raise self.error(self.ifenv[0].line, "!ifenv not closed with !endif")
        has_logout = any(
            g.expects_bye or any(c.text.lower() == "logout" for c in g.commands)
            for g in self.groups
        )
        if not has_logout:
            logout = CommandGroup(connection=1, line=0, auto_logout=True)
            logout.commands.append(Command(0, ("logout",), 0, (Atom("ok"),)))
            self.groups.append(logout)


def _display(ll: _LogicalLine) -> str:
    out: list[str] = []
    for part in ll.parts:
        if isinstance(part, Literal):
            out.append(("~" if part.binary else "") + f"{{{len(part.data)}}}...")
        else:
            out.append(part)
    return "".join(out)


def parse_script(
    text: str | bytes,
    path: Path | str = "<script>",
    *,
    env: Mapping[str, str] | None = None,
    mbox_path: Path | None = None,
) -> Script:
    """Parse script text.  ``env`` decides ``!ifenv`` blocks (default: ``os.environ``)."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    path = Path(path)
    parser = _Parser(path, os.environ if env is None else env)
    last = 0
    for ll, is_header in _logical_lines(path, text):
        last = ll.number
        if is_header:
            parser.header_line(ll)
        else:
            parser.command_line(ll)
    parser.finish(last or 1)
    return Script(
        path=path,
        name=path.name,
        capabilities=parser.capabilities,
        has_capabilities_header=parser.has_capabilities_header,
        connections=parser.connections,
        state=parser.state,
        ignore_extra_untagged=parser.ignore_extra_untagged,
        messages=parser.messages,
        mbox_path=mbox_path,
        users=parser.users,
        groups=parser.groups,
    )


def default_mbox_path(path: Path) -> Path | None:
    """``<name>.mbox`` beside the script, else ``default.mbox`` beside it or in its parent."""
    own = path.with_name(path.name + ".mbox")
    if own.is_file():
        return own
    for folder in (path.parent, path.parent.parent):
        candidate = folder / "default.mbox"
        if candidate.is_file():
            return candidate
    return None


def load_script(path: Path | str, *, env: Mapping[str, str] | None = None) -> Script:
    path = Path(path)
    return parse_script(path.read_bytes(), path, env=env, mbox_path=default_mbox_path(path))


def script_paths(folder: Path | str, *, include_broken: bool = False) -> list[Path]:
    """Scripts in a tests folder, sorted as imaptest runs them (``*.mbox`` and dot files are
    not scripts; sub-folders such as ``broken/`` are not read, as imaptest does not)."""
    folder = Path(folder)
    paths = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".mbox")
    ]
    if include_broken and (folder / "broken").is_dir():
        paths += script_paths(folder / "broken")
    return paths


# --------------------------------------------------------------------------------------------
# Capabilities (header and the corpus' INDEX.tsv)


@functools.lru_cache(maxsize=16)
def _read_index(index_path: Path) -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    for number, line in enumerate(index_path.read_text().splitlines()):
        cols = line.split("\t")
        if number == 0 or len(cols) < 2:
            continue
        caps = () if cols[1].strip() in ("", "-") else tuple(cols[1].split())
        table[cols[0]] = caps
    return table


def index_capabilities(path: Path | str) -> tuple[str, ...] | None:
    """The capabilities INDEX.tsv lists for a script, or None when no INDEX.tsv names it."""
    path = Path(path).resolve()
    for folder in path.parents:
        index = folder / "INDEX.tsv"
        if index.is_file():
            tests = folder / "tests"
            try:
                key = str(path.relative_to(tests))
            except ValueError:
                key = path.name
            return _read_index(index).get(key)
    return None


def required_capabilities(path: Path | str) -> set[str]:
    """Capabilities a script needs (its header plus INDEX.tsv), upper-cased."""
    script = load_script(path)
    caps = {c.upper() for c in script.capabilities}
    caps |= {c.upper() for c in index_capabilities(path) or ()}
    return caps


# --------------------------------------------------------------------------------------------
# mbox source


@dataclass(frozen=True, slots=True)
class MboxMessage:
    data: bytes  # CRLF line endings
    internaldate: str  # IMAP date-time from the From_ line, e.g. "24-Mar-2007 23:00:00 +0200"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FROM_RE = re.compile(
    rb"^From \S+\s+(?:[A-Za-z]{3},?\s+)?([A-Za-z]{3})\s+(\d{1,2})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?"
    rb"\s+(?:([A-Z]{2,5}|[+-]\d{4})\s+)?(\d{4})(?:\s+([+-]\d{4}|[A-Z]{2,5}))?\s*$"
)


def _from_line_date(line: bytes) -> str | None:
    m = _FROM_RE.match(line.rstrip(b"\r"))
    if m is None:
        return None
    month = m.group(1).decode().capitalize()
    if month not in _MONTHS:
        return None
    day, hour, minute = int(m.group(2)), int(m.group(3)), int(m.group(4))
    second = int(m.group(5) or 0)
    year = int(m.group(7))
    tz = None
    for candidate in (m.group(8), m.group(6)):
        if candidate and candidate[:1] in (b"+", b"-"):
            tz = candidate.decode()
    if tz is None:
        # no zone in the From_ line: local time, as Dovecot's mbox_from_parse assumes
        try:
            local = _dt.datetime(year, _MONTHS.index(month) + 1, day, hour, minute, second)
            offset = local.astimezone().utcoffset() or _dt.timedelta(0)
        except (ValueError, OverflowError):
            offset = _dt.timedelta(0)
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        tz = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return f"{day:02d}-{month}-{year:04d} {hour:02d}:{minute:02d}:{second:02d} {tz}"


def read_mbox(path: Path | str) -> list[MboxMessage]:
    """Messages of an mbox as imaptest reads them: everything after a From_ line up to the
    next From_ line (the blank separator line included), LF converted to CRLF, no >From
    unquoting; INTERNALDATE from the From_ line."""
    data = Path(path).read_bytes()
    messages: list[MboxMessage] = []
    date: str | None = None
    body: list[bytes] = []
    for line in data.splitlines(keepends=True):
        parsed = _from_line_date(line.rstrip(b"\n")) if line.startswith(b"From ") else None
        if parsed is not None:
            if date is not None and body:
                messages.append(MboxMessage(_crlf(b"".join(body)), date))
            date, body = parsed, []
            continue
        if date is None:
            raise ValueError(f"{path}: not an mbox file (no From_ line first)")
        body.append(line)
    if date is not None and body:
        messages.append(MboxMessage(_crlf(b"".join(body)), date))
    if not messages:
        raise ValueError(f"{path}: empty mbox file")
    return messages


def _crlf(data: bytes) -> bytes:
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)
