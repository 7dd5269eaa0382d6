"""mbox files (RFC 4155): stream messages out of one, write messages into one.

An mbox file is messages one after another, each introduced by a "From_ line"
(`From sender Mon Jan  1 00:00:00 2024`) and followed by an empty line. Writers disagree on the
details, so the reader is tolerant and the writer is strict:

Separation. A line starting with `From ` begins a message only at the start of the file or after
an empty line, and only if a date in asctime form follows the sender (extra text or a time zone
after it is allowed). Anything else is body text: writers of the "mboxo" kind leave body lines
such as "From time to time" unquoted, and real mailboxes have them.

Quoting: mboxrd. The writer prefixes every line matching `>*From ` with one more `>`; the reader
removes one `>` from every line matching `>+From `. Unlike mboxo (which quotes only `From `, so
that `>From ` in a body cannot be told from a quoted `From `), mboxrd is reversible: an export
and a re-import give back the same bytes. Reading an mboxo file this way loses one `>` from
body lines that really began with `>From `, which is what every other mbox reader does too.
mboxcl (Content-Length) is not used: any edit of the file makes the lengths lie.

Flags and metadata. `Status:` (R = \\Seen), `X-Status:` (A = \\Answered, F = \\Flagged,
D = \\Deleted, T = \\Draft), `X-Keywords:` (keywords, Dovecot), and Thunderbird's
`X-Mozilla-Status:` bit field and `X-Mozilla-Keys:`. The internal date is the From_ line's date
(UTC when it carries no zone; RFC 4155 says it is UTC). These headers and `X-UID:`, `X-IMAP:`,
`X-IMAPbase:` (UW-IMAP and Dovecot bookkeeping), `X-Mozilla-Status2:` and `Content-Length:` (made
wrong by the line-ending change) describe the file, not the message, and are removed from `raw`.
`Lines:` stays: it is also a Usenet header (RFC 1036), and gatewayed list mail carries it.
UW-IMAP's first pseudo-message ("DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA", marked by
an `X-IMAP:` header) is skipped.

Writing. `MboxWriter` writes the From_ line (sender from Return-Path, else MAILER-DAEMON; date
in UTC), the message with LF line ends, its own `Status:`/`X-Status:`/`X-Keywords:` in place of
any file-only fields the message carried, mboxrd quoting, and an empty line. A message without a
final line end gains one, since mbox has no way to say it lacked it; everything else comes back
from `read_mbox` byte for byte.

Memory. The reader holds one message and a 1 MiB read buffer, whatever the size of the file; a
gzip-compressed file (recognised by its magic bytes, not its name) is decompressed as it is read.

Trees. A folder is read as an export of several mailboxes: every `*.mbox` file below it, the
mailbox named by its path with the escaping of `names` undone (`Archive/2024.mbox` is
"Archive/2024"). Only regular files are opened (`filesystem.open_regular`): a named pipe or a
device is refused at once instead of blocking the import forever.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from postoffice.message.lines import to_crlf, to_lf
from postoffice.store.blobs import blob_hash
from postoffice.transfer.filesystem import describe_kind, open_regular
from postoffice.transfer.names import MBOX_SUFFIX, mailbox_of_mbox_path
from postoffice.transfer.source import (
    ANSWERED,
    DELETED,
    FLAGGED,
    FORWARDED,
    SEEN,
    SourceMessage,
    TransferError,
    flags_from_mbox_status,
    is_keyword,
    keywords_of,
    mbox_status_letters,
)

__all__ = [
    "MboxWriter",
    "content_hashes",
    "count_mbox",
    "parse_from_line",
    "read_back",
    "read_mbox",
]

_CHUNK = 1 << 20
_LF = 0x0A
_CR = 0x0D
_GZIP_MAGIC = b"\x1f\x8b"

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_NAMES = tuple(m.capitalize() for m in _MONTHS)
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# RFC 4155 §2: "From " addr-spec SP timestamp, the timestamp in asctime form. The sender is any
# run of non-space characters (or a quoted local part); some writers put two spaces after it.
# A zone may stand before the year ("Fri Dec 12 09:15:05 EST 1997", old BSD) or after it
# ("... 2008 +0200", Dovecot and imaptest); anything may follow the year.
_FROM_LINE = re.compile(
    rb'From (?:"[^"]*"\S*|\S*) +'
    rb"(?i:mon|tue|wed|thu|fri|sat|sun) +"
    rb"(?P<mon>(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)) +"
    rb"(?P<day>\d{1,2}) +"
    rb"(?P<hour>\d{1,2}):(?P<minute>\d\d)(?::(?P<second>\d\d))?"
    rb"(?: +(?P<zone1>[A-Za-z]{1,5}|[+-]\d{4}))?"
    rb" +(?P<year>\d{4})(?!\d)"
    rb"(?: +(?P<zone2>[+-]\d{4}|[A-Za-z]{1,5})(?![\w]))?"
)
# Named zones seen on From_ lines: RFC 5322 §4.3's obsolete zones and central Europe's.
_ZONES = {
    b"ut": 0, b"utc": 0, b"gmt": 0, b"z": 0,
    b"est": -5, b"edt": -4, b"cst": -6, b"cdt": -5, b"mst": -7, b"mdt": -6, b"pst": -8, b"pdt": -7,
    b"cet": 1, b"cest": 2, b"met": 1, b"mest": 2,
}  # fmt: skip

# Header fields that describe the mbox file rather than the message (see the module docstring).
_FILE_FIELDS = frozenset(
    {
        b"status",
        b"x-status",
        b"x-keywords",
        b"x-uid",
        b"x-imap",
        b"x-imapbase",
        b"content-length",
        b"x-mozilla-status",
        b"x-mozilla-status2",
        b"x-mozilla-keys",
    }
)
# One such field with its folded continuation lines (RFC 5322 §2.2.3), found in one C-level pass.
_FILE_FIELD = re.compile(
    rb"^(?P<name>"
    + b"|".join(re.escape(n) for n in sorted(_FILE_FIELDS, reverse=True))
    + rb")[ \t]*:(?P<value>[^\n]*(?:\n[ \t][^\n]*)*)(?:\n|\Z)",
    re.IGNORECASE | re.MULTILINE,
)
_RETURN_PATH = re.compile(rb"^Return-Path:[ \t]*<?([^>\s]*)", re.IGNORECASE | re.MULTILINE)

_EMPTY_LINE = re.compile(rb"(?:^|\n)\r?\n")
_X_IMAP = re.compile(rb"^X-IMAP[ \t]*:", re.IGNORECASE | re.MULTILINE)
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
_QUOTABLE_FROM = re.compile(rb"^(>*From )", re.MULTILINE)

# Thunderbird's status bits (nsMsgMessageFlags), X-Mozilla-Status in the low 16 bits and
# X-Mozilla-Status2 above: read, replied, marked, expunged (deleted in Thunderbird but not yet
# compacted away), forwarded, and deleted on the IMAP server.
_MOZILLA_BITS = (
    (0x0001, SEEN),
    (0x0002, ANSWERED),
    (0x0004, FLAGGED),
    (0x0008, DELETED),
    (0x1000, FORWARDED),
    (0x00200000, DELETED),
)


def parse_from_line(line: bytes) -> datetime | None:
    """The date of an mbox From_ line (without or with its line end), or None if it is not one.

    >>> parse_from_line(b"From a@b.example  Fri Feb 22 17:06:23 2008 +0200")
    datetime.datetime(2008, 2, 22, 17, 6, 23, tzinfo=datetime.timezone(datetime.timedelta(seconds=7200)))
    """
    m = _FROM_LINE.match(line)
    if m is None:
        return None
    zone = m["zone2"] or m["zone1"]
    tz = UTC
    if zone and zone[0] in b"+-":
        minutes = int(zone[1:3]) * 60 + int(zone[3:5])
        if minutes >= 24 * 60:
            return None
        tz = timezone(timedelta(minutes=-minutes if zone[0] == 0x2D else minutes))
    elif zone:
        tz = timezone(timedelta(hours=_ZONES.get(zone.lower(), 0)))
    try:
        return datetime(
            int(m["year"]),
            _MONTHS.index(m["mon"].lower().decode()) + 1,
            int(m["day"]),
            int(m["hour"]),
            int(m["minute"]),
            int(m["second"] or 0),
            tzinfo=tz,
        )
    except ValueError:  # Feb 30, 25:00: text that only looks like a From_ line
        return None


# ---------------------------------------------------------------------------------------------
# Reading


def read_mbox(path: Path, folder: str = "INBOX") -> Iterator[SourceMessage]:
    """The messages of the mbox (or gzip-compressed mbox) file at `path`, in file order; or of
    every `*.mbox` file below the folder `path`, each into the mailbox its path names.

    Raises TransferError at once when `path` is neither, and while iterating when a file
    cannot be read further. `source_id` is "offset:N", N being the byte offset of the message's
    From_ line in the (uncompressed) file, after the file's path below `path` and ":" in a tree.
    """
    files = _mbox_files(path, folder)
    return (m for name, file, prefix in files for m in _read_mbox(file, name, prefix))


def count_mbox(path: Path) -> int:
    """How many messages `read_mbox(path)` will yield, found without decoding them (for progress)."""
    count = 0
    for _name, file, _prefix in _mbox_files(path, "INBOX"):
        with _open(file) as f:
            for index, (_offset, _date, content) in enumerate(_split(f, file, keep=_first_only)):
                if index == 0 and content is not None and _is_pseudo_message(content):
                    continue
                count += 1
    return count


def content_hashes(path: Path) -> Counter[str]:
    """How many messages of each SHA-256 the mbox file holds, hashing what `read_mbox` yields
    (compare with `blob_hash(read_back(raw))`)."""
    _check_mbox(path)  # a file, never a tree: this is about one mailbox's file
    return Counter(blob_hash(m.raw) for m in _read_mbox(path, "INBOX"))


def _mbox_files(path: Path, folder: str) -> list[tuple[str, Path, str]]:
    """(mailbox, file, source-id prefix) for the file `path`, or for each mbox file of a tree;
    every file is checked before the first message is read."""
    if not path.is_dir():
        _check_mbox(path)
        return [(folder, path, "")]
    found: list[tuple[tuple[str, ...], Path]] = []

    def unreadable(exc: OSError) -> None:
        raise TransferError(f"{exc.filename} cannot be read: {exc.strerror or exc}.") from exc

    for directory, dirnames, filenames in os.walk(path, onerror=unreadable):
        dirnames.sort()
        for name in filenames:
            if name.lower().endswith(MBOX_SUFFIX):
                file = Path(directory, name)
                found.append((file.relative_to(path).parts, file))
    if not found:
        raise TransferError(f"{path} is a folder with no .mbox files in it, not an mbox file.")
    files = []
    for parts, file in sorted(found):
        _check_mbox(file)
        files.append((mailbox_of_mbox_path(list(parts)), file, "/".join(parts) + ":"))
    return files


def _read_mbox(path: Path, folder: str, prefix: str = "") -> Iterator[SourceMessage]:
    with _open(path) as f:
        for index, (offset, date, content) in enumerate(_split(f, path, keep=_every)):
            assert content is not None
            if index == 0 and _is_pseudo_message(content):
                continue
            raw, flags = _decode(content)
            del content  # only `raw` lives on while the consumer works
            yield SourceMessage(
                raw=raw,
                flags=frozenset(flags),
                internal_date=date,
                folder=folder,
                source_id=f"{prefix}offset:{offset}",
            )


def _every(index: int) -> bool:
    return True


def _first_only(index: int) -> bool:
    return index == 0


def _check_mbox(path: Path) -> None:
    """Raise TransferError unless `path` is a readable file whose first line is a From_ line."""
    with _open(path) as f:
        head = _read(f, path, 64 * 1024)
    head = head.lstrip(b"\r\n")
    if head and parse_from_line(head.split(b"\n", 1)[0].rstrip(b"\r")) is None:
        raise TransferError(
            f"{path} is not an mbox file: its first line is not a 'From ' line with a date."
        )


def _open(path: Path) -> BinaryIO:
    f = open_regular(path)
    try:
        if f.read(2) == _GZIP_MAGIC:
            f.close()
            return gzip.open(path, "rb")  # type: ignore[return-value]
        f.seek(0)
        return f
    except OSError as exc:
        f.close()
        raise TransferError(f"{path} cannot be read: {exc.strerror or exc}.") from exc


def _read(f: BinaryIO, path: Path, size: int, *, line: bool = False) -> bytes:
    """`f.read(size)` (or the rest of the line), failures as TransferError."""
    try:
        return f.readline() if line else f.read(size)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise TransferError(f"{path} is a damaged gzip file: {exc}.") from exc
    except OSError as exc:
        raise TransferError(f"{path} cannot be read: {exc.strerror or exc}.") from exc


def _split(
    f: BinaryIO, path: Path, keep: Callable[[int], bool]
) -> Iterator[tuple[int, datetime, bytes | None]]:
    """Yield (offset of the From_ line, its date, the message bytes or None) for each message.

    `keep(index)` says whether to collect the bytes of the index-th message; counting collects
    only the first. The message bytes are exactly those between the From_ line and the empty
    line that precedes the next From_ line (or the end of the file), line endings untouched.

    The file is read in chunks that end on a line end, so a From_ line never straddles two
    chunks; the last 3 bytes of the previous chunk are kept in front of the next one, enough to
    see whether the line before a `From ` was empty (LF or CRLF), and they are held back from the
    message until then, since they may turn out to be that separator line.
    """
    # Pretend an empty line precedes the file, so that a From_ line at offset 0 is found by the
    # same search as every other.
    window = b"\n\n"
    base = -2  # file offset of window[0]
    offset = -1  # file offset of the current message's From_ line; -1 before the first
    date = datetime.min  # replaced at the first From_ line, before any use
    parts: list[bytes] = []
    flushed = 0  # file offset up to which the current message's bytes are in `parts`
    collecting = False
    index = 0
    at_eof = False
    while not at_eof:
        chunk = _read(f, path, _CHUNK)
        if chunk:
            if chunk[-1] != _LF:
                chunk += _read(f, path, -1, line=True)
        else:
            at_eof = True
        tail = window[-3:]
        base += len(window) - len(tail)
        window = tail + chunk
        pos = 0
        while True:
            hit = window.find(b"\nFrom ", pos)
            if hit < 0:
                break
            pos = hit + 1
            # The line before must be empty; the message ends where that empty line begins.
            if hit >= 1 and window[hit - 1] == _LF:
                end = hit
            elif hit >= 2 and window[hit - 1] == _CR and window[hit - 2] == _LF:
                end = hit - 1
            else:
                continue
            line_end = window.find(b"\n", pos)
            if line_end < 0:
                line_end = len(window)
            line_date = parse_from_line(window[pos:line_end].rstrip(b"\r"))
            if line_date is None:
                continue
            if offset >= 0:
                if collecting:
                    parts.append(window[flushed - base : end])
                    yield offset, date, _take(parts)
                else:
                    yield offset, date, None
            offset = base + pos
            date = line_date
            pos = line_end + 1
            flushed = base + pos
            parts = []
            collecting = keep(index)
            index += 1
        if collecting and not at_eof:
            cut = base + len(window) - 3
            if cut > flushed:
                parts.append(window[flushed - base : cut - base])
                flushed = cut
    if offset < 0:
        return
    if not collecting:
        yield offset, date, None
        return
    if flushed - base < len(window):
        parts.append(window[max(flushed - base, 0) :])
    content = _take(parts)
    # The file's last line, when empty, is the separator after the last message.
    if content.endswith(b"\n"):
        trimmed = content[:-2] if content.endswith(b"\r\n") else content[:-1]
        if not trimmed or trimmed.endswith(b"\n"):
            content = trimmed
    yield offset, date, content


def _take(parts: list[bytes]) -> bytes:
    """The pieces joined, the list emptied: a large message is not held twice while in use."""
    data = b"".join(parts)
    parts.clear()
    return data


def _header_end(data: bytes, eol: bytes) -> int:
    """Where the header ends: the offset just after its last line end, before the empty line."""
    if data.startswith(eol):
        return 0
    i = data.find(eol + eol)
    return len(data) if i < 0 else i + len(eol)


def _take_file_fields(header: bytes) -> tuple[bytes, dict[bytes, str]]:
    """The header without the mbox-only fields, and those fields' unfolded values by name."""
    kept: list[bytes] = []
    values: dict[bytes, str] = {}
    last = 0
    for m in _FILE_FIELD.finditer(header):
        kept.append(header[last : m.start()])
        last = m.end()
        name = m["name"].lower()
        value = " ".join(m["value"].decode("latin-1").split())
        values[name] = f"{values[name]} {value}" if name in values else value
    if last == 0:
        return header, values
    kept.append(header[last:])
    return b"".join(kept), values


