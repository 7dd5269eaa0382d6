"""Single-message files (.eml, RFC 5322 text as saved by mail clients): one file or a tree.

A directory is walked recursively for files named `*.eml` (any case), in sorted path order, and
every message goes to the one folder given. A file named explicitly is read whatever its name.
The internal date is the Date header (RFC 5322 §3.6.1) when it parses, else the file's
modification time: a saved file's mtime is when it was saved, not when the mail arrived.
No flags: the format has none. A leading mbox From_ line (files cut out of an mbox often keep
one) is not part of the message and is dropped. Only regular files are read (a named pipe or a
device is refused at once); an empty file is not a message: refused when named, skipped in a
folder.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from postoffice.message.lines import to_crlf
from postoffice.transfer.filesystem import describe_kind, open_regular
from postoffice.transfer.mbox import parse_from_line
from postoffice.transfer.source import SourceMessage, TransferError

__all__ = ["count_eml", "read_eml"]

_DATE = re.compile(rb"^Date[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_EMPTY_LINE = re.compile(rb"(?:^|\n)\r?\n")


def read_eml(path: Path, folder: str = "INBOX") -> Iterator[SourceMessage]:
    """The message in the file `path`, or those in every `*.eml` file below the folder `path`.

    Raises TransferError at once when `path` is neither. `source_id` is the file's path relative
    to `path` (its name, for a single file).
    """
    return _read(path, _list(path), folder)


def count_eml(path: Path) -> int:
    """How many messages `read_eml(path)` will yield (for a progress bar)."""
    return len(_list(path))


def _list(path: Path) -> list[Path]:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise TransferError(f"{path} does not exist.") from None
    except OSError as exc:
        raise TransferError(f"{path} cannot be read: {exc.strerror or exc}.") from exc
    if stat.S_ISREG(mode):
        return [path]
    if not stat.S_ISDIR(mode):
        raise TransferError(
            f"{path} is {describe_kind(mode)}, neither a message file nor a folder of .eml files."
        )
    found: list[tuple[tuple[str, ...], Path]] = []
    for directory, dirnames, filenames in os.walk(path, onerror=_raise):
        dirnames.sort()
        for name in filenames:
            if name.lower().endswith(".eml"):
                file = Path(directory, name)
                if file.is_file():
                    found.append((file.relative_to(path).parts, file))
    # Sorted by path components, so "a/b.eml" stays beside "a/c.eml" rather than after "a-z.eml".
    return [file for _, file in sorted(found)]


def _raise(exc: OSError) -> None:
    raise TransferError(f"{exc.filename} cannot be read: {exc.strerror or exc}.") from exc


def _read(root: Path, files: list[Path], folder: str) -> Iterator[SourceMessage]:
    for file in files:
        try:
            with open_regular(file) as f:
                mtime = os.fstat(f.fileno()).st_mtime
                data = f.read()
        except OSError as exc:
            raise TransferError(f"{file} cannot be read: {exc.strerror or exc}.") from exc
        if not data.strip():
            if file == root:
                raise TransferError(f"{file} is empty, not a message.")
            continue
        if data.startswith(b"From "):
            line, _, rest = data.partition(b"\n")
            if parse_from_line(line.rstrip(b"\r")) is not None:
                data = rest
        raw = to_crlf(data)
        date = _header_date(raw) or datetime.fromtimestamp(int(mtime), UTC)
        source_id = file.name if file == root else file.relative_to(root).as_posix()
        yield SourceMessage(
            raw=raw, flags=frozenset(), internal_date=date, folder=folder, source_id=source_id
        )


def _header_date(raw: bytes) -> datetime | None:
    """The Date header's value as an aware datetime, or None when absent or unparsable."""
    end = _EMPTY_LINE.search(raw)
    m = _DATE.search(raw, 0, end.start() if end else len(raw))
    if m is None:
        return None
    value = " ".join(m[1].decode("latin-1").split())
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if date.tzinfo is None:  # "-0000": the zone is unknown (RFC 5322 §3.3); UTC is the guess
        date = date.replace(tzinfo=UTC)
    return date
