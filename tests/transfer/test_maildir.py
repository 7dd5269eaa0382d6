"""Maildir / Maildir++ reading and writing: folders, info-suffix flags, dates, round trips.

Python's `mailbox.Maildir` serves as an independent reference for what the writer leaves on disk.
"""

from __future__ import annotations

import mailbox
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from postoffice.transfer.maildir import MaildirWriter, count_maildir, read_maildir
from postoffice.transfer.source import SourceMessage, TransferError


def read_all(path: Path) -> list[SourceMessage]:
    messages = list(read_maildir(path))
    assert count_maildir(path) == len(messages)
    return messages


def make_maildir(root: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def put(folder: Path, sub: str, name: str, data: bytes, mtime: int = 1_700_000_000) -> Path:
    path = folder / sub / name
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


# -- the stalwart corpus ------------------------------------------------------------------------


def test_stalwart_maildir_folders_flags_and_counts(corpora: Path) -> None:
    # SOURCE.txt: INBOX, "My Folder", "My Folder.Nested Folder" (the Maildir++ dot is our "/"),
    # 6 messages; letters F P R S T D from the info suffix (here written with ";2,").
    root = corpora / "mime-mail-parser-stalwart" / "maildir"
    messages = read_all(root)
    assert len(messages) == 6
    got = sorted((m.folder, m.raw, m.flags) for m in messages)
    assert got == [
        ("INBOX", b"a\r\n", {"\\Seen", "\\Deleted"}),
        ("INBOX", b"b\r\n", {"\\Seen"}),  # in new/, but its suffix says S
        ("My Folder", b"c\r\n", {"\\Deleted", "\\Draft", "\\Answered"}),
        ("My Folder", b"d\r\n", set()),
        ("My Folder/Nested Folder", b"e\r\n", {"\\Flagged", "$Forwarded"}),
        ("My Folder/Nested Folder", b"f\r\n", {"\\Answered", "\\Draft", "\\Flagged"}),
    ]
    assert [m.folder for m in messages] == ["INBOX"] * 2 + ["My Folder"] * 2 + [
        "My Folder/Nested Folder"
    ] * 2
    # Ordered by the unique name's leading delivery time within each folder.
    assert [m.raw for m in messages] == [b"b\r\n", b"a\r\n", b"c\r\n", b"d\r\n", b"f\r\n", b"e\r\n"]
    assert messages[0].source_id == "INBOX/1234567890.M20046P2137.mailserver,S=4542,W=4642"
    for m in messages:
        assert m.internal_date is not None and m.internal_date.tzinfo is not None


# -- reading -------------------------------------------------------------------------------------


def test_flags_keywords_new_and_order(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "Maildir")
    (root / "dovecot-keywords").write_text("0 $Junk\n1 Work\n3 bad(keyword\n")
    put(root, "cur", "1700000002.M5P1.host:2,FRSab", b"two\n")
    put(root, "cur", "1700000010.M1P1.host:2,", b"ten\n")
    put(root, "new", "1700000001.M9P1.host", b"one, unread\n")
    put(root, "cur", "1700000002.M42P1.host:2,Sdz", b"two, M42\n")  # d: bad name, z: none
    put(root, "cur", ".hidden-temp-file", b"skip\n")
    put(root, "cur", "1700000003.M1P1.host;2,T", b"semicolon\n")
    messages = read_all(root)
    # Delivery time first, then the name with numbers as numbers: M5 before M42.
    assert [(m.raw, m.flags) for m in messages] == [
        (b"one, unread\r\n", set()),
        (b"two\r\n", {"\\Flagged", "\\Answered", "\\Seen", "$Junk", "Work"}),
        (b"two, M42\r\n", {"\\Seen"}),
        (b"semicolon\r\n", {"\\Deleted"}),
        (b"ten\r\n", set()),
    ]
    assert messages[0].source_id == "INBOX/1700000001.M9P1.host"
    assert messages[0].internal_date == datetime.fromtimestamp(1_700_000_000, UTC)


def test_maildir_plus_plus_and_nested_folders(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "Maildir")
    for name in (".Sent", ".Archive.2024", ".Entw&APw-rfe", ".v1\\2e2", "Projects", "Projects/Old", "R&-D", "Café"):
        make_maildir(root / name)
        put(root / name, "cur", "1700000000.M1P1.h:2,S", name.encode())
    (root / ".NotAFolder").mkdir()  # no cur/ or new/
    (root / "courierimapkeywords").mkdir()
    messages = read_all(root)
    assert [(m.folder, m.raw) for m in messages] == [
        ("Archive/2024", b".Archive.2024"),
        ("Café", b"Caf\xc3\xa9"),  # not modified UTF-7 (a tool writing UTF-8 names): as it is
        ("Entwürfe", b".Entw&APw-rfe"),  # modified UTF-7, as Dovecot and Courier write names
        ("Projects", b"Projects"),  # LAYOUT=fs
        ("Projects/Old", b"Projects/Old"),
        ("R&D", b"R&-D"),  # LAYOUT=fs names are modified UTF-7 too
        ("Sent", b".Sent"),
        ("v1.2", b".v1\\2e2"),  # Dovecot listescape
    ]
    assert all(m.flags == {"\\Seen"} for m in messages)


def test_message_renamed_while_reading_is_still_read(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "Maildir")
    put(root, "cur", "1700000001.M1P1.h:2,", b"first\n")
    second = put(root, "new", "1700000002.M1P1.h", b"second\n")
    messages = read_maildir(root)
    assert next(messages).raw == b"first\r\n"
    # A mail client moves the message to cur/ and marks it seen before we get to it.
    second.rename(root / "cur" / "1700000002.M1P1.h:2,S")
    moved = next(messages)
    assert (moved.raw, moved.flags) == (b"second\r\n", {"\\Seen"})
    assert list(messages) == []


def test_message_deleted_while_reading_is_skipped(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "Maildir")
    put(root, "cur", "1700000001.M1P1.h:2,", b"first\n")
    gone = put(root, "cur", "1700000002.M1P1.h:2,", b"second\n")
    put(root, "cur", "1700000003.M1P1.h:2,", b"third\n")
    messages = read_maildir(root)
    assert next(messages).raw == b"first\r\n"
    gone.unlink()
    assert [m.raw for m in messages] == [b"third\r\n"]


def test_missing_path_is_a_plain_error(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="does not exist"):
        read_maildir(tmp_path / "nope")


def test_file_is_not_a_maildir(tmp_path: Path) -> None:
    (tmp_path / "x.mbox").write_bytes(b"")
    with pytest.raises(TransferError, match="is a file, not a Maildir"):
        count_maildir(tmp_path / "x.mbox")


def test_folder_without_cur_or_new_is_not_a_maildir(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match=r"is not a Maildir: neither it nor a folder below it has a cur/ or new/ folder"):
        read_maildir(tmp_path)


# -- writing and round trips ---------------------------------------------------------------------

SAMPLES = [
    (b"Subject: a\r\n\r\nbody\r\n", frozenset(), datetime(2024, 1, 1, 12, tzinfo=UTC), "INBOX"),
    (
        b"Subject: b\r\n\r\nFrom x\r\n>From y\r\n\xe9\xff\r\n",
        frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Forwarded"}),
        datetime(2023, 6, 30, 23, 59, 59, tzinfo=timezone(timedelta(hours=-7))),
        "Sent",
    ),
    (
        b"Subject: c\r\n\r\nno final line end",
        frozenset({"$Junk", "Work"}),
        datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC),
        "Archive/2024",
    ),
    (b"", frozenset({"\\Seen"}), datetime(2020, 2, 29, tzinfo=UTC), "Entwürfe"),
    (b"Subject: d\r\n\r\nx\r\n", frozenset({"Work"}), datetime(2024, 1, 2, tzinfo=UTC), "v1.2"),
    (b"Subject: e\r\n\r\nx\r\n", frozenset(), datetime(2024, 1, 3, tzinfo=UTC), "INBOX/Sub"),
]


