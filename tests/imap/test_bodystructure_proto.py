"""ENVELOPE, BODY and BODYSTRUCTURE rendering (RFC 9051 §7.5.2), checked three ways.

1. Hand-written messages with the exact bytes expected (table-driven).
2. The Dovecot imaptest scripts `fetch-bodystructure` and `fetch-envelope`, matched the way
   imaptest matches (strings case-insensitive, NIL only matches NIL, lists ordered, `$` wildcard).
3. A small IMAP reader parses every output back (quoted strings 7-bit, literal counts right) and
   a grammar check walks it, over the MIME corpora and hypothesis-mutated messages.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postoffice.imap.proto.bodystructure import (
    MAX_QUOTED,
    bodystructure_bytes,
    envelope_bytes,
    nstring,
)
from postoffice.message.mime import BodyPart, Envelope, parse_message
from postoffice.message.mime_model import Address
from postoffice.transfer.mbox import read_mbox

# --- a strict little IMAP reader ----------------------------------------------------------------


class Atom(str):
    """An IMAP atom (numbers included), told apart from quoted strings and literals."""


def read_imap(data: bytes) -> list[Any]:
    """Parse IMAP values: atoms, NIL (None), quoted strings, literals (literal8 too), lists.
    Strict: a quoted string must be 7-bit without CR/LF/NUL, a literal must fit and hold no NUL
    (literal8 may); octets that are not UTF-8 come back as surrogate escapes."""
    stack: list[list[Any]] = [[]]
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c == 0x20:
            i += 1
        elif c == 0x28:  # (
            stack.append([])
            i += 1
        elif c == 0x29:  # )
            done = stack.pop()
            stack[-1].append(done)
            i += 1
        elif c == 0x22:  # "
            buf = bytearray()
            i += 1
            while data[i] != 0x22:
                if data[i] == 0x5C:
                    i += 1
                    assert data[i] in b'"\\', "only quoted-specials may be escaped"
                assert 0 < data[i] < 0x80 and data[i] not in b"\r\n", data[i - 5 : i + 5]
                buf.append(data[i])
                i += 1
            i += 1
            stack[-1].append(buf.decode("ascii"))
        elif c == 0x7B or data.startswith(b"~{", i):  # {n} literal, ~{n} literal8
            eight = c == 0x7E
            close = data.index(b"}", i)
            count = int(data[i + 1 + eight : close])
            assert data[close + 1 : close + 3] == b"\r\n"
            start = close + 3
            chunk = data[start : start + count]
            assert len(chunk) == count and (eight or b"\x00" not in chunk)
            stack[-1].append(chunk.decode("utf-8", "surrogateescape"))
            i = start + count
        else:
            m = re.compile(rb"[^ ()]+").match(data, i)
            assert m is not None
            word = m.group().decode("ascii")
            stack[-1].append(None if word.upper() == "NIL" else Atom(word))
            i = m.end()
    assert len(stack) == 1, "unbalanced parentheses"
    return stack[0]


def _is_string(x: Any) -> bool:
    return isinstance(x, str) and not isinstance(x, Atom)


def _is_nstring(x: Any) -> bool:
    return x is None or _is_string(x)


def _is_number(x: Any) -> bool:
    return isinstance(x, Atom) and x.isdigit()


def _check_params(x: Any) -> None:
    assert x is None or (isinstance(x, list) and x and len(x) % 2 == 0), x
    assert x is None or all(_is_string(v) for v in x), x


def _check_extension(rest: list[Any]) -> None:
    """body-fld-dsp SP body-fld-lang SP body-fld-loc."""
    dsp, lang, loc = rest
    assert dsp is None or (isinstance(dsp, list) and len(dsp) == 2 and _is_string(dsp[0])), dsp
    if dsp is not None:
        _check_params(dsp[1])
    assert _is_nstring(lang) or (isinstance(lang, list) and all(_is_string(t) for t in lang))
    assert _is_nstring(loc)


def check_envelope(env: Any) -> None:
    assert isinstance(env, list) and len(env) == 10, env
    for k in (0, 1, 8, 9):
        assert _is_nstring(env[k]), env[k]
    for addresses in env[2:8]:
        assert addresses is None or (isinstance(addresses, list) and addresses), addresses
        for a in addresses or []:
            assert isinstance(a, list) and len(a) == 4 and all(_is_nstring(x) for x in a), a


def check_body(body: Any, extended: bool) -> None:
    """RFC 9051 `body`: the form must follow from the type strings, as a client reads it."""
    assert isinstance(body, list) and body, body
    if isinstance(body[0], list):
        i = 0
        while isinstance(body[i], list):
            check_body(body[i], extended)
            i += 1
        assert _is_string(body[i]), body
        rest = body[i + 1 :]
        if extended:
            assert len(rest) == 4, rest
            _check_params(rest[0])
            _check_extension(rest[1:])
        else:
            assert rest == [], rest
        return
    type_, subtype, params, id_, description, encoding, size = body[:7]
    assert _is_string(type_) and _is_string(subtype) and _is_string(encoding), body
    _check_params(params)
    assert _is_nstring(id_) and _is_nstring(description) and _is_number(size), body
    rest = body[7:]
    kind = (type_.lower(), subtype.lower())
    if kind in (("message", "rfc822"), ("message", "global")):
        check_envelope(rest[0])
        check_body(rest[1], extended)
        assert _is_number(rest[2]), rest
        rest = rest[3:]
    elif kind[0] == "text":
        assert _is_number(rest[0]), rest
        rest = rest[1:]
    if extended:
        assert len(rest) == 4, rest
        assert _is_nstring(rest[0])
        _check_extension(rest[1:])
    else:
        assert rest == [], rest


def _round_trip(body: BodyPart, envelope: Envelope) -> None:
    for extended in (True, False):
        (parsed,) = read_imap(bodystructure_bytes(body, extended=extended))
        check_body(parsed, extended)
    (env,) = read_imap(envelope_bytes(envelope))
    check_envelope(env)


# --- hand-written messages ----------------------------------------------------------------------

NESTED = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: undisclosed-recipients:;\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and \"quotes\"\r\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0100\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"Content-Language: en, de\r\n"
    b"\r\n"
    b"Hi=\r\n there\r\n"
    b"\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"Content-Description: forwarded\r\n"
    b"Content-Disposition: inline\r\n"
    b"\r\n"
    b"From: Bob <bob@example.net>\r\n"
    b"Subject: inner\r\n"
    b"Content-Type: multipart/alternative; boundary=inner\r\n"
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"plain\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=us-ascii\r\n"
    b"\r\n"
    b"<b>html</b>\r\n"
    b"--inner--\r\n"
    b"\r\n"
    b"--outer\r\n"
    b"Content-Type: application/pdf; name=\"r.pdf\"\r\n"
    b"Content-Transfer-Encoding: BASE64\r\n"
    b"Content-ID: <part3@example.org>\r\n"
    b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
    b"Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf; size=4\r\n"
    b"Content-Location: http://example.org/r.pdf\r\n"
    b"\r\n"
    b"JVBERi0=\r\n"
    b"--outer--\r\n"
    b"epilogue\r\n"
)

INNER_ENVELOPE = (
    b'(NIL "inner" (("Bob" NIL "bob" "example.net")) (("Bob" NIL "bob" "example.net")) '
    b'(("Bob" NIL "bob" "example.net")) NIL NIL NIL NIL NIL)'
)

CASES: list[tuple[str, bytes, bytes, bytes, bytes]] = [
    (
        "no header at all: text/plain us-ascii defaults, everything NIL",
        b"\r\njust a body\r\n",
        b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 13 1)',
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 13 1 NIL NIL NIL NIL)',
    ),
    (
        "no empty line: all header, empty body",
        b"Subject: only a header\r\n",
        b'(NIL "only a header" NIL NIL NIL NIL NIL NIL NIL NIL)',
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)',
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)',
    ),
    (
        "multipart/mixed with a nested message/rfc822 holding multipart/alternative",
        NESTED,
        b'("Mon, 1 Jan 2024 10:00:00 +0100" "=?utf-8?q?Gr=C3=BC=C3=9Fe?= and \\"quotes\\"" '
        b'(("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" "example.org")) '
        b'(("Alice" NIL "alice" "example.org")) '
        b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL NIL NIL '
        b'"<m1@example.org>")',
        b'(("text" "plain" ("charset" "UTF-8" "format" "flowed") NIL NIL "quoted-printable" 13 2)'
        b'("message" "rfc822" NIL NIL "forwarded" "7bit" 222 ' + INNER_ENVELOPE + b" "
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0)'
        b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 11 0) "alternative") 13)'
        b'("application" "pdf" ("name" "r.pdf") "<part3@example.org>" NIL "base64" 8) "mixed")',
        b'(("text" "plain" ("charset" "UTF-8" "format" "flowed") NIL NIL "quoted-printable" 13 2'
        b' NIL NIL ("en" "de") NIL)'
        b'("message" "rfc822" NIL NIL "forwarded" "7bit" 222 ' + INNER_ENVELOPE + b" "
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 11 0 NIL NIL NIL NIL)'
        b' "alternative" ("boundary" "inner") NIL NIL NIL) 13 NIL ("inline" NIL) NIL NIL)'
        b'("application" "pdf" ("name" "r.pdf") "<part3@example.org>" NIL "base64" 8'
        b' "Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename*" "utf-8\'\'r%C3%A9sum%C3%A9.pdf"'
        b' "size" "4")) NIL "http://example.org/r.pdf")'
        b' "mixed" ("boundary" "outer") NIL NIL NIL)',
    ),
    (
        "group syntax, source route, comment as name, missing host",
        b"From: <@relay.example:user@example.org>\r\n"
        b"To: team: a@x.org, \"B, Jr.\" <b@y.org>;, c@z.org (Cee)\r\n"
        b"Cc: empty-group:;\r\n"
        b"Bcc: nohost\r\n"
        b"Reply-To: \r\n"
        b"\r\nbody\r\n",
        b'(NIL NIL ((NIL "@relay.example" "user" "example.org")) '
        b'((NIL "@relay.example" "user" "example.org")) '
        b'((NIL "@relay.example" "user" "example.org")) '
        b'((NIL NIL "team" NIL)(NIL NIL "a" "x.org")("B, Jr." NIL "b" "y.org")(NIL NIL NIL NIL)'
        b'("Cee" NIL "c" "z.org")) ((NIL NIL "empty-group" NIL)(NIL NIL NIL NIL)) '
        b'((NIL NIL "nohost" "MISSING_DOMAIN")) NIL NIL)',
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1)',
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)',
    ),
    (
        "8-bit (RFC 6532) header values become literals counted in UTF-8 octets",
        "Subject: Grüße\r\nFrom: Jürgen <j@example.de>\r\n\r\nx".encode(),
        b'(NIL {7}\r\nGr\xc3\xbc\xc3\x9fe (({7}\r\nJ\xc3\xbcrgen NIL "j" "example.de")) '
        b'(({7}\r\nJ\xc3\xbcrgen NIL "j" "example.de")) (({7}\r\nJ\xc3\xbcrgen NIL "j" '
        b'"example.de")) NIL NIL NIL NIL NIL)',
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0)',
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL NIL NIL NIL)',
    ),
    (
        "message/global (RFC 6532) has the message form; RFC 2231 parameters stay extended",
        b"Content-Type: message/global\r\n\r\nSubject: g\r\n\r\nhi\r\n",
        b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
        b'("message" "global" NIL NIL NIL "7bit" 18 (NIL "g" NIL NIL NIL NIL NIL NIL NIL NIL) '
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 1) 3)',
        b'("message" "global" NIL NIL NIL "7bit" 18 (NIL "g" NIL NIL NIL NIL NIL NIL NIL NIL) '
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 1 NIL NIL NIL NIL) 3'
        b" NIL NIL NIL NIL)",
    ),
    (
        "an empty multipart gets one empty text/plain part (Dovecot); unknown types keep no lines",
        b"Content-Type: multipart/related; boundary=b; type=\"text/html\"\r\n\r\nno parts\r\n",
        b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "related")',
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "related"'
        b' ("boundary" "b" "type" "text/html") NIL NIL NIL)',
    ),
    (
        "a basic part has no line count",
        b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n",
        b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
        b'("image" "png" NIL NIL NIL "base64" 10)',
        b'("image" "png" NIL NIL NIL "base64" 10 NIL NIL NIL NIL)',
    ),
]


@pytest.mark.parametrize(
    ("raw", "envelope", "body", "bodystructure"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_hand_written_messages_render_exactly(
    raw: bytes, envelope: bytes, body: bytes, bodystructure: bytes
) -> None:
    meta = parse_message(raw)
    assert envelope_bytes(meta.envelope) == envelope
    assert bodystructure_bytes(meta.body, extended=False) == body
    assert bodystructure_bytes(meta.body, extended=True) == bodystructure
    _round_trip(meta.body, meta.envelope)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (None, "NIL"),
        ("", '""'),
        ("NIL", '"NIL"'),  # a string, never the NIL atom
        ('say "hi" \\o/', '"say \\"hi\\" \\\\o/"'),
        ('"""""', '{5}\r\n"""""'),  # past four quoted-specials a literal is shorter
        ("tab\tand\x7f", '"tab\tand\x7f"'),  # TEXT-CHAR allows them
        ("bare\rcr", "{7}\r\nbare\rcr"),
        ("line\r\nbreak", "{11}\r\nline\r\nbreak"),
        ("nul\x00dropped", "{10}\r\nnuldropped"),
        ("café", "{5}\r\ncafé"),
        ("\ud800", "{1}\r\n?"),  # a lone surrogate cannot be UTF-8: it becomes "?"
        ("x" * MAX_QUOTED, '"' + "x" * MAX_QUOTED + '"'),
        ("x" * (MAX_QUOTED + 1), f"{{{MAX_QUOTED + 1}}}\r\n" + "x" * (MAX_QUOTED + 1)),
    ],
)
def test_nstring_quotes_or_uses_a_literal(value: str | None, wire: str) -> None:
    assert nstring(value) == wire


def test_literals_inside_a_body_structure_parse_back() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
        b"Content-Type: text/plain; name=\"a\\\\b \\\"c\\\" \\\"d\\\"\"\r\n"
        b"Content-Description: \xc3\xa9t\xc3\xa9\r\n\r\nbody\r\n--x--\r\n"
    )
    meta = parse_message(raw)
    wire = bodystructure_bytes(meta.body, extended=True)
    assert b"{5}\r\n\xc3\xa9t\xc3\xa9" in wire
    (parsed,) = read_imap(wire)
    check_body(parsed, True)
    assert parsed[0][2] == ["name", 'a\\b "c" "d"', "charset", "us-ascii"]
    assert parsed[0][4] == "été"


def test_empty_address_list_and_missing_lines_stay_grammatical() -> None:
    # Records not made by the parser: an empty address tuple and a text part without lines.
    envelope = Envelope(None, None, (), None, None, None, None, None, None, None)
    assert envelope_bytes(envelope) == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    address = Address("x", None, "u", "h")
    envelope = Envelope("d", "s", (address,), (address,), None, None, None, None, None, None)
    assert envelope_bytes(envelope).startswith(b'("d" "s" (("x" NIL "u" "h")) (("x" NIL "u" "h"))')


# --- imaptest (Dovecot) ---------------------------------------------------------------------------


def _imaptest_dir(corpora: Path) -> Path:
    return corpora / "imaptest-dovecot" / "tests"


def _mbox_messages(path: Path) -> list[bytes]:
    return [m.raw for m in read_mbox(path)]


def _untagged(script: str) -> Iterator[list[Any]]:
    """Every expected untagged reply ("* ...") of a script whose replies fit on one line."""
    for line in script.splitlines():
        if line.startswith("* "):
            yield read_imap(line[2:].encode())


def imaptest_match(expected: Any, actual: Any) -> bool:
    """imaptest's comparison: strings case-insensitive whatever their form, NIL only NIL,
    lists ordered and complete, `$` anything (test-exec.c `test_imap_match_args`)."""
    if expected is None:
        return actual is None
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(imaptest_match(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if expected == "$":
        return True
    return isinstance(actual, str) and expected.lower() == actual.lower()


def test_imaptest_fetch_bodystructure(corpora: Path) -> None:
    folder = _imaptest_dir(corpora)
    (raw,) = _mbox_messages(folder / "fetch-bodystructure.mbox")
    (reply,) = _untagged((folder / "fetch-bodystructure").read_text())
    seq, fetch, items = reply
    assert (seq, fetch.upper(), items[0].upper()) == ("1", "FETCH", "BODY")
    meta = parse_message(raw)
    (actual,) = read_imap(bodystructure_bytes(meta.body, extended=False))
    assert imaptest_match(items[1], actual)
    # The script writes the whole line, so exact equality holds too, up to letter case.
    line = (folder / "fetch-bodystructure").read_text().splitlines()[-1]
    wire = b"* 1 FETCH (BODY " + bodystructure_bytes(meta.body, extended=False) + b")"
    assert wire.decode().lower() == line.lower()


def test_imaptest_fetch_envelope(corpora: Path) -> None:
    folder = _imaptest_dir(corpora)
    messages = _mbox_messages(folder / "fetch-envelope.mbox")
    script = (folder / "fetch-envelope").read_text()
    replies = list(_untagged(script))
    lines = [line for line in script.splitlines() if line.startswith("* ")]
    assert len(messages) == len(replies) == 6
    for seq, (raw, reply, line) in enumerate(zip(messages, replies, lines, strict=True), 1):
        assert reply[0] == str(seq) and reply[2][0].upper() == "ENVELOPE"
        envelope = envelope_bytes(parse_message(raw).envelope)
        (actual,) = read_imap(envelope)
        assert imaptest_match(reply[2][1], actual), seq
        wire = f"* {seq} FETCH (ENVELOPE ".encode() + envelope + b")"
        assert wire.decode() == line, seq  # byte for byte, letter case included


# --- every corpus message, and mutated ones -------------------------------------------------------

_NOT_MESSAGES = {"SOURCE.txt", "INDEX.tsv", "LICENSE", "COPYING", "README.upstream.md"}


def corpus_messages(corpora: Path) -> Iterator[tuple[Path, bytes]]:
    """The MIME corpora's messages, as stored (CRLF) and as given."""
    for folder in sorted(corpora.glob("mime-*")):
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.suffix == ".json" or path.name in _NOT_MESSAGES:
                continue
            if any(p.startswith(("LICENSE", "COPYING")) for p in path.relative_to(folder).parts):
                continue
            raw = path.read_bytes()
            yield path, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            yield path, raw


