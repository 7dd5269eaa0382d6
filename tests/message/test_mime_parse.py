"""parse_message on hand-written messages: exact ENVELOPE, BODYSTRUCTURE, sizes and offsets."""
from __future__ import annotations

import time

import pytest

from mime_render import assert_well_formed, render_body, render_envelope, section_bytes
from postoffice.message.mime import Address, MessageMetadata, parse_message


def crlf(*lines: str) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


def parse(raw: bytes) -> MessageMetadata:
    meta = parse_message(raw)
    assert_well_formed(meta.body, 0, len(raw))
    return meta


NESTED = crlf(
    'From: "Alice Example" <alice@example.org>',
    "To: bob@example.net, Carol <carol@example.com>",
    "Subject: outer",
    "Date: Mon, 1 Jan 2024 10:00:00 +0000",
    "Message-ID: <outer@example.org>",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="outer"',
    "",
    "preamble",
    "--outer",
    "Content-Type: text/plain; charset=utf-8",
    "",
    "See the attached message.",
    "--outer",
    "Content-Type: message/rfc822",
    'Content-Disposition: attachment; filename="fwd.eml"',
    "",
    "From: dave@example.com",
    "Subject: inner",
    "Content-Type: multipart/alternative; boundary=inner",
    "",
    "--inner",
    "Content-Type: text/plain",
    "",
    "inner plain",
    "--inner",
    "Content-Type: text/html; charset=us-ascii",
    "",
    "<p>inner &amp; html</p>",
    "--inner--",
    "--outer--",
    "epilogue",
)


def test_nested_message_rfc822_bodystructure_is_exact() -> None:
    meta = parse(NESTED)
    assert render_body(meta.body) == (
        '("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 25 0 NIL NIL NIL NIL)'
        '("message" "rfc822" NIL NIL NIL "7bit" 233 '
        '(NIL "inner" ((NIL NIL "dave" "example.com")) ((NIL NIL "dave" "example.com")) '
        '((NIL NIL "dave" "example.com")) NIL NIL NIL NIL NIL) '
        '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 11 0 NIL NIL NIL NIL)'
        '("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 23 0 NIL NIL NIL NIL) '
        '"alternative" ("boundary" "inner") NIL NIL NIL) 12 NIL ("attachment" '
        '("filename" "fwd.eml")) NIL NIL) "mixed" ("boundary" "outer") NIL NIL NIL'
    )
    assert render_envelope(meta.envelope) == (
        '("Mon, 1 Jan 2024 10:00:00 +0000" "outer" (("Alice Example" NIL "alice" "example.org"))'
        ' (("Alice Example" NIL "alice" "example.org")) (("Alice Example" NIL "alice"'
        ' "example.org")) ((NIL NIL "bob" "example.net")("Carol" NIL "carol" "example.com"))'
        ' NIL NIL NIL "<outer@example.org>")'
    )


def test_nested_message_rfc822_offsets_answer_every_section() -> None:
    raw = NESTED
    meta = parse(raw)
    root = meta.body
    assert (root.header_start, root.body_start, root.end) == (0, 248, len(raw))
    first, attached = root.children
    assert first.header_start == raw.index(b"Content-Type: text/plain; charset=utf-8")
    assert first.body_start == raw.index(b"See the")
    assert raw[first.end : first.end + 9] == b"\r\n--outer"  # the CRLF belongs to the delimiter
    sections = {
        "HEADER": raw[: raw.index(b"preamble")],
        "TEXT": raw[raw.index(b"preamble") :],
        "1": b"See the attached message.",
        "1.MIME": b"Content-Type: text/plain; charset=utf-8\r\n\r\n",
        "2.MIME": crlf(
            "Content-Type: message/rfc822",
            'Content-Disposition: attachment; filename="fwd.eml"',
            "",
        ),
        "2.HEADER": crlf(
            "From: dave@example.com",
            "Subject: inner",
            "Content-Type: multipart/alternative; boundary=inner",
            "",
        ),
        "2.TEXT": crlf(
            "--inner", "Content-Type: text/plain", "", "inner plain", "--inner",
            "Content-Type: text/html; charset=us-ascii", "", "<p>inner &amp; html</p>",
        ) + b"--inner--",
        "2.1": b"inner plain",
        "2.1.MIME": b"Content-Type: text/plain\r\n\r\n",
        "2.2": b"<p>inner &amp; html</p>",
    }
    for section, expected in sections.items():
        assert section_bytes(raw, root, section) == expected, section
    assert section_bytes(raw, root, "2")[:22] == b"From: dave@example.com"
    assert attached.size == len(section_bytes(raw, root, "2")) == 233
    assert attached.lines == 12