def written(tmp_path: Path) -> Path:
    root = tmp_path / "export" / "Maildir"
    with MaildirWriter(root) as writer:
        for raw, flags, date, folder in SAMPLES:
            writer.add(raw, flags, date, folder)
    return root


def test_round_trip_keeps_bytes_flags_dates_and_folders(tmp_path: Path) -> None:
    messages = read_all(written(tmp_path))
    got = sorted((m.folder, m.raw, m.flags, m.internal_date) for m in messages)
    assert got == sorted((folder, raw, flags, date) for raw, flags, date, folder in SAMPLES)
    assert len({m.source_id for m in messages}) == len(SAMPLES)


def test_written_tree_is_maildir_plus_plus(tmp_path: Path) -> None:
    root = written(tmp_path)
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert folders == [
        ".Archive.2024",
        ".Entw&APw-rfe",
        ".INBOX.Sub",
        ".Sent",
        ".v1\\2e2",
        "cur",
        "new",
        "tmp",
    ]
    for folder in folders:
        if folder.startswith("."):
            assert (root / folder / "maildirfolder").is_file()
            assert sorted(p.name for p in (root / folder).iterdir() if p.is_dir()) == [
                "cur",
                "new",
                "tmp",
            ]
            assert list((root / folder / "tmp").iterdir()) == []
    (sent,) = (root / ".Sent" / "cur").iterdir()
    assert sent.name.endswith(":2,DFPRST")  # ASCII order
    assert sent.read_bytes() == b"Subject: b\n\nFrom x\n>From y\n\xe9\xff\n"  # LF, no quoting
    assert sent.stat().st_mtime == datetime(2023, 7, 1, 6, 59, 59, tzinfo=UTC).timestamp()
    unique = sent.name.split(":")[0]
    seconds, pid_counter, host = unique.split(".", 2)
    assert seconds.isdigit() and pid_counter.startswith(f"{os.getpid()}_") and host
    (archived,) = (root / ".Archive.2024" / "cur").iterdir()
    assert archived.name.endswith(":2,ab")
    assert (root / ".Archive.2024" / "dovecot-keywords").read_text() == "0 $Junk\n1 Work\n"
    assert (root / ".Archive.2024" / "cur" / archived.name).read_bytes().endswith(b"line end")


