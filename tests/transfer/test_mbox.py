"""mbox reading and writing (RFC 4155, mboxrd): separation, quoting, flags, dates, round trips.

Python's `mailbox` module serves as an independent reference where its rules and ours agree
(it does not unquote `>From ` nor remove Status headers, so it is compared only where neither
occurs).
"""

from __future__ import annotations

import gzip
import mailbox
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postoffice.message.lines import to_crlf
from postoffice.transfer import mbox as mbox_module
from postoffice.transfer.mbox import MboxWriter, count_mbox, parse_from_line, read_mbox
from postoffice.transfer.source import SourceMessage, TransferError

FROM_LINE = b"From sender@example.com Mon Jan  1 00:00:00 2024\n"


def write(tmp_path: Path, data: bytes, name: str = "in.mbox") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_all(path: Path) -> list[SourceMessage]:
    messages = list(read_mbox(path))
    assert count_mbox(path) == len(messages)
    return messages


# -- corpora ------------------------------------------------------------------------------------


def test_fedora_archive_has_292_messages_identical_to_python_mailbox(
    corpora: Path, tmp_path: Path
) -> None:
    # SOURCE.txt: 292 messages, 27 of them with 8-bit bytes.
    source = corpora / "threading-jwz-fedora-devel" / "2010-January.txt.gz"
    messages = read_all(source)
    assert len(messages) == 292
    assert sum(1 for m in messages if any(b > 127 for b in m.raw)) == 27

    plain = write(tmp_path, gzip.decompress(source.read_bytes()), "fedora.mbox")
    reference = mailbox.mbox(plain)
    try:
        expected = [reference.get_bytes(key) for key in reference.iterkeys()]
        senders = [reference.get_message(key).get_from() for key in reference.iterkeys()]
    finally:
        reference.close()
    assert [m.raw for m in messages] == [to_crlf(raw) for raw in expected]
    assert [m.internal_date for m in messages] == [
        datetime.strptime(s.split(" ", 1)[1], "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
        for s in senders
    ]
    assert messages[0].internal_date == datetime(2009, 12, 31, 22, 50, 51, tzinfo=UTC)
    assert messages[0].source_id == "offset:0"
    assert len({m.source_id for m in messages}) == 292
    assert read_all(plain) == messages  # gzip is only a transport


def test_unquoted_from_in_body_and_extra_text_on_from_line(corpora: Path) -> None:
    # SOURCE.txt: one message; "From time to time" in the body, "extra info" after the date.
    messages = read_all(corpora / "mime-python-test-email" / "data" / "mailbox_01.mbox")
    assert len(messages) == 1
    (message,) = messages
    assert message.raw.endswith(b"\r\n\r\nHello\r\n\r\nFrom time to time\r\n")
    assert message.raw.startswith(b"From: foo\r\nSubject: unquoted From in body;")
    assert message.internal_date == datetime(2022, 8, 7, 11, 40, 37, tzinfo=UTC)
    assert message.flags == frozenset()


def test_every_imaptest_mbox_reads_like_python_mailbox(corpora: Path) -> None:
    files = sorted((corpora / "imaptest-dovecot" / "tests").glob("*.mbox"))
    assert len(files) >= 39
    for path in files:
        messages = read_all(path)
        reference = mailbox.mbox(path)
        try:
            expected = [reference.get_bytes(key) for key in reference.iterkeys()]
        finally:
            reference.close()
        assert len(messages) == len(expected), path.name
        for ours, theirs in zip(messages, expected, strict=True):
            if b">From " not in theirs and b"\nStatus:" not in theirs:
                assert ours.raw == to_crlf(theirs), path.name
            assert ours.internal_date is not None


# -- separation ---------------------------------------------------------------------------------


def test_from_line_needs_an_empty_line_before_it(tmp_path: Path) -> None:
    data = (
        FROM_LINE + b"Subject: one\n\nbody\nFrom sender@example.com Mon Jan  1 00:00:00 2024\n"
        b"still one\n\n" + FROM_LINE + b"Subject: two\n\nbody two\n"
    )
    messages = read_all(write(tmp_path, data))
    assert [m.raw for m in messages] == [
        b"Subject: one\r\n\r\nbody\r\nFrom sender@example.com Mon Jan  1 00:00:00 2024\r\n"
        b"still one\r\n",
        b"Subject: two\r\n\r\nbody two\r\n",
    ]


@pytest.mark.parametrize(
    "line",
    [
        b"From here on, nothing works",
        b"From sender@example.com yesterday",
        b"From sender@example.com Mon Jan 32 00:00:00 2024",  # no such day
        b"From sender@example.com Mon Foo  1 00:00:00 2024",
        b"From sender@example.com Mon Jan  1 00:00:00",  # no year
    ],
)
def test_from_without_a_real_date_is_body_text(tmp_path: Path, line: bytes) -> None:
    data = FROM_LINE + b"Subject: s\n\nfirst\n\n" + line + b"\nlast\n"
    (message,) = read_all(write(tmp_path, data))
    assert message.raw == b"Subject: s\r\n\r\nfirst\r\n\r\n" + line + b"\r\nlast\r\n"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"From a@b Mon Jan  1 00:00:00 2024", datetime(2024, 1, 1, tzinfo=UTC)),
        (b"From a@b  Fri Feb 22 17:06:23 2008", datetime(2008, 2, 22, 17, 6, 23, tzinfo=UTC)),
        (
            b"From a@b Fri Feb 22 23:00:00 2008 +0200",
            datetime(2008, 2, 22, 23, tzinfo=timezone(timedelta(hours=2))),
        ),
        (
            b"From a@b Fri Dec 12 09:15:05 EST 1997",
            datetime(1997, 12, 12, 9, 15, 5, tzinfo=timezone(timedelta(hours=-5))),
        ),
        (
            b"From MAILER-DAEMON Sun Aug  7 11:40:37 2022 extra info",
            datetime(2022, 8, 7, 11, 40, 37, tzinfo=UTC),
        ),
        (b"From  Tue Mar  5 10:20 2024", datetime(2024, 3, 5, 10, 20, tzinfo=UTC)),
        (b'From "a b"@c Tue Mar  5 10:20:30 2024', datetime(2024, 3, 5, 10, 20, 30, tzinfo=UTC)),
        (b"From a@b Tue Mar  5 10:20:30 2024\r", datetime(2024, 3, 5, 10, 20, 30, tzinfo=UTC)),
        (b"From: a@b Mon Jan  1 00:00:00 2024", None),
        (b"from a@b Mon Jan  1 00:00:00 2024", None),
        (b"From a@b Mon Jan  1 25:00:00 2024", None),
        (b"From a@b Mon Jan  1 00:00:00 20245", None),
    ],
)
def test_parse_from_line(line: bytes, expected: datetime | None) -> None:
    if line.endswith(b"\r"):
        line = line.rstrip(b"\r")
    assert parse_from_line(line) == expected