def test_nested_message_search_data() -> None:
    meta = parse(NESTED)
    h = meta.headers
    assert h.subject == "outer"
    assert h.from_ == "Alice Example <alice@example.org>"
    assert h.to == "bob@example.net, Carol <carol@example.com>"
    assert h.cc == h.bcc == ""
    assert h.date == 1704103200
    assert h.message_id == "<outer@example.org>"
    assert h.in_reply_to is None and h.references == ()
    assert h.header_text.startswith('From: "Alice Example" <alice@example.org>\nTo: bob@')
    assert h.header_text.endswith('Content-Type: multipart/mixed; boundary="outer"\n')
    # The attached message is searchable; its alternative is indexed once (the plain part).
    assert meta.text == "See the attached message.\ninner plain"
    assert meta.preview == "See the attached message."
    assert meta.attachment_count == 1


def test_encoded_words_are_raw_in_envelope_and_decoded_for_search() -> None:
    raw = crlf(
        "From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>",
        "To: =?ISO-8859-1?Q?Andr=E9?= Pirard <pirard@example.be>",
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?ISO-8859-1?B?S/ZsbiE=?=",
        "Content-Description: =?utf-8?q?caf=C3=A9?=",
        "",
        "hi",
    )
    meta = parse(raw)
    assert meta.envelope.subject == "=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?ISO-8859-1?B?S/ZsbiE=?="
    assert meta.envelope.from_ == (
        Address("=?utf-8?q?J=C3=B6rg_M=C3=BCller?=", None, "joerg", "example.de"),
    )
    assert meta.envelope.to == (
        Address("=?ISO-8859-1?Q?Andr=E9?= Pirard", None, "pirard", "example.be"),
    )
    assert meta.body.description == "=?utf-8?q?caf=C3=A9?="
    assert meta.headers.subject == "Grüße aus Köln!"
    assert meta.headers.from_ == "Jörg Müller <joerg@example.de>"
    assert meta.headers.to == "André Pirard <pirard@example.be>"
    assert "Subject: Grüße aus Köln!\n" in meta.headers.header_text


def test_adjacent_encoded_words_join_split_characters() -> None:
    # "é" (C3 A9) split across two encoded-words; the white space between them is dropped.
    raw = crlf("Subject: =?utf-8?B?w6k=?= =?utf-8?q?=C3?=", " =?utf-8?q?=A9t=C3=A9?=", "", "")
    assert parse(raw).headers.subject == "éété"


def test_8bit_body_and_8bit_headers() -> None:
    raw = (
        "Subject: Grüße\r\nFrom: Zoë <zoe@example.org>\r\nContent-Type: text/plain; "
        "charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\nzwei\r\n"
    ).encode()
    meta = parse(raw)
    body = meta.body
    assert (body.type, body.subtype, body.params, body.encoding) == (
        "text", "plain", (("charset", "utf-8"),), "8bit",
    )
    assert body.size == len("Grüße\r\nzwei\r\n".encode()) == 15
    assert body.lines == 2
    assert meta.envelope.subject == "Grüße"
    assert meta.envelope.from_ == (Address("Zoë", None, "zoe", "example.org"),)
    assert meta.text == "Grüße\nzwei\n"
    latin = parse(b"Subject: caf\xe9\r\n\r\nx")  # not UTF-8: read as Latin-1
    assert latin.envelope.subject == "café"


def test_missing_closing_delimiter_runs_to_the_end() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b",
        "",
        "--b",
        "Content-Type: text/plain",
        "",
        "one",
        "--b",
        "",
        "two",
        "no close",
    )
    meta = parse(raw)
    _one, two = meta.body.children
    assert section_bytes(raw, meta.body, "1") == b"one"
    assert (two.header_start, two.body_start, two.end) == (
        raw.index(b"\r\ntwo"), raw.index(b"two"), len(raw),
    )
    assert section_bytes(raw, meta.body, "2") == b"two\r\nno close\r\n"
    assert (two.size, two.lines) == (15, 2)
    assert meta.body.end == len(raw)


def test_multipart_without_boundary_parameter_is_read_as_text() -> None:
    raw = crlf("Subject: x", "Content-Type: multipart/report;", "", "I am the body")
    body = parse(raw).body
    assert (body.type, body.subtype, body.children) == ("text", "plain", ())
    assert body.params == (("charset", "us-ascii"),)
    assert (body.size, body.lines) == (15, 1)
    assert parse(raw).text == "I am the body\n"


