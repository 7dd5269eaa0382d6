"""Run Dovecot imaptest scripted tests (parsed by :mod:`imaptest_script`) against an IMAP server.

Public API::

    run_script(path, host, port, user, password, *, tls=False, ...) -> ScriptResult
    run_script_async(...)                                          (the same, awaitable)
    run_scripts(paths, host, port, user, password, ...) -> SuiteResult
    required_capabilities(path) -> set[str]

``python imaptest_runner.py --port 21143 --user user1 --password pass TESTS_DIR`` runs a whole
folder and prints imaptest's summary lines.

What a run does, per ``scripted_test.md`` (and imaptest where the document is silent):

1. open ``connections`` connections; unless ``state: nonauth`` log every one in (as ``user``;
   a ``user N: $user2`` header logs connection N in as ``user2``);
2. skip the script (outcome SKIPPED) when the server's CAPABILITY (after login; before it for
   ``state: nonauth``) lacks a capability of the header or of the corpus' INDEX.tsv;
3. on connection 1: LIST/LSUB ``"" "<mailbox>*"``, DELETE and UNSUBSCRIBE what they return
   (state auth and later), CREATE ``<mailbox>`` (created), APPEND the script's mbox messages with
   the From_ line's date as INTERNALDATE (appended; ``messages: N`` wraps around the mbox, the
   default and ``all`` append each message once), then SELECT it on every connection
   (selected, the default);
4. run the command groups in order.  Each group's commands go out together on its connection
   (synchronising literals wait for ``+``); every response read on that connection until all
   the group's tagged replies have arrived belongs to the group (so events another session
   caused earlier are matched here, as imaptest does by not reading idle connections);
5. a group fails when a tagged reply does not match, an expected ``*`` reply is missing, a
   ``!`` reply appears, or (``ignore_extra_untagged: no``) an untagged reply matches nothing.
   A failed group does not stop the script (imaptest goes on too); a timeout or an unexpected
   disconnection does.

Matching rules (see README.md for the full list): every string compares case-insensitively
except ``${case:...}`` and the values of bound variables; an unbound ``$name`` captures the
text it covers; ``$`` matches any atom, string, literal or list (not NIL); ``$N`` is the
current sequence number of the message that had sequence N when the group started; lists follow
their ``$!`` directives and the documented defaults; untagged OK/NO/BAD/BYE and tagged replies
match as prefixes (the human-readable text need not be given).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import enum
import re
import ssl
import sys
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# tests/conformance is on sys.path: pytest puts the directory of a test module there (no __init__.py)
from imaptest_script import (
    Atom,
    Command,
    CommandGroup,
    Existence,
    ImapList,
    ImapSyntaxError,
    Literal,
    MboxMessage,
    Nil,
    QuotedString,
    Script,
    ScriptError,
    StartState,
    Value,
    astring_text,
    index_capabilities,
    load_script,
    parse_args,
    read_mbox,
    required_capabilities,
    script_paths,
)

__all__ = [
    "Failure",
    "Outcome",
    "ScriptResult",
    "SuiteResult",
    "match_reply",
    "required_capabilities",
    "run_script",
    "run_script_async",
    "run_scripts",
]

DEFAULT_TIMEOUT = 30.0  # seconds for one command group (imaptest's delay timeout)
_READ_LIMIT = 64 * 1024 * 1024
_MATCH_BUDGET = 200_000  # backtracking steps for one reply against one expectation


# --------------------------------------------------------------------------------------------
# Results


class Outcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"  # could not run: bad script, no connection, setup failed


@dataclass(frozen=True, slots=True)
class Failure:
    """One mismatch: the group (1-based; 0 = setup), where it was written, what was sent,
    what the script expected and what the server sent."""

    group: int
    line: int
    connection: int
    command: str
    reason: str
    expected: str
    got: tuple[str, ...]

    def __str__(self) -> str:
        got = "\n".join(f"    {g}" for g in self.got) or "    <nothing>"
        return (
            f"group {self.group} (line {self.line}, connection {self.connection}): "
            f"{self.reason}\n  command: {self.command}\n  expected: {self.expected}\n  got:\n{got}"
        )


@dataclass(slots=True)
class ScriptResult:
    name: str
    path: Path
    outcome: Outcome
    extension: bool  # the script has a capabilities header (imaptest's "extensions" count)
    failures: list[Failure] = field(default_factory=list)
    groups_run: int = 0
    groups_failed: int = 0
    skip_reason: str | None = None
    missing_capabilities: tuple[str, ...] = ()
    error: str | None = None
    duration: float = 0.0
    output: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def first_failure(self) -> Failure | None:
        return self.failures[0] if self.failures else None

    def summary(self) -> str:
        head = f"{self.name}: {self.outcome.value}"
        if self.outcome is Outcome.SKIPPED:
            return f"{head} ({self.skip_reason})"
        if self.outcome is Outcome.ERROR:
            return f"{head}: {self.error}"
        head += f" ({self.groups_run - self.groups_failed}/{self.groups_run} groups)"
        if self.failures:
            head += "\n" + "\n".join(str(f) for f in self.failures)
        return head


@dataclass(slots=True)
class SuiteResult:
    results: list[ScriptResult]
    duration: float = 0.0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    def commands(self, *, extension: bool) -> tuple[int, int]:
        """(failed groups, groups run) of base or extension scripts, as imaptest counts."""
        picked = [r for r in self.results if r.extension == extension]
        return sum(r.groups_failed for r in picked), sum(r.groups_run for r in picked)

    def summary(self) -> str:
        bf, bt = self.commands(extension=False)
        ef, et = self.commands(extension=True)
        failed = self.count(Outcome.FAILED) + self.count(Outcome.ERROR)
        return (
            f"{len(self.results)} test groups: {failed} failed, "
            f"{self.count(Outcome.SKIPPED)} skipped due to missing capabilities\n"
            f"base protocol: {bf}/{bt} individual commands failed\n"
            f"extensions: {ef}/{et} individual commands failed"
        )


# --------------------------------------------------------------------------------------------
# Matching


_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_MODSEQ_KEY = "\0modseq"  # (index, value) of the highest $modseqN bound so far


def _fold(text: str) -> str:
    return text.translate(_FOLD)


def _cstr(text: str) -> str:
    """imaptest compares C strings: a NUL byte ends the comparison."""
    nul = text.find("\0")
    return text if nul < 0 else text[:nul]


class _BudgetExceeded(Exception):
    pass


class MatchContext:
    """Variables and sequence mapping used while matching (and expanding commands)."""

    def __init__(self, variables: dict[str, str] | None = None) -> None:
        self.variables: dict[str, str] = dict(variables or {})
        self.seqmap: list[int] = []
        self.tag: str | None = None
        self._steps = 0

    def relative_seq(self, n: int) -> str:
        if n == 0:
            return "<zero seq>"
        if n > len(self.seqmap):
            return "<out of range>"
        seq = self.seqmap[n - 1]
        return "<expunged>" if seq == 0 else str(seq)

    def expunge(self, seq: int) -> None:
        if seq > len(self.seqmap):
            return  # a message that arrived after the group started
        for i, cur in enumerate(self.seqmap):
            if cur == seq:
                self.seqmap[i] = 0
            elif cur > seq:
                self.seqmap[i] = cur - 1

    def tick(self) -> None:
        self._steps += 1
        if self._steps > _MATCH_BUDGET:
            raise _BudgetExceeded


# pattern pieces: ("lit", folded text) ("case", text) ("seq", n) ("var", name) ("any", "")
_Piece = tuple[str, object]


def _pattern(text: str) -> tuple[_Piece, ...]:
    pieces: list[_Piece] = []
    lit: list[str] = []
    i = 0
    n = len(text)

    def flush() -> None:
        if lit:
            pieces.append(("lit", _fold("".join(lit))))
            lit.clear()

    while i < n:
        c = text[i]
        if c != "$":
            lit.append(c)
            i += 1
            continue
        if text.startswith("$", i + 1):
            lit.append("$")
            i += 2
            continue
        i += 1
        if text.startswith("{", i):
            close = text.find("}", i + 1)
            if close < 0:
                lit.append("${")
                i += 1
                continue
            name = text[i + 1 : close]
            i = close + 1
        else:
            j = i
            while j < n and (text[j].isascii() and (text[j].isalnum() or text[j] == "_")):
                j += 1
            name = text[i:j]
            i = j
        flush()
        if name.startswith("case:"):
            pieces.append(("case", name[5:]))
        elif name.isdigit():
            pieces.append(("seq", int(name)))
        elif name == "":
            pieces.append(("any", ""))
        else:
            pieces.append(("var", name))
    flush()
    return tuple(pieces)


_PATTERN_CACHE: dict[str, tuple[_Piece, ...]] = {}


def _cached_pattern(text: str) -> tuple[_Piece, ...]:
    found = _PATTERN_CACHE.get(text)
    if found is None:
        if len(_PATTERN_CACHE) > 8192:
            _PATTERN_CACHE.clear()
        found = _PATTERN_CACHE[text] = _pattern(text)
    return found


_MODSEQ_RE = re.compile(r"modseq(\d+)$")


def _bind(ctx: MatchContext, b: dict[str, str], name: str, value: str) -> dict[str, str] | None:
    m = _MODSEQ_RE.match(name)
    if m is None:
        return {**b, name: value}
    idx = int(m.group(1))
    if not value.isdigit():
        return None
    hi = b.get(_MODSEQ_KEY)
    hi_idx, hi_val = (int(x) for x in hi.split(":")) if hi else (0, 0)
    if idx < hi_idx:
        return None  # $modseqN used out of order
    if int(value) < hi_val + (idx - hi_idx):
        return None
    return {**b, name: value, _MODSEQ_KEY: f"{idx}:{value}"}


def _lookup(ctx: MatchContext, b: Mapping[str, str], name: str) -> str | None:
    if name == "tag" and ctx.tag is not None:
        return ctx.tag
    return b.get(name)


def _match_text(
    ctx: MatchContext, pattern: str, text: str, b: dict[str, str], prefix: bool
) -> Iterator[dict[str, str]]:
    pieces = _cached_pattern(pattern)
    text = _cstr(text)
    folded = _fold(text)
    end = len(text)

    def rec(i: int, pos: int, b: dict[str, str]) -> Iterator[dict[str, str]]:
        ctx.tick()
        if i == len(pieces):
            if pos == end or prefix:
                yield b
            return
        kind, arg = pieces[i]
        if kind == "lit":
            s = str(arg)
            if folded.startswith(s, pos):
                yield from rec(i + 1, pos + len(s), b)
            return
        fixed: str | None = None
        if kind == "case":
            fixed = str(arg)
        elif kind == "seq":
            fixed = ctx.relative_seq(int(str(arg)))
        elif kind == "var":
            fixed = _lookup(ctx, b, str(arg))
        if fixed is not None:
            if text.startswith(fixed, pos):
                yield from rec(i + 1, pos + len(fixed), b)
            return
        # capture: the shortest text that lets the rest match; the last piece takes all
        if i == len(pieces) - 1:
            candidates: Iterable[int] = (end,)
        else:
            nxt_kind, nxt_arg = pieces[i + 1]
            if nxt_kind == "lit":
                s = str(nxt_arg)
                candidates = [e for e in range(pos, end + 1) if folded.startswith(s, e)]
            else:
                candidates = range(pos, end + 1)
        for e in candidates:
            if kind == "any":
                yield from rec(i + 1, e, b)
            else:
                b2 = _bind(ctx, b, str(arg), text[pos:e])
                if b2 is not None:
                    yield from rec(i + 1, e, b2)

    yield from rec(0, 0, b)


def _match_seq(
    ctx: MatchContext,
    exp: Sequence[Value],
    got: Sequence[Value],
    b: dict[str, str],
    prefix: bool,
) -> Iterator[dict[str, str]]:
    """Ordered matching of argument lists (prefix: ``got`` may go on after ``exp`` ends and
    the last expected string need only be a prefix)."""

    def rec(i: int, j: int, b: dict[str, str]) -> Iterator[dict[str, str]]:
        ctx.tick()
        if i == len(exp):
            if prefix or j == len(got):
                yield b
            return
        e = exp[i]
        last = prefix and i == len(exp) - 1
        if isinstance(e, Atom | QuotedString):
            if e.text == "$" and j < len(got) and isinstance(got[j], ImapList):
                yield from rec(i + 1, j + 1, b)
                return
            if e.text == "$]":
                k = j
                while k < len(got):
                    g = got[k]
                    if not (isinstance(g, Atom) and "]" not in g.text):
                        break
                    k += 1
                yield from rec(i + 1, min(k + 1, len(got)), b)
                return
            if j >= len(got):
                return
            text = astring_text(got[j])
            if text is None:
                return
            for b2 in _match_text(ctx, e.text, text, b, last):
                yield from rec(i + 1, j + 1, b2)
        elif isinstance(e, Literal):
            if j >= len(got):
                return
            text = astring_text(got[j])
            if text is None:
                return
            want, have = _fold(_cstr(e.data)), _fold(_cstr(text))
            if have == want or (last and have.startswith(want)):
                yield from rec(i + 1, j + 1, b)
        elif isinstance(e, Nil):
            if j < len(got) and isinstance(got[j], Nil):
                yield from rec(i + 1, j + 1, b)
        else:
            if j < len(got) and isinstance(got[j], ImapList):
                for b2 in _match_list(ctx, e, got[j], b):
                    yield from rec(i + 1, j + 1, b2)

    yield from rec(0, 0, b)


def _match_list(
    ctx: MatchContext, exp: ImapList, got: ImapList, b: dict[str, str]
) -> Iterator[dict[str, str]]:
    unordered = False
    chain = 1
    noextra: bool | None = None
    ignores: set[str] = set()
    bans: set[str] = set()
    for d in exp.directives:
        if d.startswith("unordered"):
            unordered = True
            if noextra is None:
                noextra = False
            if d.startswith("unordered="):
                chain = int(d[len("unordered=") :])
        elif d == "ordered":
            unordered = False
        elif d == "extra":
            noextra = False
        elif d == "noextra":
            noextra = True
        elif d.startswith("ignore="):
            ignores.add(_fold(d[len("ignore=") :]))
        elif d.startswith("ban="):
            bans.add(_fold(d[len("ban=") :]))
    if noextra is None:
        noextra = True
    if not unordered:
        yield from _match_seq(ctx, exp.items, got.items, b, False)
        return
    if len(got.items) % chain or len(exp.items) % chain:
        return
    exp_chains = [exp.items[k : k + chain] for k in range(0, len(exp.items), chain)]
    got_chains = [got.items[k : k + chain] for k in range(0, len(got.items), chain)]

    def extras_ok(used: frozenset[int]) -> bool:
        for gi, g in enumerate(got_chains):
            if gi in used:
                continue
            text = astring_text(g[0])
            if text is None:
                continue  # only strings can be extra elements
            if noextra and _fold(text) not in ignores:
                return False
            if not noextra and _fold(text) in bans:
                return False
        return True

    def assign(ci: int, used: frozenset[int], b: dict[str, str]) -> Iterator[dict[str, str]]:
        ctx.tick()
        if ci == len(exp_chains):
            if extras_ok(used):
                yield b
            return
        for gi, g in enumerate(got_chains):
            if gi in used:
                continue
            for b2 in _match_seq(ctx, exp_chains[ci], g, b, False):
                yield from assign(ci + 1, used | {gi}, b2)

    yield from assign(0, frozenset(), b)


def match_reply(
    expected: Sequence[Value],
    got: Sequence[Value],
    variables: dict[str, str],
    ctx: MatchContext | None = None,
    *,
    prefix: bool | None = None,
) -> dict[str, str] | None:
    """Match one reply (arguments after ``*`` or after the tag) against an expectation.

    Returns the variables after the match (with new captures) or None.  ``prefix`` defaults
    to imaptest's rule: prefix matching when the reply is OK/NO/BAD/BYE.
    """
    ctx = ctx or MatchContext()
    if prefix is None:
        first = got[0] if got else None
        prefix = isinstance(first, Atom) and first.text.upper() in ("OK", "NO", "BAD", "BYE")
    ctx._steps = 0
    try:
        return next(_match_seq(ctx, expected, got, dict(variables), prefix), None)
    except _BudgetExceeded:
        return None


# --------------------------------------------------------------------------------------------
# Wire


@dataclass(slots=True)
class _Response:
    kind: str  # "untagged" | "tagged" | "cont"
    tag: str
    args: tuple[Value, ...]
    raw: str
    parse_error: str | None = None

    @property
    def display(self) -> str:
        text = self.raw if len(self.raw) <= 600 else self.raw[:600] + f"...<{len(self.raw)} chars>"
        return text.encode("unicode_escape").decode("ascii").replace("\\\\", "\\")


_LIT_AT_END = re.compile(rb"~?\{(\d+)\+?\}\r?\n$")
_STATUS = ("OK", "NO", "BAD", "BYE", "PREAUTH")


def _parse_response_args(text: str) -> tuple[tuple[Value, ...], str | None]:
    try:
        return parse_args(text), None
    except ImapSyntaxError as exc:
        words = tuple(Atom(w) for w in text.split(" ") if w)
        if words and words[0].text.upper() in _STATUS:
            return words, None  # free text after the status may be anything
        return words, f"unparsable response: {exc}"


class _Conn:
    def __init__(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.index = index
        self.reader = reader
        self.writer = writer
        self.tag_counter = 0
        self.exists = 0
        self.capabilities: list[str] = []
        self.postlogin_caps = False
        self.authenticated = False
        self.greeting: _Response | None = None
        self.closed = False
        self.saw_bye = False
        self.logout_sent = False

    def next_tag(self) -> str:
        self.tag_counter += 1
        return f"{self.index}.{self.tag_counter}"

    async def read(self, deadline: float) -> _Response | None:
        chunks: list[bytes] = []
        try:
            while True:
                line = await asyncio.wait_for(
                    self.reader.readuntil(b"\n"), max(0.001, deadline - time.monotonic())
                )
                chunks.append(line)
                m = _LIT_AT_END.search(line)
                if m is None:
                    break
                data = await asyncio.wait_for(
                    self.reader.readexactly(int(m.group(1))),
                    max(0.001, deadline - time.monotonic()),
                )
                chunks.append(data)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed = True
            return None
        raw = b"".join(chunks).decode("latin-1")
        if raw.endswith("\r\n"):
            raw = raw[:-2]
        elif raw.endswith("\n"):
            raw = raw[:-1]
        if raw.startswith("+"):
            return _Response("cont", "+", (), raw)
        if raw.startswith("* "):
            args, error = _parse_response_args(raw[2:])
            self._track(args)
            return _Response("untagged", "*", args, raw, error)
        tag, _, rest = raw.partition(" ")
        args, error = _parse_response_args(rest)
        if args and isinstance(args[0], Atom) and args[0].text.upper() == "OK":
            # a tagged OK [CAPABILITY ...] (LOGIN's) describes the state after the command
            self._caps_from_code(args, postlogin=self.authenticated)
        return _Response("tagged", tag, args, raw, error)

    def _caps_from_code(self, args: Sequence[Value], *, postlogin: bool) -> None:
        if len(args) > 1 and isinstance(args[1], Atom) and args[1].text.upper() == "[CAPABILITY":
            words = []
            for a in args[2:]:
                if not isinstance(a, Atom):
                    break
                words.append(a.text.rstrip("]"))
                if a.text.endswith("]"):
                    break
            self.capabilities = [w for w in words if w]
            self.postlogin_caps = postlogin

    def _track(self, args: Sequence[Value]) -> None:
        if not args or not isinstance(args[0], Atom):
            return
        first = args[0].text.upper()
        if first == "CAPABILITY":
            self.capabilities = [a.text for a in args[1:] if isinstance(a, Atom)]
            self.postlogin_caps = self.authenticated
        elif first == "OK":
            # an untagged OK [CAPABILITY ...] may be a (late) greeting: not trusted as post-login
            self._caps_from_code(args, postlogin=False)
        elif first == "BYE":
            self.saw_bye = True

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            self.writer.close()


def _imap_quote(text: str) -> str | Literal:
    """A quoted string, or a literal when the text cannot be quoted."""
    if any(c in text for c in "\r\n\0") or any(ord(c) > 0x7F for c in text):
        return Literal(text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _q(text: str) -> str:
    """Quoted form for text that is known to be quotable (user names, dates, patterns)."""
    quoted = _imap_quote(text)
    if isinstance(quoted, Literal):
        raise ValueError(f"cannot quote {text!r}")
    return quoted


def _mutf7_decode(name: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(name):
        c = name[i]
        if c != "&":
            out.append(c)
            i += 1
            continue
        end = name.find("-", i)
        if end < 0:
            raise ValueError(f"invalid mUTF-7: {name}")
        chunk = name[i + 1 : end]
        if chunk == "":
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            out.append(base64.b64decode(b64).decode("utf-16-be"))
        i = end + 1
    return "".join(out)


def mailbox_url(mailbox: str) -> str:
    """``$mailbox_url``: the mailbox name in UTF-8, escaped as IMAP URL path data."""
    return urllib.parse.quote(_mutf7_decode(mailbox).encode("utf-8"), safe="/:@!$&'()*+,=-._~")


# --------------------------------------------------------------------------------------------
# Execution


class _Abort(Exception):
    """Stop the script (timeout, lost connection)."""


@dataclass(slots=True)
class _Pending:
    command: Command
    tag: str
    done: bool = False
    reply: _Response | None = None
    is_logout: bool = False


@dataclass(slots=True)
class _GroupState:
    index: int
    group: CommandGroup
    conn: _Conn
    found: list[bool]
    pending: dict[str, _Pending] = field(default_factory=dict)
    received: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    waiting_cont: bool = False
    got_cont: bool = False

    @property
    def open_commands(self) -> list[_Pending]:
        return [p for p in self.pending.values() if not p.done]


class _Runner:
    def __init__(
        self,
        script: Script,
        host: str,
        port: int,
        user: str,
        password: str,
        *,
        tls: bool | ssl.SSLContext,
        mailbox: str,
        user2: str | None,
        password2: str | None,
        timeout: float,
        literal_plus: bool,
        extra_capabilities: Sequence[str],
        ignore_extra_untagged: bool | None = None,
    ) -> None:
        self.script = script
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.tls = tls
        self.mailbox = mailbox
        self.user2 = user2
        self.password2 = password2 if password2 is not None else password
        self.timeout = timeout
        self.literal_plus = literal_plus
        self.ignore_extra = (
            script.ignore_extra_untagged if ignore_extra_untagged is None else ignore_extra_untagged
        )
        self.required = tuple(dict.fromkeys(c.upper() for c in (*script.capabilities, *extra_capabilities)))
        self.conns: list[_Conn] = []
        self.ctx = MatchContext()
        self.result = ScriptResult(
            name=script.name, path=script.path, outcome=Outcome.PASSED,
            extension=script.has_capabilities_header,
        )
        self.messages: list[MboxMessage] = []
        self.mbox_pos = 0

    # -- helpers -----------------------------------------------------------------------------

    def _user_for(self, conn_index: int) -> tuple[str, str]:
        template = self.script.users.get(conn_index)
        if template in ("$user2", "${user2}"):
            assert self.user2 is not None
            return self.user2, self.password2
        if template:
            return template, self.password
        return self.user, self.password

    def _next_message(self) -> MboxMessage:
        if not self.messages:
            raise _Abort("the script appends a message but has no mbox file")
        msg = self.messages[self.mbox_pos % len(self.messages)]
        self.mbox_pos += 1
        return msg

    def _setup_failure(self, reason: str, conn: int, command: str, got: Sequence[str]) -> None:
        self.result.failures.append(Failure(0, 0, conn, command, reason, "OK", tuple(got)))

    async def _simple(self, conn: _Conn, *parts: str | Literal) -> tuple[_Response, list[_Response]]:
        """Send a setup command and wait for its tagged reply (literals wait for ``+``)."""
        tag = conn.next_tag()
        deadline = time.monotonic() + self.timeout
        name = parts[0].split(" ", 1)[0] if parts and isinstance(parts[0], str) else "?"
        untagged: list[_Response] = []

        async def next_response() -> _Response:
            resp = await conn.read(deadline)
            if resp is None:
                raise _Abort(f"connection {conn.index} closed during setup ({name})")
            if resp.kind == "untagged":
                self._protocol_checks(conn, resp, None)
                untagged.append(resp)
            return resp

        buf = f"{tag} "
        for part in parts:
            if isinstance(part, str):
                buf += part
                continue
            await conn.send(f"{buf}{{{len(part.data)}}}\r\n".encode("latin-1"))
            buf = ""
            while True:
                resp = await next_response()
                if resp.kind == "cont":
                    break
                if resp.kind == "tagged" and resp.tag == tag:
                    return resp, untagged
            await conn.send(part.data.encode("latin-1"))
        await conn.send(f"{buf}\r\n".encode("latin-1"))
        while True:
            resp = await next_response()
            if resp.kind == "tagged" and resp.tag == tag:
                return resp, untagged

    @staticmethod
    def _status(resp: _Response) -> str:
        first = resp.args[0] if resp.args else None
        return first.text.upper() if isinstance(first, Atom) else ""

    def _protocol_checks(self, conn: _Conn, resp: _Response, state: _GroupState | None) -> None:
        """Message-count bookkeeping, and imaptest's protocol checks on it."""
        args = resp.args
        if len(args) < 2 or not isinstance(args[0], Atom) or not isinstance(args[1], Atom):
            return
        if not args[0].text.isdigit():
            if args[0].text.upper() == "VANISHED":  # not VANISHED (EARLIER): args[1] is an atom
                conn.exists = max(0, conn.exists - _set_size(args[1].text))
            return
        num = int(args[0].text)
        what = args[1].text.upper()
        problem = None
        if what == "EXISTS":
            if num < conn.exists:
                problem = f"message count dropped {conn.exists} -> {num} without EXPUNGE"
            conn.exists = num
        elif what == "EXPUNGE":
            if num == 0 or num > conn.exists:
                problem = f"EXPUNGE {num} with only {conn.exists} messages"
            else:
                conn.exists -= 1
        if problem is not None:
            failure = Failure(
                state.index if state else 0,
                state.group.line if state else 0,
                conn.index,
                state.group.commands[0].text if state and state.group.commands else "",
                f"protocol error: {problem}",
                "a consistent message count",
                (resp.display,),
            )
            (state.failures if state else self.result.failures).append(failure)

    # -- setup -------------------------------------------------------------------------------

    async def _connect(self) -> None:
        context: ssl.SSLContext | None = None
        if isinstance(self.tls, ssl.SSLContext):
            context = self.tls
        elif self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        for i in range(1, self.script.connections + 1):
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=context, limit=_READ_LIMIT),
                self.timeout,
            )
            conn = _Conn(i, reader, writer)
            self.conns.append(conn)
            greeting = await conn.read(time.monotonic() + self.timeout)
            if greeting is None or greeting.kind != "untagged":
                raise _Abort(f"connection {i}: no greeting")
            status = self._status(greeting)
            if status == "PREAUTH":
                conn.authenticated = True
            elif status != "OK":
                raise _Abort(f"connection {i}: greeting {greeting.display}")
            conn.greeting = greeting

    async def _login(self, conn: _Conn) -> None:
        if conn.authenticated:
            return
        user, password = self._user_for(conn.index)
        conn.authenticated = True  # capabilities seen from now on are post-login ones
        resp, _ = await self._simple(
            conn, "LOGIN ", _imap_quote(user), " ", _imap_quote(password)
        )
        if self._status(resp) != "OK":
            conn.authenticated = False
            raise _Abort(f"connection {conn.index}: LOGIN {user} failed: {resp.display}")

    async def _capabilities(self, conn: _Conn, *, postlogin: bool) -> list[str]:
        if not conn.capabilities or (postlogin and not conn.postlogin_caps):
            resp, _ = await self._simple(conn, "CAPABILITY")
            if self._status(resp) != "OK":
                raise _Abort(f"CAPABILITY failed: {resp.display}")
        return conn.capabilities

    def _check_skip(self, capabilities: Sequence[str]) -> bool:
        have = {c.upper() for c in capabilities}
        missing = tuple(c for c in self.required if c not in have)
        if missing:
            self.result.outcome = Outcome.SKIPPED
            self.result.missing_capabilities = missing
            self.result.skip_reason = "missing capabilities: " + " ".join(missing)
            return True
        return False

    async def _setup(self) -> bool:
        """Bring the mailbox to the script's start state; False when the script is skipped."""
        script = self.script
        await self._connect()
        first = self.conns[0]
        if script.state is StartState.NONAUTH:
            return not self._check_skip(await self._capabilities(first, postlogin=False))
        for conn in self.conns:
            await self._login(conn)
        if self._check_skip(await self._capabilities(first, postlogin=True)):
            return False

        # delete the test mailboxes (children first) and their subscriptions
        pattern = _imap_quote(self.mailbox + "*")
        boxes: dict[str, list[str]] = {"LIST": [], "LSUB": []}
        for verb in ("LIST", "LSUB"):
            resp, untagged = await self._simple(first, f'{verb} "" ', pattern)
            if self._status(resp) != "OK":
                self._setup_failure(f"{verb} failed", 1, f'{verb} "" {self.mailbox}*', [resp.display])
                return True
            for u in untagged:
                a = u.args
                if (
                    len(a) >= 4
                    and isinstance(a[0], Atom)
                    and a[0].text.upper() == verb
                    and isinstance(a[1], ImapList)
                ):
                    name = astring_text(a[3])
                    if name is not None and name not in boxes[verb]:
                        boxes[verb].append(name)
        for names, cmd in ((boxes["LIST"], "DELETE"), (boxes["LSUB"], "UNSUBSCRIBE")):
            for name in sorted(names, key=_fold, reverse=True):
                resp, _ = await self._simple(first, f"{cmd} ", _imap_quote(name))
                if self._status(resp) == "BAD":
                    self._setup_failure(f"{cmd} failed", 1, f"{cmd} {name}", [resp.display])
                    return True

        if script.state >= StartState.CREATED and self.mailbox.upper() != "INBOX":
            resp, _ = await self._simple(first, "CREATE ", _imap_quote(self.mailbox))
            if self._status(resp) != "OK":
                self._setup_failure("CREATE failed", 1, f"CREATE {self.mailbox}", [resp.display])
                return True
        if script.state >= StartState.APPENDED:
            count = len(self.messages) if script.messages is None else script.messages
            for _ in range(count):
                msg = self._next_message()
                resp, _ = await self._simple(
                    first, "APPEND ", _imap_quote(self.mailbox),
                    f" {_q(msg.internaldate)} ", Literal(msg.data.decode("latin-1")),
                )
                if self._status(resp) != "OK":
                    self._setup_failure("APPEND failed", 1, f"APPEND {self.mailbox}", [resp.display])
                    return True
        if script.state >= StartState.SELECTED:
            for conn in self.conns:
                conn.exists = 0
                resp, _ = await self._simple(conn, "SELECT ", _imap_quote(self.mailbox))
                if self._status(resp) != "OK":
                    self._setup_failure("SELECT failed", conn.index, f"SELECT {self.mailbox}", [resp.display])
                    return True
        return True

    # -- command groups ----------------------------------------------------------------------

    def _expand(self, text: str) -> str:
        """Expand ``$var``, ``${var}``, ``$N`` and ``$$`` in command text."""
        out: list[str] = []
        i = 0
        n = len(text)
        while i < n:
            c = text[i]
            if c != "$" or i == n - 1:
                out.append(c)
                i += 1
                continue
            i += 1
            if text[i] == "$":
                out.append("$")
                i += 1
                continue
            if text[i] == "!":  # a list directive: dropped
                while i < n and text[i] != " ":
                    i += 1
                i += 1
                continue
            if text[i] == "{":
                close = text.find("}", i)
                if close < 0:
                    raise KeyError("Missing '}'")
                name = text[i + 1 : close]
                i = close + 1
            else:
                j = i
                while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                    j += 1
                name = text[i:j]
                i = j
            if name.isdigit():
                out.append(self.ctx.relative_seq(int(name)))
                continue
            value = self.ctx.variables.get(name)
            if value is None:
                raise KeyError(f"Uninitialized variable: {name}")
            out.append(value)
        return "".join(out)

    def _build(self, cmd: Command) -> list[str | Literal]:
        """The command's wire parts (text, literal payloads), imaptest's APPEND shorthand
        applied: ``append`` alone or ``append <mailbox> [flags] [date]`` without a message
        appends the next message of the mbox."""
        parts: list[str | Literal] = [
            self._expand(p) if isinstance(p, str) else p for p in cmd.parts
        ]
        if len(parts) == 1 and isinstance(parts[0], str):
            text = parts[0]
            lower = text.lower()
            if lower == "append":
                msg = self._next_message()
                return [
                    "APPEND ", _imap_quote(self.mailbox), f" {_q(msg.internaldate)} ",
                    Literal(msg.data.decode("latin-1")),
                ]
            for word, replace in (("append ", False), ("replace ", True), ("uid replace ", True)):
                if lower.startswith(word) and not _has_body(text[len(word) :], replace):
                    msg = self._next_message()
                    return [f"{text} ", Literal(msg.data.decode("latin-1"))]
        return parts

    async def _send_command(self, state: _GroupState, pend: _Pending, parts: list[str | Literal]) -> None:
        conn = state.conn
        deadline = time.monotonic() + self.timeout
        caps = {c.upper() for c in conn.capabilities}
        plus = self.literal_plus and "LITERAL+" in caps
        buf = f"{pend.tag} "
        for part in parts:
            if isinstance(part, str):
                buf += part
                continue
            size = len(part.data)
            marker = ("~" if part.binary else "") + f"{{{size}{'+' if plus else ''}}}\r\n"
            await conn.send((buf + marker).encode("latin-1"))
            buf = ""
            if not plus:
                state.waiting_cont, state.got_cont = True, False
                while not state.got_cont:
                    resp = await conn.read(deadline)
                    if resp is None:
                        state.waiting_cont = False
                        return  # handled by the caller as a disconnection
                    self._handle(state, resp)
                    if pend.done:  # rejected before the literal: do not send the rest
                        state.waiting_cont = False
                        return
                state.waiting_cont = False
            await conn.send(part.data.encode("latin-1"))
        await conn.send((buf + "\r\n").encode("latin-1"))

    def _fail(self, state: _GroupState, cmd: Command | None, reason: str, expected: str, got: Sequence[str]) -> None:
        group = state.group
        cmd = cmd or (group.commands[0] if group.commands else None)
        state.failures.append(
            Failure(
                state.index,
                cmd.line if cmd else group.line,
                group.connection,
                cmd.text if cmd else "<greeting>",
                reason,
                expected,
                tuple(got),
            )
        )

    def _match_untagged(self, state: _GroupState, resp: _Response) -> None:
        group = state.group
        matched_any = False
        for i, exp in enumerate(group.untagged):
            if state.found[i]:
                continue
            found = match_reply(exp.args, resp.args, self.ctx.variables, self.ctx)
            if found is not None:
                if exp.existence is Existence.MUST_NOT:
                    self._fail(state, None, "unexpected untagged reply (a '!' line matched)",
                               f"! {exp.source}", [resp.display])
                    return
                self.ctx.variables = found
                state.found[i] = True
                matched_any = True
                if group.ordered:
                    break
                continue
            if group.ordered and exp.existence is Existence.MUST:
                break  # out of order: later replies are reported missing
        if not matched_any and not self.ignore_extra and not (
            not group.untagged and state.conn.logout_sent
        ):
            state.extras.append(resp.display)

    def _handle(self, state: _GroupState, resp: _Response) -> None:
        conn = state.conn
        if resp.kind == "cont":
            if state.waiting_cont:
                state.got_cont = True
            else:
                self._fail(state, None, "unexpected continuation request", "no '+'", [resp.display])
            return
        if resp.parse_error:
            self._fail(state, None, resp.parse_error, "a well-formed response", [resp.display])
        if resp.kind == "untagged":
            state.received.append(resp.display)
            first = next(iter(state.pending.values()), None)
            self.ctx.tag = first.tag if first else None
            self._match_untagged(state, resp)
            self._protocol_checks(conn, resp, state)
            args = resp.args
            if (
                len(args) >= 2
                and isinstance(args[0], Atom)
                and args[0].text.isdigit()
                and isinstance(args[1], Atom)
                and args[1].text.upper() == "EXPUNGE"
            ):
                self.ctx.expunge(int(args[0].text))
            return
        pend = state.pending.get(resp.tag)
        if pend is None or pend.done:
            self._fail(state, None, f"tagged reply for unknown tag {resp.tag}", "no such reply",
                       [resp.display])
            return
        pend.done = True
        pend.reply = resp
        expected = pend.command.expected or (Atom(""),)
        self.ctx.tag = pend.tag
        status = self._status(resp)
        ok = False
        if len(expected) >= 1 and isinstance(expected[0], Atom) and expected[0].text == "" and len(expected) == 1:
            ok = status in ("OK", "NO")  # "": any reply but BAD (imaptest drops the
            # connection on a BAD it did not expect)
        else:
            found = match_reply(expected, resp.args, self.ctx.variables, self.ctx, prefix=True)
            if found is not None:
                self.ctx.variables = found
                ok = True
        if not ok:
            self._fail(state, pend.command, "tagged reply mismatch", pend.command.expected_text,
                       [*state.received[-20:], resp.display])
        text = pend.command.text
        word = text.split(" ", 1)[0].upper()
        if word in ("SELECT", "EXAMINE") and status != "OK":
            conn.exists = 0

    async def _run_group(self, index: int, group: CommandGroup) -> bool:
        """Run one group; returns False when the script cannot go on."""
        conn = self.conns[group.connection - 1] if group.connection <= len(self.conns) else None
        state = _GroupState(index, group, conn or self.conns[0], [False] * len(group.untagged))
        self.result.groups_run += 1
        go_on = True
        try:
            if conn is None or conn.closed:
                self._fail(state, None, f"connection {group.connection} is not open", "an open connection", [])
                return False
            self.ctx.seqmap = list(range(1, conn.exists + 1))
            if not group.commands:  # banner check
                if conn.greeting is not None:
                    self.ctx.tag = None
                    self._match_untagged(state, conn.greeting)
                return True
            self.ctx.tag = None
            builds: list[tuple[_Pending, list[str | Literal]]] = []
            for cmd in group.commands:
                try:
                    parts = self._build(cmd)
                except KeyError as exc:
                    self._fail(state, cmd, str(exc.args[0]), "all variables known", [])
                    return True
                tag = conn.next_tag()
                is_logout = group.auto_logout or group.expects_bye or cmd.text.lower() == "logout"
                pend = _Pending(cmd, tag, is_logout=is_logout)
                state.pending[tag] = pend
                builds.append((pend, parts))
            for pend, parts in builds:
                if pend.is_logout:
                    conn.logout_sent = True
                word = parts[0].split(" ", 1)[0].upper() if isinstance(parts[0], str) else ""
                if word in ("SELECT", "EXAMINE", "CLOSE", "UNSELECT"):
                    conn.exists = 0
                await self._send_command(state, pend, parts)
                if conn.closed:
                    break
            deadline = time.monotonic() + self.timeout
            while state.open_commands and not conn.closed:
                resp = await conn.read(deadline)
                if resp is None:
                    break
                self._handle(state, resp)
            if state.open_commands:
                if conn.closed:
                    expected_bye = conn.saw_bye and group.expects_bye
                    for pend in state.open_commands:
                        if expected_bye and pend.command.expected_text == '""':
                            continue
                        self._fail(state, pend.command, "connection closed before the tagged reply",
                                   pend.command.expected_text, state.received[-20:])
                    if not (conn.saw_bye and (group.expects_bye or conn.logout_sent)):
                        go_on = False
                else:
                    self._fail(state, None, f"timeout after {self.timeout:g}s waiting for the tagged reply",
                               "a tagged reply", state.received[-20:])
                    go_on = False
            if conn.logout_sent and not state.open_commands:
                conn.close()
        except TimeoutError:
            self._fail(state, None, f"timeout after {self.timeout:g}s", "a reply", state.received[-20:])
            go_on = False
        except ConnectionError as exc:
            self._fail(state, None, f"connection error: {exc}", "a reply", state.received[-20:])
            go_on = False
        finally:
            self._finish_group(state)
        if go_on and group.sleep_ms:
            await asyncio.sleep(group.sleep_ms / 1000)
        return go_on

    def _finish_group(self, state: _GroupState) -> None:
        group = state.group
        for i, exp in enumerate(group.untagged):
            if exp.existence is Existence.MUST and not state.found[i]:
                missing = sum(
                    1 for k, e in enumerate(group.untagged)
                    if e.existence is Existence.MUST and not state.found[k]
                )
                self._fail(
                    state, None,
                    f"missing {missing} untagged repl{'y' if missing == 1 else 'ies'}",
                    f"* {exp.source}  (expanded: {self._expand_for_report(exp)})",
                    state.received[-30:],
                )
                break
        if state.extras:
            self._fail(state, None,
                       f"{len(state.extras)} unexpected untagged replies (ignore_extra_untagged: no)",
                       "only the listed untagged replies", state.extras[:20])
        for text in group.output:
            try:
                self.result.output.append(self._expand(text))
            except KeyError as exc:
                self._fail(state, None, str(exc.args[0]), "all variables known", [])
        if state.failures:
            self.result.failures.extend(state.failures)
            self.result.groups_failed += 1

    def _expand_for_report(self, exp: object) -> str:
        source = getattr(exp, "source", "")
        out = []
        for piece in _pattern(source):
            kind, arg = piece
            if kind == "lit":
                out.append(str(arg))
            elif kind == "var":
                out.append(self.ctx.variables.get(str(arg), f"${arg}"))
            elif kind == "seq":
                out.append(self.ctx.relative_seq(int(str(arg))))
            elif kind == "case":
                out.append(str(arg))
            else:
                out.append("$")
        return "".join(out)

    # -- whole script ------------------------------------------------------------------------

    async def run(self) -> ScriptResult:
        started = time.monotonic()
        script = self.script
        try:
            if script.requires_second_user and not self.user2:
                self.result.outcome = Outcome.SKIPPED
                self.result.skip_reason = "needs a second user (user2)"
                return self.result
            if script.mbox_path is not None:
                self.messages = read_mbox(script.mbox_path)
            self.ctx.variables = self._predefined()
            try:
                if not await self._setup():
                    return self.result
            except _Abort as exc:
                self.result.outcome = Outcome.ERROR
                self.result.error = f"setup: {exc}"
                return self.result
            if self.result.failures:
                self.result.outcome = Outcome.FAILED
                return self.result
            for index, group in enumerate(script.groups, start=1):
                try:
                    if not await self._run_group(index, group):
                        break
                except _Abort as exc:
                    self.result.failures.append(
                        Failure(index, group.line, group.connection, "", str(exc), "", ())
                    )
                    self.result.groups_failed += 1
                    break
            if self.result.failures:
                self.result.outcome = Outcome.FAILED
            return self.result
        except (OSError, TimeoutError) as exc:
            self.result.outcome = Outcome.ERROR
            self.result.error = f"{type(exc).__name__}: {exc}"
            return self.result
        finally:
            for conn in self.conns:
                conn.close()
            for conn in self.conns:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.writer.wait_closed(), 2)
            self.result.duration = time.monotonic() - started

    def _predefined(self) -> dict[str, str]:
        variables: dict[str, str] = {}
        for i in range(1, self.script.connections + 1):
            name, password = self._user_for(i)
            suffix = "" if i == 1 else str(i)
            variables[f"user{suffix}"] = name
            variables[f"username{suffix}"] = name.split("@", 1)[0]
            variables[f"domain{suffix}"] = name.split("@", 1)[1] if "@" in name else self.host
            variables[f"password{suffix}"] = password
        variables["mailbox"] = self.mailbox
        variables["mailbox_url"] = mailbox_url(self.mailbox)
        return variables


