"""`compile_script`: text to an immutable, reusable `SieveScript` (or a `SieveError`).

Compiling is the expensive half (tokens, tree, validation); `compile_cached` keeps recent
scripts by their text (long ones by its SHA-256) so that delivery compiles a user's script once.

Includes (RFC 6609) are resolved here, through `include_loader(name, is_global) -> text | None`:
each included script is compiled on its own (its own require list, §3.2), loops are refused
with the chain of names, and the number and depth of includes are bounded. A script the
loader cannot find is a runtime error when the include runs (silently skipped with
:optional), so that a script may be uploaded before the one it includes.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from postoffice.filtering.sieve.environment import SieveLimits
from postoffice.filtering.sieve.errors import SieveError
from postoffice.filtering.sieve.lexer import tokenize
from postoffice.filtering.sieve.syntax import parse
from postoffice.filtering.sieve.validator import Call, Validator, capabilities_of

IncludeLoader = Callable[[str, bool], "str | None"]


@dataclass(frozen=True, slots=True)
class SieveScript:
    """A compiled script: never changed after compiling, safe to share between threads."""

    name: str
    commands: tuple[Call, ...]
    capabilities: frozenset[str]
    # (is_global, name) -> compiled script, or None when the loader had nothing.
    includes: dict[tuple[bool, str], SieveScript | None] = field(default_factory=dict)
    size: int = 0
    # Asks the caller nothing while it runs (no include, mailboxexists or duplicate): a run is
    # pure CPU work on the message.
    self_contained: bool = False


class _Includes:
    def __init__(self, loader: IncludeLoader | None, limits: SieveLimits) -> None:
        self.loader = loader
        self.limits = limits
        self.compiled: dict[tuple[bool, str], SieveScript | None] = {}
        self.stack: list[tuple[bool, str]] = []


def _compile(text: str, name: str, key: tuple[bool, str], includes: _Includes) -> SieveScript:
    limits = includes.limits
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_script_bytes:
        raise SieveError(1, 1, f"script is {size} bytes, more than the limit of {limits.max_script_bytes}")
    nodes = parse(tokenize(text), limits.max_nesting)
    capabilities = capabilities_of(nodes)
    commands = Validator(capabilities).block(nodes, top=True)
    includes.stack.append(key)
    try:
        own: dict[tuple[bool, str], SieveScript | None] = {}
        for call in _include_calls(commands):
            target = (":global" in call.tags, str(call.args[0]))
            if target in includes.stack:
                chain = " -> ".join(n for _, n in includes.stack[includes.stack.index(target):])
                raise SieveError(call.line, call.column, f"include loop: {chain} -> {target[1]}")
            if target not in includes.compiled:
                if len(includes.stack) > limits.max_include_depth:
                    raise SieveError(call.line, call.column, f"includes nested deeper than {limits.max_include_depth}")
                if len(includes.compiled) >= limits.max_includes:
                    raise SieveError(call.line, call.column, f"more than {limits.max_includes} included scripts")
                source = includes.loader(target[1], target[0]) if includes.loader else None
                if source is None:
                    includes.compiled[target] = None
                else:
                    try:
                        includes.compiled[target] = _compile(source, target[1], target, includes)
                    except SieveError as e:
                        if e.message.startswith("include loop"):
                            raise SieveError(call.line, call.column, e.message) from None
                        raise SieveError(call.line, call.column,
                                         f"in included script {target[1]!r}: {e}") from None
            own[target] = includes.compiled[target]
    finally:
        includes.stack.pop()
    return SieveScript(name, commands, frozenset(capabilities), own, size, not _reaches_out(commands))


# What a run asks its caller (the store, through the environment and the include loader).
_REACHING_OUT = frozenset({"include", "mailboxexists", "duplicate"})


def _reaches_out(commands: tuple[Call, ...]) -> bool:
    todo = list(commands)
    while todo:
        call = todo.pop()
        if call.name in _REACHING_OUT:
            return True
        todo.extend(call.tests)
        if call.block:
            todo.extend(call.block)
    return False


def _include_calls(commands: tuple[Call, ...]) -> list[Call]:
    out: list[Call] = []
    todo = list(commands)
    while todo:
        call = todo.pop()
        if call.name == "include":
            out.append(call)
        if call.block:
            todo.extend(call.block)
    out.sort(key=lambda c: (c.line, c.column))
    return out


def compile_script(text: str | bytes, *, name: str = "script",
                   include_loader: IncludeLoader | None = None,
                   limits: SieveLimits | None = None) -> SieveScript:
    """Compile a Sieve script; raises SieveError (line, column, message) if it is bad.

    Bytes are decoded as UTF-8 (RFC 5228 §2.1); invalid UTF-8 is an error with its position.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    includes = _Includes(include_loader, limits or SieveLimits())
    return _compile(text, name, (False, name), includes)


_CACHE: OrderedDict[tuple[str, str], SieveScript] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 256
_KEPT_TEXT = 65536  # characters: a longer script is remembered by its digest, not its text


def cached_script(text: str, *, name: str = "script") -> SieveScript | None:
    """What `compile_cached` has for this text and name, without compiling on a miss."""
    key = _cache_key(text, name)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
        return hit


def _cache_key(text: str, name: str) -> tuple[str, str]:
    return (name, text if len(text) <= _KEPT_TEXT else
            hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())


def compile_cached(text: str, *, name: str = "script",
                   include_loader: IncludeLoader | None = None) -> SieveScript:
    """`compile_script` memoised by name and text, for scripts without includes.

    A script that includes others is compiled every time, because the included texts may have
    changed; callers that care cache those themselves. The key is the text itself up to
    `_KEPT_TEXT` characters: the store hands out the same str object for an unchanged active
    script, whose hash Python keeps, so a hit costs no hashing of the text at all (a SHA-256
    per delivery was most of the Sieve stage's time under load); longer texts by their SHA-256.
    """
    hit = cached_script(text, name=name)
    if hit is not None:
        return hit
    key = _cache_key(text, name)
    script = compile_script(text, name=name, include_loader=include_loader)
    if not script.includes:
        with _CACHE_LOCK:
            _CACHE[key] = script
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return script