def test_multipart_without_any_delimiter_gets_one_empty_part() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=zz", "", "just text")
    body = parse(raw).body
    (only,) = body.children
    assert render_body(only) == (
        '"text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL'
    )
    assert only.header_start == only.body_start == only.end == len(raw)
    assert section_bytes(raw, body, "TEXT") == b"just text\r\n"


def test_group_addresses_and_routes() -> None:
    raw = crlf(
        "From: user@domain (Real Name)",
        "To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;",
        "Cc: undisclosed-recipients:;",
        "Bcc: <@route1,@route2:user@domain>",
        "Reply-To: ",
        "",
    )
    env = parse(raw).envelope
    assert env.from_ == (Address("Real Name", None, "user", "domain"),)
    assert env.sender == env.reply_to == env.from_  # RFC 3501 §7.4.2: empty or absent
    assert env.to == (
        Address(None, None, "group", None),
        Address(None, None, "g1", "d1.org"),
        Address(None, None, "g2", "d2.org"),
        Address(None, None, None, None),
        Address(None, None, "group2", None),
        Address(None, None, "g3", "d3.org"),
        Address(None, None, None, None),
    )
    assert env.cc == (Address(None, None, "undisclosed-recipients", None),
                      Address(None, None, None, None))
    assert env.bcc == (Address(None, "@route1,@route2", "user", "domain"),)
    assert parse(raw).headers.to == "g1@d1.org, g2@d2.org, g3@d3.org"


def test_quoted_names_and_missing_parts_of_addresses() -> None:
    raw = crlf('To: "Doe, John \\"JD\\"" <jd@x.org>, Whomever, "a b"@c.org, @nolocal.org', "")
    assert parse(raw).envelope.to == (
        Address('Doe, John "JD"', None, "jd", "x.org"),
        Address(None, None, "Whomever", "MISSING_DOMAIN"),
        Address(None, None, '"a b"', "c.org"),
        Address(None, None, "MISSING_MAILBOX", "nolocal.org"),
    )


def test_missing_date_and_from() -> None:
    meta = parse(crlf("Subject: lonely", "", "body"))
    env = meta.envelope
    assert (env.date, env.from_, env.sender, env.reply_to, env.to) == (None,) * 5
    assert env.subject == "lonely" and env.message_id is None
    assert meta.headers.date is None and meta.headers.from_ == ""
    assert parse(crlf("Date: someday", "", "")).headers.date is None
    assert parse(crlf("Date: 1 Jan 2024 00:00:00", "", "")).headers.date == 1704067200


def test_rfc2231_parameters_are_joined() -> None:
    raw = crlf(
        "Content-Type: application/x-stuff;",
        "  title*0*=us-ascii'en'This%20is%20even%20more%20;",
        "  title*1*=%2A%2A%2Afun%2A%2A%2A%20;",
        '  title*2="isn\'t it!"; name="plain.bin"',
        "Content-Disposition: attachment; filename*=UTF-8''%E2%82%AC%20rates.pdf",
        "Content-Language: en, fr",
        "Content-Location: http://example.com/x",
        "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==",
        "Content-ID: <part1@example.com>",
        "Content-Transfer-Encoding: BASE64",
        "",
        "AAAA",
    )
    body = parse(raw).body
    assert body.params == (
        ("title*", "us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn%27t%20it!"),
        ("name", "plain.bin"),
    )
    assert body.disposition == ("attachment", (("filename*", "UTF-8''%E2%82%AC%20rates.pdf"),))
    assert body.language == ("en", "fr")
    assert body.location == "http://example.com/x"
    assert body.md5 == "Q2hlY2sgSW50ZWdyaXR5IQ=="
    assert body.id == "<part1@example.com>"
    assert body.encoding == "base64"
    assert (body.lines, body.size) == (None, 6)
    assert parse(raw).attachment_count == 1


def test_text_plain_without_content_type_gets_the_defaults() -> None:
    raw = crlf("From: a@b.c", "", "line one", "line two")
    meta = parse(raw)
    assert render_body(meta.body, extended=False) == (
        '"text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2'
    )
    assert render_body(meta.body) == (
        '"text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2 NIL NIL NIL NIL'
    )
    assert (meta.body.header_start, meta.body.body_start) == (0, 15)
    assert meta.preview == "line one line two"