def test_crlf_mbox_and_leading_blank_lines(tmp_path: Path) -> None:
    data = (
        b"\r\n\r\nFrom a@b Mon Jan  1 00:00:00 2024\r\nSubject: one\r\n\r\nbody\r\n\r\n"
        b"From a@b Tue Jan  2 00:00:00 2024\r\nSubject: two\r\n\r\nbody\r\n\r\n"
    )
    messages = read_all(write(tmp_path, data))
    assert [m.raw for m in messages] == [
        b"Subject: one\r\n\r\nbody\r\n",
        b"Subject: two\r\n\r\nbody\r\n",
    ]
    assert [m.source_id for m in messages] == ["offset:4", f"offset:{data.index(b'From a@b Tue')}"]


def test_empty_messages_and_a_last_message_without_separator(tmp_path: Path) -> None:
    data = FROM_LINE + b"\n" + FROM_LINE + b"Subject: x\n\nno final line end"
    messages = read_all(write(tmp_path, data))
    assert [m.raw for m in messages] == [b"", b"Subject: x\r\n\r\nno final line end"]


@pytest.mark.parametrize("data", [b"", b"\n", b"\n\r\n\n"])
def test_empty_mbox_has_no_messages(tmp_path: Path, data: bytes) -> None:
    assert read_all(write(tmp_path, data)) == []


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
def test_chunk_boundaries_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    data = (
        b"From a@b Mon Jan  1 00:00:00 2024\n\n"  # empty message
        + b"From a@b Mon Jan  1 00:00:01 2024\nSubject: s\n\n>From quoted\n\n"
        + b"From a@b Mon Jan  1 00:00:02 2024\r\nX: crlf\r\n\r\nbody\r\n\r\n"
        + b"From a@b Mon Jan  1 00:00:03 2024\nStatus: RO\nX: y\n\nFrom body\n\n\n"
        + b"From a@b Mon Jan  1 00:00:04 2024\nX: last\n\nend\n\n"
    )
    path = write(tmp_path, data)
    expected = read_all(path)
    assert len(expected) == 5
    monkeypatch.setattr(mbox_module, "_CHUNK", chunk)
    assert read_all(path) == expected
    assert expected[1].raw == b"Subject: s\r\n\r\nFrom quoted\r\n"
    assert expected[3].raw == b"X: y\r\n\r\nFrom body\r\n\r\n"
    assert expected[3].flags == {"\\Seen"}