def _set_size(text: str) -> int:
    total = 0
    for part in text.split(","):
        if ":" in part:
            a, b = part.split(":", 1)
            if a.isdigit() and b.isdigit():
                total += abs(int(b) - int(a)) + 1
        elif part.isdigit():
            total += 1
    return total


def _has_body(args_text: str, replace: bool) -> bool:
    """imaptest's test: does ``APPEND <args>`` carry its own message (literal or CATENATE)?"""
    try:
        args = list(parse_args(args_text))
    except ImapSyntaxError:
        return False
    if not args:
        return False
    if replace:
        args = args[1:]
        if not args:
            return False
    idx = 0
    if len(args) > idx + 1 and isinstance(args[idx + 1], ImapList):
        idx += 1
    if len(args) > idx + 1 and isinstance(args[idx + 1], QuotedString):
        idx += 1
    if len(args) <= idx + 1:
        return False
    nxt = args[idx + 1]
    return isinstance(nxt, Literal) or (isinstance(nxt, Atom) and nxt.text.lower() == "catenate")


# --------------------------------------------------------------------------------------------
# Public entry points


async def run_script_async(
    path: Path | str,
    host: str,
    port: int,
    user: str,
    password: str,
    *,
    tls: bool | ssl.SSLContext = False,
    mailbox: str = "imaptest",
    user2: str | None = None,
    password2: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    literal_plus: bool = False,
    env: Mapping[str, str] | None = None,
    ignore_extra_untagged: bool | None = None,
) -> ScriptResult:
    """Run one script file against ``host:port``; see :func:`run_script`."""
    path = Path(path)
    try:
        script = load_script(path, env=env)
    except (ScriptError, OSError, ValueError) as exc:
        return ScriptResult(path.name, path, Outcome.ERROR, extension=False, error=str(exc))
    extra = index_capabilities(path) or ()
    runner = _Runner(
        script, host, port, user, password, tls=tls, mailbox=mailbox, user2=user2,
        password2=password2, timeout=timeout, literal_plus=literal_plus,
        extra_capabilities=extra, ignore_extra_untagged=ignore_extra_untagged,
    )
    return await runner.run()