def test_python_mailbox_reads_the_written_tree(tmp_path: Path) -> None:
    root = written(tmp_path)
    box = mailbox.Maildir(root, factory=None, create=False)
    assert sorted(box.list_folders()) == sorted(
        ["Archive.2024", "Entw&APw-rfe", "INBOX.Sub", "Sent", "v1\\2e2"]
    )
    (sent,) = box.get_folder("Sent")
    assert sent.get_subdir() == "cur"
    assert sent.get_flags() == "DFPRST"
    assert sent.get_date() == datetime(2023, 7, 1, 6, 59, 59, tzinfo=UTC).timestamp()
    (inbox,) = box
    assert inbox.get_flags() == ""


def test_second_writer_adds_keywords_to_the_existing_file(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    when = datetime(2024, 1, 1, tzinfo=UTC)
    with MaildirWriter(root) as writer:
        writer.add(b"S: 1\r\n\r\nx\r\n", {"Work"}, when)
    with MaildirWriter(root) as writer:
        writer.add(b"S: 2\r\n\r\nx\r\n", {"Home", "Work"}, when)
    assert (root / "dovecot-keywords").read_text() == "0 Work\n1 Home\n"
    assert [sorted(m.flags) for m in read_all(root)] == [["Work"], ["Home", "Work"]]


def test_more_than_26_keywords_are_reported_not_written(tmp_path: Path) -> None:
    keywords = {f"k{i:02d}" for i in range(30)}
    with MaildirWriter(tmp_path / "Maildir") as writer:
        writer.add(b"S: s\r\n\r\nx\r\n", keywords | {"\\Seen"}, datetime(2024, 1, 1, tzinfo=UTC))
    (message,) = read_all(tmp_path / "Maildir")
    assert len(message.flags) == 27
    assert writer.dropped_keywords == keywords - message.flags


def test_lf_input_is_read_back_as_crlf(tmp_path: Path) -> None:
    with MaildirWriter(tmp_path / "Maildir") as writer:
        writer.add(b"Subject: s\n\nlf\rcr\n", (), None)
    (message,) = read_all(tmp_path / "Maildir")
    assert message.raw == b"Subject: s\r\n\r\nlf\r\ncr\r\n"
    assert message.internal_date is not None


def test_empty_export_is_a_valid_empty_maildir(tmp_path: Path) -> None:
    MaildirWriter(tmp_path / "Maildir").close()
    assert read_all(tmp_path / "Maildir") == []


def test_writer_refuses_a_file_and_escapes_every_folder_name(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(TransferError, match="is a file"):
        MaildirWriter(tmp_path / "file")
    root = tmp_path / "Maildir"
    names = ["a//b", "../../x", ".", "..", "/lead", "trail/", ".hidden", "a.b", "back\\slash",
             "\\", "nul\x00ctl\x01\x7f", "\\2e"]
    with MaildirWriter(root) as writer:
        for i, name in enumerate(names):
            writer.add(b"S: %d\r\n\r\nx\r\n" % i, (), None, name)
    # Every folder is a dot-folder directly in the root, and each name reads back as it was.
    assert all(p.parent == root and p.name.startswith(".") for p in root.iterdir() if p.is_dir()
               and p.name not in ("cur", "new", "tmp"))
    assert sorted((m.folder, m.raw) for m in read_all(root)) == sorted(
        (name, b"S: %d\r\n\r\nx\r\n" % i) for i, name in enumerate(names)
    )


def test_round_trip_of_a_real_archive(corpora: Path, tmp_path: Path) -> None:
    from postoffice.transfer.mbox import read_mbox

    source = corpora / "threading-jwz-fedora-devel" / "2010-January.txt.gz"
    original = list(read_mbox(source))
    root = tmp_path / "Maildir"
    with MaildirWriter(root) as writer:
        for m in original:
            writer.add(m.raw, m.flags, m.internal_date, "Lists/fedora-devel")
    copy = read_all(root)
    # Written within the same second or two, so the writer's counter keeps the order.
    assert [(m.raw, m.internal_date, m.folder) for m in copy] == [
        (m.raw, m.internal_date, "Lists/fedora-devel") for m in original
    ]


def test_two_writers_in_the_same_second_do_not_overwrite_each_other(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    first, second = MaildirWriter(root), MaildirWriter(root)
    names = [w.add(b"S: %d\r\n\r\nx\r\n" % i, (), None) for i, w in enumerate([first, second] * 3)]
    assert len(set(names)) == 6
    assert sorted(m.raw for m in read_all(root)) == [b"S: %d\r\n\r\nx\r\n" % i for i in range(6)]


def test_folder_names_are_written_in_modified_utf7_as_dovecot_reads_them(tmp_path: Path) -> None:
    """Dovecot's Maildir++ (and Courier's) keeps folder names in modified UTF-7: a UTF-8 name
    on disk is not a valid one to it. Old code wrote `.Entwürfe` and read `.Entw&APw-rfe` back
    as the mailbox "Entw&APw-rfe"."""
    root = tmp_path / "Maildir"
    names = {"Entwürfe": ".Entw&APw-rfe", "R&D": ".R&-D", "日本/a.b": ".&ZeVnLA-.a\\2eb"}
    with MaildirWriter(root) as writer:
        for name in names:
            writer.add(b"Subject: x\r\n\r\nx\r\n", (), None, name)
    folders = {p.name for p in root.iterdir() if p.name.startswith(".")}
    assert folders == set(names.values())
    assert {m.folder for m in read_all(root)} == {"INBOX", *names} - {"INBOX"}


def test_two_folders_naming_one_mailbox_are_both_read(tmp_path: Path) -> None:
    """A Maildir++ `.Sent` beside a nested `Sent/` (a tree two tools wrote), or `.R&-D` beside a
    UTF-8 `.R&D`: old code read one folder of each name and silently left the other's mail out."""
    root = make_maildir(tmp_path / "Maildir")
    for name in (".Sent", "Sent", ".R&-D", ".R&D"):
        make_maildir(root / name)
        put(root / name, "cur", "1700000000.M1P1.h:2,S", name.encode())
    got = sorted((m.folder, m.raw) for m in read_all(root))
    assert got == [("R&D", b".R&-D"), ("R&D", b".R&D"), ("Sent", b".Sent"), ("Sent", b"Sent")]
