"""One line per change an administrator makes with the CLI, appended to ``DATA/admin.log``.

The running server cannot see who changed its directory or queue, so the command that makes the
change writes the line itself, after it succeeded: the OS user (and the ``sudo`` user behind
it), the command, its target and the rest of its arguments (never a password: passwords only
come from stdin or the environment, DESIGN §5). Same format as the server's log
(``[server] log_format``); appends of one short line are atomic, so concurrent commands do not
interleave.
"""
from __future__ import annotations

import logging
import os
import pwd
import shlex
import sys
from pathlib import Path

from postoffice import logevents
from postoffice.config import ConfigError, load_config

__all__ = ["ADMIN_LOG", "record"]

ADMIN_LOG = "admin.log"
# The commands that change something; reading ones (list, show, export, backup) leave no line.
_CHANGES = {
    "init": 0, "import": 0, "share": 0, "restore": 0,
    "user": {"add", "passwd", "quota", "remove"},
    "domain": {"add", "remove"},
    "alias": {"add", "remove"},
    "queue": {"retry", "remove", "hold", "release", "flush"},
    "dkim": {"rotate", "retire"},
    "block": {"add", "remove"},
    "allow": {"add", "remove"},
    "sieve": {"put", "activate"},
    "fetch": {"add", "remove"},
}
_VALUE_OPTIONS = {"--data", "--quota", "--with", "--rights", "--into", "--domain", "--hostname",
                  "--mailbox", "--format", "--reason", "--to", "--from"}


def record(argv: list[str]) -> None:
    """Log `argv` (without the program name) if it is a change; quietly nothing otherwise."""
    words = [a for a in _positionals(argv)]
    if "--help" in argv or not words or words[0] not in _CHANGES:  # help changes nothing
        return
    subcommands = _CHANGES[words[0]]
    if isinstance(subcommands, set):
        if len(words) < 2 or words[1] not in subcommands:
            return
        command, rest = " ".join(words[:2]), words[2:]
    else:
        command, rest = words[0], words[1:]
    data_dir = Path(_option(argv, "--data") or os.environ.get("POSTOFFICE_DATA") or "data")
    try:
        log_format = load_config(data_dir).server.log_format
    except (ConfigError, OSError):
        return  # not a data directory (a failed restore, say): nothing changed there to log
    handler: logging.Handler
    try:
        handler = logging.FileHandler(data_dir / ADMIN_LOG, encoding="utf-8")
    except OSError as exc:
        print(f"warning: could not write the admin log {data_dir / ADMIN_LOG}: {exc.strerror}", file=sys.stderr)
        return
    handler.setFormatter(logevents.formatter(log_format))
    events = logevents.log
    saved = events.level
    events.addHandler(handler)
    events.setLevel(logging.INFO)
    try:
        logevents.admin_change(_os_user(), command, rest[0] if rest else "",
                               sudo_user=os.environ.get("SUDO_USER"), args=shlex.join(argv))
    finally:
        events.removeHandler(handler)
        events.setLevel(saved)
        handler.close()


def _positionals(argv: list[str]) -> list[str]:
    words, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in _VALUE_OPTIONS
        else:
            words.append(arg)
    return words


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
    return None


def _os_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())
