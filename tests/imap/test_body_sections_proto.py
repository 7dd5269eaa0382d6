"""BODY[section], partial fetches and BINARY (RFC 9051 §6.4.5, RFC 3516) by slicing.

Hand-written messages with exact expected bytes, the Dovecot imaptest scripts `fetch-body*` and
`fetch-binary-mime*` (their `{{{ }}}` literal blocks read the way imaptest reads them), and
robustness: every part of every corpus message, and hypothesis-mutated messages and sections.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bodystructure_proto import SEED, corpus_messages, mutated

from postoffice.imap.proto.body_sections import (
    binary_bytes,
    binary_size,
    decode_base64,
    decode_quoted_printable,
    find_part,
    partial,
    section_bytes,
)
from postoffice.imap.proto.sections import Section
from postoffice.message.mime import BodyPart, parse_message
from postoffice.transfer.mbox import read_mbox

# --- hand-written messages ----------------------------------------------------------------------

ROOT_HEADER = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: bob@example.net,\r\n"
    b"  carol@example.net\r\n"
    b"Subject: nested\r\n"
    b"Received: from a by b;\r\n\tMon, 1 Jan 2024 10:00:00 +0100\r\n"
    b"Received: from c by d\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    b"\r\n"
)
PART1_MIME = b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
PART1 = b"first part\r\nsecond line\r\n"
PART2_MIME = b"Content-Type: message/rfc822\r\nContent-Description: fwd\r\n\r\n"
INNER_HEADER = (
    b"From: Dave <dave@example.com>\r\n"
    b"Subject: inner\r\n"
    b"Content-Type: multipart/alternative; boundary=in\r\n"
    b"\r\n"
)
INNER_1_MIME = b"Content-Type: text/plain\r\n\r\n"
INNER_2_MIME = b"Content-Type: text/html\r\n\r\n"
INNER_TEXT = (
    b"--in\r\n" + INNER_1_MIME + b"plain\r\n--in\r\n" + INNER_2_MIME + b"<p>html</p>\r\n--in--\r\n"
)
PART3_MIME = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
PART3 = b"AAECAw==\r\n"
ROOT_TEXT = (
    b"preamble\r\n--outer\r\n" + PART1_MIME + PART1 + b"\r\n--outer\r\n" + PART2_MIME
    + INNER_HEADER + INNER_TEXT + b"\r\n--outer\r\n" + PART3_MIME + PART3
    + b"\r\n--outer--\r\nepilogue\r\n"
)
MESSAGE = ROOT_HEADER + ROOT_TEXT

SECTION_CASES: list[tuple[Section, bytes | None]] = [
    (Section(), MESSAGE),
    (Section(text="HEADER"), ROOT_HEADER),
    (Section(text="TEXT"), ROOT_TEXT),
    (Section(text="text"), ROOT_TEXT),  # defensive: the text is matched case-insensitively
    (Section(part=(1,)), PART1),
    (Section(part=(1,), text="MIME"), PART1_MIME),
    (Section(part=(2,)), INNER_HEADER + INNER_TEXT),
    (Section(part=(2,), text="MIME"), PART2_MIME),
    (Section(part=(2,), text="HEADER"), INNER_HEADER),
    (Section(part=(2,), text="TEXT"), INNER_TEXT),
    (Section(part=(2, 1)), b"plain"),
    (Section(part=(2, 1), text="MIME"), INNER_1_MIME),
    (Section(part=(2, 2)), b"<p>html</p>"),
    (Section(part=(2, 2), text="MIME"), INNER_2_MIME),
    (Section(part=(3,)), PART3),  # still encoded: BINARY decodes
    (Section(part=(3,), text="MIME"), PART3_MIME),
    # Parts that do not exist: an empty string (RFC 9051 has no error for them; Dovecot).
    (Section(part=(4,)), b""),
    (Section(part=(0,)), b""),
    (Section(part=(1, 1)), b""),  # a text part has no parts
    (Section(part=(2, 3)), b""),
    (Section(part=(2, 1, 1)), b""),
    (Section(part=(1,), text="HEADER"), b""),  # HEADER/TEXT only name an attached message
    (Section(part=(1,), text="TEXT"), b""),
    (Section(part=(1,), text="HEADER.FIELDS", fields=("FROM",)), b""),
    # Header fields: message order, folded lines whole, duplicates kept, the empty line last.
    (
        Section(text="HEADER.FIELDS", fields=("SUBJECT", "TO")),
        b"To: bob@example.net,\r\n  carol@example.net\r\nSubject: nested\r\n\r\n",
    ),
    (
        Section(text="HEADER.FIELDS", fields=("received",)),
        b"Received: from a by b;\r\n\tMon, 1 Jan 2024 10:00:00 +0100\r\n"
        b"Received: from c by d\r\n\r\n",
    ),
    (Section(text="HEADER.FIELDS", fields=("X-NONE",)), b"\r\n"),
    (
        Section(text="HEADER.FIELDS.NOT", fields=("RECEIVED", "CONTENT-TYPE", "MIME-VERSION")),
        b"From: Alice <alice@example.org>\r\nTo: bob@example.net,\r\n  carol@example.net\r\n"
        b"Subject: nested\r\n\r\n",
    ),
    (
        Section(part=(2,), text="HEADER.FIELDS", fields=("FROM", "SUBJECT", "X-FOO")),
        b"From: Dave <dave@example.com>\r\nSubject: inner\r\n\r\n",
    ),
    (
        Section(part=(2,), text="HEADER.FIELDS.NOT", fields=("FROM", "SUBJECT")),
        b"Content-Type: multipart/alternative; boundary=in\r\n\r\n",
    ),
    # Malformed specifiers, which the command parser rejects with BAD: None.
    (Section(text="MIME"), None),
    (Section(text="HEADER.FIELDS"), None),
    (Section(part=(1,), text="BOGUS"), None),
]


@pytest.mark.parametrize(
    ("section", "expected"),
    SECTION_CASES,
    ids=[f"{'.'.join(map(str, s.part))}[{s.text}]{s.fields}" for s, _ in SECTION_CASES],
)
def test_sections_of_a_nested_message(section: Section, expected: bytes | None) -> None:
    body = parse_message(MESSAGE).body
    assert section_bytes(MESSAGE, body, section) == expected


SINGLE = b"Subject: one part\r\nContent-Type: text/plain\r\n\r\njust text\r\n"
RFC822 = b"Content-Type: message/rfc822\r\n\r\nSubject: inside\r\n\r\ninner body\r\n"


@pytest.mark.parametrize(
    ("raw", "section", "expected"),
    [
        # RFC 9051 §6.4.5: a non-multipart message has one part, 1: its body.
        (SINGLE, Section(part=(1,)), b"just text\r\n"),
        (SINGLE, Section(part=(1,), text="MIME"), b"Subject: one part\r\nContent-Type: text/plain\r\n\r\n"),
        (SINGLE, Section(part=(2,)), b""),
        (SINGLE, Section(part=(1, 1)), b""),
        (SINGLE, Section(part=(1,), text="HEADER"), b""),
        # A message/rfc822 message: 1 is the attached message, 1.1 its body, 1.HEADER its header.
        (RFC822, Section(part=(1,)), b"Subject: inside\r\n\r\ninner body\r\n"),
        (RFC822, Section(part=(1, 1)), b"inner body\r\n"),
        (RFC822, Section(part=(1,), text="HEADER"), b"Subject: inside\r\n\r\n"),
        (RFC822, Section(part=(1,), text="TEXT"), b"inner body\r\n"),
        (RFC822, Section(part=(1, 1), text="HEADER"), b""),
        # No empty line (a message without a body): header sections have no empty line either.
        (b"Subject: s\r\nX-A: 1\r\n", Section(text="HEADER"), b"Subject: s\r\nX-A: 1\r\n"),
        (
            b"Subject: s\r\nX-A: 1\r\n",
            Section(text="HEADER.FIELDS", fields=("X-A",)),
            b"X-A: 1\r\n",
        ),
        (b"Subject: s", Section(text="HEADER.FIELDS", fields=("SUBJECT",)), b"Subject: s"),
        # LF line ends are kept as stored.
        (b"A: 1\nB: 2\n\nbody\n", Section(text="HEADER.FIELDS", fields=("B",)), b"B: 2\n\n"),
        # Field names: case-insensitive, white space before the colon (obs-syntax), a line that
        # is no field (.NOT keeps it), a continuation line at the very top.
        (
            b" stray\r\nsubject : x\r\nnot a field\r\nSUBJECT:y\r\n\r\n",
            Section(text="HEADER.FIELDS", fields=("SUBJECT",)),
            b"subject : x\r\nSUBJECT:y\r\n\r\n",
        ),
        (
            b" stray\r\nsubject : x\r\nnot a field\r\nSUBJECT:y\r\n\r\n",
            Section(text="HEADER.FIELDS.NOT", fields=("SUBJECT",)),
            b" stray\r\nnot a field\r\n\r\n",
        ),
        # NUL cannot travel in a literal: it is sent as 0x80, keeping every offset.
        (b"Subject: a\x00b\r\n\r\nx\x00y", Section(), b"Subject: a\x80b\r\n\r\nx\x80y"),
        (b"Subject: a\x00b\r\n\r\nx\x00y", Section(text="TEXT"), b"x\x80y"),
    ],
)
def test_special_sections(raw: bytes, section: Section, expected: bytes) -> None:
    assert section_bytes(raw, parse_message(raw).body, section) == expected


def test_find_part_follows_the_numbering_rules() -> None:
    body = parse_message(MESSAGE).body
    assert find_part(body, ()) is body
    assert find_part(body, (2,)) is body.children[1]
    message = body.children[1].message
    assert message is not None
    assert find_part(body, (2, 2)) is message[1].children[1]
    single = parse_message(SINGLE).body
    assert find_part(single, (1,)) is single
    assert find_part(single, (1, 1)) is None


@pytest.mark.parametrize(
    ("start", "length", "expected"),
    [
        (0, 3, b"bod"),
        (3, 3, b"y22"),
        (0, None, b"body22\r\n"),
        (5, 100, b"2\r\n"),  # a length past the end is cut at the end
        (8, 1, b""),  # at the end
        (100, 10, b""),  # past the end: an empty string (RFC 9051 §6.4.5)
        (2, 0, b""),
        (-1, 2, b"bo"),  # never given by the command parser; harmless anyway
    ],
)
def test_partial(start: int, length: int | None, expected: bytes) -> None:
    assert partial(b"body22\r\n", start, length) == expected


# --- BINARY -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        (b"aGVsbG8gd29ybGQ=", b"hello world"),
        (b"\r\naGVs\r\nbG8gd29y\r\nbGQ=\r\n", b"hello world"),
        (b"  aGVs    \r\n bG8g  \r\n   d29y  \t \r\n    bGQ= \r\n\r\n", b"hello world"),
        (b"aGVsbG8", b"hello"),  # missing padding
        (b"aGVsbG8=d29ybGQ=", b"helloworld"),  # two chunks glued together
        (b"aGVs!!bG8*", b"hello"),  # junk outside the alphabet is skipped
        (b"aGVsbG8gd", b"hello "),  # a lone sixth-bit character is dropped
        (b"====", b""),
        (b"", b""),
        (b"AA==AA==", b"\x00\x00"),
    ],
)
def test_base64_is_decoded_leniently(encoded: bytes, decoded: bytes) -> None:
    assert decode_base64(encoded) == decoded


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        (b"caf=C3=A9", "café".encode()),
        (b"caf=c3=a9", "café".encode()),  # lowercase hex: accepted, as most decoders do
        (b"soft=\r\nbreak\r\n", b"softbreak\r\n"),
        (b"soft=\nbreak", b"softbreak"),
        (b"trailing  \r\nspace\t\r\n", b"trailing\r\nspace\r\n"),
        (b"foo = \t\r\nbar", b"foo bar"),  # white space after a soft break's "=" goes first
        (b"bad =ZZ escape", b"bad =ZZ escape"),
        (b"end=", b"end"),
        (b"a=3D=3d", b"a=="),
        (b"under_score", b"under_score"),  # "_" is a space only in encoded-words
    ],
)
def test_quoted_printable_is_decoded_leniently(encoded: bytes, decoded: bytes) -> None:
    assert decode_quoted_printable(encoded) == decoded


ENCODED = (
    b"Subject: encoded parts\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n"
    b"\r\n"
    b"--b\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: Base64\r\n"
    b"\r\n"
    b"AAEC/w==\r\n"
    b"--b\r\n"
    b"Content-Transfer-Encoding:\r\n quoted-printable\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"caf=C3=A9 =\r\nau lait\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"nul\x00inside\r\n"
    b"--b\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: attached\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"aGk=\r\n"
    b"--b--\r\n"
)


def test_binary_decodes_each_part() -> None:
    body = parse_message(ENCODED).body
    assert binary_bytes(ENCODED, body, (1,)) == b"\x00\x01\x02\xff"
    assert binary_bytes(ENCODED, body, (2,)) == "café au lait".encode()
    assert binary_bytes(ENCODED, body, (3,)) == b"nul\x00inside"  # NUL kept: send literal8
    assert binary_bytes(ENCODED, body, (4, 1)) == b"hi"
    assert binary_bytes(ENCODED, body, (9,)) == b""
    for part in [(), (1,), (2,), (3,), (4,), (4, 1), (9,)]:
        data = binary_bytes(ENCODED, body, part)
        assert data is not None
        assert binary_size(ENCODED, body, part) == len(data), part


def test_binary_of_a_whole_message_rewrites_decoded_headers() -> None:
    body = parse_message(ENCODED).body
    assert binary_bytes(ENCODED, body, ()) == (
        b"Subject: encoded parts\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n"
        b"\r\n"
        b"--b\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: binary\r\n"
        b"\r\n"
        b"\x00\x01\x02\xff\r\n"
        b"--b\r\n"
        b"Content-Type: text/plain\r\n"  # the folded CTE field went away whole
        b"Content-Transfer-Encoding: binary\r\n"
        b"\r\n"
        + "café au lait".encode()
        + b"\r\n"
        b"--b\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b"nul\x00inside\r\n"
        b"--b\r\n"
        b"Content-Type: message/rfc822\r\n"
        b"\r\n"
        b"Subject: attached\r\n"
        b"Content-Transfer-Encoding: binary\r\n"
        b"\r\n"
        b"hi\r\n"
        b"--b--\r\n"
    )
    # BINARY[4] is the attached message, decoded the same way, without part 4's own header.
    assert binary_bytes(ENCODED, body, (4,)) == (
        b"Subject: attached\r\nContent-Transfer-Encoding: binary\r\n\r\nhi"
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 f\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--b--\r\n",
    ],
)
def test_unknown_transfer_encoding_gives_none_for_unknown_cte(raw: bytes) -> None:
    body = parse_message(raw).body
    assert binary_bytes(raw, body, ()) is None
    assert binary_size(raw, body, ()) is None
    assert binary_bytes(raw, body, (1,)) is None
    assert binary_size(raw, body, (1,)) is None
    # BODY[] is unaffected: it sends the part as stored.
    assert section_bytes(raw, body, Section(part=(1,))) is not None


def test_a_multipart_claiming_base64_is_not_decoded_as_a_whole() -> None:
    # RFC 2045 §6.4 forbids encoding a multipart; its parts are what get decoded.
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n--b--\r\n"
    )
    body = parse_message(raw).body
    assert binary_bytes(raw, body, (1,)) == b"hi"
    assert binary_bytes(raw, body, ()) == (
        b"Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"--b\r\nContent-Transfer-Encoding: binary\r\n\r\nhi\r\n--b--\r\n"
    )


# --- imaptest (Dovecot) ---------------------------------------------------------------------------


def imaptest_messages(mbox: Path) -> list[bytes]:
    """The messages as imaptest APPENDs them: read with read_mbox (RFC 4155, which drops the
    empty line that separates messages) and that empty line put back, because imaptest's own
    mbox reader keeps it as the end of the message (its expected BODY[TEXT] counts it)."""
    messages = [m.raw for m in read_mbox(mbox)]
    ends_blank = mbox.read_bytes().endswith(b"\n\n")
    return [
        raw + b"\r\n" if i < len(messages) - 1 or ends_blank else raw
        for i, raw in enumerate(messages)
    ]


def _join_literal_blocks(lines: Iterator[str]) -> Iterator[str]:
    """Script lines with `{{{ ... }}}` blocks turned into `{n}` literals, as imaptest does
    (test-parser.c): each block line ends in CRLF, or in LF as written for a `~{{{` block (the
    file's CR stays part of the line), and the last line end before `}}}` is dropped."""
    for line in lines:
        if not line.endswith("{{{"):
            yield line
            continue
        out = ""
        while line.endswith("{{{"):
            binary = line.endswith("~{{{")
            out += line[: -4 if binary else -3]
            content = ""
            last_end = 0
            for block_line in lines:
                if block_line.startswith("}}}"):
                    line = block_line[3:]
                    break
                content += block_line
                last_end = len(content)
                content += "\n" if binary else "\r\n"
            content = content[:last_end]
            out += ("~" if binary else "") + f"{{{len(content.encode())}}}\r\n" + content
        yield out + line


def script_commands(path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """(command, [(existence "*" or "!", reply)]) for every "ok <command>" of a script."""
    text = path.read_bytes().decode()
    body = text.split("\n\n", 1)[1]
    raw_lines = iter(line for line in body.split("\n") if not line.startswith("#"))
    commands: list[tuple[str, list[tuple[str, str]]]] = []
    for line in _join_literal_blocks(raw_lines):
        if line.lower().startswith("ok "):
            commands.append((line[3:], []))
        elif line[:2] in ("* ", "! ") and commands:
            commands[-1][1].append((line[0], line[2:]))
    return commands


_ITEM = re.compile(rb"([A-Za-z0-9.]+(?:\[[^\]]*\])?)(?:<(\d+)>)?\s")


def fetch_items(reply: str) -> tuple[int, list[tuple[str, int | None, Any]]]:
    """`1 fetch (name value ...)` as (sequence number, [(name, origin, value)]); a value is
    bytes, an int (a bare number), a `$name` variable, or a list left as its text."""
    m = re.match(r"(\d+) fetch \(", reply, re.IGNORECASE)
    assert m is not None, reply
    data = reply.encode()
    pos = m.end()
    items: list[tuple[str, int | None, Any]] = []
    while data[pos : pos + 1] != b")":
        im = _ITEM.match(data, pos)
        assert im is not None, data[pos:]
        name, origin = im.group(1).decode().lower(), im.group(2)
        pos = im.end()
        value: Any
        lm = re.compile(rb"~?\{(\d+)\}\r\n").match(data, pos)
        if lm:
            count = int(lm.group(1))
            value = data[lm.end() : lm.end() + count]
            pos = lm.end() + count
        elif data[pos : pos + 1] == b'"':
            end = data.index(b'"', pos + 1)
            value = data[pos + 1 : end]
            pos = end + 1
        elif data[pos : pos + 1] == b"(":
            end = data.index(b")", pos)
            value = data[pos : end + 1].decode()
            pos = end + 1
        else:
            wm = re.compile(rb"[^ )]+").match(data, pos)
            assert wm is not None
            word = wm.group().decode()
            value = int(word) if word.isdigit() else word
            pos = wm.end()
        items.append((name, int(origin) if origin is not None else None, value))
        if data[pos : pos + 1] == b" ":
            pos += 1
    return int(m.group(1)), items


def parse_section(spec: str) -> Section:
    """The text between the brackets of BODY[...] as a Section (upper-cased field names)."""
    m = re.fullmatch(r"((?:\d+\.)*\d+)?\.?([A-Za-z.]*)(?: \(([^)]*)\))?", spec)
    assert m is not None, spec
    part = tuple(int(n) for n in m.group(1).split(".")) if m.group(1) else ()
    text = m.group(2).upper() or None
    fields = tuple(f.upper() for f in m.group(3).split()) if m.group(3) else ()
    return Section(part, text, fields)


def requested_partials(command: str) -> dict[str, tuple[int, int]]:
    """Each `<start.length>` of a FETCH command, keyed by its item name in the reply."""
    return {
        (name + bracket).lower(): (int(start), int(length))
        for name, bracket, start, length in re.findall(
            r"([A-Za-z0-9]+)(?:\.peek)?(\[[^\]]*\])<(\d+)\.(\d+)>", command, re.IGNORECASE
        )
    }


def our_value(raw: bytes, body: BodyPart, name: str, partials: dict[str, tuple[int, int]]) -> Any:
    """What our functions answer for one FETCH item of the reply."""
    if name == "rfc822":
        return section_bytes(raw, body, Section())
    if name == "rfc822.header":
        return section_bytes(raw, body, Section(text="HEADER"))
    if name == "rfc822.text":
        return section_bytes(raw, body, Section(text="TEXT"))
    kind, _, spec = name.partition("[")
    spec = spec[:-1]
    value: Any
    if kind == "body":
        value = section_bytes(raw, body, parse_section(spec))
    elif kind == "binary":
        value = binary_bytes(raw, body, parse_section(spec).part)
    elif kind == "binary.size":
        return binary_size(raw, body, parse_section(spec).part)
    else:
        raise AssertionError(name)
    if name in partials:
        start, length = partials[name]
        value = partial(value, start, length)
    return value


# Script -> how many reply items it checks (FLAGS aside), so that none goes unnoticed.
IMAPTEST_SCRIPTS = {
    "fetch-body": 24,
    "fetch-body-mime": 14,
    "fetch-body-message-rfc822": 8,
    "fetch-body-message-rfc822-mime": 13,
    "fetch-body-message-rfc822-x2": 9,
    "fetch-binary-mime": 10,
    "fetch-binary-mime-base64": 20,
    "fetch-binary-mime-qp": 7,
}


@pytest.mark.parametrize("name", sorted(IMAPTEST_SCRIPTS))
def test_imaptest_body_and_binary_replies(corpora: Path, name: str) -> None:
    """Every body/binary item of every expected reply matches, byte for byte; `$var` values
    match each other; replies marked "!" (must not be sent) differ from ours."""
    folder = corpora / "imaptest-dovecot" / "tests"
    messages = imaptest_messages(folder / f"{name}.mbox")
    bodies = [parse_message(raw).body for raw in messages]
    variables: dict[str, Any] = {}
    checked = 0
    for command, replies in script_commands(folder / name):
        partials = requested_partials(command)
        for existence, reply in replies:
            seq, items = fetch_items(reply)
            raw, body = messages[seq - 1], bodies[seq - 1]
            for item, origin, expected in items:
                if item == "flags":
                    continue  # not ours
                ours = our_value(raw, body, item, partials)
                if origin is not None:
                    assert origin == partials[item][0]
                if isinstance(expected, str) and expected.startswith("$"):
                    expected = variables.setdefault(expected, ours)
                if existence == "!":
                    assert ours != expected, (name, command)
                else:
                    assert ours == expected, (name, command, item)
                checked += 1
    assert checked == IMAPTEST_SCRIPTS[name]


def test_imaptest_scripts_are_all_covered(corpora: Path) -> None:
    folder = corpora / "imaptest-dovecot" / "tests"
    scripts = {p.name for p in folder.glob("fetch-b*") if p.suffix != ".mbox"}
    # fetch-bodystructure is checked in test_bodystructure_proto.py.
    assert scripts == {*IMAPTEST_SCRIPTS, "fetch-bodystructure"}


# --- robustness ---------------------------------------------------------------------------------


def _paths(part: BodyPart, prefix: tuple[int, ...] = ()) -> Iterator[tuple[int, ...]]:
    """Every part number in a message, plus some that do not exist."""
    kids: tuple[BodyPart, ...] = part.children
    if not kids and part.message is not None:
        kids = part.message[1].children or (part.message[1],)
    for i, child in enumerate(kids, 1):
        yield (*prefix, i)
        yield from _paths(child, (*prefix, i))
    yield (*prefix, len(kids) + 1)


_TEXTS = [None, "HEADER", "TEXT", "MIME", "HEADER.FIELDS", "HEADER.FIELDS.NOT"]


def _exercise(raw: bytes, body: BodyPart, part: tuple[int, ...]) -> None:
    for text in _TEXTS:
        fields = ("SUBJECT", "CONTENT-TYPE") if text and text.startswith("HEADER.") else ()
        data = section_bytes(raw, body, Section(part, text, fields))
        assert data is not None or (text == "MIME" and not part)
        assert data is None or b"\x00" not in data
    data = binary_bytes(raw, body, part)
    size = binary_size(raw, body, part)
    assert size == (None if data is None else len(data))


def test_every_part_of_every_corpus_message(corpora: Path) -> None:
    count = 0
    for _path, raw in corpus_messages(corpora):
        body = parse_message(raw).body
        _exercise(raw, body, ())
        for part in _paths(body):
            _exercise(raw, body, part)
            count += 1
    assert count > 1000


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.lists(st.integers(-1, 5), max_size=4), st.sampled_from(_TEXTS))
def test_mutated_messages_never_break_sections(
    raw: bytes, part: list[int], text: str | None
) -> None:
    body = parse_message(raw).body
    fields = ("SUBJECT", "FROM") if text and text.startswith("HEADER.") else ()
    data = section_bytes(raw, body, Section(tuple(part), text, fields))
    assert data is None or isinstance(data, bytes)
    _exercise(raw, body, tuple(n for n in part if n > 0))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_decode_without_error(data: bytes) -> None:
    assert isinstance(decode_base64(data), bytes)
    assert isinstance(decode_quoted_printable(data), bytes)
    body = parse_message(data).body
    _exercise(data, body, ())
    _exercise(data, body, (1,))


def test_corrupt_offsets_never_raise() -> None:
    body = parse_message(SEED).body
    broken = BodyPart(
        "text", "plain", (), None, None, "base64", 5, 0, None, None, None, None, (), None,
        10**9, -5, 3,
    )
    bad = BodyPart(**{**{f: getattr(body, f) for f in body.__slots__}, "children": (broken,)})
    for part in [(), (1,), (1, 1)]:
        for text in _TEXTS:
            section_bytes(SEED, bad, Section(part, text, ("A",)))
        binary_bytes(SEED, bad, part)
        binary_size(SEED, bad, part)
