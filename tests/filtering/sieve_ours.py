"""Our interpreter on a conformance case, its result in `conformance_form.Outcome` form.

The environment matches what sieve-test is configured with in pigeonhole.py: the same existing
mailboxes, the spam score from the message's X-Spam-Score (0..10 -> percent), no virus scan,
the include directories, and the RFC 5183 items sieve-test reports for its own context
(location "MS", phase "post", the host name), which are facts about where a script runs, not
about the language. A Vacation action goes through the delivery's own vacation code
(filtering/vacation.py: the RFC 5230 §4.5 checks, then the reply as it is sent).
"""
from __future__ import annotations

import email.parser
import socket
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
from pigeonhole import EXISTING_MAILBOXES, SPAM_MAX

from postoffice.delivery import Envelope as SmtpEnvelope
from postoffice.filtering import vacation as executor
from postoffice.filtering.pipeline import IncomingMessage
from postoffice.filtering.sieve import (
    AddHeader,
    DeleteHeader,
    Discard,
    FileInto,
    Keep,
    Redirect,
    Reject,
    SieveEnvironment,
    SieveError,
    SieveLimits,
    SieveMessage,
    Vacation,
    compile_script,
    run_script,
)

LIMITS = SieveLimits()


def spam_percent(raw: bytes) -> float | None:
    headers = email.parser.BytesHeaderParser().parsebytes(raw)
    value = headers.get("X-Spam-Score")
    if value is None:
        return None
    return min(100.0, float(value) * 100 / SPAM_MAX)


def environment(raw: bytes) -> SieveEnvironment:
    host = socket.gethostname()
    return SieveEnvironment(
        items={"location": "MS", "phase": "post", "domain": host, "host": host},
        mailbox_exists=lambda name: name in EXISTING_MAILBOXES,
        duplicate_seen=lambda id_, seconds: False, spam_percent=spam_percent(raw))


def run_ours(script_text: str, message: Path, envelope: Envelope, include_dir: Path, *,
             execute: bool) -> Outcome:
    def loader(name: str, is_global: bool) -> str | None:
        path = include_dir / ("global" if is_global else "personal") / f"{name}.sieve"
        return path.read_text(encoding="utf-8") if path.is_file() else None

    raw = message.read_bytes()
    try:
        script = compile_script(script_text, name="case", include_loader=loader)
    except SieveError as error:
        return Outcome(compile_error=error.line, detail=str(error))
    result = run_script(script, SieveMessage(raw, envelope.sender, envelope.recipient), environment(raw))
    if result.errors:
        return Outcome(actions=("store INBOX",), failed=True, detail="; ".join(result.errors))
    actions: set[str] = set()
    # One copy per mailbox, flags merged, INBOX in any case: as the delivery files them
    # (sieve_delivery._unique; RFC 3501 5.1: INBOX is case-insensitive).
    stores: dict[str, tuple[set[str], bool]] = {}

    def file_into(mailbox: str, flags: tuple[str, ...], *, create: bool) -> None:
        name = "INBOX" if mailbox.upper() == "INBOX" else mailbox
        old_flags, old_create = stores.get(name, (set(), False))
        stores[name] = (old_flags | set(flags), old_create or create)

    vacation: VacationReply | None = None
    for action in result.actions:
        if isinstance(action, Keep):
            file_into("INBOX", action.flags, create=False)
        elif isinstance(action, FileInto):
            file_into(action.mailbox, action.flags, create=action.create)
        elif isinstance(action, Redirect):
            actions.add(f"redirect {action.address}")
        elif isinstance(action, Discard):
            actions.add("discard")
        elif isinstance(action, Reject):
            actions.add(f"reject {reason_form(action.reason)}")
        elif isinstance(action, Vacation):
            actions.add(f"vacation seconds={action.seconds}")
            vacation = vacation_reply(action, raw, envelope)
        elif isinstance(action, (AddHeader, DeleteHeader)):
            pass  # compared through the edited message
        else:
            actions.add(f"unknown {action!r}")
    actions |= {store_form(name, tuple(flags), create=create) for name, (flags, create) in stores.items()}
    if result.duplicates:
        actions.add(f"track duplicate x{len(result.duplicates)}")
    outcome = Outcome(actions=tuple(sorted(actions)))
    if not execute:
        return outcome
    head = result.message.replace(b"\r\n", b"\n").partition(b"\n\n")[0]
    return outcome.with_execution(vacation=vacation, headers=header_fields(head.decode("utf-8", "replace")))


def store_form(mailbox: str, flags: tuple[str, ...], *, create: bool) -> str:
    form = f"store {mailbox}"
    if flags:
        form += f" flags={flags_form(flags)}"
    return form + (" :create" if create else "")


def vacation_reply(action: Vacation, raw: bytes, envelope: Envelope) -> VacationReply | None:
    """The reply the delivery executor sends for `action` (filtering/vacation.py), or None when
    its RFC 5230 §4.5 checks send none. The account is the recipient without its detail."""
    user, _, domain = envelope.recipient.rpartition("@")
    account = f"{user.split('+', 1)[0]}@{domain}"
    incoming = IncomingMessage(SmtpEnvelope(envelope.sender, (envelope.recipient,)), raw)
    if executor.why_no_reply(incoming, (account, envelope.recipient), action) is not None:
        return None
    _, reply = executor.vacation_reply(action, account)
    return parse_reply(action.recipient, reply.decode("utf-8", "replace"))