def _is_pseudo_message(content: bytes) -> bool:
    """UW-IMAP's folder-data pseudo-message: the file's first message, with an X-IMAP field."""
    m = _EMPTY_LINE.search(content)
    return _X_IMAP.search(content, 0, m.start() if m else len(content)) is not None


def _decode(content: bytes) -> tuple[bytes, set[str]]:
    """The message as the store wants it (unquoted, CRLF, no mbox-only fields) and its flags."""
    if b">From " in content:
        content = _QUOTED_FROM.sub(rb"\1", content)
    raw = to_crlf(content)
    end = _header_end(raw, b"\r\n")
    header, values = _take_file_fields(raw[:end])
    if not values:
        return raw, set()
    raw = header + raw[end:]
    flags = flags_from_mbox_status(values.get(b"status", ""), values.get(b"x-status", ""))
    for name in (b"x-keywords", b"x-mozilla-keys"):
        flags.update(k for k in values.get(name, "").replace(",", " ").split() if is_keyword(k))
    bits = _hex(values.get(b"x-mozilla-status", "")) | _hex(values.get(b"x-mozilla-status2", ""))
    flags.update(flag for bit, flag in _MOZILLA_BITS if bits & bit)
    return raw, flags


def _hex(value: str) -> int:
    try:
        return int(value.strip(), 16)
    except ValueError:  # absent or garbled: no flags from it
        return 0


