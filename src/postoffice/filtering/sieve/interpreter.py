"""`run_script`: one compiled script, one message -> `SieveResult` (actions, errors).

Synchronous and pure (no I/O; state only through `SieveEnvironment` callables), so delivery runs
it in a thread. It never raises: a runtime error (RFC 5228 §2.10.6) drops every pending action
and leaves the implicit keep, with the error in `SieveResult.errors`.

Implementation notes:

- Actions are collected, not executed (RFC 5228 §2.10.1); duplicates fold (§2.10.3): one keep
  (flags merged), one fileinto per mailbox, one redirect per address, one discard.
- The implicit keep (§2.10.2) is cancelled by keep, fileinto and redirect without :copy,
  discard and reject; it becomes a final `Keep` with the internal flags (RFC 5232 §3).
- Conflicts are runtime errors: reject/ereject with keep, fileinto, redirect or vacation, or a
  second reject (RFC 5429 §2.1); a second vacation (RFC 5230 §4).
- Bounds (`SieveLimits`): actions, redirects, include depth, variable count and size, CPU time
  (this thread's, checked every few commands and inside long comparisons). Compilation already
  bounded nesting, so recursion here stays far below Python's limit.
- Match variables (RFC 5229 §3.2) are set by each successful :matches and belong to the script
  being run; an included script starts with its own locals and sees globals (RFC 6609 §3.4).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from postoffice.filtering.sieve.actions import (
    Action,
    AddHeader,
    DeleteHeader,
    Discard,
    FileInto,
    Keep,
    Redirect,
    Reject,
    Vacation,
)
from postoffice.filtering.sieve.environment import SieveEnvironment, SieveLimits
from postoffice.filtering.sieve.errors import SieveCpuLimit, SieveRuntimeError
from postoffice.filtering.sieve.matching import test_values
from postoffice.filtering.sieve.message import (
    HeaderFields,
    ParsedAddress,
    SieveMessage,
    envelope_address,
)
from postoffice.filtering.sieve.script import SieveScript
from postoffice.filtering.sieve.strings import ExpansionTooLong, Text, expand
from postoffice.filtering.sieve.validator import REDIRECT_ADDRESS, Call

_TO_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_TO_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DELIVERY = (Keep, FileInto, Redirect, Discard, Reject, Vacation)


@dataclass(frozen=True, slots=True)
class DuplicateMark:
    """RFC 7352: an id the executor records once delivery succeeded (`last`: refresh its time)."""

    id: str
    seconds: int
    last: bool


@dataclass(slots=True)
class SieveResult:
    """What a run decided. `actions` ends with a `Keep` when the implicit keep is in effect
    (`implicit_keep` True then). `message` is the message with editheader changes applied
    (the original bytes object when nothing changed); every action delivers that."""

    actions: list[Action]
    errors: list[str] = field(default_factory=list)
    implicit_keep: bool = True
    message: bytes = b""
    duplicates: list[DuplicateMark] = field(default_factory=list)
    stopped: bool = False  # the script ran `stop` (multiscript: the scripts after it are skipped)
    out_of_time: bool = False  # ended by the CPU limit (an error, and the implicit keep)


class _Stop(Exception):
    pass


class _Return(Exception):
    pass


@dataclass(slots=True)
class Frame:
    """One script's execution: its local variables, match variables and declared globals."""

    script: SieveScript
    variables: bool
    locals: dict[str, str] = field(default_factory=dict)
    matches: list[str] = field(default_factory=list)
    global_names: set[str] = field(default_factory=set)


