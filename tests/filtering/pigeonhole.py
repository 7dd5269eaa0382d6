"""Pigeonhole's `sieve-test` (Debian dovecot-sieve) as a reference Sieve implementation.

`Pigeonhole(workdir).run(script, message, envelope)` runs one case twice:
- without -e: the actions the script decides ("Performed actions" / "Implicit keep");
- with -e (only when the case needs it: vacation, editheader): the actions executed, which shows
  whether a vacation reply is really sent (RFC 5230 §4.5: never to lists or auto-submitted mail)
  and the message as stored after header edits. No message leaves the machine: sieve-test
  prints outgoing messages instead of sending them.

Both become a `conformance_form.Outcome`, the form our interpreter's result is compared in.
sieve-test refuses to run as root, so it runs as `nobody` (the work directory is made
world-writable; as any other user it runs as that user) with a Dovecot config of its own
(nothing from /etc/dovecot is read).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conformance_form import (
    Envelope,
    Outcome,
    VacationReply,
    flags_form,
    header_fields,
    parse_reply,
    reason_form,
)

SIEVE_TEST_TIMEOUT = 30.0
# The mailboxes every case starts with (mailboxexists; our run gets the same set).
EXISTING_MAILBOXES = frozenset({"INBOX", "Archive", "Lists"})
SPAM_MAX = 10  # X-Spam-Score of the messages is 0..10 (sieve_spamtest_max_value)

# As root, sieve-test must drop to another user for mail access (it refuses root).
AS_NOBODY = """\
mail_uid = nobody
mail_gid = nogroup
"""
CONFIG = """\
first_valid_uid = 0
first_valid_gid = 0
base_dir = {work}/run
log_path = /dev/stderr
mail_home = {work}/home
mail_location = maildir:{work}/mail:LAYOUT=fs
recipient_delimiter = +
plugin {{
  sieve = file:{personal};active={personal}/.active.sieve
  sieve_global = {global_dir}
  sieve_extensions = +editheader +vacation-seconds +spamtest +spamtestplus +virustest
  sieve_vacation_min_period = {vacation_min}
  sieve_vacation_default_period = 7d
  sieve_vacation_max_period = 90d
  sieve_spamtest_status_type = score
  sieve_spamtest_status_header = X-Spam-Score: ([0-9]+(\\.[0-9]+)?)
  sieve_spamtest_max_value = {spam_max}
  sieve_virustest_status_type = text
  sieve_virustest_status_header = X-Virus-Scan: ([a-z]+)
  sieve_virustest_text_value1 = clean
  sieve_virustest_text_value5 = infected
  sieve_max_redirects = 10
  sieve_max_actions = 32
}}
"""


@dataclass(frozen=True)
class RunOutput:
    returncode: int
    stdout: str
    stderr: str


class Pigeonhole:
    """sieve-test with its own config, include directories and a scratch mail store."""

    def __init__(self, program: str, workdir: Path, include_dir: Path, vacation_min_seconds: int) -> None:
        self.program = program
        self.work = workdir
        self.work.mkdir(parents=True, exist_ok=True)
        personal = self.work / "personal"
        global_dir = self.work / "global"
        shutil.copytree(include_dir / "personal", personal, dirs_exist_ok=True)
        shutil.copytree(include_dir / "global", global_dir, dirs_exist_ok=True)
        (self.work / "run").mkdir(exist_ok=True)
        self.config = self.work / "dovecot.conf"
        self.config.write_text((AS_NOBODY if os.geteuid() == 0 else "") + CONFIG.format(
            work=self.work, personal=personal, global_dir=global_dir,
            vacation_min=f"{vacation_min_seconds}s", spam_max=SPAM_MAX))
        for path in [self.work, *self.work.rglob("*")]:
            os.chmod(path, 0o777 if path.is_dir() else 0o666)

    def _sieve_test(self, script: Path, message: Path, envelope: Envelope, execute: bool) -> RunOutput:
        args = [self.program, "-c", str(self.config), "-C", "-f", envelope.sender, "-a", envelope.recipient,
                "-r", envelope.recipient]
        if execute:
            args.append("-e")
        args += [str(script), str(message)]
        done = subprocess.run(args, capture_output=True, timeout=SIEVE_TEST_TIMEOUT, cwd=self.work)
        return RunOutput(done.returncode, done.stdout.decode("utf-8", "replace"),
                         done.stderr.decode("utf-8", "replace"))

    def _fresh_store(self, mailboxes: frozenset[str]) -> Path:
        """An empty maildir (LAYOUT=fs) with these mailboxes, so executed fileintos succeed."""
        store = self.work / "mail"
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(self.work / "home", ignore_errors=True)
        (self.work / "home").mkdir(mode=0o777)
        os.chmod(self.work / "home", 0o777)
        for name in {"", *(m for m in mailboxes if m.upper() != "INBOX")}:
            for sub in ("cur", "new", "tmp"):
                (store / name / sub).mkdir(parents=True, exist_ok=True)
        for path in [store, *store.rglob("*")]:
            os.chmod(path, 0o777)
        return store

    def run(self, script_text: str, message: Path, envelope: Envelope, *, execute: bool) -> Outcome:
        script = self.work / "case.sieve"
        script.write_text(script_text, encoding="utf-8")
        os.chmod(script, 0o666)
        # sieve-test runs as nobody: it reads a copy in the world-readable work directory.
        message = Path(shutil.copyfile(message, self.work / "case.eml"))
        os.chmod(message, 0o666)
        self._fresh_store(EXISTING_MAILBOXES)
        decided = self._sieve_test(script, message, envelope, execute=False)
        outcome = parse_decided(decided)
        if not execute or outcome.compile_error is not None or outcome.failed:
            return outcome
        store = self._fresh_store(EXISTING_MAILBOXES | stored_mailboxes(outcome.actions))
        executed = self._sieve_test(script, message, envelope, execute=True)
        return outcome.with_execution(
            vacation=parse_vacation(executed),
            headers=stored_headers(store))


COMPILE_ERROR = re.compile(r"^\S+: line (\d+): error: (.*)$", re.M)


# sieve-test goes on after these, with an extension missing: the comparison would be void.
SETUP_TROUBLE = ("failed to load", "ignored unknown extension", "invalid status type", "Fatal: Couldn't")


def parse_decided(out: RunOutput) -> Outcome:
    """The outcome of a run without -e: the printed action list, or the compile error."""
    trouble = [t for t in SETUP_TROUBLE if t in out.stderr]
    if trouble:
        raise RuntimeError(f"sieve-test is not set up as this runner needs: {out.stderr.strip()}")
    if "failed to compile sieve script" in out.stderr:
        first = COMPILE_ERROR.search(out.stderr)
        return Outcome(compile_error=int(first.group(1)) if first else 0, detail=out.stderr.strip())
    if "Performed actions:" not in out.stdout and "final result: failed" not in out.stderr:
        raise RuntimeError(f"sieve-test did not run the script (exit {out.returncode}): {out.stderr.strip()}")
    if "final result: failed" in out.stderr:
        # A runtime error: the script's actions are dropped, the implicit keep files into INBOX
        # (RFC 5228 §2.10.6).
        return Outcome(actions=("store INBOX",), failed=True, detail=out.stderr.strip())
    performed, _, implicit = out.stdout.partition("Implicit keep:")
    actions = parse_action_list(performed) + parse_action_list(implicit)
    # RFC 7352: each duplicate test records its id when the script succeeds; count them.
    tracked = actions.count("track duplicate")
    forms = {a for a in actions if a != "track duplicate"} | ({f"track duplicate x{tracked}"} if tracked else set())
    return Outcome(actions=tuple(sorted(forms)))


def parse_action_list(text: str) -> list[str]:
    """' * store message in folder: X' (+ modifiers), ' * redirect ...' -> normalised strings."""
    actions: list[str] = []
    current: dict[str, str] = {}

    def flush() -> None:
        if not current:
            return
        kind = current["kind"]
        if kind == "store":
            form = f"store {current['mailbox']}"
            if "flags" in current:
                form += f" flags={current['flags']}"
            if "create" in current:
                form += " :create"
            actions.append(form)
        elif kind == "vacation":
            actions.append(f"vacation seconds={current.get('seconds', '?')}")
        else:
            actions.append(current["form"])
        current.clear()

    in_message = False
    for line in text.splitlines():
        if line.startswith("START MESSAGE"):
            in_message = True
            continue
        if line.startswith("END MESSAGE"):
            in_message = False
            continue
        if in_message:
            continue
        stripped = line.strip()
        if stripped.startswith("* "):
            flush()
            body = stripped[2:]
            if body.startswith("store message in folder: "):
                current.update(kind="store", mailbox=body.removeprefix("store message in folder: "))
            elif body.startswith("redirect message to: "):
                address = body.removeprefix("redirect message to: ").strip("<>")
                current.update(kind="other", form=f"redirect {address}")
            elif body == "discard":
                current.update(kind="other", form="discard")
            elif body.startswith("reject message with reason: "):
                reason = reason_form(body.removeprefix("reject message with reason: "))
                current.update(kind="other", form=f"reject {reason}")
            elif body.startswith("send vacation message"):
                current.update(kind="vacation")
            elif body.startswith("track duplicate"):
                current.update(kind="other", form="track duplicate")
            else:
                current.update(kind="other", form=f"unknown {body}")
        elif stripped.startswith("+ add IMAP flags: "):
            current["flags"] = flags_form(stripped.removeprefix("+ add IMAP flags: ").split())
        elif stripped.startswith("+ create mailbox"):
            current["create"] = "1"
        elif stripped.startswith("=> seconds"):
            current["seconds"] = stripped.split(":", 1)[1].strip()
    flush()
    return actions


def stored_mailboxes(actions: tuple[str, ...]) -> frozenset[str]:
    return frozenset(a.split(" ")[1] for a in actions if a.startswith("store "))


def parse_vacation(out: RunOutput) -> VacationReply | None:
    """The vacation reply sieve-test printed (sent), or None when it was not sent."""
    if "sent vacation response" not in out.stderr:
        return None
    # stdout holds each outgoing message followed by "RECIPIENT: addr"; vacation replies are the
    # ones with the null sender, announced on stderr in the same order.
    chunks = re.split(r"\r?\nRECIPIENT: (.*)\nSTART MESSAGE:\nEND MESSAGE\n\n?", out.stdout)
    senders = re.findall(r"sending message from <(.*?)>:", out.stderr)
    for index, sender in enumerate(senders):
        if sender == "" and 2 * index + 1 < len(chunks):
            return parse_reply(recipient=chunks[2 * index + 1], text=chunks[2 * index])
    return None


def stored_headers(store: Path) -> tuple[tuple[str, str], ...] | None:
    """The header fields of the (first) message stored anywhere in the scratch maildir."""
    for path in sorted(store.rglob("*")):
        if path.is_file() and path.parent.name in ("new", "cur"):
            head = path.read_bytes().replace(b"\r\n", b"\n").partition(b"\n\n")[0]
            return header_fields(head.decode("utf-8", "replace"))
    return None