def test_invalid_content_type_and_encoding_fall_back_to_defaults() -> None:
    raw = crlf("Content-Type: text", "Content-Transfer-Encoding: ?invalid", "", "x")
    body = parse(raw).body
    assert (body.type, body.subtype, body.encoding) == ("text", "plain", "7bit")
    glued = parse(crlf("Content-Type: multipart/mixed", '\tboundary="b"', "", "--b", "", "x"))
    assert glued.body.type == "multipart" and len(glued.body.children) == 1


def test_lf_only_input_offsets_refer_to_the_bytes_given() -> None:
    raw = NESTED.replace(b"\r\n", b"\n")
    meta = parse(raw)
    first, _attached = meta.body.children
    assert raw[first.body_start : first.end] == b"See the attached message."
    assert first.size == 25 and first.lines == 0
    assert section_bytes(raw, meta.body, "2.HEADER").endswith(b"boundary=inner\n\n")
    assert section_bytes(raw, meta.body, "2.2") == b"<p>inner &amp; html</p>"
    assert render_body(meta.body).count('"text"') == 3


def test_digest_parts_default_to_message_rfc822() -> None:
    raw = crlf(
        'Content-Type: multipart/digest; boundary="d"', "", "--d", "",
        "From: m1@example.com", "Subject: m1", "", "m1 body", "--d--",
    )
    meta = parse(raw)
    (part,) = meta.body.children
    assert (part.type, part.subtype, part.params) == ("message", "rfc822", ())
    assert part.message is not None
    assert part.message[0].subject == "m1"
    assert section_bytes(raw, meta.body, "1.MIME") == b"\r\n"
    assert section_bytes(raw, meta.body, "1.TEXT") == b"m1 body"


def test_enclosing_delimiter_closes_nested_multipart() -> None:
    # RFC 2046 §5.1.2: an outer delimiter inside an inner multipart implicitly closes it.
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=1", "", "--1",
        "Content-Type: multipart/mixed; boundary=2", "", "--2", "", "a", "--2", "", "bb",
        "--1", "", "ccc",
    )
    body = parse(raw).body
    inner, _last = body.children
    assert [raw[c.body_start : c.end] for c in inner.children] == [b"a", b"bb"]
    assert section_bytes(raw, body, "2") == b"ccc\r\n"
    assert inner.end == raw.index(b"\r\n--1\r\n\r\nccc")


def test_longest_boundary_wins_and_prefix_lines_are_delimiters() -> None:
    # Boundaries "a" and "ab": "--ab" belongs to the inner multipart; "--ac" is a delimiter of
    # "a" (RFC 2046 §5.1.1 compares only the start of the line).
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=a", "", "--a",
        "Content-Type: multipart/mixed; boundary=ab", "", "--ab", "", "x", "--ac", "", "y",
    )
    body = parse(raw).body
    inner, second = body.children
    assert [raw[c.body_start : c.end] for c in inner.children] == [b"x"]
    assert raw[second.body_start : second.end] == b"y\r\n"


def test_delimiter_inside_a_header_block_ends_the_part() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b", "", "--b",
        "Content-Type: text/plain", "--b", "Content-Type: text/html", "", "<b>x</b>", "--b--",
    )
    body = parse(raw).body
    first, second = body.children
    assert raw[first.header_start : first.body_start] == b"Content-Type: text/plain"
    assert first.size == 0 and first.lines == 0
    assert second.subtype == "html" and raw[second.body_start : second.end] == b"<b>x</b>"


def test_empty_body_gives_its_blank_line_to_the_delimiter() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=b", "", "--b", "X-A: 1", "", "--b--")
    (part,) = parse(raw).body.children
    assert raw[part.header_start : part.body_start] == b"X-A: 1\r\n"
    assert part.size == 0


def test_empty_input_and_garbage_never_raise() -> None:
    for raw in (b"", b"\r\n", b"\n", b"x", b"\x00" * 50, b"--", b":", b"\xff\xfe" * 10):
        meta = parse(raw)
        assert meta.body.end == len(raw)
        assert meta.envelope.subject is None
    assert parse_message(bytearray(b"Subject: y\r\n\r\n")).envelope.subject == "y"
    assert parse_message("not bytes").body.end == 0  # type: ignore[arg-type]


def test_nul_bytes_are_dropped_from_strings() -> None:
    meta = parse(b"Subject: a\x00b\r\nContent-Type: text/plain\r\n\r\nx\x00y\r\n")
    assert meta.envelope.subject == "ab"
    assert meta.text == "xy\n"
    assert meta.body.size == 5


