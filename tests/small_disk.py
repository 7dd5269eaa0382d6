"""A small real file system for disk-full tests: a tmpfs mounted on a temporary directory.

Mounting needs root (CI runs as root) and `mount` (Debian package mount); elsewhere the tests
skip with a reason, unless POSTOFFICE_REQUIRE_PEERS=1, where they fail (peers.py). The disk is filled with one filler file written
until ENOSPC, and freed by removing it: the server under test meets a real full disk on every
write path (blob files, the SQLite database and its WAL), not a simulated one.
"""
from __future__ import annotations

import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from peers import require_peer, unavailable


class SmallDisk:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._filler = root / "filler"

    def fill(self) -> None:
        """Use every free byte: big writes first, then ever smaller ones down to one byte."""
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1):
                block = b"\0" * size
                try:
                    while True:
                        os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(fd)

    def leave_free(self, size: int) -> None:
        """Give back `size` bytes of the filler (a full disk with a little room)."""
        current = self._filler.stat().st_size
        os.truncate(self._filler, max(0, current - size))

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        stat = os.statvfs(self.root)
        return stat.f_bavail * stat.f_frsize


@contextmanager
def small_disk(size_mb: int) -> Iterator[SmallDisk]:
    mount = require_peer("mount")
    directory = Path(tempfile.mkdtemp(prefix="postoffice-small-disk-"))
    result = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(directory)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        directory.rmdir()
        unavailable(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield SmallDisk(directory)
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)
        directory.rmdir()