# -- flags, metadata headers ------------------------------------------------------------------


def test_status_headers_become_flags_and_are_removed(tmp_path: Path) -> None:
    data = FROM_LINE + (
        b"Subject: s\nStatus: RO\nX-Status: AFDT\nX-Keywords: $Forwarded Work\n"
        b"X-UID: 12\nContent-Length: 999\nLines: 3\nX-Keywords: $Junk,Later\n\nbody\n"
    )
    (message,) = read_all(write(tmp_path, data))
    assert message.flags == {
        "\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft",
        "$Forwarded", "Work", "$Junk", "Later",
    }  # fmt: skip
    # Lines: is a Usenet header too, so it stays.
    assert message.raw == b"Subject: s\r\nLines: 3\r\n\r\nbody\r\n"


def test_status_in_the_body_is_left_alone(tmp_path: Path) -> None:
    data = FROM_LINE + b"Subject: s\n\nStatus: RO\nX-Status: F\n"
    (message,) = read_all(write(tmp_path, data))
    assert message.flags == frozenset()
    assert message.raw == b"Subject: s\r\n\r\nStatus: RO\r\nX-Status: F\r\n"


def test_status_o_alone_is_unread(tmp_path: Path) -> None:
    (message,) = read_all(write(tmp_path, FROM_LINE + b"Status: O\nSubject: s\n\nb\n"))
    assert message.flags == frozenset()
    assert message.raw == b"Subject: s\r\n\r\nb\r\n"


def test_thunderbird_status_bits_and_keys(tmp_path: Path) -> None:
    data = FROM_LINE + (
        b"X-Mozilla-Status: 1003\nX-Mozilla-Status2: 00210000\n"
        b"X-Mozilla-Keys: $label1 NonJunk                 \nSubject: s\n\nb\n"
    )
    (message,) = read_all(write(tmp_path, data))
    assert message.flags == {
        "\\Seen", "\\Answered", "\\Deleted", "$Forwarded", "$label1", "NonJunk"
    }  # fmt: skip
    assert message.raw == b"Subject: s\r\n\r\nb\r\n"


def test_uw_imap_folder_data_message_is_skipped(tmp_path: Path) -> None:
    data = (
        b"From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n"
        b"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
        b"X-IMAP: 1234567890 0000000002\nStatus: RO\n\nThis text is part of the internal format.\n\n"
        + FROM_LINE
        + b"Subject: real\nX-UID: 1\n\nbody\n"
    )
    messages = read_all(write(tmp_path, data))
    assert [m.raw for m in messages] == [b"Subject: real\r\n\r\nbody\r\n"]


def test_mboxrd_unquoting(tmp_path: Path) -> None:
    data = FROM_LINE + b"S: s\n\n>From a\n>>From b\n> From c\n>Fromd\nx >From e\n"
    (message,) = read_all(write(tmp_path, data))
    assert message.raw == b"S: s\r\n\r\nFrom a\r\n>From b\r\n> From c\r\n>Fromd\r\nx >From e\r\n"


# -- errors --------------------------------------------------------------------------------------


def test_missing_file_is_a_plain_error(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="does not exist"):
        read_mbox(tmp_path / "nope.mbox")
    with pytest.raises(TransferError, match="does not exist"):
        count_mbox(tmp_path / "nope.mbox")


def test_folder_is_not_an_mbox(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match=r"is a folder with no \.mbox files in it"):
        read_mbox(tmp_path)


def test_other_file_is_not_an_mbox(tmp_path: Path) -> None:
    path = write(tmp_path, b"Subject: an .eml file\n\nbody\n", "x.eml")
    with pytest.raises(TransferError, match="is not an mbox file"):
        read_mbox(path)