def run_script(
    path: Path | str,
    host: str,
    port: int,
    user: str,
    password: str,
    *,
    tls: bool | ssl.SSLContext = False,
    mailbox: str = "imaptest",
    user2: str | None = None,
    password2: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    literal_plus: bool = False,
    env: Mapping[str, str] | None = None,
    ignore_extra_untagged: bool | None = None,
) -> ScriptResult:
    """Run one imaptest script against an IMAP server and report the outcome.

    ``tls``: True for implicit TLS without certificate checks (test servers), or an
    ``ssl.SSLContext``.  ``mailbox``: the test mailbox (imaptest's ``box``; every mailbox whose
    name starts with it is deleted first).  ``user2``/``password2``: the second user of scripts
    with ``user 2: $user2`` (skipped without one).  ``timeout``: seconds one command group may
    take.  ``literal_plus``: send non-synchronising literals when the server has LITERAL+ (by
    default every literal waits for ``+``).  ``env``: what ``!ifenv`` sees (default
    ``os.environ``).  ``ignore_extra_untagged``: override the script's header (False: every
    untagged reply must be expected by the script).  Must not be called from a running event loop (use
    :func:`run_script_async` there).
    """
    return asyncio.run(
        run_script_async(
            path, host, port, user, password, tls=tls, mailbox=mailbox, user2=user2,
            password2=password2, timeout=timeout, literal_plus=literal_plus, env=env,
            ignore_extra_untagged=ignore_extra_untagged,
        )
    )