def test_every_corpus_message_renders_grammatically(corpora: Path) -> None:
    count = 0
    for _path, raw in corpus_messages(corpora):
        meta = parse_message(raw)
        _round_trip(meta.body, meta.envelope)
        count += 1
    assert count > 380


SEED = (
    b"From: \"A \\\"q\\\"\" <a@example.org>\r\nTo: group: b@x.org;, c@y.org\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= \xc3\xa9\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\npre\r\n--outer\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    b"Content-Language: en\r\n\r\ncaf=C3=A9\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: d@z.org\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n--in\r\n"
    b"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+eDwvYj4=\r\n"
    b"--in\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: m\r\n\r\nm\r\n"
    b"--d--\r\n--in--\r\n--outer\r\nContent-Type: application/pdf; name*0*=utf-8''a%20;"
    b" name*1=b\r\nContent-Disposition: attachment; filename=\"x\\\\y\"\r\n\r\nJVBERi0=\r\n"
    b"--outer--\r\nepi\r\n"
)
TOKENS = [
    b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"--outer", b"--outer--", b"--in", b"--d", b":", b";",
    b'"', b"\\", b"(", b")", b"<", b">", b"@", b",", b"{3}", b"\x00", b"\xff", b"\xc3\xa9",
    b"Content-Type: message/global\r\n\r\n", b"Content-Disposition: inline; a=\"\r\n",
    b"Content-Type: multipart/mixed; boundary=outer\r\n", b" NIL", b"\t", b" ",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEED)
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            data[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(max_size=8))
        else:
            del data[pos : pos + draw(st.integers(1, 40))]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_render_grammatically(raw: bytes) -> None:
    meta = parse_message(raw)
    _round_trip(meta.body, meta.envelope)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_round_trips_through_nstring(value: str) -> None:
    (parsed,) = read_imap(nstring(value).encode("utf-8"))
    expected = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    assert parsed == expected
