"""Sieve extensions beyond the core language; importing this module registers them.

- vacation (RFC 5230) and vacation-seconds (RFC 6131): a resolved `Vacation` action.
- editheader (RFC 5293): addheader/deleteheader on the run's header view; Received and
  Auto-Submitted cannot be deleted (§6: they trace mail and stop loops), attempts are ignored.
- date and currentdate (RFC 5260 §4, §5) with :zone/:originalzone and every date part.
- body (RFC 5173) over the message/mime parse: :raw, :content types, :text.
- environment (RFC 5183), spamtest/spamtestplus/virustest (RFC 5235), duplicate (RFC 7352),
  mailboxexists (RFC 5490).
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from email.utils import format_datetime, parsedate_tz

from postoffice.filtering.sieve.actions import AddHeader, DeleteHeader, Vacation
from postoffice.filtering.sieve.errors import SieveRuntimeError
from postoffice.filtering.sieve.interpreter import (
    COMMANDS,
    TESTS,
    DuplicateMark,
    Frame,
    Run,
)
from postoffice.filtering.sieve.matching import test_values
from postoffice.filtering.sieve.validator import Call
from postoffice.message.mime import parse_message
from postoffice.message.mime_model import BodyPart
from postoffice.message.mime_text import decode_transfer, part_text

_FIELD_NAME = re.compile(r"[!-9;-~]+\Z")
_MAILBOX = re.compile(r"[^\s<>@]+@[^\s<>@]+\Z")
_PROTECTED = ("received", "auto-submitted")
_ZONE = re.compile(r"([+-])([0-9]{2})([0-9]{2})\Z")
_MJD_EPOCH = date(1858, 11, 17)  # RFC 5260 §4.2 "julian": the Modified Julian Day

# --- vacation -------------------------------------------------------------------------------


def _vacation(run: Run, frame: Frame, call: Call) -> None:
    if run.vacation_done:
        raise SieveRuntimeError(call.line, call.column, "vacation can run only once per message (RFC 5230 §4)")
    run.vacation_done = True
    tags, limits = call.tags, run.limits
    reason = run.s(frame, call.args[0])
    if ":seconds" in tags:
        seconds = int(tags[":seconds"])
    elif ":days" in tags:
        seconds = int(tags[":days"]) * 86400
    else:
        seconds = limits.vacation_default_seconds
    # RFC 6131 §2 and RFC 5230 §4.1: the site bounds the period; 0 (":seconds 0") is allowed
    # only when the minimum allows it.
    seconds = max(limits.vacation_min_seconds, min(limits.vacation_max_seconds, seconds))
    subject = run.s(frame, tags[":subject"]) if ":subject" in tags else None
    if subject is None:
        original = run.headers.values("subject")
        subject = f"Auto: {original[0]}" if original and original[0] else "Automated reply"
    # An entry that is not an address is ignored, as Pigeonhole does (it can never match).
    given = run.sl(frame, tags[":addresses"]) if ":addresses" in tags else ()
    addresses = tuple(a for a in given if _MAILBOX.match(a))
    from_ = run.s(frame, tags[":from"]) if ":from" in tags else _addressed_as(run, addresses)
    mime = ":mime" in tags
    if ":handle" in tags:
        handle = run.s(frame, tags[":handle"])
    else:  # RFC 5230 §4.2: the same arguments make the same handle
        parts = "\0".join([reason, subject if ":subject" in tags else "", from_ or "", "mime" if mime else ""])
        handle = hashlib.sha256(parts.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    ids = run.headers.values("message-id")
    message_id = ids[0] if ids else None
    refs = run.headers.values("references")
    references = refs[0] if refs else None
    if message_id:
        references = f"{references} {message_id}" if references else message_id
    run.add(call, Vacation(run.message.envelope_from, from_, subject, reason, handle, seconds,
                           addresses, mime, message_id, references))


_RECIPIENT_FIELDS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")


def _addressed_as(run: Run, addresses: tuple[str, ...]) -> str | None:
    """The owner's address the sender wrote to, for the reply's From (RFC 5230 §5.4 with
    errata 2035, as Pigeonhole does): the envelope recipient when To/Cc/Bcc (or Resent-*)
    name it (e.g. "bob+work@"), else the first :addresses entry they name; None: neither is
    there, the executor uses the account's own address."""
    written = {a.full().lower() for name in _RECIPIENT_FIELDS for a in run.headers.addresses(name)}
    if not written:
        return None
    recipient = run.message.envelope_to.strip().strip("<>")
    if recipient.lower() in written:
        return recipient
    return next((a for a in addresses if a.lower() in written), None)


