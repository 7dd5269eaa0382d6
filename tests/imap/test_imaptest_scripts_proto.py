"""Every client command of the imaptest scripts (Dovecot's compliance suite) parses.

The scripts (``corpora/imaptest-dovecot/tests``, format in ``scripted_test.md``) are read the
way imaptest reads them: the header up to the first blank line, then commands in three forms
(``ok|no|bad|"" <command>``, ``<command>`` followed later by ``ok [prefix]``, or
``<tag> <command>`` for pipelining), ``{{{ ... }}}`` literals, ``$variables``, and a leading
connection number when there are several connections. Variables get plausible values (the
mailbox "imaptest", separator "/", UIDs and mod-sequences numbers); ``append`` without a
message gets one, as imaptest takes them from the mbox file.

A command the script expects to succeed (ok or no) must parse into an ImapCommand, or a NO from
the parser; one it expects to fail with BAD must give a BAD. The only exceptions are the
extensions this server does not implement, listed in UNSUPPORTED with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from postoffice.imap.proto.events import (
    NEED_DATA,
    CommandError,
    Event,
    ImapCommand,
    LiteralNeeded,
)
from postoffice.imap.proto.parser import ImapServerParser

UNSUPPORTED = [
    (re.compile(r"^(genurlauth|urlfetch|resetkey)\b", re.I), "URLAUTH (RFC 4467) is not implemented"),
    (re.compile(r"\bcatenate \(", re.I), "CATENATE (RFC 4469) is not implemented"),
]  # fmt: skip

COMMAND_WORDS = {
    "append", "authenticate", "capability", "check", "close", "copy", "create", "delete",
    "enable", "examine", "expunge", "fetch", "id", "idle", "list", "login", "logout", "lsub",
    "move", "namespace", "noop", "rename", "search", "select", "starttls", "status", "store",
    "subscribe", "uid", "unselect", "unsubscribe", "sort", "thread", "notify", "genurlauth",
    "urlfetch", "resetkey", "cancelupdate",
}  # fmt: skip
STATUS_WORDS = {"ok", "no", "bad", '""'}
SAMPLE_MESSAGE = b"From: user@example.org\r\nSubject: test\r\n\r\nbody\r\n"


@dataclass
class ScriptCommand:
    script: str
    lineno: int
    expected: str | None  # "ok", "no", "bad", or None (anything)
    text: str  # the command as written, variables substituted, literals as {{{n}}}
    wire: bytes  # tag, command, literals and CRLF as a client sends them


def _variable(name: str) -> str:
    if name.startswith("case:"):
        return name[5:]
    lowered = name.lower()
    if lowered in ("mailbox", "mailbox_url"):
        return "imaptest"
    if lowered in ("sep", "inboxsep"):
        return "/"
    if lowered in ("user", "user2"):
        return "user@example.org"
    if lowered.startswith("username"):
        return "user"
    if lowered.startswith("domain"):
        return "example.org"
    if lowered.startswith("password"):
        return "secret"
    if re.match(r"(uid|srcuid|modseq|highestmodseq|hmodseq|size|pos|\d)", lowered):
        return str(1000 + sum(map(ord, name)) % 1000)
    if lowered.startswith(("uidnext", "uidvalidity")):
        return "4242"
    if lowered.startswith("mail_url"):
        return "imap://user@example.org/imaptest/;uid=1;urlauth=user+user:internal:91"
    return "x"


_VARIABLE = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def substitute(text: str) -> str:
    text = text.replace("$$", "\x00")
    text = _VARIABLE.sub(lambda m: _variable(m.group(1) or m.group(2)), text)
    return text.replace("\x00", "$")


def logical_lines(body: list[bytes]) -> list[tuple[int, str, list[bytes]]]:
    """(line number, text with {{{n}}} placeholders, literal contents) per logical line."""
    out: list[tuple[int, str, list[bytes]]] = []
    i = 0
    while i < len(body):
        lineno = i + 1
        line = body[i].decode("utf-8", "surrogateescape")
        i += 1
        literals: list[bytes] = []
        text = ""
        while line.endswith("{{{"):
            text += line[:-3] + f"{{{{{{{len(literals)}}}}}}}"
            content: list[bytes] = []
            while i < len(body) and not body[i].startswith(b"}}}"):
                content.append(body[i])
                i += 1
            literals.append(b"".join(c + b"\r\n" for c in content))
            line = body[i][3:].decode("utf-8", "surrogateescape") if i < len(body) else ""
            i += 1
        out.append((lineno, text + line, literals))
    return out


def script_commands(path: Path, name: str) -> list[ScriptCommand]:
    raw = path.read_bytes().split(b"\n")
    raw = [line[:-1] if line.endswith(b"\r") else line for line in raw]
    blank = raw.index(b"") if b"" in raw else 0
    header = {}
    for line in raw[:blank]:
        key, sep, value = line.decode("utf-8", "replace").partition(":")
        if sep and not key.startswith("#"):
            header[key.strip().lower()] = value.strip()
    connections = int(header.get("connections", "1"))
    commands: list[ScriptCommand] = []
    for offset, text, literals in logical_lines(raw[blank + 1 :]):
        lineno = blank + 1 + offset
        stripped = text.strip()
        if not stripped or stripped.startswith(("#", "!ifenv", "!ifnenv", "!else", "!endif")):
            continue
        if connections > 1:
            stripped = re.sub(r"^\d+ ", "", stripped)
        if stripped[:2] in ("* ", "! ", "? ") or stripped in ("*", "!"):
            continue  # an expected reply
        first, _, rest = stripped.partition(" ")
        expected: str | None
        if first.lower() in STATUS_WORDS:
            if not rest or rest.startswith("["):
                continue  # the status line of a command written without one
            expected, command = (None if first == '""' else first.lower()), rest
        else:
            second = rest.partition(" ")[0].lower()
            if second in STATUS_WORDS and first.lower() not in COMMAND_WORDS:
                continue  # "<tag> ok": a pipelined command's status line
            expected = None
            # "<command>", or "<tag> <command>" (pipelining)
            command = stripped if first.lower() in COMMAND_WORDS else rest
        command = substitute(command)
        if command.lower().split(" ")[0] == "append" and not literals:
            parts = command.split(" ", 1)
            command = (parts[0] + " imaptest" if len(parts) == 1 else command) + " {{{0}}}"
            literals = [SAMPLE_MESSAGE]
        commands.append(ScriptCommand(name, lineno, expected, command, _wire(command, literals)))
    return commands


def _wire(command: str, literals: list[bytes]) -> bytes:
    pieces = re.split(r"\{\{\{(\d+)\}\}\}", command)
    wire = b"t1 " + pieces[0].encode("utf-8", "surrogateescape")
    for index, after in zip(pieces[1::2], pieces[2::2], strict=True):
        data = literals[int(index)]
        wire += b"{%d}\r\n" % len(data) + data + after.encode("utf-8", "surrogateescape")
    return wire + b"\r\n"


def parse(wire: bytes, max_line: int = 8192) -> list[Event]:
    parser = ImapServerParser(max_line=max_line, max_literal=1 << 20)
    parser.receive_data(wire)
    events: list[Event] = []
    while (event := parser.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def unsupported(command: str) -> str | None:
    for pattern, reason in UNSUPPORTED:
        if pattern.search(command):
            return reason
    return None


def all_commands(corpora: Path) -> list[ScriptCommand]:
    base = corpora / "imaptest-dovecot" / "tests"
    commands = []
    for path in sorted(base.rglob("*")):
        if path.is_file() and path.suffix != ".mbox":
            commands += script_commands(path, str(path.relative_to(base)))
    return commands


def outcome(command: ScriptCommand) -> tuple[Event | None, str | None]:
    """The final event for the command, and a note when the line is over 8192 octets."""
    note = None
    max_line = 8192
    if max(len(line) for line in command.wire.split(b"\r\n")) > 8000:
        note, max_line = "line longer than the default max_line 8192; parsed with 65536", 65536
    events = [e for e in parse(command.wire, max_line) if not isinstance(e, LiteralNeeded)]
    assert len(events) == 1, (command.script, command.lineno, events)
    return events[0], note


def test_scripts_found(corpora: Path) -> None:
    commands = all_commands(corpora)
    scripts = {c.script for c in commands}
    assert len(scripts) >= 60
    assert len(commands) >= 700


def test_every_script_command_parses(corpora: Path) -> None:
    failures = []
    skipped: dict[str, list[str]] = {}
    for command in all_commands(corpora):
        event, _ = outcome(command)
        reason = unsupported(command.text)
        good = isinstance(event, ImapCommand) or (
            isinstance(event, CommandError) and event.status == "NO" and command.expected == "no"
        )
        if command.expected == "bad":
            ok = isinstance(event, CommandError) and event.status == "BAD"
        elif command.expected is None:
            ok = True
        else:
            ok = good
        if not ok and reason is not None:
            skipped.setdefault(reason, []).append(f"{command.script}:{command.lineno}")
            continue
        if not ok or (command.expected is None and not good and reason is None):
            failures.append((command.script, command.lineno, command.text[:100], event))
    assert not failures, "\n".join(map(repr, failures))
    # What fails, and why: extensions this server does not implement, nothing else.
    scripts = {
        reason: sorted({at.split(":")[0] for at in places}) for reason, places in skipped.items()
    }
    assert scripts == {
        UNSUPPORTED[0][1]: ["urlauth", "urlauth-binary", "urlauth2"],
        UNSUPPORTED[1][1]: ["catenate", "catenate-multiappend"],
    }  # fmt: skip


def test_unsupported_commands_are_bad_not_crashes(corpora: Path) -> None:
    for command in all_commands(corpora):
        if unsupported(command.text):
            event, _ = outcome(command)
            assert isinstance(event, CommandError | ImapCommand)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("append", b"t1 append imaptest {%d}\r\n" % len(SAMPLE_MESSAGE)),
        ("select $mailbox${sep}p&AOQA5A-", b"t1 select imaptest/p&AOQA5A-\r\n"),
        ("store 1 flags ($$hello)", b"t1 store 1 flags ($hello)\r\n"),
    ],
)
def test_extraction(tmp_path: Path, text: str, expected: bytes) -> None:
    script = tmp_path / "s"
    script.write_text(f"state: auth\n\nok {text}\n* 1 exists\nok noop\n")
    commands = script_commands(script, "s")
    assert commands[0].expected == "ok"
    assert commands[0].wire.startswith(expected)
    assert commands[1].wire == b"t1 noop\r\n"


def test_only_the_id_script_needs_a_longer_line_limit(corpora: Path) -> None:
    long_lines = [c for c in all_commands(corpora) if outcome(c)[1] is not None]
    assert [(c.script, c.expected) for c in long_lines] == [("id", "ok")]
    (command,) = long_lines
    assert len(command.wire) > 30000  # 30 ID pairs with 1024-octet values (RFC 2971 maxima)
    (event,) = parse(command.wire)  # the default max_line of 8192 refuses it
    assert isinstance(event, CommandError) and event.code == "TOOBIG"