class Run:
    """The state of one run_script call; command and test functions receive it."""

    def __init__(self, message: SieveMessage, env: SieveEnvironment, limits: SieveLimits) -> None:
        self.message = message
        self.env = env
        self.limits = limits
        self._headers: HeaderFields | None = None  # parsed on first use: shared results may need none
        self.shared = message.shared
        self.captures: list[str] | None = None  # of the last successful :matches, for `shared`
        self.globals: dict[str, str] = {}
        self.flags: list[str] = []  # the imap4flags internal variable (RFC 5232 §3)
        self.actions: list[Action] = []
        self.implicit_keep = True
        self.redirects = 0
        self.vacation_done = False
        self.included: set[tuple[bool, str]] = set()
        self.include_depth = 0
        self.steps = 0
        self.line = self.column = 0  # of the command or test being run, for errors found deep down
        self.deadline = time.thread_time() + limits.cpu_seconds
        self.duplicates: list[DuplicateMark] = []
        self.stopped = False  # `stop` ran: scripts after this one (global after) do not run

    @property
    def headers(self) -> HeaderFields:
        if self._headers is None:
            self._headers = HeaderFields(self.message.raw)
        return self._headers

    # --- bounds -----------------------------------------------------------------------------

    def tick(self, call: Call) -> None:
        self.line, self.column = call.line, call.column
        self.steps += 1
        if self.steps & 31 == 0 and time.thread_time() > self.deadline:
            raise SieveCpuLimit(call.line, call.column, f"CPU time limit of {self.limits.cpu_seconds} s exceeded")

    def checker(self, call: Call) -> Callable[[], None]:
        def check() -> None:
            if time.thread_time() > self.deadline:
                raise SieveCpuLimit(call.line, call.column, f"CPU time limit of {self.limits.cpu_seconds} s exceeded")
        return check

    # --- strings and variables --------------------------------------------------------------

    def lookup(self, frame: Frame) -> Callable[[str], str]:
        def get(name: str) -> str:
            if name.isdigit():
                index = int(name)
                return frame.matches[index] if index < len(frame.matches) else ""
            if name.startswith("global."):
                return self.globals.get(name[7:], "")
            if name in frame.global_names:
                return self.globals.get(name, "")
            return frame.locals.get(name, "")
        return get

    def s(self, frame: Frame, value: Text) -> str:
        if type(value) is str:
            return value
        try:
            return expand(value, self.lookup(frame), self.limits.max_string_chars)
        except ExpansionTooLong:
            raise SieveRuntimeError(self.line, self.column, f"a string longer than {self.limits.max_string_chars} characters") from None

    def sl(self, frame: Frame, values: tuple[Text, ...]) -> Sequence[str]:
        if type(values) is tuple:  # constant (the validator makes lists with variables Varying)
            return values  # type: ignore[return-value]
        return [self.s(frame, v) for v in values]

    def set_variable(self, frame: Frame, call: Call, name: str, value: str) -> None:
        limit = self.limits.max_variable_bytes
        if len(value) > limit // 4 and len(value.encode("utf-8", "surrogatepass")) > limit:
            value = value.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore")
        name = name.lower()
        if name.startswith("global."):
            target, name = self.globals, name[7:]
        elif name in frame.global_names:
            target = self.globals
        else:
            target = frame.locals
        if name not in target and len(target) >= self.limits.max_variables:
            raise SieveRuntimeError(call.line, call.column, f"more than {self.limits.max_variables} variables")
        target[name] = value

    def matched(self, frame: Frame, call: Call, values: Any, keys: Sequence[str]) -> bool:
        """test_values plus the RFC 5229 match variables after a successful :matches."""
        ok, captures = test_values(call.match, values, keys, self.checker(call))
        self.captures = captures if ok else None
        if ok and captures is not None and frame.variables:
            frame.matches = captures[:10]
        return ok

    # --- actions ----------------------------------------------------------------------------

    def add(self, call: Call, action: Action) -> None:
        rejecting = any(isinstance(a, Reject) for a in self.actions)
        if isinstance(action, Reject):
            if rejecting:
                raise SieveRuntimeError(call.line, call.column, "only one reject or ereject per message")
            other = next((a for a in self.actions if isinstance(a, (Keep, FileInto, Redirect, Vacation))), None)
            if other is not None:
                raise SieveRuntimeError(call.line, call.column, f"{call.name} conflicts with {_name(other)} (RFC 5429 §2.1)")
        elif rejecting and isinstance(action, (Keep, FileInto, Redirect, Vacation)):
            raise SieveRuntimeError(call.line, call.column, f"{_name(action)} conflicts with reject (RFC 5429 §2.1)")
        for i, old in enumerate(self.actions):
            merged = _fold(old, action)
            if merged is not None:
                self.actions[i] = merged
                return
        delivering = sum(1 for a in self.actions if isinstance(a, _DELIVERY))
        if isinstance(action, _DELIVERY) and delivering >= self.limits.max_actions:
            raise SieveRuntimeError(call.line, call.column, f"more than {self.limits.max_actions} actions")
        self.actions.append(action)

    # --- running ----------------------------------------------------------------------------

    def block(self, frame: Frame, calls: tuple[Call, ...]) -> None:
        taken = False
        for call in calls:
            self.tick(call)
            name = call.name
            if name == "if":
                taken = self.test(frame, call.tests[0])
                if taken:
                    self.block(frame, call.block or ())
            elif name == "elsif":
                if not taken:
                    taken = self.test(frame, call.tests[0])
                    if taken:
                        self.block(frame, call.block or ())
            elif name == "else":
                if not taken:
                    self.block(frame, call.block or ())
            else:
                COMMANDS[name](self, frame, call)

    def test(self, frame: Frame, call: Call) -> bool:
        self.tick(call)
        shared = self.shared
        if shared is None or not call.shareable or (self._headers is not None and self._headers.changed):
            return TESTS[call.name](self, frame, call)
        known = shared.get(id(call))
        if known is None or known[0] is not call:  # the call itself is kept: its id is never reused
            self.captures = None
            ok = TESTS[call.name](self, frame, call)
            shared[id(call)] = (call, ok, self.captures if ok else None)
            return ok
        _, ok, captures = known
        if captures is not None and frame.variables:
            frame.matches = captures[:10]
        return ok

    def run_script(self, script: SieveScript) -> None:
        frame = Frame(script, "variables" in script.capabilities)
        try:
            self.block(frame, script.commands)
        except _Stop:
            self.stopped = True
        except _Return:
            pass


