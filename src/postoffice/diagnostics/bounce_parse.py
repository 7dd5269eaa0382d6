"""Read a bounce: who did not get the message, which server refused it, its status and reply.

    try:
        bounced = parse_bounce(raw)            # one BouncedRecipient per recipient
    except NotABounce as error:
        print(error)                           # one sentence: why this is not a bounce
    for r in bounced:
        r.recipient, r.status, r.remote_mta, r.reply, r.action

Two sources, the first that names a recipient wins:

- The machine-readable report: message/delivery-status (RFC 3464) or its UTF-8 form
  message/global-delivery-status (RFC 6533), one entry per per-recipient block whose Action is a
  failure or a delay. A report that only says "delivered", "relayed" or "expanded" is a success
  notice, not a bounce.
- The notice written for people, for the servers that send no report (or an empty one): the
  shapes that Postfix, qmail (and Yahoo's and GoDaddy's qmail), Exim, Sendmail, Exchange 5.5 to
  2019, Gmail, Lotus Domino, Netscape, SMTP32 and others write. It is read only when the message
  looks like a bounce (from MAILER-DAEMON or postmaster, a null Return-Path, a bounce subject,
  X-Failed-Recipients), so a letter that quotes `<bob@example.org>:` is not taken for one.

Implementation notes:

- `recipient` is the address the sender wrote: Original-Recipient when the report gives an
  RFC 822 one (the Final-Recipient may be an alias's target or an X.400 name), and the address
  before "expanded from" in the notices of Postfix and Sendmail.
- `status` is the enhanced status code (RFC 3463): the report's Status, or the one in the reply
  when the Status is only the generic X.0.0 of the same class; without any, the class of the
  SMTP reply code ("550" -> "5.0.0"), and without that "5.0.0" for a failure and "4.0.0" for a
  delay, which is what the notice says in words.
- The MIME tree comes from `message.mime.parse_message` (never raises, bounded work); nothing
  inside an attached original message (message/rfc822) is read, so the returned mail's own
  addresses and text never pass for the bounce's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from postoffice.message.mime import parse_message
from postoffice.message.mime_headers import decode_words, parse_fields
from postoffice.message.mime_model import BodyPart
from postoffice.message.mime_text import part_text

# A bounce's text is small; a multi-megabyte "notice" is someone else's message: read the start.
MAX_NOTICE_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class BouncedRecipient:
    """One recipient that did not get the message."""

    recipient: str
    status: str  # enhanced status code, "5.1.1"
    remote_mta: str  # the server that refused, "" when the bounce does not name it
    reply: str  # its reply (or the reason the notice gives), on one line
    action: str  # "failed" or "delayed"


class NotABounce(ValueError):
    """The message is no bounce; the text says why in one sentence."""


def parse_bounce(raw: bytes, depth: int = 0) -> list[BouncedRecipient]:
    """The recipients a bounce reports, or NotABounce. A message that is no bounce but carries
    one as an attachment (a bounce forwarded "as attachment" to the postmaster) gives that one's."""
    meta = parse_message(raw)
    root = meta.body
    header = {name: value for name, _, value in reversed(parse_fields(raw[root.header_start:root.body_start]))}
    reports = [_report_text(raw, part) for part in _parts(root) if _is_report(part)]
    found: list[BouncedRecipient] = []
    only_success = False
    for report in reports:
        entries, successes = _from_report(report)
        found += entries
        only_success = only_success or (successes and not entries)
    if not found:
        if only_success:
            raise NotABounce("This is a delivery report saying that the message was delivered (or relayed), "
                             "not a bounce.")
        if not (reports or _looks_like_bounce(header)):
            forwarded = _forwarded_bounce(raw, root, depth)
            if forwarded:
                return forwarded
            raise NotABounce("This message is not a bounce: it has no delivery-status report and does not "
                             "come from a mail server's bounce address (MAILER-DAEMON or postmaster).")
        found = _from_notice(_notice(raw, root), header)
    if any(not entry.reply for entry in found):
        found = _replies_from_notice(found, _notice(raw, root), header)
    if not found:
        raise NotABounce("This looks like a bounce, but it names no recipient that could not be reached, "
                         "neither in a delivery-status report nor in its text.")
    return _unique(found)