# --- editheader -----------------------------------------------------------------------------


def _field_name(run: Run, frame: Frame, call: Call) -> str:
    name = run.s(frame, call.args[0])
    if not _FIELD_NAME.match(name):
        raise SieveRuntimeError(call.line, call.column, f"invalid header field name {name!r}")
    return name


def _addheader(run: Run, frame: Frame, call: Call) -> None:
    name = _field_name(run, frame, call)
    value = run.s(frame, call.args[1])
    last = ":last" in call.tags
    run.headers.add(name, value, last)
    run.actions.append(AddHeader(name, value, last))


def _deleteheader(run: Run, frame: Frame, call: Call) -> None:
    name = _field_name(run, frame, call)
    lower = name.lower()
    if lower in _PROTECTED:
        return
    patterns = run.sl(frame, call.args[1]) if call.args[1] is not None else None
    index = call.tags.get(":index")
    last = ":last" in call.tags
    fields = run.headers.fields
    positions = [i for i, f in enumerate(fields) if f.lower == lower]
    if index is not None:  # :index 0 matches no field (Pigeonhole accepts it too)
        k = len(positions) - index if last else index - 1
        if index < 1:
            k = -1
        positions = [positions[k]] if 0 <= k < len(positions) else []
    doomed = []
    for i in positions:
        if patterns is None or test_values(call.match, [fields[i].value], patterns)[0]:
            doomed.append(i)
    for i in reversed(doomed):
        del fields[i]
    if doomed:
        run.headers.changed = True
    run.actions.append(DeleteHeader(name, index, last, call.match.kind, call.match.comparator,
                                    tuple(patterns or ())))


# --- date and currentdate -------------------------------------------------------------------


def _zone(text: str) -> tzinfo:
    m = _ZONE.match(text)
    assert m is not None  # checked by the validator, or by the caller for variables
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return timezone(timedelta(minutes=-minutes if m.group(1) == "-" else minutes))


def _local_zone(run: Run) -> tzinfo:
    now = run.env.now
    if now is not None and now.tzinfo is not None:
        return now.tzinfo
    zone = datetime.now().astimezone().tzinfo
    return zone if zone is not None else UTC


