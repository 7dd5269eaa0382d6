"""Single-message files: one .eml, or a tree of them; Date header or mtime as internal date."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from postoffice.transfer.eml import count_eml, read_eml
from postoffice.transfer.source import SourceMessage, TransferError


def read_all(path: Path, folder: str = "INBOX") -> list[SourceMessage]:
    messages = list(read_eml(path, folder))
    assert count_eml(path) == len(messages)
    return messages


def put(path: Path, data: bytes, mtime: int = 1_700_000_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def test_single_file_with_date_header(tmp_path: Path) -> None:
    path = put(
        tmp_path / "saved.eml",
        b"Date: Sat, 24 Mar 2007 23:00:00 +0200\nSubject: s\n\nbody\n",
    )
    (message,) = read_all(path, "Archive/2007")
    assert message.raw == b"Date: Sat, 24 Mar 2007 23:00:00 +0200\r\nSubject: s\r\n\r\nbody\r\n"
    assert message.internal_date == datetime(2007, 3, 24, 23, tzinfo=timezone(timedelta(hours=2)))
    assert message.flags == frozenset()
    assert (message.folder, message.source_id) == ("Archive/2007", "saved.eml")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"", datetime.fromtimestamp(1_700_000_000, UTC)),  # no Date: the file's mtime
        (b"Date: someday soon\n", datetime.fromtimestamp(1_700_000_000, UTC)),
        (b"Date: Thu, 1 Jan 2015 10:00:00 -0000\n", datetime(2015, 1, 1, 10, tzinfo=UTC)),
        (
            b"Date: Thu,\n 1 Jan 2015 10:00:00 +0100\n",  # folded
            datetime(2015, 1, 1, 10, tzinfo=timezone(timedelta(hours=1))),
        ),
        (b"DATE: 1 Jan 2015 10:00 GMT\n", datetime(2015, 1, 1, 10, tzinfo=UTC)),
    ],
)
def test_internal_date(tmp_path: Path, header: bytes, expected: datetime) -> None:
    path = put(tmp_path / "m.eml", b"Subject: s\n" + header + b"\nDate: in the body, ignored\n")
    (message,) = read_all(path)
    assert message.internal_date == expected


def test_directory_is_walked_recursively_in_sorted_order(tmp_path: Path) -> None:
    put(tmp_path / "b.eml", b"Subject: b\n\nx\n")
    put(tmp_path / "a" / "z.EML", b"Subject: a/z\n\nx\n")
    put(tmp_path / "a" / "c.eml", b"Subject: a/c\n\nx\n")
    put(tmp_path / "a-z.eml", b"Subject: a-z\n\nx\n")
    put(tmp_path / "notes.txt", b"not mail")
    messages = read_all(tmp_path)
    assert [m.source_id for m in messages] == ["a/c.eml", "a/z.EML", "a-z.eml", "b.eml"]
    assert [m.raw.split(b"\r\n")[0] for m in messages] == [
        b"Subject: a/c",
        b"Subject: a/z",
        b"Subject: a-z",
        b"Subject: b",
    ]
    assert all(m.folder == "INBOX" for m in messages)


def test_leading_mbox_from_line_is_dropped(tmp_path: Path) -> None:
    path = put(tmp_path / "m.eml", b"From a@b Mon Jan  1 00:00:00 2024\r\nSubject: s\r\n\r\nx\r\n")
    (message,) = read_all(path)
    assert message.raw == b"Subject: s\r\n\r\nx\r\n"


def test_empty_directory_has_no_messages(tmp_path: Path) -> None:
    assert read_all(tmp_path) == []


def test_missing_path_is_a_plain_error(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="does not exist"):
        read_eml(tmp_path / "nope.eml")


def test_every_stalwart_message_reads(corpora: Path) -> None:
    root = corpora / "mime-mail-parser-stalwart" / "eml"
    messages = read_all(root)
    assert len(messages) == 53  # SOURCE.txt: 10 RFC + 20 Dovecot + 23 malformed
    assert {m.source_id.split("/")[0] for m in messages} == {"malformed", "rfc", "thirdparty"}
    for m in messages:
        assert m.internal_date is not None
        assert m.raw.count(b"\n") == m.raw.count(b"\r\n")