# ---------------------------------------------------------------------------------------------
# Writing


class MboxWriter:
    """Write messages to a new mbox file (mboxrd, LF line ends), durably when closed.

    >>> with MboxWriter(Path("out.mbox")) as mbox:          # doctest: +SKIP
    ...     mbox.add(raw, {"\\\\Seen"}, internal_date, sender=None)

    A `.gz` name writes a gzip-compressed file. `append=True` adds to an existing plain mbox
    instead of refusing it. Nothing is durable until `close()` (or the end of the `with`) has
    flushed and fsynced the file and its folder.
    """

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = path
        if not path.parent.is_dir():
            raise TransferError(f"{path.parent} does not exist or is not a folder.")
        try:
            mode: int | None = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise TransferError(f"{path} cannot be written: {exc.strerror or exc}.") from exc
        if mode is not None and not stat.S_ISREG(mode):  # opening a FIFO would block
            raise TransferError(f"{path} is {describe_kind(mode)}, not an mbox file.")
        compressed = path.suffix.lower() == ".gz"
        if path.exists() and not append:
            raise TransferError(f"{path} already exists; choose a new file name.")
        if append and compressed and path.exists():
            raise TransferError(
                f"{path} is compressed; adding to a compressed mbox is not supported."
            )
        try:
            self._file: BinaryIO = open(path, "ab" if append else "xb")  # noqa: SIM115
            self._out: BinaryIO = self._file
            if compressed:
                self._out = gzip.GzipFile(fileobj=self._file, mode="wb")  # type: ignore[assignment]
            elif append:
                self._out.write(self._separator_after_existing())
        except OSError as exc:
            raise TransferError(f"{path} cannot be written: {exc.strerror or exc}.") from exc
        self.count = 0
        self._closed = False
        self._dir_synced = False

    def _separator_after_existing(self) -> bytes:
        """What keeps the file's last message apart from the first one added now."""
        size = os.fstat(self._file.fileno()).st_size
        if size == 0:
            return b""
        with open(self.path, "rb") as f:
            f.seek(max(size - 4, 0))
            tail = f.read()
        if tail.endswith((b"\n\n", b"\r\n\r\n")) or tail in (b"\n", b"\r\n"):
            return b""
        return b"\n" if tail.endswith(b"\n") else b"\n\n"

    def add(
        self,
        raw: bytes,
        flags: Iterable[str] = frozenset(),
        internal_date: datetime | None = None,
        sender: str | None = None,
    ) -> None:
        """Append one message. `sender` for the From_ line defaults to the message's Return-Path,
        then to MAILER-DAEMON; `internal_date` (naive = UTC) defaults to now."""
        data, return_path = _encode(raw, frozenset(flags))
        if sender is None:
            sender = return_path
        from_line = b"From " + _envelope_sender(sender) + b" " + _asctime(internal_date) + b"\n"
        try:
            self._out.write(from_line)
            self._out.write(data)
            self._out.write(b"\n")
        except OSError as exc:
            raise TransferError(f"{self.path} cannot be written: {exc.strerror or exc}.") from exc
        self.count += 1

    def sync(self) -> int:
        """Make every message added so far durable (file and folder fsynced); the file's length.
        Plain files only (a gzip stream is complete only when closed)."""
        try:
            self._out.flush()
            os.fsync(self._file.fileno())
            if not self._dir_synced:
                fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self._dir_synced = True
            return self._file.tell()
        except OSError as exc:
            raise TransferError(f"{self.path} cannot be written: {exc.strerror or exc}.") from exc

    def close(self) -> None:
        """Flush and fsync the file and its folder; adding afterwards is an error."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._out is not self._file:
                self._out.close()  # writes the gzip trailer; leaves the file open
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)  # the file's directory entry, for a file created just now
            finally:
                os.close(fd)
        except OSError as exc:
            raise TransferError(f"{self.path} cannot be written: {exc.strerror or exc}.") from exc

    def __enter__(self) -> MboxWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _encode(raw: bytes, flags: frozenset[str]) -> tuple[bytes, str]:
    """The message as it follows its From_ line (LF, flag fields, mboxrd quoting, final line
    end) and the Return-Path sender it names ("" when none)."""
    data = to_lf(raw)
    end = _header_end(data, b"\n")
    header, rest = data[:end], data[end:]
    m = _RETURN_PATH.search(header)
    return_path = m[1].decode("latin-1") if m else ""
    # A message that arrived with such fields would otherwise carry two Status headers.
    header = _take_file_fields(header)[0]
    if header and not header.endswith(b"\n"):
        header += b"\n"  # a message that is nothing but an unterminated header line
    status, x_status = mbox_status_letters(flags)
    fields = [f"Status: {status}\n"]
    if x_status:
        fields.append(f"X-Status: {x_status}\n")
    keywords = [k for k in keywords_of(flags) if is_keyword(k)]
    if keywords:
        fields.append(f"X-Keywords: {' '.join(keywords)}\n")
    data = header + "".join(fields).encode("ascii") + rest
    if b"From " in data:
        data = _QUOTABLE_FROM.sub(rb">\1", data)
    if not data.endswith(b"\n"):
        data += b"\n"  # mbox cannot keep a message without a final line end
    return data, return_path


def read_back(raw: bytes) -> bytes:
    """What `read_mbox` yields for `raw` once `MboxWriter` has written it: the same bytes, but
    for a final line end added and mbox-only header fields the message itself carried."""
    return _decode(_encode(raw, frozenset())[0])[0]


def _envelope_sender(sender: str) -> bytes:
    """The From_ line's sender: one word, since readers split the line on spaces."""
    sender = sender.strip().strip("<>")
    if not sender or any(c.isspace() for c in sender):
        return b"MAILER-DAEMON"
    return sender.encode("utf-8")


def _asctime(when: datetime | None) -> bytes:
    """`Mon Jan  1 00:00:00 2024` in UTC (RFC 4155), independent of the locale."""
    if when is None:
        when = datetime.now(UTC)
    elif when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return (
        f"{_DAY_NAMES[when.weekday()]} {_MONTH_NAMES[when.month - 1]} {when.day:2d} "
        f"{when:%H:%M:%S} {when.year}"
    ).encode("ascii")