def run_scripts(
    paths: Iterable[Path | str],
    host: str,
    port: int,
    user: str,
    password: str,
    **kwargs: object,
) -> SuiteResult:
    """Run several scripts one after another (keyword arguments as :func:`run_script`)."""
    started = time.monotonic()
    results = [run_script(p, host, port, user, password, **kwargs) for p in paths]  # type: ignore[arg-type]
    return SuiteResult(results, time.monotonic() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run imaptest scripted tests against a server.")
    parser.add_argument("paths", nargs="+", help="script files or tests folders")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=143)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--user2")
    parser.add_argument("--password2")
    parser.add_argument("--mailbox", default="imaptest")
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--literal-plus", action="store_true")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("--include-broken", action="store_true", help="also run tests/broken/")
    parser.add_argument("--strict-untagged", action="store_true",
                        help="fail on any untagged reply a script does not list")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every result")
    opts = parser.parse_args(argv)
    paths: list[Path] = []
    for p in map(Path, opts.paths):
        paths += script_paths(p, include_broken=opts.include_broken) if p.is_dir() else [p]
    suite = run_scripts(
        paths, opts.host, opts.port, opts.user, opts.password, tls=opts.tls,
        mailbox=opts.mailbox, user2=opts.user2, password2=opts.password2,
        timeout=opts.timeout, literal_plus=opts.literal_plus,
        ignore_extra_untagged=False if opts.strict_untagged else None,
    )
    for r in suite.results:
        if opts.verbose or r.outcome in (Outcome.FAILED, Outcome.ERROR) or r.outcome is Outcome.SKIPPED:
            print(r.summary())
    print(suite.summary())
    print(f"time: {suite.duration:.1f}s")
    return 0 if suite.count(Outcome.FAILED) + suite.count(Outcome.ERROR) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