def test_damaged_gzip_is_a_plain_error(tmp_path: Path) -> None:
    packed = gzip.compress((FROM_LINE + b"S: s\n\n" + b"body line\n" * 100_000) * 3)
    path = write(tmp_path, packed[: len(packed) // 2], "cut.mbox.gz")
    with pytest.raises(TransferError, match="damaged gzip file"):
        list(read_mbox(path))


# -- writing and round trips ---------------------------------------------------------------------

SAMPLES = [
    (b"Subject: plain\r\n\r\nbody\r\n", frozenset(), datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)),
    (
        b"Subject: quoting\r\n\r\nFrom x\r\n>From y\r\n>>From z\r\n\r\nFrom w\r\nFromage\r\n",
        frozenset({"\\Seen"}),
        datetime(2023, 6, 30, 23, 59, 59, tzinfo=timezone(timedelta(hours=-7))),
    ),
    (
        b"Subject: 8bit caf\xc3\xa9\r\n\r\n\xff\xfe\x00 bytes\r\n",
        frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"}),
        datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC),
    ),
    (
        b"Subject: keywords\r\n\r\nbody\r\n",
        frozenset({"$Forwarded", "$Junk", "Work"}),
        datetime(2024, 2, 29, 0, 0, 0, tzinfo=UTC),
    ),
    (b"Subject: headers only\r\n", frozenset({"\\Flagged"}), datetime(2024, 3, 1, tzinfo=UTC)),
    (b"\r\nno header at all\r\n", frozenset(), datetime(2024, 3, 2, tzinfo=UTC)),
    (b"", frozenset(), datetime(2024, 3, 3, tzinfo=UTC)),
    (
        b"Subject: ends in empty lines\r\n\r\nbody\r\n\r\n\r\n",
        frozenset(),
        datetime(2024, 3, 4, tzinfo=UTC),
    ),
    (
        b"Subject: folded\r\n\tcontinued\r\nStatusline: not a status\r\n\r\nx\r\n",
        frozenset(),
        datetime(2024, 3, 5, tzinfo=UTC),
    ),
]


@pytest.mark.parametrize("name", ["out.mbox", "out.mbox.gz"])
def test_round_trip_keeps_bytes_flags_and_dates(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with MboxWriter(path) as writer:
        for raw, flags, date in SAMPLES:
            writer.add(raw, flags, date)
    messages = read_all(path)
    assert [(m.raw, m.flags, m.internal_date) for m in messages] == SAMPLES
    assert all(m.internal_date.utcoffset() == timedelta(0) for m in messages)  # type: ignore[union-attr]


def test_written_file_is_mboxrd_with_lf_and_python_mailbox_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "out.mbox"
    with MboxWriter(path) as writer:
        for raw, flags, date in SAMPLES:
            writer.add(raw, flags, date)
    data = path.read_bytes()
    assert b"\r" not in data
    assert b"\n>From x\n>>From y\n>>>From z\n\n>From w\nFromage\n" in data
    assert data.startswith(b"From MAILER-DAEMON Mon Jan  1 12:00:00 2024\nSubject: plain\n")
    assert b"From MAILER-DAEMON Sat Jul  1 06:59:59 2023\n" in data  # UTC
    assert b"Status: RO\nX-Status: AFDT\n\n\xff\xfe" in data
    assert b"Status: O\nX-Keywords: $Forwarded $Junk Work\n\nbody" in data
    reference = mailbox.mbox(path)
    try:
        assert len(reference) == len(SAMPLES)
        assert reference[1].get_flags() == "RO"
        assert set(reference[2].get_flags()) == set("ROAFDT")
    finally:
        reference.close()


def test_message_without_final_line_end_gains_one(tmp_path: Path) -> None:
    path = tmp_path / "out.mbox"
    with MboxWriter(path) as writer:
        writer.add(b"Subject: s\r\n\r\nno final line end", set(), datetime(2024, 1, 1, tzinfo=UTC))
        writer.add(b"Subject: t", set(), datetime(2024, 1, 1, tzinfo=UTC))
    assert [m.raw for m in read_all(path)] == [
        b"Subject: s\r\n\r\nno final line end\r\n",
        b"Subject: t\r\n",
    ]


def test_lf_and_bare_cr_are_normalised_to_crlf(tmp_path: Path) -> None:
    path = tmp_path / "out.mbox"
    with MboxWriter(path) as writer:
        writer.add(b"Subject: s\n\nlf\rcr\r\n", set(), datetime(2024, 1, 1, tzinfo=UTC))
    (message,) = read_all(path)
    assert message.raw == b"Subject: s\r\n\r\nlf\r\ncr\r\n"


def test_sender_comes_from_return_path_then_mailer_daemon(tmp_path: Path) -> None:
    path = tmp_path / "out.mbox"
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    with MboxWriter(path) as writer:
        writer.add(b"Return-Path: <bounce@example.org>\r\nSubject: a\r\n\r\nx\r\n", (), when)
        writer.add(b"Return-Path: <>\r\nSubject: b\r\n\r\nx\r\n", (), when)
        writer.add(b"Subject: c\r\n\r\nx\r\n", (), when, sender="given@example.net")
        writer.add(b"Subject: d\r\n\r\nx\r\n", (), when, sender="has space@example.net")
    lines = [line for line in path.read_bytes().split(b"\n") if line.startswith(b"From ")]
    assert lines == [
        b"From bounce@example.org Mon May  6 07:08:09 2024",
        b"From MAILER-DAEMON Mon May  6 07:08:09 2024",
        b"From given@example.net Mon May  6 07:08:09 2024",
        b"From MAILER-DAEMON Mon May  6 07:08:09 2024",
    ]


def test_old_status_headers_in_a_message_are_replaced(tmp_path: Path) -> None:
    path = tmp_path / "out.mbox"
    raw = b"Status: RO\r\nX-Status: F\r\nSubject: s\r\nContent-Length: 3\r\n\r\nabc\r\n"
    with MboxWriter(path) as writer:
        writer.add(raw, {"\\Answered"}, datetime(2024, 1, 1, tzinfo=UTC))
    assert path.read_bytes().count(b"Status:") == 2  # one Status, one X-Status
    (message,) = read_all(path)
    assert message.flags == {"\\Answered"}
    assert message.raw == b"Subject: s\r\n\r\nabc\r\n"


def test_writer_refuses_an_existing_file_unless_appending(tmp_path: Path) -> None:
    path = tmp_path / "out.mbox"
    when = datetime(2024, 1, 1, tzinfo=UTC)
    with MboxWriter(path) as writer:
        writer.add(b"Subject: one\r\n\r\nx\r\n", (), when)
    with pytest.raises(TransferError, match="already exists"):
        MboxWriter(path)
    with MboxWriter(path, append=True) as writer:
        writer.add(b"Subject: two\r\n\r\nx\r\n", (), when)
    assert [m.raw for m in read_all(path)] == [
        b"Subject: one\r\n\r\nx\r\n",
        b"Subject: two\r\n\r\nx\r\n",
    ]


def test_append_after_a_file_without_final_separator(tmp_path: Path) -> None:
    path = write(tmp_path, FROM_LINE + b"Subject: one\n\nno line end")
    with MboxWriter(path, append=True) as writer:
        writer.add(b"Subject: two\r\n\r\nx\r\n", (), datetime(2024, 1, 1, tzinfo=UTC))
    assert [m.raw for m in read_all(path)] == [
        b"Subject: one\r\n\r\nno line end\r\n",
        b"Subject: two\r\n\r\nx\r\n",
    ]


def test_writer_with_no_messages_leaves_an_empty_mbox(tmp_path: Path) -> None:
    path = tmp_path / "empty.mbox"
    with MboxWriter(path):
        pass
    assert path.read_bytes() == b""
    assert read_all(path) == []


def test_writer_needs_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="does not exist"):
        MboxWriter(tmp_path / "missing" / "out.mbox")