def _offset(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def date_part(moment: datetime, part: str) -> str | None:
    """RFC 5260 §4.2 date parts of an aware datetime."""
    part = part.lower()
    if part == "year":
        return f"{moment.year:04d}"
    if part == "month":
        return f"{moment.month:02d}"
    if part == "day":
        return f"{moment.day:02d}"
    if part == "date":
        return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    if part == "julian":
        return str((moment.date() - _MJD_EPOCH).days)
    if part == "hour":
        return f"{moment.hour:02d}"
    if part == "minute":
        return f"{moment.minute:02d}"
    if part == "second":
        return f"{moment.second:02d}"
    if part == "time":
        return f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    if part == "iso8601":
        zone = _offset(moment)
        suffix = "Z" if zone == "+0000" else zone[:3] + ":" + zone[3:]  # as Pigeonhole writes it
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + suffix
    if part == "std11":
        return format_datetime(moment)
    if part == "zone":
        return _offset(moment)
    if part == "weekday":
        return str((moment.weekday() + 1) % 7)  # 0 is Sunday
    return None


def _header_date(value: str) -> datetime | None:
    parsed = parsedate_tz(value)
    if parsed is None:
        return None
    try:
        offset = parsed[9] or 0
        zone = timezone(timedelta(seconds=offset))
        return datetime(*parsed[:6], tzinfo=zone)
    except (ValueError, OverflowError):
        return None


def _zone_arg(run: Run, frame: Frame, call: Call) -> tzinfo | None:
    """The :zone argument's zone, None for :originalzone, the local zone otherwise."""
    if ":originalzone" in call.tags:
        return None
    if ":zone" in call.tags:
        text = run.s(frame, call.tags[":zone"])
        if not _ZONE.match(text):
            raise SieveRuntimeError(call.line, call.column, f"invalid time zone {text!r}")
        return _zone(text)
    return _local_zone(run)


def _date_values(run: Run, call: Call, moment: datetime | None, part: str) -> list[str]:
    if moment is None:
        return []
    value = date_part(moment, part)
    if value is None:
        raise SieveRuntimeError(call.line, call.column, f"unknown date part {part!r}")
    return [value]


def _date(run: Run, frame: Frame, call: Call) -> bool:
    header = run.s(frame, call.args[0])
    part = run.s(frame, call.args[1])
    values = run.headers.values(header)
    moment = None
    if values:
        text = values[0]
        if header.lower() == "received":  # RFC 5260 §4: the date after the last ";"
            text = text.rpartition(";")[2]
        moment = _header_date(text)
    if moment is not None:
        zone = _zone_arg(run, frame, call)
        if zone is not None:
            moment = moment.astimezone(zone)
    elif call.match.kind != ":count":
        return False  # RFC 5260 §4: no such field, or no valid date in it
    return run.matched(frame, call, _date_values(run, call, moment, part), run.sl(frame, call.args[2]))


def _currentdate(run: Run, frame: Frame, call: Call) -> bool:
    now = run.env.now or datetime.now().astimezone()
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    zone = _zone_arg(run, frame, call)
    if zone is not None:
        now = now.astimezone(zone)
    part = run.s(frame, call.args[0])
    return run.matched(frame, call, _date_values(run, call, now, part), run.sl(frame, call.args[1]))


# --- body -----------------------------------------------------------------------------------


def _parts(part: BodyPart) -> list[BodyPart]:
    """Every MIME entity in order: multiparts, their children, embedded messages' bodies."""
    out: list[BodyPart] = []
    todo = [part]
    while todo:
        node = todo.pop()
        out.append(node)
        if node.children:
            todo.extend(reversed(node.children))
        elif node.message is not None:
            todo.append(node.message[1])
    return out


def _prologue_and_epilogue(raw: bytes, part: BodyPart) -> str:
    """RFC 5173 §5.2: for a multipart, the text before its first and after its last delimiter."""
    boundary = next((v for k, v in part.params if k == "boundary"), None)
    body = raw[part.body_start : part.end]
    if not boundary:
        return ""
    delimiter = re.compile(rb"(?m)^--" + re.escape(boundary.encode("utf-8", "replace")) + rb"(--)?[^\n]*\n?")
    lines = list(delimiter.finditer(body))
    if not lines:
        return body.decode("utf-8", "replace")
    closing = next((m for m in lines if m.group(1)), None)
    epilogue = body[closing.end():] if closing is not None else b""
    return (body[: lines[0].start()] + epilogue).decode("utf-8", "replace")


def _type_matches(part: BodyPart, wanted: Sequence[str]) -> bool:
    for w in wanted:
        w = w.lower()
        if w == "":
            return True
        kind, slash, sub = w.partition("/")
        if kind == part.type and (not slash or sub == part.subtype):
            return True
    return False


def _body(run: Run, frame: Frame, call: Call) -> bool:
    raw = run.message.raw
    keys = run.sl(frame, call.args[0])
    if ":raw" in call.tags:
        body = run.headers.body
        return run.matched(frame, call, [body.decode("utf-8", "replace")], keys)
    wanted = run.sl(frame, call.tags[":content"]) if ":content" in call.tags else ["text"]
    structure = run.message.body or parse_message(raw).body
    values: list[str] = []
    for part in _parts(structure):
        if not _type_matches(part, wanted):
            continue
        data = raw[part.body_start : part.end]
        if part.children:
            values.append(_prologue_and_epilogue(raw, part))
        elif part.type == "text":
            html = part.subtype == "html" and ":content" not in call.tags
            values.append(part_text(data, part.encoding, part.params, html))
        else:
            values.append(decode_transfer(data, part.encoding).decode("utf-8", "replace"))
    return run.matched(frame, call, values, keys)


# --- environment, spamtest, virustest, duplicate, mailboxexists -----------------------------


def _environment(run: Run, frame: Frame, call: Call) -> bool:
    value = run.env.item(run.s(frame, call.args[0]).lower())
    if value is None:
        return False
    return run.matched(frame, call, [value], run.sl(frame, call.args[1]))


def spamtest_value(percent: float | None, as_percent: bool) -> str:
    """RFC 5235 §3.2/§3.3: "0" untested; 1 (clean) to 10 (spam), or 0-100 with :percent."""
    if percent is None:
        return "0"
    percent = max(0.0, min(100.0, percent))
    if as_percent:
        return str(round(percent))
    return str(1 + round(percent * 9 / 100))


def _spamtest(run: Run, frame: Frame, call: Call) -> bool:
    value = spamtest_value(run.env.spam_percent, ":percent" in call.tags)
    return run.matched(frame, call, [value], [run.s(frame, call.args[0])])


def _virustest(run: Run, frame: Frame, call: Call) -> bool:
    level = run.env.virus_level
    value = "0" if level is None else str(max(1, min(5, level)))
    return run.matched(frame, call, [value], [run.s(frame, call.args[0])])


def _duplicate(run: Run, frame: Frame, call: Call) -> bool:
    tags = call.tags
    handle = run.s(frame, tags[":handle"]) if ":handle" in tags else ""
    if ":uniqueid" in tags:
        value: str | None = run.s(frame, tags[":uniqueid"])
    else:
        field = run.s(frame, tags[":header"]) if ":header" in tags else "message-id"
        found = run.headers.values(field)
        value = found[0] if found else None
    if value is None:
        return False  # RFC 7352 §3.1: without the field there is nothing to compare
    if not (":header" in tags or ":uniqueid" in tags):
        value = "".join(value.split())  # Message-ID: folding white space is not part of it
    limits = run.limits
    seconds = int(tags[":seconds"]) if ":seconds" in tags else limits.duplicate_default_seconds
    seconds = min(seconds, limits.duplicate_max_seconds)
    ident = hashlib.sha256(f"{handle}\0{value}".encode("utf-8", "surrogatepass")).hexdigest()
    seen_fn = run.env.duplicate_seen
    try:
        seen = bool(seen_fn(ident, seconds)) if seen_fn is not None else False
    except Exception as e:  # the executor's store: an error of the run, never of delivery
        raise SieveRuntimeError(call.line, call.column, f"duplicate state unavailable: {e}") from None
    last = ":last" in tags
    if (not seen or last) and not any(d.id == ident for d in run.duplicates):
        run.duplicates.append(DuplicateMark(ident, seconds, last))
    return seen


def _mailboxexists(run: Run, frame: Frame, call: Call) -> bool:
    exists = run.env.mailbox_exists
    if exists is None:
        return False
    try:
        return all(exists(name) for name in run.sl(frame, call.args[0]))
    except SieveRuntimeError:
        raise
    except Exception as e:  # the executor's store: an error of the run, never of delivery
        raise SieveRuntimeError(call.line, call.column, f"mailboxexists failed: {e}") from None


COMMANDS.update({"vacation": _vacation, "addheader": _addheader, "deleteheader": _deleteheader})
TESTS.update({
    "date": _date, "currentdate": _currentdate, "body": _body, "environment": _environment,
    "spamtest": _spamtest, "virustest": _virustest, "duplicate": _duplicate,
    "mailboxexists": _mailboxexists,
})