def _forwarded_bounce(raw: bytes, root: BodyPart, depth: int) -> list[BouncedRecipient]:
    if depth >= 2:
        return []
    for part in _parts(root):
        if part.message is not None:
            try:
                return parse_bounce(raw[part.body_start:part.end], depth + 1)
            except NotABounce:
                continue
    return []


def _replies_from_notice(found: list[BouncedRecipient], notice: str,
                         header: dict[str, str]) -> list[BouncedRecipient]:
    """A report without Diagnostic-Code (Exchange, Sendmail): the reply its notice gives for the
    same recipient, or the one SMTP reply its transcript shows."""
    said = {entry.recipient.lower(): entry for entry in _from_notice(notice, header)}
    transcript = _reason(notice)
    filled = []
    for entry in found:
        if not entry.reply:
            reply = said[entry.recipient.lower()].reply if entry.recipient.lower() in said else ""
            if not reply and _REPLY_CODE.match(transcript):
                reply = transcript
            remote = entry.remote_mta or (said[entry.recipient.lower()].remote_mta
                                          if entry.recipient.lower() in said else "")
            entry = BouncedRecipient(entry.recipient, _status(entry.status, reply, entry.action), remote, reply,
                                     entry.action)
        filled.append(entry)
    return filled


# --- the MIME tree -------------------------------------------------------------------------


def _parts(part: BodyPart) -> Iterator[BodyPart]:
    """Every part of the bounce itself, depth first; an attached message is not entered."""
    yield part
    for child in part.children:
        yield from _parts(child)


def _is_report(part: BodyPart) -> bool:
    return part.type == "message" and part.subtype in ("delivery-status", "global-delivery-status")


def _report_text(raw: bytes, part: BodyPart) -> str:
    return part_text(raw[part.body_start:part.end], part.encoding, (("charset", "utf-8"),), False)


def _notice(raw: bytes, root: BodyPart) -> str:
    """The text written for people: the first text/plain part outside the report and the
    attached original (text/html when there is no plain one), cut where the copy of the original
    message starts."""
    texts = [p for p in _parts(root) if p.type == "text" and p.subtype in ("plain", "html") and not p.children]
    texts.sort(key=lambda p: p.subtype != "plain")  # stable: plain first, document order within
    if not texts:
        return ""
    part = texts[0]
    text = part_text(raw[part.body_start:part.end][: MAX_NOTICE_CHARS * 4], part.encoding, part.params,
                     part.subtype == "html")[:MAX_NOTICE_CHARS]
    cut = _ORIGINAL_FOLLOWS.search(text)
    return text[: cut.start()] if cut else text


_ORIGINAL_FOLLOWS = re.compile(
    r"^[ \t>-]*(?:-+ *)?(?:Below this line is a copy of the message|This is a copy of the message"
    r"|(?:The )?Original message (?:follows|as received)|-+ *Original message *-+|Original message headers"
    r"|Message header follows|Returned message|Undelivered message|Original message attached"
    r"|Below the next line is a copy)",
    re.IGNORECASE | re.MULTILINE,
)


# --- RFC 3464 / RFC 6533 reports -----------------------------------------------------------

_FAILED_ACTIONS = {"failed": "failed", "failure": "failed", "error": "failed", "delayed": "delayed",
                   "delay": "delayed"}
_SUCCESS_ACTIONS = {"delivered", "relayed", "expanded"}


def _blocks(text: str) -> list[dict[str, str]]:
    """The report's groups of fields (RFC 3464 §2.1: separated by empty lines)."""
    blocks = []
    for chunk in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").strip("\n")):
        fields = {name: value for name, _, value in reversed(parse_fields(chunk.encode("utf-8", "replace")))}
        if fields:
            blocks.append(fields)
    return blocks


