"""The one form both Sieve implementations' results are compared in (see pigeonhole.py, ours.py).

An `Outcome` is: the compile error's line, or the set of delivery actions as strings
("store MAILBOX flags=\\Seen $x :create", "redirect ADDR", "discard", "reject REASON",
"vacation seconds=N"), whether the run failed at runtime (then only the implicit keep happens),
and, for cases that execute their actions: the vacation reply really sent (or None) and the
message's header fields after editheader.
"""
from __future__ import annotations

import dataclasses
import email.header
import email.utils
import re
from dataclasses import dataclass

SYSTEM_FLAGS = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")}


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipient: str


@dataclass(frozen=True)
class VacationReply:
    recipient: str
    from_: str
    subject: str
    body: str

    def normalised(self) -> VacationReply:
        """Addresses without display names or case, the subject decoded, line ends unified."""
        return VacationReply(
            recipient=bare_address(self.recipient), from_=bare_address(self.from_),
            subject=decode_words(self.subject), body=self.body.replace("\r\n", "\n").strip())


@dataclass(frozen=True)
class Outcome:
    actions: tuple[str, ...] = ()
    compile_error: int | None = None  # the line of the first error
    failed: bool = False
    executed: bool = False
    vacation: VacationReply | None = None
    headers: tuple[tuple[str, str], ...] | None = None
    detail: str = dataclasses.field(default="", compare=False)

    def with_execution(self, vacation: VacationReply | None,
                       headers: tuple[tuple[str, str], ...] | None) -> Outcome:
        return dataclasses.replace(
            self, executed=True, vacation=vacation.normalised() if vacation else None, headers=headers)

    def summary(self) -> str:
        if self.compile_error is not None:
            return f"compile error at line {self.compile_error}"
        parts = list(self.actions)
        if self.failed:
            parts.append("(runtime error)")
        if self.executed:
            parts.append(f"vacation sent: {self.vacation}")
            parts.append(f"headers: {self.headers}")
        return "; ".join(parts)


def parse_reply(recipient: str, text: str) -> VacationReply:
    """A reply message as sent (header and body) in comparable form."""
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    fields = {name.lower(): value for name, value in header_fields(head)}
    return VacationReply(recipient=recipient, from_=fields.get("from", ""),
                         subject=fields.get("subject", ""), body=body.strip()).normalised()


def flags_form(flags: list[str] | tuple[str, ...]) -> str:
    """IMAP flags as one comparable string: system flags in their usual case, sorted, unique."""
    canonical = {SYSTEM_FLAGS.get(f.lower(), f) for f in flags if f}
    return " ".join(sorted(canonical))


def reason_form(text: str) -> str:
    """A reject reason with its line breaks as sieve-test prints them (each CR and LF a '?')."""
    return re.sub(r"\s+", " ", text.replace("\r", "?").replace("\n", "?")).strip(" ?")


def bare_address(text: str) -> str:
    return email.utils.parseaddr(text)[1].lower()


def decode_words(text: str) -> str:
    return str(email.header.make_header(email.header.decode_header(text)))


def header_fields(head: str) -> tuple[tuple[str, str], ...]:
    """(name, value) of each field of a header block, in order: unfolded, RFC 2047 words decoded
    (where an encoder puts its encoded-words is its own choice)."""
    fields: list[list[str]] = []
    for line in head.replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1][1] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append([name.strip(), value.strip()])
    return tuple((name, decode_words(" ".join(value.split()))) for name, value in fields)
