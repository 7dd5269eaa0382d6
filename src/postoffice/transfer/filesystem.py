"""What import and export check before they touch a path, so that neither can hang or escape.

- Reading: `open_regular` opens only regular files, and never blocks: a named pipe would make
  `open()` wait for a writer forever, and a device may do anything when opened (a tape rewinds),
  so the kind is checked with `stat` before opening, and again on the open descriptor (opened
  with O_NONBLOCK, in case the path changed in between).
- Writing: `inside` is the second line of defence behind `names` (which never lets a mailbox
  name become `..`): every directory and file an export creates must resolve, symbolic links
  followed, to a place inside the destination.
Every failure is a `TransferError` whose message is one plain sentence.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path
from typing import BinaryIO, overload

from postoffice.transfer.source import TransferError

__all__ = ["describe_kind", "inside", "open_regular"]


def describe_kind(mode: int) -> str:
    """What a file of this `st_mode` is, in words ("a named pipe (FIFO)", "a folder", ...)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISREG(mode):
        return "a file"
    return "not a regular file"


def _not_a_file(path: Path, mode: int) -> TransferError:
    return TransferError(
        f"{path} is {describe_kind(mode)}, not a file; save the mail to a file and import that."
    )


@overload
def open_regular(path: Path) -> BinaryIO: ...
@overload
def open_regular(path: Path, *, missing_ok: bool) -> BinaryIO | None: ...


def open_regular(path: Path, *, missing_ok: bool = False) -> BinaryIO | None:
    """`path` opened for binary reading; TransferError at once unless it is a regular file.

    With `missing_ok`, a path that does not exist gives None (a file a mail client renamed).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if missing_ok:
            return None
        raise TransferError(f"{path} does not exist.") from None
    except OSError as exc:
        raise TransferError(f"{path} cannot be read: {exc.strerror or exc}.") from exc
    if not stat.S_ISREG(mode):
        raise _not_a_file(path, mode)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise TransferError(f"{path} does not exist.") from None
    except OSError as exc:
        raise TransferError(f"{path} cannot be read: {exc.strerror or exc}.") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # replaced between stat and open
            raise _not_a_file(path, mode)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def inside(root: Path, path: Path) -> Path:
    """`path`, after checking that it resolves (symbolic links followed) to `root` or below.

    Raises TransferError otherwise: a mailbox name or a link in the destination would have made
    the export write somewhere else.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise TransferError(
            f"Refusing to write {path}: it resolves to {real}, outside the destination {root}."
        )
    return path