def _from_report(text: str) -> tuple[list[BouncedRecipient], bool]:
    """Entries for failed and delayed recipients, and whether any recipient was a success."""
    found = []
    success = False
    for fields in _blocks(text):
        if "final-recipient" not in fields and "original-recipient" not in fields:
            continue  # the per-message group (Reporting-MTA, Arrival-Date)
        action_word = fields.get("action", "failed").split(None, 1)[0].lower() if fields.get("action") else "failed"
        if action_word in _SUCCESS_ACTIONS:
            success = True
            continue
        action = _FAILED_ACTIONS.get(action_word, "failed")
        recipient = _address_field(fields.get("original-recipient", "")) or _address_field(
            fields.get("final-recipient", ""), any_type=True)
        if not recipient:
            continue
        diagnostic = _after_type(fields.get("diagnostic-code", ""))
        status_field = fields.get("status", "").strip()
        reply = _one_line(diagnostic)
        remote = _remote_mta(fields.get("remote-mta", ""))
        said_host, reply = _split_said(reply)
        remote = remote or said_host
        if not reply:
            # No Diagnostic-Code: a comment after the Status ("5.0.0 (recipient reached disk
            # quota)"), or a Status that is a whole SMTP reply, is what the report says.
            comment = re.sub(r"^[245]\.\d{1,3}\.\d{1,3}\s*", "", status_field).strip()
            reply = _one_line(comment.strip("()") if comment.startswith("(") else comment)
        if not reply:
            said = re.search(r"\((.+)\)", fields.get("action", ""))  # "failed (Bad destination mailbox address)"
            reply = said.group(1).strip() if said else ""
        found.append(BouncedRecipient(recipient, _status(status_field, reply, action), remote, reply, action))
    return found, success


def _after_type(value: str) -> str:
    """`smtp; 550 ...` -> `550 ...` (RFC 3464 §2.3.6: diagnostic-type ";" *text)."""
    kind, semi, rest = value.partition(";")
    if semi and re.fullmatch(r"\s*[A-Za-z][\w-]*\s*", kind):
        return rest.strip()
    return value.strip()


_XTEXT = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")


def _address_field(value: str, any_type: bool = False) -> str:
    """`rfc822; bob@example.org` -> `bob@example.org`; `utf-8;` with RFC 6533 \\x{..} escapes
    decoded. Other address types (x400) only when `any_type` (nothing better is given)."""
    kind, semi, rest = value.partition(";")
    if semi:
        kind = kind.strip().lower()
        if kind not in ("rfc822", "utf-8") and not any_type:
            return ""
        address = rest
    else:
        address = value
    address = _XTEXT.sub(lambda m: chr(int(m.group(1), 16)), address).strip().strip("<>").strip()
    return address if any_type or "@" in address else ""


def _remote_mta(value: str) -> str:
    """`dns; mx.example.org` -> `mx.example.org` (comments after it dropped)."""
    host = _after_type(value).split("(", 1)[0].strip()
    return host.split()[0].strip("[]") if host else ""


# --- what every source shares: the reply, its host, the status ------------------------------

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
_REPLY_CODE = re.compile(r"(?<![\w.\[/:-])([45])\d\d(?=[ -]|$)")
# Only at the start: a receiver that verified the sender quotes the sender's MX the same way
# inside its own reply ("Sender address rejected: ... host mx.example.com[...] said: 550 ...").
_SAID = re.compile(r"\s*host\s+([\w.-]+)\s*\[[^\]]*\]\s*said:\s*", re.IGNORECASE)
_EXIM_HOST = re.compile(r"\bhost\s+([\w.-]+)\s+\[[^\]]*\]:?\s*", re.IGNORECASE)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _split_said(reply: str) -> tuple[str, str]:
    """Postfix's `host mx.example.org[192.0.2.1] said: 550 ...` -> (`mx.example.org`, `550 ...`)."""
    said = _SAID.match(reply)
    if said:
        return said.group(1), reply[said.end():].strip()
    return "", reply


def _status(status_field: str, reply: str, action: str) -> str:
    declared = _ENHANCED.match(status_field)
    in_reply = _ENHANCED.search(reply)
    if declared:
        status = declared.group(0)
        # Postfix and others write 5.0.0 when the remote reply carried no code of its own they
        # read; a specific code in the reply itself says more.
        if status.endswith(".0.0") and in_reply and in_reply.group(1) == status[0]:
            return in_reply.group(0)
        return status
    if in_reply and in_reply.group(1) in "45":
        return in_reply.group(0)
    code = _REPLY_CODE.search(reply) or _REPLY_CODE.search(status_field)
    if code:
        return f"{code.group(1)}.0.0"
    return "4.0.0" if action == "delayed" else "5.0.0"


# --- notices for people --------------------------------------------------------------------

_BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery|mailer daemon|mail administrator"
                            r"|mail system", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status|failure|failed|notification|report|problem)|returned mail"
    r"|failure notice|non-?delivery|delivery has failed|not delivered|could not be delivered|failed mail"
    r"|delayed mail|message delayed|returned to sender|mail delivery", re.IGNORECASE)
_EMAIL = re.compile(r"[A-Za-z0-9._%+'!#$&*/?^`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _looks_like_bounce(header: dict[str, str]) -> bool:
    return bool(header.get("x-failed-recipients")
                or header.get("return-path", "").strip() == "<>"
                or _BOUNCE_SENDER.search(header.get("from", ""))
                or _BOUNCE_SUBJECT.search(decode_words(header.get("subject", ""))))


def _from_notice(text: str, header: dict[str, str]) -> list[BouncedRecipient]:
    delayed = bool(re.search(r"\b(?:delayed|still being retried|will (?:keep )?try(?:ing)? again|warning)\b",
                             header.get("subject", ""), re.IGNORECASE))
    action = "delayed" if delayed else "failed"
    pairs = (_angle_paragraphs(text) or _exim_list(text) or _listed_after_intro(text) or _one_liners(text)
             or _failed_recipients_header(text, header))
    found = []
    for recipient, reason in pairs:
        remote, reply = _split_said(_one_line(reason))
        if not remote:
            exim = _EXIM_HOST.search(reply)
            if exim:
                remote = exim.group(1)
                code = _REPLY_CODE.search(reply, exim.end())
                reply = reply[code.start():] if code else reply[exim.end():]
        found.append(BouncedRecipient(recipient, _status("", reply, action), remote, reply, action))
    return found


def _angle_paragraphs(text: str) -> list[tuple[str, str]]:
    """Postfix and qmail: a paragraph that starts with `<address>:` (Postfix may add
    `(expanded from <alias>)`), the reason after it."""
    found = []
    for paragraph in re.split(r"\n[ \t]*\n", text):
        m = re.match(r"\s*<([^<>\s]+@[^<>\s]+)>(?:\s*\(expanded from <([^<>\s]*)>\))?:[ \t]*(.*)\Z",
                     paragraph, re.DOTALL)
        if m:
            found.append((m.group(2) or m.group(1), m.group(3)))
    return found


def _exim_list(text: str) -> list[tuple[str, str]]:
    """Exim: after "following address(es) failed:", each address indented by two spaces (Exim 3
    adds a colon), its reason indented further."""
    intro = re.search(r"following address(?:\(es\))? failed:?\s*\n", text, re.IGNORECASE)
    if not intro:
        return []
    found: list[tuple[str, list[str]]] = []
    for line in text[intro.end():].split("\n"):
        address = re.fullmatch(r" {1,3}<?(\S+@[^\s:>]+)>?:?\s*", line)
        if address:
            found.append((address.group(1), []))
        elif found and re.match(r"\s{4,}|\t", line):
            found[-1][1].append(line)
        elif line.strip() and found:
            break
    return [(address, "\n".join(lines)) for address, lines in found]


_INTRO = re.compile(
    r"did not reach the following recipient\(?s?\)?:?"
    r"|delivery to the following recipients? failed(?: permanently)?[:.]?"
    r"|was not delivered to:"
    r"|following recipients did not receive (?:your|this) message:?"
    r"|delivery has failed to these recipients or (?:distribution lists|groups):?"
    r"|following addresses had (?:permanent fatal|transient non-fatal) errors -*"
    r"|could not be delivered to the following recipients?:?"
    r"|message could not be delivered to:?",
    re.IGNORECASE)
_TIME_WRAP = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?\s*[+-]\d{4}\s*")
_REASONS = [
    re.compile(r"The error that the other server returned was:\s*(.+?)(?:\n\s*\n|\Z)", re.DOTALL),
    re.compile(r"The response from the remote server was:\s*(.+?)(?:\n\s*\n|\Z)", re.DOTALL),
    re.compile(r"Remote Server returned '([^']+)'"),
    re.compile(r"^\s*#\s*(\d{3}[ -].+?)(?:##|\n\s*\n)", re.DOTALL | re.MULTILINE),
    re.compile(r"\bbecause:\s*\n\s*(.+?)(?:\n\s*\n|\Z)", re.DOTALL),
    re.compile(r"due to the following reason:\s*\n\s*(.+?)(?:\n\s*\n|\Z)", re.DOTALL),
    re.compile(r"^Reason:\s*(.+?)(?:\n\s*\n|\Z)", re.DOTALL | re.MULTILINE),
]


def _listed_after_intro(text: str) -> list[tuple[str, str]]:
    """Exchange, Gmail, Domino, Netscape, Sendmail: a sentence that introduces the recipients,
    one per line; a line indented under an address is its reason."""
    found: list[tuple[str, list[str]]] = []
    intros = list(_INTRO.finditer(text))
    ends = [intro.start() for intro in intros[1:]] + [len(text)] if intros else []
    for intro, end in zip(intros, ends, strict=True):
        # Up to the next introduction (Netscape repeats it per recipient): each line read once.
        lines = text[intro.end():end].split("\n")
        current: tuple[str, list[str]] | None = None
        for line in lines[1:] if lines and not lines[0].strip() else lines:
            if not line.strip() or _TIME_WRAP.fullmatch(line):
                continue  # Exchange 5.5 wraps "ADDRESS on DATE" before the time
            if re.match(r"\s*-{3,}", line) or line.lstrip().startswith("The MTS-ID"):
                break  # the next section (Sendmail's transcript), or Exchange's tracking id
            alone = re.fullmatch(r"\s*(?:[^<>@\s]*\s)?<?(?:mailto:)?([^\s<>@]+@[^\s<>]+?)>?[.;]?\s*", line)
            indented = bool(re.match(r"\s", line))
            if alone:
                current = (alone.group(1), [])
                found.append(current)
                continue
            email = _EMAIL.search(line)
            if current is not None and indented:
                current[1].append(line)
            elif email and not indented and re.fullmatch(r"(?:\S*[=:]|c=[^@]*[=:])?", line[:email.start()]):
                # "bob@example.org on DATE", X.400's "c=US;...;dda:SMTP=bob@example.org;"
                current = (email.group(0), [line[email.end():]])
                found.append(current)
            else:
                break
    pairs = []
    for address, lines in found:
        reason = _one_line(" ".join(lines))
        expanded = re.search(r"\(?expanded from:?\s*<?([^\s<>()]+@[^\s<>()]+)>?\)?", reason)
        if expanded:
            address, reason = expanded.group(1), (reason[:expanded.start()] + reason[expanded.end():]).strip()
        reason = re.sub(r"^\(?reason:\s*(.*?)\)?$", r"\1", reason)
        reason = re.sub(r"^[;\s]*on \w{3}, [^;]*?\d{4}(?:\s*\d{1,2}:\d{2}:\d{2}\s*[+-]\d{4})?", "", reason).strip()
        pairs.append((address, reason or _reason(text)))
    return pairs


def _one_liners(text: str) -> list[tuple[str, str]]:
    """SMTP32 ("Delivery failed 20 attempts: ADDRESS") and HotPOP ("Undeliverable Address: ADDRESS")."""
    m = re.search(r"^\s*(?:Delivery failed \d+ attempts|Undeliverable Address):\s*<?(\S+@[^\s>]+)>?", text,
                  re.MULTILINE | re.IGNORECASE)
    if not m:
        return []
    return [(m.group(1), _reason(text) or _one_line(m.group(0)))]


def _failed_recipients_header(text: str, header: dict[str, str]) -> list[tuple[str, str]]:
    """Exim and Gmail name the failed addresses in X-Failed-Recipients."""
    addresses = _EMAIL.findall(header.get("x-failed-recipients", ""))
    return [(address, _reason(text)) for address in addresses]


def _reason(text: str) -> str:
    """The reply or reason a notice gives once for all its recipients."""
    for pattern in _REASONS:
        m = pattern.search(text)
        if m:
            return _one_line(m.group(1))
    # A transcript (Sendmail, Exim): the last SMTP reply line.
    replies = re.findall(r"^\s*([45]\d\d[ -].*)$", text, re.MULTILINE)
    return _one_line(replies[-1]) if replies else ""


def _unique(found: list[BouncedRecipient]) -> list[BouncedRecipient]:
    """One entry per recipient and outcome (Sendmail repeats a block for every attempt)."""
    seen = set()
    result = []
    for entry in found:
        key = (entry.recipient.lower(), entry.status, entry.reply)
        if key not in seen:
            seen.add(key)
            result.append(entry)
    return result
