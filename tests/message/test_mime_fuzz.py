"""Property tests: parse_message never raises and always returns sound offsets."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mime_render import assert_well_formed
from postoffice.message import mime
from postoffice.message.mime import dump_structure, load_structure, parse_message
from postoffice.message.mime_address import parse_address_list
from postoffice.message.mime_headers import (
    decode_words,
    msg_ids,
    parse_content_type,
    parse_date,
    parse_disposition,
    parse_language,
)

SEED = (
    b"From: \"A\" <a@example.org>\r\nTo: group: b@x.org;, c@y.org\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?=\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\npre\r\n--outer\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    b"\r\ncaf=C3=A9\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\nFrom: d@z.org\r\n"
    b"Content-Type: multipart/alternative; boundary=in\r\n\r\n--in\r\n"
    b"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+eDwvYj4=\r\n"
    b"--in\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: m\r\n\r\nm\r\n"
    b"--d--\r\n--in--\r\n--outer\r\nContent-Type: application/pdf; name*0*=utf-8''a%20;"
    b" name*1=b\r\nContent-Disposition: attachment\r\n\r\nJVBERi0=\r\n--outer--\r\nepi\r\n"
)

# Pieces that steer mutations toward the interesting syntax.
TOKENS = [
    b"\r\n", b"\n", b"\r\n\r\n", b"--outer", b"--outer--", b"--in", b"--d", b"--", b":", b";",
    b"\"", b"(", b")", b"<", b">", b"@", b",", b"=?utf-8?b?", b"?=", b"\x00", b"\xff",
    b"Content-Type: multipart/mixed; boundary=outer\r\n",
    b"Content-Type: message/rfc822\r\n\r\n", b"Content-Transfer-Encoding: base64\r\n",
    b" boundary=in", b"\t", b" ",
]


def _check(raw: bytes) -> None:
    meta = mime._parse(raw)  # the safety net in parse_message must never be needed
    assert_well_formed(meta.body, 0, len(raw))
    assert meta.body.header_start == 0 and meta.body.end == len(raw)
    assert len(meta.preview) <= 200
    assert load_structure(dump_structure(meta.envelope, meta.body)) == (meta.envelope, meta.body)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEED)
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "lf"]))
        if op == "insert":
            data[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 40))]
        elif op == "replace" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        else:
            data = bytearray(bytes(data).replace(b"\r\n", b"\n"))
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_never_raise(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*TOKENS, b"x", b"a@b", b"From: ", b"Subject: "]), max_size=60))
def test_token_soup_never_raises(pieces: list[bytes]) -> None:
    _check(b"".join(pieces))


def test_public_entry_point_survives_anything() -> None:
    for raw in (SEED, SEED[:100], SEED.replace(b"\r\n", b"\n"), b"\r\n" * 1000):
        assert parse_message(raw).body.end == len(raw)


FIELD_ALPHABET = st.sampled_from(
    [*' \t"\\()<>@,;:.=*%\'?[]/-_', "=?", "?=", "²", "é", "a", "1", "*0*", "''"]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(FIELD_ALPHABET | st.text(max_size=3), max_size=40).map("".join))
def test_field_parsers_never_raise(value: str) -> None:
    for parse in (parse_content_type, parse_disposition, parse_address_list, decode_words,
                  parse_date, msg_ids, parse_language):
        parse(value)