def test_round_trip_of_a_real_archive(corpora: Path, tmp_path: Path) -> None:
    source = corpora / "threading-jwz-fedora-devel" / "2010-January.txt.gz"
    original = read_all(source)
    path = tmp_path / "copy.mbox"
    with MboxWriter(path) as writer:
        for i, m in enumerate(original):
            writer.add(m.raw, {"\\Seen"} if i % 2 else set(), m.internal_date)
    copy = read_all(path)
    assert [(m.raw, m.internal_date) for m in copy] == [(m.raw, m.internal_date) for m in original]
    assert [m.flags for m in copy] == [{"\\Seen"} if i % 2 else set() for i in range(292)]


TRICKY_LINES = [
    b"",
    b"text",
    b"From a",
    b">From b",
    b">>From c",
    b"From x@y Mon Jan  1 00:00:00 2024",
    b">From x@y Mon Jan  1 00:00:00 2024",
    b"Status: RO",
    b" From indented",
    b"\xe9t\xe9 8-bit",
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(TRICKY_LINES), max_size=8),
            st.booleans(),  # final line end
            st.sets(st.sampled_from(["\\Seen", "\\Answered", "\\Draft", "$Forwarded", "Kw"])),
        ),
        max_size=5,
    )
)
def test_any_body_survives_a_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    messages: list[tuple[list[bytes], bool, set[str]]],
) -> None:
    path = tmp_path_factory.mktemp("rt") / "out.mbox"
    when = datetime(2024, 1, 1, tzinfo=UTC)
    expected = []
    with MboxWriter(path) as writer:
        for lines, final, flags in messages:
            body = b"\r\n".join(lines) + (b"\r\n" if final else b"")
            raw = b"Subject: s\r\n\r\n" + body
            writer.add(raw, flags, when)
            expected.append((raw if raw.endswith(b"\r\n") else raw + b"\r\n", flags))
    assert [(m.raw, m.flags) for m in read_all(path)] == expected