def _name(action: Action) -> str:
    """The Sieve command that made `action`, for error messages."""
    return type(action).__name__.lower()


def _merge_flags(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    seen = {f.lower() for f in a}
    return a + tuple(f for f in b if f.lower() not in seen)


def _inbox(mailbox: str) -> bool:
    return mailbox.upper() == "INBOX"


def _fold(old: Action, new: Action) -> Action | None:
    """The two actions as one when RFC 5228 §2.10.3 says they are the same, else None."""
    if isinstance(old, Keep) and isinstance(new, Keep):
        return Keep(_merge_flags(old.flags, new.flags))
    # keep is fileinto "INBOX" (RFC 5228 §2.10.3): one copy, the first action's form.
    if isinstance(old, Keep) and isinstance(new, FileInto) and _inbox(new.mailbox):
        return Keep(_merge_flags(old.flags, new.flags))
    if isinstance(old, FileInto) and isinstance(new, Keep) and _inbox(old.mailbox):
        return FileInto(old.mailbox, _merge_flags(old.flags, new.flags), old.create, False)
    if isinstance(old, FileInto) and isinstance(new, FileInto) and old.mailbox == new.mailbox:
        return FileInto(old.mailbox, _merge_flags(old.flags, new.flags),
                        old.create or new.create, old.copy and new.copy)
    if isinstance(old, Redirect) and isinstance(new, Redirect) and old.address.lower() == new.address.lower():
        return Redirect(old.address, old.copy and new.copy)
    if isinstance(old, Discard) and isinstance(new, Discard):
        return old
    return None


# --- commands -------------------------------------------------------------------------------


def split_flags(values: Iterable[str]) -> list[str]:
    """Flags from strings of space-separated flags, first spelling kept (RFC 5232 §3)."""
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        for flag in value.split():
            if flag.lower() not in seen:
                seen.add(flag.lower())
                out.append(flag)
    return out


def _action_flags(run: Run, frame: Frame, call: Call) -> tuple[str, ...]:
    if ":flags" in call.tags:
        return tuple(split_flags(run.sl(frame, call.tags[":flags"])))
    return tuple(run.flags) if "imap4flags" in frame.script.capabilities else ()


def _keep(run: Run, frame: Frame, call: Call) -> None:
    run.add(call, Keep(_action_flags(run, frame, call)))
    run.implicit_keep = False


def _fileinto(run: Run, frame: Frame, call: Call) -> None:
    mailbox = run.s(frame, call.args[0])
    if not mailbox:
        raise SieveRuntimeError(call.line, call.column, "fileinto needs a mailbox name")
    copy = ":copy" in call.tags
    run.add(call, FileInto(mailbox, _action_flags(run, frame, call), ":create" in call.tags, copy))
    if not copy:
        run.implicit_keep = False


def _redirect(run: Run, frame: Frame, call: Call) -> None:
    address = run.s(frame, call.args[0]).strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    if not REDIRECT_ADDRESS.match(address):
        raise SieveRuntimeError(call.line, call.column, f"redirect to an invalid address {address!r}")
    copy = ":copy" in call.tags
    if not any(isinstance(a, Redirect) and a.address.lower() == address.lower() for a in run.actions):
        if run.redirects >= run.limits.max_redirects:
            raise SieveRuntimeError(call.line, call.column, f"more than {run.limits.max_redirects} redirects")
        run.redirects += 1
    run.add(call, Redirect(address, copy))
    if not copy:
        run.implicit_keep = False


def _discard(run: Run, frame: Frame, call: Call) -> None:
    run.add(call, Discard(call.line))
    run.implicit_keep = False


def _stop(run: Run, frame: Frame, call: Call) -> None:
    raise _Stop


def _reject(run: Run, frame: Frame, call: Call) -> None:
    run.add(call, Reject(run.s(frame, call.args[0]), call.name == "ereject"))
    run.implicit_keep = False


def _flag_command(run: Run, frame: Frame, call: Call) -> None:
    variable, values = call.args
    flags = split_flags(run.sl(frame, values))
    if variable is None:
        current = run.flags
    else:
        current = split_flags([run.lookup(frame)(run.s(frame, variable).lower())])
    if call.name == "setflag":
        result = flags
    elif call.name == "addflag":
        result = split_flags([*current, *flags])
    else:
        gone = {f.lower() for f in flags}
        result = [f for f in current if f.lower() not in gone]
    if variable is None:
        run.flags = result
    else:
        run.set_variable(frame, call, run.s(frame, variable), " ".join(result))


def _quote_wildcards(value: str) -> str:
    return value.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def _set(run: Run, frame: Frame, call: Call) -> None:
    value = run.s(frame, call.args[1])
    tags = call.tags
    # RFC 5229 §4.1: modifiers apply by precedence, highest first. Case changes are ASCII
    # only, as in Pigeonhole (the RFC leaves non-ASCII to the implementation).
    if ":lower" in tags:
        value = value.translate(_TO_LOWER)
    elif ":upper" in tags:
        value = value.translate(_TO_UPPER)
    if ":lowerfirst" in tags:
        value = value[:1].translate(_TO_LOWER) + value[1:]
    elif ":upperfirst" in tags:
        value = value[:1].translate(_TO_UPPER) + value[1:]
    if ":quotewildcard" in tags:
        value = _quote_wildcards(value)
    if ":length" in tags:
        value = str(len(value))
    run.set_variable(frame, call, str(call.args[0]), value)


def _include(run: Run, frame: Frame, call: Call) -> None:
    key = (":global" in call.tags, str(call.args[0]))
    target = frame.script.includes.get(key)
    if target is None:
        if ":optional" in call.tags:
            return
        raise SieveRuntimeError(call.line, call.column, f"included script {key[1]!r} not found")
    if ":once" in call.tags and key in run.included:
        return
    run.included.add(key)
    if run.include_depth >= run.limits.max_include_depth:
        raise SieveRuntimeError(call.line, call.column, f"includes nested deeper than {run.limits.max_include_depth}")
    run.include_depth += 1
    try:
        inner = Frame(target, "variables" in target.capabilities)
        try:
            run.block(inner, target.commands)
        except _Return:
            pass
    finally:
        run.include_depth -= 1


def _return(run: Run, frame: Frame, call: Call) -> None:
    raise _Return


def _global(run: Run, frame: Frame, call: Call) -> None:
    for name in call.args[0]:
        frame.global_names.add(str(name).lower())


def _require(run: Run, frame: Frame, call: Call) -> None:
    return


# --- tests ----------------------------------------------------------------------------------


def address_part(address: ParsedAddress, part: str, delimiter: str) -> str | None:
    """RFC 5228 §2.7.4 and RFC 5233 §4: None when the part does not exist (no detail)."""
    if part == ":localpart":
        return address.local
    if part == ":domain":
        return address.domain or ""
    if part in (":user", ":detail"):
        local = address.local
        cut = min((i for i in (local.find(d) for d in delimiter) if i >= 0), default=-1) if delimiter else -1
        if cut < 0:
            return local if part == ":user" else None
        return local[:cut] if part == ":user" else local[cut + 1 :]
    return address.full()


def _part(call: Call) -> str:
    for tag in (":localpart", ":domain", ":user", ":detail"):
        if tag in call.tags:
            return tag
    return ":all"


def _address(run: Run, frame: Frame, call: Call) -> bool:
    part, delimiter = _part(call), run.env.subaddress_delimiter
    values: list[str] = []
    for name in run.sl(frame, call.args[0]):
        for address in run.headers.addresses(name):
            value = address_part(address, part, delimiter)
            if value is not None:
                values.append(value)
    return run.matched(frame, call, values, run.sl(frame, call.args[1]))


def _envelope(run: Run, frame: Frame, call: Call) -> bool:
    part, delimiter = _part(call), run.env.subaddress_delimiter
    values: list[str] = []
    message = run.message
    for name in run.sl(frame, call.args[0]):
        raw = {"from": message.envelope_from, "to": message.envelope_to, "auth": message.auth}.get(name.lower())
        if raw is None:
            continue
        address = envelope_address(raw)
        if address is None:
            continue
        if address.local == "" and address.domain is None and part != ":all":
            continue  # the null reverse-path has only the :all part, "" (RFC 5228 §5.4)
        value = address_part(address, part, delimiter)
        if value is not None:
            values.append(value)
    return run.matched(frame, call, values, run.sl(frame, call.args[1]))


def _header(run: Run, frame: Frame, call: Call) -> bool:
    values = [v for name in run.sl(frame, call.args[0]) for v in run.headers.values(name)]
    return run.matched(frame, call, values, run.sl(frame, call.args[1]))


def _exists(run: Run, frame: Frame, call: Call) -> bool:
    return all(run.headers.exists(name) for name in run.sl(frame, call.args[0]))


def _size(run: Run, frame: Frame, call: Call) -> bool:
    size = len(run.message.raw)
    limit = int(call.args[0])
    return size > limit if ":over" in call.tags else size < limit


def _not(run: Run, frame: Frame, call: Call) -> bool:
    return not run.test(frame, call.tests[0])


def _allof(run: Run, frame: Frame, call: Call) -> bool:
    return all(run.test(frame, t) for t in call.tests)


def _anyof(run: Run, frame: Frame, call: Call) -> bool:
    return any(run.test(frame, t) for t in call.tests)


def _string(run: Run, frame: Frame, call: Call) -> bool:
    values = run.sl(frame, call.args[0])
    if call.match.kind == ":count":
        values = [v for v in values if v]  # RFC 5229 §5: empty strings are not counted
    return run.matched(frame, call, values, run.sl(frame, call.args[1]))


def _hasflag(run: Run, frame: Frame, call: Call) -> bool:
    variables, keys = call.args
    if variables is None:
        flags = list(run.flags)
    else:
        get = run.lookup(frame)
        flags = split_flags([get(v.lower()) for v in run.sl(frame, variables)])
    return run.matched(frame, call, flags, run.sl(frame, keys))


CommandFn = Callable[[Run, Frame, Call], None]
TestFn = Callable[[Run, Frame, Call], bool]

COMMANDS: dict[str, CommandFn] = {
    "require": _require, "keep": _keep, "fileinto": _fileinto, "redirect": _redirect,
    "discard": _discard, "stop": _stop, "reject": _reject, "ereject": _reject,
    "setflag": _flag_command, "addflag": _flag_command, "removeflag": _flag_command,
    "set": _set, "include": _include, "return": _return, "global": _global,
}
TESTS: dict[str, TestFn] = {
    "address": _address, "envelope": _envelope, "header": _header, "exists": _exists,
    "size": _size, "true": lambda run, frame, call: True, "false": lambda run, frame, call: False,
    "not": _not, "allof": _allof, "anyof": _anyof, "string": _string, "hasflag": _hasflag,
}


def run_script(script: SieveScript, message: SieveMessage, env: SieveEnvironment | None = None,
               *, limits: SieveLimits | None = None) -> SieveResult:
    """Run `script` on `message`; never raises (runtime errors -> implicit keep + errors)."""
    run = Run(message, env or SieveEnvironment(), limits or SieveLimits())
    try:
        run.run_script(script)
    except SieveCpuLimit as e:
        return SieveResult([Keep()], [f"{script.name}: {e}"], True, message.raw, [], out_of_time=True)
    except SieveRuntimeError as e:
        return SieveResult([Keep()], [f"{script.name}: {e}"], True, message.raw, [])
    except RecursionError:  # defensive: compile-time nesting bounds make this unreachable
        return SieveResult([Keep()], [f"{script.name}: script nested too deeply"], True, message.raw, [])
    except Exception as e:  # a bug of ours must not fail a delivery: keep it and say so
        return SieveResult([Keep()], [f"{script.name}: internal error {type(e).__name__}: {e}"], True,
                           message.raw, [])
    actions = run.actions
    if run.implicit_keep:
        actions.append(Keep(tuple(run.flags)))
    edited = run._headers.edited(message.raw) if run._headers is not None else message.raw
    return SieveResult(actions, [], run.implicit_keep, edited, run.duplicates,
                       run.stopped)


__all__ = ["AddHeader", "DeleteHeader", "DuplicateMark", "Run", "SieveResult", "run_script"]