def test_hostile_nesting_is_capped() -> None:
    deep = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(500)
    )
    meta = parse(deep + b"\r\nhello\r\n")
    depth, part = 0, meta.body
    while part.children:
        part, depth = part.children[0], depth + 1
    assert depth == 50 and (part.type, part.subtype) == ("text", "plain")
    messages = parse(b"Content-Type: message/rfc822\r\n\r\n" * 500 + b"\r\nhi")
    assert messages.envelope.subject is None


def test_huge_header_counts_and_part_counts_are_bounded() -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(20000))
    meta = parse(headers + b"Subject: end\r\n\r\nbody")
    assert meta.envelope.subject == "end"
    many = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * 20000
    assert len(parse(many).body.children) < 10_001


def test_hostile_input_stays_linear() -> None:
    # Parts whose headers never end used to make every part search the rest of the message.
    head = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    start = time.perf_counter()
    meta = parse(head + b"--b\r\nX: y\r\n" * 300_000)
    parse(head + b"--x\r\n" * 300_000 + b"To: " + b"a@b, " * 100_000 + b"\r\n")
    assert time.perf_counter() - start < 10  # about 0.5 s; quadratic behaviour takes minutes
    assert len(meta.body.children) == 9_999


@pytest.mark.parametrize(
    ("ctype", "disposition", "count"),
    [
        ("application/pdf; name=a.pdf", "", 1),
        ("image/png", "inline", 1),
        ("text/plain", "", 0),
        ("text/plain; name=notes.txt", "", 1),
        ("text/plain; name=notes.txt", "inline", 0),
        ("text/calendar", "", 0),
        ("application/pgp-signature", "", 0),
        ("text/html", "attachment", 1),
    ],
)
def test_attachment_count(ctype: str, disposition: str, count: int) -> None:
    lines = ["Content-Type: multipart/mixed; boundary=b", "", "--b", "", "body", "--b",
             "Content-Type: " + ctype]
    if disposition:
        lines.append("Content-Disposition: " + disposition)
    lines += ["", "data", "--b--"]
    assert parse(crlf(*lines)).attachment_count == count


def test_related_images_are_not_attachments_and_html_gives_text() -> None:
    raw = crlf(
        "Content-Type: multipart/related; boundary=r", "", "--r",
        "Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: quoted-printable",
        "",
        "<html><head><style>p{}</style></head><body><p>Caf=C3=A9 &amp; cr=",
        "=C3=A8me</p><script>x()</script></body></html>",
        "--r", "Content-Type: image/png", "Content-ID: <i1>", "", "iVBO", "--r--",
    )
    meta = parse(raw)
    assert meta.attachment_count == 0
    assert meta.preview == "Café & crème"
    assert "x()" not in meta.text and "p{}" not in meta.text


def test_text_decoding_base64_and_charsets() -> None:
    raw = crlf(
        "Content-Type: text/plain; charset=iso-8859-1", "Content-Transfer-Encoding: base64",
        "", "Q2Fm6SAtIGNy6G1l", "IGJy+2zpZQ==",
    )
    assert parse(raw).text == "Café - crème brûlée"
    broken = crlf("Content-Transfer-Encoding: base64", "", "Q2Fm6!!!SAtI")
    assert isinstance(parse(broken).text, str)
    mislabelled = crlf("Content-Type: text/plain; charset=utf-8",
                       "Content-Transfer-Encoding: base64", "", "plain words, not base64")
    assert parse(mislabelled).text == "plain words, not base64\n"
    unknown = crlf("Content-Type: text/plain; charset=x-no-such", "", "ok")
    assert parse(unknown).text == "ok\n"


def test_message_ids_and_references() -> None:
    raw = crlf(
        "Message-ID: <a@b>",
        "In-Reply-To: <p1@x> (comment) <p2@x>",
        "References: <r1@x>\r\n\t<r2@x>  <r 3@x>",
        "",
    )
    h = parse(raw).headers
    assert (h.message_id, h.in_reply_to) == ("<a@b>", "<p1@x>")
    assert h.references == ("<r1@x>", "<r2@x>", "<r3@x>")
    env = parse(raw).envelope
    assert env.in_reply_to == "<p1@x> (comment) <p2@x>"
    assert parse(crlf("Message-ID: bare@id", "")).headers.message_id == "<bare@id>"


def test_folded_headers_are_unfolded_in_the_envelope() -> None:
    raw = crlf("Subject: a long", "\tsubject line", "Date: Mon, 1 Jan 2024", " 10:00:00 +0000", "")
    env = parse(raw).envelope
    assert env.subject == "a long\tsubject line"
    assert env.date == "Mon, 1 Jan 2024 10:00:00 +0000"
